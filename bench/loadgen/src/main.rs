//! Load generator and stand-in servers for azure-wi's side-by-side benchmarks and fault runs.
//!
//! - `loadgen run` opens `--concurrency` keep-alive connections (TLS, or plain HTTP with
//!   `--plain`) and sends requests back to back (or at a fixed `--rate`) for `--duration` after a
//!   `--warmup`: AdmissionReviews to a webhook by default, or any method, path and headers (e.g.
//!   IMDS token requests to a token proxy with `--method GET --header 'Metadata: true'
//!   --expect-token`). It reports throughput, latency percentiles (p50/p90/p99/p99.9/max),
//!   failures, and the server's resident memory read from `/proc/<pid>/status` (`--pid`). For
//!   fault runs, `--fresh-connections K` handshakes anew for every request on K connections (the
//!   served leaf certificates are fingerprinted and counted) and `--stop-on-go-away` ends a
//!   connection told `Connection: close` (see `run.rs`).
//! - `loadgen write-cert --dir DIR` writes a CA (`ca.crt`) and a serving certificate
//!   (`tls.crt`/`tls.key`) for `--name` and `127.0.0.1`; `--leaves N` also writes N more serving
//!   certificates from the same CA (`leaf-<i>.crt`/`leaf-<i>.key`), to swap in during a run.
//! - `loadgen hostile` opens connections that never finish a request (endless chunked bodies,
//!   slow-loris headers), reconnecting when cut, and reports the cuts and the server's memory
//!   (see `hostile.rs`).
//! - `loadgen floor` is the physical floor: a bare rustls + hyper server answering a fixed small
//!   AdmissionReview (see `floor.rs`).
//!
//! The Microsoft Entra stand-in of the proxy benchmark is `azwi-stand-in entra`
//! (`crates/azure-wi-test-support`), the one every test and benchmark uses.

mod cert;
mod floor;
mod hostile;
mod proc_status;
mod review;
mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sends requests at a fixed concurrency (or rate) and reports the figures.
    Run(run::RunArgs),
    /// Writes ca.crt, tls.crt and tls.key (and --leaves more leaf-<i>.crt/.key) for a local server.
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
    Hostile(hostile::HostileArgs),
    /// Serves a fixed small AdmissionReview over TLS: the floor for the webhook benchmark.
    Floor(floor::FloorArgs),
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let command = Cli::parse().command;
    if let Command::WriteCert { dir, name, leaves } = &command {
        return cert::write_cert(dir, name, *leaves);
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Run(args) => run::run(args).await,
            Command::Hostile(args) => hostile::run(args).await,
            Command::Floor(args) => floor::serve(args).await,
            Command::WriteCert { .. } => unreachable!("handled above"),
        }
    })
}
