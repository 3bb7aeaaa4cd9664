//! `azure-wi proxy` (the process) validates its configuration at start: an unusable one exits
//! non-zero naming the variable and the fix, and `--probe` does not report it ready.

use std::process::{Command, Stdio};

use azure_wi_test_support::child_exit::exit_code_within;

use super::support::{DEFAULT_CLIENT, TENANT};

/// Runs `azure-wi proxy` on a free port with exactly `env` (plus PATH) and `args`, to its exit
/// (bounded: a proxy that starts serving is killed after 5 s and reported as `None`).
fn run(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_azure-wi"))
        .args(["proxy", "--proxy-port", "0"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AZWI_PROXY_IMDS_ENDPOINT", "http://127.0.0.1:9")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = exit_code_within(&mut child, std::time::Duration::from_secs(5));
    let mut stderr = String::new();
    use std::io::Read as _;
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (code, stderr)
}

#[test]
fn an_unusable_configuration_fails_at_start_naming_the_variable_and_the_probe_fails_too() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.e30.sig").unwrap();
    let token = token.to_str().unwrap();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let dir_path = dir.path().to_str().unwrap();
    let good = |overrides: &[(&'static str, &str)]| {
        let mut env: Vec<(&str, String)> = vec![
            ("AZURE_TENANT_ID", TENANT.to_owned()),
            ("AZURE_CLIENT_ID", DEFAULT_CLIENT.to_owned()),
            ("AZURE_FEDERATED_TOKEN_FILE", token.to_owned()),
            ("AZURE_AUTHORITY_HOST", "http://127.0.0.1:9".to_owned()),
        ];
        for (name, value) in overrides {
            env.retain(|(n, _)| n != name);
            env.push((name, (*value).to_owned()));
        }
        env
    };
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("AZURE_AUTHORITY_HOST", "http://evil.example")],
            "AZURE_AUTHORITY_HOST",
        ),
        (
            &[("AZURE_FEDERATED_TOKEN_FILE", missing)],
            "AZURE_FEDERATED_TOKEN_FILE",
        ),
        (&[("AZURE_FEDERATED_TOKEN_FILE", dir_path)], "not a regular file"),
        (&[("AZURE_TENANT_ID", "..")], "AZURE_TENANT_ID"),
        (&[("AZURE_TENANT_ID", "a b")], "AZURE_TENANT_ID"),
    ];
    for (overrides, named) in cases {
        let env = good(overrides);
        let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (code, stderr) = run(&env, &[]);
        assert_eq!(code, Some(1), "{overrides:?} started: {stderr}");
        assert!(stderr.contains(named), "{overrides:?}: {stderr}");
        let (code, stderr) = run(&env, &["--probe"]);
        assert_eq!(code, Some(1), "{overrides:?}: --probe: {stderr}");
        assert!(stderr.contains(named), "{overrides:?}: --probe: {stderr}");
    }
    // The good configuration starts (and is still serving when stopped).
    let env = good(&[]);
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (code, stderr) = run(&env, &[]);
    assert_eq!(code, None, "the proxy exited: {stderr}");
    assert!(stderr.contains("token proxy listening"), "{stderr}");
}
