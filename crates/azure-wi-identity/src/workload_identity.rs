//! `WorkloadIdentityCredential`: a Kubernetes service-account token exchanged for a Microsoft
//! Entra token (AKS workload identity, or any cluster whose issuer Entra trusts).
//!
//! The workload identity webhook gives a labelled pod `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_FEDERATED_TOKEN_FILE` and `AZURE_AUTHORITY_HOST`; the options default to them.
//!
//! **Token file freshness.** The kubelet replaces the projected token (by an atomic symlink swap)
//! at 80% of its lifetime. This credential reads the file afresh for every exchange with Entra:
//! exchanges only happen on a cache miss or refresh (about once an hour per scope), so the read
//! costs nothing measurable, and the assertion sent is never stale (azure-identity re-reads
//! only every 10 minutes, which is how "AADSTS700024: Client assertion is not within its valid
//! time range" happens after a rotation).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;

use super::{
    AccessToken, Env, Error, Result, Secret, TokenCredential, TokenRequestOptions,
    bounded_file::{FileError, read_regular_file_async},
    client_assertion::{AssertionExchange, ClientAssertion, ClientAssertionCredentialOptions},
    identity_binding::{BindingTransport, IdentityBinding},
};

const CREDENTIAL: &str = "WorkloadIdentityCredential";
pub(crate) use crate::env_vars::AZURE_CLIENT_ID;
pub(crate) use crate::env_vars::AZURE_FEDERATED_TOKEN_FILE;
pub(crate) use crate::env_vars::AZURE_TENANT_ID;

/// Options of [`WorkloadIdentityCredential`]. Unset fields come from the environment.
///
/// As in the Azure SDK for Rust, the options of the client-assertion exchange underneath
/// (authority host, additionally allowed tenants, environment, timeouts, client options) are nested in
/// `credential_options`. Public fields and `Default`, as every options struct here: set the
/// fields you need and end with `..Default::default()`.
///
/// ```no_run
/// use azure_wi_identity::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
///
/// # fn run() -> azure_wi_identity::Result<()> {
/// let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
///     token_file_path: Some("/var/run/secrets/azure/tokens/azure-identity-token".into()),
///     ..Default::default()
/// }))?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct WorkloadIdentityCredentialOptions {
    /// The Microsoft Entra tenant. Default: `AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// The client id of the application or user-assigned managed identity federated with the
    /// service account. Default: `AZURE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// The projected service-account token. Default: `AZURE_FEDERATED_TOKEN_FILE`.
    pub token_file_path: Option<PathBuf>,
    /// Send the exchange through an AKS identity binding's token proxy when the webhook
    /// configured one (`AZURE_KUBERNETES_TOKEN_PROXY`, `AZURE_KUBERNETES_SNI_NAME`,
    /// `AZURE_KUBERNETES_CA_FILE` or `AZURE_KUBERNETES_CA_DATA`), as azure-identity's
    /// `enable_azure_proxy=True`. Default: `false`, the variables are ignored
    /// ([`PlatformCredential`](super::PlatformCredential) and the token proxy sidecar turn it on).
    pub enable_azure_proxy: bool,
    /// The options of the client-assertion exchange: the authority host (default
    /// `AZURE_AUTHORITY_HOST`, else the public cloud), additionally allowed tenants, where the
    /// variables are read (`env`, for this credential's variables too), the timeouts and the
    /// client options (transport and retries; with an identity binding only the retries).
    pub credential_options: ClientAssertionCredentialOptions,
}

/// Authenticates a Kubernetes workload with its projected service-account token.
///
/// ```no_run
/// use azure_wi_identity::{TokenCredential, WorkloadIdentityCredential};
///
/// # async fn run() -> azure_wi_identity::Result<()> {
/// // In a pod labelled `azure.workload.identity/use: "true"`:
/// let credential = WorkloadIdentityCredential::new(None)?;
/// let token = credential.get_token(&["https://storage.azure.com/.default"], None).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WorkloadIdentityCredential {
    exchange: Arc<AssertionExchange>,
    token_file: PathBuf,
}

/// Reads the token file for every exchange. `origin` names where the path came from: the
/// `token_file_path` option or `AZURE_FEDERATED_TOKEN_FILE`.
#[derive(Debug)]
struct TokenFile {
    path: PathBuf,
    origin: &'static str,
}

