//! `azure-wi token`: prints an access token as JSON, for scripts and checks.
//!
//! ```text
//! azure-wi token [--credential auto|managed-identity|workload-identity|azure-pipelines]
//!     [--client-id ID] [--object-id ID] [--resource-id ID] [--tenant-id ID] [--token-file PATH]
//!     [--service-connection-id ID] [--timeout SECONDS] SCOPE...
//! ```
//!
//! Success: exit 0 and one JSON object on stdout,
//! `{"access_token": "...", "expires_on": <unix s>, "refresh_on": <unix s or null>, "token_type": "Bearer"}`.
//! Failure: the last line of stderr is `{"error": KIND, "message": "..."}` with KIND one of
//! `credential_unavailable` (exit 3), `authentication_failed` (exit 1), `invalid_input` (exit 2,
//! also for bad flags). The command reads the variables azure-identity reads; the Azure Pipelines
//! system access token comes from `SYSTEM_ACCESSTOKEN` only, never from a flag.

use std::{ffi::OsString, io::Write, path::PathBuf, process::ExitCode, sync::Arc};

use azure_wi_identity::{
    AccessToken, AzurePipelinesCredential, ClientAssertionCredentialOptions, Env, Error, ErrorKind,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, PlatformCredential,
    PlatformCredentialOptions, RequestTimeouts, Secret, TokenCredential, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
    env_vars::{AZURE_CLIENT_ID, AZURE_TENANT_ID, SYSTEM_ACCESSTOKEN},
};
use clap::{Parser, ValueEnum};

const COMMAND: &str = "azure-wi token";

/// The `token` subcommand. Its flags are parsed by the command itself so that even a bad flag
/// ends with the JSON error line; run `azure-wi token --help` for them.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct TokenArgs {
    /// Flags and scopes (see `azure-wi token --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

/// Prints an access token for SCOPE... as JSON.
#[derive(Debug, Parser)]
#[command(
    name = "azure-wi token",
    version,
    about = "Prints an access token for SCOPE... as JSON"
)]
struct TokenCommand {
    /// Which credential to use: `auto` is workload identity when it is configured, else managed
    /// identity.
    #[arg(long, value_enum, default_value_t = CredentialChoice::Auto)]
    credential: CredentialChoice,
    /// Client id: of the workload identity application, of a user-assigned managed identity, or
    /// of the application behind the Azure Pipelines service connection.
    #[arg(long, value_name = "ID", conflicts_with_all = ["object_id", "resource_id"])]
    client_id: Option<String>,
    /// Object (principal) id of a user-assigned managed identity.
    #[arg(long, value_name = "ID", conflicts_with = "resource_id")]
    object_id: Option<String>,
    /// ARM resource id of a user-assigned managed identity.
    #[arg(long, value_name = "ID")]
    resource_id: Option<String>,
    /// Microsoft Entra tenant (workload identity, Azure Pipelines). Default: AZURE_TENANT_ID.
    #[arg(long, value_name = "ID")]
    tenant_id: Option<String>,
    /// The federated token file (workload identity). Default: AZURE_FEDERATED_TOKEN_FILE.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// The service connection (Azure Pipelines). Default: AZURESUBSCRIPTION_SERVICE_CONNECTION_ID.
    #[arg(long, value_name = "ID")]
    service_connection_id: Option<String>,
    /// The overall deadline of the token request in seconds, all retries included (default: 60,
    /// 120 for IMDS).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: Option<std::time::Duration>,
    /// The scopes, e.g. https://management.azure.com/.default.
    #[arg(value_name = "SCOPE", required = true)]
    scopes: Vec<String>,
}

