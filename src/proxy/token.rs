//! What both token endpoints share: the identity and resource asked for, and the token itself.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use time::OffsetDateTime;

use super::{config::is_valid_id, query::Query, rejection::Rejection, state::ProxyState};
use azure_wi_identity::{AccessToken, env_vars::AZURE_CLIENT_ID};

/// Parameters that select a managed identity by something other than its client id. The proxy
/// speaks only for workload identity client ids, so it refuses them instead of ignoring them
/// (ignoring would silently return a token for another identity).
const UNSUPPORTED_SELECTORS: [&str; 4] = ["mi_res_id", "msi_res_id", "object_id", "principal_id"];

/// The longest resource accepted.
const MAX_RESOURCE_LEN: usize = 2048;

/// A granted token and what it was asked for.
#[derive(Debug)]
pub(crate) struct Granted {
    pub(crate) client_id: String,
    pub(crate) resource: String,
    pub(crate) token: AccessToken,
}

impl Granted {
    /// Seconds until the token expires, never negative.
    pub(crate) fn expires_in(&self, now: OffsetDateTime) -> i64 {
        (self.token.expires_on - now).whole_seconds().max(0)
    }

    /// `expires_on` as a string of unix seconds, as IMDS and App Service send it.
    pub(crate) fn expires_on(&self) -> String {
        self.token.expires_on.unix_timestamp().to_string()
    }
}

/// `response` with `Cache-Control: no-store`: neither a token nor a refusal is ever cached.
pub(crate) fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Validates the request's identity and resource and gets the token.
pub(crate) async fn grant(state: &ProxyState, query: &Query) -> Result<Granted, Rejection> {
    if let Some(selector) = UNSUPPORTED_SELECTORS
        .iter()
        .find(|name| query.get(name).is_some())
    {
        return Err(Rejection::bad_request(format!(
            "Query parameter '{selector}' is not supported: this endpoint serves Azure workload identity, \
             whose identities are selected by 'client_id' only; pass client_id=<application client id> \
             or nothing for {AZURE_CLIENT_ID}"
        )));
    }
    let resource = query.get("resource").ok_or_else(|| {
        Rejection::missing_parameter(
            "resource",
            "pass the resource to get a token for, e.g. resource=https://vault.azure.net",
        )
    })?;
    if resource.len() > MAX_RESOURCE_LEN || resource.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Rejection::bad_request(format!(
            "Query parameter 'resource' is invalid: expected a URI or application id of at most \
             {MAX_RESOURCE_LEN} characters without spaces"
        )));
    }
    let client_id = match query.get("client_id") {
        Some(client_id) => client_id,
        None => state.config.default_client_id.as_deref().ok_or_else(|| {
            Rejection::missing_parameter(
                "client_id",
                &format!(
                    "pass client_id=<application client id> or set the {AZURE_CLIENT_ID} environment variable"
                ),
            )
        })?,
    };
    if !is_valid_id(client_id) {
        return Err(Rejection::bad_request(
            "Query parameter 'client_id' is invalid: expected an application (client) id, a GUID",
        ));
    }
    let scope = scope_for(resource);
    let token = state.credentials.token(client_id, &state.config.tenant_id, &scope).await.map_err(|error| {
        tracing::warn!(%client_id, %resource, kind = %error.kind(), error = %error, "token request failed");
        Rejection::credential(&error, client_id)
    })?;
    Ok(Granted {
        client_id: client_id.to_owned(),
        resource: resource.to_owned(),
        token,
    })
}

/// The scope for a managed-identity `resource`: the resource with `/.default` appended unless
/// it already ends so. A trailing slash is kept (`https://management.azure.com/` becomes
/// `https://management.azure.com//.default`), as azure-identity and upstream's proxy do, because
/// some v1 resources are registered with the slash.
pub(crate) fn scope_for(resource: &str) -> String {
    if resource.ends_with("/.default") {
        resource.to_owned()
    } else {
        format!("{resource}/.default")
    }
}

/// The `nbf` claim of a JWT access token, if it is one (best effort: the value is informational).
/// Only `nbf` is decoded: the other claims are skipped without building a JSON tree.
pub(crate) fn jwt_not_before(token: &str) -> Option<i64> {
    use base64::Engine as _;
    #[derive(serde::Deserialize)]
    struct Claims {
        nbf: Option<i64>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Claims>(&bytes).ok()?.nbf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_keep_trailing_slashes() {
        assert_eq!(
            scope_for("https://vault.azure.net"),
            "https://vault.azure.net/.default"
        );
        assert_eq!(
            scope_for("https://management.azure.com/"),
            "https://management.azure.com//.default"
        );
        assert_eq!(scope_for("api://x/.default"), "api://x/.default");
        assert_eq!(
            scope_for("00000003-0000-0000-c000-000000000000"),
            "00000003-0000-0000-c000-000000000000/.default"
        );
    }

    #[test]
    fn reads_nbf_from_a_jwt_only() {
        use base64::Engine as _;
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"nbf":1700000000,"exp":1}"#);
        assert_eq!(jwt_not_before(&format!("e30.{payload}.sig")), Some(1_700_000_000));
        assert_eq!(jwt_not_before("opaque-token"), None);
        assert_eq!(jwt_not_before("a.!!!.c"), None);
    }
}