#[async_trait]
impl ClientAssertion for TokenFile {
    async fn assertion(&self) -> Result<Secret> {
        read_token_file(&self.path, self.origin).await
    }
}

/// How often a read that found no file is tried. The kubelet swaps the `..data` symlink to a new
/// directory and then removes the old one, so a read that resolved the old directory just before
/// its removal finds nothing although the new token is in place: reading again resolves the new
/// one. A file that is really missing fails every try.
const TOKEN_FILE_READS: usize = 3;

/// The largest token file read. A projected service-account token is a JWT of 1 to 2 KB (a few
/// KB with many audiences or a long issuer URL); 64 KiB is more than 30 times that, the same
/// bound as every HTTP answer the library reads, and small enough that a wrong path (`/dev/zero`,
/// a log file) costs nothing.
pub(crate) const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

async fn read_token_file(path: &Path, origin: &'static str) -> Result<Secret> {
    let mut read = read_bounded(path.to_owned()).await;
    for _ in 1..TOKEN_FILE_READS {
        match &read {
            Err(TokenFileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                tokio::task::yield_now().await;
                read = read_bounded(path.to_owned()).await;
            }
            _ => break,
        }
    }
    let where_ = format!("the federated token file {} (from {origin})", path.display());
    let contents = read.map_err(|e| match e {
        TokenFileError::Io(e) => Error::authentication_failed(
            CREDENTIAL,
            format!(
                "cannot read {where_}: {e}. It is the projected service-account token the workload \
                 identity webhook mounts; check that the pod's service account is annotated with \
                 azure.workload.identity/client-id and the pod is labelled \
                 azure.workload.identity/use: \"true\""
            ),
        )
        .with_source(e),
        TokenFileError::NotRegular(kind) => Error::authentication_failed(
            CREDENTIAL,
            format!(
                "{where_} is {kind}, not a regular file: point {origin} at the projected \
                 service-account token (a file of a few KB)"
            ),
        ),
        TokenFileError::TooLarge => Error::authentication_failed(
            CREDENTIAL,
            format!(
                "{where_} is larger than {MAX_TOKEN_FILE_BYTES} bytes, which no service-account token \
                 is: point {origin} at the projected service-account token"
            ),
        ),
        TokenFileError::NotText => Error::authentication_failed(
            CREDENTIAL,
            format!("{where_} is not UTF-8 text: point {origin} at the projected service-account token"),
        ),
    })?;
    let token = contents.trim();
    if token.is_empty() {
        return Err(Error::authentication_failed(
            CREDENTIAL,
            format!("{where_} is empty: the kubelet has not written the token yet"),
        ));
    }
    Ok(Secret::new(token))
}

/// Why the token file could not be read.
#[derive(Debug)]
enum TokenFileError {
    Io(std::io::Error),
    /// A directory, FIFO, socket or device: what it is, in words.
    NotRegular(&'static str),
    TooLarge,
    NotText,
}

/// Reads the file at `path` if it is a regular file of at most [`MAX_TOKEN_FILE_BYTES`] of text
/// ([`bounded_file`](super::bounded_file)).
async fn read_bounded(path: PathBuf) -> Result<String, TokenFileError> {
    let bytes = read_regular_file_async(path, MAX_TOKEN_FILE_BYTES)
        .await
        .map_err(|e| match e {
            FileError::Io(e) => TokenFileError::Io(e),
            FileError::NotRegular(kind) => TokenFileError::NotRegular(kind),
            FileError::TooLarge { .. } => TokenFileError::TooLarge,
        })?;
    String::from_utf8(bytes).map_err(|_| TokenFileError::NotText)
}

impl WorkloadIdentityCredential {
    /// A credential from `options`, each unset value taken from the environment. A value missing
    /// from both is [`ErrorKind::Unavailable`](super::ErrorKind::Unavailable), naming the variable.
    /// The token file is not read here but at every exchange.
    pub fn new(options: Option<WorkloadIdentityCredentialOptions>) -> Result<Arc<Self>> {
        let options = options.unwrap_or_default();
        let env = &options.credential_options.env;
        let from = |value: Option<String>, var: &str| {
            value
                .filter(|v| !v.trim().is_empty())
                .or_else(|| env.var(var))
                .ok_or_else(|| missing(var))
        };
        let tenant_origin = match options.tenant_id.as_deref().filter(|v| !v.trim().is_empty()) {
            Some(_) => "the tenant_id option",
            None => AZURE_TENANT_ID,
        };
        let tenant_id = from(options.tenant_id.clone(), AZURE_TENANT_ID)?;
        let client_id = from(options.client_id.clone(), AZURE_CLIENT_ID)?;
        let (token_file, token_file_origin) = match options
            .token_file_path
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(path) => (path, "the token_file_path option"),
            None => (
                PathBuf::from(from(None, AZURE_FEDERATED_TOKEN_FILE)?),
                AZURE_FEDERATED_TOKEN_FILE,
            ),
        };
        let binding = match options.enable_azure_proxy {
            true => IdentityBinding::from_env(env)
                .and_then(|b| b.map(BindingTransport::new).transpose())
                .map_err(|e| Error::invalid_input(CREDENTIAL, e.to_string()))?,
            false => None,
        };
        let mut exchange = AssertionExchange::new(
            CREDENTIAL,
            tenant_id,
            tenant_origin,
            client_id,
            Arc::new(TokenFile {
                path: token_file.clone(),
                origin: token_file_origin,
            }),
            options.credential_options,
        )?;
        if let Some(binding) = binding {
            exchange = exchange.with_binding(binding);
        }
        Ok(Arc::new(Self {
            exchange: Arc::new(exchange),
            token_file,
        }))
    }

