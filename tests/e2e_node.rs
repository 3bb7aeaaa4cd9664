//! The chart's own images running on a real node (issue 14): a control plane
//! ([`TestBed::start_for_node`]), a node with containerd, runc, a CNI bridge, the kubelet and
//! kube-proxy ([`Node`]), the images built from the Dockerfile without a daemon ([`Images`]), the
//! chart installed by real Helm, and pods that the kubelet runs and that get access tokens from the
//! Entra stand-in (which verifies their projected tokens against the API server's JWKS).
//!
//! Needs root (network namespaces, mounts, cgroups) and builds the node's binaries and images on
//! first use, so it is `#[ignore]`d in the plain `cargo test` run and run by
//! `scripts/test.d/55-node-e2e.sh` (or `scripts/testbed/node-e2e`) with `--ignored`.

use azure_wi_test_support::e2e;

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use e2e::{
    entra::{Entra, FederatedCredential},
    node::{Images, Node},
    testbed::{ENTRA_AUDIENCE, TestBed, binary},
};
use k8s_openapi::api::{
    admissionregistration::v1::MutatingWebhookConfiguration,
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{ConfigMap, Namespace, Node as KubeNode, Pod, Secret, ServiceAccount},
    discovery::v1::EndpointSlice,
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client,
    api::{DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy},
};
use serde_json::{Value, json};

