//! Shared helpers of the integration tests.
#![allow(dead_code)]

#[path = "../../src/credential/test_server.rs"]
pub mod test_server;

use std::process::Output;

/// Runs `azure-wi` with exactly `env` (the process environment is cleared) and `args`.
pub async fn run_azure_wi(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_azure-wi"));
    command.env_clear().args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().await.expect("azure-wi runs")
}

/// The JSON object on the last line of stderr.
pub fn last_stderr_json(output: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_else(|| panic!("empty stderr"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last stderr line is not JSON ({e}): {stderr}"))
}

/// The JSON object printed on stdout.
pub fn stdout_json(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}
