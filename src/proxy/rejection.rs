//! Refused or failed requests, answered with a JSON body in the shape the client expects.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use azure_wi_identity::{self as credential, ErrorKind};

/// Which protocol's error body to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// IMDS: `{"error": ..., "error_description": ...}`.
    Imds,
    /// App Service 2019-08-01: `{"statusCode": ..., "message": ...}`, plus IMDS's two fields so
    /// that every client finds a message it knows how to show.
    AppService,
}

/// A request the proxy refuses or cannot serve.
#[derive(Debug)]
pub(crate) struct Rejection {
    status: StatusCode,
    error: &'static str,
    description: String,
    shape: Shape,
}

impl Rejection {
    pub(crate) fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            shape: Shape::Imds,
        }
    }

    /// 400 `invalid_request`, as IMDS answers bad parameters.
    pub(crate) fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// A missing or empty query parameter.
    pub(crate) fn missing_parameter(name: &str, fix: &str) -> Self {
        Self::bad_request(format!("Required query parameter '{name}' is missing: {fix}"))
    }

    /// A credential-library failure, without anything secret (the library's messages never
    /// contain tokens or assertions).
    ///
    /// - invalid input, and requests Microsoft Entra refused (a 4xx: the client id has no
    ///   federated credential for this service account, the resource is unknown) are 400
    ///   `invalid_request`, as IMDS answers an identity it cannot serve, so SDKs do not retry;
    /// - other refusals by Entra (a 5xx after the library's retries) are 502 `bad_gateway`;
    /// - other authentication failures (an unreadable federated token file, an unusable answer)
    ///   are 500 `server_error`;
    /// - an unavailable credential, or Entra unreachable (connection refused or timed out after
    ///   the library's retries) is 503 `service_unavailable`, which SDKs' IMDS retry policies
    ///   retry.
    pub(crate) fn credential(error: &credential::Error, client_id: &str) -> Self {
        let (status, code) = match error.kind() {
            _ if is_unreachable(error) => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            ErrorKind::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_request"),
            ErrorKind::AuthenticationFailed if error.status().is_some_and(|s| (400..500).contains(&s)) => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            ErrorKind::AuthenticationFailed if error.status().is_some() => {
                (StatusCode::BAD_GATEWAY, "bad_gateway")
            }
            ErrorKind::AuthenticationFailed => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
        };
        Self::new(
            status,
            code,
            format!("cannot get a token for client id {client_id}: {error}"),
        )
    }

    /// The same rejection with an App Service-shaped body.
    pub(crate) fn app_service(mut self) -> Self {
        self.shape = Shape::AppService;
        self
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
}

/// Whether the error was caused by a connection that could not be made or timed out.
fn is_unreachable(error: &credential::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = cause {
        if let Some(http) = current.downcast_ref::<reqwest::Error>() {
            return http.is_connect() || http.is_timeout();
        }
        cause = current.source();
    }
    false
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = match self.shape {
            Shape::Imds => json!({ "error": self.error, "error_description": self.description }),
            Shape::AppService => json!({
                "statusCode": self.status.as_u16(),
                "message": self.description,
                "error": self.error,
                "error_description": self.description,
            }),
        };
        super::token::no_store((self.status, Json(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_errors_map_to_statuses_a_client_handles() {
        let cases = [
            (
                credential::Error::invalid_input("C", "bad scope"),
                StatusCode::BAD_REQUEST,
            ),
            (
                credential::Error::authentication_failed("C", "AADSTS700016").with_status(400),
                StatusCode::BAD_REQUEST,
            ),
            (
                credential::Error::authentication_failed("C", "entra 500").with_status(500),
                StatusCode::BAD_GATEWAY,
            ),
            (
                credential::Error::unavailable("C", "connection refused"),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (error, status) in cases {
            let rejection = Rejection::credential(&error, "client-a");
            assert_eq!(rejection.status(), status, "{error}");
            assert!(
                rejection.description.contains("client-a") && rejection.description.contains(error.message())
            );
        }
    }
}