const TENANT: &str = "00000000-0000-0000-0000-00000000a001";
const CLIENT: &str = "00000000-0000-0000-0000-00000000c001";
const SYSTEM_NS: &str = "azure-workload-identity-system";
const APP_NS: &str = "node-app";
/// Where the webhook mounts the token volume (the file is `token/azure-identity-token` in it).
const TOKEN_MOUNT: &str = "/var/run/secrets/azure/wi";
const SCOPE: &str = "https://vault.azure.net/.default";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "in-cluster: needs root and the node test bed; run by scripts/test.d/55-node-e2e.sh"]
async fn chart_images_on_a_real_node_give_pods_tokens() {
    let mut images = Images::build();
    // Upstream's images and chart v1.6.0, for the switch (5).
    let upstream_chart = images.add_upstream();
    let mut node = Node::start_network();
    let bed = TestBed::start_for_node(node.host_ip).await;
    // The proxy sidecar calls the Entra stand-in itself: its image variant trusts the test CA.
    images.add_trusting(&bed.ca_pem, &bed.dir, &["proxy"]);
    node.join(&bed, &images).await;
    let client = bed.client().await;

    let trusted = FederatedCredential::for_service_account(
        TENANT,
        CLIENT,
        &bed.url,
        (APP_NS, "workload"),
        ENTRA_AUDIENCE,
    );
    let entra = Entra::start_on(bed.pki(), vec![trusted], node.host_ip.into()).await;

    // 1. The chart with defaults plus the tenant, our images and the cloud (Azure Stack, whose
    //    environment file names the stand-in as authority), installed by Helm.
    create(
        &client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NS}}),
    )
    .await;
    create(
        &client,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "azure-environment", "namespace": SYSTEM_NS},
               "data": {"env.json": json!({"activeDirectoryEndpoint": format!("{}/", entra.authority)}).to_string()}}),
    )
    .await;
    let (webhook_repo, webhook_tag) = images.repository_and_tag("webhook");
    let (proxy_repo, proxy_tag) = images.repository_and_tag("proxy-ca");
    let (init_repo, init_tag) = images.repository_and_tag("proxy-init");
    let values = json!({
        "azureTenantID": TENANT,
        "azureEnvironment": "AzureStackCloud",
        "image": {"repository": webhook_repo, "release": webhook_tag, "pullPolicy": "Never"},
        "proxy": {"image": {"repository": proxy_repo, "tag": proxy_tag},
                  "initImage": {"repository": init_repo, "tag": init_tag}},
        "extraEnv": [{"name": "AZURE_ENVIRONMENT_FILEPATH", "value": "/azure-environment/env.json"}],
        "extraVolumes": [{"name": "azure-environment", "configMap": {"name": "azure-environment"}}],
        "extraVolumeMounts": [{"name": "azure-environment", "mountPath": "/azure-environment", "readOnly": true}],
    });
    let values_file = bed.dir.join("values.json");
    std::fs::write(&values_file, values.to_string()).expect("values file");
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/azure-wi-webhook");
    helm_release(&bed, "install", chart, &values_file);
    wait_webhook_ready(&client, &node).await;
    // Self-managed certificates: the replicas wrote the Secret and the caBundle themselves.
    let secret = Api::<Secret>::namespaced(client.clone(), SYSTEM_NS)
        .get("azure-wi-webhook-server-cert")
        .await
        .expect("the webhook wrote its certificate Secret");
    let data = secret.data.unwrap_or_default();
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(
            data.contains_key(key),
            "Secret azure-wi-webhook-server-cert has no {key}"
        );
    }
    let mwc = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get("azure-wi-webhook-mutating-webhook-configuration")
        .await
        .expect("the chart's MutatingWebhookConfiguration");
    let bundle = mwc.webhooks.unwrap_or_default()[0]
        .client_config
        .ca_bundle
        .clone()
        .map(|b| b.0)
        .unwrap_or_default();
    let ca = String::from_utf8_lossy(&data["ca.crt"].0).trim().to_string();
    assert!(
        !ca.is_empty() && String::from_utf8_lossy(&bundle).contains(&ca),
        "the caBundle holds the CA of the Secret the webhook wrote"
    );

    // 2. The workload: a labelled pod without fsGroup and one with, both non-root.
    create(
        &client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APP_NS}}),
    )
    .await;
    assert!(
        wait_for("the default ServiceAccount", Duration::from_secs(60), || async {
            Api::<ServiceAccount>::namespaced(client.clone(), APP_NS)
                .get_opt("default")
                .await
                .ok()
                .flatten()
                .is_some()
        })
        .await,
        "kube-controller-manager created no default ServiceAccount in {APP_NS} in 60 s:\n{}",
        node.log_tail("kube-controller-manager", 20)
    );
    create(
        &client,
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "workload", "namespace": APP_NS,
                            "annotations": {"azure.workload.identity/client-id": CLIENT}}}),
    )
    .await;
    create(
        &client,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "entra-ca", "namespace": APP_NS},
               "data": {"ca.crt": bed.ca_pem}}),
    )
    .await;
    let webhook_image = images.reference("webhook");
    for (name, fs_group) in [("no-fsgroup", None), ("fsgroup", Some(2000))] {
        let mut security = json!({"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000});
        if let Some(g) = fs_group {
            security["fsGroup"] = json!(g);
        }
        let container = |name: &str, args: Vec<&str>| {
            json!({"name": name, "image": webhook_image, "imagePullPolicy": "Never",
                   "command": ["/azure-wi"], "args": args,
                   "terminationMessagePolicy": "FallbackToLogsOnError",
                   "env": [{"name": "SSL_CERT_FILE", "value": "/entra-ca/ca.crt"}],
                   "volumeMounts": [{"name": "entra-ca", "mountPath": "/entra-ca", "readOnly": true}]})
        };
        let token_file = format!("{TOKEN_MOUNT}/token/azure-identity-token");
        create(
            &client,
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": APP_NS,
                                "labels": {"azure.workload.identity/use": "true"},
                                "annotations": {"azure.workload.identity/skip-containers": "skipped-env;skipped-mount"}},
                   "spec": {"serviceAccountName": "workload", "restartPolicy": "Never",
                            "securityContext": security,
                            "volumes": [{"name": "entra-ca", "configMap": {"name": "entra-ca"}}],
                            "containers": [
                                container("app", vec!["token", "--credential", "workload-identity", SCOPE]),
                                // Skipped: no AZURE_* variables, so workload identity is unavailable...
                                container("skipped-env", vec!["token", "--credential", "workload-identity", SCOPE]),
                                // ...and no token volume either.
                                container("skipped-mount", vec!["token", "--credential", "workload-identity",
                                    "--client-id", CLIENT, "--tenant-id", TENANT, "--token-file", &token_file, SCOPE]),
                            ]}}),
        )
        .await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), APP_NS);
    for name in ["no-fsgroup", "fsgroup"] {
        let pod = wait_for_value(
            &format!("pod {name} to finish"),
            Duration::from_secs(180),
            || async {
                let pod = pods.get(name).await.ok()?;
                let statuses = pod.status.as_ref()?.container_statuses.clone()?;
                (statuses.len() == 3
                    && statuses
                        .iter()
                        .all(|s| s.state.as_ref().is_some_and(|s| s.terminated.is_some())))
                .then_some(pod)
            },
        )
        .await;
        let Some(pod) = pod else {
            panic!("{}", diagnose(&client, &node, name).await)
        };
        let spec = serde_json::to_value(pod.spec.as_ref().expect("spec")).expect("spec json");
        let status = serde_json::to_value(pod.status.as_ref().expect("status")).expect("status json");
        let terminated = |c: &str| -> Value {
            status["containerStatuses"]
                .as_array()
                .expect("statuses")
                .iter()
                .find(|s| s["name"] == c)
                .map(|s| s["state"]["terminated"].clone())
                .unwrap_or_else(|| panic!("no status of container {c}"))
        };
        let env_names = |c: &str| -> Vec<String> {
            let container = spec["containers"]
                .as_array()
                .expect("containers")
                .iter()
                .find(|x| x["name"] == c)
                .expect("container");
            container["env"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .map(|v| v["name"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mounts = |c: &str| -> Vec<String> {
            let container = spec["containers"]
                .as_array()
                .expect("containers")
                .iter()
                .find(|x| x["name"] == c)
                .expect("container");
            container["volumeMounts"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .map(|v| v["mountPath"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        // The application container: mutated, and the token it read was accepted by the stand-in.
        let app = terminated("app");
        assert_eq!(
            app["exitCode"], 0,
            "pod {name}: azure-wi token failed in the app container: {app}"
        );
        assert!(
            env_names("app").iter().any(|n| n == "AZURE_FEDERATED_TOKEN_FILE"),
            "pod {name}: app not mutated"
        );
        assert!(
            mounts("app").iter().any(|m| m == TOKEN_MOUNT),
            "pod {name}: app has no token mount"
        );
        // The skipped containers: neither variables nor mount, seen from inside the container too.
        for c in ["skipped-env", "skipped-mount"] {
            assert!(
                !env_names(c).iter().any(|n| n.starts_with("AZURE_")),
                "pod {name}: {c} got AZURE_ variables"
            );
            assert!(
                !mounts(c).iter().any(|m| m == TOKEN_MOUNT),
                "pod {name}: {c} got the token mount"
            );
        }
        let env = terminated("skipped-env");
        assert_eq!(
            env["exitCode"], 3,
            "pod {name}: skipped-env should find no workload identity: {env}"
        );
        let mount = terminated("skipped-mount");
        assert_ne!(
            mount["exitCode"], 0,
            "pod {name}: skipped-mount read a token file: {mount}"
        );
        assert!(
            mount["message"]
                .as_str()
                .unwrap_or("")
                .contains("azure-identity-token"),
            "pod {name}: skipped-mount should fail on the missing token file: {mount}"
        );
    }
    let issued: Vec<_> = entra
        .issued()
        .into_iter()
        .filter(|i| i.client_id == CLIENT && i.scope == SCOPE)
        .collect();
    assert_eq!(
        issued.len(),
        2,
        "one access token per pod; refused: {:?}",
        entra.refused()
    );

    // 3. Proxy mode, native sidecar (the default on this 1.37 API server), with a pod-level
    //    runAsUser: the application asks IMDS at 169.254.169.254 and the redirect hands it to the
    //    proxy, which exchanges the projected token at the stand-in.
    let pod = proxy_pod(&client, &node, &entra, webhook_image, "proxy-native", None).await;
    let spec = serde_json::to_value(pod.spec.as_ref().expect("spec")).expect("spec json");
    let init: Vec<&str> = spec["initContainers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let mut sorted = init.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["azwi-proxy", "azwi-proxy-init"],
        "native layout: init containers {init:?}"
    );
    let sidecar = spec["initContainers"]
        .as_array()
        .expect("init containers")
        .iter()
        .find(|c| c["name"] == "azwi-proxy")
        .expect("sidecar");
    assert_eq!(
        sidecar["restartPolicy"], "Always",
        "the proxy is a native sidecar"
    );
    let status = serde_json::to_value(pod.status.as_ref().expect("status")).expect("status json");
    let sidecar_started = status["initContainerStatuses"]
        .as_array()
        .expect("init statuses")
        .iter()
        .find(|c| c["name"] == "azwi-proxy")
        .map(|c| c["state"].to_string())
        .expect("sidecar status");
    let app_started = status["containerStatuses"][0]["state"]["terminated"]["startedAt"]
        .as_str()
        .expect("app start")
        .to_string();
    let sidecar_start = started_at(&sidecar_started).expect("sidecar startedAt");
    assert!(
        sidecar_start <= app_started,
        "the sidecar ({sidecar_start}) starts before the application ({app_started})"
    );

    // 4. identity-endpoint mode: no iptables, no NET_ADMIN; IDENTITY_ENDPOINT and IDENTITY_HEADER.
    let pod = proxy_pod(
        &client,
        &node,
        &entra,
        webhook_image,
        "identity-endpoint",
        Some("identity-endpoint"),
    )
    .await;
    let spec = serde_json::to_value(pod.spec.as_ref().expect("spec")).expect("spec json");
    let init: Vec<&str> = spec["initContainers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        init,
        ["azwi-proxy"],
        "identity-endpoint: only the sidecar, no iptables container"
    );
    assert!(
        !spec.to_string().contains("NET_ADMIN"),
        "identity-endpoint: nothing asks for NET_ADMIN"
    );

    // 3b. The classic layout (`nativeSidecar: false`): the proxy is a regular container.
    let mut classic = values.clone();
    classic["nativeSidecar"] = json!("false");
    std::fs::write(&values_file, classic.to_string()).expect("values file");
    helm_release(&bed, "upgrade", chart, &values_file);
    wait_webhook_ready(&client, &node).await;
    let pod = proxy_pod(&client, &node, &entra, webhook_image, "proxy-classic", None).await;
    let spec = serde_json::to_value(pod.spec.as_ref().expect("spec")).expect("spec json");
    let names: Vec<&str> = spec["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"azwi-proxy"),
        "classic layout: the proxy is a container: {names:?}"
    );

    // 6. Disruptions while a loop admits a labelled pod every 100 ms (server-side dry run: the
    //    whole admission chain, our webhook through its Service, no pod to schedule): one webhook
    //    pod deleted, then the node drained of one replica by eviction within the PDB
    //    (minAvailable 1: the second eviction is refused while the first is replaced).
    let admissions = AdmissionLoop::start(&client);
    let webhook_pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NS);
    let before = wait_serving(&client, &node, &[]).await;
    admissions.wait_for_more(10, "before the disruption").await;
    webhook_pods
        .delete(&before[0], &Default::default())
        .await
        .expect("delete a webhook pod");
    let after_delete = wait_serving(&client, &node, &before[..1]).await;
    webhook_pods
        .evict(&after_delete[0], &EvictParams::default())
        .await
        .expect("the first eviction is allowed by the PDB");
    // A drain evicts the next replica too: the PDB (minAvailable 1, disruptionsAllowed now 0: one
    // replica is terminating, its replacement not Ready yet) refuses it with 429 Too Many Requests,
    // the Eviction API's documented answer when a budget would be violated; `kubectl drain` retries
    // it until the replacement is Ready. kube's default client retries 429 itself (up to 15 times,
    // backing off), which hid that answer and returned the 201 of a later, allowed retry: this
    // eviction goes through a client without that retry, so the refusal is what is seen.
    let no_retry = {
        let kubeconfig = kube::config::Kubeconfig::read_from(&bed.kubeconfig).expect("kubeconfig");
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("config");
        config.default_retry = false;
        Client::try_from(config).expect("client")
    };
    let second = Api::<Pod>::namespaced(no_retry, SYSTEM_NS)
        .evict(&after_delete[1], &EvictParams::default())
        .await;
    assert!(
        matches!(&second, Err(kube::Error::Api(e)) if e.code == 429),
        "the PDB should refuse the second eviction with 429: {second:?}"
    );
    let kept = webhook_pods.get(&after_delete[1]).await.expect("get");
    assert!(
        kept.metadata.deletion_timestamp.is_none(),
        "the refused eviction deleted {}",
        after_delete[1]
    );
    wait_serving(&client, &node, &after_delete[..1]).await;
    let ok = admissions_after(admissions, 10, "the disruptions").await;
    assert!(ok >= 20, "only {ok} admissions ran");

    // 5. The switch from upstream (and back) under a stream of labelled pods.
    helm(
        &bed,
        &[
            "uninstall",
            "azure-wi",
            "--namespace",
            SYSTEM_NS,
            "--wait",
            "--timeout",
            "3m",
        ],
    );
    switch_from_upstream(&client, &bed, &node, &images, &upstream_chart, &values).await;
}

/// Issue 14, item 5: upstream's chart v1.6.0 with upstream's images and a values file serves; then
/// `helm upgrade` to our chart with the same values file (the image values pointed at ours), then
/// `helm rollback` to upstream, while a labelled pod is admitted every 100 ms. `base` is the values
/// file of the other steps (tenant, cloud, extra environment and volumes), without its images.
async fn switch_from_upstream(
    client: &Client,
    bed: &TestBed,
    node: &Node,
    images: &Images,
    upstream_chart: &std::path::Path,
    base: &Value,
) {
    let started = Instant::now();
    let release = "workload-identity-webhook"; // the release name of upstream's install guide
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/azure-wi-webhook");
    let (up_repo, up_tag) = images.repository_and_tag("upstream-webhook");
    // An upstream values file: its keys only, the image a mirror of upstream's path.
    let mut upstream_values = json!({
        "azureTenantID": base["azureTenantID"],
        "azureEnvironment": base["azureEnvironment"],
        "extraEnv": base["extraEnv"],
        "extraVolumes": base["extraVolumes"],
        "extraVolumeMounts": base["extraVolumeMounts"],
        "image": {"repository": up_repo, "release": up_tag, "pullPolicy": "Never"},
    });
    let values_file = bed.dir.join("switch-values.json");
    std::fs::write(&values_file, upstream_values.to_string()).expect("values file");
    let values_arg = values_file.display().to_string();
    let chart_arg = upstream_chart.display().to_string();
    helm(
        bed,
        &[
            "install",
            release,
            &chart_arg,
            "--namespace",
            SYSTEM_NS,
            "--values",
            &values_arg,
        ],
    );
    wait_webhook_ready(client, node).await;
    assert_webhook_images(client, images.reference("upstream-webhook")).await;
    eprintln!("switch: upstream's chart serving after {:?}", started.elapsed());

    // What upstream's certificate rotation wrote: a PKCS#1 CA key, the caBundle of its CA.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NS);
    let upstream_secret = secrets
        .get("azure-wi-webhook-server-cert")
        .await
        .expect("upstream's webhook filled its Secret")
        .data
        .unwrap_or_default();
    let ca_key = String::from_utf8_lossy(&upstream_secret["ca.key"].0).into_owned();
    assert!(
        ca_key.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "upstream's CA key is PKCS#1"
    );
    let (ca_bundle, secret_data) = certificates(client).await;
    assert_eq!(
        ca_bundle, upstream_secret["ca.crt"].0,
        "the caBundle is upstream's CA"
    );

    // The same values file, unchanged, is refused by our chart (upstream's image would run
    // /manager with our arguments), with what to set; the release is left as it was.
    let upgrade_to_ours = [
        "upgrade",
        release,
        chart,
        "--namespace",
        SYSTEM_NS,
        "--values",
        &values_arg,
    ];
    let generation = webhook_generation(client).await;
    let refused = helm_output(bed, &upgrade_to_ours);
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && message.contains(&format!("image.repository \"{up_repo}\" is upstream's"))
            && message.contains("Set image.repository to ghcr.io/azure-wi/webhook")
            && message.contains("remove image.release"),
        "our chart with upstream's image values: {message}"
    );
    assert_eq!(
        webhook_generation(client).await,
        generation,
        "the refused upgrade changed the Deployment"
    );
    let history = helm_output(bed, &["history", release, "--namespace", SYSTEM_NS, "-o", "json"]);
    let revisions: Value = serde_json::from_slice(&history.stdout).expect("helm history -o json");
    assert_eq!(
        revisions.as_array().map(Vec::len),
        Some(1),
        "the refused upgrade left a revision: {revisions}"
    );

    // Upgrade: the same values file with the image values pointed at ours.
    let (repo, tag) = images.repository_and_tag("webhook");
    let (proxy_repo, proxy_tag) = images.repository_and_tag("proxy");
    let (init_repo, init_tag) = images.repository_and_tag("proxy-init");
    upstream_values["image"] = json!({"repository": repo, "release": tag, "pullPolicy": "Never"});
    upstream_values["proxy"] = json!({"image": {"repository": proxy_repo, "tag": proxy_tag},
                                      "initImage": {"repository": init_repo, "tag": init_tag}});
    std::fs::write(&values_file, upstream_values.to_string()).expect("values file");
    let certs = CertificateWatch::start(client.clone());
    let admissions = AdmissionLoop::start(client);
    let upgrade = Instant::now();
    // The runbook's switch without a refused pod (docs/install.md). Upstream's replicas stop
    // listening the moment they get SIGTERM, before the API server has seen them leave the
    // Service's endpoints, so a rollout that stops them can refuse an admission. They are
    // detached from their Deployment first (the rollout then has none of them to stop), keep
    // serving beside ours, and are stopped only once they are out of the endpoints.
    let upstream_pods = detach_replicas(client).await;
    helm(bed, &upgrade_to_ours);
    wait_webhook_ready(client, node).await;
    retire_detached(client, &upstream_pods).await;
    assert_webhook_images(client, images.reference("webhook")).await;
    eprintln!("switch: our chart rolled out in {:?}", upgrade.elapsed());
    admissions_after(admissions, 20, "the upgrade to our chart").await;

    // Upstream's Secret is kept as it was, and the caBundle never changed.
    let kept = secrets
        .get("azure-wi-webhook-server-cert")
        .await
        .expect("Secret")
        .data
        .unwrap_or_default();
    assert_eq!(kept, upstream_secret, "our webhook rewrote upstream's Secret");
    certs
        .assert_unchanged(&ca_bundle, &secret_data, "the upgrade")
        .await;

    // Rollback to upstream's revision (1): again no failed or uninjected admission.
    let certs = CertificateWatch::start(client.clone());
    let admissions = AdmissionLoop::start(client);
    let rollback = Instant::now();
    helm(bed, &["rollback", release, "1", "--namespace", SYSTEM_NS]);
    wait_webhook_ready(client, node).await;
    assert_webhook_images(client, images.reference("upstream-webhook")).await;
    eprintln!("switch: rolled back to upstream in {:?}", rollback.elapsed());
    admissions_after(admissions, 20, "the rollback to upstream").await;
    certs
        .assert_unchanged(&ca_bundle, &secret_data, "the rollback")
        .await;
    eprintln!("switch: {:?} in all", started.elapsed());
}

/// The runbook's first step: deletes the webhook Deployment and its ReplicaSets with
/// `propagationPolicy: Orphan` (`kubectl delete --cascade=orphan`), so that their pods keep
/// running and serving through the Service, owned by nothing; returns the pods' names. The
/// Deployment that `helm upgrade` then creates again does not adopt them (its ReplicaSet's
/// selector has its own `pod-template-hash`).
async fn detach_replicas(client: &Client) -> Vec<String> {
    let orphan = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), SYSTEM_NS);
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), SYSTEM_NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NS);
    let names = pod_names(&pods).await;
    assert_eq!(
        names.len(),
        2,
        "two webhook replicas before the switch: {names:?}"
    );
    deployments
        .delete("azure-wi-webhook-controller-manager", &orphan)
        .await
        .expect("delete the Deployment, orphaning its ReplicaSet");
    let gone = wait_for(
        "the Deployment to be deleted",
        Duration::from_secs(60),
        || async {
            matches!(
                deployments.get_opt("azure-wi-webhook-controller-manager").await,
                Ok(None)
            )
        },
    )
    .await;
    assert!(gone, "the orphaned Deployment was not deleted in 60 s");
    sets.delete_collection(&orphan, &ListParams::default())
        .await
        .expect("delete the ReplicaSets, orphaning their pods");
    let gone = wait_for(
        "the ReplicaSets to be deleted",
        Duration::from_secs(60),
        || async {
            sets.list(&ListParams::default())
                .await
                .is_ok_and(|l| l.items.is_empty())
        },
    )
    .await;
    assert!(gone, "the orphaned ReplicaSets were not deleted in 60 s");
    let owned: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| !o.is_empty())
        })
        .filter_map(|p| p.metadata.name)
        .collect();
    assert!(
        owned.is_empty(),
        "pods still owned after the orphaning: {owned:?}"
    );
    assert_eq!(
        pod_names(&pods).await,
        names,
        "the detached replicas kept running"
    );
    names
}

