//! `azure-wi mutate`: shows what the webhook does to a pod manifest, or to the pod template of a
//! Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob, without a cluster or with one.
//!
//! Exit codes are a contract: 0 mutated (the pod or workload, the patch or the review on stdout),
//! 1 denied (the message on stderr), 2 invalid configuration or input, 3 not sent to the webhook
//! (the pod lacks the label `azure.workload.identity/use: "true"`: the manifest unchanged or an
//! empty patch on stdout, the reason on stderr).

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use azure_wi::webhook::{
    AdmissionRequest,
    admission::{GroupVersionKind, ReviewVersion},
};
use azure_wi_core::{
    ConfigArgs, Denial, ServiceAccount,
    annotations::{TENANT_ID, USE_LABEL},
    config::parse_server_version,
    mutate, service_account_name,
};
use azure_wi_identity::env_vars::AZURE_TENANT_ID;
use serde_json::Value;

/// The uid of the AdmissionReview printed by `--output review`.
const PREVIEW_UID: &str = "00000000-0000-0000-0000-000000000000";

/// The Kubernetes version assumed without `--server-version` or `--cluster`: a current one, so
/// `--native-sidecar=auto` previews native sidecars as today's clusters get them.
const DEFAULT_SERVER_VERSION: (u32, u32) = (1, 37);

/// Workload kinds whose pod template is previewed, and where the template sits.
const WORKLOADS: [(&str, &str); 6] = [
    ("Deployment", "/spec/template"),
    ("StatefulSet", "/spec/template"),
    ("DaemonSet", "/spec/template"),
    ("ReplicaSet", "/spec/template"),
    ("Job", "/spec/template"),
    ("CronJob", "/spec/jobTemplate/spec/template"),
];

/// Exit code when the API server would not send the pod to the webhook.
const NOT_SENT: u8 = 3;

/// Arguments of `azure-wi mutate`.
#[derive(Debug, clap::Args)]
pub struct MutateArgs {
    /// The pod manifest, or a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob
    /// (its pod template is previewed); YAML or JSON; `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pod: PathBuf,

    /// The pod's ServiceAccount manifest, YAML or JSON (`-` reads standard input). Without it (and
    /// without --cluster) the ServiceAccount does not exist, and the webhook would deny the pod.
    #[arg(long = "service-account", value_name = "FILE", conflicts_with = "cluster")]
    service_account: Option<PathBuf>,

    /// Read the ServiceAccount (and the API server's version) through the kubeconfig.
    #[arg(long)]
    cluster: bool,

    /// The namespace the pod is created in (default: the pod's, else the ServiceAccount file's,
    /// else `default`).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,

    /// What to print: the mutated pod, the JSON Patch, or the AdmissionReview response.
    #[arg(long, value_enum, default_value = "pod")]
    output: Output,

    /// The Kubernetes version that `--native-sidecar=auto` compares with 1.32 (MAJOR.MINOR);
    /// with --cluster it is asked from the API server; otherwise 1.37 (native sidecars).
    #[arg(long = "server-version", value_name = "MAJOR.MINOR")]
    server_version: Option<String>,

    #[command(flatten)]
    config: ConfigArgs,
}

/// What `azure-wi mutate` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// The mutated pod (JSON).
    Pod,
    /// The JSON Patch (an array of operations).
    Patch,
    /// The AdmissionReview (admission.k8s.io/v1) the webhook would answer.
    Review,
}

/// Why the command stops before mutating: exit code 2.
struct Invalid(String);