/// A positive number of seconds, at most a day.
fn parse_timeout(value: &str) -> Result<std::time::Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| format!("{value:?} is not a number of seconds between 0 and 86400"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CredentialChoice {
    Auto,
    ManagedIdentity,
    WorkloadIdentity,
    AzurePipelines,
}

impl TokenArgs {
    /// Runs the command and returns its exit code.
    pub fn run(self) -> ExitCode {
        init_tracing();
        let argv = std::iter::once(OsString::from(COMMAND)).chain(self.args);
        let command = match TokenCommand::try_parse_from(argv) {
            Ok(c) => c,
            Err(e)
                if matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) =>
            {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                let _ = e.print();
                let first = e.to_string();
                let first = first
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("error: ")
                    .to_owned();
                return fail(&Error::invalid_input(COMMAND, first));
            }
        };
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                return fail(&Error::unavailable(
                    COMMAND,
                    format!("cannot start the async runtime: {e}"),
                ));
            }
        };
        match runtime.block_on(command.get_token(&Env::Process)) {
            Ok(token) => print_token(&token),
            Err(e) => fail(&e),
        }
    }
}

impl TokenCommand {
    fn user_assigned_id(&self) -> Option<UserAssignedId> {
        self.client_id
            .clone()
            .map(UserAssignedId::ClientId)
            .or_else(|| self.object_id.clone().map(UserAssignedId::ObjectId))
            .or_else(|| self.resource_id.clone().map(UserAssignedId::ResourceId))
    }

    /// Refuses flags the chosen credential cannot use.
    fn refuse(&self, flags: &[(&str, bool)]) -> Result<(), Error> {
        match flags.iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(Error::invalid_input(
                COMMAND,
                format!(
                    "--{flag} does not apply to --credential {}",
                    self.credential_name()
                ),
            )),
            None => Ok(()),
        }
    }

    fn credential_name(&self) -> &'static str {
        match self.credential {
            CredentialChoice::Auto => "auto",
            CredentialChoice::ManagedIdentity => "managed-identity",
            CredentialChoice::WorkloadIdentity => "workload-identity",
            CredentialChoice::AzurePipelines => "azure-pipelines",
        }
    }

    fn build(&self, env: &Env) -> Result<Arc<dyn TokenCredential>, Error> {
        let object_or_resource = self.object_id.is_some() || self.resource_id.is_some();
        let timeouts = RequestTimeouts {
            deadline: self.timeout,
            ..Default::default()
        };
        Ok(match self.credential {
            CredentialChoice::Auto => {
                self.refuse(&[("service-connection-id", self.service_connection_id.is_some())])?;
                PlatformCredential::new(Some(PlatformCredentialOptions {
                    user_assigned_id: self.user_assigned_id(),
                    client_id: self.client_id.clone(),
                    tenant_id: self.tenant_id.clone(),
                    token_file_path: self.token_file.clone(),
                    env: env.clone(),
                    timeouts,
                    ..Default::default()
                }))?
            }
            CredentialChoice::ManagedIdentity => {
                self.refuse(&[
                    ("tenant-id", self.tenant_id.is_some()),
                    ("token-file", self.token_file.is_some()),
                    ("service-connection-id", self.service_connection_id.is_some()),
                ])?;
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: self.user_assigned_id(),
                    env: env.clone(),
                    timeouts,
                    ..Default::default()
                }))?
            }
            CredentialChoice::WorkloadIdentity => {
                self.refuse(&[
                    ("object-id or --resource-id", object_or_resource),
                    ("service-connection-id", self.service_connection_id.is_some()),
                ])?;
                WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                    tenant_id: self.tenant_id.clone(),
                    client_id: self.client_id.clone(),
                    token_file_path: self.token_file.clone(),
                    // As PlatformCredential: the identity binding whenever the webhook set it up.
                    enable_azure_proxy: true,
                    credential_options: ClientAssertionCredentialOptions {
                        env: env.clone(),
                        timeouts,
                        ..Default::default()
                    },
                }))?
            }
            CredentialChoice::AzurePipelines => {
                self.refuse(&[
                    ("object-id or --resource-id", object_or_resource),
                    ("token-file", self.token_file.is_some()),
                ])?;
                let required = |flag: Option<&String>, name: &str, var: &str| {
                    flag.cloned().or_else(|| env.var(var)).ok_or_else(|| {
                        Error::invalid_input(
                            COMMAND,
                            format!("--credential azure-pipelines needs --{name} (or the variable {var})"),
                        )
                    })
                };
                let tenant = required(self.tenant_id.as_ref(), "tenant-id", AZURE_TENANT_ID)?;
                let client = required(self.client_id.as_ref(), "client-id", AZURE_CLIENT_ID)?;
                let connection = required(
                    self.service_connection_id.as_ref(),
                    "service-connection-id",
                    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
                )?;
                let system_token = env.var(SYSTEM_ACCESSTOKEN).ok_or_else(|| {
                    Error::unavailable(
                        "AzurePipelinesCredential",
                        format!(
                            "{SYSTEM_ACCESSTOKEN} is not set: map $(System.AccessToken) into the step's \
                             environment (env: {SYSTEM_ACCESSTOKEN}: $(System.AccessToken))"
                        ),
                    )
                })?;
                AzurePipelinesCredential::new(
                    tenant,
                    client,
                    connection,
                    Secret::new(system_token),
                    Some(azure_wi_identity::AzurePipelinesCredentialOptions {
                        credential_options: ClientAssertionCredentialOptions {
                            env: env.clone(),
                            timeouts,
                            ..Default::default()
                        },
                    }),
                )?
            }
        })
    }

    async fn get_token(&self, env: &Env) -> Result<AccessToken, Error> {
        let credential = self.build(env)?;
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        credential.get_token(&scopes, None).await
    }
}

