//! What operators read: the webhook's `/metrics` in both exposition formats (every name upstream's
//! dashboards use, and ours), and the log lines of the webhook, the proxy and `token`, each a flat
//! JSON object that a strict parser (duplicate keys refused) accepts, with an RFC 3339 timestamp,
//! and the version and effective configuration logged once at start.

mod support;

use std::{
    collections::BTreeMap,
    fmt,
    io::{BufRead, BufReader},
    sync::mpsc,
    time::Duration,
};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

// --- a strict JSON reader: a duplicate key anywhere is an error ---

/// A JSON value read strictly: objects with a repeated key are refused.
struct Strict;

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value::<Strict>()?;
        }
        Ok(Strict)
    }
}

/// Parses a log line strictly and checks the shape every record shares.
fn log_record(line: &str) -> Value {
    if let Err(error) = serde_json::from_str::<Strict>(line) {
        panic!("not strict JSON ({error}): {line}");
    }
    let record: Value = serde_json::from_str(line).unwrap();
    let object = record
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {line}"));
    for key in ["timestamp", "level", "message", "target"] {
        assert!(object.contains_key(key), "no {key:?} in {line}");
    }
    assert!(!object.contains_key("fields"), "fields are nested: {line}");
    for (key, value) in object {
        assert!(
            !value.is_object(),
            "{key} is an object (records are flat): {line}"
        );
    }
    let timestamp = record["timestamp"].as_str().unwrap();
    time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("timestamp {timestamp:?} is not RFC 3339 ({e}): {line}"));
    record
}

/// Reads a child's stderr on a thread, every line through [`log_record`].
fn log_reader(stderr: std::process::ChildStderr) -> (mpsc::Receiver<Value>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(log_record(&line)).is_err() {
                break;
            }
        }
    });
    (rx, reader)
}

fn wait_for(rx: &mpsc::Receiver<Value>, logs: &mut Vec<Value>, message: &str) -> Value {
    loop {
        let record = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no {message:?} line; so far: {logs:?}"));
        logs.push(record.clone());
        if record["message"] == message {
            return record;
        }
    }
}

/// Kills the child when a test ends without stopping it (a failed assertion), so no server
/// outlives its test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

// --- the exposition formats ---

/// The samples of an exposition: (name, labels) -> value, and the `# TYPE` lines.
struct Exposition {
    samples: BTreeMap<(String, BTreeMap<String, String>), f64>,
    types: BTreeMap<String, String>,
    text: String,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    types.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "{name} typed twice"
                );
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels.strip_suffix('}').unwrap();
                    let labels = labels
                        .split("\",")
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once("=\"").unwrap();
                            let v = v.trim_end_matches('"');
                            // `le="1"` (text 0.0.4) and `le="1.0"` (OpenMetrics) are one bound.
                            let v = match (k, v.parse::<f64>()) {
                                ("le", Ok(bound)) if bound.is_finite() => bound.to_string(),
                                _ => v.to_owned(),
                            };
                            (k.to_owned(), v)
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
                None => (series.to_owned(), BTreeMap::new()),
            };
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
            samples.insert((name, labels), value);
        }
        Self {
            samples,
            types,
            text: text.to_owned(),
        }
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let key = (name.to_owned(), labels);
        *self
            .samples
            .get(&key)
            .unwrap_or_else(|| panic!("no sample {name}{:?} in:\n{}", key.1, self.text))
    }

    fn has_type(&self, name: &str, kind: &str) {
        assert_eq!(
            self.types.get(name).map(String::as_str),
            Some(kind),
            "# TYPE {name} {kind} missing in:\n{}",
            self.text
        );
    }
}

fn review(service_account: &str) -> Value {
    azure_wi_test_support::admission_review::pod_review(
        "c0ffee00-0000-0000-0000-000000000002",
        "team-a",
        service_account,
    )
}

