//! The proxy served on a real socket with the real workload identity credential, against a
//! Microsoft Entra stand-in on 127.0.0.1.

use std::time::Duration;

use azure_wi::proxy::Probe;
use futures::future::join_all;
use serde_json::Value;

use azure_wi_test_support::entra::Entra;

use crate::support::{self, IDENTITY_HEADER, Served};

const VAULT: &str = "https%3A%2F%2Fvault.azure.net";

async fn imds_get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).header("Metadata", "true").send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The Entra stand-in, the proxy (IMDS mode) exchanging there, a client, and the proxy's URL for
/// a Key Vault token.
async fn serve_vault() -> (Entra, Served, reqwest::Client, String) {
    let entra = support::entra().await;
    let served = Served::start(&entra.authority, false).await;
    let url = served.imds_url(VAULT);
    (entra, served, support::client(), url)
}

/// [`imds_get`] on a task of its own.
fn spawn_imds_get(client: &reqwest::Client, url: &str) -> tokio::task::JoinHandle<(u16, Value)> {
    let (client, url) = (client.clone(), url.to_owned());
    tokio::spawn(async move { imds_get(&client, &url).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_requests_causes_one_exchange() {
    let (entra, served, client, url) = serve_vault().await;
    entra.hold();
    let arrived = entra.arrived();
    let burst: Vec<_> = (0..500).map(|_| spawn_imds_get(&client, &url)).collect();
    arrived.await;
    // Let the rest of the burst pile up behind the held exchange (setup only: the assertion
    // below holds whatever the interleaving).
    tokio::time::sleep(Duration::from_millis(300)).await;
    entra.release();
    let results = join_all(burst).await;
    let first = results[0].as_ref().unwrap().1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims = support::claims(&first);
    assert_eq!(
        (&claims["uti"], &claims["aud"]),
        (&"exchange-1".into(), &"https://vault.azure.net".into()),
        "{claims}"
    );
    for result in results {
        let (status, body) = result.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["access_token"], first.as_str());
    }
    assert_eq!(entra.exchanges(), 1, "one exchange for the whole burst");
    assert_eq!(served.proxy.credentials().len(), 1);

    // Another resource is another exchange; the first stays cached.
    let (status, body) = imds_get(&client, &served.imds_url("https%3A%2F%2Fstorage.azure.com%2F")).await;
    assert_eq!(status, 200);
    // The resource as the client wrote it, `/.default` appended: `https://storage.azure.com//.default`.
    assert_eq!(
        support::claims(body["access_token"].as_str().unwrap())["aud"],
        "https://storage.azure.com/"
    );
    imds_get(&client, &url).await;
    assert_eq!(entra.exchanges(), 2);
    served.shutdown().await;
}

/// More silent connections than the proxy's cap (256 a listener): the oldest silent ones are
/// closed at once to make room, long before the 5 s header deadline, and tokens are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_beyond_the_cap_are_closed_and_tokens_still_served() {
    use tokio::io::AsyncReadExt;
    let (_entra, served, client, url) = serve_vault().await;
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(tokio::net::TcpStream::connect(served.addr).await.unwrap());
    }
    let (status, body) = imds_get(&client, &url).await;
    assert_eq!(status, 200, "{body}");
    let closed = join_all(silent.iter_mut().map(|stream| async move {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }))
    .await
    .into_iter()
    .filter(|closed| *closed)
    .count();
    // 300 silent connections and the client's one against 256 slots.
    assert!(
        closed >= 300 + 1 - 256,
        "only {closed} silent connections were closed to make room"
    );
    served.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_disconnecting_mid_request_do_not_cancel_the_exchange() {
    let (entra, served, client, url) = serve_vault().await;
    entra.hold();
    let arrived = entra.arrived();
    let leaver = spawn_imds_get(&client, &url);
    arrived.await;
    leaver.abort(); // the client goes away while its exchange is in flight
    assert!(leaver.await.unwrap_err().is_cancelled());
    let stayer = spawn_imds_get(&client, &url);
    tokio::time::sleep(Duration::from_millis(100)).await;
    entra.release();
    let (status, body) = stayer.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        entra.exchanges(),
        1,
        "the abandoned exchange served the next client"
    );
    let (status, _) = imds_get(&client, &url).await;
    assert_eq!(status, 200);
    served.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_down_is_a_clear_5xx_and_the_proxy_recovers() {
    let (entra, served, client, url) = serve_vault().await;
    entra.set_failing(true);
    let (status, body) = imds_get(&client, &url).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "bad_gateway");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains("AADSTS90033") && description.contains(support::DEFAULT_CLIENT),
        "{description}"
    );
    assert!(
        !description.contains(support::ASSERTION),
        "the assertion must not leak"
    );
    entra.set_failing(false);
    let (status, body) = imds_get(&client, &url).await;
    assert_eq!(status, 200, "{body}");
    served.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_unreachable_is_503() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = Served::start(&format!("http://{closed}"), false).await;
    let (status, body) = imds_get(&support::client(), &unreachable.imds_url(VAULT)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "service_unavailable");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("cannot reach Microsoft Entra"),
        "{body}"
    );
    unreachable.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_endpoint_serves_app_service_clients() {
    let entra = support::entra().await;
    let served = Served::start(&entra.authority, true).await;
    let url = format!(
        "http://{}/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com&client_id=c-2",
        served.addr
    );
    let response = support::client()
        .get(&url)
        .header("X-IDENTITY-HEADER", IDENTITY_HEADER)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = support::claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        (&claims["uti"], &claims["appid"], &claims["aud"]),
        (
            &"exchange-1".into(),
            &"c-2".into(),
            &"https://storage.azure.com".into()
        ),
        "{claims}"
    );
    assert_eq!(body["client_id"], "c-2");
    let response = support::client()
        .get(&url)
        .header("X-IDENTITY-HEADER", "wrong-but-long-enough-value")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(entra.exchanges(), 1);
    served.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_readiness() {
    let entra = support::entra().await;
    let served = Served::start(&entra.authority, false).await;
    assert!(Probe::localhost(served.addr.port()).run().await);
    let port = served.addr.port();
    served.shutdown().await;
    let probe = Probe::localhost(port).with_interval(Duration::from_millis(10));
    assert!(!probe.run().await, "nothing listens any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish_and_stops_accepting() {
    let entra = support::entra().await;
    let served = Served::start(&entra.authority, false).await;
    let addr = served.addr;
    let client = support::client();
    entra.hold();
    let arrived = entra.arrived();
    let in_flight = spawn_imds_get(&client, &served.imds_url(VAULT));
    arrived.await;
    let shutdown = tokio::spawn(served.shutdown());
    let mut refused = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the listener must close on shutdown");
    entra.release();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    shutdown.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listens_on_loopback_only() {
    let entra = support::entra().await;
    let served = Served::start(&entra.authority, false).await;
    let addrs = served.proxy.clone().bind().await.unwrap().local_addrs();
    assert!(!addrs.is_empty());
    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    // ::1 is served too when the host has IPv6.
    if tokio::net::TcpListener::bind("[::1]:0").await.is_ok() {
        let url = format!("http://[::1]:{}/readyz", served.addr.port());
        let response = support::client().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    served.shutdown().await;
}

/// Microsoft Entra accepting the exchange and never answering: the credential gives up at its
/// overall deadline (60 s, on tokio's paused clock here; read timeouts and retries within it),
/// and the proxy answers 503 naming the deadline, which SDKs' IMDS retry policies retry.
#[tokio::test(start_paused = true)]
async fn entra_slower_than_the_read_timeout_is_503_naming_the_timeout() {
    // A plain thread, not a task: the stall must not depend on the paused clock.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalling = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            held.push(stream);
        }
    });
    let served = Served::start(&format!("http://{stalling}"), false).await;
    let (status, body) = imds_get(&support::client(), &served.imds_url(VAULT)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "service_unavailable");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains("cannot reach Microsoft Entra ID")
            && description.contains("gave up after 60 s, the overall deadline"),
        "{body}"
    );
    served.shutdown().await;
}
