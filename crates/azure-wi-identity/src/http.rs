//! The HTTP client every credential shares, and the retry policies of the token endpoints.
//!
//! One process-wide [`reqwest::Client`] (connection pool included) built with rustls and the
//! ring provider, trusting the platform's root certificates plus any PEM bundle named by
//! `SSL_CERT_FILE`. Redirects are never followed (a caller's [`Transport`](crate::Transport) has
//! them switched off too): a token endpoint that redirects is answered as an error, never by
//! sending a secret header to another host.
//!
//! [`send_with_retry`] replays a request according to a [`RetryPolicy`]: azure-core's defaults
//! ([`RetryPolicy::DEFAULT`]), the IMDS schedule ([`RetryPolicy::IMDS`]) or the caller's
//! [`RetryOptions`](crate::RetryOptions) ([`RetryPolicy::counted`]), each attempt bounded
//! by the per-read timeout of the credential's [`RequestTimeouts`](super::RequestTimeouts).
//! [`read_body`] reads an answer's body, piece by piece under the same timeout, and never more
//! than [`MAX_BODY_BYTES`]: every body the library reads goes through it. Sleeps and timeouts go
//! through `tokio::time`, so tests can run the schedules with paused time.

use std::{
    sync::OnceLock,
    time::{Duration, SystemTime},
};

use reqwest::{RequestBuilder, Response, StatusCode, header::HeaderMap};
use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};

use super::{Error, Result, timeouts};

/// Connect timeout of the shared client.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest answer body read from any endpoint (Microsoft Entra, the Azure Pipelines OIDC
/// endpoint, every managed identity endpoint). A token answer is 1 to 3 KB, an error answer
/// rarely more than 2 KB: 64 KiB is 20 times that, and bounds what a hostile or broken endpoint
/// can make the process hold.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

const CREDENTIAL: &str = "HTTP client";

/// Why the shared client could not be built. Kept as data so that every caller gets its own
/// [`Error`] from the once-built result.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum HttpClientError {
    /// `SSL_CERT_FILE` names a file that cannot be used.
    #[error(
        "SSL_CERT_FILE={path} cannot be used: {reason}. Point SSL_CERT_FILE at a PEM bundle of CA \
         certificates, or unset it to trust only the platform roots"
    )]
    CertFile {
        /// The path from `SSL_CERT_FILE`.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// reqwest refused the configuration.
    #[error("the HTTP client cannot be built: {0}")]
    Build(String),
}

impl From<HttpClientError> for Error {
    fn from(e: HttpClientError) -> Self {
        match e {
            HttpClientError::CertFile { .. } => Error::invalid_input(CREDENTIAL, e.to_string()),
            HttpClientError::Build(_) => Error::unavailable(CREDENTIAL, e.to_string()),
        }
    }
}

/// The process-wide client, built on first use.
pub(crate) fn shared_client() -> Result<reqwest::Client> {
    static CLIENT: OnceLock<Result<reqwest::Client, HttpClientError>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            client_builder_checked()?
                .build()
                .map_err(|e| HttpClientError::Build(e.to_string()))
        })
        .clone()
        .map_err(Error::from)
}

/// A client builder configured like the shared client (TLS trust, connect timeout, no
/// redirects), for sources that need other timeouts. When `SSL_CERT_FILE` is unusable the builder
/// trusts only the platform roots; [`shared_client`] reports that error instead.
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    client_builder_checked().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring SSL_CERT_FILE");
        let roots = root_store(None).unwrap_or_else(|_| Roots::empty());
        base_builder(roots.client_config())
    })
}

fn client_builder_checked() -> Result<reqwest::ClientBuilder, HttpClientError> {
    Ok(base_builder(platform_tls()?))
}

/// The TLS configuration of the shared client: the platform's roots plus `SSL_CERT_FILE`.
pub(crate) fn platform_tls() -> Result<rustls::ClientConfig, HttpClientError> {
    let cert_file = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty());
    let roots = root_store(cert_file.as_deref().map(std::path::Path::new))?;
    Ok(roots.client_config())
}

/// A client builder like the shared client's (connect timeout, no redirects, User-Agent) with
/// the TLS configuration `tls`.
pub(crate) fn builder_with_tls(tls: rustls::ClientConfig) -> reqwest::ClientBuilder {
    base_builder(tls)
}

fn base_builder(tls: rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("azure-wi/", env!("CARGO_PKG_VERSION")))
}

