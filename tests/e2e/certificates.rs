//! End to end: self-managed certificates. The webhook creates its CA and serving certificate,
//! stores them in the Secret, writes the CA into the MutatingWebhookConfiguration's `caBundle`,
//! and the API server's calls succeed; after a forced rotation (the serving certificate in the
//! Secret is replaced by one close to expiry, and a new replica takes over) they still succeed,
//! with no failed admission in between.
//!
//! Switching from upstream: upstream's real webhook (v1.6.0, its own certificate rotation) writes
//! the Secret and the `caBundle` and serves; ours starts next to it with that Secret, keeps the
//! Secret and the `caBundle` byte for byte (upstream's CA key is PKCS#1) and takes the traffic, with
//! no failed admission. And back (`helm rollback`): upstream's webhook starts with the Secret ours
//! wrote, keeps it and admits. A CA another writer puts into the Secret is served within seconds.
//!
//! The API server calls the webhook by its in-cluster name
//! (`azure-wi-webhook-webhook-service.azure-workload-identity-system.svc`, the name on the
//! certificate) through a CONNECT proxy (`HTTPS_PROXY`), since there is no cluster DNS here.

use azure_wi_test_support::e2e;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use e2e::{
    connect_proxy::ConnectProxy,
    kube_helpers::create_workload_service_account,
    testbed::TestBed,
    upstream::{self, UpstreamWebhook},
    webhook::{Webhook, configuration, group_namespace, wait_effective},
};
use k8s_openapi::{
    ByteString,
    api::{
        admissionregistration::v1::MutatingWebhookConfiguration,
        core::v1::{Namespace, Pod, Secret},
    },
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use rcgen::{CertificateParams, Issuer, KeyPair};
use serde_json::json;

const NAMESPACE: &str = "azure-workload-identity-system";
const SECRET: &str = "azure-wi-webhook-server-cert";
const MWC: &str = "azure-wi-webhook-mutating-webhook-configuration";
const HOST: &str = "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc";

async fn secret_data(client: &Client) -> std::collections::BTreeMap<String, ByteString> {
    let api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    api.get(SECRET)
        .await
        .expect("get Secret")
        .data
        .unwrap_or_default()
}

fn text(data: &std::collections::BTreeMap<String, ByteString>, key: &str) -> String {
    String::from_utf8(
        data.get(key)
            .unwrap_or_else(|| panic!("Secret has no {key}"))
            .0
            .clone(),
    )
    .expect("utf-8")
}

async fn ca_bundle(client: &Client) -> Vec<u8> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let mwc = api.get(MWC).await.expect("get MWC");
    let webhooks = mwc.webhooks.unwrap_or_default();
    webhooks[0]
        .client_config
        .ca_bundle
        .clone()
        .map(|b| b.0)
        .unwrap_or_default()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "azure.workload.identity/use": "true" } },
        "spec": { "serviceAccountName": "app", "containers": [{ "name": "app", "image": "busybox" }] },
    }))
    .expect("pod")
}

/// A serving certificate for `HOST` from the CA in the Secret, expiring in 30 days (inside the
/// 90-day renewal window).
/// Labelled pods created one after another until stopped, each of which must be admitted and
/// mutated: the stream of admissions a rotation or a switch must not interrupt.
struct AdmissionLoad {
    stop: Arc<AtomicBool>,
    created: Arc<AtomicUsize>,
    failed: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AdmissionLoad {
    fn start(pods: &Api<Pod>, prefix: &'static str, interval: std::time::Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let created = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(Vec::<String>::new()));
        let task = {
            let (pods, stop, created, failed) = (pods.clone(), stop.clone(), created.clone(), failed.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let name = format!("{prefix}-{i}");
                    match pods.create(&PostParams::default(), &pod(&name)).await {
                        Ok(p)
                            if p.spec
                                .as_ref()
                                .is_some_and(|s| s.volumes.as_ref().is_some_and(|v| !v.is_empty())) =>
                        {
                            created.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => failed.lock().expect("failed").push(format!("{name} not mutated")),
                        Err(e) => failed.lock().expect("failed").push(e.to_string()),
                    }
                    i += 1;
                    tokio::time::sleep(interval).await;
                }
            })
        };
        Self {
            stop,
            created,
            failed,
            task,
        }
    }

    /// Stops the stream and asserts that admissions ran during `what` and none failed.
    async fn stop_and_check(self, what: &str) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("load task");
        let failed = self.failed.lock().expect("failed").clone();
        let created = self.created.load(Ordering::SeqCst);
        eprintln!(
            "admissions during {what}: {created} succeeded, {} failed",
            failed.len()
        );
        assert!(failed.is_empty(), "admissions failed during {what}: {failed:?}");
        assert!(created > 0, "no admission ran during {what}");
    }
}