/// The runbook's last step: takes the detached pods out of the Service (removes the
/// `azure-workload-identity.io/system` label its selector needs), waits until the Service's
/// EndpointSlices no longer list them, gives the API server's resolver a moment to follow, and
/// only then deletes them.
async fn retire_detached(client: &Client, names: &[String]) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NS);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), SYSTEM_NS);
    let unlabel = json!({"metadata": {"labels": {"azure-workload-identity.io/system": null}}});
    for name in names {
        pods.patch(name, &PatchParams::default(), &Patch::Merge(&unlabel))
            .await
            .expect("remove the Service's label from a detached pod");
    }
    let selector =
        ListParams::default().labels("kubernetes.io/service-name=azure-wi-webhook-webhook-service");
    let left = wait_for(
        "the detached pods to leave the endpoints",
        Duration::from_secs(60),
        || async {
            let Ok(list) = slices.list(&selector).await else {
                return false;
            };
            let listed: Vec<String> = list
                .items
                .iter()
                .flat_map(|s| &s.endpoints)
                .filter_map(|e| e.target_ref.as_ref()?.name.clone())
                .collect();
            !listed.is_empty() && !listed.iter().any(|n| names.contains(n))
        },
    )
    .await;
    assert!(
        left,
        "the detached pods {names:?} still in the Service's endpoints after 60 s"
    );
    // The API server resolves the Service from its own informer, which follows the
    // EndpointSlice within milliseconds; the runbook allows 10 s for kube-proxy on other paths.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in names {
        pods.delete(name, &DeleteParams::default())
            .await
            .expect("delete a detached pod");
    }
    let gone = wait_for(
        "the detached pods to be gone",
        Duration::from_secs(120),
        || async {
            let left = pod_names(&pods).await;
            !left.iter().any(|n| names.contains(n))
        },
    )
    .await;
    assert!(gone, "the detached pods {names:?} were not deleted in 120 s");
}

