//! Microsoft Entra's error answers turned into errors: the error code, description, error codes,
//! trace and correlation ids when the body is Entra's JSON, else a short printable excerpt; every
//! secret (the assertion) scrubbed from what is quoted.

use serde::Deserialize;

use crate::Error;

#[derive(Deserialize)]
struct EntraError {
    error: Option<String>,
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<i64>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
}

/// An Entra error body turned into an authentication failure, with `secrets` scrubbed.
pub(crate) fn entra_error(credential: &'static str, status: u16, body: &[u8], secrets: &[&str]) -> Error {
    let message = match serde_json::from_slice::<EntraError>(body) {
        Ok(e) if e.error.is_some() => {
            let mut m = format!(
                "Microsoft Entra ID error '({}) {}'",
                e.error.unwrap_or_default(),
                e.error_description.unwrap_or_default().trim()
            );
            if !e.error_codes.is_empty() {
                let codes: Vec<String> = e.error_codes.iter().map(i64::to_string).collect();
                m.push_str(&format!(" (error codes {})", codes.join(",")));
            }
            if let Some(trace) = e.trace_id {
                m.push_str(&format!(" trace id {trace}"));
            }
            if let Some(correlation) = e.correlation_id {
                m.push_str(&format!(" correlation id {correlation}"));
            }
            m
        }
        _ => format!(
            "Microsoft Entra ID answered HTTP {status}: {}",
            excerpt(body, secrets)
        ),
    };
    Error::authentication_failed(credential, scrub(message, secrets)).with_status(status)
}

/// A short printable excerpt of a body, for error messages about unexpected answers, with
/// `secrets` scrubbed from the whole body first (cut first, a secret near the end of the excerpt
/// would no longer match and part of it would be quoted).
pub(crate) fn excerpt(body: &[u8], secrets: &[&str]) -> String {
    const MAX: usize = 200;
    let text = scrub(String::from_utf8_lossy(body).into_owned(), secrets);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

/// Replaces every occurrence of a secret with `****`.
pub(crate) fn scrub(mut message: String, secrets: &[&str]) -> String {
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if message.contains(secret) {
            message = message.replace(secret, "****");
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_short_and_printable() {
        assert_eq!(excerpt(b"", &[]), "(empty body)");
        assert_eq!(excerpt(b"a\nb", &[]), "a b");
        let long = "x".repeat(500);
        assert_eq!(excerpt(long.as_bytes(), &[]).len(), 203);
        // A secret that straddles the cut is scrubbed before the cut, so no part of it is quoted.
        let secret = "s3cr3t-assertion-".repeat(4);
        let body = format!("{}{secret}", "x".repeat(190));
        let quoted = excerpt(body.as_bytes(), &[&secret]);
        assert!(!quoted.contains("s3cr3t"), "{quoted}");
        assert!(quoted.ends_with("****"), "{quoted}");
    }
}
