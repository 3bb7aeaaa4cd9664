//! Why a pod is refused admission.

use std::fmt;

/// The HTTP status code of a denial, as upstream answers (400 Bad Request).
pub const DENIAL_CODE: u16 = 400;

/// A pod the webhook refuses: the message is shown to whoever created the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The message, e.g. `token expiration 100 not valid. Expected value to be between 3600 and 86400`.
    pub message: String,
    /// The status code of the admission response (400 unless noted).
    pub code: u16,
}

impl Denial {
    /// A denial with status 400.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: DENIAL_CODE,
        }
    }

    /// The denial for a pod whose ServiceAccount does not exist, worded like the API server's
    /// NotFound error that upstream passes on: `serviceaccounts "NAME" not found`.
    pub fn service_account_not_found(name: &str) -> Self {
        Self::new(format!("serviceaccounts {name:?} not found"))
    }

    /// The denial for a pod whose ServiceAccount cannot be read (the API server failed or cannot be
    /// reached): the webhook fails closed, like upstream.
    pub fn service_account_unavailable(namespace: &str, name: &str, reason: impl fmt::Display) -> Self {
        Self::new(format!("cannot get serviceaccount {namespace}/{name}: {reason}"))
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Denial {}
