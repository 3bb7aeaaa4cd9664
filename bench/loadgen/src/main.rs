//! Load generator for `azure-wi webhook`.
//!
//! `loadgen run` opens `--concurrency` TLS connections to the webhook (keep-alive, HTTP/1.1), and
//! on each sends AdmissionReviews back to back for `--duration` after a `--warmup`. It reports
//! throughput, latency percentiles (p50/p90/p99/p99.9/max), failures, and the server's resident
//! memory read from `/proc/<pid>/status` (`--pid`): VmRSS at the end and VmHWM (peak).
//!
//! Fault runs: `--fresh-connections K` makes K of the connections handshake for every request (a
//! certificate rotation only shows on new handshakes); every handshake's leaf certificate is
//! fingerprinted (SHA-256) and the report lists each certificate seen with its handshake count.
//! `--stop-on-go-away` makes a connection that receives `Connection: close` stop, as a client that
//! moves to another replica (the shutdown test); the run then ends when every connection has gone.
//! A refused or failed connection or handshake counts as a failure (`connect_failures`).
//!
//! `loadgen write-cert --dir DIR` writes a CA (`ca.crt`) and a serving certificate
//! (`tls.crt`/`tls.key`) for `--name` and `127.0.0.1`, to start the webhook with; `--leaves N`
//! also writes N more serving certificates from the same CA (`leaf-<i>.crt`/`leaf-<i>.key`), to
//! swap in during a run.
//!
//! `loadgen hostile` opens connections that never finish a request: endless chunked bodies sent
//! as fast as the server takes them, and slow-loris headers (a byte now and then); each reconnects
//! when the server cuts it, and the report counts the cuts.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http1};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

#[derive(Parser)]
#[command(about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sends AdmissionReviews at a fixed concurrency and reports the figures.
    Run(RunArgs),
    /// Writes ca.crt, tls.crt and tls.key for a local webhook.
    WriteCert {
        /// Directory to write into (created if needed).
        #[arg(long)]
        dir: PathBuf,
        /// DNS name of the serving certificate.
        #[arg(
            long,
            default_value = "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc"
        )]
        name: String,
        /// Also write this many more serving certificates from the same CA (leaf-<i>.crt/.key).
        #[arg(long, default_value_t = 0)]
        leaves: usize,
    },
    /// Opens connections that never complete a request (endless bodies, slow-loris headers).
    Hostile(HostileArgs),
}

#[derive(clap::Args)]
struct HostileArgs {
    /// The webhook's address (loopback only).
    #[arg(long, default_value = "127.0.0.1:9443")]
    addr: SocketAddr,
    /// CA certificate to trust (from `write-cert`).
    #[arg(long)]
    ca: PathBuf,
    /// Server name to verify.
    #[arg(
        long,
        default_value = "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc"
    )]
    server_name: String,
    /// Connections sending an endless chunked body as fast as the server reads it.
    #[arg(long, default_value_t = 100)]
    endless: usize,
    /// Connections sending request headers one byte per `--drip-ms`.
    #[arg(long, default_value_t = 100)]
    slow_loris: usize,
    /// Delay between the slow-loris bytes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    drip_ms: u64,
    /// How long to keep it up, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// PID of the server, to report its memory (sampled every 100 ms).
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The webhook's address (loopback only).
    #[arg(long, default_value = "127.0.0.1:9443")]
    addr: SocketAddr,
    /// CA certificate to trust (from `write-cert`).
    #[arg(long)]
    ca: PathBuf,
    /// Server name to verify.
    #[arg(
        long,
        default_value = "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc"
    )]
    server_name: String,
    /// Request path.
    #[arg(long, default_value = "/mutate-v1-pod")]
    path: String,
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
    #[arg(long)]
    expect_allowed: bool,
    /// Open-loop mode: send this many requests per second in all (spread evenly over the
    /// connections) instead of back to back. Latency is measured from each request's scheduled
    /// send time, so a stalled server is not hidden (no coordinated omission).
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

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::WriteCert { dir, name, leaves } => write_cert(&dir, &name, leaves),
        Command::Hostile(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(hostile(args)),
        Command::Run(args) => {
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()?
                .block_on(run(args))
        }
    }
}

