//! The mutation, rule by rule (upstream-webhooks.md sections 1.2-1.7), plus this project's
//! deliberate deviations and the identity-endpoint proxy mode.

mod support;

use std::cell::Cell;

use azure_wi_core::{
    ConfigArgs, Denial,
    config::CaSource,
    mutation::{mutate_owned, mutate_with, service_account_name},
    token_layout::TokenLayout,
};
use json_patch::PatchOperation;
use serde_json::{Value, json};
use support::*;

const FOUR: [&str; 4] = [
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
];
const VOLUME: &str = "azure-workload-identity-reserved-2a97516c354b68848cdbd8f54a226a"; // sha256("demo")

fn with_annotations(mut pod: Value, annotations: Value) -> Value {
    pod["metadata"]["annotations"] = annotations;
    pod
}

#[test]
fn injects_the_four_variables_in_order_the_mount_and_the_volume() {
    let out = mutated(&pod(), &sa(), &config());
    let app = container(&out, "containers", "app");
    assert_eq!(
        env(app),
        vec![
            ("AZURE_CLIENT_ID".into(), Some(CLIENT_ID.into())),
            ("AZURE_TENANT_ID".into(), Some(TENANT.into())),
            (
                "AZURE_FEDERATED_TOKEN_FILE".into(),
                Some("/var/run/secrets/azure/wi/token/azure-identity-token".into())
            ),
            (
                "AZURE_AUTHORITY_HOST".into(),
                Some("https://login.microsoftonline.com/".into())
            ),
        ]
    );
    assert_eq!(
        app["volumeMounts"],
        json!([{"name": VOLUME, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true}])
    );
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": VOLUME, "projected": {"sources": [{"serviceAccountToken": {
            "path": "token/azure-identity-token", "expirationSeconds": 3600, "audience": "api://AzureADTokenExchange"
        }}]}}])
    );
}

#[test]
fn a_pod_handed_over_is_mutated_exactly_like_a_borrowed_one() {
    // The admission handler hands the decoded pod over (no deep copy); `azure-wi mutate` and the
    // tests borrow it. Same pod, same patch, in the "apps" namespace and in another one.
    for namespace in ["apps", "elsewhere"] {
        let borrowed = mutate_with(&pod(), namespace, &sa(), &config(), &|| unreachable!()).unwrap();
        let owned = mutate_owned(pod(), namespace, &sa(), &config()).unwrap();
        assert_eq!(
            serde_json::to_value(&owned).unwrap(),
            serde_json::to_value(&borrowed).unwrap()
        );
        assert!(!owned.is_empty());
    }
}

#[test]
fn missing_or_empty_client_id_omits_the_variable_without_denying() {
    for sa in [
        service_account(&[]),
        service_account(&[("azure.workload.identity/client-id", "")]),
    ] {
        let out = mutated(&pod(), &sa, &config());
        assert_eq!(
            env_names(container(&out, "containers", "app")),
            FOUR[1..].to_vec()
        );
    }
}

#[test]
fn tenant_comes_from_the_service_account_else_the_configuration() {
    let cases = [
        (
            vec![("azure.workload.identity/tenant-id", "sa-tenant")],
            "sa-tenant",
        ),
        (vec![], TENANT),
        // Deviation: upstream omits AZURE_TENANT_ID for an empty annotation.
        (vec![("azure.workload.identity/tenant-id", "")], TENANT),
    ];
    for (annotations, tenant) in cases {
        let out = mutated(&pod(), &service_account(&annotations), &config());
        assert_eq!(
            env_value(container(&out, "containers", "app"), "AZURE_TENANT_ID").as_deref(),
            Some(tenant)
        );
    }
}

#[test]
fn existing_variables_win_whatever_their_source() {
    let mut pod = pod();
    pod["spec"]["containers"][0]["env"] = json!([
        {"name": "AZURE_CLIENT_ID", "value": "mine"},
        {"name": "AZURE_AUTHORITY_HOST", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "host"}}},
        {"name": "OTHER", "value": "x"},
    ]);
    let out = mutated(&pod, &sa(), &config());
    let app = container(&out, "containers", "app");
    assert_eq!(
        env_names(app),
        [
            "AZURE_CLIENT_ID",
            "AZURE_AUTHORITY_HOST",
            "OTHER",
            "AZURE_TENANT_ID",
            "AZURE_FEDERATED_TOKEN_FILE"
        ]
    );
    assert_eq!(env_value(app, "AZURE_CLIENT_ID").as_deref(), Some("mine"));
    assert_eq!(app["env"][1]["valueFrom"]["configMapKeyRef"]["key"], "host");
}

