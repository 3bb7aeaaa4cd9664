//! Identity bindings (AKS): the workload identity exchange sent to a token proxy instead of
//! straight to Microsoft Entra.
//!
//! For a pod that opts in to a custom token endpoint the webhook injects, besides the usual
//! variables, `AZURE_KUBERNETES_TOKEN_PROXY` (the proxy's https URL), `AZURE_KUBERNETES_SNI_NAME`
//! (the TLS server name to send and to check the proxy's certificate against) and the proxy's CA:
//! `AZURE_KUBERNETES_CA_FILE` (a file the kubelet projects and rotates) or
//! `AZURE_KUBERNETES_CA_DATA` (PEM, inline). The token request then goes to the proxy, its path
//! joined with the authority's path as azure-identity joins them (`https://proxy/base` and
//! `https://login.microsoftonline.com/TENANT/oauth2/v2.0/token` give
//! `https://proxy/base/TENANT/oauth2/v2.0/token`), over TLS that trusts only that CA (the
//! platform's roots and `SSL_CERT_FILE` when no CA is given), with that server name. The CA file
//! is read again before every exchange and a changed one is used from then on; a file that is
//! empty, unreadable or not PEM mid-rotation leaves the previous CA in use.
//!
//! The rules are Python azure-identity 1.27's (`WorkloadIdentityCredential(enable_azure_proxy=
//! True)`): the URL must be https without user info, query or fragment; both CA variables set is
//! an error, and so is a server name or CA without the proxy URL.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use reqwest::{
    dns::{Name, Resolve, Resolving},
    header::HeaderValue,
};
use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use url::{Host, Url};

use super::{
    Env,
    bounded_file::{FileError, read_regular_file, read_regular_file_async},
    env_vars::{
        AZURE_KUBERNETES_CA_DATA, AZURE_KUBERNETES_CA_FILE, AZURE_KUBERNETES_SNI_NAME,
        AZURE_KUBERNETES_TOKEN_PROXY,
    },
    http,
    plain_http::redact,
    tls_trust::{Trust, client_config_trusting},
};

/// The largest CA file read. A CA bundle is a few KB (a ClusterTrustBundle of several CAs a few
/// tens of KB); 1 MiB is far above that and bounds what a wrong path can make the process hold.
pub(crate) const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// Why an identity binding cannot be used. Each message names the variable and the fix.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum BindingError {
    /// The proxy URL does not parse.
    #[error(
        "{AZURE_KUBERNETES_TOKEN_PROXY}={value:?} is not a URL ({reason}): set it to the token \
         proxy's https URL, e.g. https://kubernetes.default.svc"
    )]
    NotUrl {
        /// The value, user info redacted.
        value: String,
        /// The parser's words.
        reason: String,
    },
    /// The proxy URL breaks a rule.
    #[error("{AZURE_KUBERNETES_TOKEN_PROXY}={value:?} {problem}: {fix}")]
    BadUrl {
        /// The value, user info redacted.
        value: String,
        /// What is wrong.
        problem: &'static str,
        /// How to fix it.
        fix: &'static str,
    },
    /// Both CA variables are set.
    #[error(
        "{AZURE_KUBERNETES_CA_FILE} and {AZURE_KUBERNETES_CA_DATA} are both set: set only one \
         (the file for a CA the kubelet projects, the data for an inline PEM)"
    )]
    BothCa,
    /// A server name or CA without the proxy URL.
    #[error(
        "{present} set but {AZURE_KUBERNETES_TOKEN_PROXY} is not: set {AZURE_KUBERNETES_TOKEN_PROXY} \
         to the token proxy's https URL, or unset {present}"
    )]
    WithoutProxy {
        /// The variables that are set.
        present: String,
    },
    /// The server name is not a DNS name.
    #[error(
        "{AZURE_KUBERNETES_SNI_NAME}={value:?} is not a DNS name (TLS sends only DNS names as the \
         server name): set it to the host name on the token proxy's certificate"
    )]
    SniNotDnsName {
        /// The value.
        value: String,
    },
    /// The CA file cannot be used.
    #[error(
        "{AZURE_KUBERNETES_CA_FILE}={path} cannot be used: {reason}. It is the token proxy's CA the \
         webhook projects into the pod; point {AZURE_KUBERNETES_CA_FILE} at a PEM file of CA \
         certificates"
    )]
    CaFile {
        /// The path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA data cannot be used.
    #[error(
        "{AZURE_KUBERNETES_CA_DATA} cannot be used: {reason}; set it to the PEM of the token \
         proxy's CA certificates"
    )]
    CaData {
        /// What is wrong with it.
        reason: String,
    },
    /// reqwest refused the configuration.
    #[error("the HTTP client for the token proxy cannot be built: {0}")]
    Client(String),
}