/// Creates `pod(name)` and asserts the webhook mutated it (the projected token volume is there).
async fn create_mutated(pods: &Api<Pod>, name: &str, what: &str) {
    let created = pods.create(&PostParams::default(), &pod(name)).await.expect(what);
    assert!(
        created.spec.expect("spec").volumes.is_some_and(|v| !v.is_empty()),
        "{what}: the pod was not mutated"
    );
}

/// Asserts that the webhook whose metrics listen on `metrics_port` answered at least one admission.
async fn assert_served_admissions(metrics_port: u16, who: &str) {
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let admissions: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("azwi_admission_requests"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(admissions >= 1.0, "{who} served no admission:\n{metrics}");
}

fn short_lived_leaf(ca_cert: &str, ca_key: &str) -> (String, String) {
    // The CA key is PKCS#1, as upstream writes it: the webhook's own parser reads it.
    let ca_key = azure_wi::webhook::ca_key::parse(ca_key).expect("CA key");
    let issuer = Issuer::from_ca_cert_pem(ca_cert, ca_key).expect("CA");
    let mut params = CertificateParams::new(vec![HOST.to_string()]).expect("params");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(30);
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread")]
async fn self_managed_certificates_are_published_and_rotated_without_failed_admissions() {
    let proxy = ConnectProxy::start().await;
    let bed = TestBed::start_with_env(&[("HTTPS_PROXY", &proxy.url)]).await;
    let client = bed.client().await;

    // What the chart installs: the namespace, the empty Secret, the webhook configuration
    // (no caBundle yet), pointing at the Service's name.
    install_chart_objects(&client, "certs").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);

    let first = Webhook::start_self_managed(&bed, "replica-1", &[]).await;
    proxy.set_backend(format!("127.0.0.1:{}", first.port).parse().expect("addr"));

    // The webhook generated and published its certificates.
    let data = secret_data(&client).await;
    for key in ["tls.crt", "tls.key", "ca.crt", "ca.key"] {
        assert!(
            data.get(key).is_some_and(|v| !v.0.is_empty()),
            "Secret lacks {key}"
        );
    }
    let ca = text(&data, "ca.crt");
    assert_eq!(
        ca_bundle(&client).await,
        ca.as_bytes(),
        "caBundle is not the Secret's CA"
    );

    // The API server's calls succeed (through the Service name, verified with the caBundle).
    wait_effective(&bed, "certs").await;
    let ns = group_namespace(&bed, "certs", "certs").await;
    create_workload_service_account(&client, &ns, "app", "c1").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    create_mutated(&pods, "before", "create pod").await;
    assert!(
        proxy.targets().iter().any(|t| t == &format!("{HOST}:443")),
        "{:?}",
        proxy.targets()
    );

    // Admissions keep flowing during the rotation; every one must succeed.
    let load = AdmissionLoad::start(&pods, "during", std::time::Duration::from_millis(20));

    // Force a rotation: the serving certificate in the Secret is close to expiry; a new replica
    // renews it (same CA), and traffic moves to it.
    let (leaf, key) = short_lived_leaf(&ca, &text(&data, "ca.key"));
    let mut forced = secrets.get(SECRET).await.expect("get Secret");
    let forced_data = forced.data.get_or_insert_default();
    forced_data.insert("tls.crt".into(), ByteString(leaf.clone().into_bytes()));
    forced_data.insert("tls.key".into(), ByteString(key.into_bytes()));
    secrets
        .replace(SECRET, &PostParams::default(), &forced)
        .await
        .expect("replace Secret");
    let second = Webhook::start_self_managed(&bed, "replica-2", &[]).await;
    proxy.set_backend(format!("127.0.0.1:{}", second.port).parse().expect("addr"));
    // The old replica leaves as a rolling update stops a pod: SIGTERM, in-flight requests finish.
    let mut first = first;
    first.process.stop("TERM");
    create_mutated(&pods, "after", "create pod after rotation").await;
    // The new replica (serving the renewed certificate) answered the API server.
    assert_served_admissions(second.metrics_port, "the new replica").await;

    load.stop_and_check("the rotation").await;

    let rotated = secret_data(&client).await;
    let renewed = text(&rotated, "tls.crt");
    assert_ne!(
        renewed, leaf,
        "the serving certificate close to expiry was not renewed"
    );
    assert_ne!(renewed, text(&data, "tls.crt"));
    assert_eq!(text(&rotated, "ca.crt"), ca, "a leaf renewal keeps the CA");
    assert_eq!(ca_bundle(&client).await, ca.as_bytes());
}

/// Creates what both charts install: the namespace, the empty Secret and the webhook configuration
/// without a `caBundle`, pointing at the Service's name, for the namespaces of `group`.
async fn install_chart_objects(client: &Client, group: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let empty = Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &empty)
        .await
        .expect("create Secret");
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let client_config = json!({ "url": format!("https://{HOST}:443/mutate-v1-pod") });
    mwcs.create(
        &PostParams::default(),
        &configuration(MWC, client_config, group, &["v1"]),
    )
    .await
    .expect("create MWC");
}

