//! `azure-wi webhook`: the mutating admission webhook server.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use azure_wi::{
    server::{self, DEFAULT_MAX_CONNECTIONS, Readiness, ServeOptions, Shutdown},
    webhook::{
        certs::{CertNames, DEFAULT_NAMESPACE, Rotator},
        metrics::Metrics,
        server::{DEFAULT_MAX_BODY_BYTES, RequestLimits, WebhookState},
        service_accounts::{ANNOTATION_PREFIX, LookupOptions, ServiceAccounts},
        tls::{self, CertResolver, TlsMinVersion},
    },
};
use azure_wi_core::{
    ServiceAccount,
    config::{ConfigArgs, LogLevel, parse_server_version},
};
use clap::Args;
use serde_json::Value;

/// Flags of `azure-wi webhook` (names as upstream's where upstream has them).
#[derive(Debug, Args)]
pub struct WebhookArgs {
    #[command(flatten)]
    config: ConfigArgs,

    /// Port of the HTTPS admission endpoint (`/mutate-v1-pod`).
    #[arg(long, default_value_t = 9443)]
    webhook_port: u16,

    /// Address the admission endpoint listens on (default: every interface).
    #[arg(long, default_value = "")]
    webhook_host: String,

    /// Address of `/healthz` and `/readyz` (`:9440` = every interface).
    #[arg(long, default_value = ":9440")]
    health_addr: String,

    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, default_value = ":8095")]
    metrics_addr: String,

    /// Metrics backend; only `prometheus` exists (accepted for upstream's chart, in any letter
    /// case as upstream).
    #[arg(long, default_value = "prometheus", value_parser = ["prometheus"], ignore_case = true)]
    metrics_backend: String,

    /// Directory with `tls.crt` and `tls.key`, re-read when they change.
    #[arg(long, default_value = "/certs")]
    webhook_cert_dir: PathBuf,

    /// Do not generate and rotate certificates; serve the files in `--webhook-cert-dir`
    /// (e.g. issued by cert-manager).
    #[arg(long)]
    disable_cert_rotation: bool,

    /// Lowest TLS version accepted: 1.2 or 1.3.
    #[arg(long, default_value = "1.3")]
    tls_min_version: TlsMinVersion,

    /// Log format.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    log_format: String,

    /// Kubeconfig file; without it, in-cluster configuration or `$KUBECONFIG`.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,

    /// Namespace of the webhook (its certificate Secret and Service).
    #[arg(long, env = "POD_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pod_namespace: String,

    /// Serve ServiceAccounts from this JSON file (`kubectl get serviceaccounts -A -o json`)
    /// instead of the cluster: no API server is contacted. Implies `--disable-cert-rotation`.
    /// For offline previews and benchmarks.
    #[arg(long)]
    service_account_file: Option<PathBuf>,

    /// Largest admission request body, in bytes (default: the API server's own limit, 3 MiB).
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES, value_parser = at_least_one)]
    max_request_bytes: usize,

    /// Most connections open at once on the admission port (the health and metrics ports take
    /// 32 each). At the cap, the oldest connection that has not sent a request yet is closed.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = at_least_one)]
    max_connections: usize,

    /// Longest time to read and answer an admission request, in seconds.
    #[arg(long, default_value_t = 9)]
    request_timeout_seconds: u64,

    /// Longest time a ServiceAccount lookup on a cache miss may take, in seconds.
    #[arg(long, default_value_t = 3)]
    service_account_lookup_timeout_seconds: u64,

    /// Longest time in-flight requests get to finish after SIGTERM, in seconds.
    #[arg(long, default_value_t = 10)]
    shutdown_timeout_seconds: u64,
}

