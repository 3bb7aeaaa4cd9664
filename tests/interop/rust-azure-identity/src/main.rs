//! Gets a token through the proxy with `azure_identity::ManagedIdentityCredential` (App Service
//! protocol: `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` in the environment; the Rust SDK has no
//! way to point its IMDS source anywhere but 169.254.169.254), checks it and prints a summary.
//!
//! usage: rust-azure-identity-interop SCOPE EXPECTED_CLIENT_ID [CLIENT_ID_ARG]

use std::process::ExitCode;

use azure_core::credentials::TokenCredential;
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
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
    let expected_suffix = format!("-{expected_client}-{scope}");
    if !secret.starts_with("entra-") || !secret.ends_with(&expected_suffix) {
        eprintln!("unexpected token {secret}, expected entra-<n>{expected_suffix}");
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
