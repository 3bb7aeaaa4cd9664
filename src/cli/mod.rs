//! The command line: one file per command.

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
    /// Prints an access token as JSON (exit 0; 1 authentication failed, 2 invalid input, 3 unavailable).
    Token(token::TokenArgs),
}

impl Cli {
    /// Runs the chosen command and returns the process exit code.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Token(args) => args.run(),
        }
    }
}
