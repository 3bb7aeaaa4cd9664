//! The command line: one file per command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod webhook;

/// Azure workload identity for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "azure-wi", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the mutating admission webhook.
    Webhook(Box<webhook::WebhookArgs>),
}

impl Cli {
    /// Runs the chosen command and returns the process exit code.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Webhook(args) => args.run(),
        }
    }
}
