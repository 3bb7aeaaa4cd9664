//! The proxy's configuration, read and validated once at start-up.

use std::fmt;

use subtle::ConstantTimeEq;
use url::Url;

use super::Error;
use azure_wi_identity::{
    Env,
    env_vars::{AZURE_CLIENT_ID, AZURE_TENANT_ID, IDENTITY_HEADER},
};

/// The real instance metadata service, where GET requests under `/metadata/` are forwarded.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// The port upstream's proxy listens on, and ours by default.
pub const DEFAULT_PORT: u16 = 8000;

/// How many (client id, tenant) credentials are kept, as upstream's proxy does.
pub const DEFAULT_MAX_CREDENTIALS: usize = 128;

/// The shortest `IDENTITY_HEADER` accepted: a guessable header would not guard anything.
pub const MIN_IDENTITY_HEADER_LEN: usize = 16;

/// The validated settings of a proxy.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The TCP port to listen on (on 127.0.0.1 and, when available, ::1). `0` picks a free port.
    pub port: u16,
    /// The tenant every token is requested in (`AZURE_TENANT_ID`).
    pub tenant_id: String,
    /// The client id used when a request names none (`AZURE_CLIENT_ID`).
    pub default_client_id: Option<String>,
    /// When set, the App Service-shaped endpoint `/msi/token` is served and requests to it must
    /// carry this value in `X-IDENTITY-HEADER`.
    pub identity_header: Option<IdentityHeader>,
    /// Where instance-metadata GET requests are forwarded.
    pub imds_endpoint: Url,
    /// How many credentials (one per client id and tenant) are kept at most.
    pub max_credentials: usize,
}

impl ProxyConfig {
    /// Reads `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and, when `identity_endpoint` is true,
    /// `IDENTITY_HEADER` from `env`, and validates everything.
    pub fn from_env(
        env: &Env,
        port: u16,
        identity_endpoint: bool,
        imds_endpoint: &str,
    ) -> Result<Self, Error> {
        let tenant_id = env.var(AZURE_TENANT_ID).ok_or(Error::MissingEnv {
            name: AZURE_TENANT_ID,
            fix: "the workload identity webhook injects it into pods labelled \
                  azure.workload.identity/use=true; set it to the Microsoft Entra tenant id",
        })?;
        validate_id(AZURE_TENANT_ID, &tenant_id)?;
        if tenant_id.split('.').any(str::is_empty) {
            return Err(Error::invalid(
                AZURE_TENANT_ID,
                "a tenant id is a GUID or a domain name; '.', '..' and empty labels are not",
            ));
        }
        let default_client_id = env.var(AZURE_CLIENT_ID);
        if let Some(client_id) = &default_client_id {
            validate_id(AZURE_CLIENT_ID, client_id)?;
        }
        let identity_header = if identity_endpoint {
            let value = env.var(IDENTITY_HEADER).ok_or(Error::MissingEnv {
                name: IDENTITY_HEADER,
                fix: "--identity-endpoint needs the per-pod secret the applications send in \
                      X-IDENTITY-HEADER; the webhook injects it",
            })?;
            Some(IdentityHeader::new(value)?)
        } else {
            None
        };
        Ok(Self {
            port,
            tenant_id,
            default_client_id,
            identity_header,
            imds_endpoint: parse_imds_endpoint(imds_endpoint)?,
            max_credentials: DEFAULT_MAX_CREDENTIALS,
        })
    }
}

/// Checks a tenant or client id: 1 to 128 characters of `A-Z a-z 0-9 - _ .`.
pub(crate) fn validate_id(name: &'static str, value: &str) -> Result<(), Error> {
    if is_valid_id(value) {
        Ok(())
    } else {
        Err(Error::invalid(
            name,
            "expected 1 to 128 characters of letters, digits, '-', '_' or '.' (a GUID or a domain name)",
        ))
    }
}