/// Where the token proxy's CA comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CaSource {
    /// Neither variable: the platform's roots and `SSL_CERT_FILE`.
    Platform,
    /// `AZURE_KUBERNETES_CA_DATA`.
    Data(String),
    /// `AZURE_KUBERNETES_CA_FILE`.
    File(PathBuf),
}

/// An identity binding's settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct IdentityBinding {
    proxy: Url,
    sni: Option<String>,
    ca: CaSource,
}

impl IdentityBinding {
    /// The binding the variables in `env` describe: `None` when none of them is set.
    pub(crate) fn from_env(env: &Env) -> Result<Option<Self>, BindingError> {
        let sni = env.var(AZURE_KUBERNETES_SNI_NAME);
        let ca_file = env.var(AZURE_KUBERNETES_CA_FILE);
        let ca_data = env.var(AZURE_KUBERNETES_CA_DATA);
        let Some(proxy) = env.var(AZURE_KUBERNETES_TOKEN_PROXY) else {
            let present: Vec<&str> = [
                (AZURE_KUBERNETES_SNI_NAME, sni.is_some()),
                (AZURE_KUBERNETES_CA_FILE, ca_file.is_some()),
                (AZURE_KUBERNETES_CA_DATA, ca_data.is_some()),
            ]
            .iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| *name)
            .collect();
            return match present.is_empty() {
                true => Ok(None),
                false => Err(BindingError::WithoutProxy {
                    present: present.join(" and "),
                }),
            };
        };
        let ca = match (ca_file, ca_data) {
            (Some(_), Some(_)) => return Err(BindingError::BothCa),
            (Some(file), None) => CaSource::File(PathBuf::from(file)),
            (None, Some(data)) => CaSource::Data(data),
            (None, None) => CaSource::Platform,
        };
        let proxy = proxy_url(&proxy)?;
        if let Some(name) = &sni {
            match ServerName::try_from(name.as_str()) {
                Ok(ServerName::DnsName(_)) if Url::parse(&format!("https://{name}/")).is_ok() => {}
                _ => return Err(BindingError::SniNotDnsName { value: name.clone() }),
            }
        }
        Ok(Some(Self { proxy, sni, ca }))
    }

    /// The URL the request for `url` (an Entra URL) goes to: the proxy's origin, the proxy's path
    /// joined with `url`'s path, `url`'s query. With a server name, the URL's host is that name
    /// (the connection still goes to the proxy's host, see [`BindingTransport`]).
    pub(crate) fn request_url(&self, url: &str) -> String {
        let Ok(original) = Url::parse(url) else {
            return url.to_owned();
        };
        let mut joined = self.proxy.clone();
        let path = format!(
            "{}/{}",
            self.proxy.path().trim_end_matches('/'),
            original.path().trim_start_matches('/')
        );
        joined.set_path(&path);
        joined.set_query(original.query());
        if let Some(sni) = &self.sni {
            // A DNS name, checked in `from_env`.
            let _ = joined.set_host(Some(sni));
        }
        joined.to_string()
    }

    /// The `Host` header when the URL's host is the server name: the proxy's host and port, as
    /// azure-identity sends it.
    pub(crate) fn host_header(&self) -> Option<HeaderValue> {
        self.sni.as_ref()?;
        let host = self.proxy.host_str()?;
        let value = match self.proxy.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        HeaderValue::from_str(&value).ok()
    }

    /// The proxy URL, for messages.
    pub(crate) fn proxy(&self) -> &Url {
        &self.proxy
    }
}

