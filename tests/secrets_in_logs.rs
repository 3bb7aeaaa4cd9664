//! Secrets never reach the processes' logs: `azure-wi token`, `azure-wi proxy` and
//! `azure-wi webhook` run with every crate logging at TRACE (`RUST_LOG=trace` /
//! `--log-level trace`) through token exchanges, a served token and an identity-endpoint
//! admission; their stderr must not contain any token, assertion, identity header or system
//! access token. The library's own sources are covered in-process by
//! `credential::managed_identity::tests::secrets_in_logs`.

mod support;

use std::{
    io::Read,
    process::{Command, Stdio},
    time::Duration,
};

use azure_wi_test_support::{admission_review::pod_review, response_body};
use base64::Engine as _;
use serde_json::{Value, json};
use support::{
    run_azure_wi, stdout_json,
    test_server::{Reply, TestServer},
};

const SCOPE: &str = "https://vault.azure.net/.default";

fn assert_absent(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} contains the secret {secret:?}:\n{text}"
        );
    }
}

/// The stderr of a process run at TRACE: it must hold TRACE records (else the check is void).
fn trace_stderr(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr).into_owned();
    assert!(
        text.contains("TRACE"),
        "no TRACE record in the process's stderr:\n{text}"
    );
    text
}

#[tokio::test]
async fn the_token_command_at_trace_logs_no_secret() {
    const ASSERTION: &str = "sa-jwt-assertion-5ecret-91";
    const WI_TOKEN: &str = "wi-access-token-5ecret-92";
    const SYSTEM: &str = "pipelines-system-access-token-5ecret-93";
    const OIDC: &str = "pipelines-oidc-5ecret-94";
    const P_TOKEN: &str = "pipelines-access-token-5ecret-95";
    const HEADER: &str = "app-service-identity-header-5ecret-96";
    const MI_TOKEN: &str = "app-service-access-token-5ecret-97";
    let all = [ASSERTION, WI_TOKEN, SYSTEM, OIDC, P_TOKEN, HEADER, MI_TOKEN];

    // Workload identity: a token, then Entra refusing with the assertion quoted back.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, ASSERTION).unwrap();
    let entra = TestServer::scripted([
        Reply::token(WI_TOKEN, 3599),
        Reply::json(
            400,
            json!({"error": "invalid_client", "error_description": format!("AADSTS700024: {ASSERTION}")}),
        ),
    ])
    .await;
    let wi_env = vec![
        ("AZURE_TENANT_ID", "tenant-1".to_owned()),
        ("AZURE_CLIENT_ID", "client-1".to_owned()),
        ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
        ("AZURE_AUTHORITY_HOST", format!("{}/", entra.url())),
        ("RUST_LOG", "trace".to_owned()),
    ];
    let args = ["token", "--credential", "workload-identity", SCOPE];
    let ok = run_azure_wi(&args, &wi_env).await;
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(stdout_json(&ok)["access_token"], WI_TOKEN);
    assert_absent(
        "token (workload identity) stderr",
        &trace_stderr(&ok.stderr),
        &all,
    );
    let refused = run_azure_wi(&args, &wi_env).await;
    assert!(!refused.status.success());
    assert_absent("token (refused) stderr", &trace_stderr(&refused.stderr), &all);
    assert_absent(
        "token (refused) stdout",
        &String::from_utf8_lossy(&refused.stdout),
        &all,
    );
    assert_eq!(entra.request_count(), 2);

    // Azure Pipelines: a token, then the OIDC endpoint quoting the system access token.
    let oidc = TestServer::scripted([
        Reply::json(200, json!({"oidcToken": OIDC})),
        Reply::json(401, json!({"message": format!("bad token {SYSTEM}")})),
    ])
    .await;
    let entra_p = TestServer::scripted([Reply::token(P_TOKEN, 3599)]).await;
    let mut p_env = support::pipelines_env(
        format!("{}/org/_apis/oidctoken", oidc.url()),
        SYSTEM,
        entra_p.url(),
    );
    p_env.push(("RUST_LOG", "trace".to_owned()));
    let p_args = support::pipelines_args(SCOPE);
    let ok = run_azure_wi(&p_args, &p_env).await;
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(stdout_json(&ok)["access_token"], P_TOKEN);
    assert_absent("token (pipelines) stderr", &trace_stderr(&ok.stderr), &all);
    let refused = run_azure_wi(&p_args, &p_env).await;
    assert!(!refused.status.success());
    assert_absent(
        "token (pipelines refused) stderr",
        &trace_stderr(&refused.stderr),
        &all,
    );

    // Managed identity (App Service): the identity header.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let app = TestServer::scripted([Reply::json(
        200,
        json!({"access_token": MI_TOKEN, "expires_on": (now + 3600).to_string(), "resource": "https://vault.azure.net", "token_type": "Bearer"}),
    )])
    .await;
    let mi_env = vec![
        ("IDENTITY_ENDPOINT", format!("{}/msi/token", app.url())),
        ("IDENTITY_HEADER", HEADER.to_owned()),
        ("RUST_LOG", "trace".to_owned()),
    ];
    let ok = run_azure_wi(&["token", "--credential", "managed-identity", SCOPE], &mi_env).await;
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(stdout_json(&ok)["access_token"], MI_TOKEN);
    assert_eq!(app.requests()[0].header("x-identity-header"), Some(HEADER));
    assert_absent("token (managed identity) stderr", &trace_stderr(&ok.stderr), &all);
}

/// Reads a child's stderr on a thread; returns the lines seen so far on demand.
struct StderrTail {
    text: std::sync::Arc<std::sync::Mutex<String>>,
    thread: std::thread::JoinHandle<()>,
}

