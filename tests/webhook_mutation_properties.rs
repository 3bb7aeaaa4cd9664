//! Properties of the mutation over generated pods: the patch applies cleanly, never removes,
//! preserves what it does not own, adds each variable once, and is idempotent.

mod support;

use std::collections::BTreeSet;

use azure_wi_core::{
    Config, ConfigArgs,
    config::NativeSidecar,
    mutation::{ServiceAccount, mutate_with},
    token_layout::{TokenLayout, pod_name_for_hash},
};
use json_patch::PatchOperation;
use proptest::{collection, prelude::*, sample};
use serde_json::{Value, json};
use support::*;

const ENV_NAMES: [&str; 8] = [
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_HEADER",
    "IDENTITY_ENDPOINT",
    "HOME",
    "LOG_LEVEL",
];

/// A generated container: name plus optional env, mounts and an unknown field.
fn container_strategy(name: String) -> impl Strategy<Value = Value> {
    let env = prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        sample::subsequence(ENV_NAMES.to_vec(), 0..4).prop_flat_map(|names| {
            collection::vec("[a-z0-9]{0,6}", names.len()).prop_map(move |values| {
                Some(Value::Array(
                    names
                        .iter()
                        .zip(values)
                        .map(|(name, value)| match value.as_str() {
                            "" => json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
                            _ => json!({"name": name, "value": value}),
                        })
                        .collect(),
                ))
            })
        }),
    ];
    let mounts = prop_oneof![
        Just(None),
        Just(Some(json!([{"name": "data", "mountPath": "/data"}]))),
        Just(Some(json!([{"name": "RESERVED", "mountPath": "/wrong"}]))),
    ];
    let unknown = prop_oneof![
        Just(None),
        any::<i64>().prop_map(|n| Some(json!({"nested": n, "list": [n]})))
    ];
    (env, mounts, unknown).prop_map(move |(env, mounts, unknown)| {
        let mut container = json!({"name": name, "image": "busybox"});
        if let Some(env) = env {
            container["env"] = env;
        }
        if let Some(mounts) = mounts {
            container["volumeMounts"] = mounts;
        }
        if let Some(unknown) = unknown {
            container["futureContainerField"] = unknown;
        }
        container
    })
}

/// Generated pods and configurations.
#[derive(Debug, Clone)]
struct Case {
    pod: Value,
    native: bool,
    layout: TokenLayout,
    skipped: BTreeSet<String>,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let names =
        collection::btree_set("[a-z]{1,6}", 1..6).prop_map(|names| names.into_iter().collect::<Vec<_>>());
    names
        .prop_flat_map(|names| {
            let split = 0..names.len();
            (Just(names), split)
        })
        .prop_flat_map(|(names, split)| {
            let (init_names, names) = names.split_at(split);
            let init: Vec<_> = init_names.iter().cloned().map(container_strategy).collect();
            let containers: Vec<_> = names.iter().cloned().map(container_strategy).collect();
            let all: Vec<String> = init_names.iter().chain(names).cloned().collect();
            (
                init,
                containers,
                sample::subsequence(all.clone(), 0..=all.len()),
                prop_oneof![Just(None), Just(Some("true")), Just(Some("false"))],
                prop_oneof![Just(None), Just(Some("imds")), Just(Some("identity-endpoint"))],
                prop_oneof![Just(None), (3600i64..=86400).prop_map(Some)],
                prop_oneof![Just(None), Just(Some("apps")), Just(Some("elsewhere"))],
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(
            |(init, containers, skipped, inject, mode, expiration, namespace, named, volumes, native, legacy)| {
                let layout = if legacy { TokenLayout::Legacy } else { TokenLayout::Current };
                let mut metadata = json!({"labels": {"azure.workload.identity/use": "true"}});
                if named {
                    metadata["name"] = json!("generated");
                } else {
                    metadata["generateName"] = json!("generated-");
                }
                if let Some(namespace) = namespace {
                    metadata["namespace"] = json!(namespace);
                }
                let mut annotations = json!({
                    "azure.workload.identity/skip-containers": skipped.iter().map(|s| format!(" {s} ")).collect::<Vec<_>>().join(";"),
                    "unknown.example/annotation": "kept",
                });
                if let Some(inject) = inject {
                    annotations["azure.workload.identity/inject-proxy-sidecar"] = json!(inject);
                }
                if let Some(mode) = mode {
                    annotations["azure.workload.identity/proxy-mode"] = json!(mode);
                }
                if let Some(expiration) = expiration {
                    annotations["azure.workload.identity/service-account-token-expiration"] = json!(expiration.to_string());
                }
                metadata["annotations"] = annotations;
                let mut pod = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": metadata,
                    "spec": {
                        "serviceAccountName": "workload",
                        "containers": containers,
                        "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
                        "futureSpecField": {"keep": ["me"]},
                    },
                    "status": {"phase": "Pending"},
                });
                if !init.is_empty() {
                    pod["spec"]["initContainers"] = Value::Array(init);
                }
                let reserved = layout.volume_name(&pod_name_for_hash(&pod));
                if volumes {
                    pod["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}, {"name": reserved.clone(), "emptyDir": {}}]);
                }
                // Mounts generated with the placeholder get the pod's reserved volume name.
                let text = pod.to_string().replace("RESERVED", &reserved);
                let pod = serde_json::from_str(&text).unwrap();
                Case { pod, native, layout, skipped: skipped.into_iter().collect() }
            },
        )
}

fn case_config(case: &Case) -> Config {
    ConfigArgs {
        native_sidecar: if case.native {
            NativeSidecar::True
        } else {
            NativeSidecar::False
        },
        token_path_layout: case.layout,
        ..args()
    }
    .into_config(None)
    .unwrap()
}

fn run(pod: &Value, sa: &ServiceAccount, config: &Config) -> Vec<PatchOperation> {
    mutate_with(pod, "apps", sa, config, &|| Ok(FIXED_HEADER.to_owned())).expect("generated pods are valid")
}

fn containers(pod: &Value) -> Vec<(String, &Value)> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|list| pod["spec"][*list].as_array())
        .flatten()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn patch_applies_adds_or_replaces_only_and_is_idempotent(case in case_strategy()) {
        let config = case_config(&case);
        let ops = run(&case.pod, &sa(), &config);
        prop_assert!(ops.iter().all(|op| matches!(op, PatchOperation::Add(_) | PatchOperation::Replace(_))), "{ops:?}");
        let mut out = case.pod.clone();
        prop_assert!(json_patch::patch(&mut out, &ops).is_ok());
        prop_assert_eq!(run(&out, &sa(), &config), vec![], "reinvocation must change nothing");
    }

