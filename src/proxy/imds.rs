//! The IMDS-shaped token endpoint: `GET /metadata/identity/oauth2/token`.
//!
//! Request: header `Metadata: true`; query `resource` (required), `client_id` (else
//! `AZURE_CLIENT_ID`), `api-version` (required, as on IMDS; any version gets the same answer).
//! Response: IMDS's JSON, with `expires_in` a number of seconds (as upstream's proxy sends it,
//! and every SDK accepts) and `expires_on` / `not_before` strings of unix seconds (as IMDS sends
//! them, and the Rust SDK requires).

use axum::{
    Json,
    http::{HeaderMap, Uri},
    response::Response,
};
use serde::Serialize;
use time::OffsetDateTime;

use super::{
    query::Query,
    rejection::Rejection,
    state::ProxyState,
    token::{self, jwt_not_before},
};

/// The body of a successful IMDS token response (no `Debug`: it holds the access token).
#[derive(Serialize)]
struct ImdsToken<'a> {
    access_token: &'a str,
    client_id: &'a str,
    expires_in: i64,
    expires_on: String,
    not_before: String,
    resource: &'a str,
    token_type: &'a str,
}

/// Whether the path is IMDS's token path, with the first segment in any case (as upstream's proxy
/// matches it) and an optional trailing slash (msal-node, used by `@azure/identity`, sends one).
pub(crate) fn is_token_path(path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    path.strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(first, rest)| {
            first.eq_ignore_ascii_case("metadata") && rest == "identity/oauth2/token"
        })
}

/// Serves one IMDS token request.
pub(crate) async fn token(state: &ProxyState, uri: &Uri, headers: &HeaderMap) -> Result<Response, Rejection> {
    require_metadata_header(headers)?;
    let query = Query::parse(uri.query())?;
    if query.get("api-version").is_none() {
        return Err(Rejection::missing_parameter(
            "api-version",
            "pass the IMDS API version, e.g. api-version=2018-02-01",
        ));
    }
    let granted = token::grant(state, &query).await?;
    let now = OffsetDateTime::now_utc();
    let not_before = jwt_not_before(granted.token.token.secret()).unwrap_or_else(|| now.unix_timestamp());
    tracing::debug!(client_id = %granted.client_id, resource = %granted.resource, expires_on = %granted.token.expires_on, "served an IMDS token");
    let body = ImdsToken {
        access_token: granted.token.token.secret(),
        client_id: &granted.client_id,
        expires_in: granted.expires_in(now),
        expires_on: granted.expires_on(),
        not_before: not_before.to_string(),
        resource: &granted.resource,
        token_type: &granted.token.token_type,
    };
    Ok(token::no_store(Json(body)))
}

/// IMDS refuses requests without `Metadata: true`; so does the proxy (a request forged through
/// a server-side request forgery rarely controls headers).
pub(crate) fn require_metadata_header(headers: &HeaderMap) -> Result<(), Rejection> {
    let ok = headers
        .get("metadata")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if ok {
        Ok(())
    } else {
        Err(Rejection::bad_request(
            "Required metadata header not specified: send the header 'Metadata: true'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::is_token_path;

    #[test]
    fn token_path_first_segment_is_case_insensitive() {
        assert!(is_token_path("/metadata/identity/oauth2/token"));
        assert!(is_token_path("/MetaData/identity/oauth2/token"));
        assert!(!is_token_path("/metadata/Identity/oauth2/token"));
        assert!(is_token_path("/metadata/identity/oauth2/token/"));
        assert!(!is_token_path("/metadata/identity/oauth2/token//"));
        assert!(!is_token_path("/x/metadata/identity/oauth2/token"));
    }
}
