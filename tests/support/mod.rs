//! Helpers shared by the integration tests: running the binary, local servers, webhook fixtures.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use azure_wi_test_support::recording_server as test_server;

use std::process::Output;

/// Runs `azure-wi` with exactly `env` (the process environment is cleared) and `args`.
pub async fn run_azure_wi(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_azure-wi"));
    command.env_clear().args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().await.expect("azure-wi runs")
}

/// The JSON object on the last line of stderr.
pub fn last_stderr_json(output: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_else(|| panic!("empty stderr"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last stderr line is not JSON ({e}): {stderr}"))
}

/// Sends SIGTERM to `child` (the graceful stop Kubernetes sends).
pub fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// SIGTERM, then the process must exit successfully.
pub fn terminate(child: &mut std::process::Child) {
    sigterm(child);
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exited with {exit}");
}

/// `azure-wi token` with the Azure Pipelines credential (tenant `t-p`, client `c-p`, service
/// connection `sc-9`) for `scope`.
pub fn pipelines_args(scope: &str) -> [&str; 10] {
    [
        "token",
        "--credential",
        "azure-pipelines",
        "--tenant-id",
        "t-p",
        "--client-id",
        "c-p",
        "--service-connection-id",
        "sc-9",
        scope,
    ]
}

/// An Azure Pipelines job's environment: the OIDC endpoint `oidc_uri`, the job's
/// `SYSTEM_ACCESSTOKEN`, and Microsoft Entra at `authority`.
pub fn pipelines_env(oidc_uri: String, access_token: &str, authority: String) -> Vec<(&'static str, String)> {
    vec![
        ("SYSTEM_OIDCREQUESTURI", oidc_uri),
        ("SYSTEM_ACCESSTOKEN", access_token.to_owned()),
        ("AZURE_AUTHORITY_HOST", authority),
    ]
}

/// Panics unless `output` is a success, naming `what` and quoting its stderr.
pub fn assert_succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs the interpreter `python` with exactly `env` (the process environment is cleared) and
/// `args`; panics unless it succeeds (naming `what`); the JSON object it printed.
pub async fn run_python(
    python: &std::path::Path,
    args: &[&str],
    env: &[(&str, String)],
    what: &str,
) -> serde_json::Value {
    let mut command = tokio::process::Command::new(python);
    command.env_clear().args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().await.expect("python runs");
    assert_succeeded(&output, what);
    stdout_json(&output)
}

/// The JSON object printed on stdout.
pub fn stdout_json(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The Python interpreter of the venv with azure-identity (`scripts/test.d/20-python-clients.sh`,
/// run here when the venv is missing; the test fails when it cannot be installed).
pub fn python_with_azure_identity() -> std::path::PathBuf {
    let cache = std::env::var_os("AZWI_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/azure-wi")
        });
    let python = cache.join("python-clients/bin/python");
    if !python.exists() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test.d/20-python-clients.sh");
        let status = std::process::Command::new("bash")
            .arg(script)
            .status()
            .expect("bash runs");
        assert!(
            status.success(),
            "{script} failed: Python azure-identity is required for this test"
        );
    }
    assert!(
        python.exists(),
        "{} is missing after the install script",
        python.display()
    );
    python
}

// --- webhook fixtures ---

use std::collections::BTreeMap;

use azure_wi_core::{
    Config, ConfigArgs, Denial,
    config::NativeSidecar,
    mutation::{ServiceAccount, mutate_with},
};
use json_patch::PatchOperation;
use serde_json::{Value, json};

/// The identity header the tests pass in place of a random one.
pub const FIXED_HEADER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The client id on the fixture ServiceAccount.
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";

/// The webhook's configured tenant.
pub const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

/// Mutation settings as a cluster would give them.
pub fn args() -> ConfigArgs {
    ConfigArgs {
        tenant_id: Some(TENANT.into()),
        audience: "api://AzureADTokenExchange".into(),
        log_level: "info".into(),
        ..ConfigArgs::default()
    }
}

/// The default configuration (classic sidecar).
pub fn config() -> Config {
    args().into_config(None).unwrap()
}

/// The configuration with native sidecars.
pub fn native_config() -> Config {
    ConfigArgs {
        native_sidecar: NativeSidecar::True,
        ..args()
    }
    .into_config(None)
    .unwrap()
}

/// A ServiceAccount with the given annotations.
pub fn service_account(annotations: &[(&str, &str)]) -> ServiceAccount {
    ServiceAccount {
        name: "workload".into(),
        annotations: annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// The usual ServiceAccount: a client id.
pub fn sa() -> ServiceAccount {
    service_account(&[("azure.workload.identity/client-id", CLIENT_ID)])
}

/// A labelled pod with one container.
pub fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "demo",
            "namespace": "apps",
            "labels": {"azure.workload.identity/use": "true"},
        },
        "spec": {
            "serviceAccountName": "workload",
            "containers": [{"name": "app", "image": "busybox"}],
        },
    })
}

/// Mutates with a fixed identity header; panics when no header was needed but one was asked for
/// is not checked here (see the identity tests).
pub fn mutate(pod: &Value, sa: &ServiceAccount, config: &Config) -> Result<Vec<PatchOperation>, Denial> {
    mutate_with(pod, "apps", sa, config, &|| Ok(FIXED_HEADER.to_owned()))
}

