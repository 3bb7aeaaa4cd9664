//! `ClientOptions`: the HTTP transport and the retry settings of a credential, as in the Azure SDK
//! for Rust (`azure_core::http::ClientOptions`, whose `retry` and `transport` fields these mirror).
//!
//! Every credential options struct carries one (`client_options`; the assertion-based credentials
//! in their nested `credential_options`). The default keeps the library's behaviour: its own HTTP
//! clients and each source's retry schedule.

use std::{fmt, time::Duration};

use super::{Error, Result, http};

/// The HTTP transport and the retry settings of a credential's token requests.
///
/// Name the fields you set and end with `..Default::default()`, as for every options struct of
/// the library. Whatever is set here, the library's own bounds stay on top: the overall deadline
/// and the read timeout of [`RequestTimeouts`](crate::RequestTimeouts), the 64 KiB bound on every
/// answer, and no redirect is ever followed.
///
/// ```
/// use std::time::Duration;
/// use azure_wi_identity::{
///     ClientAssertionCredentialOptions, ClientOptions, ExponentialRetryOptions, RetryOptions,
///     Transport, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
///     reqwest::{Proxy, header::{HeaderMap, HeaderValue}},
/// };
///
/// # fn main() -> azure_wi_identity::Result<()> {
/// // The library's TLS trust and timeouts, plus a proxy and a header of your own.
/// let mut headers = HeaderMap::new();
/// headers.insert("x-team", HeaderValue::from_static("payments"));
/// let proxy = Proxy::https("http://proxy.internal:3128").expect("a proxy URL");
/// let transport = Transport::from_builder(Transport::default_builder()?.proxy(proxy).default_headers(headers))?;
///
/// let client_options = ClientOptions {
///     transport: Some(transport),
///     // At most 5 retries, waiting 0.5, 1, 2, 4, 4 s (Retry-After wins when the server sends it).
///     retry: RetryOptions::exponential(ExponentialRetryOptions {
///         initial_delay: Duration::from_millis(500),
///         max_retries: 5,
///         max_delay: Duration::from_secs(4),
///     }),
/// };
/// let options = WorkloadIdentityCredentialOptions {
///     tenant_id: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
///     client_id: Some("00000000-0000-0000-0000-000000000001".into()),
///     token_file_path: Some("/var/run/secrets/azure/tokens/azure-identity-token".into()),
///     credential_options: ClientAssertionCredentialOptions {
///         client_options,
///         ..Default::default()
///     },
///     ..Default::default()
/// };
/// let credential = WorkloadIdentityCredential::new(Some(options))?;
/// # let _ = credential;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// How often and when a token request is retried. Default: each source's own schedule (see
    /// [`RetryOptions`]).
    pub retry: RetryOptions,
    /// The HTTP client for the requests to Microsoft Entra ID and to the Azure Pipelines OIDC
    /// endpoint. Default (`None`): the library's client (platform roots plus `SSL_CERT_FILE`,
    /// 20 s connect timeout, no proxy but the system's). The managed identity endpoints and an
    /// identity binding's token proxy always use the library's own clients (see [`Transport`]).
    pub transport: Option<Transport>,
}

/// When a failed token request is sent again, as `azure_core::http::RetryOptions`: the default
/// (each source's own schedule), [`exponential`](Self::exponential) or [`none`](Self::none).
///
/// What is retried does not change: a connection error or timeout, and the source's retryable
/// statuses (408, 429, 500, 502, 503, 504 and ≥ 506 for Entra and most managed identity sources;
/// IMDS adds 404, 410 and every 5xx), plus any error answer carrying a `Retry-After`, whose delay
/// is waited instead of the computed one. Every retry and wait stays within the overall deadline
/// of [`RequestTimeouts`](crate::RequestTimeouts), which plays the part of azure_core's
/// `max_total_elapsed`.
///
/// The default schedules (without options):
///
/// | source | retries | waits before them |
/// | --- | --- | --- |
/// | Microsoft Entra ID, Azure Pipelines OIDC, App Service, Azure Arc, Azure ML, Cloud Shell | 3 after a status, 3 after a connection error | 0, 1.6, 3.2 s (azure-core's: factor 0.8 s, at most 120 s) |
/// | Service Fabric | 3 after a status, none after a refused connection or handshake | 0, 1.6, 3.2 s |
/// | IMDS | 5 | 0, 1.6, 3.2, 6.4, 12.8 s; after a `410` 0, 5, 10, 20, 40 s (IMDS maintenance) |
///
/// Options set explicitly win everywhere, IMDS included (its `410` schedule too): the caller's
/// choice is followed as given. One exception keeps a security property: Service Fabric never
/// retries a refused connection, because a refused handshake is a certificate pinning failure.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RetryOptions {
    mode: RetryMode,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum RetryMode {
    /// Each source's schedule.
    #[default]
    SourceDefault,
    Exponential(ExponentialRetryOptions),
    None,
}