#[tokio::test(flavor = "multi_thread")]
async fn switching_from_upstream_keeps_its_secret_and_ca_bundle_without_failed_admissions() {
    let _port = upstream::port_lock().await;
    let proxy = ConnectProxy::start().await;
    let bed = TestBed::start_with_env(&[("HTTPS_PROXY", &proxy.url)]).await;
    let client = bed.client().await;
    install_chart_objects(&client, "switch").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);

    // Upstream's replica: its rotator fills the Secret (update only) and the caBundle.
    let mut old = UpstreamWebhook::start(&bed, "replica-1");
    let started = std::time::Instant::now();
    let written = loop {
        let data = secret_data(&client).await;
        if ["ca.crt", "ca.key", "tls.crt", "tls.key"]
            .iter()
            .all(|k| data.get(*k).is_some_and(|v| !v.0.is_empty()))
            && ca_bundle(&client).await == data["ca.crt"].0
        {
            break data;
        }
        old.process.assert_running();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "upstream's webhook wrote no certificates in 120 s; its log:\n{}",
            old.process.log_tail()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        text(&written, "ca.key").starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "upstream's CA key is PKCS#1"
    );
    old.mount_and_wait_ready(&written["tls.crt"].0, &written["tls.key"].0)
        .await;
    proxy.set_backend(format!("127.0.0.1:{}", upstream::PORT).parse().expect("addr"));
    wait_effective(&bed, "switch").await;
    let before_switch = secrets.get(SECRET).await.expect("get Secret");
    let ca_bundle_before = ca_bundle(&client).await;

    let ns = group_namespace(&bed, "switch", "switch").await;
    create_workload_service_account(&client, &ns, "app", "c1").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    create_mutated(&pods, "by-upstream", "upstream's webhook admits a pod").await;

    // Admissions keep flowing through the switch; every one must succeed and be mutated.
    let load = AdmissionLoad::start(&pods, "switch", std::time::Duration::from_millis(50));

    // Ours starts with upstream's Secret, while upstream's replica still serves.
    let ours = Webhook::start_self_managed(&bed, "after-upstream", &[]).await;
    // A pass after start-up (the Secret's watch) changes nothing either.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let during = secrets.get(SECRET).await.expect("get Secret");
    assert_eq!(
        during.metadata.resource_version,
        before_switch.metadata.resource_version,
        "our webhook rewrote upstream's Secret; its log:\n{}",
        ours.process.log_tail()
    );
    assert_eq!(ca_bundle(&client).await, ca_bundle_before, "the caBundle changed");

    // Traffic moves to ours; upstream's replica leaves as a rolling update stops a pod.
    proxy.set_backend(format!("127.0.0.1:{}", ours.port).parse().expect("addr"));
    old.process.stop("TERM");
    create_mutated(&pods, "by-ours", "our webhook admits with upstream's CA").await;
    assert_served_admissions(ours.metrics_port, "our webhook").await;

    load.stop_and_check("the switch").await;

    // Upstream's Secret and caBundle, untouched.
    let kept = secrets.get(SECRET).await.expect("get Secret");
    assert_eq!(
        kept.metadata.resource_version, before_switch.metadata.resource_version,
        "the Secret was rewritten"
    );
    assert_eq!(kept.data, before_switch.data);
    assert_eq!(ca_bundle(&client).await, ca_bundle_before);
}

