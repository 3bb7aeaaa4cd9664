//! Reads a secret from Azure Key Vault with the official SDK client and azure-wi's
//! `PlatformCredential` (workload identity in a mutated pod, managed identity elsewhere on Azure).
//!
//! ```text
//! keyvault_secret https://my-vault.vault.azure.net/ my-secret
//! ```
//!
//! It prints the secret's id, content type and length, not its value.

use std::{error::Error, process::ExitCode};

use azure_security_keyvault_secrets::SecretClient;
use azure_wi_identity::PlatformCredential;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            // The SDK's retry policy wraps a credential error in its own message
            // ("non-transport error occurred which will not be retried"): our error, with the
            // credential's name and what to fix, is further down the source chain. Its kind tells
            // an operator what to fix (unavailable: wrong environment; authentication failed:
            // wrong identity or federation).
            let mut cause: Option<&(dyn Error + 'static)> = Some(e.as_ref());
            while let Some(c) = cause {
                if !std::ptr::addr_eq(c, e.as_ref()) {
                    eprintln!("caused by: {c}");
                }
                if let Some(ours) = c.downcast_ref::<azure_wi_identity::Error>() {
                    eprintln!("credential error kind: {}", ours.kind());
                    break;
                }
                cause = c.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    // One crypto provider for the whole process: the SDK's HTTP client uses the default one.
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| "another rustls crypto provider is already installed")?;

    let mut args = std::env::args().skip(1);
    let (Some(vault_url), Some(secret_name)) = (args.next(), args.next()) else {
        return Err("usage: keyvault_secret VAULT_URL SECRET_NAME".into());
    };

    let credential = PlatformCredential::new(None)?;
    let client = SecretClient::new(&vault_url, credential, None)?;
    let secret = client.get_secret(&secret_name, None).await?.into_model()?;

    let value = secret.value.unwrap_or_default();
    println!(
        "id={} content_type={} length={}",
        secret.id.as_deref().unwrap_or("-"),
        secret.content_type.as_deref().unwrap_or("-"),
        value.len()
    );
    Ok(())
}
