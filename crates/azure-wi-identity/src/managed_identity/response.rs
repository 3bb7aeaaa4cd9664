//! Reading a managed identity endpoint's answer: bounded body, token parsing, and the server's
//! own error message for error reports (never the token, never a secret).

use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use time::OffsetDateTime;

use crate::{
    Error, Result, Secret,
    http::{Limits, RetryPolicy, SendError, read_body, send_with_retry},
    token_response::{TokenResponse, parse_token_response_with_extras},
};
/// The longest server message quoted in an error.
const MAX_QUOTED_CHARS: usize = 300;

/// A complete answer of a token endpoint.
pub(crate) struct Received {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) www_authenticate: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// Status, content type and the body's length: the body of a success holds the access token.
impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Received {
    /// Reads the answer; a body over 64 KiB ([`MAX_BODY_BYTES`](crate::http::MAX_BODY_BYTES))
    /// is an error, each read waits at most `read_timeout`.
    pub(crate) async fn read(response: reqwest::Response, limits: Option<Limits>) -> Result<Self, SendError> {
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE);
        let www_authenticate = header(reqwest::header::WWW_AUTHENTICATE);
        let status = response.status().as_u16();
        let body = read_body(response, limits).await?;
        Ok(Self {
            status,
            content_type,
            www_authenticate,
            body,
        })
    }

    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, if it is JSON.
    pub(crate) fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether the endpoint spoke JSON at all: a JSON body or a JSON content type. Something that
    /// does neither (an HTML page, another cloud's metadata service) is not a token endpoint.
    pub(crate) fn speaks_json(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().contains("json"))
            || self.json().is_some()
    }

    /// The raw body text (lossy), for matching known error texts. Not for quoting: use
    /// [`Received::server_message`].
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The server's own explanation, short and safe to print: the usual message fields of the
    /// JSON error shapes (`error_description`, `message`, `error.message`, `error.code`, `error`),
    /// else the start of a non-JSON body. Any of `secrets` is replaced by `<redacted>`; a body
    /// that looks like it holds a token is never quoted.
    pub(crate) fn server_message(&self, secrets: &[&Secret]) -> String {
        let text = match self.json() {
            Some(json) => json_message(&json),
            None => {
                let text = self.text();
                if text.contains("access_token") {
                    String::new()
                } else {
                    text
                }
            }
        };
        let mut text: String = text.chars().filter(|c| !c.is_control()).collect();
        for secret in secrets {
            if !secret.secret().is_empty() {
                text = text.replace(secret.secret(), "<redacted>");
            }
        }
        let text = text.trim();
        if text.is_empty() {
            return format!("HTTP {} with no explanation", self.status);
        }
        let mut quoted: String = text.chars().take(MAX_QUOTED_CHARS).collect();
        if quoted.len() < text.len() {
            quoted.push('…');
        }
        format!("HTTP {}: {quoted}", self.status)
    }

    /// Parses a successful token response; a malformed one is an authentication failure naming the
    /// field that was wrong.
    pub(crate) fn token(
        &self,
        credential: &'static str,
        request_time: OffsetDateTime,
    ) -> Result<TokenResponse> {
        let parsed = parse_token_response_with_extras(&self.body, request_time).map_err(|e| {
            Error::authentication_failed(
                credential,
                format!("the endpoint's token response is unusable: {e}"),
            )
            .with_status(self.status)
        })?;
        // The echo is informational only: caches are keyed by what the caller asked for.
        tracing::debug!(
            credential,
            echoed_resource = parsed.resource.as_deref().unwrap_or(""),
            expires_on = parsed.token.expires_on.unix_timestamp(),
            "token received"
        );
        Ok(parsed)
    }
}

