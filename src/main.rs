//! The `azure-wi` binary: one program, several commands.
//!
//! Invoked as `proxy` (e.g. `/proxy`, the path upstream's injected sidecar runs), it behaves as
//! `azure-wi proxy`, so the webhook's container specs work with this image unchanged.

mod cli;

use std::{ffi::OsString, path::Path, process::ExitCode};

use clap::Parser;

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cli::Cli::parse_from(argv_with_dispatch(std::env::args_os().collect()));
    cli.run()
}

/// Inserts the `proxy` subcommand when the program was invoked under the name `proxy`.
fn argv_with_dispatch(mut argv: Vec<OsString>) -> Vec<OsString> {
    let invoked_as = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if invoked_as.as_deref() == Some("proxy") {
        argv.insert(1, OsString::from("proxy"));
    }
    argv
}