/// A rustls client configuration with the ring provider and webpki's verification only (no
/// extra anchors), built explicitly so that it never depends on a process-wide default provider.
#[cfg(test)]
pub(crate) fn tls_config(roots: RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The trusted roots: the platform's plus those of the `SSL_CERT_FILE`, kept apart too (a
/// server certificate byte-identical to one of them is trusted as it is).
#[derive(Debug)]
pub(crate) struct Roots {
    pub(crate) store: RootCertStore,
    pub(crate) extra: Vec<CertificateDer<'static>>,
    pub(crate) cert_file: Option<std::path::PathBuf>,
}

impl Roots {
    fn empty() -> Self {
        Self {
            store: RootCertStore::empty(),
            extra: Vec::new(),
            cert_file: None,
        }
    }

    /// The client configuration trusting these roots ([`tls_trust`](super::tls_trust)).
    pub(crate) fn client_config(self) -> rustls::ClientConfig {
        super::tls_trust::client_config(self.store, self.extra, self.cert_file)
    }
}

/// The platform roots plus the PEM certificates of `extra` (the `SSL_CERT_FILE`).
pub(crate) fn root_store(extra: Option<&std::path::Path>) -> Result<Roots, HttpClientError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "skipping an unreadable platform certificate");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "loaded platform root certificates");
    let mut extra_certs = Vec::new();
    if let Some(path) = extra {
        let cert_error = |reason: String| HttpClientError::CertFile {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| cert_error(e.to_string()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_error(format!("not a PEM bundle ({e})")))?;
        if certs.is_empty() {
            return Err(cert_error("it holds no PEM certificate".into()));
        }
        let (added, _) = roots.add_parsable_certificates(certs.iter().cloned());
        if added == 0 {
            return Err(cert_error("none of its certificates could be parsed".into()));
        }
        extra_certs = certs;
    }
    Ok(Roots {
        store: roots,
        extra: extra_certs,
        cert_file: extra.map(std::path::Path::to_owned),
    })
}

/// A random (version 4) UUID for the `x-ms-client-request-id` header, which Microsoft Entra
/// records with the request: quote it when asking support about a failure.
pub(crate) fn client_request_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // No randomness: a fixed, recognisable id rather than no request at all.
        b = [0; 16];
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("{}-{}-{}-{}-{}", h(0..4), h(4..6), h(6..8), h(8..10), h(10..16))
}

/// When and how often a request is replayed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    /// Retries after a retryable status.
    pub(crate) max_status_retries: u32,
    /// Retries after a connection error or timeout.
    pub(crate) max_connect_retries: u32,
    /// Retries of any kind.
    pub(crate) max_total_retries: u32,
    /// Backoff factor: the n-th retry waits `factor * 2^(n-1)`, except the first when
    /// [`first_retry_at_once`](Self::first_retry_at_once) is set.
    pub(crate) backoff_factor: Duration,
    /// Whether the first retry goes at once (azure-core's schedules; not a caller's
    /// [`ExponentialRetryOptions`](crate::ExponentialRetryOptions)).
    pub(crate) first_retry_at_once: bool,
    /// The factor while the last response was `410 Gone` (IMDS maintenance), if different.
    pub(crate) gone_backoff_factor: Option<Duration>,
    /// Upper bound of a computed backoff (not of a server's `Retry-After`).
    pub(crate) backoff_max: Duration,
    /// Whether a status is retried.
    pub(crate) retry_on: fn(u16) -> bool,
}

fn default_statuses(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504) || status >= 506
}

fn imds_statuses(status: u16) -> bool {
    default_statuses(status) || matches!(status, 404 | 410 | 429) || (500..=599).contains(&status)
}

impl RetryPolicy {
    /// azure-core's defaults with every method retryable: 408, 429, 500, 502, 503, 504 and
    /// ≥ 506, plus any ≥ 400 response carrying a retry-after header; 3 status and 3 connection
    /// retries; backoff 0, 1.6, 3.2 s (factor 0.8, at most 120 s).
    pub(crate) const DEFAULT: RetryPolicy = RetryPolicy {
        max_status_retries: 3,
        max_connect_retries: 3,
        max_total_retries: 10,
        backoff_factor: Duration::from_millis(800),
        first_retry_at_once: true,
        gone_backoff_factor: None,
        backoff_max: Duration::from_secs(120),
        retry_on: default_statuses,
    };

