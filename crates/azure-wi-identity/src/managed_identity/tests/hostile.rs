//! Hostile endpoints and hostile variables (issue 15 items 7, 10 and 13), through the public
//! credential, with the shared test server's hostile replies.

use std::time::Duration;

use super::{SCOPE, credential, options};
use crate::{
    ErrorKind, TokenCredential,
    managed_identity::ManagedIdentityCredential,
    test_server::{Reply, Stream, TestServer},
};

const HEADER: &str = "identity-header-s3cr3t";

/// Item 7: the managed identity path kept the first 64 KiB of any answer silently; now an
/// oversized answer is an error naming the endpoint and the limit, whatever the source.
#[tokio::test]
async fn oversized_answers_name_the_endpoint_and_the_limit() {
    for reply in [
        Reply::status(200).stream(Stream::Endless),
        Reply::status(200).stream(Stream::Repeat { len: 1 << 30 }),
        Reply::status(401).stream(Stream::Endless),
    ] {
        let server = TestServer::scripted([reply.clone()]).await;
        let endpoint = format!("{}/msi/token", server.url());
        let app_service = credential(
            &[("IDENTITY_ENDPOINT", &endpoint), ("IDENTITY_HEADER", HEADER)],
            None,
        );
        let e = app_service.get_token(&[SCOPE], None).await.unwrap_err();
        let m = e.to_string();
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{m}");
        assert!(m.contains(&endpoint) && m.contains("65536 bytes"), "{m}");
        assert!(!m.contains(HEADER), "{m}");

        let server = TestServer::scripted([reply]).await;
        let imds = credential(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &server.url())], None);
        let e = imds.get_token(&[SCOPE], None).await.unwrap_err();
        let m = e.to_string();
        assert!(m.contains(&server.url()) && m.contains("65536 bytes"), "{m}");
    }
}

/// Item 10: a dripping IMDS is stopped by IMDS's 120 s deadline (room for its 75 s maintenance
/// schedule), on the paused clock; a configured deadline is honoured; the error names it.
#[tokio::test(start_paused = true)]
async fn a_dripping_endpoint_is_stopped_by_the_deadline() {
    let drip = || {
        Reply::status(200).body(vec![b' '; 100]).stream(Stream::Drip {
            every: Duration::from_secs(5),
        })
    };
    let server = TestServer::with_handler(move |_| drip()).await;
    let imds = credential(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &server.url())], None);
    let started = tokio::time::Instant::now();
    let e = imds.get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(120));
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        e.to_string()
            .contains("gave up after 120 s, the overall deadline"),
        "{e}"
    );

    let endpoint = format!("{}/msi/token", server.url());
    let mut opts = options(&[("IDENTITY_ENDPOINT", &endpoint), ("IDENTITY_HEADER", HEADER)]);
    opts.timeouts.deadline = Some(Duration::from_secs(7));
    let app_service = ManagedIdentityCredential::new(Some(opts)).unwrap();
    let started = tokio::time::Instant::now();
    let e = app_service.get_token(&[SCOPE], None).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    assert!(e.to_string().contains("gave up after 7 s"), "{e}");
}

/// A Retry-After beyond what a `Duration` holds is no delay: the answer is an error naming its
/// status, not a panic in `get_token`.
#[tokio::test(start_paused = true)]
async fn an_absurd_retry_after_is_an_error_not_a_panic() {
    for (name, value) in [("retry-after", "1e20"), ("retry-after-ms", "1e30")] {
        let server = TestServer::with_handler(move |_| Reply::json(429, "{}").header(name, value)).await;
        let endpoint = format!("{}/msi/token", server.url());
        let app_service = credential(
            &[("IDENTITY_ENDPOINT", &endpoint), ("IDENTITY_HEADER", HEADER)],
            None,
        );
        let e = app_service.get_token(&[SCOPE], None).await.unwrap_err();
        assert_eq!(e.status(), Some(429), "{name}: {value}: {e}");
    }
}