/// The names of the pods in the webhook's namespace, sorted.
async fn pod_names(pods: &Api<Pod>) -> Vec<String> {
    let mut names: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .expect("list the webhook's pods")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

/// Lets `admissions` run until `more` further admissions have been answered (after a rollout
/// only the new replicas serve), stops it and asserts that every admission during and after
/// `what` succeeded, mutated. Returns how many there were.
async fn admissions_after(admissions: AdmissionLoop, more: usize, what: &str) -> usize {
    admissions.wait_for_more(more, &format!("after {what}")).await;
    let (ok, failures) = admissions.stop().await;
    eprintln!(
        "admissions during and after {what}: {ok} mutated, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} admissions failed during {what}: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(5)]
    );
    ok
}

/// The MutatingWebhookConfiguration's caBundle and the certificate Secret's data (JSON). (Not its
/// resourceVersion: Helm's upgrade relabels the Secret, which changes nothing the webhooks use.)
async fn certificates(client: &Client) -> (Vec<u8>, String) {
    read_certificates(client)
        .await
        .expect("read the MutatingWebhookConfiguration and the certificate Secret")
}

/// [`certificates`], or None when a read fails.
async fn read_certificates(client: &Client) -> Option<(Vec<u8>, String)> {
    let mwc = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get("azure-wi-webhook-mutating-webhook-configuration")
        .await
        .ok()?;
    let bundle = mwc.webhooks.unwrap_or_default()[0]
        .client_config
        .ca_bundle
        .clone()
        .map(|b| b.0)
        .unwrap_or_default();
    let secret = Api::<Secret>::namespaced(client.clone(), SYSTEM_NS)
        .get("azure-wi-webhook-server-cert")
        .await
        .ok()?;
    Some((bundle, serde_json::to_string(&secret.data).unwrap_or_default()))
}

/// Reads the caBundle and the Secret's data every 100 ms while a rollout runs (old and new
/// replicas serving side by side): every value seen, in order.
struct CertificateWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Vec<u8>, String)>>,
}

