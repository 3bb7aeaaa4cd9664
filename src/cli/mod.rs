//! The command line: one file per command.

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
enum Command {}

impl Cli {
    /// Runs the chosen command and returns the process exit code.
    pub fn run(self) -> ExitCode {
        match self.command {}
    }
}
