//! Why a pod is refused admission, and how input is quoted in messages and logs.

use std::{borrow::Cow, fmt};

/// The most bytes of an input value quoted in a denial or a log line: anything the webhook reads
/// (an annotation, a name, the request's uid) can be megabytes long.
pub const MAX_QUOTED: usize = 64;

/// `value` for a message: whole when at most [`MAX_QUOTED`] bytes, else its start followed by
/// `...` and its length.
pub fn excerpt(value: &str) -> Cow<'_, str> {
    excerpt_to(value, MAX_QUOTED)
}

/// [`excerpt`] with another bound (for messages of other libraries that may quote input, such
/// as a JSON decoder's "invalid type: string ..."), `max` bytes at most of `value`.
pub fn excerpt_to(value: &str, max: usize) -> Cow<'_, str> {
    if value.len() <= max {
        return Cow::Borrowed(value);
    }
    let mut cut = max;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}... ({} bytes)", &value[..cut], value.len()))
}

/// [`excerpt`], quoted and escaped as `{:?}` does.
pub fn quoted(value: &str) -> String {
    if value.len() <= MAX_QUOTED {
        return format!("{value:?}");
    }
    let mut cut = MAX_QUOTED;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{:?}... ({} bytes)", &value[..cut], value.len())
}

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
        Self::new(format!("serviceaccounts {} not found", quoted(name)))
    }

    /// The denial for a pod whose ServiceAccount cannot be read (the API server failed or cannot be
    /// reached): the webhook fails closed, like upstream.
    pub fn service_account_unavailable(namespace: &str, name: &str, reason: impl fmt::Display) -> Self {
        Self::new(format!(
            "cannot get serviceaccount {}/{}: {reason}",
            excerpt(namespace),
            excerpt(name)
        ))
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Denial {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_a_character_boundary_with_their_length() {
        assert_eq!(quoted("3600s"), r#""3600s""#);
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(1_000_000);
        let text = quoted(&long);
        assert!(text.len() < MAX_QUOTED + 40, "{text}");
        assert!(text.ends_with("... (2000000 bytes)"), "{text}");
        assert!(excerpt(&long).len() < MAX_QUOTED + 40);
    }
}
