//! `loadgen floor`: the physical floor for the webhook benchmark. A minimal rustls (ring) + hyper
//! HTTP/1.1 server that reads each request body in full and answers a fixed, small allowed
//! AdmissionReview, so `loadgen run --expect-allowed` accepts it. Same certificate files as the
//! webhooks (`write-cert`), TLS 1.3 only, keep-alive, tokio's multi-threaded runtime with one
//! worker per core. Nothing else: no routing, no parsing, no logging. `/readyz` on a separate
//! plain port answers 200 (for `scripts/bench/start-ready.py`).

use std::{convert::Infallible, net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpListener;

/// The fixed answer (121 bytes).
const ANSWER: &[u8] = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"00000000-0000-0000-0000-000000000001","allowed":true}}"#;

#[derive(clap::Args)]
pub struct FloorArgs {
    /// Directory with `tls.crt` and `tls.key` (from `write-cert`).
    #[arg(long)]
    cert_dir: PathBuf,
    /// TLS address to serve on.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Plain address answering `GET /readyz` with 200.
    #[arg(long, default_value = "127.0.0.1:0")]
    health_addr: SocketAddr,
}

/// Serves until killed.
pub async fn serve(args: FloorArgs) -> anyhow::Result<()> {
    let tls = Arc::new(server_config(&args.cert_dir)?);
    let listener = TcpListener::bind(args.addr).await?;
    let health = TcpListener::bind(args.health_addr).await?;
    println!(
        "floor listening on {} (TLS), /readyz on {}",
        listener.local_addr()?,
        health.local_addr()?
    );
    tokio::spawn(async move {
        while let Ok((tcp, _)) = health.accept().await {
            tokio::spawn(http1::Builder::new().serve_connection(
                TokioIo::new(tcp),
                service_fn(|_| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }),
            ));
        }
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service_fn(answer))
                .await;
        });
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    request.into_body().collect().await?;
    let mut response = Response::new(Full::new(Bytes::from_static(ANSWER)));
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// TLS 1.3 with the ring provider, ALPN http/1.1, the certificate and key from `dir`.
pub fn server_config(dir: &std::path::Path) -> anyhow::Result<rustls::ServerConfig> {
    let certs = CertificateDer::pem_file_iter(dir.join("tls.crt"))
        .with_context(|| format!("cannot read {}/tls.crt", dir.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join("tls.key"))
        .with_context(|| format!("cannot read {}/tls.key", dir.display()))?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
