//! `loadgen run`: requests over keep-alive connections, closed loop (back to back) or open loop
//! (`--rate`), and the figures as one JSON line.
//!
//! Each of `--concurrency` connections (TLS, or plain HTTP with `--plain`) has one request in
//! flight. Every answer is checked (`--expect-allowed`, `--expect-token` or the default
//! AdmissionReview check); a failed check counts as a failure and the connection is reopened.
//!
//! Fault runs: `--fresh-connections K` makes K of the connections handshake for every request (a
//! certificate rotation only shows on new handshakes; TLS session resumption is off, as in the API
//! server's Go client); every handshake's leaf certificate is fingerprinted (SHA-256) and the
//! report lists each certificate seen with its handshake count. `--stop-on-go-away` makes a
//! connection that receives `Connection: close` stop, as a client that moves to another replica
//! (the shutdown test); the run then ends when every connection has gone. A refused or failed
//! connection or handshake during the measured time counts as a failure (`connect_failures`).

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode, client::conn::http1};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::{proc_status, review::default_review};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The server's address (loopback only).
    #[arg(long, default_value = "127.0.0.1:9443")]
    addr: SocketAddr,
    /// Plain HTTP instead of TLS (no `--ca` needed).
    #[arg(long)]
    plain: bool,
    /// CA certificate to trust (from `write-cert`); required unless `--plain`.
    #[arg(long, required_unless_present = "plain")]
    ca: Option<PathBuf>,
    /// Server name to verify (TLS) and to send as `Host` (TLS only; plain HTTP sends `--addr`).
    #[arg(
        long,
        default_value = "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc"
    )]
    server_name: String,
    /// Request method: POST sends the review (or `--body`), GET sends no body.
    #[arg(long, default_value = "POST")]
    method: Method,
    /// Request path and query.
    #[arg(long, default_value = "/mutate-v1-pod")]
    path: String,
    /// Extra request header `Name: value` (repeatable), e.g. `Metadata: true`.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Connections, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Measured duration, in seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Unmeasured warm-up, in seconds.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// AdmissionReview to send (JSON); default: a two-container Deployment pod in `--namespace`.
    #[arg(long)]
    review: Option<PathBuf>,
    /// Namespace of the default review.
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// ServiceAccount of the default review.
    #[arg(long, default_value = "workload")]
    service_account: String,
    /// PID of the server, to report its memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Require `allowed: true` in every answer (otherwise any 200 AdmissionReview counts).
    #[arg(long, conflicts_with = "expect_token")]
    expect_allowed: bool,
    /// Require HTTP 200 and a JSON body with a non-empty `access_token` (token endpoints).
    #[arg(long)]
    expect_token: bool,
    /// Open-loop mode: send this many requests per second in all (spread evenly over the
    /// connections) instead of back to back. A request whose connection was still waiting for the
    /// previous answer at its scheduled send time is measured from that scheduled time, so a
    /// stalled server is not hidden (no coordinated omission). A request whose connection was free
    /// is measured from the moment it is sent: the client's own timer lateness (tokio's timer
    /// wheel has a 1 ms tick) is reported as `send_lag_ms`, not charged to the server.
    #[arg(long)]
    rate: Option<f64>,
    /// This many of the connections handshake anew for every request (the others keep alive).
    #[arg(long, default_value_t = 0)]
    fresh_connections: usize,
    /// A connection that receives `Connection: close` stops instead of reconnecting; the run
    /// ends early once every connection has stopped.
    #[arg(long)]
    stop_on_go_away: bool,
}

fn parse_header(value: &str) -> Result<(String, String), String> {
    let (name, val) = value
        .split_once(':')
        .ok_or_else(|| format!("header {value:?} must be `Name: value`"))?;
    Ok((name.trim().to_owned(), val.trim().to_owned()))
}

/// What makes an answer a success.
#[derive(Clone, Copy)]
enum Expect {
    /// HTTP 200 and an AdmissionReview with `response.allowed` (`Allowed`: it must be true).
    Review,
    Allowed,
    /// HTTP 200 and a non-empty `access_token`.
    Token,
}

impl Expect {
    fn check(self, status: StatusCode, body: &[u8]) -> bool {
        if status != StatusCode::OK {
            return false;
        }
        match self {
            Self::Review | Self::Allowed => serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|answer| answer.pointer("/response/allowed").and_then(Value::as_bool))
                .is_some_and(|allowed| allowed || matches!(self, Self::Review)),
            Self::Token => has_access_token(body),
        }
    }
}