#[test]
fn init_containers_are_mutated_and_ephemeral_containers_are_not() {
    let mut pod = pod();
    pod["spec"]["initContainers"] = json!([{"name": "setup", "image": "busybox"}]);
    pod["spec"]["ephemeralContainers"] = json!([{"name": "debugger", "image": "busybox"}]);
    let out = mutated(&pod, &sa(), &config());
    assert_eq!(env_names(container(&out, "initContainers", "setup")), FOUR);
    assert!(container(&out, "initContainers", "setup")["volumeMounts"].is_array());
    assert_eq!(
        out["spec"]["ephemeralContainers"],
        pod["spec"]["ephemeralContainers"]
    );
}

#[test]
fn skip_containers_is_split_on_semicolons_and_trimmed() {
    let mut pod = with_annotations(
        pod(),
        json!({"azure.workload.identity/skip-containers": " sidecar ; setup;"}),
    );
    pod["spec"]["containers"] = json!([{"name": "app"}, {"name": "sidecar"}]);
    pod["spec"]["initContainers"] = json!([{"name": "setup"}]);
    let out = mutated(&pod, &sa(), &config());
    assert_eq!(
        container(&out, "containers", "sidecar"),
        &json!({"name": "sidecar"})
    );
    assert_eq!(
        container(&out, "initContainers", "setup"),
        &json!({"name": "setup"})
    );
    assert_eq!(env_names(container(&out, "containers", "app")), FOUR);
    assert_eq!(
        out["spec"]["volumes"][0]["name"], VOLUME,
        "the volume is still added"
    );
}

#[test]
fn token_expiration_pod_annotation_wins_over_the_service_account() {
    let expiration = "azure.workload.identity/service-account-token-expiration";
    let cases: [(Option<&str>, Option<&str>, i64); 6] = [
        (None, None, 3600),
        (Some("7200"), None, 7200),
        (None, Some("5000"), 5000),
        (Some("7200"), Some("5000"), 7200),
        (Some(""), Some("5000"), 5000),
        (Some("+4000"), None, 4000),
    ];
    for (on_pod, on_sa, seconds) in cases {
        let pod = match on_pod {
            Some(value) => with_annotations(pod(), json!({expiration: value})),
            None => pod(),
        };
        let sa = service_account(&on_sa.map(|v| vec![(expiration, v)]).unwrap_or_default());
        let out = mutated(&pod, &sa, &config());
        let token = &out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
        assert_eq!(token["expirationSeconds"], seconds, "pod {on_pod:?} sa {on_sa:?}");
    }
}

#[test]
fn token_expiration_out_of_range_or_unparsable_is_denied() {
    let expiration = "azure.workload.identity/service-account-token-expiration";
    for value in ["100", "86401", "3599"] {
        let on_pod = denial(
            &with_annotations(pod(), json!({expiration: value})),
            &sa(),
            &config(),
        );
        let expected =
            format!("token expiration {value} not valid. Expected value to be between 3600 and 86400");
        assert!(on_pod.message.starts_with(&expected), "{on_pod}");
        assert!(on_pod.message.contains("on the pod"), "{on_pod}");
        assert_eq!(on_pod.code, 400);
        let on_sa = denial(&pod(), &service_account(&[(expiration, value)]), &config());
        assert!(
            on_sa.message.contains("on service account \"workload\""),
            "{on_sa}"
        );
    }
    for value in ["invalid", "3600s", "1h"] {
        let denied = denial(
            &with_annotations(pod(), json!({expiration: value})),
            &sa(),
            &config(),
        );
        assert!(
            denied.message.contains(expiration) && denied.message.contains(value),
            "{denied}"
        );
    }
}

#[test]
fn volume_name_hashes_the_name_or_the_generate_name_prefix() {
    let mut pod = pod();
    pod["metadata"].as_object_mut().unwrap().remove("name");
    pod["metadata"]["generateName"] = json!("web-7d9f-");
    let out = mutated(&pod, &sa(), &config());
    let expected = TokenLayout::Current.volume_name("web-7d9f- (prefix)");
    assert_eq!(out["spec"]["volumes"][0]["name"], expected);
    assert_eq!(
        container(&out, "containers", "app")["volumeMounts"][0]["name"],
        expected
    );
    assert_eq!(expected.len(), 63);
}

