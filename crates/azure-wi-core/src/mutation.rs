//! The mutation: raw pod JSON + ServiceAccount + [`Config`] -> JSON Patch operations, or a denial.
//!
//! The rules are upstream's (`pkg/webhook/webhook.go`, v1.6.0), applied in its order:
//!
//! 1. `metadata.namespace` is set to the request's namespace (only when it differs, which is when
//!    upstream's diff-based patch shows it too);
//! 2. with `inject-proxy-sidecar`: `azwi-proxy-init` is appended to the init containers (IMDS mode),
//!    then `azwi-proxy` is prepended to the init containers (native sidecar) or the containers;
//! 3. every init container, then every container, not named in `skip-containers`, gets the
//!    environment (each variable only when absent by name and non-empty, in upstream's order) and
//!    the token volume's read-only mount (replaced in place when one with its name exists);
//! 4. the projected token volume is added, or replaces the one with its name.
//!
//! The patch is built operation by operation against the raw JSON (see `patch_builder`): fields
//! this crate does not know are never touched and there is never a `remove`. Applying the webhook
//! to its own output yields an empty patch; a container added later is mutated on reinvocation.
//! Ephemeral containers are never touched.

use azure_wi_identity::env_vars::{
    AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_KUBERNETES_CA_DATA,
    AZURE_KUBERNETES_CA_FILE, AZURE_KUBERNETES_SNI_NAME, AZURE_KUBERNETES_TOKEN_PROXY, AZURE_TENANT_ID,
};
use json_patch::PatchOperation;
use serde_json::{Value, json};

use crate::{
    annotations::{PodSettings, ProxyRequest},
    config::{CaSource, Config},
    identity_header::generate_identity_header,
    patch_builder::{PatchBuilder, Step, contains},
    proxy_containers::{
        IDENTITY_ENDPOINT_ENV, IDENTITY_HEADER_ENV, PROXY_CONTAINER_NAME, PROXY_INIT_CONTAINER_NAME,
        ProxyMode, identity_endpoint_url, proxy_container, proxy_init_container,
    },
    token_layout::{CA_CERT_PATH, pod_name_for_hash},
};
pub use crate::{
    denial::Denial,
    service_account::{ServiceAccount, service_account_name},
};

/// Mutates a pod admitted in `request_namespace` that runs as `service_account`.
///
/// Pure except for the random identity header that the identity-endpoint proxy mode needs when
/// the pod has none yet; see [`mutate_with`] to supply it.
pub fn mutate(
    pod: &Value,
    request_namespace: &str,
    service_account: &ServiceAccount,
    config: &Config,
) -> Result<Vec<PatchOperation>, Denial> {
    mutate_with(
        pod,
        request_namespace,
        service_account,
        config,
        &generate_identity_header,
    )
}

/// [`mutate`], with the source of new identity headers given (it is called at most once, and only
/// when the pod asks for the identity-endpoint proxy mode and carries no `IDENTITY_HEADER` yet).
pub fn mutate_with(
    pod: &Value,
    request_namespace: &str,
    service_account: &ServiceAccount,
    config: &Config,
    new_identity_header: &dyn Fn() -> Result<String, Denial>,
) -> Result<Vec<PatchOperation>, Denial> {
    mutate_value(
        pod.clone(),
        request_namespace,
        service_account,
        config,
        new_identity_header,
    )
}

/// [`mutate`] of a pod the caller hands over (the admission handler, which needs the decoded pod
/// no more): the patch's working copy is the pod itself instead of a deep copy of it.
pub fn mutate_owned(
    pod: Value,
    request_namespace: &str,
    service_account: &ServiceAccount,
    config: &Config,
) -> Result<Vec<PatchOperation>, Denial> {
    mutate_value(
        pod,
        request_namespace,
        service_account,
        config,
        &generate_identity_header,
    )
}

