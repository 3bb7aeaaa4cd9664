//! A real Kubernetes control plane on loopback: etcd and kube-apiserver (built from the Go module
//! proxy by `scripts/testbed/build`), with TLS, a service-account issuer and signing key, the
//! `MutatingAdmissionWebhook` plugin, RBAC and an admin kubeconfig. There is no kubelet: pods are
//! admitted and stored, never run.
//!
//! `TestBed::shared()` starts one control plane per test binary (tests use their own namespaces);
//! `TestBed::start()` starts a private one for tests that stop and restart it.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Config,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
};
use tokio::sync::OnceCell;

use super::{
    pki::{self, CertAndKey, Pki},
    process::{Process, free_port},
};

/// The audience of the service-account tokens that Microsoft Entra accepts.
pub const ENTRA_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The pinned binary versions, shared with `scripts/testbed/build`.
const VERSIONS: &str = include_str!("../../../../scripts/testbed/versions");

/// Where `scripts/testbed/build` puts `name` (`kube-apiserver`, `etcd` or `helm`); panics with
/// the command that builds it when it is missing.
pub fn binary(name: &str) -> PathBuf {
    let key = match name {
        "kube-apiserver" => "K8S_VERSION",
        "etcd" => "ETCD_VERSION",
        "helm" => "HELM_VERSION",
        other => panic!("unknown test bed binary {other}"),
    };
    let version = VERSIONS
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .unwrap_or_else(|| panic!("{key} missing from scripts/testbed/versions"));
    let cache = std::env::var_os("AZWI_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/azure-wi"));
    let path = cache.join(format!("testbed/{name}-{version}/{name}"));
    assert!(
        path.is_file(),
        "the end-to-end tests need {name} {version} at {}, which is missing.\n\
         Build it once (cached afterwards) with:\n    scripts/testbed/build\n\
         (scripts/test does this for you)",
        path.display()
    );
    path
}

/// A running etcd + kube-apiserver pair and everything a client needs to talk to it.
pub struct TestBed {
    /// The API server's URL, e.g. `https://127.0.0.1:40123`; also the service-account issuer.
    pub url: String,
    /// The CA that signed every certificate of the test bed (PEM).
    pub ca_pem: String,
    /// The CA as a file, for `SSL_CERT_FILE` and kubeconfigs.
    pub ca_file: PathBuf,
    /// An admin kubeconfig (client certificate in `system:masters`).
    pub kubeconfig: PathBuf,
    /// The directory holding the test bed's files (certificates, logs, etcd data).
    pub dir: PathBuf,
    pki: Pki,
    apiserver: std::sync::Mutex<Option<Process>>,
    apiserver_command: Vec<String>,
    apiserver_env: Vec<(String, String)>,
    _etcd: Process,
}

static SHARED: OnceCell<TestBed> = OnceCell::const_new();

