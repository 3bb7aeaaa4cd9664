//! A small recording HTTP/1.1 server for tests: it stands in for Microsoft Entra and the Azure
//! metadata endpoints, which cannot exist offline.
//!
//! It binds `127.0.0.1:0`, records every request (method, target, headers, body, arrival time on
//! the tokio clock so paused-time tests can check retry schedules) and answers from a script or a
//! handler. Built on tokio alone. The credential library's unit tests, the integration tests, the
//! benchmarks and `bench/rust-azure-identity` all use this one.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
    time::Instant,
};

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target: path and query, e.g. `/tenant/oauth2/v2.0/token?x=1`.
    pub target: String,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// When the request arrived, on the tokio clock.
    pub at: Instant,
    /// The TLS server name (SNI) the client sent, on a TLS server.
    pub sni: Option<String>,
    /// The decoded query pairs, kept so that [`query_pairs`](Self::query_pairs) can lend them.
    decoded_query: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The decoded query pairs, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        let q = self.target.split_once('?').map_or("", |(_, q)| q);
        url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    /// The decoded query pairs in wire order, borrowed, for exact comparison with a list of
    /// `(&str, &str)`.
    pub fn query_pairs(&self) -> Vec<(&str, &str)> {
        self.decoded_query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The decoded `application/x-www-form-urlencoded` body pairs, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// How the body is sent: whole (`None`), or one of the hostile ways of [`Stream`].
    pub stream: Option<Stream>,
}

/// A hostile way of sending a reply's body.
#[derive(Clone, Debug)]
pub enum Stream {
    /// `body` repeated until the client hangs up, with no length announced (an endless answer).
    Endless,
    /// `body` repeated to `len` bytes, announced by `content-length` (a huge answer).
    Repeat {
        /// The total length.
        len: u64,
    },
    /// `body` one byte at a time, `every` apart (a server dripping its answer).
    Drip {
        /// The pause before each byte.
        every: std::time::Duration,
    },
    /// Nothing at all: the request is read and never answered (a silent server).
    Silent,
}