impl MutateArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        match self.execute() {
            Ok(code) => code,
            Err(Invalid(message)) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        }
    }

    fn execute(self) -> Result<ExitCode, Invalid> {
        let Self {
            pod: pod_file,
            service_account: sa_file,
            cluster,
            namespace,
            output,
            server_version,
            config,
        } = self;
        if pod_file == Path::new("-") && sa_file.as_deref() == Some(Path::new("-")) {
            return Err(Invalid(
                "--pod and --service-account cannot both read standard input".into(),
            ));
        }
        let manifest = read_manifest(&pod_file, "--pod", "Pod")?;
        let template = template_pointer(&manifest);
        let pod = match template {
            Some(pointer) => pod_of_template(&manifest, pointer, &pod_file)?,
            None => manifest.clone(),
        };
        // The API server's objectSelector comes first: an unlabelled pod never reaches the webhook.
        if let Some(reason) = not_sent_reason(&pod, template) {
            eprintln!("{reason}");
            let unchanged = match output {
                Output::Pod => Some(pretty(&manifest)),
                Output::Patch => Some("[]".to_owned()),
                Output::Review => None,
            };
            if let Some(text) = unchanged {
                print(&text)?;
            }
            return Ok(ExitCode::from(NOT_SENT));
        }
        let sa_manifest = sa_file
            .as_deref()
            .map(|file| read_manifest(file, "--service-account", "ServiceAccount"))
            .transpose()?;
        let namespace = namespace
            .or_else(|| metadata_str(&manifest, "namespace"))
            .or_else(|| sa_manifest.as_ref().and_then(|sa| metadata_str(sa, "namespace")))
            .unwrap_or_else(|| "default".to_owned());
        let sa_name = service_account_name(&pod).to_owned();
        let mut version = server_version
            .as_deref()
            .map(|text| {
                let (major, minor) = text.trim_start_matches('v').split_once('.').unwrap_or((text, ""));
                parse_server_version(major, minor).ok_or_else(|| {
                    Invalid(format!("--server-version {text:?} is not MAJOR.MINOR, e.g. 1.32"))
                })
            })
            .transpose()?;

        let service_account = if cluster {
            let (found, cluster_version) = from_cluster(&namespace, &sa_name)?;
            version = version.or(cluster_version);
            found
        } else {
            sa_manifest
                .map(|manifest| from_manifest(&manifest, &namespace, &sa_name))
                .transpose()?
                .flatten()
        };
        let version = version.or(Some(DEFAULT_SERVER_VERSION));
        let mut config = config;
        if config
            .tenant_id
            .as_deref()
            .is_none_or(|tenant| tenant.trim().is_empty())
        {
            // A preview needs no webhook tenant when the ServiceAccount names its own.
            if let Some(Ok(sa)) = &service_account
                && let Some(tenant) = sa.annotations.get(TENANT_ID).filter(|t| !t.trim().is_empty())
            {
                eprintln!(
                    "note: no {AZURE_TENANT_ID} / --tenant-id: the ServiceAccount's {TENANT_ID} {tenant} is used"
                );
                config.tenant_id = Some(tenant.clone());
            }
        }
        let config = config
            .into_config(version)
            .map_err(|error| Invalid(format!("invalid configuration: {error}")))?;

        let outcome = match service_account {
            Some(Ok(sa)) => mutate(&pod, &namespace, &sa, &config),
            Some(Err(denial)) => Err(denial),
            None => Err(Denial::service_account_not_found(&sa_name)),
        };
        let printed = match (&outcome, output) {
            (Ok(ops), Output::Pod) => {
                let mut mutated = pod.clone();
                json_patch::patch(&mut mutated, ops)
                    .map_err(|error| Invalid(format!("internal error: the patch does not apply: {error}")))?;
                match template {
                    Some(pointer) => {
                        let mut workload = manifest.clone();
                        put_template(&mut workload, pointer, mutated);
                        Some(pretty(&workload))
                    }
                    None => Some(pretty(&mutated)),
                }
            }
            (Ok(ops), Output::Patch) => Some(pretty(&patch_for(ops, template))),
            (_, Output::Review) => {
                let request = AdmissionRequest {
                    api_version: ReviewVersion::V1,
                    uid: PREVIEW_UID.to_owned(),
                    kind: GroupVersionKind {
                        group: String::new(),
                        version: "v1".into(),
                        kind: "Pod".into(),
                    },
                    namespace: namespace.clone(),
                    name: metadata_str(&pod, "name").unwrap_or_default(),
                    operation: "CREATE".into(),
                    dry_run: true,
                    object: pod.clone(),
                };
                let review: Value =
                    serde_json::from_slice(&request.respond(outcome.clone())).unwrap_or_default();
                Some(pretty(&review))
            }
            (Err(_), _) => None,
        };
        if let Some(text) = printed {
            print(&text)?;
        }
        match outcome {
            Ok(_) => Ok(ExitCode::SUCCESS),
            Err(denial) => {
                eprintln!("denied: {denial}");
                Ok(ExitCode::from(1))
            }
        }
    }
}

