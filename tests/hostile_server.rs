//! The webhook process against hostile clients on its three ports (issue 15): silent sockets
//! held by the hundred under a low file-descriptor limit, oversized heads, bad flags.

mod support;

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const HOST: &str = support::OfflineWebhook::HOST;

struct Webhook {
    child: std::process::Child,
    webhook: SocketAddr,
    health: SocketAddr,
    metrics: SocketAddr,
    files: support::OfflineWebhook,
    /// Bytes the process has written to stderr (its JSON log) so far.
    log: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `azure-wi webhook` (offline), run through `prlimit` with `nofile` file descriptors.
fn start(nofile: u32, extra: &[&str]) -> Webhook {
    use std::io::{BufRead, BufReader};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let files = support::OfflineWebhook::new();
    let inner = files.command("info");
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={nofile}:{nofile}"))
        .arg("--")
        .arg(inner.get_program())
        .args(inner.get_args())
        .args(extra)
        .env("AZURE_TENANT_ID", "11111111-1111-1111-1111-111111111111")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .expect("prlimit (util-linux) runs the webhook with a file-descriptor limit");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let listening = loop {
        let line = lines.next().expect("the webhook logs its addresses").unwrap();
        if let Ok(record) = serde_json::from_str::<serde_json::Value>(&line)
            && record["message"] == "listening"
        {
            break record;
        }
    };
    // Keep draining the log so the process never blocks on a full pipe.
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut sink = sink.lock().unwrap();
            sink.extend_from_slice(line.as_bytes());
            sink.push(b'\n');
        }
    });
    let addr = |name: &str| listening[name].as_str().unwrap().parse().unwrap();
    Webhook {
        child,
        webhook: addr("webhook"),
        health: addr("health"),
        metrics: addr("metrics"),
        files,
        log,
    }
}

fn review() -> Vec<u8> {
    serde_json::to_vec(&azure_wi_test_support::admission_review::pod_review(
        "c0ffee00-0000-0000-0000-000000000015",
        "team-a",
        "web",
    ))
    .unwrap()
}

/// One admission through a fresh HTTPS client; whether it was allowed.
async fn admitted(webhook: &Webhook) -> bool {
    let client = webhook.files.client(webhook.webhook);
    let response = client
        .post(support::OfflineWebhook::mutate_url(webhook.webhook))
        .header("content-type", "application/json")
        .body(review())
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match response {
        Ok(response) => {
            let answer: serde_json::Value = response.json().await.unwrap_or_default();
            answer["response"]["allowed"] == true
        }
        Err(error) => panic!("admission failed: {error}"),
    }
}

async fn get_status(addr: SocketAddr, path: &str) -> u16 {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    client
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {path} on {addr}: {error}"))
        .status()
        .as_u16()
}

/// Opens `n` TCP connections to `addr` that never send a byte.
async fn silent(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        streams.push(TcpStream::connect(addr).await.unwrap());
    }
    streams
}