const WEBHOOK: &str = "/mutate-v1-pod";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_serves_upstreams_metrics_in_both_formats_and_logs_strict_flat_json() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let files = support::OfflineWebhook::new();
    let mut child = KillOnDrop(files.command("debug").env_remove("RUST_LOG").spawn().unwrap());
    let (rx, reader) = log_reader(child.0.stderr.take().unwrap());
    let mut logs = Vec::new();

    let start = wait_for(&rx, &mut logs, "starting the webhook");
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"), "{start}");
    assert!(
        start["config"]
            .as_str()
            .is_some_and(|c| c.contains("11111111-1111-1111-1111-111111111111")),
        "the effective configuration: {start}"
    );
    let listening = wait_for(&rx, &mut logs, "listening");
    let addr = |name: &str| support::OfflineWebhook::listening_addr(&listening, name);
    let (webhook, health, metrics) = (addr("webhook"), addr("health"), addr("metrics"));
    support::OfflineWebhook::wait_ready(health).await;

    let client = files.client(webhook);
    let url = support::OfflineWebhook::mutate_url(webhook);
    for sa in ["web", "ghost"] {
        let status = client.post(&url).json(&review(sa)).send().await.unwrap().status();
        assert_eq!(status, 200);
    }
    // Refused before decoding: 415, and a line with its reason.
    let refused = client
        .post(&url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 415);

    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let scrape = |accept: Option<&'static str>| {
        let request = plain.get(format!("http://{metrics}/metrics"));
        let request = match accept {
            Some(accept) => request.header("accept", accept),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
            (content_type, response.text().await.unwrap())
        }
    };

    // No Accept header: the Prometheus text format 0.0.4, as the Go client answers.
    let (content_type, text) = scrape(None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("# EOF"), "{text}");
    let prom = Exposition::parse(&text);
    // What Prometheus asks for: OpenMetrics.
    let (content_type, text) = scrape(Some(
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
         text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    ))
    .await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    let open = Exposition::parse(&text);

    for (format, exposition) in [("text 0.0.4", &prom), ("OpenMetrics", &open)] {
        eprintln!("checking {format}");
        let total = |name: &str| match format {
            "OpenMetrics" => name.trim_end_matches("_total").to_owned(),
            _ => name.to_owned(),
        };
        // controller-runtime's, with its label values: the path and the HTTP status.
        exposition.has_type(&total("controller_runtime_webhook_requests_total"), "counter");
        let requests = |code| {
            exposition.get(
                "controller_runtime_webhook_requests_total",
                &[("code", code), ("webhook", WEBHOOK)],
            )
        };
        assert_eq!(requests("200"), 2.0, "a mutation and a denial are both HTTP 200");
        assert_eq!(requests("415"), 1.0);
        assert_eq!(requests("500"), 0.0, "initialised as controller-runtime does");
        exposition.has_type("controller_runtime_webhook_latency_seconds", "histogram");
        for le in [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ] {
            exposition.get(
                "controller_runtime_webhook_latency_seconds_bucket",
                &[("le", le), ("webhook", WEBHOOK)],
            );
        }
        assert_eq!(
            exposition.get(
                "controller_runtime_webhook_latency_seconds_count",
                &[("webhook", WEBHOOK)]
            ),
            3.0
        );
        exposition.get(
            "controller_runtime_webhook_latency_seconds_sum",
            &[("webhook", WEBHOOK)],
        );
        exposition.has_type("controller_runtime_webhook_requests_in_flight", "gauge");
        assert_eq!(
            exposition.get(
                "controller_runtime_webhook_requests_in_flight",
                &[("webhook", WEBHOOK)]
            ),
            0.0
        );

        // The standard process metrics, with plausible values.
        exposition.has_type(&total("process_cpu_seconds_total"), "counter");
        assert!(exposition.get("process_cpu_seconds_total", &[]) >= 0.0);
        for gauge in [
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            exposition.has_type(gauge, "gauge");
        }
        assert!(exposition.get("process_resident_memory_bytes", &[]) > 1e6);
        assert!(
            exposition.get("process_virtual_memory_bytes", &[])
                >= exposition.get("process_resident_memory_bytes", &[])
        );
        let fds = exposition.get("process_open_fds", &[]);
        assert!(fds >= 3.0 && fds <= exposition.get("process_max_fds", &[]));
        let start_time = exposition.get("process_start_time_seconds", &[]);
        assert!(
            (started - 5.0..started + 60.0).contains(&start_time),
            "started at {start_time}, test began at {started}"
        );

        // Ours, unchanged.
        exposition.has_type("azwi_mutation_request", "histogram");
        exposition.get("azwi_mutation_request_count", &[("namespace", "team-a")]);
        exposition.has_type(&total("azwi_admission_requests_total"), "counter");
        assert_eq!(
            exposition.get("azwi_admission_requests_total", &[("outcome", "mutated")]),
            1.0
        );
        assert_eq!(
            exposition.get("azwi_admission_requests_total", &[("outcome", "denied")]),
            1.0
        );
        exposition.has_type(&total("azwi_certificate_reloads_total"), "counter");
        exposition.has_type("azwi_certificate_expiry_timestamp_seconds", "gauge");
        exposition.has_type("azwi_service_account_cache_synced", "gauge");
    }

    support::terminate(&mut child.0);
    reader.join().expect("every log line was strict, flat JSON");
    logs.extend(rx.try_iter());
    assert_eq!(
        logs.iter()
            .filter(|r| r["message"] == "starting the webhook")
            .count(),
        1
    );
    let rejected = logs
        .iter()
        .find(|r| r["message"] == "admission request rejected")
        .expect("the 415 is logged");
    assert_eq!(
        rejected["reason"], "Content-Type must be application/json",
        "{rejected}"
    );
    assert_eq!(rejected["status"], 415);
    let mutated = logs.iter().find(|r| r["message"] == "pod mutated").unwrap();
    assert_eq!(mutated["namespace"], "team-a", "fields are top-level: {mutated}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_and_token_log_the_same_flat_shape() {
    const IDENTITY_HEADER: &str = "an-identity-header-that-must-not-be-logged-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "header.payload.signature").unwrap();

    let mut proxy = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_azure-wi"))
            .args([
                "proxy",
                "--proxy-port",
                "0",
                "--identity-endpoint",
                "--log-level",
                "debug",
            ])
            .env_clear()
            .env("AZURE_TENANT_ID", "11111111-1111-1111-1111-111111111111")
            .env("AZURE_CLIENT_ID", "22222222-2222-2222-2222-222222222222")
            .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
            .env("IDENTITY_HEADER", IDENTITY_HEADER)
            // Never the real instance metadata service (tests/proxy/imds_destination.rs).
            .env("AZWI_PROXY_IMDS_ENDPOINT", "http://127.0.0.1:9")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (rx, reader) = log_reader(proxy.0.stderr.take().unwrap());
    let mut logs = Vec::new();
    let start = wait_for(&rx, &mut logs, "starting the token proxy");
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"), "{start}");
    assert_eq!(start["tenant_id"], "11111111-1111-1111-1111-111111111111");
    assert_eq!(start["identity_endpoint"], true);
    assert!(start["imds_endpoint"].is_string(), "{start}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    support::terminate(&mut proxy.0);
    reader.join().expect("every proxy log line was strict, flat JSON");
    logs.extend(rx.try_iter());
    let all = serde_json::to_string(&logs).unwrap();
    assert!(
        !all.contains(IDENTITY_HEADER),
        "the identity header was logged: {all}"
    );

    // `token` with debug logs, failing against an unreachable authority: every line but the last
    // is a log record of the same shape; the last is the command's error object.
    let output = support::run_azure_wi(
        &[
            "token",
            "--credential",
            "workload-identity",
            "https://management.azure.com/.default",
        ],
        &[
            ("RUST_LOG", "debug".into()),
            ("AZURE_TENANT_ID", "11111111-1111-1111-1111-111111111111".into()),
            ("AZURE_CLIENT_ID", "22222222-2222-2222-2222-222222222222".into()),
            ("AZURE_FEDERATED_TOKEN_FILE", token_file.display().to_string()),
            ("AZURE_AUTHORITY_HOST", "https://127.0.0.1:9/".into()),
        ],
    )
    .await;
    assert_ne!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let (last, records) = lines.split_last().unwrap();
    assert!(!records.is_empty(), "no debug line: {stderr}");
    for line in records {
        log_record(line);
    }
    let error: Value = serde_json::from_str(last).unwrap();
    assert!(error["error"].is_string(), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_webhook_even_when_nobody_reads_its_logs_any_more() {
    let files = support::OfflineWebhook::new();
    let mut child = KillOnDrop(files.command("debug").env_remove("RUST_LOG").spawn().unwrap());
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("\"listening\"") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the webhook ended before listening"
        );
    }
    // The log collector goes away: every later write to stderr fails.
    drop(stderr);
    support::sigterm(&child.0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            panic!("the webhook did not stop within 20 s of SIGTERM once its stderr was closed");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exited with {status}");
}