fn print_token(token: &AccessToken) -> ExitCode {
    let body = serde_json::json!({
        "access_token": token.token.secret(),
        "expires_on": token.expires_on.unix_timestamp(),
        "refresh_on": token.refresh_on.map(|r| r.unix_timestamp()),
        "token_type": token.token_type,
    });
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{body}").and_then(|()| out.flush()).is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Writes the JSON error line (the last line of stderr) and returns the kind's exit code.
fn fail(error: &Error) -> ExitCode {
    let kind = error.kind();
    let line = serde_json::json!({"error": kind.as_str(), "message": error.to_string()});
    let _ = writeln!(std::io::stderr().lock(), "{line}");
    ExitCode::from(exit_code(kind))
}

fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::AuthenticationFailed => 1,
        ErrorKind::InvalidInput => 2,
        _ => 3,
    }
}

/// Logs go to stderr as the other commands' JSON records, filtered by `RUST_LOG` (errors only by
/// default), before the JSON line.
fn init_tracing() {
    let _ = super::logging::install("error", true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_conflict() {
        let c = TokenCommand::try_parse_from([
            COMMAND,
            "--credential",
            "workload-identity",
            "--client-id",
            "c",
            "s1",
            "s2",
        ])
        .unwrap();
        assert_eq!(c.credential, CredentialChoice::WorkloadIdentity);
        assert_eq!(c.scopes, ["s1", "s2"]);
        assert!(
            TokenCommand::try_parse_from([COMMAND, "--client-id", "a", "--object-id", "b", "s"]).is_err()
        );
        assert!(
            TokenCommand::try_parse_from([COMMAND]).is_err(),
            "a scope is required"
        );
        assert!(TokenCommand::try_parse_from([COMMAND, "--credential", "cli", "s"]).is_err());
        let c = TokenCommand::try_parse_from([COMMAND, "--timeout", "2.5", "s"]).unwrap();
        assert_eq!(c.timeout, Some(std::time::Duration::from_millis(2500)));
        for bad in ["0", "-1", "soon", "1e9", "NaN"] {
            assert!(
                TokenCommand::try_parse_from([COMMAND, "--timeout", bad, "s"]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn exit_codes_per_kind() {
        assert_eq!(exit_code(ErrorKind::AuthenticationFailed), 1);
        assert_eq!(exit_code(ErrorKind::InvalidInput), 2);
        assert_eq!(exit_code(ErrorKind::Unavailable), 3);
    }
}
