//! The App Service-shaped token endpoint of identity-endpoint mode: `GET /msi/token`.
//!
//! Request: header `X-IDENTITY-HEADER` equal to the pod's `IDENTITY_HEADER` (compared in constant
//! time); query `api-version=2019-08-01`, `resource`, optional `client_id` (else
//! `AZURE_CLIENT_ID`). `mi_res_id`, `object_id` and `principal_id` are refused: the proxy speaks
//! only for workload identity client ids. Response: App Service 2019-08-01's JSON, `expires_on` a
//! string of unix seconds.

use axum::{
    Json,
    http::{HeaderMap, StatusCode, Uri},
    response::Response,
};
use serde::Serialize;

use super::{query::Query, rejection::Rejection, state::ProxyState, token};

/// The one API version of the protocol that every SDK speaks.
pub(crate) const API_VERSION: &str = "2019-08-01";

/// The path of the endpoint (`IDENTITY_ENDPOINT=http://127.0.0.1:<port>/msi/token`).
pub(crate) const PATH: &str = "/msi/token";

/// The body of a successful App Service token response (no `Debug`: it holds the access token).
#[derive(Serialize)]
struct AppServiceToken<'a> {
    access_token: &'a str,
    client_id: &'a str,
    expires_on: String,
    resource: &'a str,
    token_type: &'a str,
}

/// Serves one App Service token request.
pub(crate) async fn token(state: &ProxyState, uri: &Uri, headers: &HeaderMap) -> Result<Response, Rejection> {
    let Some(expected) = &state.config.identity_header else {
        return Err(Rejection::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the identity endpoint is not enabled; start the proxy with --identity-endpoint",
        ));
    };
    match headers.get("x-identity-header") {
        None => {
            return Err(Rejection::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Required header 'X-IDENTITY-HEADER' is missing: send the value of the IDENTITY_HEADER \
                 environment variable",
            ));
        }
        Some(value) if !expected.matches(value.as_bytes()) => {
            tracing::warn!("refused a token request with a wrong X-IDENTITY-HEADER");
            return Err(Rejection::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Header 'X-IDENTITY-HEADER' does not match this pod's IDENTITY_HEADER",
            ));
        }
        Some(_) => {}
    }
    let query = Query::parse(uri.query())?;
    match query.get("api-version") {
        Some(API_VERSION) => {}
        Some(other) => {
            return Err(Rejection::bad_request(format!(
                "Query parameter 'api-version' is '{other}', which this endpoint does not support: \
                 use api-version={API_VERSION}"
            )));
        }
        None => {
            return Err(Rejection::missing_parameter(
                "api-version",
                "pass api-version=2019-08-01",
            ));
        }
    }
    let granted = token::grant(state, &query).await?;
    tracing::debug!(client_id = %granted.client_id, resource = %granted.resource, expires_on = %granted.token.expires_on, "served an App Service token");
    let body = AppServiceToken {
        access_token: granted.token.token.secret(),
        client_id: &granted.client_id,
        expires_on: granted.expires_on(),
        resource: &granted.resource,
        token_type: &granted.token.token_type,
    };
    Ok(token::no_store(Json(body)))
}

/// Whether the path is the endpoint's (a trailing slash is accepted, and the case ignored, as
/// App Service does).
pub(crate) fn is_token_path(path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    path.eq_ignore_ascii_case(PATH)
}
