//! Authenticates with an assertion from your own source: here a GitHub Actions OIDC token,
//! requested for every exchange from the runner's token endpoint (GitHub sets
//! `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN` when the workflow has
//! `permissions: id-token: write`).
//!
//! ```text
//! AZURE_TENANT_ID=... AZURE_CLIENT_ID=... cargo run --example custom_assertion
//! ```
//!
//! The application needs a federated credential for the repository's subject
//! (`repo:OWNER/REPO:ref:refs/heads/main`, ...) with audience `api://AzureADTokenExchange`.

use std::process::ExitCode;

use azure_wi_identity::{ClientAssertionCredential, Error, Secret, TokenCredential};
use serde::Deserialize;

const CREDENTIAL: &str = "GitHubActionsAssertion";

#[derive(Deserialize)]
struct OidcToken {
    value: String,
}

/// Asks the runner for an OIDC token with the audience Microsoft Entra expects.
async fn github_oidc_token(http: reqwest::Client) -> Result<Secret, Error> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            Error::unavailable(
                CREDENTIAL,
                format!("{name} is not set: run in GitHub Actions with id-token: write"),
            )
        })
    };
    let (url, bearer) = (
        var("ACTIONS_ID_TOKEN_REQUEST_URL")?,
        var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")?,
    );
    let mut url = url::Url::parse(&url).map_err(|e| {
        Error::invalid_input(
            CREDENTIAL,
            format!("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL: {e}"),
        )
    })?;
    url.query_pairs_mut()
        .append_pair("audience", "api://AzureADTokenExchange");
    let response = http.get(url).bearer_auth(bearer).send().await.map_err(|e| {
        Error::unavailable(CREDENTIAL, "the runner's token endpoint did not answer").with_source(e)
    })?;
    if !response.status().is_success() {
        return Err(Error::authentication_failed(
            CREDENTIAL,
            format!("the runner's token endpoint answered HTTP {}", response.status()),
        )
        .with_status(response.status().as_u16()));
    }
    let token: OidcToken = response.json().await.map_err(|e| {
        Error::authentication_failed(CREDENTIAL, "the runner's answer has no token").with_source(e)
    })?;
    Ok(Secret::new(token.value))
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // reqwest is built with rustls and no default crypto provider: pick ring for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let credential = ClientAssertionCredential::with_callback(
        std::env::var("AZURE_TENANT_ID")?,
        std::env::var("AZURE_CLIENT_ID")?,
        move || github_oidc_token(http.clone()),
        None,
    )?;
    let token = credential
        .get_token(&["https://management.azure.com/.default"], None)
        .await?;
    println!("token expires at {}", token.expires_on);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