/// `Duration::MAX` as the deadline and the read timeout ("no limit") is honoured, not an overflow
/// on every request.
#[tokio::test]
async fn the_largest_deadline_and_read_timeout_mean_no_limit() {
    let server = TestServer::with_handler(|_| Reply::token("at", 3600)).await;
    let endpoint = format!("{}/msi/token", server.url());
    let mut opts = options(&[("IDENTITY_ENDPOINT", &endpoint), ("IDENTITY_HEADER", HEADER)]);
    opts.timeouts.deadline = Some(Duration::MAX);
    opts.timeouts.read_timeout = Some(Duration::MAX);
    let app_service = ManagedIdentityCredential::new(Some(opts)).unwrap();
    let token = app_service.get_token(&[SCOPE], None).await.unwrap();
    assert_eq!(token.token.secret(), "at");
}

/// Item 13: one plain-http rule for every endpoint variable, and user info never printed.
#[test]
fn endpoint_variables_follow_the_plain_http_rule() {
    let build = |pairs: &[(&str, &str)]| ManagedIdentityCredential::new(Some(options(pairs)));
    for endpoint in [
        "http://127.0.0.2:41741/MSI/token/",
        "http://localhost:42356/msi/token",
        "http://169.254.129.2:8081/msi/token",
        "https://identity.example:443/token",
    ] {
        build(&[("IDENTITY_ENDPOINT", endpoint), ("IDENTITY_HEADER", HEADER)])
            .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
        build(&[("MSI_ENDPOINT", endpoint), ("MSI_SECRET", "s")])
            .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
        build(&[("MSI_ENDPOINT", endpoint)]).unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    }
    for (pairs, var) in [
        (
            vec![
                ("IDENTITY_ENDPOINT", "http://10.0.0.4:8081/msi/token"),
                ("IDENTITY_HEADER", HEADER),
            ],
            "IDENTITY_ENDPOINT",
        ),
        (
            vec![("MSI_ENDPOINT", "http://evil.example/token")],
            "MSI_ENDPOINT",
        ),
        (
            vec![("MSI_ENDPOINT", "http://10.0.0.4/token"), ("MSI_SECRET", "s")],
            "MSI_ENDPOINT",
        ),
        (
            vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://evil.example")],
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        ),
        (
            vec![
                ("IDENTITY_ENDPOINT", "http://10.0.0.4:40342/token"),
                ("IMDS_ENDPOINT", "http://10.0.0.4:40342"),
            ],
            "IDENTITY_ENDPOINT",
        ),
    ] {
        let e = build(&pairs).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(
            e.to_string().contains(var) && e.to_string().contains("plain http"),
            "{e}"
        );
    }
    for (pairs, var) in [
        (
            vec![
                ("IDENTITY_ENDPOINT", "http://user:pw-s3cr3t@127.0.0.1:1/token"),
                ("IDENTITY_HEADER", HEADER),
            ],
            "IDENTITY_ENDPOINT",
        ),
        (
            vec![("MSI_ENDPOINT", "http://user:pw-s3cr3t@localhost/token")],
            "MSI_ENDPOINT",
        ),
        (
            vec![(
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                "http://user:pw-s3cr3t@127.0.0.1:1",
            )],
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        ),
        (
            vec![
                ("IDENTITY_ENDPOINT", "http://user:pw-s3cr3t@[::1 not a url"),
                ("IDENTITY_HEADER", HEADER),
            ],
            "IDENTITY_ENDPOINT",
        ),
    ] {
        let e = build(&pairs).unwrap_err();
        let m = e.to_string();
        assert!(m.contains(var), "{m}");
        assert!(
            !m.contains("pw-s3cr3t") && !m.contains("user:"),
            "user info printed: {m}"
        );
        assert!(!format!("{e:?}").contains("pw-s3cr3t"), "{e:?}");
    }
}