fn print(text: &str) -> Result<(), Invalid> {
    let written = writeln!(std::io::stdout().lock(), "{text}");
    match written.and_then(|()| std::io::stdout().flush()) {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Invalid(format!("cannot write to standard output: {error}")))
        }
        _ => Ok(()),
    }
}

/// Where a workload manifest keeps its pod template; `None` for a pod.
fn template_pointer(manifest: &Value) -> Option<&'static str> {
    let kind = manifest.get("kind").and_then(Value::as_str)?;
    WORKLOADS
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, pointer)| *pointer)
}

/// The pod a workload's controller creates from its template (as far as the webhook sees it).
fn pod_of_template(manifest: &Value, pointer: &str, file: &Path) -> Result<Value, Invalid> {
    let kind = manifest.get("kind").and_then(Value::as_str).unwrap_or_default();
    let template = manifest
        .pointer(pointer)
        .filter(|t| t.get("spec").is_some_and(Value::is_object))
        .ok_or_else(|| {
            Invalid(format!(
                "--pod {}: the {kind} has no pod template at {} (with a spec)",
                file.display(),
                pointer.trim_start_matches('/').replace('/', ".")
            ))
        })?;
    let mut metadata = template
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    if let (Some(metadata), Some(name)) = (metadata.as_object_mut(), metadata_str(manifest, "name")) {
        // Controllers name their pods after the workload; the webhook sees only the prefix.
        metadata
            .entry("generateName")
            .or_insert_with(|| Value::String(format!("{name}-")));
    }
    Ok(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template["spec"],
    }))
}

/// Puts a mutated pod's metadata and spec back into the workload's template.
fn put_template(workload: &mut Value, pointer: &str, pod: Value) {
    if let Some(template) = workload.pointer_mut(pointer) {
        let mut metadata = pod.get("metadata").cloned().unwrap_or_default();
        let original = template.get("metadata");
        if let Some(metadata) = metadata.as_object_mut()
            && original.and_then(|m| m.get("generateName")).is_none()
        {
            // The name prefix was the preview's, not the template's.
            metadata.remove("generateName");
        }
        if original.is_some() || metadata.as_object().is_some_and(|m| !m.is_empty()) {
            template["metadata"] = metadata;
        }
        template["spec"] = pod.get("spec").cloned().unwrap_or_default();
    }
}

/// The JSON Patch as printed: for a workload, its paths point into the pod template.
fn patch_for(ops: &[json_patch::PatchOperation], template: Option<&str>) -> Value {
    let mut value = serde_json::to_value(ops).unwrap_or_default();
    if let (Some(prefix), Some(ops)) = (template, value.as_array_mut()) {
        for op in ops.iter_mut().filter_map(Value::as_object_mut) {
            for key in ["path", "from"] {
                if let Some(Value::String(path)) = op.get_mut(key) {
                    *path = format!("{prefix}{path}");
                }
            }
        }
    }
    value
}

