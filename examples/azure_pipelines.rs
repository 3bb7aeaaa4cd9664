//! Gets a token in an Azure Pipelines job through a service connection that uses workload
//! identity federation.
//!
//! In the pipeline, map the job's access token into the step's environment, together with the
//! service connection's ids (an `AzureCLI@2` task exports the `AZURESUBSCRIPTION_*` variables):
//!
//! ```yaml
//! - script: cargo run --example azure_pipelines
//!   env:
//!     SYSTEM_ACCESSTOKEN: $(System.AccessToken)
//!     AZURESUBSCRIPTION_TENANT_ID: ...
//!     AZURESUBSCRIPTION_CLIENT_ID: ...
//!     AZURESUBSCRIPTION_SERVICE_CONNECTION_ID: ...
//! ```
//!
//! The credential reads `SYSTEM_OIDCREQUESTURI`, which Azure Pipelines sets in every job.

use std::process::ExitCode;

use azure_wi_identity::{AzurePipelinesCredential, Secret, TokenCredential};

fn required(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} is not set: see the comment at the top of this example"))
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let credential = AzurePipelinesCredential::new(
        required("AZURESUBSCRIPTION_TENANT_ID")?,
        required("AZURESUBSCRIPTION_CLIENT_ID")?,
        required("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID")?,
        Secret::new(required("SYSTEM_ACCESSTOKEN")?),
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
