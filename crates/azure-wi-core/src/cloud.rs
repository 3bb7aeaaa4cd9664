//! Azure clouds: the `AZURE_ENVIRONMENT` name and the authority host it selects.
//!
//! The webhook writes the authority host into every mutated container as `AZURE_AUTHORITY_HOST`.
//! Names are matched case-insensitively, like upstream's go-autorest lookup; an empty name means the
//! public cloud. `AzureStackCloud` reads the `activeDirectoryEndpoint` field of the JSON file named
//! by `AZURE_ENVIRONMENT_FILEPATH`.

use std::path::{Path, PathBuf};

use crate::config::ConfigError;

/// The name upstream uses for the Azure Stack cloud, whose endpoints come from a file.
const AZURE_STACK_CLOUD: &str = "AzureStackCloud";

/// The clouds with built-in authority hosts: (canonical name, authority host).
const KNOWN_CLOUDS: [(&str, &str); 4] = [
    ("AzurePublicCloud", "https://login.microsoftonline.com/"),
    ("AzureUSGovernmentCloud", "https://login.microsoftonline.us/"),
    ("AzureChinaCloud", "https://login.chinacloudapi.cn/"),
    ("AzureGermanCloud", "https://login.microsoftonline.de/"),
];

/// An Azure cloud, resolved once at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cloud {
    /// The canonical name, e.g. `AzurePublicCloud`.
    pub name: String,
    /// The Microsoft Entra authority host, e.g. `https://login.microsoftonline.com/`.
    pub authority_host: String,
}

impl Cloud {
    /// The public Azure cloud.
    pub fn public() -> Self {
        let (name, host) = KNOWN_CLOUDS[0];
        Self {
            name: name.to_owned(),
            authority_host: host.to_owned(),
        }
    }

    /// Resolves `AZURE_ENVIRONMENT` (case-insensitive, empty = public). `AzureStackCloud` reads
    /// `stack_file`, the path given in `AZURE_ENVIRONMENT_FILEPATH`.
    pub fn resolve(name: &str, stack_file: Option<&Path>) -> Result<Self, ConfigError> {
        let trimmed = name.trim();
        if trimmed.is_empty() {
            return Ok(Self::public());
        }
        if let Some((canonical, host)) = KNOWN_CLOUDS
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(trimmed))
        {
            return Ok(Self {
                name: (*canonical).to_owned(),
                authority_host: (*host).to_owned(),
            });
        }
        if trimmed.eq_ignore_ascii_case(AZURE_STACK_CLOUD) {
            let path = stack_file.ok_or(ConfigError::MissingStackFile)?;
            return Ok(Self {
                name: AZURE_STACK_CLOUD.to_owned(),
                authority_host: read_stack_authority(path)?,
            });
        }
        Err(ConfigError::UnknownCloud {
            name: name.to_owned(),
        })
    }

    /// The names accepted by [`Cloud::resolve`], for error messages and help.
    pub fn known_names() -> Vec<&'static str> {
        KNOWN_CLOUDS
            .iter()
            .map(|(name, _)| *name)
            .chain([AZURE_STACK_CLOUD])
            .collect()
    }
}

/// Reads `activeDirectoryEndpoint` from an Azure Stack environment file.
fn read_stack_authority(path: &Path) -> Result<String, ConfigError> {
    let file = || PathBuf::from(path);
    let text =
        std::fs::read(path).map_err(|source| ConfigError::StackFileUnreadable { path: file(), source })?;
    let value: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|source| ConfigError::StackFileInvalid { path: file(), source })?;
    match value
        .get("activeDirectoryEndpoint")
        .and_then(serde_json::Value::as_str)
    {
        Some(host) if !host.trim().is_empty() => Ok(host.trim().to_owned()),
        _ => Err(ConfigError::StackFileWithoutAuthority { path: file() }),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn names_are_case_insensitive_and_empty_is_public() {
        let cases = [
            ("", "https://login.microsoftonline.com/"),
            ("AzurePublicCloud", "https://login.microsoftonline.com/"),
            ("azurepubliccloud", "https://login.microsoftonline.com/"),
            ("AZUREUSGOVERNMENTCLOUD", "https://login.microsoftonline.us/"),
            ("AzureChinaCloud", "https://login.chinacloudapi.cn/"),
            ("azureGermanCloud", "https://login.microsoftonline.de/"),
        ];
        for (name, host) in cases {
            let cloud = Cloud::resolve(name, None).unwrap();
            assert_eq!(cloud.authority_host, host, "{name}");
        }
        assert_eq!(
            Cloud::resolve("azurechinacloud", None).unwrap().name,
            "AzureChinaCloud"
        );
    }

    #[test]
    fn unknown_names_are_errors_that_list_the_known_ones() {
        let error = Cloud::resolve("AzureMoonCloud", None).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("AZURE_ENVIRONMENT"), "{message}");
        assert!(message.contains("\"AzureMoonCloud\""), "{message}");
        assert!(message.contains("AzureUSGovernmentCloud"), "{message}");
    }

    #[test]
    fn azure_stack_reads_the_environment_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(
            file,
            r#"{{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.stack.example/"}}"#
        )
        .unwrap();
        let cloud = Cloud::resolve("azurestackcloud", Some(file.path())).unwrap();
        assert_eq!(cloud.authority_host, "https://login.stack.example/");
        assert_eq!(cloud.name, "AzureStackCloud");
    }

    #[test]
    fn azure_stack_errors_name_the_variable_and_the_file() {
        let missing = Cloud::resolve("AzureStackCloud", None).unwrap_err().to_string();
        assert!(missing.contains("AZURE_ENVIRONMENT_FILEPATH"), "{missing}");

        let absent = Path::new("/nonexistent/azure-stack.json");
        let unreadable = Cloud::resolve("AzureStackCloud", Some(absent))
            .unwrap_err()
            .to_string();
        assert!(
            unreadable.contains("/nonexistent/azure-stack.json"),
            "{unreadable}"
        );

        let mut bad = tempfile::NamedTempFile::new().unwrap();
        write!(bad, "not json").unwrap();
        let invalid = Cloud::resolve("AzureStackCloud", Some(bad.path()))
            .unwrap_err()
            .to_string();
        assert!(invalid.contains("not valid JSON"), "{invalid}");

        let mut empty = tempfile::NamedTempFile::new().unwrap();
        write!(empty, r#"{{"activeDirectoryEndpoint":""}}"#).unwrap();
        let without = Cloud::resolve("AzureStackCloud", Some(empty.path()))
            .unwrap_err()
            .to_string();
        assert!(without.contains("activeDirectoryEndpoint"), "{without}");
    }
}
