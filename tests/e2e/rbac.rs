//! The webhook's RBAC, derived from what it actually does on a real API server.
//!
//! The chart is rendered (`helm template`) and its ServiceAccount, ClusterRole, Role, bindings,
//! certificate Secret and MutatingWebhookConfiguration are applied to the test bed, whose
//! kube-apiserver writes an audit log (Metadata level) of that ServiceAccount's requests. The
//! webhook runs with a token of that ServiceAccount (so the API server authorizes it exactly as in
//! a cluster, by the chart's rules), generates and publishes its certificates, fills its
//! ServiceAccount cache (list + watch) and answers admissions, one of them for a ServiceAccount
//! that is not cached (the direct GET); its certificate Secret is deleted and must come back (with
//! the same CA and the chart's labels) within seconds. Then every request in the audit log must be allowed by
//! the chart's rules, no request may have been refused, and every verb the chart grants must
//! have been used: the rules are the minimum, and enough.

use azure_wi_test_support::e2e;

use std::{
    collections::BTreeSet,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use azure_wi_test_support::admission_review::pod_review as review;
use e2e::{
    process::{Process, free_port},
    testbed::{TestBed, binary},
    webhook::azure_wi_binary,
};
use k8s_openapi::api::{
    authentication::v1::TokenRequest,
    core::v1::{Namespace, Secret, ServiceAccount},
    rbac::v1::{ClusterRole, PolicyRule, Role},
};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use serde_json::{Value, json};

const NS: &str = "azure-workload-identity-system";
const SA: &str = "azure-wi-webhook-admin";
const ROLE: &str = "azure-wi-webhook-manager-role";
const SECRET: &str = "azure-wi-webhook-server-cert";
const HOST: &str = "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// One request of the webhook as the audit log records it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    verb: String,
    group: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    code: u16,
}

/// One (verb, group, resource) a rule grants, with its restrictions.
#[derive(Clone, Debug)]
struct Grant {
    verb: String,
    group: String,
    resource: String,
    names: Vec<String>,
    /// `Some` for a Role (its namespace), `None` for a ClusterRole.
    namespace: Option<String>,
}

impl Grant {
    fn allows(&self, call: &Call) -> bool {
        (self.verb == call.verb || self.verb == "*")
            && self.group == call.group
            && (self.resource == call.resource || self.resource == "*")
            && (self.names.is_empty() || call.name.as_ref().is_some_and(|n| self.names.contains(n)))
            && (self.namespace.is_none() || self.namespace == call.namespace)
    }

    fn key(&self) -> String {
        let scope = match &self.namespace {
            Some(ns) => format!(" in {ns}"),
            None => " (cluster)".into(),
        };
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        format!(
            "{} {group}/{}{}{scope}",
            self.verb,
            self.resource,
            names(&self.names)
        )
    }
}

fn names(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" {names:?}")
    }
}

fn grants(rules: &[PolicyRule], namespace: Option<&str>) -> Vec<Grant> {
    let mut out = Vec::new();
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    out.push(Grant {
                        verb: verb.clone(),
                        group: group.clone(),
                        resource: resource.clone(),
                        names: rule.resource_names.clone().unwrap_or_default(),
                        namespace: namespace.map(str::to_owned),
                    });
                }
            }
        }
    }
    out
}