impl TestBed {
    /// The control plane shared by every test of this test binary, started on first use.
    pub async fn shared() -> &'static TestBed {
        SHARED.get_or_init(TestBed::start).await
    }

    /// Starts a new control plane in a fresh temporary directory.
    pub async fn start() -> TestBed {
        TestBed::start_with_env(&[]).await
    }

    /// Starts a new control plane whose API server has `env` in its environment (e.g.
    /// `HTTPS_PROXY`, through which it then calls webhooks).
    pub async fn start_with_env(env: &[(&str, &str)]) -> TestBed {
        TestBed::start_with(env, &[]).await
    }

    /// Starts a new control plane whose API server has `env` in its environment and `args` added
    /// to its flags (e.g. `--audit-policy-file=...`).
    pub async fn start_with(env: &[(&str, &str)], args: &[String]) -> TestBed {
        TestBed::start_inner(env, args, None).await
    }

    /// Starts a control plane for a node (`tests/e2e_node.rs`): the API server binds `host`
    /// (the host side of the node's veth pair, which pods reach) instead of loopback, advertises
    /// it as the `kubernetes` Service's endpoint, admits pods with the ServiceAccount plugin (the
    /// node's kube-controller-manager creates the accounts and the root CA ConfigMap), and calls
    /// webhooks at their endpoint pods' IPs (`--enable-aggregator-routing`).
    pub async fn start_for_node(host: Ipv4Addr) -> TestBed {
        TestBed::start_inner(&[], &[], Some(host)).await
    }

    async fn start_inner(env: &[(&str, &str)], args: &[String], node_host: Option<Ipv4Addr>) -> TestBed {
        let apiserver_env: Vec<(String, String)> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new()
            .prefix("azwi-e2e-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let pki = Pki::new();
        let ca_pem = pki.ca_pem();
        let ca_file = write(&dir, "ca.crt", &ca_pem);

        let etcd_port = free_port();
        let etcd = start_etcd(&dir, etcd_port);

        let port = free_port();
        let host = node_host.unwrap_or(Ipv4Addr::LOCALHOST);
        let url = format!("https://{host}:{port}");
        let serving = match node_host {
            None => pki.server_cert("kube-apiserver"),
            // Pods reach it as kubernetes.default (the Service's first IP of 10.96.0.0/16).
            Some(host) => pki.server_cert_for(
                "kube-apiserver",
                &["kubernetes", "kubernetes.default", "kubernetes.default.svc"],
                &[IpAddr::V4(host), IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1))],
            ),
        };
        let admin = pki.client_cert("azwi-e2e-admin", "system:masters");
        let (sa_key, sa_pub) = pki::service_account_signing_key();
        let f = |name: &str, text: &str| write(&dir, name, text).display().to_string();
        let apiserver_command = vec![
            binary("kube-apiserver").display().to_string(),
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            format!("--bind-address={host}"),
            format!("--advertise-address={host}"),
            format!("--secure-port={port}"),
            format!("--tls-cert-file={}", f("apiserver.crt", &serving.cert_pem)),
            format!("--tls-private-key-file={}", f("apiserver.key", &serving.key_pem)),
            format!("--client-ca-file={}", ca_file.display()),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            format!("--service-account-issuer={url}"),
            format!("--service-account-key-file={}", f("sa.pub", &sa_pub)),
            format!("--service-account-signing-key-file={}", f("sa.key", &sa_key)),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--authorization-mode=RBAC".into(),
            // As every real cluster: the proxy-init container needs privileges.
            "--allow-privileged=true".into(),
            "--enable-admission-plugins=MutatingAdmissionWebhook".into(),
            "--profiling=false".into(),
            "--v=1".into(),
        ]
        .into_iter()
        .chain(match node_host {
            None => vec![
                // The "kubernetes" Service endpoints cannot point at loopback; nothing here needs them.
                "--endpoint-reconciler-type=none".to_string(),
                // No token controller runs here, so the ServiceAccount plugin would reject every pod
                // (it requires the `default` ServiceAccount and mounts its token); the tests create
                // the ServiceAccounts they name and the webhook itself denies a missing one.
                "--disable-admission-plugins=ServiceAccount".to_string(),
            ],
            Some(_) => vec![
                "--enable-aggregator-routing=true".to_string(),
                // No cluster DNS: reach the kubelet (logs, exec) at the node's address.
                "--kubelet-preferred-address-types=InternalIP".to_string(),
            ],
        })
        .chain(args.iter().cloned())
        .collect::<Vec<String>>();
        let kubeconfig = write(
            &dir,
            "kubeconfig",
            &kubeconfig_yaml(&url, &ca_pem, &admin.cert_pem, &admin.key_pem),
        );
        let apiserver = spawn_apiserver(&apiserver_command, &apiserver_env, &dir);
        let bed = TestBed {
            url,
            ca_pem,
            ca_file,
            kubeconfig,
            dir,
            pki,
            apiserver: std::sync::Mutex::new(Some(apiserver)),
            apiserver_command,
            apiserver_env,
            _etcd: etcd,
        };
        bed.wait_ready().await;
        bed.allow_anonymous_oidc_discovery().await;
        bed
    }

    /// A new admin client (one per test: a client belongs to the runtime that created it).
    pub async fn client(&self) -> Client {
        self.try_client()
            .await
            .expect("kube client from the test bed's kubeconfig")
    }

    async fn try_client(&self) -> Result<Client, Box<dyn std::error::Error>> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// Writes a kubeconfig for the user of a client certificate issued by [`Pki::client_cert`]
    /// (e.g. one with narrower RBAC than the admin) and returns its path.
    pub fn kubeconfig_for(&self, name: &str, cert: &CertAndKey) -> PathBuf {
        write(
            &self.dir,
            &format!("kubeconfig-{name}"),
            &kubeconfig_yaml(&self.url, &self.ca_pem, &cert.cert_pem, &cert.key_pem),
        )
    }

    /// The test bed's CA, for issuing serving certificates to test servers.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// Creates a namespace with a unique name starting with `prefix` and returns its name.
    pub async fn namespace(&self, prefix: &str) -> String {
        let api: Api<Namespace> = Api::all(self.client().await);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "generateName": format!("{prefix}-") }
        }))
        .expect("namespace");
        let created = api
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        created.metadata.name.expect("namespace name")
    }

    /// Stops the API server abruptly (SIGKILL, like a crash or a lost control plane; a graceful
    /// SIGTERM waits up to a minute for open watches) and waits for it to exit; etcd keeps running.
    pub fn stop_apiserver(&self) {
        if let Some(mut p) = self.apiserver.lock().expect("apiserver lock").take() {
            p.stop("KILL");
        }
    }

    /// Starts the API server again with the same flags and waits until it is ready.
    pub async fn restart_apiserver(&self) {
        self.stop_apiserver();
        *self.apiserver.lock().expect("apiserver lock") = Some(spawn_apiserver(
            &self.apiserver_command,
            &self.apiserver_env,
            &self.dir,
        ));
        self.wait_ready().await;
    }

    /// Waits until `/readyz` answers `ok` (every post-start hook, RBAC bootstrap included).
    async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok(client) = self.try_client().await {
                let req = axum::http::Request::get("/readyz")
                    .body(Vec::new())
                    .expect("readyz request");
                if let Ok(body) = client.request_text(req).await
                    && body.trim() == "ok"
                {
                    return;
                }
            }
            self.assert_apiserver_running(started);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn assert_apiserver_running(&self, started: Instant) {
        let mut guard = self.apiserver.lock().expect("apiserver lock");
        let apiserver = guard.as_mut().expect("apiserver running");
        apiserver.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "kube-apiserver not ready after 120 s; its log:\n{}",
            apiserver.log_tail()
        );
    }

    /// Lets unauthenticated clients read the OIDC discovery document and JWKS, as a cluster whose
    /// issuer Microsoft Entra must reach does.
    async fn allow_anonymous_oidc_discovery(&self) {
        use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
        let api: Api<ClusterRoleBinding> = Api::all(self.client().await);
        let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "azwi-e2e-anonymous-oidc-discovery" },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:service-account-issuer-discovery"
            },
            "subjects": [{
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Group",
                "name": "system:unauthenticated"
            }]
        }))
        .expect("cluster role binding");
        match api.create(&PostParams::default(), &binding).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("create {}: {e}", "azwi-e2e-anonymous-oidc-discovery"),
        }
    }
}

