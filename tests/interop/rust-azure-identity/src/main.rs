//! Gets a token through the proxy with `azure_identity::ManagedIdentityCredential` (App Service
//! protocol: `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` in the environment; the Rust SDK has no
//! way to point its IMDS source anywhere but 169.254.169.254), checks it and prints a summary.
//!
//! usage: rust-azure-identity-interop SCOPE EXPECTED_CLIENT_ID [CLIENT_ID_ARG]

use std::process::ExitCode;

use azure_core::credentials::TokenCredential;
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use base64::Engine as _;
use time::{Duration, OffsetDateTime};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(scope), Some(expected_client)) = (args.first(), args.get(1)) else {
        eprintln!("usage: rust-azure-identity-interop SCOPE EXPECTED_CLIENT_ID [CLIENT_ID_ARG]");
        return ExitCode::FAILURE;
    };
    let options = args.get(2).map(|id| ManagedIdentityCredentialOptions {
        user_assigned_id: Some(UserAssignedId::ClientId(id.clone())),
        ..Default::default()
    });
    let credential = match ManagedIdentityCredential::new(options) {
        Ok(credential) => credential,
        Err(error) => {
            eprintln!("cannot create the credential: {error}");
            return ExitCode::FAILURE;
        }
    };
    let token = match credential.get_token(&[scope.as_str()], None).await {
        Ok(token) => token,
        Err(error) => {
            eprintln!("get_token failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let secret = token.token.secret();
    let now = OffsetDateTime::now_utc();
    // The Entra stand-in's tokens are JWT-shaped: `appid` is the client, `aud` the scope's resource.
    let claims: Option<serde_json::Value> = secret
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
        })
        .and_then(|json| serde_json::from_slice(&json).ok());
    let resource = scope.strip_suffix("/.default").unwrap_or(scope);
    if !claims.is_some_and(|c| c["appid"] == expected_client.as_str() && c["aud"] == resource) {
        eprintln!(
            "unexpected token {secret}, expected a JWT with appid {expected_client} and aud {resource}"
        );
        return ExitCode::FAILURE;
    }
    if token.expires_on <= now + Duration::seconds(3000) || token.expires_on > now + Duration::seconds(3600) {
        eprintln!("unexpected expiry {}", token.expires_on);
        return ExitCode::FAILURE;
    }
    println!(
        "{{\"client\":\"rust azure_identity\",\"token\":\"{secret}\",\"expires_on\":{}}}",
        token.expires_on.unix_timestamp()
    );
    ExitCode::SUCCESS
}