/// `helm template` of the chart with its defaults (self-managed certificates).
fn render_chart() -> String {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/azure-wi-webhook");
    let output = Command::new(binary("helm"))
        .args(["template", "workload-identity-webhook"])
        .arg(&chart)
        .args(["--namespace", NS, "--set", &format!("azureTenantID={TENANT}")])
        .output()
        .expect("helm runs");
    assert!(
        output.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The top-level `kind` and `metadata.name` of one rendered YAML document.
fn kind_and_name(doc: &str) -> Option<(String, String)> {
    let kind = doc
        .lines()
        .find_map(|l| l.strip_prefix("kind: "))?
        .trim()
        .to_owned();
    let mut in_metadata = false;
    for line in doc.lines() {
        if line.starts_with("metadata:") {
            in_metadata = true;
        } else if in_metadata && let Some(name) = line.strip_prefix("  name: ") {
            return Some((kind, name.trim().trim_matches('"').to_owned()));
        } else if !line.starts_with(' ') && !line.is_empty() {
            in_metadata = false;
        }
    }
    None
}

/// Applies the rendered objects the webhook's permissions and certificates depend on (server-side
/// apply of the YAML as rendered; the API server parses it).
async fn apply_chart(bed: &TestBed) -> Vec<String> {
    let client = bed.client().await;
    let mut applied = Vec::new();
    for doc in render_chart().split("\n---") {
        let Some((kind, name)) = kind_and_name(doc) else {
            continue;
        };
        let path = match kind.as_str() {
            "ServiceAccount" => format!("/api/v1/namespaces/{NS}/serviceaccounts/{name}"),
            "Secret" => format!("/api/v1/namespaces/{NS}/secrets/{name}"),
            "ClusterRole" => format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"),
            "ClusterRoleBinding" => format!("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}"),
            "Role" => format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles/{name}"),
            "RoleBinding" => {
                format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings/{name}")
            }
            "MutatingWebhookConfiguration" => {
                format!("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}")
            }
            // The Deployment, Service, ConfigMap, PodDisruptionBudget: nothing here runs them.
            _ => continue,
        };
        let request = axum::http::Request::patch(format!("{path}?fieldManager=e2e-rbac&force=true"))
            .header("content-type", "application/apply-patch+yaml")
            .body(doc.as_bytes().to_vec())
            .unwrap();
        client
            .request_text(request)
            .await
            .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
        applied.push(format!("{kind}/{name}"));
    }
    applied
}

/// A kubeconfig that authenticates as the chart's ServiceAccount (a bound token from the API
/// server's TokenRequest, as the kubelet would mount).
async fn service_account_kubeconfig(bed: &TestBed) -> std::path::PathBuf {
    use base64::Engine as _;
    let api: Api<ServiceAccount> = Api::namespaced(bed.client().await, NS);
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": 3600}
    }))
    .unwrap();
    let token = api
        .create_token_request(SA, &PostParams::default(), &request)
        .await
        .expect("token for the webhook's ServiceAccount")
        .status
        .expect("token status")
        .token;
    let config = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "webhook",
        "clusters": [{"name": "bed", "cluster": {"server": bed.url,
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(&bed.ca_pem)}}],
        "users": [{"name": "webhook", "user": {"token": token}}],
        "contexts": [{"name": "webhook", "context": {"cluster": "bed", "user": "webhook"}}],
    });
    let path = bed.dir.join("kubeconfig-webhook-sa");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    path
}

