//! `azure-wi jwks`: the JSON Web Key Set of a cluster's service-account signing keys, as the API
//! server serves it on `/openid/v1/jwks`, for self-managed clusters whose issuer is published
//! elsewhere (e.g. a storage account). With `--issuer`, also the OpenID discovery document.
//!
//! Exit status: 0 written; 2 invalid input (flags, a file that holds no usable key); 1 the output
//! could not be written.

use std::{path::PathBuf, process::ExitCode};

use azure_wi_identity::bounded_file::read_regular_file;

use serde::Serialize;

use super::signing_key::{self, Jwk, PublicKey};

/// Write the JSON Web Key Set (and optionally the OpenID discovery document) for service-account
/// signing keys.
#[derive(Debug, clap::Args)]
pub struct JwksArgs {
    /// PEM files with the keys: the API server's --service-account-key-file (public keys) or
    /// --service-account-signing-key-file (private keys; only their public part is used). RSA or
    /// EC P-256/P-384/P-521; repeat the flag or separate files with commas.
    #[arg(long, value_name = "FILE", required = true, num_args = 1.., value_delimiter = ',')]
    public_keys: Vec<PathBuf>,

    /// Write the key set to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    output_file: Option<PathBuf>,

    /// The service-account issuer (the API server's --service-account-issuer, https): also write
    /// the OpenID discovery document (`/.well-known/openid-configuration`) to --discovery-file.
    #[arg(long, value_name = "URL", requires = "discovery_file")]
    issuer: Option<String>,

    /// Where the discovery document goes (with --issuer).
    #[arg(long, value_name = "FILE", requires = "issuer")]
    discovery_file: Option<PathBuf>,

    /// The key set's URL in the discovery document (the API server's --service-account-jwks-uri);
    /// default: the issuer followed by /openid/v1/jwks.
    #[arg(long, value_name = "URL", requires = "issuer")]
    jwks_uri: Option<String>,
}

/// `{"keys": [...]}`.
#[derive(Debug, Serialize)]
struct KeySet {
    keys: Vec<Jwk>,
}

/// The discovery document, with the API server's fields in its order.
#[derive(Debug, Serialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    response_types_supported: [&'static str; 1],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: Vec<&'static str>,
}

impl JwksArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        match self.execute() {
            Ok(()) => ExitCode::SUCCESS,
            Err((code, message)) => {
                eprintln!("error: {message}");
                ExitCode::from(code)
            }
        }
    }

    fn execute(self) -> Result<(), (u8, String)> {
        let invalid = |message: String| (2, message);
        let mut keys: Vec<PublicKey> = Vec::new();
        for file in &self.public_keys {
            let text = read_bounded(file).map_err(invalid)?;
            keys.extend(signing_key::keys_from_pem(&text, &file.display().to_string()).map_err(invalid)?);
        }
        let discovery = match &self.issuer {
            Some(issuer) => Some(discovery(issuer, self.jwks_uri.as_deref(), &keys).map_err(invalid)?),
            None => None,
        };
        let set = KeySet {
            keys: keys.iter().map(PublicKey::jwk).collect(),
        };
        write(self.output_file.as_ref(), &set)?;
        if let (Some(document), Some(file)) = (discovery, &self.discovery_file) {
            write(Some(file), &document)?;
        }
        Ok(())
    }
}

fn read_bounded(file: &std::path::Path) -> Result<Vec<u8>, String> {
    read_regular_file(file, signing_key::MAX_FILE_BYTES)
        .map_err(|error| format!("--public-keys {}: {error}", file.display()))
}

/// The API server's discovery document for `issuer`; the issuer is checked as the API server
/// checks it (https, no query, no fragment).
fn discovery(issuer: &str, jwks_uri: Option<&str>, keys: &[PublicKey]) -> Result<Discovery, String> {
    let https = |flag: &str, value: &str| -> Result<url::Url, String> {
        let url =
            url::Url::parse(value).map_err(|error| format!("{flag} {value:?} is not a URL: {error}"))?;
        if url.scheme() != "https" {
            return Err(format!(
                "{flag} {value:?} must be an https URL (Microsoft Entra fetches it)"
            ));
        }
        Ok(url)
    };
    let parsed = https("--issuer", issuer)?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("--issuer {issuer:?} may not have a query or a fragment"));
    }
    let jwks_uri = match jwks_uri {
        Some(uri) => {
            https("--jwks-uri", uri)?;
            uri.to_owned()
        }
        None => format!("{}/openid/v1/jwks", issuer.trim_end_matches('/')),
    };
    let mut algorithms: Vec<&'static str> = keys.iter().map(PublicKey::algorithm).collect();
    algorithms.sort_unstable();
    algorithms.dedup();
    Ok(Discovery {
        issuer: issuer.to_owned(),
        jwks_uri,
        response_types_supported: ["id_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: algorithms,
    })
}

/// Writes `value` as indented JSON to `file`, or to standard output.
fn write(file: Option<&PathBuf>, value: &impl Serialize) -> Result<(), (u8, String)> {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    match file {
        Some(file) => std::fs::write(file, text)
            .map_err(|error| (1, format!("cannot write {}: {error}", file.display()))),
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err((1, format!("cannot write to standard output: {error}")))
                }
                _ => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec_key() -> PublicKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        signing_key::keys_from_pem(pair.public_key_pem().as_bytes(), "ec")
            .unwrap()
            .remove(0)
    }

    #[test]
    fn discovery_follows_the_api_server() {
        let keys = [ec_key(), ec_key()];
        let document = discovery("https://issuer.example/container/", None, &keys).unwrap();
        let json = serde_json::to_value(&document).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "issuer": "https://issuer.example/container/",
                "jwks_uri": "https://issuer.example/container/openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            })
        );
        for (issuer, problem) in [
            ("http://issuer.example", "https"),
            ("https://issuer.example/?a=b", "query"),
            ("https://issuer.example/#x", "fragment"),
            ("issuer", "not a URL"),
        ] {
            let error = discovery(issuer, None, &keys).unwrap_err();
            assert!(error.contains("--issuer") && error.contains(problem), "{error}");
        }
        let error = discovery("https://i.example", Some("http://i.example/keys"), &keys).unwrap_err();
        assert!(error.contains("--jwks-uri"), "{error}");
    }
}
