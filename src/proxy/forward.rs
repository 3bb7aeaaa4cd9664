//! Forwarding instance-metadata requests (`GET /metadata/...`) to the real IMDS.
//!
//! Only GET requests under `/metadata/` are forwarded, never `/metadata/identity/...` (the node's
//! identities must not leak to the pod through the proxy), never a path with `.`/`..` segments or
//! encoded slashes and dots, never following redirects. A fixed subset of headers is copied each
//! way, the response body is bounded, and errors are the proxy's own words, not upstream text.

use std::time::Duration;

use axum::{
    body::Body,
    http::{HeaderMap, HeaderName, StatusCode, Uri, header},
    response::Response,
};
use url::Url;

use super::{Error, rejection::Rejection};

/// Request headers copied to IMDS.
const REQUEST_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("metadata"),
    header::ACCEPT,
    HeaderName::from_static("x-ms-client-request-id"),
];

/// Response headers copied back.
const RESPONSE_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, HeaderName::from_static("x-ms-request-id")];

/// The largest IMDS response passed back (instance metadata is a few KiB).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// How long IMDS gets to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Forwards allowed requests to one IMDS endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Forwarder {
    client: reqwest::Client,
    base: Url,
}

impl Forwarder {
    pub(crate) fn new(base: Url) -> Result<Self, Error> {
        let client = super::http_client(TIMEOUT).map_err(|source| Error::HttpClient {
            purpose: "forwarding to IMDS",
            source,
        })?;
        Ok(Self { client, base })
    }

    /// Forwards a GET request whose path starts with `/metadata/`.
    pub(crate) async fn forward(&self, uri: &Uri, headers: &HeaderMap) -> Result<Response, Rejection> {
        let path = uri.path();
        check_path(path)?;
        let mut target = self.base.clone();
        target.set_path(path);
        target.set_query(uri.query());
        if target.path() != path {
            return Err(not_forwarded());
        }
        let mut request = self.client.get(target);
        for name in &REQUEST_HEADERS {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value);
            }
        }
        let mut upstream = request.send().await.map_err(|error| {
            tracing::warn!(%error, "forwarding to IMDS failed");
            if error.is_timeout() {
                Rejection::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "gateway_timeout",
                    "the instance metadata service did not answer in time",
                )
            } else {
                Rejection::new(
                    StatusCode::BAD_GATEWAY,
                    "bad_gateway",
                    "the instance metadata service did not answer",
                )
            }
        })?;
        let mut body = Vec::new();
        loop {
            match upstream.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_RESPONSE_BYTES => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => {
                    return Err(Rejection::new(
                        StatusCode::BAD_GATEWAY,
                        "bad_gateway",
                        "the instance metadata service's answer is larger than 1 MiB",
                    ));
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "reading the IMDS response failed");
                    return Err(Rejection::new(
                        StatusCode::BAD_GATEWAY,
                        "bad_gateway",
                        "the instance metadata service's answer was cut short",
                    ));
                }
            }
        }
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = upstream.status();
        for name in &RESPONSE_HEADERS {
            if let Some(value) = upstream.headers().get(name) {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
        Ok(response)
    }
}

/// Refuses identity paths and anything a URL parser or IMDS could resolve to another path.
fn check_path(path: &str) -> Result<(), Rejection> {
    let mut segments = path.split('/').skip(1);
    let first = segments.next().unwrap_or_default();
    if !first.eq_ignore_ascii_case("metadata") {
        return Err(not_forwarded());
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") || path.contains('\\') {
        return Err(not_forwarded());
    }
    for (index, segment) in segments.enumerate() {
        if segment == "." || segment == ".." {
            return Err(not_forwarded());
        }
        if index == 0 && segment.eq_ignore_ascii_case("identity") {
            return Err(Rejection::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "only /metadata/identity/oauth2/token is served here; other identity endpoints of the \
                 instance metadata service are not forwarded",
            ));
        }
    }
    Ok(())
}

fn not_forwarded() -> Rejection {
    Rejection::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "not found: only GET requests under /metadata/ (without '.', '..' or encoded separators) are \
         forwarded to the instance metadata service",
    )
}

#[cfg(test)]
mod tests {
    use super::check_path;

    #[test]
    fn only_plain_metadata_paths_pass() {
        for ok in [
            "/metadata/instance",
            "/metadata/instance/compute/vmId",
            "/Metadata/scheduledevents",
        ] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "/metadata/../x",
            "/metadata/./instance",
            "/metadata/%2e%2e/x",
            "/metadata/a%2Fb",
            "/metadata/identity/oauth2/token",
            "/metadata/IDENTITY/info",
            "/x/metadata/instance",
            "/metadata\\..\\x",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
