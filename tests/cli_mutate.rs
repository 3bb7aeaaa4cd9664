//! `azure-wi mutate` as a process: its output formats and exit codes are a contract.

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

/// The command exited with `code` and its standard error says `expected`.
#[track_caller]
fn assert_fails(output: &Output, code: i32, expected: &str) {
    let stderr = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(expected), "expected {expected:?} in: {stderr}");
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
    let pod = json!({"metadata": {"name": "demo", "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": "workload", "containers": [{"name": "app"}]}});
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
    assert_fails(&output, 1, "note: --service-account holds apps/other");
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
    assert_fails(&output, 1, "token expiration 100 not valid");
}

#[test]
fn invalid_configuration_exits_with_2_and_names_the_variable() {
    let dir = Dir::new();
    let (pod, sa) = (dir.file("pod.yaml", POD_YAML), dir.file("sa.yaml", SA_YAML));
    let args = ["--pod", path(&pod), "--service-account", path(&sa)];

    let unknown_cloud = run(azure_wi(&args).env("AZURE_ENVIRONMENT", "AzureMoonCloud"));
    assert_fails(&unknown_cloud, 2, "AZURE_ENVIRONMENT \"AzureMoonCloud\"");
    assert!(unknown_cloud.stdout.is_empty());

    let no_tenant = run(azure_wi(&args).env_remove("AZURE_TENANT_ID"));
    assert_fails(&no_tenant, 2, "AZURE_TENANT_ID is required");

    let half_custom = run(azure_wi(&args).args(["--custom-token-endpoint-audience", "api://x"]));
    assert_fails(&half_custom, 2, "--custom-token-endpoint-annotation-suffix");
}