impl WebhookArgs {
    /// Runs the webhook until SIGTERM.
    pub fn run(self) -> ExitCode {
        if let Err(error) = init_logging(&self.config.log_level, &self.log_format) {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
        let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("error: cannot start the async runtime: {error}");
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(self.serve()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "webhook stopped");
                ExitCode::FAILURE
            }
        }
    }

    async fn serve(self) -> anyhow::Result<()> {
        let Self {
            config,
            webhook_port,
            webhook_host,
            health_addr,
            metrics_addr,
            metrics_backend: _,
            webhook_cert_dir,
            disable_cert_rotation,
            tls_min_version,
            log_format: _,
            kubeconfig,
            pod_namespace,
            service_account_file,
            max_request_bytes,
            max_connections,
            request_timeout_seconds,
            service_account_lookup_timeout_seconds,
            shutdown_timeout_seconds,
        } = self;

        let metrics = Metrics::new();
        let readiness = Readiness::new();
        let shutdown = Shutdown::new();
        shutdown.trigger_on_signals();

        let client = match &service_account_file {
            Some(_) => None,
            None => Some(kube_client(kubeconfig.as_deref()).await?),
        };
        let server_version = match &client {
            Some(client) => Some(server_version(client).await?),
            None => None,
        };
        let config = config
            .into_config(server_version)
            .context("invalid configuration")?;
        // Once, at start: the version and every effective setting (none of them is a secret).
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            webhook_port,
            webhook_host,
            health_addr,
            metrics_addr,
            webhook_cert_dir = %webhook_cert_dir.display(),
            disable_cert_rotation,
            tls_min_version = ?tls_min_version,
            kubeconfig = kubeconfig.as_deref().map(|p| p.display().to_string()),
            pod_namespace,
            service_account_file = service_account_file.as_deref().map(|p| p.display().to_string()),
            max_request_bytes,
            request_timeout_seconds,
            service_account_lookup_timeout_seconds,
            shutdown_timeout_seconds,
            config = ?config,
            "starting the webhook"
        );

        let resolver = Arc::new(CertResolver::new(
            metrics.clone(),
            Some(readiness.condition("certificates")),
        ));
        match (&client, disable_cert_rotation || service_account_file.is_some()) {
            (Some(client), false) => {
                let names = CertNames::upstream(&pod_namespace);
                tracing::info!(
                    secret = names.secret,
                    webhook_configuration = names.webhook_configuration,
                    "self-managed certificates"
                );
                tokio::spawn(Rotator::new(client.clone(), names, resolver.clone()).run(shutdown.clone()));
            }
            _ => {
                tracing::info!(dir = %webhook_cert_dir.display(), "serving certificates from files");
                let (dir, resolver, shutdown) =
                    (webhook_cert_dir.clone(), resolver.clone(), shutdown.clone());
                tokio::spawn(async move {
                    tls::watch_cert_dir(&dir, resolver, Duration::from_secs(2), shutdown).await;
                });
            }
        }

        let service_accounts = match (&client, &service_account_file) {
            (_, Some(path)) => {
                let accounts = read_service_account_file(path)?;
                tracing::info!(count = accounts.len(), file = %path.display(), "static ServiceAccounts");
                ServiceAccounts::from_static(accounts, metrics.clone())
            }
            (Some(client), None) => {
                let options = LookupOptions {
                    timeout: Duration::from_secs(service_account_lookup_timeout_seconds),
                    ..LookupOptions::default()
                };
                // Readiness does not wait for the cache: until it has synced, lookups are direct
                // GETs (see `service_accounts`).
                let (accounts, driver) =
                    ServiceAccounts::watch(client.clone(), options, metrics.clone(), shutdown.clone());
                tokio::spawn(driver);
                accounts
            }
            (None, None) => unreachable!("a client exists unless a ServiceAccount file is given"),
        };

        let state = WebhookState {
            config: Arc::new(config),
            service_accounts,
            metrics: metrics.clone(),
        };
        let limits = RequestLimits {
            max_body_bytes: max_request_bytes,
            timeout: Duration::from_secs(request_timeout_seconds),
            ..RequestLimits::default()
        };
        let options = ServeOptions {
            drain_timeout: Duration::from_secs(shutdown_timeout_seconds),
            max_connections,
            ..ServeOptions::default()
        };
        // Probes and scrapes come one at a time: a small cap keeps a flood of sockets there from
        // costing the admission port its file descriptors.
        let small_options = ServeOptions {
            max_connections: PROBE_CONNECTIONS,
            ..options
        };

        let webhook_addr = match webhook_host.as_str() {
            "" => format!(":{webhook_port}"),
            host if host.contains(':') && !host.starts_with('[') => format!("[{host}]:{webhook_port}"),
            host => format!("{host}:{webhook_port}"),
        };
        let webhook_listener = server::bind(&webhook_addr).await?;
        let health_listener = server::bind(&health_addr).await?;
        let metrics_listener = server::bind(&metrics_addr).await?;
        tracing::info!(
            webhook = %webhook_listener.local_addr()?,
            health = %health_listener.local_addr()?,
            metrics = %metrics_listener.local_addr()?,
            "listening"
        );
        let tls_config = tls::server_config(resolver, tls_min_version);

        let webhook = server::serve_https(
            webhook_listener,
            tls_config,
            azure_wi::webhook::server::router(state, limits),
            options,
            shutdown.clone(),
        );
        let health = server::serve_plain(
            health_listener,
            server::health_router(readiness),
            small_options,
            shutdown.clone(),
        );
        let metrics_server = server::serve_plain(
            metrics_listener,
            metrics.router(),
            small_options,
            shutdown.clone(),
        );
        let (a, b, c) = tokio::join!(
            stop_all_on_error(webhook, &shutdown),
            stop_all_on_error(health, &shutdown),
            stop_all_on_error(metrics_server, &shutdown)
        );
        a.context("webhook server")?;
        b.context("health server")?;
        c.context("metrics server")?;
        tracing::info!("webhook stopped");
        Ok(())
    }
}