impl CertificateWatch {
    fn start(client: Client) -> CertificateWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut seen: Vec<(Vec<u8>, String)> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    // A failed read is no observation (the API server is under load).
                    if let Some(now) = read_certificates(&client).await
                        && seen.last() != Some(&now)
                    {
                        seen.push(now);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                seen
            }
        });
        CertificateWatch { stop, task }
    }

    /// Stops and asserts that only `ca_bundle` and the Secret data `data` were seen.
    async fn assert_unchanged(self, ca_bundle: &[u8], data: &str, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.task.await.expect("certificate watch");
        let changed: Vec<String> = seen
            .iter()
            .filter(|(b, v)| b != ca_bundle || v != data)
            .map(|(b, v)| format!("Secret data of {} bytes, caBundle of {} bytes", v.len(), b.len()))
            .collect();
        assert!(
            !seen.is_empty() && changed.is_empty(),
            "during {what} the caBundle or the certificate Secret changed: {changed:?}"
        );
    }
}

/// Asserts that every webhook pod (not terminating) runs `image`.
async fn assert_webhook_images(client: &Client, image: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NS);
    let list = pods.list(&Default::default()).await.expect("list").items;
    let images: Vec<String> = list
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
        .collect();
    assert!(
        !images.is_empty() && images.iter().all(|i| i == image),
        "webhook pods run {images:?}, expected {image}"
    );
}