/// Why the API server would not send this pod to the webhook, if it would not.
fn not_sent_reason(pod: &Value, template: Option<&str>) -> Option<String> {
    let label = pod.get("metadata")?.get("labels").and_then(|l| l.get(USE_LABEL));
    if label.and_then(Value::as_str) == Some("true") {
        return None;
    }
    let labels = match template {
        Some(pointer) => format!(
            "{}.metadata.labels",
            pointer.trim_start_matches('/').replace('/', ".")
        ),
        None => "metadata.labels".to_owned(),
    };
    let found = match label {
        Some(value) => format!("has {USE_LABEL}: {value} (label values are exact: \"true\")"),
        None => format!("has no label {USE_LABEL}"),
    };
    Some(format!(
        "not sent to the webhook: the pod {found}, so the API server creates it unchanged (the \
         MutatingWebhookConfiguration selects pods labelled {USE_LABEL}: \"true\"). Add that label \
         to {labels}."
    ))
}

fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn metadata_str(object: &Value, key: &str) -> Option<String> {
    object
        .get("metadata")?
        .get(key)?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Reads a YAML or JSON manifest of `kind` (a manifest without `kind` is taken as one).
fn read_manifest(file: &Path, flag: &str, kind: &str) -> Result<Value, Invalid> {
    let text = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|error| Invalid(format!("cannot read {flag} from standard input: {error}")))?;
        text
    } else {
        std::fs::read_to_string(file)
            .map_err(|error| Invalid(format!("cannot read {flag} {}: {error}", file.display())))?
    };
    let value: Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(_) => serde_saphyr::from_str(&text).map_err(|error| {
            Invalid(format!(
                "{flag} {} is neither JSON nor YAML: {error}",
                file.display()
            ))
        })?,
    };
    if !value.is_object() {
        return Err(Invalid(format!(
            "{flag} {} does not hold a {kind} object",
            file.display()
        )));
    }
    match value.get("kind").and_then(Value::as_str) {
        None => Ok(value),
        Some(found) if found == kind => Ok(value),
        Some(found) if kind == "Pod" && WORKLOADS.iter().any(|(name, _)| *name == found) => Ok(value),
        Some(found) => {
            let hint = if kind == "Pod" {
                " (nor a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob)"
            } else {
                ""
            };
            Err(Invalid(format!(
                "{flag} {} holds a {found}, not a {kind}{hint}",
                file.display()
            )))
        }
    }
}

/// The ServiceAccount from a manifest, when it is the one the pod uses in this namespace.
fn from_manifest(
    manifest: &Value,
    namespace: &str,
    wanted: &str,
) -> Result<Option<Result<ServiceAccount, Denial>>, Invalid> {
    let name = metadata_str(manifest, "name")
        .ok_or_else(|| Invalid("--service-account has no metadata.name".to_owned()))?;
    let sa_namespace = metadata_str(manifest, "namespace");
    if name != wanted || sa_namespace.as_deref().is_some_and(|ns| ns != namespace) {
        eprintln!(
            "note: --service-account holds {}/{name}, but the pod runs as {namespace}/{wanted}",
            sa_namespace.as_deref().unwrap_or(namespace)
        );
        return Ok(None);
    }
    let annotations = manifest
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|annotations| {
            annotations
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Ok(ServiceAccount { name, annotations })))
}

/// Reads the ServiceAccount and the server version through the kubeconfig. A ServiceAccount that
/// cannot be read is a denial, as in the webhook; a kubeconfig that cannot be loaded is invalid input.
type ClusterLookup = (Option<Result<ServiceAccount, Denial>>, Option<(u32, u32)>);

fn from_cluster(namespace: &str, name: &str) -> Result<ClusterLookup, Invalid> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Invalid(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|error| Invalid(format!("--cluster: cannot load the kubeconfig: {error}")))?;
        let version = client
            .apiserver_version()
            .await
            .ok()
            .and_then(|info| parse_server_version(&info.major, &info.minor));
        let api = kube::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client, namespace);
        let found = match api.get_opt(name).await {
            Ok(Some(sa)) => Some(Ok(ServiceAccount {
                name: sa.metadata.name.unwrap_or_default(),
                annotations: sa.metadata.annotations.unwrap_or_default(),
            })),
            Ok(None) => None,
            Err(error) => Some(Err(Denial::service_account_unavailable(namespace, name, error))),
        };
        Ok((found, version))
    })
}