impl fmt::Debug for RetryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mode {
            RetryMode::SourceDefault => f.write_str("RetryOptions::default()"),
            RetryMode::Exponential(o) => write!(f, "RetryOptions::exponential({o:?})"),
            RetryMode::None => f.write_str("RetryOptions::none()"),
        }
    }
}

impl RetryOptions {
    /// Retries at exponentially growing intervals: see [`ExponentialRetryOptions`].
    pub fn exponential(options: ExponentialRetryOptions) -> Self {
        Self {
            mode: RetryMode::Exponential(options),
        }
    }

    /// No retry: one attempt, and its answer or error is the result.
    pub fn none() -> Self {
        Self {
            mode: RetryMode::None,
        }
    }

    /// The policy a source whose own schedule is `source` follows under these options.
    pub(crate) fn policy(&self, source: &http::RetryPolicy) -> http::RetryPolicy {
        match self.mode {
            RetryMode::SourceDefault => *source,
            RetryMode::None => http::RetryPolicy::counted(source, 0, Duration::ZERO, Duration::ZERO),
            RetryMode::Exponential(o) => {
                http::RetryPolicy::counted(source, o.max_retries, o.initial_delay, o.max_delay)
            }
        }
    }
}

/// An exponential retry schedule, with the names of `azure_core::http::ExponentialRetryOptions`:
/// retry `n` (1, 2, ...) waits `initial_delay × 2^(n-1)`, at most `max_delay`, unless the answer
/// asked for another delay with `Retry-After`. No jitter: the schedule is exactly this.
///
/// The defaults are azure_core's: 200 ms, 8 retries, at most 30 s apart (0.2, 0.4, ... 25.6 s: 51 s
/// of waiting, which the default 60 s deadline leaves room for only when the server answers fast).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExponentialRetryOptions {
    /// The wait before the first retry; each further wait doubles. Default: 200 ms.
    pub initial_delay: Duration,
    /// The most retries of any kind (after a retryable status or a connection error); `0`: none.
    /// Default: 8. Not capped otherwise: with a zero `initial_delay`, many retries follow each
    /// other at once until the overall deadline, so keep a delay.
    pub max_retries: u32,
    /// The longest computed wait (not a server's `Retry-After`). Default: 30 s.
    pub max_delay: Duration,
}

impl Default for ExponentialRetryOptions {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(200),
            max_retries: 8,
            max_delay: Duration::from_secs(30),
        }
    }
}

/// A caller's HTTP client for the requests to Microsoft Entra ID and the Azure Pipelines OIDC
/// endpoint: its own proxy, trusted roots, default headers or timeouts.
///
/// Built from a [`reqwest::ClientBuilder`] (this crate's reqwest, re-exported as
/// [`azure_wi_identity::reqwest`](crate::reqwest)), never from a finished client: the library
/// switches redirects off after every setting of yours, because a redirected token request
/// (307 and 308 resend the body) would carry the assertion to another host. Start from
/// [`Transport::default_builder`] to keep the library's TLS trust (the platform roots plus
/// `SSL_CERT_FILE`, rustls with ring), connect timeout and `User-Agent`, and add your settings.
///
/// The library's bounds apply on top of the client's: each request gets what is left of the
/// overall deadline as its timeout, each read the read timeout, and no answer is read past
/// 64 KiB.
///
/// Not used for the managed identity endpoints (IMDS, App Service, Azure Arc, Azure ML, Cloud
/// Shell, Service Fabric): they are on this machine or its link, mostly over plain http with a
/// secret header, so they never go through a proxy, and Service Fabric needs its pinned
/// certificate. An identity binding's token proxy uses its own client too (its CA and server
/// name). The retry options apply to all of them.
///
/// `Debug` shows nothing of the client: default headers may hold keys, proxy URLs credentials.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Transport { .. }")
    }
}