fn mutate_value(
    pod: Value,
    request_namespace: &str,
    service_account: &ServiceAccount,
    config: &Config,
    new_identity_header: &dyn Fn() -> Result<String, Denial>,
) -> Result<Vec<PatchOperation>, Denial> {
    if !pod.is_object() {
        return Err(Denial::new("the admitted object is not a JSON object"));
    }
    if !pod.get("spec").is_some_and(Value::is_object) {
        return Err(Denial::new("the pod has no spec object"));
    }
    check_container_count(&pod)?;
    let settings = PodSettings::read(&pod, service_account, config)?;
    let mut patch = PatchBuilder::from_owned(pod);

    set_namespace(&mut patch, request_namespace)?;
    let identity = match settings.proxy {
        Some(proxy) => inject_proxy(&mut patch, proxy, config, new_identity_header)?,
        None => None,
    };

    let env = ContainerEnv::new(&settings, config, identity.as_ref());
    let layout = config.token_layout;
    let volume_name = layout.volume_name(&pod_name_for_hash(patch.doc()));
    let mount = json!({"name": volume_name, "mountPath": layout.mount_path(), "readOnly": true});
    for list in [INIT_CONTAINERS, CONTAINERS] {
        for index in 0..container_count(&patch, list)? {
            let container = patch.get(&[SPEC, list.into(), index.into()]);
            if !container.is_some_and(Value::is_object) {
                return Err(Denial::new(format!("spec.{list}[{index}] is not an object")));
            }
            let name = container
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if settings.skip.contains(&name) {
                continue;
            }
            let vars = env.for_container(&name);
            add_env(&mut patch, list, index, &vars)?;
            ensure_named(
                &mut patch,
                &[SPEC, list.into(), index.into(), "volumeMounts".into()],
                &mount,
            )?;
        }
    }
    let volume = token_volume(&volume_name, &settings, config);
    ensure_named(&mut patch, &[SPEC, "volumes".into()], &volume)?;
    Ok(patch.into_ops())
}

/// The most containers and init containers a mutated pod may have together. Every container
/// gets about 0.6 KB of patch (its environment and the token's mount), and the patch is built,
/// encoded and base64-encoded in memory: 10,000 containers (a 369 KB pod) took the webhook to
/// 122 MB and answered 7.7 MB. At this bound the patch stays under 1 MB, well within the
/// memory limit, and a pod that needs more could not be stored anyway: the patch alone would
/// approach etcd's 1.5 MiB object limit. No real pod comes near it.
pub const MAX_CONTAINERS: usize = 1000;

/// Denies pods with more than [`MAX_CONTAINERS`] containers, before any work per container.
fn check_container_count(pod: &Value) -> Result<(), Denial> {
    let count = |list: &str| {
        pod.get("spec")
            .and_then(|spec| spec.get(list))
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    let total = count(CONTAINERS) + count(INIT_CONTAINERS);
    if total > MAX_CONTAINERS {
        return Err(Denial::new(format!(
            "the pod has {total} containers and init containers; the workload identity webhook \
             mutates pods with at most {MAX_CONTAINERS} (each gets its own environment and token \
             mount, so the patch would outgrow what the API server can store)"
        )));
    }
    Ok(())
}

const SPEC: Step<'static> = Step::Key("spec");
const INIT_CONTAINERS: &str = "initContainers";
const CONTAINERS: &str = "containers";

/// Upstream overwrites `metadata.namespace` with the request's; the patch shows it only when it
/// differs (pods of Deployments arrive without one in upstream's tests, and `azure-wi mutate`
/// reads manifests without one).
fn set_namespace(patch: &mut PatchBuilder, namespace: &str) -> Result<(), Denial> {
    if namespace.is_empty() {
        return Ok(());
    }
    match patch.get(&["metadata".into()]) {
        None | Some(Value::Null) => patch.add(&["metadata".into()], json!({"namespace": namespace})),
        Some(Value::Object(metadata)) => {
            if metadata.get("namespace").and_then(Value::as_str) == Some(namespace) {
                Ok(())
            } else {
                patch.add(&["metadata".into(), "namespace".into()], json!(namespace))
            }
        }
        Some(_) => Err(Denial::new("metadata is not an object")),
    }
}

/// The identity-endpoint variables shared by the proxy and the application containers.
struct IdentityEnv {
    endpoint: String,
    header: String,
}

/// Injects the proxy containers the pod asks for; returns the identity-endpoint variables in
/// that mode.
fn inject_proxy(
    patch: &mut PatchBuilder,
    proxy: ProxyRequest,
    config: &Config,
    new_identity_header: &dyn Fn() -> Result<String, Denial>,
) -> Result<Option<IdentityEnv>, Denial> {
    let identity = match proxy.mode {
        ProxyMode::Imds => None,
        ProxyMode::IdentityEndpoint => {
            let header = match existing_identity_header(patch.doc()) {
                Some(header) => header,
                None => new_identity_header()?,
            };
            Some(IdentityEnv {
                endpoint: identity_endpoint_url(proxy.port),
                header,
            })
        }
    };
    if proxy.mode == ProxyMode::Imds
        && !has_container(patch.doc(), &[INIT_CONTAINERS], PROXY_INIT_CONTAINER_NAME)
    {
        insert_container(
            patch,
            INIT_CONTAINERS,
            Step::End,
            proxy_init_container(config, proxy.port),
        )?;
    }
    if !has_container(patch.doc(), &[INIT_CONTAINERS, CONTAINERS], PROXY_CONTAINER_NAME) {
        let header = identity.as_ref().map(|identity| identity.header.as_str());
        let sidecar = proxy_container(config, proxy.port, config.native_sidecar, header);
        let list = if config.native_sidecar {
            INIT_CONTAINERS
        } else {
            CONTAINERS
        };
        insert_container(patch, list, Step::Index(0), sidecar)?;
    }
    Ok(identity)
}

/// The `IDENTITY_HEADER` the pod already carries: the proxy's first, then any container's, so the
/// value stays the same when the webhook is invoked again.
fn existing_identity_header(pod: &Value) -> Option<String> {
    let containers = || {
        [INIT_CONTAINERS, CONTAINERS]
            .into_iter()
            .filter_map(|list| pod.get("spec")?.get(list)?.as_array())
            .flatten()
    };
    let is_proxy = |c: &&Value| c.get("name").and_then(Value::as_str) == Some(PROXY_CONTAINER_NAME);
    let header = |c: &Value| {
        c.get("env")?
            .as_array()?
            .iter()
            .find(|var| var.get("name").and_then(Value::as_str) == Some(IDENTITY_HEADER_ENV))?
            .get("value")?
            .as_str()
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    containers()
        .filter(is_proxy)
        .find_map(header)
        .or_else(|| containers().find_map(header))
}

fn has_container(pod: &Value, lists: &[&str], name: &str) -> bool {
    lists
        .iter()
        .filter_map(|list| pod.get("spec")?.get(*list)?.as_array())
        .flatten()
        .any(|container| container.get("name").and_then(Value::as_str) == Some(name))
}

/// Inserts a container at `at` (an index or the end), creating the list when it is missing.
fn insert_container(
    patch: &mut PatchBuilder,
    list: &str,
    at: Step<'_>,
    container: Value,
) -> Result<(), Denial> {
    match patch.get(&[SPEC, list.into()]) {
        None | Some(Value::Null) => patch.add(&[SPEC, list.into()], json!([container])),
        Some(Value::Array(_)) => patch.add(&[SPEC, list.into(), at], container),
        Some(_) => Err(Denial::new(format!("spec.{list} is not a list"))),
    }
}

fn container_count(patch: &PatchBuilder, list: &str) -> Result<usize, Denial> {
    match patch.get(&[SPEC, list.into()]) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Array(containers)) => Ok(containers.len()),
        Some(_) => Err(Denial::new(format!("spec.{list} is not a list"))),
    }
}

