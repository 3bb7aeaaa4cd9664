//! `azure-wi mutate` as a process: its output formats and exit codes are a contract.
#![cfg(feature = "cli")]

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use base64::Engine as _;
use serde_json::{Value, json};

const POD_YAML: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: demo
  namespace: apps
  labels:
    azure.workload.identity/use: "true"
spec:
  serviceAccountName: workload
  containers:
  - name: app
    image: busybox
    env:
    - name: KEEP
      value: "1"
"#;

const SA_YAML: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: workload
  namespace: apps
  annotations:
    azure.workload.identity/client-id: 11111111-2222-3333-4444-555555555555
"#;

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// The command with a clean environment: only the tenant is configured.
fn azure_wi(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_azure-wi"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AZURE_TENANT_ID", "tenant-1");
    command.arg("mutate").args(args);
    command
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("azure-wi runs")
}

fn run_with_stdin(command: &mut Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn env_names(container: &Value) -> Vec<&str> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect()
}

#[test]
fn prints_the_mutated_pod_for_yaml_files() {
    let dir = Dir::new();
    let (pod, sa) = (dir.file("pod.yaml", POD_YAML), dir.file("sa.yaml", SA_YAML));
    let output = run(&mut azure_wi(&[
        "--pod",
        path(&pod),
        "--service-account",
        path(&sa),
    ]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mutated = stdout_json(&output);
    let app = &mutated["spec"]["containers"][0];
    assert_eq!(
        env_names(app),
        [
            "KEEP",
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_AUTHORITY_HOST"
        ]
    );
    assert_eq!(app["env"][2]["value"], "tenant-1");
    assert!(
        mutated["spec"]["volumes"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("azure-workload-identity-reserved-")
    );
}

#[test]
fn reads_a_json_pod_from_standard_input_and_prints_the_patch() {
    let dir = Dir::new();
    let sa = dir.file(
        "sa.json",
        &json!({"metadata": {"name": "workload", "annotations": {}}}).to_string(),
    );
    let pod = json!({"metadata": {"name": "demo"}, "spec": {"serviceAccountName": "workload", "containers": [{"name": "app"}]}});
    let output = run_with_stdin(
        &mut azure_wi(&[
            "--pod",
            "-",
            "--service-account",
            path(&sa),
            "--namespace",
            "team",
            "--output",
            "patch",
        ]),
        &pod.to_string(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let ops: Vec<json_patch::PatchOperation> = serde_json::from_slice(&output.stdout).unwrap();
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &ops).unwrap();
    assert_eq!(patched["metadata"]["namespace"], "team");
    assert_eq!(
        env_names(&patched["spec"]["containers"][0])[0],
        "AZURE_TENANT_ID",
        "no client id annotation"
    );
}

#[test]
fn review_output_is_an_admission_review_with_the_patch() {
    let dir = Dir::new();
    let (pod, sa) = (dir.file("pod.yaml", POD_YAML), dir.file("sa.yaml", SA_YAML));
    let output = run(&mut azure_wi(&[
        "--pod",
        path(&pod),
        "--service-account",
        path(&sa),
        "--output",
        "review",
    ]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let review = stdout_json(&output);
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["response"]["allowed"], true);
    assert_eq!(review["response"]["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(review["response"]["patch"].as_str().unwrap())
        .unwrap();
    let ops: Value = serde_json::from_slice(&patch).unwrap();
    assert!(!ops.as_array().unwrap().is_empty());
}

#[test]
fn without_a_service_account_the_pod_is_denied_like_the_webhook_denies_it() {
    let dir = Dir::new();
    let pod = dir.file("pod.yaml", POD_YAML);
    let output = run(&mut azure_wi(&["--pod", path(&pod)]));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(r#"serviceaccounts "workload" not found"#),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());

    let review = run(&mut azure_wi(&["--pod", path(&pod), "--output", "review"]));
    assert_eq!(review.status.code(), Some(1));
    assert_eq!(stdout_json(&review)["response"]["status"]["code"], 400);
}

#[test]
fn a_service_account_with_another_name_does_not_exist_for_the_pod() {
    let dir = Dir::new();
    let pod = dir.file("pod.yaml", POD_YAML);
    let other = dir.file("sa.yaml", &SA_YAML.replace("name: workload", "name: other"));
    let output = run(&mut azure_wi(&[
        "--pod",
        path(&pod),
        "--service-account",
        path(&other),
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("note: --service-account holds apps/other"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn invalid_annotations_are_denials_with_exit_code_1() {
    let dir = Dir::new();
    let sa = dir.file(
        "sa.yaml",
        &format!("{SA_YAML}    azure.workload.identity/service-account-token-expiration: \"100\"\n"),
    );
    let pod = dir.file("pod.yaml", POD_YAML);
    let output = run(&mut azure_wi(&[
        "--pod",
        path(&pod),
        "--service-account",
        path(&sa),
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("token expiration 100 not valid"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn invalid_configuration_exits_with_2_and_names_the_variable() {
    let dir = Dir::new();
    let (pod, sa) = (dir.file("pod.yaml", POD_YAML), dir.file("sa.yaml", SA_YAML));
    let args = ["--pod", path(&pod), "--service-account", path(&sa)];

    let unknown_cloud = run(azure_wi(&args).env("AZURE_ENVIRONMENT", "AzureMoonCloud"));
    assert_eq!(unknown_cloud.status.code(), Some(2));
    assert!(
        stderr(&unknown_cloud).contains("AZURE_ENVIRONMENT \"AzureMoonCloud\""),
        "{}",
        stderr(&unknown_cloud)
    );
    assert!(unknown_cloud.stdout.is_empty());

    let no_tenant = run(azure_wi(&args).env_remove("AZURE_TENANT_ID"));
    assert_eq!(no_tenant.status.code(), Some(2));
    assert!(stderr(&no_tenant).contains("AZURE_TENANT_ID is required"));

    let half_custom = run(azure_wi(&args).args(["--custom-token-endpoint-audience", "api://x"]));
    assert_eq!(half_custom.status.code(), Some(2));
    assert!(stderr(&half_custom).contains("--custom-token-endpoint-annotation-suffix"));
}

#[test]
fn bad_input_files_exit_with_2() {
    let dir = Dir::new();
    let deployment = dir.file(
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec: {containers: []}\n",
    );
    let output = run(&mut azure_wi(&["--pod", path(&deployment)]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("holds a Deployment, not a Pod (its pod template is spec.template"),
        "{}",
        stderr(&output)
    );

    let missing = run(&mut azure_wi(&["--pod", "/nonexistent/pod.yaml"]));
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read --pod /nonexistent/pod.yaml"));

    let garbage = dir.file("garbage.yaml", "a: [unclosed");
    let output = run(&mut azure_wi(&["--pod", path(&garbage)]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("neither JSON nor YAML"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn native_sidecar_follows_the_server_version_and_the_flag() {
    let dir = Dir::new();
    let pod = dir.file(
        "pod.yaml",
        &POD_YAML.replace(
            "  labels:",
            "  annotations:\n    azure.workload.identity/inject-proxy-sidecar: \"true\"\n  labels:",
        ),
    );
    let sa = dir.file("sa.yaml", SA_YAML);
    let first_init = |extra: &[&str]| {
        let mut args = vec!["--pod", path(&pod), "--service-account", path(&sa)];
        args.extend_from_slice(extra);
        let output = run(&mut azure_wi(&args));
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let mutated = stdout_json(&output);
        (
            mutated["spec"]["initContainers"][0]["name"].clone(),
            mutated["spec"]["containers"][0]["name"].clone(),
        )
    };
    assert_eq!(
        first_init(&["--server-version", "1.32"]),
        (json!("azwi-proxy"), json!("app"))
    );
    assert_eq!(
        first_init(&["--server-version", "1.31"]),
        (json!("azwi-proxy-init"), json!("azwi-proxy"))
    );
    assert_eq!(
        first_init(&[]),
        (json!("azwi-proxy-init"), json!("azwi-proxy")),
        "unknown version: classic"
    );
    assert_eq!(
        first_init(&["--server-version", "1.33", "--native-sidecar", "false"]),
        (json!("azwi-proxy-init"), json!("azwi-proxy"))
    );
}

#[test]
fn token_path_layout_can_come_from_the_environment() {
    let dir = Dir::new();
    let (pod, sa) = (dir.file("pod.yaml", POD_YAML), dir.file("sa.yaml", SA_YAML));
    let output = run(azure_wi(&["--pod", path(&pod), "--service-account", path(&sa)])
        .env("AZWI_TOKEN_PATH_LAYOUT", "legacy"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mutated = stdout_json(&output);
    assert_eq!(mutated["spec"]["volumes"][0]["name"], "azure-identity-token");
}

#[test]
fn cluster_without_a_kubeconfig_is_invalid_input() {
    let dir = Dir::new();
    let pod = dir.file("pod.yaml", POD_YAML);
    let output = run(azure_wi(&["--pod", path(&pod), "--cluster"])
        .env("HOME", dir.0.path())
        .env("KUBECONFIG", dir.0.path().join("missing-kubeconfig")));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--cluster: cannot load the kubeconfig"),
        "{}",
        stderr(&output)
    );
}