    /// The token file this credential reads.
    pub fn token_file_path(&self) -> &Path {
        &self.token_file
    }

    /// Whether `env` holds everything the credential needs without options: `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE` (what the webhook injects).
    pub fn is_configured(env: &Env) -> bool {
        [AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE]
            .iter()
            .all(|v| env.is_set(v))
    }
}

fn missing(var: &str) -> Error {
    Error::unavailable(
        CREDENTIAL,
        format!(
            "{var} is not set. The workload identity webhook sets AZURE_TENANT_ID, AZURE_CLIENT_ID, \
             AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST in pods labelled \
             azure.workload.identity/use: \"true\" whose service account is annotated with \
             azure.workload.identity/client-id; otherwise set {var} or pass the option"
        ),
    )
}

#[async_trait]
impl TokenCredential for WorkloadIdentityCredential {
    async fn get_token(&self, scopes: &[&str], options: Option<TokenRequestOptions>) -> Result<AccessToken> {
        self.exchange.get_token(scopes, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ErrorKind,
        test_server::{Reply, TestServer},
    };

    const SCOPE: &str = "https://storage.azure.com/.default";

    fn env(server: &TestServer, file: &Path) -> Env {
        Env::from_pairs([
            (AZURE_TENANT_ID, "tenant-a".to_owned()),
            (AZURE_CLIENT_ID, "client-a".to_owned()),
            (AZURE_FEDERATED_TOKEN_FILE, file.display().to_string()),
            ("AZURE_AUTHORITY_HOST", format!("{}/", server.url())),
        ])
    }

    fn form_value(server: &TestServer, i: usize, key: &str) -> Option<String> {
        server.requests()[i]
            .form()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[tokio::test]
    async fn defaults_come_from_the_webhook_variables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("azure-identity-token");
        std::fs::write(&file, "sa-token-1\n").unwrap();
        let server = TestServer::scripted([Reply::token("at", 3599)]).await;
        let options = WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                env: env(&server, &file),
                ..Default::default()
            },
            ..Default::default()
        };
        let cred = WorkloadIdentityCredential::new(Some(options)).unwrap();
        assert_eq!(cred.token_file_path(), file);
        cred.get_token(&[SCOPE], None).await.unwrap();
        let r = &server.requests()[0];
        assert_eq!(
            r.target, "/tenant-a/oauth2/v2.0/token",
            "trailing / of AZURE_AUTHORITY_HOST stripped"
        );
        assert_eq!(
            form_value(&server, 0, "client_assertion").as_deref(),
            Some("sa-token-1")
        );
        assert_eq!(form_value(&server, 0, "client_id").as_deref(), Some("client-a"));
    }

    #[tokio::test]
    async fn options_override_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("other");
        std::fs::write(&file, "sa-token-x").unwrap();
        let server = TestServer::scripted([Reply::token("at", 3599)]).await;
        let options = WorkloadIdentityCredentialOptions {
            tenant_id: Some("tenant-b".into()),
            client_id: Some("client-b".into()),
            token_file_path: Some(file),
            credential_options: ClientAssertionCredentialOptions {
                authority_host: Some(server.url()),
                env: Env::from_pairs([("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us")]),
                ..Default::default()
            },
            ..Default::default()
        };
        let cred = WorkloadIdentityCredential::new(Some(options)).unwrap();
        cred.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(server.requests()[0].path(), "/tenant-b/oauth2/v2.0/token");
        assert_eq!(form_value(&server, 0, "client_id").as_deref(), Some("client-b"));
        assert_eq!(
            form_value(&server, 0, "client_assertion").as_deref(),
            Some("sa-token-x")
        );
    }

    #[test]
    fn missing_variables_are_unavailable_and_named() {
        let full = [
            (AZURE_TENANT_ID, "t"),
            (AZURE_CLIENT_ID, "c"),
            (
                AZURE_FEDERATED_TOKEN_FILE,
                "/var/run/secrets/azure/tokens/azure-identity-token",
            ),
        ];
        for skip in 0..3 {
            let env = Env::from_pairs(
                full.iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip)
                    .map(|(_, kv)| *kv),
            );
            assert!(!WorkloadIdentityCredential::is_configured(&env));
            let e = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    env,
                    ..Default::default()
                },
                ..Default::default()
            }))
            .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unavailable);
            assert!(e.to_string().contains(full[skip].0), "{e}");
            assert!(e.to_string().contains("azure.workload.identity/use"), "{e}");
        }
        assert!(WorkloadIdentityCredential::is_configured(&Env::from_pairs(full)));
    }

    #[tokio::test]
    async fn malformed_tenant_never_reaches_the_network() {
        let server = TestServer::scripted([]).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, "x").unwrap();
        let options = WorkloadIdentityCredentialOptions {
            tenant_id: Some("bad/tenant?x".into()),
            credential_options: ClientAssertionCredentialOptions {
                env: env(&server, &file),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = WorkloadIdentityCredential::new(Some(options)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(server.request_count(), 0);
    }

    #[tokio::test]
    async fn missing_or_empty_token_file_is_a_clear_error() {
        let server = TestServer::scripted([]).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("azure-identity-token");
        let cred = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                env: env(&server, &file),
                ..Default::default()
            },
            ..Default::default()
        }))
        .unwrap();
        let e = cred.get_token(&[SCOPE], None).await.unwrap_err();
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");
        std::fs::write(&file, " \n").unwrap();
        let e = cred.get_token(&[SCOPE], None).await.unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        assert_eq!(server.request_count(), 0);
    }

    /// The kubelet's layout: `token -> ..data/token`, `..data -> ..<timestamp>`, and a rotation
    /// swaps `..data` atomically with a rename.
    #[cfg(unix)]
    #[tokio::test]
    async fn rotated_token_file_is_used_by_the_next_exchange() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let write_version = |name: &str, token: &str| {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("token"), token).unwrap();
            symlink(name, dir.path().join("..data_tmp")).unwrap();
            std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        };
        write_version("..2026_11_26_12_00_00.1", "sa-token-1");
        symlink("..data/token", dir.path().join("token")).unwrap();
        let file = dir.path().join("token");

        let server = TestServer::with_handler(|_| Reply::token("at", 3599)).await;
        let cred = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                env: env(&server, &file),
                ..Default::default()
            },
            ..Default::default()
        }))
        .unwrap();
        cred.get_token(&["a/.default"], None).await.unwrap();
        write_version("..2026_11_26_12_48_00.2", "sa-token-2");
        cred.get_token(&["b/.default"], None).await.unwrap();
        assert_eq!(
            form_value(&server, 0, "client_assertion").as_deref(),
            Some("sa-token-1")
        );
        assert_eq!(
            form_value(&server, 1, "client_assertion").as_deref(),
            Some("sa-token-2")
        );
    }

    /// Issue 15 item 8: `/dev/zero` was read until the OOM killer came, a FIFO hung forever, a
    /// 100 MB file was read and sent. Each is refused before anything is sent, naming the
    /// variable and the path, and nothing blocks.
    #[cfg(unix)]
    #[tokio::test]
    async fn hostile_token_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success(), "mkfifo");
        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(100 * 1024 * 1024)
            .unwrap();
        let just_over = dir.path().join("just-over");
        std::fs::write(&just_over, "a".repeat(MAX_TOKEN_FILE_BYTES as usize + 1)).unwrap();
        let at_bound = dir.path().join("at-bound");
        std::fs::write(&at_bound, "a".repeat(MAX_TOKEN_FILE_BYTES as usize)).unwrap();
        let link_to_zero = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link_to_zero).unwrap();
        let server = TestServer::with_handler(|_| Reply::token("at", 3599)).await;
        for (file, expected) in [
            (fifo.clone(), "FIFO"),
            (PathBuf::from("/dev/zero"), "device"),
            (link_to_zero, "device"),
            (dir.path().to_owned(), "directory"),
            (big, "larger than 65536 bytes"),
            (just_over, "larger than 65536 bytes"),
        ] {
            let cred = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    env: env(&server, &file),
                    ..Default::default()
                },
                ..Default::default()
            }))
            .unwrap();
            let e = tokio::time::timeout(std::time::Duration::from_secs(10), cred.get_token(&[SCOPE], None))
                .await
                .unwrap_or_else(|_| panic!("{} blocked", file.display()))
                .unwrap_err();
            let m = e.to_string();
            assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{m}");
            assert!(
                m.contains(expected)
                    && m.contains(AZURE_FEDERATED_TOKEN_FILE)
                    && m.contains(&file.display().to_string()),
                "{m}"
            );
        }
        assert_eq!(server.request_count(), 0);
        // The option names itself instead of the variable.
        let cred = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            token_file_path: Some(fifo),
            credential_options: ClientAssertionCredentialOptions {
                env: env(&server, &at_bound),
                ..Default::default()
            },
            ..Default::default()
        }))
        .unwrap();
        let e = cred.get_token(&[SCOPE], None).await.unwrap_err();
        assert!(e.to_string().contains("token_file_path option"), "{e}");
        // A file of exactly the bound is read and sent.
        let cred = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                env: env(&server, &at_bound),
                ..Default::default()
            },
            ..Default::default()
        }))
        .unwrap();
        cred.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(
            form_value(&server, 0, "client_assertion").map(|a| a.len()),
            Some(MAX_TOKEN_FILE_BYTES as usize)
        );
    }

    /// Issue 15 item 12, end to end: `.`, `..` and a 10,000-character tenant never reach the
    /// network, and the error names the variable.
    #[tokio::test]
    async fn dot_and_overlong_tenants_never_reach_the_network() {
        let server = TestServer::scripted([]).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, "x").unwrap();
        let huge = "a".repeat(10_000);
        for tenant in [".", "..", huge.as_str()] {
            let env = Env::from_pairs([
                (AZURE_TENANT_ID, tenant.to_owned()),
                (AZURE_CLIENT_ID, "c".to_owned()),
                (AZURE_FEDERATED_TOKEN_FILE, file.display().to_string()),
                ("AZURE_AUTHORITY_HOST", server.url()),
            ]);
            let e = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    env: env.clone(),
                    ..Default::default()
                },
                ..Default::default()
            }))
            .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains(AZURE_TENANT_ID), "{e}");
            let e = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                tenant_id: Some(tenant.to_owned()),
                credential_options: ClientAssertionCredentialOptions {
                    env,
                    ..Default::default()
                },
                ..Default::default()
            }))
            .unwrap_err();
            assert!(e.to_string().contains("tenant_id option"), "{e}");
            // As a per-request tenant too.
            let env = Env::from_pairs([
                (AZURE_TENANT_ID, "tenant-a".to_owned()),
                (AZURE_CLIENT_ID, "c".to_owned()),
                (AZURE_FEDERATED_TOKEN_FILE, file.display().to_string()),
                ("AZURE_AUTHORITY_HOST", server.url()),
            ]);
            let cred = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    additionally_allowed_tenants: vec!["*".into()],
                    env,
                    ..Default::default()
                },
                ..Default::default()
            }))
            .unwrap();
            let request = TokenRequestOptions {
                tenant_id: Some(tenant.to_owned()),
                ..Default::default()
            };
            let e = cred.get_token(&[SCOPE], Some(request)).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains("request's tenant_id option"), "{e}");
        }
        assert_eq!(server.request_count(), 0);
    }
}