/// Applies a patch to a copy of the pod.
pub fn apply(pod: &Value, ops: &[PatchOperation]) -> Value {
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, ops).expect("the webhook's patch applies to its input");
    patched
}

/// Mutates and applies; panics on a denial.
pub fn mutated(pod: &Value, sa: &ServiceAccount, config: &Config) -> Value {
    let ops = mutate(pod, sa, config).unwrap_or_else(|denial| panic!("denied: {denial}"));
    apply(pod, &ops)
}

/// The denial message for a pod.
pub fn denial(pod: &Value, sa: &ServiceAccount, config: &Config) -> Denial {
    mutate(pod, sa, config).expect_err("the pod should be denied")
}

/// A container by list and name.
pub fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod["spec"][list]
        .as_array()
        .and_then(|containers| containers.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {list} named {name} in {pod:#}"))
}

/// The container's env as (name, value) pairs, values `None` for valueFrom.
pub fn env(container: &Value) -> Vec<(String, Option<String>)> {
    container["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|var| {
                    (
                        var["name"].as_str().unwrap().to_owned(),
                        var["value"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The env variable names, in order.
pub fn env_names(container: &Value) -> Vec<String> {
    env(container).into_iter().map(|(name, _)| name).collect()
}

/// The value of one env variable.
pub fn env_value(container: &Value, name: &str) -> Option<String> {
    env(container)
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, value)| value)
}

// --- the webhook as a process, offline ---

/// Files for running `azure-wi webhook` without an API server: a serving certificate for the
/// upstream Service name in `certs/` and a ServiceAccount list (`web` in `team-a`, with a client
/// id) for `--service-account-file`. Dropping it removes the files.
pub struct OfflineWebhook {
    /// Holds `certs/` and `serviceaccounts.json`.
    pub dir: tempfile::TempDir,
    /// The serving certificate and its CA, to trust it from a client.
    pub bundle: azure_wi::webhook::certs::CertBundle,
}

impl OfflineWebhook {
    /// Writes the certificate and the ServiceAccount list.
    pub fn new() -> Self {
        use azure_wi::webhook::certs::{CertBundle, CertNames};
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        let bundle = CertBundle::generate(
            &CertNames::upstream("azure-workload-identity-system").dns_names(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        std::fs::write(certs.join("tls.crt"), &bundle.cert_pem).unwrap();
        std::fs::write(certs.join("tls.key"), &bundle.key_pem).unwrap();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [{
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "web", "namespace": "team-a",
                "annotations": {"azure.workload.identity/client-id": "0000aaaa-0000-0000-0000-000000000000"}}
        }]});
        std::fs::write(
            dir.path().join("serviceaccounts.json"),
            serde_json::to_vec(&list).unwrap(),
        )
        .unwrap();
        Self { dir, bundle }
    }

    /// `azure-wi webhook` on ephemeral loopback ports serving these files at `log_level`, with
    /// stdin and stdout closed and stderr (the JSON log) piped.
    pub fn command(&self, log_level: &str) -> std::process::Command {
        use std::process::Stdio;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_azure-wi"));
        command
            .args(["webhook", "--webhook-host", "127.0.0.1", "--webhook-port", "0"])
            .args(["--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .args(["--log-level", log_level])
            .arg("--webhook-cert-dir")
            .arg(self.dir.path().join("certs"))
            .arg("--service-account-file")
            .arg(self.dir.path().join("serviceaccounts.json"))
            .env("AZURE_TENANT_ID", "11111111-1111-1111-1111-111111111111")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// A rustls client configuration that trusts this certificate's CA (ring provider).
    pub fn tls_config(&self) -> rustls::ClientConfig {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.bundle.ca_cert_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
    }

    /// An HTTPS client that trusts this certificate's CA and reaches the webhook at `addr` under
    /// the service name the certificate was issued for ([`OfflineWebhook::HOST`]).
    pub fn client(&self, addr: std::net::SocketAddr) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_backend_preconfigured(self.tls_config())
            .resolve(Self::HOST, addr)
            .no_proxy()
            .build()
            .unwrap()
    }

    /// Waits (up to 10 s) until the health server at `health` answers `/readyz` with 200.
    pub async fn wait_ready(health: std::net::SocketAddr) {
        let plain = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut ready = false;
        for _ in 0..500 {
            if plain
                .get(format!("http://{health}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                ready = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(ready, "/readyz never became ready");
    }

    /// The mutation URL of the webhook at `addr`.
    pub fn mutate_url(addr: std::net::SocketAddr) -> String {
        format!("https://{}:{}/mutate-v1-pod", Self::HOST, addr.port())
    }

    /// The address named `name` (`webhook`, `health`, `metrics`) in the webhook's `listening` log
    /// record, a top-level field of the flat JSON line.
    pub fn listening_addr(listening: &serde_json::Value, name: &str) -> std::net::SocketAddr {
        listening[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {listening}"))
            .parse()
            .unwrap()
    }

    /// The webhook service name the certificate is issued for.
    pub const HOST: &str = "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc";
}
