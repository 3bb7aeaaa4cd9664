//! `azwi-stand-in`: the test stand-ins of `azure-wi-test-support` as a program, for scripts and
//! benchmarks that run processes (`scripts/test.d/21-proxy-clients.sh`, `scripts/bench/proxies`,
//! `scripts/bench/proxy-load.sh`).
//!
//! `azwi-stand-in entra --tenant T --assertion-file F [--addr 127.0.0.1:PORT] [--cert-dir D]`
//! serves the Microsoft Entra stand-in (`azure_wi_test_support::entra`) on plain HTTP at `--addr`,
//! accepting for tenant T only the assertion in file F (its trimmed content: a federated token
//! file). With `--cert-dir` (`tls.crt`, `tls.key`, e.g. from `loadgen write-cert --name
//! login.microsoftonline.com`) it is also an HTTPS proxy for that name (`HTTPS_PROXY`). It prints
//! `entra stand-in listening on ADDR` and serves until killed; `GET /readyz` answers once it
//! listens, `GET /counts` its counters.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use azure_wi_test_support::entra::{Entra, Trust};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Test stand-ins of azure-wi (dev-only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The Microsoft Entra stand-in on plain HTTP (and an HTTPS proxy with --cert-dir).
    Entra {
        /// The only tenant that exists.
        #[arg(long)]
        tenant: String,
        /// The federated token file: every client_assertion must equal its trimmed content.
        #[arg(long)]
        assertion_file: PathBuf,
        /// The loopback address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        /// A directory with tls.crt and tls.key: CONNECT tunnels are served with that certificate.
        #[arg(long)]
        cert_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let Command::Entra {
        tenant,
        assertion_file,
        addr,
        cert_dir,
    } = Cli::parse().command;
    let assertion = match std::fs::read_to_string(&assertion_file) {
        Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
        Ok(_) => return fail(format!("--assertion-file {} is empty", assertion_file.display())),
        Err(e) => return fail(format!("--assertion-file {}: {e}", assertion_file.display())),
    };
    let tunnel = match cert_dir
        .as_deref()
        .map(|dir| -> Result<(String, String), String> {
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name))
                    .map_err(|e| format!("--cert-dir {}: {name}: {e}", dir.display()))
            };
            Ok((read("tls.crt")?, read("tls.key")?))
        }) {
        Some(Err(e)) => return fail(e),
        Some(Ok(pair)) => Some(pair),
        None => None,
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let trust = Trust::Assertion { tenant, assertion };
        let tunnel = tunnel.as_ref().map(|(c, k)| (c.as_str(), k.as_str()));
        let entra = match Entra::start_plain(trust, addr, tunnel).await {
            Ok(entra) => entra,
            Err(e) => return fail(format!("--addr {addr}: {e}")),
        };
        println!("entra stand-in listening on {}", entra.addr);
        std::future::pending::<ExitCode>().await
    })
}

fn fail(message: String) -> ExitCode {
    eprintln!("azwi-stand-in: {message}");
    ExitCode::from(2)
}