/// The connection cap of the health and metrics ports.
const PROBE_CONNECTIONS: usize = 32;

/// A count flag that must be at least 1 (0 would refuse every request or connection).
fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 would refuse every request)".to_owned()),
        Ok(n) => Ok(n),
        Err(error) => Err(error.to_string()),
    }
}

async fn stop_all_on_error<E>(
    server: impl Future<Output = Result<(), E>>,
    shutdown: &Shutdown,
) -> Result<(), E> {
    let result = server.await;
    if result.is_err() {
        shutdown.trigger();
    }
    result
}

async fn kube_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read --kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("invalid --kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no Kubernetes configuration: not in a cluster, and no --kubeconfig or $KUBECONFIG")?,
    };
    super::kube_client::build(config)
}

/// The API server's (major, minor), for the native-sidecar decision.
async fn server_version(client: &kube::Client) -> anyhow::Result<(u32, u32)> {
    let info = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .context("the Kubernetes API server did not answer /version within 10 s")?
        .context("cannot read the Kubernetes API server version")?;
    match parse_server_version(&info.major, &info.minor) {
        Some((major, minor)) => {
            tracing::info!(version = info.git_version, major, minor, "Kubernetes API server");
            Ok((major, minor))
        }
        None => bail!(
            "cannot parse the API server version {:?}.{:?}",
            info.major,
            info.minor
        ),
    }
}

/// Reads ServiceAccounts from `kubectl get serviceaccounts -A -o json` output (a `List`), an
/// array of ServiceAccounts, or a single one.
fn read_service_account_file(path: &std::path::Path) -> anyhow::Result<Vec<(String, ServiceAccount)>> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(ref map) if map.contains_key("items") => {
            map["items"].as_array().cloned().unwrap_or_default()
        }
        other => vec![other],
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = |f: &str| item.pointer(&format!("/metadata/{f}")).and_then(Value::as_str);
            let (Some(name), Some(namespace)) = (field("name"), field("namespace")) else {
                bail!(
                    "{} item {i}: metadata.name and metadata.namespace are required",
                    path.display()
                );
            };
            let annotations = item
                .pointer("/metadata/annotations")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect();
            Ok((
                namespace.to_owned(),
                ServiceAccount {
                    name: name.to_owned(),
                    annotations,
                },
            ))
        })
        .collect()
}

fn init_logging(level: &str, format: &str) -> anyhow::Result<()> {
    let directive = level.parse::<LogLevel>()?.tracing_directive();
    let filter = match directive {
        // Start-up and stop lines (addresses, certificate source) even when admissions are quiet.
        "warn" => format!("{directive},azure_wi::cli=info"),
        // The HTTP and TLS stacks' own debug output drowns everything else.
        "debug" | "trace" => format!("{directive},hyper=info,h2=info,rustls=info,tower=info"),
        _ => directive.to_owned(),
    };
    // `RUST_LOG`, when set, overrides the level (as for the other commands).
    super::logging::install(filter, format == "json").map_err(anyhow::Error::msg)
}