/// The environment variables of every mutated container, in upstream's order.
struct ContainerEnv {
    common: Vec<(&'static str, String)>,
    identity: Option<(String, String)>,
}

impl ContainerEnv {
    fn new(settings: &PodSettings, config: &Config, identity: Option<&IdentityEnv>) -> Self {
        let mut common = vec![
            (AZURE_CLIENT_ID, settings.client_id.clone().unwrap_or_default()),
            (AZURE_TENANT_ID, settings.tenant_id.clone()),
            (AZURE_FEDERATED_TOKEN_FILE, config.token_layout.token_file()),
            (AZURE_AUTHORITY_HOST, config.cloud.authority_host.clone()),
        ];
        if let Some(endpoint) = config
            .custom_token_endpoint
            .as_ref()
            .filter(|_| settings.custom_endpoint)
        {
            // The credentials (ours, Python's, Go's) refuse both CA variables at once and a CA
            // file that is not there, so each pod gets the one that works: the file where a CA is
            // projected, the data when it is inline, neither without a CA (the system roots).
            // Upstream sets AZURE_KUBERNETES_CA_FILE in every case.
            let (ca_file, ca_data) = match &endpoint.ca {
                Some(CaSource::Data(data)) => (String::new(), data.clone()),
                Some(CaSource::ConfigMap(_) | CaSource::ClusterTrustBundle { .. }) => {
                    (config.token_layout.ca_file(), String::new())
                }
                None => (String::new(), String::new()),
            };
            common.extend([
                (
                    AZURE_KUBERNETES_TOKEN_PROXY,
                    endpoint.token_proxy.clone().unwrap_or_default(),
                ),
                (
                    AZURE_KUBERNETES_SNI_NAME,
                    endpoint.sni_name.clone().unwrap_or_default(),
                ),
                (AZURE_KUBERNETES_CA_FILE, ca_file),
                (AZURE_KUBERNETES_CA_DATA, ca_data),
            ]);
        }
        let identity = identity.map(|identity| (identity.endpoint.clone(), identity.header.clone()));
        Self { common, identity }
    }

