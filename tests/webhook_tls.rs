//! The webhook's TLS serving with real rustls clients: certificate swaps while requests flow,
//! minimum TLS version, file reload through a kubelet-style symlink swap, graceful shutdown.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, routing::get};
use azure_wi::{
    server::{ServeOptions, Shutdown, serve_https},
    webhook::{
        certs::{CertBundle, CertNames},
        metrics::Metrics,
        tls::{CertResolver, TlsMinVersion, server_config, watch_cert_dir},
    },
};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};

const HOST: &str = "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn bundle() -> CertBundle {
    CertBundle::generate(
        &CertNames::upstream("azure-workload-identity-system").dns_names(),
        OffsetDateTime::now_utc(),
    )
    .unwrap()
}

fn client_config(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn http_client(ca_pem: &str, reuse_connections: bool, addr: SocketAddr) -> reqwest::Client {
    let mut tls = client_config(ca_pem, rustls::DEFAULT_VERSIONS);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .resolve(HOST, addr)
        .no_proxy()
        .timeout(Duration::from_secs(30));
    if !reuse_connections {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().unwrap()
}

struct Running {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

async fn start(resolver: Arc<CertResolver>, min: TlsMinVersion, router: Router) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let config = server_config(resolver, min);
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            serve_https(listener, config, router, ServeOptions::default(), shutdown)
                .await
                .unwrap()
        }
    });
    Running { addr, shutdown, task }
}

fn hello_router() -> Router {
    Router::new().route("/hello", get(|| async { "hello" }))
}

/// The leaf certificate a fresh TLS connection is served.
async fn served_leaf(addr: SocketAddr, ca_pem: &str) -> Result<Vec<u8>, std::io::Error> {
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_config(ca_pem, rustls::DEFAULT_VERSIONS)));
    let stream = TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from(HOST).unwrap(), stream)
        .await?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].to_vec())
}

fn leaf_der(bundle: &CertBundle) -> Vec<u8> {
    CertificateDer::pem_slice_iter(bundle.cert_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_swap_while_requests_flow_without_a_single_failure() {
    let first = bundle();
    let metrics = Metrics::new();
    let resolver = Arc::new(CertResolver::new(metrics.clone(), None));
    resolver.set(first.serving_cert().unwrap());
    let server = start(resolver.clone(), TlsMinVersion::Tls13, hello_router()).await;

    let load = HelloLoad::start(&first.ca_cert_pem, server.addr);
    let (ok, failed) = (load.ok.clone(), load.failed.clone());

    // Swap the serving certificate ten times while the workers run; each swap waits until more
    // requests have completed, so every certificate serves traffic.
    let mut last = first.clone();
    for _ in 0..10 {
        let target = ok.load(Ordering::Relaxed) + 50;
        while ok.load(Ordering::Relaxed) < target && failed.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        last = last
            .renew_leaf(
                &CertNames::upstream("azure-workload-identity-system").dns_names(),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        assert!(resolver.set(last.serving_cert().unwrap()));
    }
    let target = ok.load(Ordering::Relaxed) + 50;
    while ok.load(Ordering::Relaxed) < target && failed.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    load.stop_after_ten_swaps(550, &metrics, "certificate swaps")
        .await;
    assert_eq!(
        served_leaf(server.addr, &first.ca_cert_pem).await.unwrap(),
        leaf_der(&last)
    );
    server.shutdown.trigger();
    server.task.await.unwrap();
}

async fn handshake_with(
    addr: SocketAddr,
    ca_pem: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> bool {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca_pem, &[version])));
    let stream = TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from(HOST).unwrap(), stream)
        .await
        .is_ok()
}

#[tokio::test]
async fn the_minimum_tls_version_is_enforced() {
    let bundle = bundle();
    let resolver = Arc::new(CertResolver::new(Metrics::new(), None));
    resolver.set(bundle.serving_cert().unwrap());

    let strict = start(resolver.clone(), TlsMinVersion::Tls13, hello_router()).await;
    assert!(handshake_with(strict.addr, &bundle.ca_cert_pem, &rustls::version::TLS13).await);
    assert!(!handshake_with(strict.addr, &bundle.ca_cert_pem, &rustls::version::TLS12).await);

    let lenient = start(resolver, TlsMinVersion::Tls12, hello_router()).await;
    assert!(handshake_with(lenient.addr, &bundle.ca_cert_pem, &rustls::version::TLS12).await);
    assert!(handshake_with(lenient.addr, &bundle.ca_cert_pem, &rustls::version::TLS13).await);
    assert!(
        "1.1"
            .parse::<TlsMinVersion>()
            .unwrap_err()
            .to_string()
            .contains("use 1.2 or 1.3")
    );
}