/// The way back (`helm rollback`): upstream's real webhook starts with the Secret our webhook
/// wrote (a CA of its own, in upstream's format, and our serving certificate) and keeps it: it
/// becomes ready without rewriting the Secret or the `caBundle`, and serves admissions.
#[tokio::test(flavor = "multi_thread")]
async fn upstream_keeps_the_certificates_our_webhook_wrote() {
    let _port = upstream::port_lock().await;
    let proxy = ConnectProxy::start().await;
    let bed = TestBed::start_with_env(&[("HTTPS_PROXY", &proxy.url)]).await;
    let client = bed.client().await;
    install_chart_objects(&client, "back").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);

    let mut ours = Webhook::start_self_managed(&bed, "before-rollback", &[]).await;
    let written = secrets.get(SECRET).await.expect("get Secret");
    let data = written.data.clone().unwrap_or_default();
    let ca_bundle_before = ca_bundle(&client).await;
    assert_eq!(ca_bundle_before, data["ca.crt"].0);
    ours.process.stop("TERM");

    let mut back = UpstreamWebhook::start(&bed, "after-rollback");
    back.mount_and_wait_ready(&data["tls.crt"].0, &data["tls.key"].0)
        .await;
    proxy.set_backend(format!("127.0.0.1:{}", upstream::PORT).parse().expect("addr"));
    wait_effective(&bed, "back").await;
    let ns = group_namespace(&bed, "back", "back").await;
    create_workload_service_account(&client, &ns, "app", "c1").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    create_mutated(
        &pods,
        "by-upstream-again",
        "upstream's webhook admits with our certificates",
    )
    .await;
    let kept = secrets.get(SECRET).await.expect("get Secret");
    assert_eq!(
        kept.metadata.resource_version,
        written.metadata.resource_version,
        "upstream's webhook rewrote our Secret; its log:\n{}",
        back.process.log_tail()
    );
    assert_eq!(ca_bundle(&client).await, ca_bundle_before, "the caBundle changed");
    // What makes it so: the CA key is in the one form upstream's rotator reads back.
    assert!(
        text(&data, "ca.key").starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "our CA key is not in upstream's format (PKCS#1)"
    );
}

/// Another writer (an upstream replica rotating its CA during a mixed rollout, or an operator)
/// replaces the CA and serving certificate in the Secret and the `caBundle`: our webhook serves the
/// new certificate within seconds (it watches the Secret), and keeps the new CA.
#[tokio::test(flavor = "multi_thread")]
async fn a_ca_written_by_another_writer_is_served_within_seconds() {
    use azure_wi::webhook::certs::{CertBundle, CertNames};
    let proxy = ConnectProxy::start().await;
    let bed = TestBed::start_with_env(&[("HTTPS_PROXY", &proxy.url)]).await;
    let client = bed.client().await;
    install_chart_objects(&client, "adopt").await;
    let ours = Webhook::start_self_managed(&bed, "adopter", &[]).await;
    proxy.set_backend(format!("127.0.0.1:{}", ours.port).parse().expect("addr"));
    wait_effective(&bed, "adopt").await;
    let ns = group_namespace(&bed, "adopt", "adopt").await;
    create_workload_service_account(&client, &ns, "app", "c1").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod("before"))
        .await
        .expect("admitted with our own CA");

    // The other writer: a new CA and serving certificate into the Secret, then the caBundle.
    let theirs = CertBundle::generate(
        &CertNames::upstream(NAMESPACE).dns_names(),
        time::OffsetDateTime::now_utc(),
    )
    .expect("bundle");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let mut secret = secrets.get(SECRET).await.expect("get Secret");
    let data = secret.data.get_or_insert_default();
    for (key, value) in [
        ("ca.crt", &theirs.ca_cert_pem),
        ("ca.key", &theirs.ca_key_pem),
        ("tls.crt", &theirs.cert_pem),
        ("tls.key", &theirs.key_pem),
    ] {
        data.insert(key.into(), ByteString(value.clone().into_bytes()));
    }
    secrets
        .replace(SECRET, &PostParams::default(), &secret)
        .await
        .expect("replace Secret");
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let mut mwc = mwcs.get(MWC).await.expect("get MWC");
    for webhook in mwc.webhooks.iter_mut().flatten() {
        webhook.client_config.ca_bundle = Some(ByteString(theirs.ca_cert_pem.clone().into_bytes()));
    }
    mwcs.replace(MWC, &PostParams::default(), &mwc)
        .await
        .expect("replace MWC");
    let switched = std::time::Instant::now();

    // The API server now trusts only the new CA: admissions succeed once ours serves the new
    // certificate.
    let mut i = 0;
    loop {
        let last_error = match pods
            .create(&PostParams::default(), &pod(&format!("after-{i}")))
            .await
        {
            Ok(_) => break,
            Err(e) => e.to_string(),
        };
        i += 1;
        assert!(
            switched.elapsed() < std::time::Duration::from_secs(10),
            "our webhook still serves the old certificate 10 s after the Secret changed: {last_error}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    eprintln!(
        "the new certificate was served {:?} after the caBundle changed",
        switched.elapsed()
    );
    let kept = secret_data(&client).await;
    assert_eq!(
        text(&kept, "ca.crt"),
        theirs.ca_cert_pem,
        "the new CA was not kept"
    );
    assert_eq!(ca_bundle(&client).await, theirs.ca_cert_pem.as_bytes());
}