#[test]
fn a_volume_or_mount_with_the_reserved_name_is_replaced_in_place() {
    let mut pod = pod();
    pod["spec"]["volumes"] = json!([
        {"name": "data", "emptyDir": {}},
        {"name": VOLUME, "emptyDir": {}},
        {"name": "cache", "emptyDir": {}},
    ]);
    pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": VOLUME, "mountPath": "/elsewhere"}, {"name": "data", "mountPath": "/data"}]);
    let ops = mutate(&pod, &sa(), &config()).unwrap();
    let out = apply(&pod, &ops);
    let volumes = out["spec"]["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 3);
    assert_eq!(volumes[1]["name"], VOLUME);
    assert!(volumes[1]["projected"].is_object() && volumes[1].get("emptyDir").is_none());
    let mounts = &container(&out, "containers", "app")["volumeMounts"];
    assert_eq!(
        mounts[0],
        json!({"name": VOLUME, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true})
    );
    assert_eq!(mounts[1]["name"], "data");
    assert!(
        ops.iter()
            .any(|op| matches!(op, PatchOperation::Replace(r) if r.path.as_str() == "/spec/volumes/1"))
    );
}

#[test]
fn the_volume_is_appended_after_the_users_volumes() {
    let mut pod = pod();
    pod["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    let out = mutated(&pod, &sa(), &config());
    assert_eq!(out["spec"]["volumes"][0]["name"], "data");
    assert_eq!(out["spec"]["volumes"][1]["name"], VOLUME);
}

#[test]
fn api_server_defaults_on_our_volume_do_not_cause_a_replace() {
    let first = mutated(&pod(), &sa(), &config());
    let mut defaulted = first.clone();
    defaulted["spec"]["volumes"][0]["projected"]["defaultMode"] = json!(420);
    defaulted["spec"]["containers"][0]["terminationMessagePath"] = json!("/dev/termination-log");
    assert_eq!(mutate(&defaulted, &sa(), &config()).unwrap(), vec![]);
}

#[test]
fn legacy_layout_uses_the_pre_1_6_paths() {
    let config = ConfigArgs {
        token_path_layout: TokenLayout::Legacy,
        ..args()
    }
    .into_config(None)
    .unwrap();
    let out = mutated(&pod(), &sa(), &config);
    let app = container(&out, "containers", "app");
    assert_eq!(
        env_value(app, "AZURE_FEDERATED_TOKEN_FILE").as_deref(),
        Some("/var/run/secrets/azure/tokens/azure-identity-token")
    );
    assert_eq!(
        app["volumeMounts"],
        json!([{"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens", "readOnly": true}])
    );
    assert_eq!(
        out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["path"],
        "azure-identity-token"
    );
}

#[test]
fn audience_and_cloud_come_from_the_configuration() {
    let config = ConfigArgs {
        audience: "api://custom".into(),
        azure_environment: Some("azurechinacloud".into()),
        ..args()
    }
    .into_config(None)
    .unwrap();
    let out = mutated(&pod(), &sa(), &config);
    assert_eq!(
        out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "api://custom"
    );
    assert_eq!(
        env_value(container(&out, "containers", "app"), "AZURE_AUTHORITY_HOST").as_deref(),
        Some("https://login.chinacloudapi.cn/")
    );
}

#[test]
fn namespace_is_set_from_the_request_only_when_it_differs() {
    let same = mutate(&pod(), &sa(), &config()).unwrap();
    assert!(same.iter().all(|op| op.path().as_str() != "/metadata/namespace"));

    let mut without = pod();
    without["metadata"].as_object_mut().unwrap().remove("namespace");
    let ops = mutate(&without, &sa(), &config()).unwrap();
    assert_eq!(ops[0].path().as_str(), "/metadata/namespace");
    assert_eq!(apply(&without, &ops)["metadata"]["namespace"], "apps");
}

#[test]
fn service_account_name_defaults_to_default() {
    assert_eq!(service_account_name(&pod()), "workload");
    assert_eq!(service_account_name(&json!({"spec": {}})), "default");
    assert_eq!(
        service_account_name(&json!({"spec": {"serviceAccountName": ""}})),
        "default"
    );
    assert_eq!(service_account_name(&json!({})), "default");
}

#[test]
fn missing_parents_are_created_and_null_lists_are_filled() {
    let mut pod = pod();
    pod["spec"]["containers"][0]["env"] = Value::Null;
    pod["spec"]["volumes"] = Value::Null;
    let out = mutated(&pod, &sa(), &config());
    assert_eq!(env_names(container(&out, "containers", "app")), FOUR);
    assert_eq!(out["spec"]["volumes"].as_array().unwrap().len(), 1);
}

#[test]
fn malformed_pods_are_denied_not_panicked_on() {
    let cases = [
        (json!([]), "not a JSON object"),
        (json!({"metadata": {}}), "no spec"),
        (
            json!({"spec": {"containers": {}}}),
            "spec.containers is not a list",
        ),
        (
            json!({"spec": {"containers": [7]}}),
            "spec.containers[0] is not an object",
        ),
        (
            json!({"spec": {"containers": [{"name": "a", "env": "x"}]}}),
            "spec.containers[0].env is not a list",
        ),
        (
            json!({"spec": {"containers": [{"name": "a", "volumeMounts": 1}]}}),
            "spec.containers[0].volumeMounts is not a list",
        ),
        (
            json!({"spec": {"containers": [], "volumes": {}}}),
            "spec.volumes is not a list",
        ),
        (json!({"metadata": 3, "spec": {}}), "metadata is not an object"),
    ];
    for (pod, message) in cases {
        let denied = denial(&pod, &sa(), &config());
        assert!(denied.message.contains(message), "{pod}: {denied}");
    }
}

#[test]
fn unknown_fields_survive_and_no_operation_removes_anything() {
    let mut pod = pod();
    pod["spec"]["initContainers"] =
        json!([{"name": "native", "restartPolicy": "Always", "futureField": {"a": 1}}]);
    pod["spec"]["futureSpecField"] = json!([1, 2, 3]);
    pod["spec"]["containers"][0]["resizePolicy"] =
        json!([{"resourceName": "cpu", "restartPolicy": "NotRequired"}]);
    let ops = mutate(&pod, &sa(), &native_config()).unwrap();
    assert!(
        ops.iter()
            .all(|op| matches!(op, PatchOperation::Add(_) | PatchOperation::Replace(_)))
    );
    let out = apply(&pod, &ops);
    assert_eq!(out["spec"]["futureSpecField"], json!([1, 2, 3]));
    assert_eq!(
        container(&out, "initContainers", "native")["restartPolicy"],
        "Always"
    );
    assert_eq!(
        container(&out, "initContainers", "native")["futureField"],
        json!({"a": 1})
    );
    assert_eq!(
        container(&out, "containers", "app")["resizePolicy"],
        pod["spec"]["containers"][0]["resizePolicy"]
    );
}

#[test]
fn own_output_gives_an_empty_patch_and_later_containers_are_mutated() {
    for config in [config(), native_config()] {
        let pod = with_annotations(
            pod(),
            json!({"azure.workload.identity/inject-proxy-sidecar": "true"}),
        );
        let once = mutated(&pod, &sa(), &config);
        assert_eq!(
            mutate(&once, &sa(), &config).unwrap(),
            vec![],
            "reinvocation changes nothing"
        );

        let mut added = once.clone();
        added["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "dapr", "image": "daprd"}));
        let twice = mutated(&added, &sa(), &config);
        let dapr = container(&twice, "containers", "dapr");
        assert_eq!(env_names(dapr), FOUR);
        assert_eq!(dapr["volumeMounts"][0]["name"], VOLUME);
        assert_eq!(twice["spec"]["volumes"].as_array().unwrap().len(), 1);
    }
}

// --- proxy injection (section 1.5) ---

fn proxy_pod(extra: Value) -> Value {
    let mut annotations = json!({"azure.workload.identity/inject-proxy-sidecar": "true"});
    for (key, value) in extra.as_object().unwrap() {
        annotations[key] = value.clone();
    }
    let mut pod = with_annotations(pod(), annotations);
    pod["spec"]["initContainers"] = json!([{"name": "setup", "image": "busybox"}]);
    pod
}

/// [`proxy_pod`] with `annotations`, denied with the default ServiceAccount and configuration.
/// The names of `pod`'s init containers, in order.
fn init_container_names(pod: &Value) -> Vec<Value> {
    pod["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect()
}

fn proxy_denial(annotations: Value) -> Denial {
    denial(&proxy_pod(annotations), &sa(), &config())
}

/// [`proxy_pod`] with `annotations`, mutated with the default ServiceAccount and configuration.
fn proxy_mutated(annotations: Value) -> Value {
    mutated(&proxy_pod(annotations), &sa(), &config())
}

fn expected_sidecar(port: i32, native: bool) -> Value {
    let mut sidecar = json!({
        "name": "azwi-proxy",
        "image": "mcr.microsoft.com/oss/azure/workload-identity/proxy:v1.6.0",
        "imagePullPolicy": "IfNotPresent",
        "args": [format!("--proxy-port={port}"), "--log-level=info"],
        "ports": [{"containerPort": port}],
        "lifecycle": {"postStart": {"exec": {"command": ["/proxy", format!("--proxy-port={port}"), "--probe", "--log-level=info"]}}},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
        },
    });
    if native {
        sidecar["restartPolicy"] = json!("Always");
    }
    sidecar
}

/// A container without what the mutation adds to every container.
fn without_mutation(container: &Value) -> Value {
    let mut container = container.clone();
    let object = container.as_object_mut().unwrap();
    object.remove("volumeMounts");
    let env: Vec<Value> = object
        .remove("env")
        .and_then(|env| env.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|var| !FOUR.contains(&var["name"].as_str().unwrap()))
        .collect();
    if !env.is_empty() {
        object.insert("env".into(), Value::Array(env));
    }
    container
}

#[test]
fn classic_proxy_goes_first_in_containers_and_its_init_container_last() {
    let out = mutated(&proxy_pod(json!({})), &sa(), &config());
    let names = |list: &str| {
        out["spec"][list]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names("containers"), ["azwi-proxy", "app"]);
    assert_eq!(names("initContainers"), ["setup", "azwi-proxy-init"]);
    assert_eq!(
        without_mutation(container(&out, "containers", "azwi-proxy")),
        expected_sidecar(8000, false)
    );
    assert_eq!(
        without_mutation(container(&out, "initContainers", "azwi-proxy-init")),
        json!({
            "name": "azwi-proxy-init",
            "image": "mcr.microsoft.com/oss/azure/workload-identity/proxy-init:v1.6.0",
            "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "PROXY_PORT", "value": "8000"}],
            "securityContext": {
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                "privileged": true,
                "runAsNonRoot": false,
                "runAsUser": 0,
            },
        })
    );
    // Both proxy containers are then mutated like the others.
    for (list, name) in [
        ("containers", "azwi-proxy"),
        ("initContainers", "azwi-proxy-init"),
    ] {
        let proxy = container(&out, list, name);
        assert!(
            FOUR.iter()
                .all(|var| env_names(proxy).contains(&(*var).to_owned())),
            "{name}"
        );
        assert_eq!(proxy["volumeMounts"][0]["name"], VOLUME);
    }
}

#[test]
fn native_proxy_goes_first_in_init_containers_with_restart_policy_always() {
    let out = mutated(&proxy_pod(json!({})), &sa(), &native_config());
    let names = init_container_names(&out);
    assert_eq!(names, ["azwi-proxy", "setup", "azwi-proxy-init"]);
    assert_eq!(
        without_mutation(&out["spec"]["initContainers"][0]),
        expected_sidecar(8000, true)
    );
    assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
}

#[test]
fn proxy_images_and_log_level_come_from_the_configuration() {
    let config = ConfigArgs {
        proxy_image: Some("example.com/proxy:1".into()),
        proxy_init_image: Some("example.com/init:1".into()),
        log_level: String::new(),
        ..args()
    }
    .into_config(None)
    .unwrap();
    let out = mutated(&proxy_pod(json!({})), &sa(), &config);
    let proxy = container(&out, "containers", "azwi-proxy");
    assert_eq!(proxy["image"], "example.com/proxy:1");
    assert_eq!(
        proxy["args"][1], "--log-level=warning",
        "an empty level is upstream's warning"
    );
    assert_eq!(
        container(&out, "initContainers", "azwi-proxy-init")["image"],
        "example.com/init:1"
    );
}

#[test]
fn proxy_port_follows_upstreams_parse_rules_within_the_port_range() {
    for (value, port) in [("9000", 9000), ("+9001", 9001), ("1", 1), ("65535", 65535)] {
        let out = proxy_mutated(json!({"azure.workload.identity/proxy-sidecar-port": value}));
        let proxy = container(&out, "containers", "azwi-proxy");
        assert_eq!(proxy["ports"][0]["containerPort"], port, "{value}");
        assert_eq!(proxy["args"][0], format!("--proxy-port={port}"));
        let init = container(&out, "initContainers", "azwi-proxy-init");
        assert_eq!(
            init["env"][0],
            json!({"name": "PROXY_PORT", "value": port.to_string()})
        );
    }
    for value in ["abc", "", "80.5", "2147483648", " 8000"] {
        let denied = proxy_denial(json!({"azure.workload.identity/proxy-sidecar-port": value}));
        assert!(
            denied.message.starts_with("failed to parse proxy sidecar port: "),
            "{value}: {denied}"
        );
    }
    // Upstream writes these into the patch; a port out of range is denied, naming the range.
    for value in ["0", "-1", "65536"] {
        let denied = proxy_denial(json!({"azure.workload.identity/proxy-sidecar-port": value}));
        assert!(
            denied.message.starts_with("invalid proxy sidecar port: ")
                && denied
                    .message
                    .contains("azure.workload.identity/proxy-sidecar-port")
                && denied.message.contains("from 1 to 65535"),
            "{value}: {denied}"
        );
    }
}

#[test]
fn host_network_pods_cannot_get_the_proxy() {
    let mut pod = proxy_pod(json!({}));
    pod["spec"]["hostNetwork"] = json!(true);
    assert_eq!(
        denial(&pod, &sa(), &config()).message,
        "hostNetwork is set to true, cannot inject proxy sidecar"
    );
    let mut without_proxy = pod.clone();
    without_proxy["metadata"]["annotations"] = json!({});
    assert!(
        mutate(&without_proxy, &sa(), &config()).is_ok(),
        "hostNetwork alone is fine"
    );
}

#[test]
fn inject_proxy_sidecar_false_does_not_inject() {
    // Deviation: upstream injects whenever the annotation is present.
    for value in ["false", "False", "0", "f"] {
        let out = proxy_mutated(json!({"azure.workload.identity/inject-proxy-sidecar": value}));
        assert!(!out.to_string().contains("azwi-proxy"), "{value}");
    }
    for value in ["true", "", "yes"] {
        let out = proxy_mutated(json!({"azure.workload.identity/inject-proxy-sidecar": value}));
        assert_eq!(
            out["spec"]["containers"][0]["name"], "azwi-proxy",
            "{value:?} keeps upstream's presence rule"
        );
    }
}

#[test]
fn existing_proxy_containers_are_not_added_twice() {
    let mut pod = proxy_pod(json!({}));
    pod["spec"]["containers"] = json!([{"name": "app"}, {"name": "azwi-proxy", "image": "mine"}]);
    pod["spec"]["initContainers"] = json!([{"name": "azwi-proxy-init", "image": "mine-too"}]);
    let out = mutated(&pod, &sa(), &config());
    assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 2);
    assert_eq!(container(&out, "containers", "azwi-proxy")["image"], "mine");
    assert_eq!(out["spec"]["initContainers"].as_array().unwrap().len(), 1);
}

#[test]
fn skip_containers_also_applies_to_the_proxy() {
    let out = proxy_mutated(json!({"azure.workload.identity/skip-containers": "azwi-proxy-init"}));
    let init = container(&out, "initContainers", "azwi-proxy-init");
    assert_eq!(env_names(init), ["PROXY_PORT"]);
    assert!(init.get("volumeMounts").is_none());
}

// --- identity-endpoint mode (issue 5) ---

fn identity_pod() -> Value {
    proxy_pod(
        json!({"azure.workload.identity/proxy-mode": "identity-endpoint", "azure.workload.identity/proxy-sidecar-port": "8123"}),
    )
}

#[test]
fn identity_endpoint_mode_injects_only_the_unprivileged_proxy() {
    let out = mutated(&identity_pod(), &sa(), &native_config());
    let names = init_container_names(&out);
    assert_eq!(names, ["azwi-proxy", "setup"], "no iptables init container");
    let proxy = &out["spec"]["initContainers"][0];
    assert_eq!(
        proxy["args"],
        json!(["--proxy-port=8123", "--log-level=info", "--identity-endpoint"])
    );
    assert_eq!(proxy["restartPolicy"], "Always");
    assert_eq!(proxy["securityContext"]["runAsNonRoot"], true);
    assert_eq!(proxy["securityContext"]["privileged"], false);
    assert!(!out.to_string().contains("NET_ADMIN"));

    assert_eq!(env_value(proxy, "IDENTITY_HEADER").as_deref(), Some(FIXED_HEADER));
    assert_eq!(
        env_value(proxy, "IDENTITY_ENDPOINT"),
        None,
        "the proxy is the endpoint"
    );
    assert_eq!(env_value(proxy, "AZURE_CLIENT_ID").as_deref(), Some(CLIENT_ID));
    for (list, name) in [("initContainers", "setup"), ("containers", "app")] {
        let app = container(&out, list, name);
        assert_eq!(
            env_value(app, "IDENTITY_ENDPOINT").as_deref(),
            Some("http://127.0.0.1:8123/msi/token")
        );
        assert_eq!(env_value(app, "IDENTITY_HEADER").as_deref(), Some(FIXED_HEADER));
        assert_eq!(env_names(app)[..4], FOUR);
    }
    let headers = out.to_string().matches(FIXED_HEADER).count();
    assert_eq!(headers, 3, "proxy + two app containers, each once");
}

#[test]
fn identity_endpoint_mode_uses_classic_placement_without_native_sidecars() {
    let out = mutated(&identity_pod(), &sa(), &config());
    assert_eq!(out["spec"]["containers"][0]["name"], "azwi-proxy");
    assert!(out["spec"]["containers"][0].get("restartPolicy").is_none());
    assert_eq!(out["spec"]["initContainers"].as_array().unwrap().len(), 1);
}

#[test]
fn identity_header_is_reused_on_reinvocation_and_generated_once() {
    let calls = Cell::new(0);
    let generator = || {
        calls.set(calls.get() + 1);
        Ok(format!("{:064x}", calls.get()))
    };
    let pod = identity_pod();
    let first = apply(
        &pod,
        &mutate_with(&pod, "apps", &sa(), &native_config(), &generator).unwrap(),
    );
    assert_eq!(calls.get(), 1);
    let header = env_value(&first["spec"]["initContainers"][0], "IDENTITY_HEADER").unwrap();

    let mut later = first.clone();
    later["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "late"}));
    let second = apply(
        &later,
        &mutate_with(&later, "apps", &sa(), &native_config(), &generator).unwrap(),
    );
    assert_eq!(calls.get(), 1, "an existing header is reused, not regenerated");
    assert_eq!(
        env_value(container(&second, "containers", "late"), "IDENTITY_HEADER"),
        Some(header)
    );
    assert_eq!(
        mutate_with(&second, "apps", &sa(), &native_config(), &generator).unwrap(),
        vec![]
    );
}

#[test]
fn identity_header_from_an_app_container_is_shared_with_a_new_proxy() {
    let mut pod = identity_pod();
    pod["spec"]["containers"][0]["env"] = json!([{"name": "IDENTITY_HEADER", "value": "from-the-app"}]);
    let out = mutate_with(&pod, "apps", &sa(), &native_config(), &|| {
        panic!("no new header is needed")
    })
    .unwrap();
    let out = apply(&pod, &out);
    assert_eq!(
        env_value(&out["spec"]["initContainers"][0], "IDENTITY_HEADER").as_deref(),
        Some("from-the-app")
    );
    assert_eq!(
        env_value(container(&out, "initContainers", "setup"), "IDENTITY_HEADER").as_deref(),
        Some("from-the-app")
    );
}

#[test]
fn imds_mode_never_asks_for_an_identity_header() {
    let pod = proxy_pod(json!({"azure.workload.identity/proxy-mode": "IMDS"}));
    let ops = mutate_with(&pod, "apps", &sa(), &config(), &|| {
        panic!("no header in IMDS mode")
    })
    .unwrap();
    assert!(!apply(&pod, &ops).to_string().contains("IDENTITY_"));
}

#[test]
fn unknown_proxy_modes_are_denied_and_the_mode_needs_the_injection_annotation() {
    let denied = proxy_denial(json!({"azure.workload.identity/proxy-mode": "magic"}));
    assert!(
        denied
            .message
            .contains("azure.workload.identity/proxy-mode \"magic\" is not valid"),
        "{denied}"
    );
    let alone = with_annotations(
        pod(),
        json!({"azure.workload.identity/proxy-mode": "identity-endpoint"}),
    );
    let out = mutated(&alone, &sa(), &config());
    assert!(!out.to_string().contains("azwi-proxy") && !out.to_string().contains("IDENTITY_"));
}

// --- custom token endpoint (section 1.6) ---

fn custom_args() -> ConfigArgs {
    ConfigArgs {
        custom_token_endpoint_annotation_suffix: Some("identity-binding".into()),
        custom_token_endpoint_audience: Some("api://AKSIdentityBinding".into()),
        azure_kubernetes_token_proxy: Some("https://kubernetes.default.svc".into()),
        azure_kubernetes_sni_name: Some("sni.example".into()),
        ..args()
    }
}

/// The test pod, annotated `azure.workload.identity/use-identity-binding: value`.
fn binding_pod(value: &str) -> Value {
    with_annotations(
        pod(),
        json!({"azure.workload.identity/use-identity-binding": value}),
    )
}

#[test]
fn custom_endpoint_opt_in_adds_variables_audience_and_ca_projection() {
    let config = ConfigArgs {
        azure_kubernetes_ca_configmap_name: Some("kube-root-ca.crt".into()),
        ..custom_args()
    }
    .into_config(None)
    .unwrap();
    let pod = binding_pod("TRUE");
    let out = mutated(&pod, &sa(), &config);
    let app = container(&out, "containers", "app");
    assert_eq!(
        env_names(app)[4..],
        [
            "AZURE_KUBERNETES_TOKEN_PROXY",
            "AZURE_KUBERNETES_SNI_NAME",
            "AZURE_KUBERNETES_CA_FILE"
        ]
    );
    assert_eq!(
        env_value(app, "AZURE_KUBERNETES_CA_FILE").as_deref(),
        Some("/var/run/secrets/azure/wi/ca-cert/ca.crt")
    );
    let sources = &out["spec"]["volumes"][0]["projected"]["sources"];
    assert_eq!(
        sources[0]["serviceAccountToken"]["audience"],
        "api://AKSIdentityBinding"
    );
    assert_eq!(
        sources[1],
        json!({"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca-cert/ca.crt"}], "optional": false}})
    );
}