fn read_audit(path: &Path, user: &str) -> Vec<Call> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut calls = Vec::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        // A watch is logged when its response starts (it completes only when the client leaves).
        let stage = event["stage"].as_str().unwrap_or_default();
        if event["user"]["username"] != user || !matches!(stage, "ResponseStarted" | "ResponseComplete") {
            continue;
        }
        let object = &event["objectRef"];
        let Some(resource) = object["resource"].as_str() else {
            // A non-resource URL (e.g. /version): none is granted by the chart.
            calls.push(Call {
                verb: event["verb"].as_str().unwrap_or_default().to_owned(),
                group: String::new(),
                resource: event["requestURI"].as_str().unwrap_or_default().to_owned(),
                namespace: None,
                name: None,
                code: event["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
            });
            continue;
        };
        let resource = match object["subresource"].as_str() {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_owned(),
        };
        calls.push(Call {
            verb: event["verb"].as_str().unwrap_or_default().to_owned(),
            group: object["apiGroup"].as_str().unwrap_or_default().to_owned(),
            resource,
            namespace: object["namespace"].as_str().map(str::to_owned),
            name: object["name"].as_str().map(str::to_owned),
            code: event["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
        });
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_grants_exactly_what_the_webhook_uses() {
    let user = format!("system:serviceaccount:{NS}:{SA}");
    let audit_dir = tempfile::tempdir().unwrap();
    let policy = audit_dir.path().join("audit-policy.json");
    let audit_log = audit_dir.path().join("audit.log");
    std::fs::write(
        &policy,
        serde_json::to_vec(&json!({
            "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata", "users": [user]}, {"level": "None"}]
        }))
        .unwrap(),
    )
    .unwrap();
    let bed = TestBed::start_with(
        &[],
        &[
            format!("--audit-policy-file={}", policy.display()),
            format!("--audit-log-path={}", audit_log.display()),
            "--audit-log-format=json".into(),
            "--audit-log-mode=blocking".into(),
        ],
    )
    .await;
    let admin = bed.client().await;
    let namespace = |name: &str| -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    };
    for ns in [NS, "team-a"] {
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &namespace(ns))
            .await
            .unwrap();
    }
    let applied = apply_chart(&bed).await;
    for needed in [
        format!("ServiceAccount/{SA}"),
        format!("ClusterRole/{ROLE}"),
        format!("Role/{ROLE}"),
        format!("Secret/{SECRET}"),
    ] {
        assert!(
            applied.contains(&needed),
            "the chart rendered no {needed}: {applied:?}"
        );
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "team-a");
    let annotated: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "app", "annotations": {
            "azure.workload.identity/client-id": "00000000-0000-0000-0000-0000000000a1"}}
    }))
    .unwrap();
    accounts.create(&PostParams::default(), &annotated).await.unwrap();

    // The webhook, as the chart's ServiceAccount, with self-managed certificates (the default).
    let kubeconfig = service_account_kubeconfig(&bed).await;
    let (port, health_port, metrics_port) = (free_port(), free_port(), free_port());
    let cert_dir = bed.dir.join("webhook-rbac-certs");
    std::fs::create_dir_all(&cert_dir).unwrap();
    let mut command = Command::new(azure_wi_binary());
    command
        .arg("webhook")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg("--webhook-host=127.0.0.1")
        .arg(format!("--webhook-port={port}"))
        .arg(format!("--health-addr=127.0.0.1:{health_port}"))
        .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
        .arg(format!("--webhook-cert-dir={}", cert_dir.display()))
        .arg("--log-level=debug")
        .env("AZURE_TENANT_ID", TENANT)
        .env("POD_NAMESPACE", NS);
    let mut webhook = Process::spawn(
        "azure-wi webhook (rbac)",
        command,
        &bed.dir.join("webhook-rbac.log"),
        None,
    );
    webhook
        .wait_ready(health_port, Duration::from_secs(60), Duration::from_millis(100))
        .await;

    // Its CA is in the Secret it wrote; admissions go straight to it.
    let secret = Api::<Secret>::namespaced(admin.clone(), NS)
        .get(SECRET)
        .await
        .unwrap();
    let ca = secret
        .data
        .as_ref()
        .and_then(|d| d.get("ca.crt"))
        .map(|b| b.0.clone())
        .expect("the webhook stored its CA in its Secret");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve(HOST, ([127, 0, 0, 1], port).into())
        .no_proxy()
        .build()
        .unwrap();
    let url = format!("https://{HOST}:{port}/mutate-v1-pod");
    let admit = |review: Value| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let answer = azure_wi_test_support::response_body::json(client.post(&url).json(&review)).await;
            answer["response"].clone()
        }
    };
    // From the cache (list + watch), then a ServiceAccount created now and one that never exists
    // (a cache miss: the direct GET).
    let cached = admit(review("00000000-0000-0000-0000-000000000001", "team-a", "app")).await;
    assert_eq!(cached["allowed"], true, "{cached}");
    assert!(cached["patch"].is_string(), "{cached}");
    let missing = admit(review("00000000-0000-0000-0000-000000000002", "team-a", "ghost")).await;
    assert_eq!(missing["allowed"], false, "{missing}");
    let mwc =
        Api::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>::all(admin.clone())
            .get("azure-wi-webhook-mutating-webhook-configuration")
            .await
            .unwrap();
    assert!(
        mwc.webhooks
            .iter()
            .flatten()
            .all(|w| w.client_config.ca_bundle.is_some()),
        "the webhook published its CA in the chart's MutatingWebhookConfiguration"
    );

    // A deleted certificate Secret is recreated at once (the webhook watches it, and the chart
    // lets it create the Secret), with the CA it serves: the caBundle stays valid.
    let secrets = Api::<Secret>::namespaced(admin.clone(), NS);
    secrets
        .delete(SECRET, &Default::default())
        .await
        .expect("delete the certificate Secret");
    let deleted = Instant::now();
    let (recreated, labels) = loop {
        if let Some(secret) = secrets.get_opt(SECRET).await.unwrap()
            && let Some(ca) = secret.data.as_ref().and_then(|d| d.get("ca.crt"))
        {
            break (ca.0.clone(), secret.metadata.labels.unwrap_or_default());
        }
        webhook.assert_running();
        assert!(
            deleted.elapsed() < Duration::from_secs(30),
            "the deleted Secret was not recreated in 30 s; the webhook's log:\n{}",
            webhook.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("the deleted Secret was back after {:?}", deleted.elapsed());
    assert_eq!(recreated, ca, "the recreated Secret holds another CA");
    assert_eq!(
        labels.get("app").map(String::as_str),
        Some("workload-identity-webhook"),
        "the recreated Secret lost the chart's labels: {labels:?}"
    );
    let again = admit(review("00000000-0000-0000-0000-000000000003", "team-a", "app")).await;
    assert_eq!(again["allowed"], true, "{again}");
    webhook.stop("TERM");

    // What the chart grants, as the API server stored it.
    let cluster_role = Api::<ClusterRole>::all(admin.clone()).get(ROLE).await.unwrap();
    let role = Api::<Role>::namespaced(admin.clone(), NS)
        .get(ROLE)
        .await
        .unwrap();
    let mut granted = grants(cluster_role.rules.as_deref().unwrap_or_default(), None);
    granted.extend(grants(role.rules.as_deref().unwrap_or_default(), Some(NS)));

    // What the webhook did, as the API server saw it.
    let calls = read_audit(&audit_log, &user);
    assert!(!calls.is_empty(), "no audit events for {user}");
    let refused: BTreeSet<&Call> = calls.iter().filter(|c| c.code == 403).collect();
    // Non-resource URLs (the client's `/version`) are granted to every authenticated user by the
    // cluster's default discovery roles, not by the chart: only those few are expected.
    let discovery = |c: &Call| c.resource.starts_with('/');
    let unexpected_discovery: BTreeSet<&Call> = calls
        .iter()
        .filter(|c| {
            discovery(c) && !(c.verb == "get" && ["/version", "/api", "/apis"].contains(&c.resource.as_str()))
        })
        .collect();
    let outside: BTreeSet<&Call> = calls
        .iter()
        .filter(|c| !discovery(c) && !granted.iter().any(|g| g.allows(c)))
        .collect();
    let unused: Vec<String> = granted
        .iter()
        .filter(|g| !calls.iter().any(|c| g.allows(c)))
        .map(Grant::key)
        .collect();
    let used: BTreeSet<String> = calls
        .iter()
        .map(|c| {
            let group = if c.group.is_empty() { "core" } else { &c.group };
            format!(
                "{} {group}/{}{}{} -> {}",
                c.verb,
                c.resource,
                c.namespace
                    .as_deref()
                    .map(|n| format!(" in {n}"))
                    .unwrap_or_default(),
                c.name.as_deref().map(|n| format!(" [{n}]")).unwrap_or_default(),
                c.code
            )
        })
        .collect();
    eprintln!(
        "the webhook's requests ({}):\n  {}",
        calls.len(),
        used.iter().cloned().collect::<Vec<_>>().join("\n  ")
    );
    assert!(
        refused.is_empty(),
        "the API server refused the webhook: {refused:#?}"
    );
    assert!(
        outside.is_empty(),
        "requests the chart's rules do not cover: {outside:#?}"
    );
    assert!(
        unexpected_discovery.is_empty(),
        "non-resource requests beyond discovery: {unexpected_discovery:#?}"
    );
    assert!(
        unused.is_empty(),
        "the chart grants what the webhook never used: {unused:#?}"
    );
    // The ServiceAccount cache and its GET fallback, the certificate Secret and the caBundle.
    for (verb, resource) in [
        ("list", "serviceaccounts"),
        ("watch", "serviceaccounts"),
        ("get", "serviceaccounts"),
        ("get", "secrets"),
        ("get", "mutatingwebhookconfigurations"),
    ] {
        assert!(
            calls.iter().any(|c| c.verb == verb && c.resource == resource),
            "no {verb} {resource} in the audit log"
        );
    }
}