    /// The variables for the container `name` (the proxy gets the identity header but not the
    /// endpoint: it is the endpoint).
    fn for_container(&self, name: &str) -> Vec<(&'static str, &str)> {
        let mut vars: Vec<(&'static str, &str)> = self
            .common
            .iter()
            .map(|(key, value)| (*key, value.as_str()))
            .collect();
        if let Some((endpoint, header)) = &self.identity {
            if name != PROXY_CONTAINER_NAME {
                vars.push((IDENTITY_ENDPOINT_ENV, endpoint));
            }
            vars.push((IDENTITY_HEADER_ENV, header));
        }
        vars.retain(|(_, value)| !value.is_empty());
        vars
    }
}

/// Appends each variable the container does not define yet (by name, whatever its value).
fn add_env(patch: &mut PatchBuilder, list: &str, index: usize, vars: &[(&str, &str)]) -> Result<(), Denial> {
    let path = [SPEC, list.into(), index.into(), "env".into()];
    let existing: Vec<String> = match patch.get(&path) {
        None | Some(Value::Null) => {
            let env: Vec<Value> = vars
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            return if env.is_empty() {
                Ok(())
            } else {
                patch.add(&path, Value::Array(env))
            };
        }
        Some(Value::Array(env)) => env
            .iter()
            .filter_map(|var| var.get("name").and_then(Value::as_str))
            .map(str::to_owned)
            .collect(),
        Some(_) => return Err(Denial::new(format!("spec.{list}[{index}].env is not a list"))),
    };
    for (name, value) in vars {
        if !existing.iter().any(|present| present == name) {
            patch.add(
                &[SPEC, list.into(), index.into(), "env".into(), Step::End],
                json!({"name": name, "value": value}),
            )?;
        }
    }
    Ok(())
}

/// Adds `item` to the list at `path`, or replaces the entry with the same `name` when that entry
/// does not already contain it (entries that do, perhaps with API server defaults, are left alone).
fn ensure_named(patch: &mut PatchBuilder, path: &[Step<'_>], item: &Value) -> Result<(), Denial> {
    let name = item.get("name");
    let position = match patch.get(path) {
        None | Some(Value::Null) => return patch.add(path, json!([item])),
        Some(Value::Array(items)) => items.iter().position(|existing| existing.get("name") == name),
        Some(_) => return Err(Denial::new(format!("{} is not a list", field_name(path)))),
    };
    let mut at = path.to_vec();
    match position {
        Some(index) => {
            at.push(Step::Index(index));
            if patch.get(&at).is_some_and(|existing| contains(existing, item)) {
                return Ok(());
            }
            patch.replace(&at, item.clone())
        }
        None => {
            at.push(Step::End);
            patch.add(&at, item.clone())
        }
    }
}

/// A path as users read it: `spec.containers[0].volumeMounts`.
fn field_name(path: &[Step<'_>]) -> String {
    let mut name = String::new();
    for step in path {
        match step {
            Step::Key(key) if name.is_empty() => name.push_str(key),
            Step::Key(key) => {
                name.push('.');
                name.push_str(key);
            }
            Step::Index(index) => name.push_str(&format!("[{index}]")),
            Step::End => {}
        }
    }
    name
}

/// The projected volume: the service-account token, plus the custom endpoint's CA when the pod
/// opted in and a ConfigMap or ClusterTrustBundle is configured.
fn token_volume(name: &str, settings: &PodSettings, config: &Config) -> Value {
    let endpoint = config
        .custom_token_endpoint
        .as_ref()
        .filter(|_| settings.custom_endpoint);
    let audience = endpoint.map_or(config.audience.as_str(), |endpoint| endpoint.audience.as_str());
    let mut sources = vec![json!({"serviceAccountToken": {
        "path": config.token_layout.token_path(),
        "expirationSeconds": settings.expiration,
        "audience": audience,
    }})];
    match endpoint.and_then(|endpoint| endpoint.ca.as_ref()) {
        Some(CaSource::ConfigMap(config_map)) => sources.push(json!({"configMap": {
            "name": config_map,
            "items": [{"key": "ca.crt", "path": CA_CERT_PATH}],
            "optional": false,
        }})),
        Some(CaSource::ClusterTrustBundle {
            signer_name,
            label_selector,
        }) => {
            let mut bundle = json!({"signerName": signer_name, "path": CA_CERT_PATH, "optional": false});
            if let Some(selector) = label_selector {
                bundle["labelSelector"] = selector.clone();
            }
            sources.push(json!({"clusterTrustBundle": bundle}));
        }
        Some(CaSource::Data(_)) | None => {}
    }
    json!({"name": name, "projected": {"sources": sources}})
}