/// The webhook Deployment's generation.
async fn webhook_generation(client: &Client) -> Option<i64> {
    Api::<Deployment>::namespaced(client.clone(), SYSTEM_NS)
        .get("azure-wi-webhook-controller-manager")
        .await
        .expect("the webhook Deployment")
        .metadata
        .generation
}

/// Waits until two webhook pods, none of them named in `gone`, are Ready and not terminating,
/// and the PDB allows one disruption again; returns their names.
async fn wait_serving(client: &Client, node: &Node, gone: &[String]) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NS);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), SYSTEM_NS);
    let serving = wait_for_value("two serving webhook pods", Duration::from_secs(180), || async {
        let list = pods.list(&Default::default()).await.ok()?.items;
        let ready: Vec<String> = list
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .filter_map(|p| p.metadata.name)
            .filter(|n| !gone.contains(n))
            .collect();
        let pdb = pdbs.get("azure-wi-webhook-controller-manager").await.ok()?;
        let allowed = pdb.status.map(|s| s.disruptions_allowed).unwrap_or(0);
        (ready.len() == 2 && allowed == 1).then_some(ready)
    })
    .await;
    serving.unwrap_or_else(|| {
        panic!(
            "no two serving webhook pods (without {gone:?}) and a PDB allowing one disruption in 180 s; kubelet:\n{}",
            node.log_tail("kubelet", 20)
        )
    })
}