#[test]
fn custom_endpoint_ca_data_and_trust_bundles() {
    let opted_in = binding_pod("true");
    let data = ConfigArgs {
        azure_kubernetes_ca_data: Some("-----BEGIN CERTIFICATE-----".into()),
        ..custom_args()
    }
    .into_config(None)
    .unwrap();
    let out = mutated(&opted_in, &sa(), &data);
    assert_eq!(
        env_value(container(&out, "containers", "app"), "AZURE_KUBERNETES_CA_DATA").as_deref(),
        Some("-----BEGIN CERTIFICATE-----")
    );
    // Inline data only: a CA file as well would be refused by every credential ("both set"),
    // and there is no file to read.
    assert_eq!(
        env_value(container(&out, "containers", "app"), "AZURE_KUBERNETES_CA_FILE"),
        None
    );
    assert_eq!(
        out["spec"]["volumes"][0]["projected"]["sources"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let bundle = ConfigArgs {
        azure_kubernetes_ca_ctb_signer_name: Some("example.com/signer".into()),
        azure_kubernetes_ca_ctb_label_selector: Some(r#"{"matchLabels":{"trust":"yes"}}"#.into()),
        ..custom_args()
    }
    .into_config(None)
    .unwrap();
    assert!(matches!(
        bundle.custom_token_endpoint.as_ref().unwrap().ca,
        Some(CaSource::ClusterTrustBundle { .. })
    ));
    let out = mutated(&opted_in, &sa(), &bundle);
    assert_eq!(
        out["spec"]["volumes"][0]["projected"]["sources"][1],
        json!({"clusterTrustBundle": {
            "signerName": "example.com/signer", "labelSelector": {"matchLabels": {"trust": "yes"}},
            "path": "ca-cert/ca.crt", "optional": false
        }})
    );
}

#[test]
fn custom_endpoint_without_a_ca_sets_no_ca_variable() {
    // No CA configured: the credential trusts the system roots. A CA file variable pointing at
    // a file nothing projects would make every credential fail to read it.
    let config = custom_args().into_config(None).unwrap();
    let pod = binding_pod("true");
    let out = mutated(&pod, &sa(), &config);
    let app = container(&out, "containers", "app");
    assert_eq!(
        env_names(app)[4..],
        ["AZURE_KUBERNETES_TOKEN_PROXY", "AZURE_KUBERNETES_SNI_NAME"]
    );
}

#[test]
fn custom_endpoint_is_ignored_without_the_opt_in_or_the_flags() {
    let config = custom_args().into_config(None).unwrap();
    for value in [None, Some("false"), Some("yes")] {
        let pod = match value {
            Some(value) => binding_pod(value),
            None => pod(),
        };
        let out = mutated(&pod, &sa(), &config);
        assert_eq!(env_names(container(&out, "containers", "app")), FOUR, "{value:?}");
        assert_eq!(
            out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
            "api://AzureADTokenExchange"
        );
    }
    let opted_in = binding_pod("true");
    let out = mutated(&opted_in, &sa(), &support::config());
    assert_eq!(
        env_names(container(&out, "containers", "app")),
        FOUR,
        "flags unset: no custom endpoint"
    );
}
