//! Hands azure-wi's platform chain to the Azure SDK for Rust (feature `azure-core`): any SDK
//! client's `new(endpoint, credential, options)` takes it as
//! `Arc<dyn azure_core::credentials::TokenCredential>`. This example asks for a token through the
//! SDK's trait, as an SDK client's authentication policy does; a complete Key Vault program is in
//! `tests/interop/keyvault/examples/keyvault_secret.rs`.
//!
//! ```text
//! cargo run --example azure_sdk_credential --no-default-features --features azure-core
//! ```

use std::{error::Error as _, process::ExitCode, sync::Arc};

use azure_core::credentials::TokenCredential;
use azure_wi_identity::{Error, PlatformCredential};

#[tokio::main]
async fn main() -> ExitCode {
    let credential: Arc<dyn TokenCredential> = match PlatformCredential::new(None) {
        Ok(credential) => credential,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match credential
        .get_token(&["https://vault.azure.net/.default"], None)
        .await
    {
        Ok(token) => {
            println!("token expires at {}", token.expires_on);
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The SDK's error keeps ours as its source: unavailable vs authentication failed.
            let kind = e
                .source()
                .and_then(|s| s.downcast_ref::<Error>())
                .map(Error::kind);
            eprintln!("{e} (kind: {})", kind.map_or("unknown", |k| k.as_str()));
            ExitCode::FAILURE
        }
    }
}
