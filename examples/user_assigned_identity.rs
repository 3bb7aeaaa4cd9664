//! Gets a token for a user-assigned managed identity chosen by its client id, wherever managed
//! identity works (a VM, an AKS node pool, App Service, Functions, Container Apps, Arc, ...).
//!
//! ```text
//! cargo run --example user_assigned_identity -- CLIENT_ID [SCOPE]
//! ```
//!
//! It prints which managed identity source was found and when the token expires, never the token.

use std::process::ExitCode;

use azure_wi_identity::{
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, TokenCredential, UserAssignedId,
};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(client_id) = args.next() else {
        eprintln!("usage: user_assigned_identity CLIENT_ID [SCOPE]");
        return ExitCode::from(2);
    };
    let scope = args
        .next()
        .unwrap_or_else(|| "https://management.azure.com/.default".to_owned());

    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: Some(UserAssignedId::ClientId(client_id)),
        ..Default::default()
    };
    let credential = match ManagedIdentityCredential::new(Some(options)) {
        Ok(credential) => credential,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    println!("managed identity source: {}", credential.source().as_str());
    match credential.get_token(&[&scope], None).await {
        Ok(token) => {
            println!("token for {scope} expires at {}", token.expires_on);
            ExitCode::SUCCESS
        }
        Err(e) => {
            // `kind()` separates "no managed identity here" from "the identity was refused".
            eprintln!("{} ({})", e, e.kind());
            ExitCode::FAILURE
        }
    }
}