impl Reply {
    /// An empty answer with `status`.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            stream: None,
        }
    }

    /// Sends the body the hostile way `stream` says.
    pub fn stream(mut self, stream: Stream) -> Self {
        self.stream = Some(stream);
        self
    }

    /// A JSON answer: a `serde_json::Value`, or JSON already written as text (which may be
    /// deliberately malformed).
    pub fn json(status: u16, body: impl std::fmt::Display) -> Self {
        Self::status(status)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// A `text/plain` answer.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::status(status)
            .header("content-type", "text/plain")
            .body(body.into())
    }

    /// A successful Entra-style token answer.
    pub fn token(access_token: &str, expires_in: u64) -> Self {
        Self::json(
            200,
            serde_json::json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": access_token}),
        )
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

type Handler = dyn Fn(&RecordedRequest) -> Reply + Send + Sync;

struct State {
    requests: Vec<RecordedRequest>,
    script: VecDeque<Reply>,
}

/// The running server. It stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    tls: bool,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// A server answering the scripted replies in order, then `500` with a message saying the
    /// script ran out.
    pub async fn scripted(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self::start_inner(replies.into_iter().collect(), None, None).await
    }

    /// Like [`scripted`](Self::scripted), serving https with a certificate for `127.0.0.1` and
    /// `localhost` issued by a fresh test CA, whose PEM is returned (for `SSL_CERT_FILE`).
    pub async fn scripted_tls(replies: impl IntoIterator<Item = Reply>) -> (Self, String) {
        let (acceptor, ca_pem) = test_tls();
        (
            Self::start_inner(replies.into_iter().collect(), None, Some(acceptor)).await,
            ca_pem,
        )
    }

    /// Like [`scripted`](Self::scripted), serving https with exactly this certificate chain and
    /// key (see [`self_signed`]).
    pub async fn scripted_tls_with(
        replies: impl IntoIterator<Item = Reply>,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Self {
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::start_inner(replies.into_iter().collect(), None, Some(acceptor)).await
    }

    /// A server answering the replies in order, the last one for every request after it (a
    /// metadata endpoint that keeps answering the same).
    pub async fn replies(replies: Vec<Reply>) -> Self {
        let queue = Mutex::new(VecDeque::from(replies));
        Self::with_handler(move |_| {
            let mut queue = queue.lock().unwrap();
            if queue.len() > 1 {
                queue.pop_front().unwrap()
            } else {
                queue.front().cloned().expect("at least one reply")
            }
        })
        .await
    }

    /// A server answering every request with `handler`.
    pub async fn with_handler(handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_inner(VecDeque::new(), Some(Arc::new(handler)), None).await
    }

    /// Like [`with_handler`](Self::with_handler), serving https with `config`'s certificate (see
    /// [`self_signed_tls`] and [`impostor_tls`]). A refused handshake records nothing.
    pub async fn with_handler_tls(
        config: Arc<rustls::ServerConfig>,
        handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        Self::start_inner(VecDeque::new(), Some(Arc::new(handler)), Some(acceptor)).await
    }

    /// Appends replies to the script.
    pub fn push(&self, reply: Reply) {
        self.state.lock().unwrap().script.push_back(reply);
    }

    async fn start_inner(
        script: VecDeque<Reply>,
        handler: Option<Arc<Handler>>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            requests: Vec::new(),
            script,
        }));
        let st = state.clone();
        let is_tls = tls.is_some();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = stream.set_nodelay(true);
                let (st, handler, tls) = (st.clone(), handler.clone(), tls.clone());
                tokio::spawn(async move {
                    let _ = match tls {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                let sni = stream.get_ref().1.server_name().map(str::to_owned);
                                serve_connection(stream, st, handler, sni).await
                            }
                            Err(_) => Ok(()),
                        },
                        None => serve_connection(stream, st, handler, None).await,
                    };
                });
            }
        });
        Self {
            addr,
            tls: is_tls,
            state,
            task,
        }
    }

    /// `http://127.0.0.1:PORT` (`https://` for a TLS server).
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// `http://127.0.0.1:PORT{path}` (`https://` for a TLS server).
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }
}

/// Like [`scripted_tls`](TestServer::scripted_tls), with a certificate for `names` only.
impl TestServer {
    /// A TLS server whose certificate names exactly `names`, issued by a fresh test CA whose PEM
    /// is returned.
    pub async fn scripted_tls_for(
        replies: impl IntoIterator<Item = Reply>,
        names: &[&str],
    ) -> (Self, String) {
        let (acceptor, ca_pem) = tls_for(names);
        (
            Self::start_inner(replies.into_iter().collect(), None, Some(acceptor)).await,
            ca_pem,
        )
    }
}

/// A TLS acceptor for `127.0.0.1`/`localhost` and the PEM of the CA that issued its certificate.
pub fn test_tls() -> (tokio_rustls::TlsAcceptor, String) {
    tls_for(&["127.0.0.1", "localhost"])
}

/// A TLS acceptor for `names` and the PEM of the fresh CA that issued its certificate.
pub fn tls_for(names: &[&str]) -> (tokio_rustls::TlsAcceptor, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "azure-wi test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem())
}

/// A self-signed certificate for `names`, a CA (`CA:TRUE`, as `openssl req -x509` makes) when
/// `ca` is set, valid from `not_before` to `not_after`: its DER, its key, and its PEM (for
/// `SSL_CERT_FILE`).
pub fn self_signed(
    names: &[&str],
    ca: bool,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> (
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
    String,
) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "azure-wi self-signed test server");
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    (cert.der().clone(), key_der, cert.pem())
}