/// The proxy URL, checked: https, a host, no user info, query or fragment.
fn proxy_url(value: &str) -> Result<Url, BindingError> {
    let shown = redact(value);
    let bad = |problem, fix| BindingError::BadUrl {
        value: shown.clone(),
        problem,
        fix,
    };
    let url = Url::parse(value).map_err(|e| BindingError::NotUrl {
        value: shown.clone(),
        reason: e.to_string(),
    })?;
    if url.scheme() != "https" {
        return Err(bad(
            "does not use https",
            "the token proxy is reached over TLS only; write its URL with https://",
        ));
    }
    if url.host().is_none() {
        return Err(bad(
            "has no host",
            "write the token proxy's host name or address in the URL",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "contains a user name or password",
            "remove the user info; the credential authenticates with the service-account token",
        ));
    }
    if url.query().is_some() {
        return Err(bad(
            "contains a query",
            "remove everything from '?' on; the token request's own path and query are appended",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad("contains a fragment", "remove everything from '#' on"));
    }
    Ok(url)
}

/// The client a binding's requests go through, rebuilt when the CA file changes.
pub(crate) struct BindingTransport {
    binding: IdentityBinding,
    current: Mutex<Loaded>,
}

/// The client in use and the CA it trusts.
struct Loaded {
    client: reqwest::Client,
    ca_pem: Vec<u8>,
}

impl std::fmt::Debug for BindingTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindingTransport")
            .field("proxy", &self.binding.proxy.as_str())
            .field("sni", &self.binding.sni)
            .field(
                "ca",
                &match &self.binding.ca {
                    CaSource::Platform => "platform".to_owned(),
                    CaSource::Data(_) => AZURE_KUBERNETES_CA_DATA.to_owned(),
                    CaSource::File(path) => path.display().to_string(),
                },
            )
            .finish()
    }
}

impl BindingTransport {
    /// The transport for `binding`; the CA file is read here, and must be usable.
    pub(crate) fn new(binding: IdentityBinding) -> Result<Self, BindingError> {
        let ca_pem = match &binding.ca {
            CaSource::Platform => Vec::new(),
            CaSource::Data(data) => data.as_bytes().to_vec(),
            CaSource::File(path) => {
                read_regular_file(path, MAX_CA_FILE_BYTES).map_err(|e| ca_file_error(path, e))?
            }
        };
        let client = build_client(&binding, &ca_pem)?;
        Ok(Self {
            binding,
            current: Mutex::new(Loaded { client, ca_pem }),
        })
    }

    /// The binding.
    pub(crate) fn binding(&self) -> &IdentityBinding {
        &self.binding
    }

    /// The client for the next request. With a CA file, the file is read again first: changed
    /// and usable, a client trusting the new CA replaces the old one; unusable (mid-rotation,
    /// removed), the old one stays, with a warning.
    pub(crate) async fn client(&self) -> reqwest::Client {
        let CaSource::File(path) = &self.binding.ca else {
            return self.loaded().client.clone();
        };
        let read = read_regular_file_async(path.clone(), MAX_CA_FILE_BYTES).await;
        let pem = match read {
            Ok(pem) if pem == self.loaded().ca_pem => return self.loaded().client.clone(),
            Ok(pem) => pem,
            Err(e) => {
                tracing::warn!(
                    error = %ca_file_error(path, e),
                    "identity binding: keeping the CA in use"
                );
                return self.loaded().client.clone();
            }
        };
        match build_client(&self.binding, &pem) {
            Ok(client) => {
                tracing::info!(
                    path = %path.display(),
                    "identity binding: the CA file changed; trusting its new contents"
                );
                let mut loaded = self.loaded();
                *loaded = Loaded {
                    client: client.clone(),
                    ca_pem: pem,
                };
                client
            }
            Err(e) => {
                tracing::warn!(error = %e, "identity binding: keeping the CA in use");
                self.loaded().client.clone()
            }
        }
    }

