//! `loadgen hostile`: connections that never finish a request, to see what they cost the server.
//!
//! `--endless` connections send a chunked body without end, as fast as the server reads it;
//! `--slow-loris` connections send their request headers one byte per `--drip-ms`; `--silent`
//! connections complete the TLS handshake and send nothing; `--partial` connections send their
//! headers and `--partial-bytes` of a longer body, then hold. Each reconnects when the server
//! cuts it (an answer, EOF or an error), and the report counts the cuts; with `--pid` the
//! server's VmHWM and VmRSS are sampled every 100 ms.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::bail;
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::proc_status;

/// Size of each chunk of the endless bodies.
const CHUNK: usize = 16384;

#[derive(clap::Args)]
pub struct HostileArgs {
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
    /// Request path the hostile requests are sent to.
    #[arg(long, default_value = "/mutate-v1-pod")]
    path: String,
    /// Connections sending an endless chunked body as fast as the server reads it.
    #[arg(long, default_value_t = 100)]
    endless: usize,
    /// Connections sending request headers one byte per `--drip-ms`.
    #[arg(long, default_value_t = 100)]
    slow_loris: usize,
    /// Connections that complete the TLS handshake and then send nothing.
    #[arg(long, default_value_t = 0)]
    silent: usize,
    /// Connections that send headers and `--partial-bytes` of a longer body, then hold.
    #[arg(long, default_value_t = 0)]
    partial: usize,
    /// Body bytes each `--partial` connection sends before holding (65,000: just under 64 KiB).
    #[arg(long, default_value_t = 65_000)]
    partial_bytes: usize,
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

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    endless_cut: AtomicU64,
    slow_cut: AtomicU64,
    silent_cut: AtomicU64,
    partial_cut: AtomicU64,
    body_bytes: AtomicU64,
}

/// What one hostile connection does.
#[derive(Clone, Copy)]
enum Kind {
    Endless,
    SlowLoris { drip: Duration },
    Silent,
    Partial { bytes: usize },
}

/// Runs the hostile connections for `--duration` and prints one JSON line.
pub async fn run(args: HostileArgs) -> anyhow::Result<()> {
    if !args.addr.ip().is_loopback() {
        bail!("--addr must be a loopback address");
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(crate::cert::client_config(&args.ca)?));
    let server_name = ServerName::try_from(args.server_name.clone())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.duration);
    let counters = Arc::new(Counters::default());
    let idle_hwm = args.pid.and_then(|pid| proc_status::kib(pid, "VmHWM:"));
    let mut tasks = tokio::task::JoinSet::new();
    let kinds = std::iter::repeat_n(Kind::Endless, args.endless)
        .chain(std::iter::repeat_n(
            Kind::SlowLoris {
                drip: Duration::from_millis(args.drip_ms),
            },
            args.slow_loris,
        ))
        .chain(std::iter::repeat_n(Kind::Silent, args.silent))
        .chain(std::iter::repeat_n(
            Kind::Partial {
                bytes: args.partial_bytes,
            },
            args.partial,
        ));
    for kind in kinds {
        let (connector, server_name, counters) = (connector.clone(), server_name.clone(), counters.clone());
        let head = request_head(&args.path, &args.server_name, kind);
        let addr = args.addr;
        tasks.spawn(async move {
            while tokio::time::Instant::now() < deadline {
                let attempt = hostile_connection(addr, &connector, &server_name, &head, kind, &counters);
                if tokio::time::timeout_at(deadline, attempt).await.is_err() {
                    break;
                }
                let cut = match kind {
                    Kind::Endless => &counters.endless_cut,
                    Kind::SlowLoris { .. } => &counters.slow_cut,
                    Kind::Silent => &counters.silent_cut,
                    Kind::Partial { .. } => &counters.partial_cut,
                };
                cut.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }
    let (mut peak_hwm, mut peak_rss) = (0, 0);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(pid) = args.pid {
            peak_hwm = peak_hwm.max(proc_status::kib(pid, "VmHWM:").unwrap_or(0));
            peak_rss = peak_rss.max(proc_status::kib(pid, "VmRSS:").unwrap_or(0));
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
        "silent": args.silent,
        "silent_cut": counters.silent_cut.load(Ordering::SeqCst),
        "partial": args.partial,
        "partial_bytes": args.partial_bytes,
        "partial_cut": counters.partial_cut.load(Ordering::SeqCst),
        "body_bytes_sent_mib": mib(counters.body_bytes.load(Ordering::SeqCst) / 1024),
        "server_vmhwm_before_mib": idle_hwm.map(mib),
        "server_vmhwm_mib": args.pid.map(|_| mib(peak_hwm)),
        "server_rss_peak_mib": args.pid.map(|_| mib(peak_rss)),
    });
    println!("{report}");
    Ok(())
}

/// The request head a hostile connection starts with: complete (with chunked encoding) for an
/// endless body, cut in the middle of a header for slow-loris (it is dripped without end).
fn request_head(path: &str, host: &str, kind: Kind) -> String {
    match kind {
        Kind::Endless => format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        Kind::SlowLoris { .. } => format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nX-Slow: "),
        Kind::Silent => String::new(),
        // The body announced is longer than what is sent: the server waits for the rest.
        Kind::Partial { bytes } => format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            bytes + 1000
        ),
    }
}

/// One connection, until the server ends it (returns) or the caller's deadline passes (dropped).
async fn hostile_connection(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    server_name: &ServerName<'static>,
    head: &str,
    kind: Kind,
    counters: &Counters,
) -> anyhow::Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = connector.connect(server_name.clone(), tcp).await?;
    counters.connections.fetch_add(1, Ordering::Relaxed);
    match kind {
        Kind::Endless => {
            tls.write_all(head.as_bytes()).await?;
            let chunk = format!("{CHUNK:x}\r\n{}\r\n", " ".repeat(CHUNK));
            loop {
                tls.write_all(chunk.as_bytes()).await?;
                counters.body_bytes.fetch_add(CHUNK as u64, Ordering::Relaxed);
            }
        }
        Kind::Silent | Kind::Partial { .. } => {
            if let Kind::Partial { bytes } = kind {
                tls.write_all(head.as_bytes()).await?;
                tls.write_all(&vec![b' '; bytes]).await?;
                tls.flush().await?;
                counters.body_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            }
            // Hold until the server answers or closes.
            let mut buf = [0u8; 1024];
            let _answered = tls.read(&mut buf).await?;
            Ok(())
        }
        Kind::SlowLoris { drip } => {
            let mut buf = [0u8; 1024];
            for byte in head.bytes().chain(std::iter::repeat(b'a')) {
                tls.write_all(&[byte]).await?;
                tls.flush().await?;
                tokio::select! {
                    () = tokio::time::sleep(drip) => {}
                    read = tls.read(&mut buf) => {
                        // An answer (408/400), EOF or an error: the server ended it.
                        read?;
                        return Ok(());
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_an_unfinished_request() {
        let endless = request_head("/mutate-v1-pod", "h.svc", Kind::Endless);
        assert!(endless.starts_with("POST /mutate-v1-pod HTTP/1.1\r\nHost: h.svc\r\n"));
        assert!(endless.contains("\r\nTransfer-Encoding: chunked\r\n"));
        assert!(endless.ends_with("\r\n\r\n"));
        let slow = request_head(
            "/x",
            "h.svc",
            Kind::SlowLoris {
                drip: Duration::from_millis(1),
            },
        );
        assert!(slow.starts_with("POST /x HTTP/1.1\r\n"));
        assert!(!slow.contains("\r\n\r\n"), "a slow-loris head never ends");
    }
}