#[tokio::test]
async fn without_a_certificate_handshakes_fail_and_the_server_keeps_running() {
    let bundle = bundle();
    let resolver = Arc::new(CertResolver::new(Metrics::new(), None));
    let server = start(resolver.clone(), TlsMinVersion::Tls13, hello_router()).await;
    assert!(served_leaf(server.addr, &bundle.ca_cert_pem).await.is_err());
    resolver.set(bundle.serving_cert().unwrap());
    assert_eq!(
        served_leaf(server.addr, &bundle.ca_cert_pem).await.unwrap(),
        leaf_der(&bundle)
    );
}

/// Writes a pair the way the kubelet updates a Secret volume: a new timestamped directory, then
/// an atomic rename of the `..data` symlink; `tls.crt`/`tls.key` are symlinks through `..data`.
fn kubelet_write(dir: &Path, generation: u32, cert: &str, key: &str) {
    let data = dir.join(format!("..2026_11_26_{generation}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("tls.crt"), cert).unwrap();
    std::fs::write(data.join("tls.key"), key).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link).unwrap();
        }
    }
}

/// Eight clients calling `/hello` in a loop until stopped, half on one kept connection and half
/// with a new TLS handshake per request (a certificate change only shows on new handshakes);
/// counts successes and failures.
struct HelloLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl HelloLoad {
    fn start(ca_pem: &str, addr: SocketAddr) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut workers = Vec::new();
        for worker in 0..8 {
            let client = http_client(ca_pem, worker % 2 == 0, addr);
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            let url = format!("https://{HOST}:{}/hello", addr.port());
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let result = async {
                        let response = client.get(&url).send().await.map_err(|e| format!("{e:?}"))?;
                        let status = response.status();
                        let text = response.text().await.map_err(|e| format!("{e:?}"))?;
                        if status == 200 && text == "hello" {
                            Ok(())
                        } else {
                            Err(format!("{status}: {text}"))
                        }
                    }
                    .await;
                    match result {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(error) => {
                            eprintln!("request failed: {error}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }));
        }
        Self {
            stop,
            ok,
            failed,
            workers,
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
    }

    /// Stops the load after ten certificate swaps `during` something: no request failed, at
    /// least `min_ok` succeeded, and `metrics` counted the ten reloads.
    async fn stop_after_ten_swaps(self, min_ok: usize, metrics: &Metrics, during: &str) {
        let (ok, failed) = (self.ok.clone(), self.failed.clone());
        self.stop().await;
        assert_eq!(
            failed.load(Ordering::Relaxed),
            0,
            "requests failed during {during}"
        );
        assert!(ok.load(Ordering::Relaxed) >= min_ok);
        assert!(
            metrics.encode().contains("azwi_certificate_reloads_total 10"),
            "{}",
            metrics.encode()
        );
    }
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    // Bounded so that a regression fails instead of hanging; not a timing assertion.
    for _ in 0..2000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 20 s");
}

/// A resolver fed by `watch_cert_dir` polling `dir` every 20 ms: its metrics, the resolver, the
/// watcher's shutdown and its task.
fn watch(dir: &Path) -> (Metrics, Arc<CertResolver>, Shutdown, tokio::task::JoinHandle<()>) {
    let metrics = Metrics::new();
    let resolver = Arc::new(CertResolver::new(metrics.clone(), None));
    let shutdown = Shutdown::new();
    let watcher = tokio::spawn({
        let (dir, resolver, shutdown) = (dir.to_owned(), resolver.clone(), shutdown.clone());
        async move { watch_cert_dir(&dir, resolver, Duration::from_millis(20), shutdown).await }
    });
    (metrics, resolver, shutdown, watcher)
}

#[tokio::test]
async fn certificate_files_are_reloaded_through_a_symlink_swap() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (bundle(), bundle());
    let (metrics, resolver, shutdown, watcher) = watch(dir.path());
    let server = start(resolver.clone(), TlsMinVersion::Tls13, hello_router()).await;

    kubelet_write(dir.path(), 1, &a.cert_pem, &a.key_pem);
    wait_until(|| resolver.current().is_some()).await;
    assert_eq!(
        served_leaf(server.addr, &a.ca_cert_pem).await.unwrap(),
        leaf_der(&a)
    );

    kubelet_write(dir.path(), 2, &b.cert_pem, &b.key_pem);
    let b_not_after = b.serving_cert().unwrap().not_after();
    wait_until(|| metrics.encode().contains("azwi_certificate_reloads_total 1")).await;
    assert_eq!(resolver.current().unwrap().not_after(), b_not_after);
    assert_eq!(
        served_leaf(server.addr, &b.ca_cert_pem).await.unwrap(),
        leaf_der(&b)
    );

    // A mismatched pair (certificate of one, key of another) is ignored; b keeps serving.
    kubelet_write(dir.path(), 3, &a.cert_pem, &b.key_pem);
    kubelet_write(dir.path(), 4, &a.cert_pem, &b.key_pem);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        served_leaf(server.addr, &b.ca_cert_pem).await.unwrap(),
        leaf_der(&b)
    );

    shutdown.trigger();
    watcher.await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_connections() {
    let bundle = bundle();
    let resolver = Arc::new(CertResolver::new(Metrics::new(), None));
    resolver.set(bundle.serving_cert().unwrap());
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let router = Router::new().route(
        "/slow",
        get({
            let (entered, release) = (entered.clone(), release.clone());
            move || async move {
                entered.notify_one();
                release.notified().await;
                "finished"
            }
        }),
    );
    let server = start(resolver, TlsMinVersion::Tls13, router).await;
    let client = http_client(&bundle.ca_cert_pem, true, server.addr);
    let url = format!("https://{HOST}:{}/slow", server.addr.port());
    let in_flight = tokio::spawn(async move { client.get(url).send().await?.text().await });

    entered.notified().await;
    server.shutdown.trigger();
    // The listener closes while the request is still being served.
    wait_until(|| std::net::TcpStream::connect(server.addr).is_err()).await;
    release.notify_one();
    assert_eq!(in_flight.await.unwrap().unwrap(), "finished");
    server.task.await.unwrap();
}

/// Replaces tls.crt/tls.key in place (truncate and write, certificate first): what a tool that
/// rewrites the files does. The watcher may read a torn pair in between and must keep the old one.
fn rewrite(dir: &Path, cert: &str, key: &str) {
    std::fs::write(dir.join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join("tls.key"), key).unwrap();
}

/// Certificate files replaced ten times while workers send requests (half of them handshaking
/// for every request), once with the kubelet's `..data` symlink swap and once with plain
/// rewrites: no request fails, and after every swap new handshakes get the new certificate (by
/// its DER, i.e. its fingerprint). The long run at a fixed rate is scripts/reliability/cert-swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_files_replaced_under_load_fail_no_request_and_are_served() {
    for kubelet in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let names = CertNames::upstream("azure-workload-identity-system").dns_names();
        let mut current = bundle();
        let write = |generation: u32, b: &CertBundle| {
            if kubelet {
                kubelet_write(dir.path(), generation, &b.cert_pem, &b.key_pem);
            } else {
                rewrite(dir.path(), &b.cert_pem, &b.key_pem);
            }
        };
        write(0, &current);
        let (metrics, resolver, shutdown, watcher) = watch(dir.path());
        wait_until(|| resolver.current().is_some()).await;
        let server = start(resolver.clone(), TlsMinVersion::Tls13, hello_router()).await;

        let load = HelloLoad::start(&current.ca_cert_pem, server.addr);
        let (ok, failed) = (load.ok.clone(), load.failed.clone());
        for generation in 1..=10 {
            let target = ok.load(Ordering::Relaxed) + 30;
            wait_until(|| ok.load(Ordering::Relaxed) >= target || failed.load(Ordering::Relaxed) > 0).await;
            // Same CA, new leaf: the clients keep trusting it.
            current = current.renew_leaf(&names, OffsetDateTime::now_utc()).unwrap();
            write(generation, &current);
            let expected = leaf_der(&current);
            // Bounded wait for the watcher, then a fresh handshake must get the new leaf.
            for _ in 0..2000 {
                if served_leaf(server.addr, &current.ca_cert_pem).await.ok().as_ref() == Some(&expected) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(
                served_leaf(server.addr, &current.ca_cert_pem).await.unwrap(),
                expected,
                "generation {generation} ({}) is not served",
                if kubelet { "kubelet swap" } else { "rewrite" }
            );
        }
        let target = ok.load(Ordering::Relaxed) + 30;
        wait_until(|| ok.load(Ordering::Relaxed) >= target || failed.load(Ordering::Relaxed) > 0).await;
        load.stop_after_ten_swaps(330, &metrics, &format!("file swaps (kubelet: {kubelet})"))
            .await;
        shutdown.trigger();
        watcher.await.unwrap();
        server.shutdown.trigger();
        server.task.await.unwrap();
    }
}