impl Transport {
    /// A builder configured as the library's own client: rustls with the ring provider trusting
    /// the platform roots plus `SSL_CERT_FILE`, a 20 s connect timeout, no redirects, the
    /// library's `User-Agent`. Fails with
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when `SSL_CERT_FILE` names an
    /// unusable file.
    pub fn default_builder() -> Result<reqwest::ClientBuilder> {
        Ok(http::builder_with_tls(http::platform_tls()?))
    }

    /// The transport that `builder` builds, with redirects switched off. Fails with
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when reqwest refuses the
    /// configuration (for instance no TLS provider: start from [`Transport::default_builder`]).
    pub fn from_builder(builder: reqwest::ClientBuilder) -> Result<Self> {
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                Error::invalid_input(
                    "ClientOptions",
                    format!(
                        "the transport's HTTP client cannot be built: {}; start from \
                         Transport::default_builder() and add your settings to it",
                        http::describe(&e)
                    ),
                )
                .with_source(e)
            })?;
        Ok(Self { client })
    }

    /// The client.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl ClientOptions {
    /// The caller's client, else the library's shared one.
    pub(crate) fn client(&self) -> Result<reqwest::Client> {
        match &self.transport {
            Some(transport) => Ok(transport.client().clone()),
            None => http::shared_client(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn the_default_is_each_source_s_own_schedule() {
        let options = RetryOptions::default();
        for source in [http::RetryPolicy::DEFAULT, http::RetryPolicy::IMDS] {
            let policy = options.policy(&source);
            assert_eq!(
                (
                    policy.max_status_retries,
                    policy.max_connect_retries,
                    policy.max_total_retries
                ),
                (
                    source.max_status_retries,
                    source.max_connect_retries,
                    source.max_total_retries
                )
            );
            let schedule: Vec<_> = (1..=5).map(|n| policy.backoff(n, Some(410))).collect();
            let expected: Vec<_> = (1..=5).map(|n| source.backoff(n, Some(410))).collect();
            assert_eq!(schedule, expected);
        }
    }

    #[test]
    fn explicit_options_replace_the_schedule_even_for_imds() {
        let options = RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: secs(0.5),
            max_retries: 4,
            max_delay: secs(3.0),
        });
        let policy = options.policy(&http::RetryPolicy::IMDS);
        assert_eq!(
            (
                policy.max_status_retries,
                policy.max_connect_retries,
                policy.max_total_retries
            ),
            (4, 4, 4)
        );
        let waits: Vec<_> = (1..=4).map(|n| policy.backoff(n, Some(410))).collect();
        assert_eq!(waits, [0.5, 1.0, 2.0, 3.0].map(secs));
        // What is retried stays the source's: IMDS retries a 404, Entra does not.
        let headers = reqwest::header::HeaderMap::new();
        assert!(policy.is_retryable(reqwest::StatusCode::NOT_FOUND, &headers));
        let entra = options.policy(&http::RetryPolicy::DEFAULT);
        assert!(!entra.is_retryable(reqwest::StatusCode::NOT_FOUND, &headers));
        let none = RetryOptions::none().policy(&http::RetryPolicy::IMDS);
        assert_eq!(
            (
                none.max_status_retries,
                none.max_connect_retries,
                none.max_total_retries
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn exponential_defaults_are_azure_core_s() {
        let d = ExponentialRetryOptions::default();
        assert_eq!(
            (d.initial_delay, d.max_retries, d.max_delay),
            (secs(0.2), 8, secs(30.0))
        );
        let policy = RetryOptions::exponential(d).policy(&http::RetryPolicy::DEFAULT);
        let waits: Vec<_> = (1..=9).map(|n| policy.backoff(n, Some(503))).collect();
        assert_eq!(waits, [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0].map(secs));
    }

    #[test]
    fn debug_shows_no_transport_settings() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-api-key", "key-secret-1234".parse().unwrap());
        let proxy = reqwest::Proxy::all("http://user:proxy-password@127.0.0.1:3128").unwrap();
        let transport = Transport::from_builder(
            Transport::default_builder()
                .unwrap()
                .default_headers(headers)
                .proxy(proxy),
        )
        .unwrap();
        let options = crate::ClientAssertionCredentialOptions {
            client_options: ClientOptions {
                transport: Some(transport),
                retry: RetryOptions::none(),
            },
            ..Default::default()
        };
        let shown = format!("{options:?} {options:#?}");
        for secret in ["key-secret-1234", "proxy-password", "x-api-key", "3128"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("Transport { .. }") && shown.contains("RetryOptions::none()"),
            "{shown}"
        );
    }
}