/// Whether a JSON body has a non-empty string `access_token`, without building a tree: a scan
/// for `"access_token"`, `:` and an opening quote followed by a character other than `"`. Kept
/// cheap so the client spends its CPU on the wire, not on checking (the servers' own tests check
/// the answers in full).
fn has_access_token(body: &[u8]) -> bool {
    const KEY: &[u8] = b"\"access_token\"";
    let Some(at) = body.windows(KEY.len()).position(|w| w == KEY) else {
        return false;
    };
    let mut rest = body[at + KEY.len()..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace());
    if rest.next() != Some(&b':') {
        return false;
    }
    let mut rest = rest.skip_while(|b| b.is_ascii_whitespace());
    rest.next() == Some(&b'"') && rest.next().is_some_and(|b| *b != b'"')
}

/// How a worker opens connections.
#[derive(Clone)]
enum Connector {
    Plain,
    Tls(tokio_rustls::TlsConnector, ServerName<'static>),
}

impl Connector {
    /// Opens a connection; a TLS handshake is counted and its leaf certificate recorded.
    async fn connect(
        &self,
        addr: SocketAddr,
        shared: &Shared,
    ) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        Ok(match self {
            Self::Plain => {
                let (conn, driver) = http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(driver);
                conn
            }
            Self::Tls(connector, name) => {
                let tls = connector.connect(name.clone(), tcp).await?;
                shared.handshakes.fetch_add(1, Ordering::Relaxed);
                if let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    shared.record_certificate(leaf);
                }
                let (conn, driver) = http1::handshake(TokioIo::new(tls)).await?;
                tokio::spawn(driver);
                conn
            }
        })
    }
}

/// The request every worker sends (cloned per request).
#[derive(Clone)]
struct Template {
    method: Method,
    path: String,
    host: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Template {
    fn build(&self) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(&self.path)
            .header("host", &self.host);
        if self.method == Method::POST {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        Ok(request.body(Full::new(self.body.clone()))?)
    }
}

struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    failures: AtomicU64,
    connect_failures: AtomicU64,
    reconnects: AtomicU64,
    handshakes: AtomicU64,
    go_away: AtomicU64,
    /// Connections whose worker has ended (`--stop-on-go-away`, or an error).
    gone: AtomicUsize,
    started: Instant,
    /// Leaf certificate SHA-256 fingerprint -> (handshakes, first seen in seconds since the start).
    certificates: Mutex<HashMap<[u8; 32], (u64, f64)>>,
}

impl Shared {
    /// Nothing counted yet, not measuring, started now.
    fn new() -> Self {
        Self {
            measuring: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            handshakes: AtomicU64::new(0),
            go_away: AtomicU64::new(0),
            gone: AtomicUsize::new(0),
            started: Instant::now(),
            certificates: Mutex::new(HashMap::new()),
        }
    }

    fn record_certificate(&self, leaf: &[u8]) {
        let digest = ring::digest::digest(&ring::digest::SHA256, leaf);
        let mut fingerprint = [0; 32];
        fingerprint.copy_from_slice(digest.as_ref());
        let at = self.started.elapsed().as_secs_f64();
        let mut certificates = self.certificates.lock().unwrap_or_else(|e| e.into_inner());
        certificates.entry(fingerprint).or_insert((0, at)).0 += 1;
    }

    /// The certificates seen, in the order first seen, as report entries.
    fn certificates_report(&self) -> Vec<Value> {
        let mut certificates: Vec<([u8; 32], (u64, f64))> = self
            .certificates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        certificates.sort_by(|a, b| a.1.1.total_cmp(&b.1.1));
        certificates
            .iter()
            .map(|(fingerprint, (handshakes, first_seen))| {
                json!({"sha256": hex(fingerprint), "handshakes": handshakes,
                       "first_seen_s": (first_seen * 10.0).round() / 10.0})
            })
            .collect()
    }
}

/// How one connection behaves.
#[derive(Clone, Copy)]
struct WorkerOptions {
    expect: Expect,
    /// A new connection (and handshake) for every request.
    fresh: bool,
    stop_on_go_away: bool,
}