/// Whether the server closed `stream` (EOF or reset) by `deadline`.
async fn closed_by_server<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    deadline: tokio::time::Instant,
) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout_at(deadline, stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_by_the_hundred_neither_starve_admissions_nor_probes_and_are_closed() {
    // 300 file descriptors for the whole process, and 320 silent sockets on a port: without
    // a cap the process runs out of descriptors; without a first-bytes deadline nothing is
    // ever closed.
    // (Kept under the test process's own default limit of 1,024 descriptors.)
    let webhook = start(300, &["--max-connections", "100"]);
    support::OfflineWebhook::wait_ready(webhook.health).await;
    let mut held = Vec::new();
    for (addr, n) in [
        (webhook.metrics, 320),
        (webhook.health, 200),
        (webhook.webhook, 320),
    ] {
        held.extend(silent(addr, n).await);
    }
    // TLS connections that finish the handshake and then say nothing.
    let tls = tokio_rustls::TlsConnector::from(Arc::new(webhook.files.tls_config()));
    let mut quiet_tls = Vec::new();
    for _ in 0..50 {
        let tcp = TcpStream::connect(webhook.webhook).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
        quiet_tls.push(tls.connect(name, tcp).await.expect("the handshake completes"));
    }

    let started = std::time::Instant::now();
    for _ in 0..3 {
        assert!(
            admitted(&webhook).await,
            "an admission is answered while sockets are held"
        );
        assert_eq!(get_status(webhook.health, "/healthz").await, 200);
        assert_eq!(get_status(webhook.health, "/readyz").await, 200);
        assert_eq!(get_status(webhook.metrics, "/metrics").await, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // Every silent connection is closed by the server: at once to make room, or after the 10 s
    // first-bytes deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut open = 0;
    for stream in &mut held {
        if !closed_by_server(stream, deadline).await {
            open += 1;
        }
    }
    let mut open_tls = 0;
    for stream in &mut quiet_tls {
        if !closed_by_server(stream, deadline).await {
            open_tls += 1;
        }
    }
    assert_eq!(
        (open, open_tls),
        (0, 0),
        "silent connections left open by the server"
    );
    // And the process still serves.
    assert!(admitted(&webhook).await);
    assert_eq!(get_status(webhook.health, "/healthz").await, 200);
}

/// Sends `head` on a fresh TLS connection to the admission port and returns the status line
/// the server answered (empty when the connection was dropped without one).
async fn status_line_for(webhook: &Webhook, head: &[u8]) -> String {
    let tls = tokio_rustls::TlsConnector::from(Arc::new({
        let mut config = webhook.files.tls_config();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }));
    let tcp = TcpStream::connect(webhook.webhook).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
    let mut stream = tls.connect(name, tcp).await.unwrap();
    // Writing may fail part-way once the server has answered and closed: the answer counts.
    let _ = stream.write_all(head).await;
    let _ = stream.flush().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_are_answered_431_or_414_not_dropped() {
    let webhook = start(1024, &[]);
    support::OfflineWebhook::wait_ready(webhook.health).await;
    let big_header = format!(
        "POST /mutate-v1-pod HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let line = status_line_for(&webhook, big_header.as_bytes()).await;
    assert!(line.starts_with("HTTP/1.1 431"), "200 KB header: {line:?}");
    let long_path = format!(
        "GET /{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n",
        "p".repeat(2 * 1024 * 1024)
    );
    let line = status_line_for(&webhook, long_path.as_bytes()).await;
    assert!(
        line.starts_with("HTTP/1.1 431") || line.starts_with("HTTP/1.1 414"),
        "2 MB path: {line:?}"
    );
    // The plain ports too.
    for addr in [webhook.health, webhook.metrics] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(long_path.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 431") || text.starts_with("HTTP/1.1 414"),
            "{addr}: {:?}",
            text.lines().next()
        );
    }
    assert!(admitted(&webhook).await);
}

/// Posts `body` to the admission endpoint; returns the status and the answer's size.
async fn post(webhook: &Webhook, body: Vec<u8>) -> (u16, usize) {
    let response = webhook
        .files
        .client(webhook.webhook)
        .post(support::OfflineWebhook::mutate_url(webhook.webhook))
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_of_input_are_quoted_only_in_part_in_answers_and_log_lines() {
    let webhook = start(1024, &[]);
    support::OfflineWebhook::wait_ready(webhook.health).await;
    let before = webhook.log.lock().unwrap().len();
    let mut review: serde_json::Value = serde_json::from_slice(&review()).unwrap();
    review["request"]["object"]["metadata"]["annotations"] =
        json!({"azure.workload.identity/service-account-token-expiration": "9".repeat(3_000_000)});
    let (status, size) = post(&webhook, serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, 200);
    assert!(size < 1_000, "a denial of {size} bytes");
    review["request"]["object"]["metadata"]["annotations"] = json!({});
    review["request"]["uid"] = json!("u".repeat(1_000_000));
    let (status, size) = post(&webhook, serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, 400);
    assert!(size < 1_000, "a refusal of {size} bytes");
    // The lines are written before the answers; give the reader thread a moment.
    let mut logged = String::new();
    for _ in 0..50 {
        logged = String::from_utf8_lossy(&webhook.log.lock().unwrap()[before..]).into_owned();
        if logged.contains("pod denied") && logged.contains("1000000 bytes") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged.contains("pod denied"), "{logged}");
    assert!(logged.contains("(3000000 bytes)"), "{logged}");
    assert!(logged.contains("1000000 bytes"), "{logged}");
    assert!(
        logged.len() < 4_000,
        "{} bytes logged for two requests",
        logged.len()
    );
}

/// Runs `azure-wi webhook` (offline) with `extra` flags to its exit; returns (exit code, stderr).
fn run_to_exit(extra: &[&str]) -> (Option<i32>, String) {
    let files = support::OfflineWebhook::new();
    let inner = files.command("info");
    // The support command's arguments, less those `extra` replaces (each is given once).
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut skip = false;
    for arg in inner.get_args() {
        if skip {
            skip = false;
            continue;
        }
        if extra.iter().any(|e| e.starts_with("--") && arg == *e) {
            skip = true;
            continue;
        }
        args.push(arg.to_owned());
    }
    let mut child = Command::new(inner.get_program())
        .args(args)
        .args(extra)
        .env("AZURE_TENANT_ID", "11111111-1111-1111-1111-111111111111")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a webhook that starts serving instead of refusing is stopped after 10 s (`None`).
    // Its log is read meanwhile so that it never blocks on a full pipe.
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read as _;
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let code = azure_wi_test_support::child_exit::exit_code_within(&mut child, Duration::from_secs(10));
    (code, reader.join().unwrap())
}

#[test]
fn a_zero_request_size_limit_is_refused_at_start_naming_the_flag() {
    let (code, stderr) = run_to_exit(&["--max-request-bytes", "0"]);
    assert!(code.is_some_and(|c| c != 0), "{code:?}: {stderr}");
    assert!(stderr.contains("--max-request-bytes"), "{stderr}");
    assert!(stderr.contains("at least 1"), "{stderr}");
    let (code, stderr) = run_to_exit(&["--max-connections", "0"]);
    assert!(code.is_some_and(|c| c != 0), "{code:?}: {stderr}");
    assert!(stderr.contains("--max-connections"), "{stderr}");
}

#[test]
fn an_address_in_use_is_reported_once_with_its_cause() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run_to_exit(&["--health-addr", &addr]);
    assert!(code.is_some_and(|c| c != 0), "{code:?}: {stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
    assert_eq!(stderr.matches("in use").count(), 1, "{stderr}");
}
