//! The token cache's bound, measured as a workload sees it: a flood of distinct 2,048-character
//! scopes (what the proxy makes of hostile `resource` values) through a real
//! `ClientAssertionCredential` leaves resident memory where it was once the cache is full.
//!
//! Its own test binary, because it reads the resident memory of the whole process; the Entra
//! stand-in below answers every exchange and records nothing, so that the only memory that could
//! grow is the credential's.

use std::sync::atomic::{AtomicUsize, Ordering};

use azure_wi_identity::{
    ClientAssertionCredential, ClientAssertionCredentialOptions, Env, Secret, TokenCredential,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Token requests the stand-in has answered.
static REQUESTS: AtomicUsize = AtomicUsize::new(0);

/// The process's resident memory in bytes (`/proc/self/statm`, Linux).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux)");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A Microsoft Entra stand-in on loopback that answers every token request with a fresh token
/// (keep-alive, bounded reads) and keeps nothing.
async fn entra() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut socket = BufReader::new(socket);
                loop {
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        match socket.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    assert!(length < 64 * 1024, "an exchange is a small form");
                    let mut body = vec![0; length];
                    if socket.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let n = REQUESTS.fetch_add(1, Ordering::SeqCst) + 1;
                    let json = format!(
                        r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{n:0>1200}.sig"}}"#
                    );
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                        json.len()
                    );
                    if socket.get_mut().write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// A scope of the longest kind the proxy makes (a 2,048-character resource + `/.default`).
fn scope(i: usize) -> String {
    format!("api://{i:08}/{}/.default", "x".repeat(2048 - 15))
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_distinct_scopes_leaves_resident_memory_where_a_full_cache_put_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = entra().await;
    let credential = ClientAssertionCredential::with_callback(
        "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "00000000-0000-0000-0000-0000000000c1",
        || async { Ok(Secret::new("assertion")) },
        Some(ClientAssertionCredentialOptions {
            authority_host: Some(url),
            env: Env::from_pairs::<&str, &str>([]),
            ..Default::default()
        }),
    )
    .unwrap();

    // Fill the cache (its bound is 128 keys) and warm the HTTP client.
    const WARM: usize = 500;
    const FLOOD: usize = 3_000;
    for i in 0..WARM {
        credential.get_token(&[&scope(i)], None).await.unwrap();
    }
    let full = resident_bytes();
    for i in WARM..WARM + FLOOD {
        credential.get_token(&[&scope(i)], None).await.unwrap();
    }
    let after = resident_bytes();
    let growth = after.saturating_sub(full);
    eprintln!(
        "resident: {full} bytes with a full cache, {after} bytes after {FLOOD} more distinct scopes \
         (growth {growth} bytes)"
    );
    assert_eq!(
        REQUESTS.load(Ordering::SeqCst),
        WARM + FLOOD,
        "one exchange per distinct scope"
    );
    // An unbounded cache keeps every scope (2 KiB) and token (1.2 KiB): about 10 MB here.
    assert!(
        growth < 3 * 1024 * 1024,
        "resident memory grew by {growth} bytes over {FLOOD} distinct scopes"
    );
    // The most recent scope is still served from the cache.
    let last = scope(WARM + FLOOD - 1);
    let token = credential.get_token(&[&last], None).await.unwrap();
    assert!(token.token.secret().contains(&format!("{:0>1200}", WARM + FLOOD)));
    assert_eq!(
        REQUESTS.load(Ordering::SeqCst),
        WARM + FLOOD,
        "answered from the cache"
    );
}