/// Whether `value` can be a tenant or client id.
pub(crate) fn is_valid_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn parse_imds_endpoint(value: &str) -> Result<Url, Error> {
    let url = Url::parse(value)
        .map_err(|e| Error::invalid("IMDS endpoint", format!("{value:?} is not a URL: {e}")))?;
    if url.scheme() != "http" || url.host().is_none() {
        return Err(Error::invalid(
            "IMDS endpoint",
            format!("{value:?}: expected http://<host>[:<port>]"),
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(Error::invalid(
            "IMDS endpoint",
            format!("{value:?}: give only scheme, host and port, e.g. {DEFAULT_IMDS_ENDPOINT}"),
        ));
    }
    Ok(url)
}

/// The per-pod secret of identity-endpoint mode. Compared in constant time; never printed.
#[derive(Clone)]
pub struct IdentityHeader(Box<[u8]>);

impl IdentityHeader {
    /// Wraps the value of `IDENTITY_HEADER`; it must be at least
    /// [`MIN_IDENTITY_HEADER_LEN`] visible ASCII characters.
    pub fn new(value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        if value.len() < MIN_IDENTITY_HEADER_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                IDENTITY_HEADER,
                format!(
                    "expected at least {MIN_IDENTITY_HEADER_LEN} visible ASCII characters \
                     (a random per-pod value)"
                ),
            ));
        }
        Ok(Self(value.into_bytes().into_boxed_slice()))
    }

    /// Whether `candidate` is the secret, in time independent of where they differ.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        bool::from(self.0.as_ref().ct_eq(candidate))
    }
}

impl fmt::Debug for IdentityHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityHeader(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn tenant_is_required_and_named() {
        let err = ProxyConfig::from_env(&env(&[]), 8000, false, DEFAULT_IMDS_ENDPOINT).unwrap_err();
        assert!(err.to_string().starts_with("AZURE_TENANT_ID is not set"), "{err}");
    }

    #[test]
    fn identity_endpoint_needs_a_long_enough_header() {
        let base = [("AZURE_TENANT_ID", "tenant")];
        let err = ProxyConfig::from_env(&env(&base), 8000, true, DEFAULT_IMDS_ENDPOINT).unwrap_err();
        assert!(err.to_string().starts_with("IDENTITY_HEADER is not set"), "{err}");
        let short = [("AZURE_TENANT_ID", "tenant"), ("IDENTITY_HEADER", "short")];
        let err = ProxyConfig::from_env(&env(&short), 8000, true, DEFAULT_IMDS_ENDPOINT).unwrap_err();
        assert!(err.to_string().contains("at least 16"), "{err}");
        let good = [
            ("AZURE_TENANT_ID", "tenant"),
            ("IDENTITY_HEADER", "0123456789abcdef0123"),
        ];
        let config = ProxyConfig::from_env(&env(&good), 8000, true, DEFAULT_IMDS_ENDPOINT).unwrap();
        let header = config.identity_header.as_ref().unwrap();
        assert!(header.matches(b"0123456789abcdef0123"));
        assert!(!header.matches(b"0123456789abcdef012"));
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn ids_and_imds_endpoint_are_validated() {
        let bad_client = [("AZURE_TENANT_ID", "tenant"), ("AZURE_CLIENT_ID", "a b")];
        let err = ProxyConfig::from_env(&env(&bad_client), 8000, false, DEFAULT_IMDS_ENDPOINT).unwrap_err();
        assert!(err.to_string().starts_with("invalid AZURE_CLIENT_ID"), "{err}");
        let base = [("AZURE_TENANT_ID", "tenant")];
        for bad in [
            "https://169.254.169.254",
            "http://h/path",
            "not a url",
            "http://h/?q",
        ] {
            let err = ProxyConfig::from_env(&env(&base), 8000, false, bad).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid IMDS endpoint"),
                "{bad}: {err}"
            );
        }
        for tenant in [".", "..", "a..b", ".contoso.com"] {
            let pairs = [("AZURE_TENANT_ID", tenant)];
            let err = ProxyConfig::from_env(&env(&pairs), 8000, false, "http://127.0.0.1:9").unwrap_err();
            assert!(
                err.to_string().starts_with("invalid AZURE_TENANT_ID"),
                "{tenant}: {err}"
            );
        }
        let ok = ProxyConfig::from_env(&env(&base), 8000, false, "http://127.0.0.1:9").unwrap();
        assert_eq!(ok.imds_endpoint.as_str(), "http://127.0.0.1:9/");
    }
}