/// Runs the load and prints a human line and a JSON line.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    if !args.addr.ip().is_loopback() {
        bail!("--addr must be a loopback address");
    }
    if args.fresh_connections > args.concurrency {
        bail!("--fresh-connections cannot exceed --concurrency");
    }
    let connector = if args.plain {
        Connector::Plain
    } else {
        let ca_path = args.ca.as_ref().context("--ca is required for TLS")?;
        let mut tls = crate::cert::client_config(ca_path)?;
        // Full handshakes only, as the API server's Go client makes (no session cache): a resumed
        // session would not show a new certificate.
        tls.resumption = rustls::client::Resumption::disabled();
        Connector::Tls(
            tokio_rustls::TlsConnector::from(Arc::new(tls)),
            ServerName::try_from(args.server_name.clone())?,
        )
    };
    let body = if args.method != Method::POST {
        Bytes::new()
    } else {
        match &args.review {
            Some(path) => Bytes::from(std::fs::read(path)?),
            None => Bytes::from(serde_json::to_vec(&default_review(
                &args.namespace,
                &args.service_account,
            ))?),
        }
    };
    let template = Template {
        method: args.method.clone(),
        path: args.path.clone(),
        host: if args.plain {
            args.addr.to_string()
        } else {
            args.server_name.clone()
        },
        headers: args.headers.clone(),
        body,
    };
    let expect = match (args.expect_allowed, args.expect_token) {
        (_, true) => Expect::Token,
        (true, _) => Expect::Allowed,
        _ => Expect::Review,
    };
    let period = match args.rate {
        Some(rate) if rate > 0.0 => Some(Duration::from_secs_f64(args.concurrency as f64 / rate)),
        Some(_) => bail!("--rate must be positive"),
        None => None,
    };

    let shared = Arc::new(Shared::new());
    let mut workers = Vec::new();
    for index in 0..args.concurrency {
        let (connector, template, shared) = (connector.clone(), template.clone(), shared.clone());
        let addr = args.addr;
        let schedule = period.map(|p| (p, index as f64 / args.concurrency as f64));
        let options = WorkerOptions {
            expect,
            fresh: index < args.fresh_connections,
            stop_on_go_away: args.stop_on_go_away,
        };
        workers.push(tokio::spawn(async move {
            let latencies = worker(addr, connector, template, &shared, options, schedule).await;
            shared.gone.fetch_add(1, Ordering::SeqCst);
            latencies
        }));
    }

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    shared.measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let mut peak_rss_kib = 0;
    while started.elapsed() < Duration::from_secs(args.duration)
        && shared.gone.load(Ordering::SeqCst) < args.concurrency
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(pid) = args.pid {
            peak_rss_kib = peak_rss_kib.max(proc_status::kib(pid, "VmRSS:").unwrap_or(0));
        }
    }
    shared.measuring.store(false, Ordering::SeqCst);
    let elapsed = started.elapsed();
    shared.stop.store(true, Ordering::SeqCst);

    let (mut latencies, mut lags, mut late_sends) = (Vec::new(), Vec::new(), 0);
    for worker in workers {
        let report = worker.await??;
        latencies.extend(report.latencies);
        lags.extend(report.lags);
        late_sends += report.late_sends;
    }
    latencies.sort_unstable();
    lags.sort_unstable();
    let count = latencies.len();
    let pct = |p: f64| percentile_ms(&latencies, p);
    let throughput = count as f64 / elapsed.as_secs_f64();
    let failures = shared.failures.load(Ordering::SeqCst);
    let certificates = shared.certificates_report();
    let report = json!({
        "concurrency": args.concurrency,
        "duration_s": elapsed.as_secs_f64(),
        "requests": count,
        "failures": failures,
        "connect_failures": shared.connect_failures.load(Ordering::SeqCst),
        "reconnects": shared.reconnects.load(Ordering::SeqCst),
        "handshakes": shared.handshakes.load(Ordering::SeqCst),
        "fresh_connections": args.fresh_connections,
        "go_away_responses": shared.go_away.load(Ordering::SeqCst),
        "connections_gone": shared.gone.load(Ordering::SeqCst),
        "distinct_certificates": certificates.len(),
        "certificates": certificates,
        "throughput_rps": (throughput * 10.0).round() / 10.0,
        "latency_ms": {"p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0), "p99_9": pct(99.9),
                        "max": latencies.last().map_or(f64::NAN, |v| *v as f64 / 1000.0)},
        "server_rss_mib": args.pid.and_then(|pid| proc_status::kib(pid, "VmRSS:")).map(|k| k as f64 / 1024.0),
        "server_rss_peak_during_run_mib": args.pid.map(|_| peak_rss_kib as f64 / 1024.0),
        "server_vmhwm_mib": args.pid.and_then(|pid| proc_status::kib(pid, "VmHWM:")).map(|k| k as f64 / 1024.0),
        "request_bytes": template.body.len(),
        "rate_rps": args.rate,
        "send_lag_ms": period.map(|_| json!({"p50": percentile_ms(&lags, 50.0), "p99": percentile_ms(&lags, 99.0)})),
        "late_sends": period.map(|_| late_sends),
    });
    println!(
        "{count} requests in {:.1} s at concurrency {}: {throughput:.0} req/s, {failures} failed; latency p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
        elapsed.as_secs_f64(),
        args.concurrency,
        pct(50.0),
        pct(99.0),
        pct(99.9)
    );
    println!("{report}");
    if failures > 0 {
        bail!("{failures} requests failed");
    }
    Ok(())
}