/// Sends the request `build` makes under `policy` and reads the answer, within
/// `limits`. Returns the answer and
/// the time the first attempt was sent, from which relative expiries are counted (the earliest
/// time errs on the side of refreshing early). No answer at
/// all (refused, timed out, TLS refused) is [`ErrorKind::Unavailable`](crate::ErrorKind);
/// an answer over the size bound is an authentication failure naming the endpoint and the bound.
pub(crate) async fn send(
    credential: &'static str,
    endpoint: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
    policy: &RetryPolicy,
    limits: Limits,
) -> Result<(Received, OffsetDateTime)> {
    let request_time = OffsetDateTime::now_utc();
    let no_answer = |e: SendError| {
        Error::unavailable(
            credential,
            format!("no response from {endpoint}: {}", error_chain(&e)),
        )
        .with_source(e)
    };
    let response = send_with_retry(build, policy, Some(limits))
        .await
        .map_err(no_answer)?;
    let status = response.status().as_u16();
    let received = Received::read(response, Some(limits))
        .await
        .map_err(|e| match e {
            SendError::TooLarge { .. } => Error::authentication_failed(
                credential,
                format!("the {status} answer of {endpoint} is unusable: {e}"),
            )
            .with_status(status)
            .with_source(e),
            e => no_answer(e),
        })?;
    tracing::debug!(credential, status = received.status, "token endpoint answered");
    Ok((received, request_time))
}

/// An error and its causes on one line (reqwest's own message hides the interesting part).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = e.source();
    }
    text
}

fn json_message(json: &Value) -> String {
    let s = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let error = json.get("error");
    let nested_code = error.and_then(|e| s(e.get("code")));
    let nested_message = error.and_then(|e| s(e.get("message")));
    let parts: Vec<String> = [
        s(error).or(nested_code),
        s(json.get("error_description"))
            .or(nested_message)
            .or_else(|| s(json.get("message"))),
        s(json.get("correlationId")).map(|c| format!("(correlation id {c})")),
    ]
    .into_iter()
    .flatten()
    .collect();
    parts.join(": ").replacen(": (", " (", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(status: u16, content_type: Option<&str>, body: &str) -> Received {
        Received {
            status,
            content_type: content_type.map(str::to_owned),
            www_authenticate: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn quotes_every_error_shape_of_the_platforms() {
        let imds = received(
            400,
            None,
            r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
        );
        assert_eq!(
            imds.server_message(&[]),
            "HTTP 400: invalid_request: Identity not found"
        );
        let app_service = received(
            400,
            None,
            r#"{"statusCode":400,"message":"Unable to load requested managed identity.","correlationId":"c-1"}"#,
        );
        assert_eq!(
            app_service.server_message(&[]),
            "HTTP 400: Unable to load requested managed identity. (correlation id c-1)"
        );
        let sf = received(
            401,
            None,
            r#"{"error":{"code":"SecretHeaderNotFound","message":"Secret is not found"}}"#,
        );
        assert_eq!(
            sf.server_message(&[]),
            "HTTP 401: SecretHeaderNotFound: Secret is not found"
        );
        let text = received(
            403,
            Some("text/plain"),
            "connecting to 169.254.169.254:80: unreachable network",
        );
        assert_eq!(
            text.server_message(&[]),
            "HTTP 403: connecting to 169.254.169.254:80: unreachable network"
        );
        assert_eq!(
            received(500, None, "").server_message(&[]),
            "HTTP 500 with no explanation"
        );
    }

    #[test]
    fn never_quotes_a_secret_or_a_token_and_bounds_the_length() {
        let secret = Secret::new("hdr-s3cr3t");
        let echo = received(400, None, r#"{"message":"bad header hdr-s3cr3t"}"#);
        let msg = echo.server_message(&[&secret]);
        assert!(!msg.contains("hdr-s3cr3t") && msg.contains("<redacted>"), "{msg}");
        let token_page = received(500, Some("text/plain"), "oops access_token=eyJ.leak");
        assert!(!token_page.server_message(&[]).contains("eyJ"));
        let long = received(500, Some("text/html"), &"x".repeat(5000));
        assert!(long.server_message(&[]).chars().count() < 400);
    }

    #[test]
    fn json_is_recognised_by_body_or_content_type() {
        assert!(received(500, Some("application/json; charset=utf-8"), "not json").speaks_json());
        assert!(received(500, None, "{}").speaks_json());
        assert!(!received(500, Some("text/html"), "<html>").speaks_json());
    }
}