/// A self-signed certificate for 127.0.0.1 / localhost, its server config and the SHA-1 thumbprint
/// (upper-case hex) of its DER encoding.
pub fn self_signed_tls() -> (Arc<rustls::ServerConfig>, String) {
    let key = rcgen::KeyPair::generate().expect("key pair");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("certificate params");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    let der = cert.der().clone();
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    let thumbprint: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![der], key_der)
            .expect("server config");
    (Arc::new(config), thumbprint)
}

/// A server that presents a certificate (whose thumbprint is returned) but signs the handshake
/// with another key: what someone who copied the certificate, without its private key, can do.
pub fn impostor_tls() -> (Arc<rustls::ServerConfig>, String) {
    #[derive(Debug)]
    struct Fixed(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for Fixed {
        fn resolve(
            &self,
            _hello: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }
    let real_key = rcgen::KeyPair::generate().expect("key pair");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("certificate params");
    let cert = params.self_signed(&real_key).expect("self-signed certificate");
    let der = cert.der().clone();
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    let thumbprint: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let other_key = rcgen::KeyPair::generate().expect("key pair");
    let other_der = rustls::pki_types::PrivateKeyDer::Pkcs8(other_key.serialize_der().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&other_der).expect("signing key");
    let certified = Arc::new(rustls::sign::CertifiedKey::new(vec![der], signer));
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(certified)));
    (Arc::new(config), thumbprint)
}

async fn serve_connection<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    state: Arc<Mutex<State>>,
    handler: Option<Arc<Handler>>,
    sni: Option<String>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).await? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let len = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).await?;
        let decoded_query = target
            .split_once('?')
            .map(|(_, q)| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let request = RecordedRequest {
            method,
            target,
            headers,
            body,
            at: Instant::now(),
            sni: sni.clone(),
            decoded_query,
        };
        let reply = {
            let mut st = state.lock().unwrap();
            st.requests.push(request.clone());
            match &handler {
                Some(h) => h(&request),
                None => st.script.pop_front().unwrap_or_else(|| {
                    Reply::json(500, serde_json::json!({"error": "test_server", "error_description": "the test script has no more replies"}))
                }),
            }
        };
        if let Some(hostile) = &reply.stream {
            return send_hostile(reader.get_mut(), &reply, hostile).await;
        }
        let mut out = format!(
            "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        // One write: head and body in separate segments would meet Nagle and delayed ACKs (40 ms).
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&reply.body);
        let stream = reader.get_mut();
        stream.write_all(&bytes).await?;
        stream.flush().await?;
    }
}

/// Sends `reply` the hostile way, then closes the connection (the client's reading stops it).
async fn send_hostile<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    reply: &Reply,
    hostile: &Stream,
) -> std::io::Result<()> {
    if let Stream::Silent = hostile {
        std::future::pending::<()>().await;
    }
    let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
    match hostile {
        Stream::Repeat { len } => head.push_str(&format!("content-length: {len}\r\n")),
        Stream::Drip { .. } | Stream::Silent => {
            head.push_str(&format!("content-length: {}\r\n", reply.body.len().max(1)))
        }
        Stream::Endless => head.push_str("connection: close\r\n"),
    }
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await?;
    let piece: Vec<u8> = if reply.body.is_empty() {
        vec![b' '; 64 * 1024]
    } else {
        reply.body.repeat((64 * 1024 / reply.body.len()).max(1))
    };
    match hostile {
        Stream::Endless => loop {
            stream.write_all(&piece).await?;
        },
        Stream::Repeat { len } => {
            let mut left = *len;
            while left > 0 {
                let n = left.min(piece.len() as u64) as usize;
                stream.write_all(&piece[..n]).await?;
                left -= n as u64;
            }
            stream.flush().await
        }
        Stream::Drip { every } => {
            let body = if reply.body.is_empty() {
                b" ".to_vec()
            } else {
                reply.body.clone()
            };
            for byte in body {
                tokio::time::sleep(*every).await;
                stream.write_all(&[byte]).await?;
                stream.flush().await?;
            }
            Ok(())
        }
        Stream::Silent => Ok(()),
    }
}