    /// The IMDS schedule: 404, 410, 429 and 5xx, 5 retries, sleeps 0, 1.6, 3.2, 6.4, 12.8 s;
    /// while the last status is 410 the factor is 2.5 (0, 5, 10, 20, 40 s: ≥ 70 s in total, the
    /// IMDS guidance for maintenance). At most 60 s per computed backoff.
    pub(crate) const IMDS: RetryPolicy = RetryPolicy {
        max_status_retries: 5,
        max_connect_retries: 3,
        max_total_retries: 5,
        backoff_factor: Duration::from_millis(800),
        first_retry_at_once: true,
        gone_backoff_factor: Some(Duration::from_millis(2500)),
        backoff_max: Duration::from_secs(60),
        retry_on: imds_statuses,
    };

    /// `source`'s retryable statuses with a caller's count and schedule: at most `max_retries`
    /// retries of any kind, retry `n` waiting `initial_delay * 2^(n-1)`, at most `max_delay`.
    pub(crate) fn counted(
        source: &RetryPolicy,
        max_retries: u32,
        initial_delay: Duration,
        max_delay: Duration,
    ) -> RetryPolicy {
        RetryPolicy {
            max_status_retries: max_retries,
            max_connect_retries: max_retries,
            max_total_retries: max_retries,
            backoff_factor: initial_delay,
            first_retry_at_once: false,
            gone_backoff_factor: None,
            backoff_max: max_delay,
            retry_on: source.retry_on,
        }
    }

    /// Whether a response with this status and headers is replayed (retry budget aside).
    pub(crate) fn is_retryable(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        let code = status.as_u16();
        (self.retry_on)(code) || (code >= 400 && retry_after(headers, SystemTime::now()).is_some())
    }

    /// The computed backoff before retry number `retry` (1-based), `last_status` being the status
    /// of the response that failed, if any.
    pub(crate) fn backoff(&self, retry: u32, last_status: Option<u16>) -> Duration {
        if retry == 0 || (retry == 1 && self.first_retry_at_once) {
            return Duration::ZERO;
        }
        let factor = match (last_status, self.gone_backoff_factor) {
            (Some(410), Some(gone)) => gone,
            _ => self.backoff_factor,
        };
        let exp = 2u32.saturating_pow(retry - 1);
        factor.saturating_mul(exp).min(self.backoff_max)
    }
}

/// The delay a response asks for: `retry-after-ms`, `x-ms-retry-after-ms` (milliseconds) or
/// `Retry-After` (seconds or an HTTP date). A number that is negative, not finite or beyond what
/// a [`Duration`] holds is no usable delay.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(delay) = text(name)
            .and_then(|v| v.parse::<f64>().ok())
            .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
        {
            return Some(delay);
        }
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let date = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let at = SystemTime::from(date);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The HTTP client failed (connection refused, TLS refused, connect timeout, reset).
    #[error("{}", describe(.0))]
    Http(#[source] reqwest::Error),
    /// Nothing arrived within the per-read timeout.
    #[error(
        "timed out: nothing arrived within the {} s read timeout (timeouts.read_timeout in the \
         credential's options)",
        timeouts::seconds(*.0)
    )]
    ReadTimeout(Duration),
    /// The overall deadline of the token request passed. The source is reqwest's own timeout
    /// when that is what stopped the attempt (so that callers recognise a timeout).
    #[error(
        "gave up after {} s, the overall deadline of a token request (all retries included); raise \
         timeouts.deadline in the credential's options if the endpoint is merely slow",
        timeouts::seconds(*.deadline)
    )]
    Deadline {
        /// The deadline.
        deadline: Duration,
        /// reqwest's timeout error, when it stopped the attempt.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error(
        "the answer is larger than {limit} bytes, the most the library reads from a token endpoint \
         (no token answer comes near it); reading stopped there"
    )]
    TooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
}

impl SendError {
    /// Whether a new attempt may succeed: connection errors and timeouts.
    fn is_transient(&self) -> bool {
        match self {
            Self::Http(e) => e.is_connect() || e.is_timeout(),
            Self::ReadTimeout(_) => true,
            Self::TooLarge { .. } | Self::Deadline { .. } => false,
        }
    }

    /// Whether the connection itself failed (nothing was answered).
    #[cfg(test)]
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, Self::Http(e) if e.is_connect())
    }
}

/// The time limits of one token request: the per-read timeout, and the overall deadline counted
/// from [`Limits::start`]. Every attempt is given what is left of the deadline as reqwest's own
/// request timeout (connecting to the last byte of the body), so a deadline that passes during an
/// attempt surfaces as reqwest's timeout error, the source of [`SendError::Deadline`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    read_timeout: Duration,
    deadline: Duration,
    until: tokio::time::Instant,
}

