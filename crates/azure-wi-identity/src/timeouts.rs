//! How long a token request may take: the per-read timeout and the overall deadline.

use std::time::Duration;

/// The time limits of a credential's token requests, a field of every options struct (as
/// azure-core's retry options are). `None` keeps the default.
///
/// - `deadline`: the whole token request, every retry and backoff included (for the assertion
///   credentials also the assertion: the Azure Pipelines OIDC request). When it passes the
///   request stops with an error that says so ("gave up after 60 s, the overall deadline of a
///   token request"). Default: 60 s; 120 s for IMDS, whose retry schedule for a `410` (IMDS
///   maintenance) waits 75 s by itself.
/// - `read_timeout`: the longest wait for the answer's head (connecting included) and then for
///   each piece of its body; an attempt that times out is retried like a connection error.
///   Default: 20 s.
///
/// A server that drips a byte every few seconds never trips the read timeout but is stopped by
/// the deadline.
///
/// ```
/// use std::time::Duration;
/// use azure_wi_identity::{ClientAssertionCredentialOptions, RequestTimeouts, WorkloadIdentityCredentialOptions};
///
/// let options = WorkloadIdentityCredentialOptions {
///     credential_options: ClientAssertionCredentialOptions {
///         timeouts: RequestTimeouts {
///             deadline: Some(Duration::from_secs(10)),
///             ..Default::default()
///         },
///         ..Default::default()
///     },
///     ..Default::default()
/// };
/// let timeouts = options.credential_options.timeouts;
/// assert_eq!(timeouts.read_timeout(), Duration::from_secs(20));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestTimeouts {
    /// The overall deadline of one token request, all retries included. Default: 60 s (IMDS:
    /// 120 s).
    pub deadline: Option<Duration>,
    /// The per-read timeout. Default: 20 s.
    pub read_timeout: Option<Duration>,
}

impl RequestTimeouts {
    /// The default overall deadline.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
    /// The default overall deadline of IMDS requests.
    pub const IMDS_DEADLINE: Duration = Duration::from_secs(120);
    /// The default per-read timeout.
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(20);

    /// The overall deadline in effect (outside IMDS).
    pub fn deadline(&self) -> Duration {
        self.deadline.unwrap_or(Self::DEFAULT_DEADLINE)
    }

    /// The per-read timeout in effect.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout.unwrap_or(Self::DEFAULT_READ_TIMEOUT)
    }

    /// The overall deadline in effect for IMDS.
    pub(crate) fn imds_deadline(&self) -> Duration {
        self.deadline.unwrap_or(Self::IMDS_DEADLINE)
    }
}

/// How long after the deadline [`with_deadline`] cuts a request off. The HTTP requests inside
/// stop at the deadline itself (`http::Limits`, with reqwest's timeout error as the cause); this
/// backstop bounds whatever else a request does (an assertion callback, a key file).
const BACKSTOP_GRACE: Duration = Duration::from_secs(1);

/// Runs `request` under `deadline` (plus a grace second, see [`BACKSTOP_GRACE`]); when it passes,
/// the error `on_deadline` makes from the message that names the deadline.
pub(crate) async fn with_deadline<T, E>(
    deadline: Duration,
    endpoint: &str,
    request: impl Future<Output = Result<T, E>>,
    on_deadline: impl FnOnce(String) -> E,
) -> Result<T, E> {
    match tokio::time::timeout(deadline.saturating_add(BACKSTOP_GRACE), request).await {
        Ok(result) => result,
        Err(_) => Err(on_deadline(deadline_message(deadline, endpoint))),
    }
}

/// "gave up after 60 s, the overall deadline of a token request ...".
pub(crate) fn deadline_message(deadline: Duration, endpoint: &str) -> String {
    format!(
        "gave up after {} s, the overall deadline of a token request (all retries included), while \
         waiting for {endpoint}; raise timeouts.deadline in the credential's options if the endpoint \
         is merely slow",
        seconds(deadline)
    )
}

/// A duration in seconds for messages: `60`, `0.5`.
pub(crate) fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}
