//! The real `azure-wi webhook` as a process next to the test bed's API server, and its
//! MutatingWebhookConfiguration as the chart renders it, except `clientConfig.url` points at
//! 127.0.0.1 and a `namespaceSelector` confines each registration to the namespaces of one test
//! group (so several webhook configurations can share one API server).

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    admissionregistration::v1::MutatingWebhookConfiguration,
    core::v1::{Namespace, Pod},
};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use serde_json::json;

use super::{
    process::{Process, free_port},
    testbed::TestBed,
};

/// The tenant the webhooks of the tests are configured with (`AZURE_TENANT_ID`).
pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";

/// A running `azure-wi webhook` serving certificate files signed by the test bed's CA.
pub struct Webhook {
    /// The HTTPS port of `/mutate-v1-pod`.
    pub port: u16,
    /// The plain-HTTP port of `/healthz` and `/readyz`.
    pub health_port: u16,
    /// The plain-HTTP port of `/metrics`.
    pub metrics_port: u16,
    /// Where its certificate files are.
    pub cert_dir: PathBuf,
    /// The process.
    pub process: Process,
}

impl Webhook {
    /// Starts the webhook with `--disable-cert-rotation`, certificates in a directory, the test
    /// bed's kubeconfig and `extra` flags; waits until `/readyz` answers 200.
    pub async fn start(bed: &TestBed, name: &str, extra: &[&str]) -> Webhook {
        let cert_dir = bed.dir.join(format!("webhook-{name}"));
        std::fs::create_dir_all(&cert_dir).expect("webhook cert dir");
        let cert = bed.pki().server_cert("azure-wi-webhook");
        std::fs::write(cert_dir.join("tls.crt"), &cert.cert_pem).expect("write tls.crt");
        std::fs::write(cert_dir.join("tls.key"), &cert.key_pem).expect("write tls.key");
        let mut args = vec![
            format!("--webhook-cert-dir={}", cert_dir.display()),
            "--disable-cert-rotation".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        Webhook::spawn(bed, name, args).await
    }

    /// Starts the webhook in self-managed mode: it creates its CA and serving certificate, keeps
    /// them in the Secret `azure-wi-webhook-server-cert` of `azure-workload-identity-system` and
    /// writes the CA into the `caBundle` of `azure-wi-webhook-mutating-webhook-configuration`.
    pub async fn start_self_managed(bed: &TestBed, name: &str, extra: &[&str]) -> Webhook {
        let cert_dir = bed.dir.join(format!("webhook-{name}"));
        std::fs::create_dir_all(&cert_dir).expect("webhook cert dir");
        let mut args = vec![format!("--webhook-cert-dir={}", cert_dir.display())];
        args.extend(extra.iter().map(|a| a.to_string()));
        Webhook::spawn(bed, name, args).await
    }

    /// [`Webhook::start`], but the webhook talks to the API server with `kubeconfig` (e.g. a
    /// user with narrower RBAC than the admin).
    pub async fn start_with_kubeconfig(
        bed: &TestBed,
        name: &str,
        kubeconfig: &std::path::Path,
        extra: &[&str],
    ) -> Webhook {
        let mut args = vec![format!("--kubeconfig={}", kubeconfig.display())];
        args.extend(extra.iter().map(|a| a.to_string()));
        Webhook::start(bed, name, &args.iter().map(String::as_str).collect::<Vec<_>>()).await
    }

    async fn spawn(bed: &TestBed, name: &str, args: Vec<String>) -> Webhook {
        let (port, health_port, metrics_port) = (free_port(), free_port(), free_port());
        let mut cmd = Command::new(azure_wi_binary());
        cmd.arg("webhook");
        // The test bed's admin kubeconfig unless the caller names another.
        if !args.iter().any(|a| a.starts_with("--kubeconfig=")) {
            cmd.arg(format!("--kubeconfig={}", bed.kubeconfig.display()));
        }
        cmd.arg("--webhook-host=127.0.0.1")
            .arg(format!("--webhook-port={port}"))
            .arg(format!("--health-addr=127.0.0.1:{health_port}"))
            .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
            .arg("--log-level=debug")
            .args(args)
            .env("AZURE_TENANT_ID", TENANT)
            .env("POD_NAMESPACE", "azure-workload-identity-system");
        let log = bed.dir.join(format!("webhook-{name}.log"));
        let mut webhook = Webhook {
            port,
            health_port,
            metrics_port,
            cert_dir: bed.dir.join(format!("webhook-{name}")),
            process: Process::spawn(&format!("azure-wi webhook ({name})"), cmd, &log, None),
        };
        webhook.wait_ready().await;
        webhook
    }

    /// `https://127.0.0.1:<port>/mutate-v1-pod`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/mutate-v1-pod", self.port)
    }

