//! Upstream's webhook (Azure/azure-workload-identity `cmd/webhook`, v1.6.0), the real binary, built
//! from the Go module proxy by `scripts/bench/upstream-webhook` (cached under `$AZWI_CACHE/bin`),
//! run next to the test bed as a replica of upstream's Deployment would: its own certificate
//! rotation writes the Secret and the `caBundle`, and the serving certificate files are copied from
//! the Secret into its certificate directory, as the kubelet mounts them.

use std::{path::PathBuf, process::Command, time::Duration};

use super::{
    process::{Process, free_port},
    testbed::TestBed,
    webhook::TENANT,
};

/// Upstream's webhook port: controller-runtime's default, not configurable by a flag.
pub const PORT: u16 = 9443;

/// One upstream webhook at a time per test binary (they all need port 9443): a test holds this
/// for as long as it runs upstream's webhook.
pub async fn port_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The upstream webhook binary: built (once) by `scripts/bench/upstream-webhook`; panics with its
/// output when that fails (it needs Go and the Go module proxy).
pub fn binary() -> PathBuf {
    let script = super::repo().join("scripts/bench/upstream-webhook");
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed (it builds upstream's webhook with Go from the Go module proxy):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.is_file(), "{} printed no binary path", script.display());
    path
}

/// A running upstream webhook with its certificate rotation on.
pub struct UpstreamWebhook {
    /// The plain-HTTP port of `/healthz` and `/readyz`.
    pub health_port: u16,
    /// Where it reads `tls.crt` / `tls.key` (what the kubelet would mount from the Secret).
    pub cert_dir: PathBuf,
    /// The process.
    pub process: Process,
}

impl UpstreamWebhook {
    /// Starts upstream's webhook against the test bed (namespace `azure-workload-identity-system`,
    /// the Secret and the MutatingWebhookConfiguration must exist, as upstream's chart creates
    /// them). Panics when port 9443 is taken; hold [`port_lock`] around it.
    pub fn start(bed: &TestBed, name: &str) -> UpstreamWebhook {
        let binary = binary();
        assert!(
            std::net::TcpListener::bind(("0.0.0.0", PORT)).is_ok(),
            "port {PORT} is taken: upstream's webhook port is not configurable"
        );
        let cert_dir = bed.dir.join(format!("upstream-{name}"));
        std::fs::create_dir_all(&cert_dir).expect("upstream cert dir");
        let (health_port, metrics_port) = (free_port(), free_port());
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--kubeconfig={}", bed.kubeconfig.display()))
            .arg(format!("--health-addr=127.0.0.1:{health_port}"))
            .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
            .arg(format!("--webhook-cert-dir={}", cert_dir.display()))
            .arg("--log-level=debug")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("AZURE_TENANT_ID", TENANT)
            .env("POD_NAMESPACE", "azure-workload-identity-system");
        let log = bed.dir.join(format!("upstream-{name}.log"));
        UpstreamWebhook {
            health_port,
            cert_dir,
            process: Process::spawn(&format!("upstream webhook ({name})"), cmd, &log, None),
        }
    }

    /// Writes the serving certificate and key into its certificate directory (the kubelet's
    /// part), then waits until `/readyz` answers 200.
    pub async fn mount_and_wait_ready(&mut self, cert_pem: &[u8], key_pem: &[u8]) {
        std::fs::write(self.cert_dir.join("tls.crt"), cert_pem).expect("write tls.crt");
        std::fs::write(self.cert_dir.join("tls.key"), key_pem).expect("write tls.key");
        let (within, poll) = (Duration::from_secs(120), Duration::from_millis(200));
        self.process.wait_ready(self.health_port, within, poll).await;
    }
}