impl Limits {
    /// Limits starting now. A deadline past what the clock can hold (`Duration::MAX`, "no
    /// deadline") ends in a hundred years.
    pub(crate) fn start(read_timeout: Duration, deadline: Duration) -> Self {
        let now = tokio::time::Instant::now();
        let until = now
            .checked_add(deadline)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        Self {
            read_timeout,
            deadline,
            until,
        }
    }

    /// What is left of the deadline.
    fn left(&self) -> Duration {
        self.until.saturating_duration_since(tokio::time::Instant::now())
    }

    /// The error for a passed deadline, keeping reqwest's timeout error as its source.
    fn passed(&self, source: Option<reqwest::Error>) -> SendError {
        SendError::Deadline {
            deadline: self.deadline,
            source,
        }
    }

    /// `error` as the deadline when the deadline has passed.
    fn classify(&self, error: SendError) -> SendError {
        if !self.left().is_zero() {
            return error;
        }
        match error {
            SendError::Http(e) if e.is_timeout() => self.passed(Some(e)),
            SendError::Http(_) | SendError::ReadTimeout(_) => self.passed(None),
            other => other,
        }
    }
}

/// Describes a failed request for an error message: reqwest's own `Display` names only the URL,
/// so the causes follow (`connection refused`, a TLS refusal), and a timeout says which one and
/// how long it was.
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = cause {
        let part = current.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        cause = current.source();
    }
    if error.is_timeout() {
        let which = if error.is_connect() {
            format!(
                "could not connect within the {} s connect timeout",
                CONNECT_TIMEOUT.as_secs()
            )
        } else {
            "timed out".to_owned()
        };
        return format!("{which} ({text})");
    }
    if text.is_empty() { error.to_string() } else { text }
}

/// Sends the request `build` makes, replaying it per `policy`; with `limits`, each attempt gets
/// the read timeout for the answer's head and what is left of the deadline in all, and backoffs
/// never sleep past the deadline. Returns the last response when the status retries are exhausted
/// (the caller interprets it) and the last error when the connection retries are.
pub(crate) async fn send_with_retry(
    build: impl Fn() -> RequestBuilder,
    policy: &RetryPolicy,
    limits: Option<Limits>,
) -> Result<Response, SendError> {
    let (mut status_retries, mut connect_retries, mut retries) = (0u32, 0u32, 0u32);
    loop {
        let attempt = async {
            match limits {
                Some(limits) => {
                    let left = limits.left();
                    if left.is_zero() {
                        return Err(limits.passed(None));
                    }
                    let send = build().timeout(left).send();
                    match tokio::time::timeout(limits.read_timeout, send).await {
                        Ok(result) => result.map_err(|e| limits.classify(SendError::Http(e))),
                        Err(_) => Err(limits.classify(SendError::ReadTimeout(limits.read_timeout))),
                    }
                }
                None => build().send().await.map_err(SendError::Http),
            }
        };
        let sleep = |delay: Duration| {
            let delay = limits.map_or(delay, |l| delay.min(l.left()));
            tokio::time::sleep(delay)
        };
        match attempt.await {
            Ok(response) => {
                let status = response.status();
                if status_retries >= policy.max_status_retries
                    || retries >= policy.max_total_retries
                    || !policy.is_retryable(status, response.headers())
                {
                    return Ok(response);
                }
                status_retries += 1;
                retries += 1;
                let delay = retry_after(response.headers(), SystemTime::now())
                    .unwrap_or_else(|| policy.backoff(retries, Some(status.as_u16())));
                tracing::debug!(
                    status = status.as_u16(),
                    retry = retries,
                    delay_ms = delay.as_millis() as u64,
                    "retrying token request"
                );
                drop(response);
                sleep(delay).await;
            }
            Err(e) => {
                if !e.is_transient()
                    || connect_retries >= policy.max_connect_retries
                    || retries >= policy.max_total_retries
                {
                    return Err(e);
                }
                connect_retries += 1;
                retries += 1;
                let delay = policy.backoff(retries, None);
                tracing::debug!(error = %e, retry = retries, delay_ms = delay.as_millis() as u64, "retrying token request after a connection error");
                sleep(delay).await;
            }
        }
    }
}