async fn worker(
    addr: SocketAddr,
    connector: Connector,
    template: Template,
    shared: &Shared,
    options: WorkerOptions,
    schedule: Option<(Duration, f64)>,
) -> anyhow::Result<WorkerReport> {
    let period = schedule.map(|(period, _)| period);
    let mut latencies = Vec::with_capacity(1 << 16);
    // Open loop only: the client's lateness for on-time sends, and the sends that were due while
    // the connection was busy.
    let (mut lags, mut late_sends) = (Vec::new(), 0u64);
    let mut last_answer: Option<Instant> = None;
    // Open loop: the connections' first sends are spread evenly over one period.
    let mut next_send = schedule.map(|(period, phase)| tokio::time::Instant::now() + period.mul_f64(phase));
    let mut sender: Option<http1::SendRequest<Full<Bytes>>> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        let mut conn = match sender.take() {
            Some(conn) if !conn.is_closed() => conn,
            previous => {
                if previous.is_some() {
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                match connector.connect(addr, shared).await {
                    Ok(conn) => conn,
                    Err(error) => {
                        if shared.measuring.load(Ordering::Relaxed) {
                            shared.connect_failures.fetch_add(1, Ordering::Relaxed);
                            shared.failures.fetch_add(1, Ordering::Relaxed);
                            eprintln!("connection failed: {error:#}");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            }
        };
        let request = template.build()?;
        let started = match (next_send.as_mut(), period) {
            (Some(next), Some(period)) => {
                let scheduled = next.into_std();
                tokio::time::sleep_until(*next).await;
                *next += period;
                let (origin, lag) = latency_origin(scheduled, Instant::now(), last_answer);
                if shared.measuring.load(Ordering::Relaxed) {
                    match lag {
                        Some(lag) => lags.push(micros(lag)),
                        None => late_sends += 1,
                    }
                }
                origin
            }
            _ => Instant::now(),
        };
        let mut go_away = false;
        let ok = async {
            conn.ready().await.ok()?;
            let response = conn.send_request(request).await.ok()?;
            let status = response.status();
            go_away = says_close(response.headers());
            let bytes = response.into_body().collect().await.ok()?.to_bytes();
            options.expect.check(status, &bytes).then_some(())
        }
        .await
        .is_some();
        last_answer = Some(Instant::now());
        if shared.measuring.load(Ordering::Relaxed) {
            if ok {
                latencies.push(micros(started.elapsed()));
            } else {
                shared.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        if go_away {
            shared.go_away.fetch_add(1, Ordering::Relaxed);
            if options.stop_on_go_away {
                break;
            }
        }
        if ok && !options.fresh {
            sender = Some(conn);
        }
    }
    Ok(WorkerReport {
        latencies,
        lags,
        late_sends,
    })
}

/// What one connection measured.
struct WorkerReport {
    /// Microseconds per successful request.
    latencies: Vec<u32>,
    /// Open loop: microseconds between the scheduled and the actual send of on-time requests.
    lags: Vec<u32>,
    /// Open loop: requests due while the connection still waited for the previous answer.
    late_sends: u64,
}

/// Where an open-loop request's latency is measured from, and the client's own lateness.
///
/// If the previous answer on this connection came after the request was due, the server held the
/// connection: the latency runs from the scheduled time (no coordinated omission) and there is no
/// client lag. Otherwise the connection was free and only the client's timer was late: the latency
/// runs from the actual send and the lag is reported apart.
fn latency_origin(
    scheduled: Instant,
    woke: Instant,
    last_answer: Option<Instant>,
) -> (Instant, Option<Duration>) {
    if last_answer.is_some_and(|at| at > scheduled) {
        (scheduled, None)
    } else {
        (woke, Some(woke.saturating_duration_since(scheduled)))
    }
}

fn micros(elapsed: Duration) -> u32 {
    elapsed.as_micros().min(u128::from(u32::MAX)) as u32
}

/// The `p`th percentile (nearest rank) of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = (p * sorted.len() as f64 / 100.0).ceil() as usize;
    f64::from(sorted[index.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// Whether an answer's `Connection` header has the `close` option (the server goes away).
fn says_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|option| option.trim().eq_ignore_ascii_case("close"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_connection_is_measured_from_the_schedule_and_a_free_one_from_the_send() {
        let scheduled = Instant::now();
        let woke = scheduled + Duration::from_micros(900);
        // The previous answer arrived after the request was due: the server's delay counts.
        let late_answer = Some(scheduled + Duration::from_micros(300));
        assert_eq!(latency_origin(scheduled, woke, late_answer), (scheduled, None));
        // The connection was free: the timer's 900 µs are the client's, reported as lag.
        let early_answer = Some(scheduled - Duration::from_micros(300));
        let expected = (woke, Some(Duration::from_micros(900)));
        assert_eq!(latency_origin(scheduled, woke, early_answer), expected);
        assert_eq!(latency_origin(scheduled, woke, None), expected);
    }

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let sorted: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile_ms(&sorted, 50.0), 0.5);
        assert_eq!(percentile_ms(&sorted, 99.0), 0.99);
        assert_eq!(percentile_ms(&sorted, 99.9), 0.999);
        assert!(percentile_ms(&[], 99.0).is_nan());
    }

    #[test]
    fn token_answers_are_recognised() {
        assert!(has_access_token(
            br#"{"access_token":"ey.x.y","expires_in":3599}"#
        ));
        assert!(has_access_token(br#"{"a":1, "access_token" : "t"}"#));
        assert!(!has_access_token(br#"{"access_token":""}"#));
        assert!(!has_access_token(br#"{"error":"invalid_request"}"#));
        assert!(!has_access_token(br#"{"access_token":null}"#));
        assert!(Expect::Token.check(StatusCode::OK, br#"{"access_token":"t"}"#));
        assert!(!Expect::Token.check(StatusCode::BAD_REQUEST, br#"{"access_token":"t"}"#));
    }

    #[test]
    fn connection_close_is_a_go_away() {
        let mut headers = HeaderMap::new();
        assert!(!says_close(&headers));
        headers.insert(hyper::header::CONNECTION, "keep-alive".parse().unwrap());
        assert!(!says_close(&headers));
        headers.insert(hyper::header::CONNECTION, "Close".parse().unwrap());
        assert!(says_close(&headers));
        headers.insert(hyper::header::CONNECTION, "upgrade, close".parse().unwrap());
        assert!(says_close(&headers));
    }

    #[test]
    fn fingerprints_are_lower_hex() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        let shared = Shared::new();
        shared.record_certificate(b"one");
        shared.record_certificate(b"two");
        shared.record_certificate(b"one");
        let report = shared.certificates_report();
        assert_eq!(report.len(), 2);
        let one = report
            .iter()
            .find(|c| c["handshakes"] == 2)
            .expect("the certificate seen twice");
        // SHA-256("one"), as `printf one | sha256sum` prints it.
        assert_eq!(
            one["sha256"],
            "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
        );
    }

    #[test]
    fn review_answers_are_checked() {
        let denied = br#"{"response":{"allowed":false}}"#;
        assert!(Expect::Review.check(StatusCode::OK, denied));
        assert!(!Expect::Allowed.check(StatusCode::OK, denied));
        assert!(Expect::Allowed.check(StatusCode::OK, br#"{"response":{"uid":"u","allowed":true}}"#));
        assert!(!Expect::Review.check(StatusCode::OK, b"ok"));
    }
}