    #[test]
    fn fields_the_webhook_does_not_own_are_preserved(case in case_strategy()) {
        let config = case_config(&case);
        let out = apply(&case.pod, &run(&case.pod, &sa(), &config));
        for key in ["status", "kind", "apiVersion"] {
            prop_assert_eq!(&out[key], &case.pod[key]);
        }
        for key in ["futureSpecField", "ephemeralContainers", "serviceAccountName"] {
            prop_assert_eq!(&out["spec"][key], &case.pod["spec"][key]);
        }
        for key in ["labels", "annotations", "name", "generateName"] {
            prop_assert_eq!(&out["metadata"][key], &case.pod["metadata"][key]);
        }
        let after = containers(&out);
        for (name, before) in containers(&case.pod) {
            let (_, now) = after.iter().find(|(n, _)| *n == name).expect("no container disappears");
            prop_assert_eq!(&now["futureContainerField"], &before["futureContainerField"]);
            prop_assert_eq!(&now["image"], &before["image"]);
            // User variables keep their place and value; the webhook only appends.
            if let Some(env) = before["env"].as_array() {
                prop_assert_eq!(&now["env"].as_array().unwrap()[..env.len()], &env[..]);
            }
        }
        let volumes = out["spec"]["volumes"].as_array().unwrap();
        if case.pod["spec"]["volumes"].is_array() {
            prop_assert_eq!(&volumes[0], &json!({"name": "data", "emptyDir": {}}));
        }
    }

    #[test]
    fn every_mutated_container_has_each_variable_once_and_the_mount(case in case_strategy()) {
        let config = case_config(&case);
        let out = apply(&case.pod, &run(&case.pod, &sa(), &config));
        let reserved = config.token_layout.volume_name(&pod_name_for_hash(&case.pod));
        let volumes = out["spec"]["volumes"].as_array().unwrap();
        prop_assert_eq!(volumes.iter().filter(|v| v["name"] == reserved.as_str()).count(), 1);
        for (name, container) in containers(&out) {
            let names = env_names(container);
            let unique: BTreeSet<_> = names.iter().collect();
            prop_assert_eq!(unique.len(), names.len(), "duplicate variable in {}: {:?}", name, names);
            let mounts = container["volumeMounts"].as_array().map(Vec::as_slice).unwrap_or_default();
            let ours = mounts.iter().filter(|m| m["name"] == reserved.as_str()).count();
            if case.skipped.contains(&name) {
                continue;
            }
            for var in ["AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"] {
                prop_assert!(names.iter().any(|n| n == var), "{} lacks {}", name, var);
            }
            prop_assert_eq!(ours, 1, "{} mounts", name);
            let mount = mounts.iter().find(|m| m["name"] == reserved.as_str()).unwrap();
            prop_assert_eq!(&mount["mountPath"], &json!(case.layout.mount_path()));
        }
    }
}