impl StderrTail {
    fn new(child: &mut std::process::Child) -> Self {
        let mut stderr = child.stderr.take().unwrap();
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = text.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { text, thread }
    }

    /// Waits (up to 30 s) for a JSON log record with `message` and returns it.
    async fn record(&self, message: &str) -> Value {
        for _ in 0..1500 {
            let found = self
                .text
                .lock()
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|r| r["fields"]["message"] == message || r["message"] == message);
            if let Some(record) = found {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no {message:?} log record in:\n{}", self.text.lock().unwrap());
    }

    fn finish(self) -> String {
        self.thread.join().unwrap();
        std::sync::Arc::try_unwrap(self.text)
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_at_trace_logs_no_secret() {
    const ASSERTION: &str = "proxy-sa-assertion-5ecret-71";
    const TOKEN: &str = "proxy-served-access-token-5ecret-72";
    const HEADER: &str = "proxy-identity-header-5ecret-0123456789";
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, ASSERTION).unwrap();
    let entra = TestServer::scripted([Reply::token(TOKEN, 3599)]).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_azure-wi"))
        .args([
            "proxy",
            "--proxy-port",
            "0",
            "--log-level",
            "trace",
            "--identity-endpoint",
        ])
        .env_clear()
        .env("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
        .env("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
        .env("AZURE_FEDERATED_TOKEN_FILE", &file)
        .env("AZURE_AUTHORITY_HOST", entra.url())
        .env("IDENTITY_HEADER", HEADER)
        .env("AZWI_PROXY_IMDS_ENDPOINT", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tail = StderrTail::new(&mut child);
    let listening = tail.record("token proxy listening").await;
    let addr = listening["fields"]["addr"]
        .as_str()
        .or_else(|| listening["addr"].as_str())
        .unwrap_or_else(|| panic!("no addr in {listening}"))
        .to_owned();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let resource = "https://vault.azure.net";
    let app = response_body::json(
        client
            .get(format!(
                "http://{addr}/msi/token?api-version=2019-08-01&resource={resource}"
            ))
            .header("X-IDENTITY-HEADER", HEADER),
    )
    .await;
    assert_eq!(app["access_token"], TOKEN, "{app}");
    let imds = response_body::json(
        client
            .get(format!(
                "http://{addr}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}"
            ))
            .header("Metadata", "true"),
    )
    .await;
    assert_eq!(imds["access_token"], TOKEN, "{imds}");
    // A wrong header is refused (and logged) without echoing either value.
    let wrong = client
        .get(format!(
            "http://{addr}/msi/token?api-version=2019-08-01&resource={resource}"
        ))
        .header("X-IDENTITY-HEADER", "proxy-wrong-header-5ecret-000000")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(entra.request_count(), 1, "one exchange, then the cache");
    support::terminate(&mut child);
    let text = tail.finish();
    assert!(text.contains(r#""level":"TRACE""#), "no TRACE record:\n{text}");
    assert_absent(
        "the proxy's stderr",
        &text,
        &[ASSERTION, TOKEN, HEADER, "proxy-wrong-header-5ecret-000000"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_at_trace_logs_no_identity_header() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let files = support::OfflineWebhook::new();

    let mut child = files.command("trace").env_remove("RUST_LOG").spawn().unwrap();
    let tail = StderrTail::new(&mut child);
    let listening = tail.record("listening").await;
    let field = |name: &str| {
        listening[name]
            .as_str()
            .or_else(|| listening["fields"][name].as_str())
            .unwrap_or_else(|| panic!("no {name} in {listening}"))
            .parse::<std::net::SocketAddr>()
            .unwrap()
    };
    let (webhook, health) = (field("webhook"), field("health"));
    support::OfflineWebhook::wait_ready(health).await;
    let client = files.client(webhook);
    let mut review = pod_review("c0ffee00-0000-0000-0000-000000000002", "team-a", "web");
    review["request"]["object"]["metadata"]["annotations"] = json!({
        "azure.workload.identity/inject-proxy-sidecar": "true",
        "azure.workload.identity/proxy-mode": "identity-endpoint"
    });
    let answer = response_body::json(
        client
            .post(support::OfflineWebhook::mutate_url(webhook))
            .json(&review),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(answer["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch = String::from_utf8(patch).unwrap();
    // The generated per-pod header: the value of the IDENTITY_HEADER env entry.
    let ops: Value = serde_json::from_str(&patch).unwrap();
    let mut headers = Vec::new();
    collect_env(&ops, "IDENTITY_HEADER", &mut headers);
    assert!(!headers.is_empty(), "no IDENTITY_HEADER in the patch: {patch}");
    support::terminate(&mut child);
    let text = tail.finish();
    // `--log-level trace` is the webhook's most verbose setting; it keeps hyper, h2, rustls and
    // tower at info by design (RUST_LOG is not read), and nothing below INFO fires on this path:
    // what it logs is the admission line, checked here.
    assert!(
        text.contains("pod mutated"),
        "the admission was not logged:\n{text}"
    );
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    assert_absent("the webhook's stderr", &text, &headers);
}

/// Every `value` of an env entry named `name` anywhere in `v`.
fn collect_env(v: &Value, name: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if map.get("name").and_then(Value::as_str) == Some(name)
                && let Some(value) = map.get("value").and_then(Value::as_str)
            {
                out.push(value.to_owned());
            }
            map.values().for_each(|v| collect_env(v, name, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_env(v, name, out)),
        _ => {}
    }
}
