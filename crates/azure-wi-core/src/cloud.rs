//! Azure clouds: the `AZURE_ENVIRONMENT` name and the authority host it selects.
//!
//! The webhook writes the authority host into every mutated container as `AZURE_AUTHORITY_HOST`.
//! Names are matched case-insensitively, like upstream's go-autorest lookup; an empty name means the
//! public cloud. `AzureStackCloud` reads the `activeDirectoryEndpoint` field of the JSON file named
//! by `AZURE_ENVIRONMENT_FILEPATH`.

use std::path::{Path, PathBuf};

use azure_wi_identity::AzureCloud;

/// The name upstream uses for the Azure Stack cloud, whose endpoints come from a file.
const AZURE_STACK_CLOUD: &str = "AzureStackCloud";

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
        Self::known(AzureCloud::Public)
    }

    /// One of the credential library's clouds, its authority host written with the trailing `/`
    /// upstream's webhook writes.
    fn known(cloud: AzureCloud) -> Self {
        Self {
            name: cloud.environment_name().to_owned(),
            authority_host: format!("{}/", cloud.authority_host()),
        }
    }

    /// Resolves `AZURE_ENVIRONMENT` (case-insensitive, empty = public). `AzureStackCloud` reads
    /// `stack_file`, the path given in `AZURE_ENVIRONMENT_FILEPATH`.
    pub fn resolve(name: &str, stack_file: Option<&Path>) -> Result<Self, CloudError> {
        let trimmed = name.trim();
        if trimmed.is_empty() {
            return Ok(Self::public());
        }
        if let Some(cloud) = AzureCloud::from_environment_name(trimmed) {
            return Ok(Self::known(cloud));
        }
        if trimmed.eq_ignore_ascii_case(AZURE_STACK_CLOUD) {
            let path = stack_file.ok_or(CloudError::MissingStackFile)?;
            return Ok(Self {
                name: AZURE_STACK_CLOUD.to_owned(),
                authority_host: read_stack_authority(path)?,
            });
        }
        Err(CloudError::UnknownCloud {
            name: name.to_owned(),
        })
    }

    /// The names accepted by [`Cloud::resolve`], for error messages and help.
    pub fn known_names() -> Vec<&'static str> {
        AzureCloud::ALL
            .iter()
            .map(|cloud| cloud.environment_name())
            .chain([AZURE_STACK_CLOUD])
            .collect()
    }
}

/// An `AZURE_ENVIRONMENT` (or Azure Stack environment file) that names no usable cloud.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudError {
    /// `AZURE_ENVIRONMENT` names no known cloud.
    #[error(
        "AZURE_ENVIRONMENT {name:?} is not a known cloud: use one of {} (case-insensitive)",
        Cloud::known_names().join(", ")
    )]
    UnknownCloud {
        /// The name given.
        name: String,
    },
    /// `AzureStackCloud` without `AZURE_ENVIRONMENT_FILEPATH`.
    #[error(
        "AZURE_ENVIRONMENT is AzureStackCloud but AZURE_ENVIRONMENT_FILEPATH is not set: point it at \
         the Azure Stack environment JSON file"
    )]
    MissingStackFile,
    /// The Azure Stack environment file cannot be read.
    #[error("cannot read the Azure Stack environment file {path:?} (AZURE_ENVIRONMENT_FILEPATH): {source}")]
    StackFileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: azure_wi_identity::bounded_file::FileError,
    },
    /// The Azure Stack environment file is not JSON.
    #[error(
        "the Azure Stack environment file {path:?} (AZURE_ENVIRONMENT_FILEPATH) is not valid JSON: {source}"
    )]
    StackFileInvalid {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The Azure Stack environment file lacks `activeDirectoryEndpoint`.
    #[error(
        "the Azure Stack environment file {path:?} (AZURE_ENVIRONMENT_FILEPATH) has no non-empty \
         \"activeDirectoryEndpoint\" string"
    )]
    StackFileWithoutAuthority {
        /// The file.
        path: PathBuf,
    },
}

/// Reads `activeDirectoryEndpoint` from an Azure Stack environment file.
fn read_stack_authority(path: &Path) -> Result<String, CloudError> {
    let file = || PathBuf::from(path);
    // A few hundred bytes of JSON; the bound keeps a wrong path (a device, a huge file) harmless.
    let text = azure_wi_identity::bounded_file::read_regular_file(path, 1024 * 1024)
        .map_err(|source| CloudError::StackFileUnreadable { path: file(), source })?;
    let value: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|source| CloudError::StackFileInvalid { path: file(), source })?;
    match value
        .get("activeDirectoryEndpoint")
        .and_then(serde_json::Value::as_str)
    {
        Some(host) if !host.trim().is_empty() => Ok(host.trim().to_owned()),
        _ => Err(CloudError::StackFileWithoutAuthority { path: file() }),
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
        let device = Cloud::resolve("AzureStackCloud", Some(Path::new("/dev/zero")))
            .unwrap_err()
            .to_string();
        assert!(device.contains("a device, not a regular file"), "{device}");

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