    fn loaded(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn ca_file_error(path: &std::path::Path, e: FileError) -> BindingError {
    BindingError::CaFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A client trusting the CA in `ca_pem` (the platform's roots when the binding has no CA), whose
/// connections for the server name go to the proxy's host.
fn build_client(binding: &IdentityBinding, ca_pem: &[u8]) -> Result<reqwest::Client, BindingError> {
    let tls = match &binding.ca {
        CaSource::Platform => http::platform_tls().map_err(|e| BindingError::Client(e.to_string()))?,
        ca => {
            let invalid = |reason: String| match ca {
                CaSource::File(path) => BindingError::CaFile {
                    path: path.display().to_string(),
                    reason,
                },
                _ => BindingError::CaData { reason },
            };
            let certs = CertificateDer::pem_slice_iter(ca_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(format!("it is not PEM ({e})")))?;
            if certs.is_empty() {
                return Err(invalid("it holds no PEM certificate".into()));
            }
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certs.iter().cloned());
            if added == 0 {
                return Err(invalid("none of its certificates could be parsed".into()));
            }
            let trust = match ca {
                CaSource::File(path) => Trust::BindingCa {
                    variable: AZURE_KUBERNETES_CA_FILE,
                    path: Some(path.clone()),
                },
                _ => Trust::BindingCa {
                    variable: AZURE_KUBERNETES_CA_DATA,
                    path: None,
                },
            };
            client_config_trusting(roots, certs, trust)
        }
    };
    let mut builder = http::builder_with_tls(tls);
    if let Some(sni) = &binding.sni {
        let host = binding.proxy.host().map(|h| h.to_owned());
        let port = binding.proxy.port_or_known_default().unwrap_or(443);
        if let Some(host) = host {
            builder = builder
                .dns_resolver(Arc::new(ProxyResolver {
                    name: sni.to_ascii_lowercase(),
                    host,
                    port,
                }))
                // An HTTP proxy would be asked for the server name, which only this client resolves.
                .no_proxy();
        }
    }
    builder.build().map_err(|e| BindingError::Client(e.to_string()))
}

/// Resolves the server name to the token proxy's host (its addresses, when it is a name), so
/// that the URL's host, the TLS server name, can differ from where the connection goes.
struct ProxyResolver {
    name: String,
    host: Host<String>,
    port: u16,
}

impl Resolve for ProxyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let target = match &self.host {
            _ if !name.as_str().eq_ignore_ascii_case(&self.name) => name.as_str().to_owned(),
            Host::Ipv4(ip) => return ready(vec![SocketAddr::new((*ip).into(), self.port)]),
            Host::Ipv6(ip) => return ready(vec![SocketAddr::new((*ip).into(), self.port)]),
            Host::Domain(domain) => domain.clone(),
        };
        let port = self.port;
        Box::pin(async move {
            let lookup = tokio::task::spawn_blocking(move || {
                (target.as_str(), port)
                    .to_socket_addrs()
                    .map(|addrs| addrs.collect::<Vec<_>>())
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match lookup {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(e) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

fn ready(addrs: Vec<SocketAddr>) -> Resolving {
    Box::pin(std::future::ready(Ok(
        Box::new(addrs.into_iter()) as reqwest::dns::Addrs
    )))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{
        ClientAssertionCredentialOptions, ErrorKind, PlatformCredential, PlatformCredentialOptions,
        TokenCredential, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
        test_server::{Reply, TestServer},
    };

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const SNI: &str = "proxy.identity-binding.test";
    const SCOPE: &str = "https://vault.azure.net/.default";

    fn binding(pairs: &[(&str, &str)]) -> Result<Option<IdentityBinding>, BindingError> {
        IdentityBinding::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    fn refusal(pairs: &[(&str, &str)]) -> String {
        binding(pairs).expect_err("refused").to_string()
    }

    #[test]
    fn no_variable_is_no_binding() {
        assert!(binding(&[]).unwrap().is_none());
    }

    #[test]
    fn proxy_url_rules_name_the_variable_and_the_fix() {
        for (url, words) in [
            ("http://10.0.0.1", "does not use https"),
            ("https://user:hunter2@10.0.0.1", "user name or password"),
            ("https://10.0.0.1/?x=1", "contains a query"),
            ("https://10.0.0.1/#f", "contains a fragment"),
            ("10.0.0.1:443", "not a URL"),
        ] {
            let e = refusal(&[(AZURE_KUBERNETES_TOKEN_PROXY, url)]);
            assert!(
                e.contains(AZURE_KUBERNETES_TOKEN_PROXY) && e.contains(words),
                "{url}: {e}"
            );
            assert!(!e.contains("hunter2"), "a password reaches the message: {e}");
        }
        let e = refusal(&[
            (AZURE_KUBERNETES_TOKEN_PROXY, "https://10.0.0.1"),
            (AZURE_KUBERNETES_SNI_NAME, "10.0.0.2"),
        ]);
        assert!(
            e.contains(AZURE_KUBERNETES_SNI_NAME) && e.contains("not a DNS name"),
            "{e}"
        );
    }

    #[test]
    fn both_cas_or_settings_without_the_proxy_are_errors() {
        let e = refusal(&[
            (AZURE_KUBERNETES_TOKEN_PROXY, "https://10.0.0.1"),
            (AZURE_KUBERNETES_CA_FILE, "/ca.crt"),
            (AZURE_KUBERNETES_CA_DATA, "-----BEGIN CERTIFICATE-----"),
        ]);
        assert!(e.contains("both set") && e.contains("set only one"), "{e}");
        let e = refusal(&[
            (AZURE_KUBERNETES_SNI_NAME, SNI),
            (AZURE_KUBERNETES_CA_FILE, "/ca.crt"),
        ]);
        assert!(
            e.contains("AZURE_KUBERNETES_SNI_NAME and AZURE_KUBERNETES_CA_FILE set but AZURE_KUBERNETES_TOKEN_PROXY is not"),
            "{e}"
        );
    }

    #[test]
    fn the_proxy_path_is_joined_with_the_authority_path() {
        let url = "https://login.microsoftonline.com/tenant/oauth2/v2.0/token";
        for (proxy, sni, joined) in [
            (
                "https://10.0.0.1",
                None,
                "https://10.0.0.1/tenant/oauth2/v2.0/token",
            ),
            (
                "https://10.0.0.1:8443/base/",
                None,
                "https://10.0.0.1:8443/base/tenant/oauth2/v2.0/token",
            ),
            (
                "https://10.0.0.1:8443/base",
                Some(SNI),
                "https://proxy.identity-binding.test:8443/base/tenant/oauth2/v2.0/token",
            ),
        ] {
            let mut pairs = vec![(AZURE_KUBERNETES_TOKEN_PROXY, proxy)];
            pairs.extend(sni.map(|s| (AZURE_KUBERNETES_SNI_NAME, s)));
            let b = binding(&pairs).unwrap().unwrap();
            assert_eq!(b.request_url(url), joined);
            assert_eq!(b.host_header().is_some(), sni.is_some());
        }
    }

    /// A pod's environment with a binding to `proxy` and the CA in `ca_file`.
    fn pod_env(dir: &Path, proxy: &str, ca_file: &Path) -> Vec<(String, String)> {
        let token = dir.join("token");
        std::fs::write(&token, "sa-token-binding").unwrap();
        [
            ("AZURE_TENANT_ID", TENANT.to_owned()),
            (
                "AZURE_CLIENT_ID",
                "00000000-0000-0000-0000-0000000000b1".to_owned(),
            ),
            ("AZURE_FEDERATED_TOKEN_FILE", token.display().to_string()),
            // Never reached: the proxy takes the request.
            ("AZURE_AUTHORITY_HOST", "https://127.0.0.1:9/".to_owned()),
            (AZURE_KUBERNETES_TOKEN_PROXY, proxy.to_owned()),
            (AZURE_KUBERNETES_SNI_NAME, SNI.to_owned()),
            (AZURE_KUBERNETES_CA_FILE, ca_file.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn credential(env: &[(String, String)], enable: bool) -> crate::Result<Arc<WorkloadIdentityCredential>> {
        WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            enable_azure_proxy: enable,
            credential_options: ClientAssertionCredentialOptions {
                env: Env::from_pairs(env.iter().cloned()),
                ..Default::default()
            },
            ..Default::default()
        }))
    }

    /// A token from the credential reading `env`, with the identity binding on or off (`enable`).
    async fn token_through(env: &[(String, String)], enable: bool) -> crate::Result<crate::AccessToken> {
        credential(env, enable).unwrap().get_token(&[SCOPE], None).await
    }

    /// Writes the CA bundle `ca` to `dir/ca.crt`; its path.
    fn write_ca(dir: &Path, ca: &str) -> std::path::PathBuf {
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, ca).unwrap();
        ca_file
    }

    /// Writes `pem` as the kubelet does: a new file, renamed over the old one.
    fn rotate(path: &Path, pem: &str) {
        let next = path.with_extension("next");
        std::fs::write(&next, pem).unwrap();
        std::fs::rename(&next, path).unwrap();
    }

    #[tokio::test]
    async fn the_exchange_goes_to_the_proxy_with_the_sni_name_and_only_its_ca() {
        let (proxy, ca) = TestServer::scripted_tls_for([Reply::token("at-bound", 3599)], &[SNI]).await;
        let dir = tempfile::tempdir().unwrap();
        let ca_file = write_ca(dir.path(), &ca);
        let env = pod_env(dir.path(), &format!("{}/binding", proxy.url()), &ca_file);
        let token = token_through(&env, true).await.unwrap();
        assert_eq!(token.token.secret(), "at-bound");
        let r = &proxy.requests()[0];
        assert_eq!(r.path(), format!("/binding/{TENANT}/oauth2/v2.0/token"));
        assert_eq!(r.sni.as_deref(), Some(SNI), "the server name sent");
        assert_eq!(r.header("host"), Some(proxy.addr().to_string().as_str()));
        let form = r.form();
        assert!(
            form.contains(&("client_assertion".into(), "sa-token-binding".into())),
            "{form:?}"
        );
        assert!(
            form.contains(&("grant_type".into(), "client_credentials".into())),
            "{form:?}"
        );
    }

    #[tokio::test]
    async fn without_the_opt_in_the_variables_are_ignored() {
        let (proxy, ca) = TestServer::scripted_tls_for([Reply::token("at", 3599)], &[SNI]).await;
        let dir = tempfile::tempdir().unwrap();
        let ca_file = write_ca(dir.path(), &ca);
        let mut env = pod_env(dir.path(), &proxy.url(), &ca_file);
        env.push((
            AZURE_KUBERNETES_CA_DATA.into(),
            "both set: refused only with the opt-in".into(),
        ));
        let e = token_through(&env, false).await.unwrap_err();
        assert!(
            e.to_string().contains("127.0.0.1:9"),
            "went to the authority: {e}"
        );
        assert_eq!(proxy.request_count(), 0);
        let e = credential(&env, true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn a_wrong_ca_or_server_name_is_refused_in_words() {
        let (proxy, _) = TestServer::scripted_tls_for([Reply::token("at", 3599)], &[SNI]).await;
        let (_, other_ca) = TestServer::scripted_tls_for([], &[SNI]).await;
        let dir = tempfile::tempdir().unwrap();
        let ca_file = write_ca(dir.path(), &other_ca);
        let env = pod_env(dir.path(), &proxy.url(), &ca_file);
        let e = token_through(&env, true).await.unwrap_err();
        let text = e.to_string();
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{text}");
        // Both test CAs have the same name: the proxy's certificate names the trusted one.
        assert!(text.contains("another CA of the same name issued it"), "{text}");
        assert!(
            text.contains(&format!("AZURE_KUBERNETES_CA_FILE={}", ca_file.display())),
            "{text}"
        );
        assert!(text.contains("AZURE_KUBERNETES_TOKEN_PROXY"), "{text}");
        assert_eq!(proxy.request_count(), 0);

        // The right CA, a server name the certificate does not name.
        let (proxy, ca) = TestServer::scripted_tls_for([Reply::token("at", 3599)], &["elsewhere.test"]).await;
        std::fs::write(&ca_file, &ca).unwrap();
        let env = pod_env(dir.path(), &proxy.url(), &ca_file);
        let e = token_through(&env, true).await.unwrap_err();
        assert!(
            e.to_string().contains("set AZURE_KUBERNETES_SNI_NAME to a name"),
            "{e}"
        );
        assert_eq!(proxy.request_count(), 0);
    }

    #[tokio::test]
    async fn a_rotated_ca_file_is_picked_up_and_a_half_written_one_ignored() {
        let (proxy, ca) =
            TestServer::scripted_tls_for([Reply::token("at-1", 3599), Reply::token("at-2", 3599)], &[SNI])
                .await;
        let (_, old_ca) = TestServer::scripted_tls_for([], &[SNI]).await;
        let dir = tempfile::tempdir().unwrap();
        let ca_file = write_ca(dir.path(), &old_ca);
        let credential = credential(&pod_env(dir.path(), &proxy.url(), &ca_file), true).unwrap();
        assert!(
            credential.get_token(&[SCOPE], None).await.is_err(),
            "the old CA does not sign the proxy's certificate"
        );
        rotate(&ca_file, &ca);
        let token = credential.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(token.token.secret(), "at-1");
        // Mid-rotation: empty, then gone. The CA in use stays.
        rotate(&ca_file, "");
        let token = credential
            .get_token(&["https://storage.azure.com/.default"], None)
            .await
            .unwrap();
        assert_eq!(token.token.secret(), "at-2");
        assert_eq!(proxy.request_count(), 2);
    }

    #[tokio::test]
    async fn the_ca_file_is_read_at_construction_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.crt");
        std::fs::write(&big, vec![b'a'; MAX_CA_FILE_BYTES as usize + 1]).unwrap();
        for (path, words) in [
            (dir.path().join("missing.crt"), "No such file"),
            (dir.path().to_path_buf(), "a directory"),
            (big, "larger than"),
        ] {
            let env = pod_env(dir.path(), "https://10.0.0.1", &path);
            let e = credential(&env, true).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(
                e.to_string().contains("AZURE_KUBERNETES_CA_FILE=") && e.to_string().contains(words),
                "{e}"
            );
        }
        let not_pem = dir.path().join("not.crt");
        std::fs::write(&not_pem, "hello").unwrap();
        let e = credential(&pod_env(dir.path(), "https://10.0.0.1", &not_pem), true).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }

    #[tokio::test]
    async fn platform_credential_uses_the_binding_the_webhook_injected() {
        let (proxy, ca) = TestServer::scripted_tls_for([Reply::token("at-platform", 3599)], &[SNI]).await;
        let dir = tempfile::tempdir().unwrap();
        let mut env = pod_env(dir.path(), &proxy.url(), Path::new("/unused"));
        env.retain(|(k, _)| k != AZURE_KUBERNETES_CA_FILE);
        env.push((AZURE_KUBERNETES_CA_DATA.into(), ca));
        let credential = PlatformCredential::new(Some(PlatformCredentialOptions {
            env: Env::from_pairs(env),
            ..Default::default()
        }))
        .unwrap();
        let token = credential.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(token.token.secret(), "at-platform");
        assert_eq!(proxy.requests()[0].sni.as_deref(), Some(SNI));
    }
}