    async fn wait_ready(&mut self) {
        let (within, poll) = (Duration::from_secs(60), Duration::from_millis(100));
        self.process.wait_ready(self.health_port, within, poll).await;
    }
}

/// The `azure-wi` binary: `$AZWI_BIN` when set (`scripts/demo` sets it), else the one Cargo built
/// beside the running test or example (`target/<profile>/azure-wi`; Cargo builds a package's
/// binaries before its integration tests).
pub fn azure_wi_binary() -> PathBuf {
    // `AZWI_BIN` first: it pins a binary when the target directory is shared with other builds.
    if let Some(bin) = std::env::var_os("AZWI_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> or target/<profile>/examples/<example>
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("azure-wi");
    assert!(
        bin.is_file(),
        "the azure-wi binary is not at {}: run under cargo test in the azure-wi package, or set AZWI_BIN",
        bin.display()
    );
    bin
}

/// The label that assigns a namespace to a webhook registration (its `namespaceSelector`).
pub const GROUP_LABEL: &str = "e2e.azure-wi/webhook";

/// Registers `webhook` for namespaces labelled `GROUP_LABEL: group`, as the chart's
/// MutatingWebhookConfiguration (one webhook `mutation.azure-workload-identity.io`, CREATE pods v1,
/// `failurePolicy: Fail`, `matchPolicy: Equivalent`, `reinvocationPolicy: IfNeeded`,
/// `sideEffects: None`, objectSelector `azure.workload.identity/use: "true"`), with the given
/// AdmissionReview versions.
pub async fn register(bed: &TestBed, webhook: &Webhook, group: &str, review_versions: &[&str]) {
    use base64::Engine as _;
    let name = format!("azure-wi-e2e-{group}");
    let client_config = json!({
        "url": webhook.url(),
        "caBundle": base64::engine::general_purpose::STANDARD.encode(&bed.ca_pem),
    });
    let api: Api<MutatingWebhookConfiguration> = Api::all(bed.client().await);
    let mwc = configuration(&name, client_config, group, review_versions);
    api.create(&PostParams::default(), &mwc)
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    wait_effective(bed, group).await;
}

/// The chart's MutatingWebhookConfiguration named `name`, with `client_config`, for the namespaces
/// of `group`.
pub fn configuration(
    name: &str,
    client_config: serde_json::Value,
    group: &str,
    review_versions: &[&str],
) -> MutatingWebhookConfiguration {
    serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": { "name": name },
        "webhooks": [{
            "name": "mutation.azure-workload-identity.io",
            "admissionReviewVersions": review_versions,
            "clientConfig": client_config,
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "reinvocationPolicy": "IfNeeded",
            "sideEffects": "None",
            "objectSelector": { "matchLabels": { "azure.workload.identity/use": "true" } },
            "namespaceSelector": { "matchLabels": { GROUP_LABEL: group } },
            "rules": [{
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
            }],
        }],
    }))
    .expect("MutatingWebhookConfiguration")
}

/// The API server picks up a new webhook configuration asynchronously: dry-run a labelled pod of a
/// ServiceAccount that does not exist until the webhook denies it.
pub async fn wait_effective(bed: &TestBed, group: &str) {
    let ns = group_namespace(bed, group, "probe").await;
    let api: Api<Pod> = Api::namespaced(bed.client().await, &ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "probe", "labels": { "azure.workload.identity/use": "true" } },
        "spec": { "serviceAccountName": "no-such-account", "containers": [{ "name": "c", "image": "busybox" }] },
    }))
    .expect("probe pod");
    let started = Instant::now();
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    while api.create(&dry_run, &pod).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "webhook registration {group} never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a namespace served by the registration of `group`.
pub async fn group_namespace(bed: &TestBed, group: &str, prefix: &str) -> String {
    let api: Api<Namespace> = Api::all(bed.client().await);
    let ns = Namespace {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            labels: Some([(GROUP_LABEL.to_string(), group.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = api
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    created.metadata.name.expect("namespace name")
}