#[test]
fn bad_input_files_exit_with_2() {
    let dir = Dir::new();
    let service = dir.file(
        "service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {}\n",
    );
    let output = run(&mut azure_wi(&["--pod", path(&service)]));
    assert_fails(
        &output,
        2,
        "holds a Service, not a Pod (nor a Deployment, StatefulSet",
    );
    let no_template = dir.file(
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n",
    );
    let output = run(&mut azure_wi(&["--pod", path(&no_template)]));
    assert_fails(&output, 2, "the Deployment has no pod template at spec.template");

    let missing = run(&mut azure_wi(&["--pod", "/nonexistent/pod.yaml"]));
    assert_fails(&missing, 2, "cannot read --pod /nonexistent/pod.yaml");

    let garbage = dir.file("garbage.yaml", "a: [unclosed");
    let output = run(&mut azure_wi(&["--pod", path(&garbage)]));
    assert_fails(&output, 2, "neither JSON nor YAML");
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
        (json!("azwi-proxy"), json!("app")),
        "no version given: a current one, native sidecars"
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

#[test]
fn a_pod_without_the_label_is_not_sent_to_the_webhook_and_says_so() {
    let dir = Dir::new();
    let sa = dir.file("sa.yaml", SA_YAML);
    for (labels, found) in [
        (
            "  labels:\n    app: web",
            "has no label azure.workload.identity/use",
        ),
        (
            "  labels:\n    azure.workload.identity/use: \"True\"",
            "has azure.workload.identity/use: \"True\"",
        ),
    ] {
        let text = POD_YAML.replace("  labels:\n    azure.workload.identity/use: \"true\"", labels);
        let pod = dir.file("pod.yaml", &text);
        let output = run(&mut azure_wi(&[
            "--pod",
            path(&pod),
            "--service-account",
            path(&sa),
        ]));
        assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
        let message = stderr(&output);
        assert!(message.contains("not sent to the webhook"), "{message}");
        assert!(message.contains(found), "{message}");
        assert!(message.contains("Add that label to metadata.labels"), "{message}");
        // The pod as the API server creates it: unchanged.
        let printed = stdout_json(&output);
        assert_eq!(
            printed["spec"]["containers"][0]["env"],
            json!([{"name": "KEEP", "value": "1"}])
        );
        let patch = run(&mut azure_wi(&["--pod", path(&pod), "--output", "patch"]));
        assert_eq!(patch.status.code(), Some(3));
        assert_eq!(stdout_json(&patch), json!([]));
    }
}

/// POD_YAML's metadata and spec as the pod template of `kind`.
fn workload(kind: &str, labelled: bool) -> String {
    let label = if labelled {
        "azure.workload.identity/use: \"true\""
    } else {
        "app: web"
    };
    let template = format!(
        "metadata:\n  labels:\n    {label}\nspec:\n  serviceAccountName: workload\n  containers:\n  - name: app\n    image: busybox\n"
    );
    let indent = |text: &str, n: usize| {
        text.lines()
            .map(|line| format!("{}{line}", " ".repeat(n)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (api, spec) = match kind {
        "CronJob" => (
            "batch/v1",
            format!(
                "  schedule: \"* * * * *\"\n  jobTemplate:\n    spec:\n      template:\n{}",
                indent(&template, 8)
            ),
        ),
        "Job" => ("batch/v1", format!("  template:\n{}", indent(&template, 4))),
        _ => (
            "apps/v1",
            format!(
                "  selector: {{matchLabels: {{app: web}}}}\n  template:\n{}",
                indent(&template, 4)
            ),
        ),
    };
    format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: web\n  namespace: apps\nspec:\n{spec}\n")
}

#[test]
fn workloads_have_their_pod_template_mutated() {
    let dir = Dir::new();
    let sa = dir.file("sa.yaml", SA_YAML);
    for kind in [
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
    ] {
        let prefix = if kind == "CronJob" {
            "/spec/jobTemplate/spec/template"
        } else {
            "/spec/template"
        };
        let manifest = dir.file("workload.yaml", &workload(kind, true));
        let output = run(&mut azure_wi(&[
            "--pod",
            path(&manifest),
            "--service-account",
            path(&sa),
        ]));
        assert_eq!(output.status.code(), Some(0), "{kind}: {}", stderr(&output));
        let mutated = stdout_json(&output);
        assert_eq!(mutated["kind"], kind);
        assert_eq!(mutated["metadata"]["name"], "web");
        let template = mutated.pointer(prefix).unwrap();
        assert!(
            env_names(&template["spec"]["containers"][0]).contains(&"AZURE_CLIENT_ID"),
            "{kind}: {template}"
        );
        assert!(template["spec"]["volumes"].is_array(), "{kind}");
        assert!(
            template["metadata"].get("generateName").is_none(),
            "{kind}: no preview artefacts"
        );

        // The patch applies to the workload manifest and gives the same result.
        let output = run(&mut azure_wi(&[
            "--pod",
            path(&manifest),
            "--service-account",
            path(&sa),
            "--output",
            "patch",
        ]));
        assert_eq!(output.status.code(), Some(0), "{kind}: {}", stderr(&output));
        let patch = stdout_json(&output);
        for op in patch.as_array().unwrap() {
            assert!(op["path"].as_str().unwrap().starts_with(prefix), "{kind}: {op}");
        }
        let mut patched: Value = serde_saphyr::from_str(&workload(kind, true)).unwrap();
        json_patch::patch(
            &mut patched,
            &serde_json::from_value::<json_patch::Patch>(patch).unwrap(),
        )
        .unwrap();
        assert_eq!(patched, mutated, "{kind}");

        // The label check applies to the template's labels.
        let unlabelled = dir.file("unlabelled.yaml", &workload(kind, false));
        let output = run(&mut azure_wi(&[
            "--pod",
            path(&unlabelled),
            "--service-account",
            path(&sa),
        ]));
        assert_eq!(output.status.code(), Some(3), "{kind}");
        let expected = format!(
            "Add that label to {}.metadata.labels",
            prefix.trim_start_matches('/').replace('/', ".")
        );
        assert!(stderr(&output).contains(&expected), "{kind}: {}", stderr(&output));
    }
}

#[test]
fn the_service_accounts_tenant_is_enough_for_a_preview() {
    let dir = Dir::new();
    let pod = dir.file("pod.yaml", POD_YAML);
    let sa = dir.file(
        "sa.yaml",
        &SA_YAML.replace(
            "  annotations:\n",
            "  annotations:\n    azure.workload.identity/tenant-id: 99999999-8888-7777-6666-555555555555\n",
        ),
    );
    let output =
        run(azure_wi(&["--pod", path(&pod), "--service-account", path(&sa)]).env_remove("AZURE_TENANT_ID"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mutated = stdout_json(&output);
    let tenant = mutated["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "AZURE_TENANT_ID")
        .unwrap()["value"]
        .clone();
    assert_eq!(tenant, "99999999-8888-7777-6666-555555555555");
    assert!(
        stderr(&output).contains("azure.workload.identity/tenant-id"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn ca_data_reaches_containers_byte_for_byte() {
    let dir = Dir::new();
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";
    let pod = dir.file(
        "pod.yaml",
        &POD_YAML.replace(
            "  labels:",
            "  annotations:\n    azure.workload.identity/use-identity-binding: \"true\"\n  labels:",
        ),
    );
    let sa = dir.file("sa.yaml", SA_YAML);
    let output = run(azure_wi(&[
        "--pod",
        path(&pod),
        "--service-account",
        path(&sa),
        "--custom-token-endpoint-annotation-suffix",
        "identity-binding",
        "--custom-token-endpoint-audience",
        "api://AKSIdentityBinding",
    ])
    .env("AZURE_KUBERNETES_TOKEN_PROXY", "https://10.0.0.1:443")
    .env("AZURE_KUBERNETES_CA_DATA", pem));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mutated = stdout_json(&output);
    let ca_data = mutated["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "AZURE_KUBERNETES_CA_DATA")
        .unwrap_or_else(|| panic!("no AZURE_KUBERNETES_CA_DATA: {mutated}"))["value"]
        .clone();
    assert_eq!(ca_data, pem, "the trailing newline is kept");
}

#[test]
fn every_command_answers_version() {
    let version = env!("CARGO_PKG_VERSION");
    for command in [
        &[][..],
        &["mutate"],
        &["webhook"],
        &["proxy"],
        &["token"],
        &["jwks"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_azure-wi"))
            .args(command)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{command:?}: {}", stderr(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains(version), "{command:?}: {stdout}");
    }
}

#[test]
fn metrics_backend_is_case_insensitive_as_upstream() {
    for (backend, code) in [("Prometheus", 0), ("PROMETHEUS", 0), ("statsd", 2)] {
        let output = Command::new(env!("CARGO_BIN_EXE_azure-wi"))
            .args(["webhook", "--metrics-backend", backend, "--version"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(code), "{backend}: {}", stderr(&output));
    }
}