/// Reads `response`'s body: at most [`MAX_BODY_BYTES`] (a larger announced length is refused
/// before reading; a longer or endless body stops at the bound), with `limits` each piece within
/// the read timeout and the whole within the deadline.
pub(crate) async fn read_body(mut response: Response, limits: Option<Limits>) -> Result<Vec<u8>, SendError> {
    let too_large = SendError::TooLarge {
        limit: MAX_BODY_BYTES,
    };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY_BYTES as u64)
    {
        return Err(too_large);
    }
    let mut body = Vec::new();
    loop {
        let chunk = match limits {
            Some(limits) => match tokio::time::timeout(limits.read_timeout, response.chunk()).await {
                Ok(chunk) => chunk.map_err(|e| limits.classify(SendError::Http(e)))?,
                Err(_) => return Err(limits.classify(SendError::ReadTimeout(limits.read_timeout))),
            },
            None => response.chunk().await.map_err(SendError::Http)?,
        };
        match chunk {
            None => return Ok(body),
            Some(chunk) if body.len() + chunk.len() > MAX_BODY_BYTES => return Err(too_large),
            Some(chunk) => body.extend_from_slice(&chunk),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_wi_test_support::recording_server::{Reply, TestServer};

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// The gaps between consecutive requests, on the paused tokio clock.
    fn gaps(server: &TestServer) -> Vec<Duration> {
        let r = server.requests();
        r.windows(2).map(|w| w[1].at - w[0].at).collect()
    }

    fn plain_client() -> reqwest::Client {
        // No timeouts: with paused time they would fire as soon as the runtime idles.
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(RootCertStore::empty()))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    #[test]
    fn the_connect_timeout_is_azure_core_s() {
        // The read timeout and the overall deadline are the credential's (RequestTimeouts);
        // tests/fault_injection.rs::entra_slower_than_the_read_timeout_fails_naming_the_deadline.
        assert_eq!(CONNECT_TIMEOUT, Duration::from_secs(20));
    }

    #[test]
    fn client_request_ids_are_v4_uuids() {
        let (a, b) = (client_request_id(), client_request_id());
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{a}"
        );
        assert!(parts[2].starts_with('4'), "{a}");
        assert!("89ab".contains(&parts[3][..1]), "{a}");
    }

    #[test]
    fn status_sets_match_the_reference() {
        for s in [408, 429, 500, 502, 503, 504, 506, 599] {
            assert!(default_statuses(s), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 501, 505] {
            assert!(!default_statuses(s), "{s}");
        }
        for s in [404, 410, 429, 500, 501, 505, 599] {
            assert!(imds_statuses(s), "{s}");
        }
        for s in [400, 401, 403] {
            assert!(!imds_statuses(s), "{s}");
        }
    }

    #[test]
    fn backoff_schedules() {
        let imds: Vec<_> = (1..=5).map(|n| RetryPolicy::IMDS.backoff(n, Some(500))).collect();
        assert_eq!(imds, [0.0, 1.6, 3.2, 6.4, 12.8].map(secs));
        let gone: Vec<_> = (1..=5).map(|n| RetryPolicy::IMDS.backoff(n, Some(410))).collect();
        assert_eq!(gone, [0.0, 5.0, 10.0, 20.0, 40.0].map(secs));
        assert_eq!(gone.iter().sum::<Duration>(), secs(75.0));
        let default: Vec<_> = (1..=3)
            .map(|n| RetryPolicy::DEFAULT.backoff(n, Some(503)))
            .collect();
        assert_eq!(default, [0.0, 1.6, 3.2].map(secs));
        assert_eq!(RetryPolicy::DEFAULT.backoff(20, None), secs(120.0));
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(secs(7.0)));
        // 2001-09-09T01:46:40Z is the epoch second 1_000_000_000; 30 s later:
        h.insert("retry-after", "Sun, 09 Sep 2001 01:47:10 GMT".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(secs(30.0)));
        h.insert("retry-after", "Sun, 09 Sep 2001 01:00:00 GMT".parse().unwrap());
        assert_eq!(
            retry_after(&h, now),
            Some(Duration::ZERO),
            "a past date means now"
        );
        h.insert("x-ms-retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(secs(0.25)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(secs(1.5)));
        let mut bad = HeaderMap::new();
        bad.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&bad, now), None);
        // Numbers no Duration holds are no delay (and no panic).
        for (name, value) in [
            ("retry-after", "1e20"),
            ("retry-after", "-1"),
            ("retry-after", "inf"),
            ("retry-after", "NaN"),
            ("retry-after-ms", "1e30"),
            ("x-ms-retry-after-ms", "-5"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, value.parse().unwrap());
            assert_eq!(retry_after(&h, now), None, "{name}: {value}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn imds_schedule_on_500_then_success() {
        let server = TestServer::scripted(
            [500, 500, 500, 500]
                .map(Reply::status)
                .into_iter()
                .chain([Reply::token("t", 3600)]),
        )
        .await;
        let client = plain_client();
        let url = server.url();
        let response = send_with_retry(|| client.get(&url), &RetryPolicy::IMDS, None)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(gaps(&server), [0.0, 1.6, 3.2, 6.4].map(secs));
    }

    #[tokio::test(start_paused = true)]
    async fn imds_gone_schedule_is_longer_and_exhaustion_returns_last_response() {
        let server = TestServer::scripted([410; 6].map(Reply::status)).await;
        let client = plain_client();
        let url = server.url();
        let response = send_with_retry(|| client.get(&url), &RetryPolicy::IMDS, None)
            .await
            .unwrap();
        assert_eq!(response.status(), 410);
        assert_eq!(server.request_count(), 6, "one attempt and five retries");
        assert_eq!(gaps(&server), [0.0, 5.0, 10.0, 20.0, 40.0].map(secs));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_and_any_4xx_with_it_is_retried() {
        let server = TestServer::scripted([
            Reply::status(400).header("Retry-After", "9"),
            Reply::status(429).header("retry-after-ms", "2500"),
            Reply::token("t", 3600),
        ])
        .await;
        let client = plain_client();
        let url = server.url();
        let response = send_with_retry(|| client.post(&url).body("x=1"), &RetryPolicy::DEFAULT, None)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(gaps(&server), [secs(9.0), secs(2.5)]);
        assert!(
            server
                .requests()
                .iter()
                .all(|r| r.method == "POST" && r.body == b"x=1"),
            "POST replayed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn default_policy_stops_after_three_status_retries_and_skips_non_retryable() {
        let server = TestServer::scripted([503; 5].map(Reply::status)).await;
        let client = plain_client();
        let url = server.url();
        let response = send_with_retry(|| client.get(&url), &RetryPolicy::DEFAULT, None)
            .await
            .unwrap();
        assert_eq!((response.status().as_u16(), server.request_count()), (503, 4));
        assert_eq!(gaps(&server), [0.0, 1.6, 3.2].map(secs));

        let server = TestServer::scripted([Reply::status(404), Reply::token("t", 1)]).await;
        let url = server.url();
        let response = send_with_retry(|| client.get(&url), &RetryPolicy::DEFAULT, None)
            .await
            .unwrap();
        assert_eq!((response.status().as_u16(), server.request_count()), (404, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn connection_errors_are_retried_three_times() {
        // A port that was just free: every connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = plain_client();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let url = format!("http://127.0.0.1:{port}/");
        let start = tokio::time::Instant::now();
        let err = send_with_retry(
            || {
                attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                client.get(&url)
            },
            &RetryPolicy::DEFAULT,
            None,
        )
        .await
        .unwrap_err();
        assert!(err.is_connect(), "{err}");
        assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 4);
        assert_eq!(start.elapsed(), secs(0.0 + 1.6 + 3.2));
    }

    #[tokio::test]
    async fn shared_client_is_one_instance_and_never_follows_redirects() {
        let server =
            TestServer::scripted([Reply::status(302).header("location", "http://127.0.0.1:1/steal")]).await;
        let a = shared_client().unwrap();
        let response = a.get(server.url()).send().await.unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(server.request_count(), 1);
    }

    #[test]
    fn ssl_cert_file_errors_name_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = root_store(Some(&missing)).unwrap_err();
        assert!(matches!(e, HttpClientError::CertFile { .. }));
        assert!(
            e.to_string().contains("SSL_CERT_FILE") && e.to_string().contains("missing.pem"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = root_store(Some(&empty)).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        assert_eq!(Error::from(e).kind(), crate::ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn trusts_the_ca_bundle_named_by_ssl_cert_file() {
        let (server, ca_pem) = TestServer::scripted_tls([Reply::token("t", 1), Reply::token("t", 1)]).await;
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("ca.pem");
        std::fs::write(&bundle, &ca_pem).unwrap();
        let with_ca = base_builder(root_store(Some(&bundle)).unwrap().client_config())
            .build()
            .unwrap();
        let response = with_ca.get(server.url()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let without = base_builder(root_store(None).unwrap().client_config())
            .build()
            .unwrap();
        let e = without.get(server.url()).send().await.unwrap_err();
        assert!(e.is_connect(), "an unknown CA is refused: {e}");
        assert_eq!(server.request_count(), 1);
    }
}
