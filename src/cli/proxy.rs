//! `azure-wi proxy`: the IMDS- and App Service-compatible token proxy sidecar.

use std::process::ExitCode;

use anyhow::Context as _;
use azure_wi::proxy::{
    DEFAULT_IMDS_ENDPOINT, DEFAULT_PORT, Probe, Proxy, ProxyConfig, check_workload_identity,
    workload_identity_factory,
};
use azure_wi_identity::Env;

use super::logging::{self, LogLevel};

/// Serve Microsoft Entra tokens of the pod's workload identity over the IMDS protocol (and, with
/// --identity-endpoint, the App Service protocol) on localhost.
#[derive(Debug, clap::Args)]
#[command(version)]
pub struct ProxyArgs {
    /// The port to listen on, on 127.0.0.1 and ::1.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    proxy_port: u16,
    /// Poll http://127.0.0.1:<port>/readyz (7 attempts, 1 s apart) and exit 0 when ready, 1 when not.
    #[arg(long)]
    probe: bool,
    /// trace, debug, info, warning or error.
    #[arg(long, default_value = "info")]
    log_level: LogLevel,
    /// Also serve the App Service protocol at /msi/token; requires IDENTITY_HEADER in the environment.
    #[arg(long)]
    identity_endpoint: bool,
    /// Where GET requests under /metadata/ (other than the token path) are forwarded: the real
    /// instance metadata service; tests point it at a stand-in on loopback.
    #[arg(long, env = "AZWI_PROXY_IMDS_ENDPOINT", default_value = DEFAULT_IMDS_ENDPOINT)]
    imds_endpoint: String,
}

impl ProxyArgs {
    /// Runs the proxy (or the probe) to completion.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            proxy_port,
            probe,
            log_level,
            identity_endpoint,
            imds_endpoint,
        } = self;
        logging::init(log_level);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        // Validated once, before anything is served, so that an unusable configuration fails
        // the container (and the probe) instead of answering every request with an error.
        let config = ProxyConfig::from_env(&Env::Process, proxy_port, identity_endpoint, &imds_endpoint)?;
        check_workload_identity(
            &Env::Process,
            &config.tenant_id,
            config.default_client_id.as_deref(),
        )?;
        if probe {
            let ready = runtime.block_on(Probe::localhost(proxy_port).run());
            return Ok(if ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        // Once, at start: the version and the effective settings (the identity header is not logged).
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            log_level = ?log_level,
            imds_endpoint = %config.imds_endpoint,
            max_credentials = config.max_credentials,
            port = config.port,
            tenant_id = %config.tenant_id,
            default_client_id = config.default_client_id.as_deref().unwrap_or(""),
            identity_endpoint = config.identity_header.is_some(),
            "starting the token proxy"
        );
        runtime.block_on(async {
            let proxy = Proxy::new(config, workload_identity_factory(Env::Process))?
                .bind()
                .await?;
            proxy.serve(shutdown_signal()).await;
            anyhow::Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