/// [`admit_continuously`] in a task: a labelled pod admitted every 100 ms until stopped.
struct AdmissionLoop {
    stop: Arc<AtomicBool>,
    mutated: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl AdmissionLoop {
    fn start(client: &Client) -> AdmissionLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let mutated = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(admit_continuously(client.clone(), stop.clone(), mutated.clone()));
        AdmissionLoop { stop, mutated, task }
    }

    /// Waits (at most 60 s) until `n` more admissions were mutated, e.g. by the replicas that
    /// serve now; panics otherwise.
    async fn wait_for_more(&self, n: usize, what: &str) {
        let target = self.mutated.load(Ordering::Relaxed) + n;
        let reached = wait_for(what, Duration::from_secs(60), || async {
            self.mutated.load(Ordering::Relaxed) >= target || self.task.is_finished()
        })
        .await;
        assert!(
            reached && !self.task.is_finished(),
            "fewer than {n} admissions in 60 s {what}"
        );
    }

    /// Stops the loop: (admissions mutated, errors of the others).
    async fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("admission loop")
    }
}

/// Creates a labelled pod (server-side dry run) every 100 ms until `stop`; counts the admitted and
/// mutated ones in `mutated` and returns that count and the errors of the others.
async fn admit_continuously(
    client: Client,
    stop: Arc<AtomicBool>,
    mutated: Arc<AtomicUsize>,
) -> (usize, Vec<String>) {
    let pods: Api<Pod> = Api::namespaced(client, APP_NS);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"generateName": "loop-", "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": "workload",
                 "containers": [{"name": "app", "image": "azwi.testbed/none:0"}]}}))
    .expect("pod");
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let (mut ok, mut failures) = (0, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        match pods.create(&params, &pod).await {
            Ok(created) => {
                let is_mutated = created.spec.as_ref().is_some_and(|s| {
                    s.containers[0]
                        .env
                        .as_ref()
                        .is_some_and(|e| e.iter().any(|v| v.name == "AZURE_FEDERATED_TOKEN_FILE"))
                });
                if is_mutated {
                    ok += 1;
                    mutated.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.push("admitted without injection".to_string());
                }
            }
            Err(e) => failures.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100).saturating_sub(started.elapsed())).await;
    }
    (ok, failures)
}

/// Creates a labelled pod with the proxy injected (`mode`: the proxy-mode annotation) whose
/// application asks for a token as a managed identity, waits for the application to finish,
/// and checks it got a token from the stand-in (through the proxy).
async fn proxy_pod(
    client: &Client,
    node: &Node,
    entra: &Entra,
    image: &str,
    name: &str,
    mode: Option<&str>,
) -> Pod {
    let before = entra.issued().len();
    let mut annotations = json!({"azure.workload.identity/inject-proxy-sidecar": "true"});
    match mode {
        Some(mode) => annotations["azure.workload.identity/proxy-mode"] = json!(mode),
        // An application that knows only IMDS: without the AZURE_* variables (a managed identity
        // credential prefers the token exchange when they are set), so its request must go to
        // 169.254.169.254 and through the redirect.
        None => annotations["azure.workload.identity/skip-containers"] = json!("app"),
    }
    create(
        client,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": APP_NS,
                            "labels": {"azure.workload.identity/use": "true"}, "annotations": annotations},
               "spec": {"serviceAccountName": "workload", "restartPolicy": "Never",
                        // A pod-level user: the proxy runs as it too (no runAsUser of its own).
                        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                        "containers": [{"name": "app", "image": image, "imagePullPolicy": "Never",
                                        "command": ["/azure-wi"],
                                        "args": ["token", "--credential", "managed-identity", SCOPE],
                                        "terminationMessagePolicy": "FallbackToLogsOnError"}]}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), APP_NS);
    let pod = wait_for_value(&format!("pod {name}"), Duration::from_secs(180), || async {
        let pod = pods.get(name).await.ok()?;
        let statuses = pod.status.as_ref()?.container_statuses.clone()?;
        statuses
            .iter()
            .any(|s| s.name == "app" && s.state.as_ref().is_some_and(|s| s.terminated.is_some()))
            .then_some(pod)
    })
    .await;
    let Some(pod) = pod else {
        panic!("{}", diagnose(client, node, name).await)
    };
    let status = serde_json::to_value(pod.status.as_ref().expect("status")).expect("status json");
    let app = status["containerStatuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .find(|c| c["name"] == "app")
        .expect("app")
        .clone();
    assert_eq!(
        app["state"]["terminated"]["exitCode"], 0,
        "pod {name}: the application got no token through the proxy: {}\nstatus: {status}",
        app["state"]["terminated"]
    );
    assert_eq!(
        entra.issued().len(),
        before + 1,
        "pod {name}: one exchange at the stand-in; refused: {:?}",
        entra.refused()
    );
    pod
}

