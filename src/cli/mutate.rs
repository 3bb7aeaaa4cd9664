//! `azure-wi mutate`: shows what the webhook does to a pod manifest, without a cluster or with one.
//!
//! Exit codes are a contract: 0 mutated (the pod, the patch or the review on stdout), 1 denied
//! (the message on stderr), 2 invalid configuration or input.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use azure_wi::webhook::{
    AdmissionRequest, ConfigArgs, Denial,
    admission::{GroupVersionKind, ReviewVersion},
    config::parse_server_version,
    mutate,
    mutation::{ServiceAccount, service_account_name},
};
use serde_json::Value;

/// The uid of the AdmissionReview printed by `--output review`.
const PREVIEW_UID: &str = "00000000-0000-0000-0000-000000000000";

/// Arguments of `azure-wi mutate`.
#[derive(Debug, clap::Args)]
pub struct MutateArgs {
    /// The pod manifest, YAML or JSON; `-` reads standard input.
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
    /// with --cluster it is asked from the API server.
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
        let pod = read_manifest(&pod_file, "--pod", "Pod")?;
        let sa_manifest = sa_file
            .as_deref()
            .map(|file| read_manifest(file, "--service-account", "ServiceAccount"))
            .transpose()?;
        let namespace = namespace
            .or_else(|| metadata_str(&pod, "namespace"))
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
                Some(pretty(&mutated))
            }
            (Ok(ops), Output::Patch) => Some(pretty(ops)),
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
            let written = writeln!(std::io::stdout().lock(), "{text}");
            if let Err(error) = written.and_then(|()| std::io::stdout().flush()) {
                // A closed pipe (`| head`) is the reader's choice, not a failure.
                if error.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(Invalid(format!("cannot write to standard output: {error}")));
                }
            }
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
        Some(found) => {
            let hint = if value.pointer("/spec/template/spec").is_some() {
                " (its pod template is spec.template: pass that as a Pod)"
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
