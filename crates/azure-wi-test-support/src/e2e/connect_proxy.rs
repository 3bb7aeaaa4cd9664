//! An HTTP CONNECT proxy on 127.0.0.1 that the API server reaches webhooks through
//! (`HTTPS_PROXY`). It lets a webhook be called by its in-cluster DNS name
//! (`<service>.<namespace>.svc`, the name on a self-managed serving certificate) without DNS: the
//! TLS session is end to end between the API server and the backend the proxy currently points at.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// The running proxy; stops on drop.
pub struct ConnectProxy {
    /// `http://127.0.0.1:<port>`, for `HTTPS_PROXY`.
    pub url: String,
    backend: Arc<Mutex<Option<SocketAddr>>>,
    targets: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl ConnectProxy {
    /// Starts the proxy with no backend (connections are refused until one is set).
    pub async fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let backend = Arc::new(Mutex::new(None));
        let targets = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(accept(listener, backend.clone(), targets.clone()));
        ConnectProxy {
            url,
            backend,
            targets,
            task,
        }
    }

    /// Sends every new tunnel to `addr` (established tunnels stay where they are).
    pub fn set_backend(&self, addr: SocketAddr) {
        *self.backend.lock().expect("backend") = Some(addr);
    }

    /// The `host:port` targets clients asked for, in order.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().expect("targets").clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(
    listener: TcpListener,
    backend: Arc<Mutex<Option<SocketAddr>>>,
    targets: Arc<Mutex<Vec<String>>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let (backend, targets) = (backend.clone(), targets.clone());
        tokio::spawn(async move {
            let _ = tunnel(client, backend, targets).await;
        });
    }
}

async fn tunnel(
    mut client: TcpStream,
    backend: Arc<Mutex<Option<SocketAddr>>>,
    targets: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    // Read the request head: "CONNECT host:port HTTP/1.1\r\n...\r\n\r\n".
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if client.read(&mut byte).await? == 0 || head.len() > 8192 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            .await?;
        return Ok(());
    };
    targets.lock().expect("targets").push(target.to_string());
    let addr = *backend.lock().expect("backend");
    let Some(Ok(mut upstream)) = (match addr {
        Some(addr) => Some(TcpStream::connect(addr).await),
        None => None,
    }) else {
        client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await?;
        return Ok(());
    };
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