fn started_at(state: &str) -> Option<String> {
    let v: Value = serde_json::from_str(state).ok()?;
    ["running", "terminated"]
        .iter()
        .find_map(|k| v[k]["startedAt"].as_str().map(str::to_string))
}

/// Waits until the webhook Deployment is rolled out: all replicas of its current template ready.
async fn wait_webhook_ready(client: &Client, node: &Node) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), SYSTEM_NS);
    let ready = wait_for(
        "the webhook Deployment to be ready",
        Duration::from_secs(240),
        || async {
            // Rolled out: every replica of the current template ready, no old one left.
            let Ok(d) = deployments.get("azure-wi-webhook-controller-manager").await else {
                return false;
            };
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let Some(st) = d.status.as_ref() else {
                return false;
            };
            st.observed_generation == d.metadata.generation
                && st.updated_replicas == Some(want)
                && st.ready_replicas == Some(want)
                && st.replicas == Some(want)
        },
    )
    .await;
    if !ready {
        let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NS);
        let list = pods
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let states: Vec<Value> = list
            .iter()
            .map(|p| json!({"name": p.metadata.name, "status": p.status}))
            .collect();
        panic!(
            "webhook not ready in 240 s; pods: {}\nkubelet:\n{}",
            serde_json::to_string_pretty(&states).unwrap_or_default(),
            node.log_tail("kubelet", 30)
        );
    }
}

/// Why a pod did not finish: its status (phase, reason, container states), the node's conditions
/// (a DiskPressure or MemoryPressure taint keeps new pods off the node) and the kubelet's log.
async fn diagnose(client: &Client, node: &Node, name: &str) -> String {
    let pod = Api::<Pod>::namespaced(client.clone(), APP_NS).get(name).await;
    let pod_status = match pod {
        Ok(pod) => serde_json::to_string(&pod.status).unwrap_or_default(),
        Err(e) => format!("(cannot read the pod: {e})"),
    };
    let conditions = match Api::<KubeNode>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(nodes) => nodes
            .items
            .iter()
            .flat_map(|n| n.status.iter().flat_map(|s| s.conditions.iter().flatten()))
            .map(|c| {
                format!(
                    "{}={} ({})",
                    c.type_,
                    c.status,
                    c.message.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => format!("(cannot list the nodes: {e})"),
    };
    format!(
        "pod {name} did not finish in 180 s\npod status: {pod_status}\nnode conditions: {conditions}\nkubelet:\n{}",
        node.log_tail("kubelet", 40)
    )
}

async fn create(client: &Client, object: Value) {
    let kind = object["kind"].as_str().expect("kind").to_string();
    let ns = object["metadata"]["namespace"].as_str().map(str::to_string);
    let pp = PostParams::default();
    let result = match (kind.as_str(), ns) {
        ("Namespace", _) => Api::<Namespace>::all(client.clone())
            .create(&pp, &serde_json::from_value(object).expect("namespace"))
            .await
            .map(|_| ()),
        ("ConfigMap", Some(ns)) => Api::<ConfigMap>::namespaced(client.clone(), &ns)
            .create(&pp, &serde_json::from_value(object).expect("configmap"))
            .await
            .map(|_| ()),
        ("ServiceAccount", Some(ns)) => Api::<ServiceAccount>::namespaced(client.clone(), &ns)
            .create(&pp, &serde_json::from_value(object).expect("serviceaccount"))
            .await
            .map(|_| ()),
        ("Pod", Some(ns)) => Api::<Pod>::namespaced(client.clone(), &ns)
            .create(&pp, &serde_json::from_value(object).expect("pod"))
            .await
            .map(|_| ()),
        (other, _) => panic!("create: unsupported kind {other}"),
    };
    result.unwrap_or_else(|e| panic!("create {kind}: {e}"));
}

/// Polls `check` every 250 ms until it is true or `deadline` passes; returns whether it became true.
async fn wait_for<F, Fut>(_what: &str, deadline: Duration, check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_for_value(_what, deadline, || async { check().await.then_some(()) })
        .await
        .is_some()
}

/// Polls `check` every 250 ms until it returns a value or `deadline` passes.
async fn wait_for_value<T, F, Fut>(_what: &str, deadline: Duration, check: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    while started.elapsed() < deadline {
        if let Some(v) = check().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// `helm install|upgrade azure-wi CHART --values FILE` into the webhook's namespace; panics with
/// Helm's output when it fails.
fn helm_release(bed: &TestBed, verb: &str, chart: &str, values_file: &std::path::Path) {
    let values = values_file.display().to_string();
    helm(
        bed,
        &[
            verb,
            "azure-wi",
            chart,
            "--namespace",
            SYSTEM_NS,
            "--values",
            &values,
        ],
    );
}

/// Runs helm with `args` against the test bed; panics with Helm's output when it fails.
fn helm(bed: &TestBed, args: &[&str]) {
    let out = helm_output(bed, args);
    assert!(
        out.status.success(),
        "helm {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs helm with `args` against the test bed.
fn helm_output(bed: &TestBed, args: &[&str]) -> std::process::Output {
    Command::new(binary("helm"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&bed.kubeconfig)
        .output()
        .expect("run helm")
}