fn write_cert(dir: &Path, name: &str, leaves: usize) -> anyhow::Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "azure-wi loadgen CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf = |file: &str| -> anyhow::Result<()> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![name.to_owned()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.signed_by(&key, &issuer)?;
        std::fs::write(dir.join(format!("{file}.crt")), cert.pem())?;
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem())?;
        Ok(())
    };
    std::fs::write(dir.join("ca.crt"), ca_cert.pem())?;
    leaf("tls")?;
    for i in 0..leaves {
        leaf(&format!("leaf-{i}"))?;
    }
    println!(
        "wrote {}/{{ca.crt,tls.crt,tls.key}} and {leaves} more leaves for {name}",
        dir.display()
    );
    Ok(())
}

fn default_review(namespace: &str, service_account: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000001",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": "workload-6d4cf56db6-",
                    "labels": {"app": "workload", "azure.workload.identity/use": "true", "pod-template-hash": "6d4cf56db6"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "workload-6d4cf56db6",
                        "uid": "8b0b6a3e-0d2f-4c55-9b39-3d2b7f1f0a11", "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": {
                    "serviceAccountName": service_account,
                    "containers": [
                        {"name": "app", "image": "registry.example/app:1.2.3", "ports": [{"containerPort": 8080}],
                         "env": [{"name": "LOG_LEVEL", "value": "info"}],
                         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                         "volumeMounts": [{"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]},
                        {"name": "sidecar", "image": "registry.example/sidecar:4.5.6"}
                    ],
                    "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst"
                }
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    failures: AtomicU64,
    connect_failures: AtomicU64,
    reconnects: AtomicU64,
    handshakes: AtomicU64,
    go_away: AtomicU64,
    gone: AtomicUsize,
    started: Instant,
    /// Leaf certificate fingerprint -> (handshakes, first seen, seconds since the start).
    certificates: Mutex<HashMap<[u8; 32], (u64, f64)>>,
}

impl Shared {
    fn record_certificate(&self, leaf: &[u8]) {
        let digest = ring::digest::digest(&ring::digest::SHA256, leaf);
        let mut fingerprint = [0; 32];
        fingerprint.copy_from_slice(digest.as_ref());
        let at = self.started.elapsed().as_secs_f64();
        let mut certificates = self.certificates.lock().unwrap();
        certificates.entry(fingerprint).or_insert((0, at)).0 += 1;
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    if !args.addr.ip().is_loopback() {
        bail!("--addr must be a loopback address");
    }
    let ca = std::fs::read(&args.ca).with_context(|| format!("cannot read {}", args.ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert?)?;
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Full handshakes only, as the API server's Go client makes (no session cache): a resumed
    // session would not show a new certificate.
    tls.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let server_name = ServerName::try_from(args.server_name.clone())?;
    let body = match &args.review {
        Some(path) => Bytes::from(std::fs::read(path)?),
        None => Bytes::from(serde_json::to_vec(&default_review(
            &args.namespace,
            &args.service_account,
        ))?),
    };

    let shared = Arc::new(Shared {
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
    });
    if args.fresh_connections > args.concurrency {
        bail!("--fresh-connections cannot exceed --concurrency");
    }
    let mut workers = Vec::new();
    for index in 0..args.concurrency {
        let (connector, server_name, body, shared) = (
            connector.clone(),
            server_name.clone(),
            body.clone(),
            shared.clone(),
        );
        let (addr, path, authority) = (args.addr, args.path.clone(), args.server_name.clone());
        let options = WorkerOptions {
            expect_allowed: args.expect_allowed,
            fresh: index < args.fresh_connections,
            stop_on_go_away: args.stop_on_go_away,
        };
        let period = match args.rate {
            Some(rate) if rate > 0.0 => Some(Duration::from_secs_f64(args.concurrency as f64 / rate)),
            Some(_) => bail!("--rate must be positive"),
            None => None,
        };
        workers.push(tokio::spawn(async move {
            worker(
                addr,
                connector,
                server_name,
                authority,
                path,
                body,
                shared,
                options,
                period.map(|p| (p, index as f64 / args.concurrency as f64)),
            )
            .await
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
            peak_rss_kib = peak_rss_kib.max(proc_status_kib(pid, "VmRSS:").unwrap_or(0));
        }
    }
    shared.measuring.store(false, Ordering::SeqCst);
    let elapsed = started.elapsed();
    shared.stop.store(true, Ordering::SeqCst);

    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    latencies.sort_unstable();
    let count = latencies.len();
    let pct = |p: f64| -> f64 {
        if count == 0 {
            return f64::NAN;
        }
        let index = ((p / 100.0) * count as f64).ceil() as usize;
        latencies[index.clamp(1, count) - 1] as f64 / 1000.0
    };
    let throughput = count as f64 / elapsed.as_secs_f64();
    let failures = shared.failures.load(Ordering::SeqCst);
    let mut certificates: Vec<([u8; 32], (u64, f64))> = shared
        .certificates
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    certificates.sort_by(|a, b| a.1.1.total_cmp(&b.1.1));
    let certificates: Vec<Value> = certificates
        .iter()
        .map(|(fingerprint, (handshakes, first_seen))| {
            json!({"sha256": hex(fingerprint), "handshakes": handshakes,
                   "first_seen_s": (first_seen * 10.0).round() / 10.0})
        })
        .collect();
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
        "server_rss_mib": args.pid.and_then(|pid| proc_status_kib(pid, "VmRSS:")).map(|k| k as f64 / 1024.0),
        "server_rss_peak_during_run_mib": args.pid.map(|_| peak_rss_kib as f64 / 1024.0),
        "server_vmhwm_mib": args.pid.and_then(|pid| proc_status_kib(pid, "VmHWM:")).map(|k| k as f64 / 1024.0),
        "request_bytes": body.len(),
        "rate_rps": args.rate,
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

#[allow(clippy::too_many_arguments)]
async fn worker(
    addr: SocketAddr,
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    authority: String,
    path: String,
    body: Bytes,
    shared: Arc<Shared>,
    options: WorkerOptions,
    schedule: Option<(Duration, f64)>,
) -> anyhow::Result<Vec<u32>> {
    let latencies = worker_loop(
        addr,
        connector,
        server_name,
        authority,
        path,
        body,
        &shared,
        options,
        schedule,
    )
    .await;
    shared.gone.fetch_add(1, Ordering::SeqCst);
    latencies
}

#[derive(Clone, Copy)]
struct WorkerOptions {
    expect_allowed: bool,
    fresh: bool,
    stop_on_go_away: bool,
}

async fn connect(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    server_name: &ServerName<'static>,
    shared: &Shared,
) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = connector.connect(server_name.clone(), tcp).await?;
    shared.handshakes.fetch_add(1, Ordering::Relaxed);
    if let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        shared.record_certificate(leaf);
    }
    let (conn, driver) = http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(driver);
    Ok(conn)
}

#[allow(clippy::too_many_arguments)]
async fn worker_loop(
    addr: SocketAddr,
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    authority: String,
    path: String,
    body: Bytes,
    shared: &Shared,
    options: WorkerOptions,
    schedule: Option<(Duration, f64)>,
) -> anyhow::Result<Vec<u32>> {
    let period = schedule.map(|(period, _)| period);
    let mut latencies = Vec::with_capacity(1 << 16);
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
                match connect(addr, &connector, &server_name, shared).await {
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
        let request = Request::post(&path)
            .header("host", &authority)
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?;
        let started = match (next_send.as_mut(), period) {
            (Some(next), Some(period)) => {
                tokio::time::sleep_until(*next).await;
                let scheduled = next.into_std();
                *next += period;
                scheduled
            }
            _ => Instant::now(),
        };
        let mut go_away = false;
        let ok = async {
            conn.ready().await.ok()?;
            let response = conn.send_request(request).await.ok()?;
            let status = response.status();
            go_away = response
                .headers()
                .get(hyper::header::CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let bytes = response.into_body().collect().await.ok()?.to_bytes();
            let answer: Value = serde_json::from_slice(&bytes).ok()?;
            let allowed = answer.pointer("/response/allowed").and_then(Value::as_bool)?;
            (status == 200 && (allowed || !options.expect_allowed)).then_some(())
        }
        .await
        .is_some();
        let micros = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        if shared.measuring.load(Ordering::Relaxed) {
            if ok {
                latencies.push(micros);
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
    Ok(latencies)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Connections that never finish a request; reports how often the server cut them.
async fn hostile(args: HostileArgs) -> anyhow::Result<()> {
    if !args.addr.ip().is_loopback() {
        bail!("--addr must be a loopback address");
    }
    let ca = std::fs::read(&args.ca).with_context(|| format!("cannot read {}", args.ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert?)?;
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let server_name = ServerName::try_from(args.server_name.clone())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.duration);
    let counters = Arc::new(HostileCounters::default());
    let idle_hwm = args.pid.and_then(|pid| proc_status_kib(pid, "VmHWM:"));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.endless + args.slow_loris {
        let endless = i < args.endless;
        let (connector, server_name, counters) = (connector.clone(), server_name.clone(), counters.clone());
        let (addr, host, drip) = (
            args.addr,
            args.server_name.clone(),
            Duration::from_millis(args.drip_ms),
        );
        tasks.spawn(async move {
            while tokio::time::Instant::now() < deadline {
                let attempt = async {
                    let tcp = TcpStream::connect(addr).await?;
                    let mut tls = connector.connect(server_name.clone(), tcp).await?;
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    if endless {
                        let head = format!(
                            "POST /mutate-v1-pod HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                        );
                        tls.write_all(head.as_bytes()).await?;
                        let chunk = format!("{:x}\r\n{}\r\n", 16384, " ".repeat(16384));
                        loop {
                            tls.write_all(chunk.as_bytes()).await?;
                            counters.body_bytes.fetch_add(16384, Ordering::Relaxed);
                        }
                    } else {
                        let head = format!("POST /mutate-v1-pod HTTP/1.1\r\nHost: {host}\r\nX-Slow: ");
                        let mut buf = [0u8; 1024];
                        for byte in head.bytes().chain(std::iter::repeat(b'a')) {
                            tls.write_all(&[byte]).await?;
                            tls.flush().await?;
                            tokio::select! {
                                () = tokio::time::sleep(drip) => {}
                                read = tls.read(&mut buf) => {
                                    read?;
                                    // An answer (408/400) or EOF: the server ended it.
                                    return Ok::<(), anyhow::Error>(());
                                }
                            }
                        }
                        Ok(())
                    }
                };
                let result = tokio::time::timeout_at(deadline, attempt).await;
                match result {
                    Err(_) => break,
                    Ok(_) => {
                        let counter = if endless { &counters.endless_cut } else { &counters.slow_cut };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }
    let mut peak_hwm = 0;
    let mut peak_rss = 0;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(pid) = args.pid {
            peak_hwm = peak_hwm.max(proc_status_kib(pid, "VmHWM:").unwrap_or(0));
            peak_rss = peak_rss.max(proc_status_kib(pid, "VmRSS:").unwrap_or(0));
        }
    }
    while tasks.join_next().await.is_some() {}
    let mib = |k: u64| (k as f64 / 1024.0 * 10.0).round() / 10.0;
    let report = json!({
        "endless": args.endless,
        "slow_loris": args.slow_loris,
        "duration_s": args.duration,
        "connections": counters.connections.load(Ordering::SeqCst),
        "endless_cut": counters.endless_cut.load(Ordering::SeqCst),
        "slow_loris_cut": counters.slow_cut.load(Ordering::SeqCst),
        "body_bytes_sent_mib": mib(counters.body_bytes.load(Ordering::SeqCst) / 1024),
        "server_vmhwm_before_mib": idle_hwm.map(mib),
        "server_vmhwm_mib": args.pid.map(|_| mib(peak_hwm)),
        "server_rss_peak_mib": args.pid.map(|_| mib(peak_rss)),
    });
    println!("{report}");
    Ok(())
}

#[derive(Default)]
struct HostileCounters {
    connections: AtomicU64,
    endless_cut: AtomicU64,
    slow_cut: AtomicU64,
    body_bytes: AtomicU64,
}

/// A `kB` field of `/proc/<pid>/status`.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
