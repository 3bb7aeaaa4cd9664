//! The command line: one file per command.

mod jwks;
mod kube_client;
mod logging;
mod mutate;
mod proxy;
mod signing_key;
mod token;
mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Azure workload identity for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "azure-wi", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Shows what the webhook does to a pod manifest (exit 0 mutated, 1 denied, 2 invalid input).
    Mutate(Box<mutate::MutateArgs>),
    /// Prints an access token as JSON (exit 0; 1 authentication failed, 2 invalid input, 3 unavailable).
    Token(token::TokenArgs),
    /// Runs the mutating admission webhook.
    Webhook(Box<webhook::WebhookArgs>),
    /// Serves tokens over the IMDS (and App Service) protocol on localhost.
    Proxy(proxy::ProxyArgs),
    /// Writes the JSON Web Key Set of service-account signing keys (exit 0; 1 cannot write, 2 invalid input).
    Jwks(jwks::JwksArgs),
}

impl Cli {
    /// Runs the chosen command and returns the process exit code.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Mutate(args) => args.run(),
            Command::Token(args) => args.run(),
            Command::Webhook(args) => args.run(),
            Command::Jwks(args) => args.run(),
            Command::Proxy(args) => args.run().unwrap_or_else(|error| {
                if tracing::dispatcher::has_been_set() {
                    tracing::error!(error = format!("{error:#}"), "failed");
                } else {
                    eprintln!("azure-wi: {error:#}");
                }
                ExitCode::FAILURE
            }),
        }
    }
}
