//! The command line: one file per command.

mod logging;
mod proxy;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Azure workload identity for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "azure-wi", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve tokens over the IMDS (and App Service) protocol on localhost.
    Proxy(proxy::ProxyArgs),
    /// Prints an access token as JSON (exit 0; 1 authentication failed, 2 invalid input, 3 unavailable).
    Token(token::TokenArgs),
}

impl Cli {
    /// Runs the chosen command and returns the process exit code.
    pub fn run(self) -> ExitCode {
        let result = match self.command {
            Command::Proxy(args) => args.run(),
            Command::Token(args) => return args.run(),
        };
        result.unwrap_or_else(|error| {
            if tracing::dispatcher::has_been_set() {
                tracing::error!(error = format!("{error:#}"), "failed");
            } else {
                eprintln!("azure-wi: {error:#}");
            }
            ExitCode::FAILURE
        })
    }
}