fn start_etcd(dir: &Path, port: u16) -> Process {
    let peer = free_port();
    let mut cmd = Command::new(binary("etcd"));
    cmd.args([
        "--name=e2e".to_string(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls=http://127.0.0.1:{port}"),
        format!("--advertise-client-urls=http://127.0.0.1:{port}"),
        format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-cluster=e2e=http://127.0.0.1:{peer}"),
        "--unsafe-no-fsync".into(),
        "--log-level=warn".into(),
    ]);
    Process::spawn("etcd", cmd, &dir.join("etcd.log"), Some(dir))
}

fn spawn_apiserver(command: &[String], env: &[(String, String)], dir: &Path) -> Process {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]).envs(env.iter().map(|(k, v)| (k, v)));
    Process::spawn("kube-apiserver", cmd, &dir.join("kube-apiserver.log"), None)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

fn kubeconfig_yaml(url: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "e2e", "cluster": {
            "server": url, "certificate-authority-data": b64(ca_pem) } }],
        "users": [{ "name": "admin", "user": {
            "client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem) } }],
        "contexts": [{ "name": "e2e", "context": { "cluster": "e2e", "user": "admin" } }],
        "current-context": "e2e",
        "preferences": BTreeMap::<String, String>::new(),
    });
    // JSON is valid YAML, and every kubeconfig reader accepts it.
    serde_json::to_string_pretty(&config).expect("kubeconfig json")
}
