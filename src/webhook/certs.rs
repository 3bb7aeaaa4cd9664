//! Self-managed certificates, like upstream's cert rotation: a CA and a serving certificate kept
//! in a Secret, the CA written into the MutatingWebhookConfiguration's `caBundle`, renewal before
//! expiry.
//!
//! - [`CertBundle::generate`] / [`CertBundle::renew_leaf`]: pure rcgen work (run them in
//!   `spawn_blocking`). A new CA is what upstream's rotator (open-policy-agent/cert-controller)
//!   writes: RSA 2048, key as PKCS#1, subject `azure-workload-identity-ca` /
//!   `azure-workload-identity` with that name also as DNS name; serving certificates are ECDSA P-256
//!   with `serverAuth` and the Service's names, `<svc>.<ns>.svc` among them.
//! - [`decide`]: what to do with the bundle found in the Secret at a given wall-clock time. It
//!   accepts what upstream writes (PKCS#1, PKCS#8 or SEC1 CA keys; a serving certificate for
//!   `<svc>.<ns>.svc` only), so switching from upstream keeps its CA and certificate: the Secret is
//!   not rewritten and the `caBundle` does not change while upstream's replicas still serve.
//! - [`Rotator`]: the Kubernetes side (Secret, MutatingWebhookConfiguration): it watches the
//!   Secret (a change is acted on within a second: another writer's new CA is adopted, an emptied
//!   Secret is refilled with the certificates being served, and a deleted one recreated with them
//!   and its labels and annotations after 5 seconds, unless the pod is stopping, as on
//!   `helm uninstall`) and checks hourly.
//!
//! Lifetimes follow upstream: CA 10 years, serving certificate 1 year, renewed when fewer than 90
//! days remain; the check runs every hour against the wall clock (not a monotonic timer), so a
//! suspended or drifting node still renews in time. 90 days is far above the check interval.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::{
    ByteString, api::admissionregistration::v1::MutatingWebhookConfiguration, api::core::v1::Secret,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;

use super::{
    ca_key::{self, CaKeyError},
    tls::{CertResolver, ServingCert, TlsError},
};
use crate::server::Shutdown;

/// Upstream's Service in front of the webhook.
pub const SERVICE_NAME: &str = "azure-wi-webhook-webhook-service";
/// Upstream's Secret holding the certificates.
pub const SECRET_NAME: &str = "azure-wi-webhook-server-cert";
/// Upstream's MutatingWebhookConfiguration.
pub const WEBHOOK_CONFIGURATION_NAME: &str = "azure-wi-webhook-mutating-webhook-configuration";
/// The namespace when `POD_NAMESPACE` is unset (upstream's).
pub const DEFAULT_NAMESPACE: &str = "azure-workload-identity-system";
/// Common name of the generated CA (upstream's).
pub const CA_COMMON_NAME: &str = "azure-workload-identity-ca";
/// Organization of the generated certificates (upstream's).
pub const ORGANIZATION: &str = "azure-workload-identity";
/// Validity of the CA.
pub const CA_LIFETIME: time::Duration = time::Duration::days(3650);
/// Validity of the serving certificate.
pub const LEAF_LIFETIME: time::Duration = time::Duration::days(365);
/// Renew a certificate when less than this remains.
pub const RENEW_BEFORE: time::Duration = time::Duration::days(90);
/// How often the expiry is checked when nothing changes (the Secret is also watched).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(3600);
/// How long a burst of Secret events is gathered before one pass acts on it.
const SETTLE: Duration = Duration::from_millis(200);
/// How long a deleted Secret stays deleted before it is recreated: `helm uninstall` deletes the
/// Deployment before the Secret, and its pods (SIGTERM stops the rotator) must not bring the
/// Secret back behind Helm's back. A Secret that was only emptied is refilled at once.
pub const RESTORE_DELAY: Duration = Duration::from_secs(5);

/// Keys of the Secret (upstream's).
const CA_CERT_KEY: &str = "ca.crt";
const CA_KEY_KEY: &str = "ca.key";
const CERT_KEY: &str = "tls.crt";
const KEY_KEY: &str = "tls.key";
const FIELD_MANAGER: &str = "azure-wi-webhook";

/// Why certificates could not be generated, stored or published.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failed.
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored certificate does not parse.
    #[error(transparent)]
    Parse(#[from] TlsError),
    /// The API server refused or could not be reached.
    #[error("{action}: {source}")]
    Api {
        /// What was being done.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A blocking task panicked.
    #[error("certificate generation task failed: {0}")]
    Task(String),
    /// The CA key in the Secret cannot sign, or a new one cannot be made.
    #[error(transparent)]
    CaKey(#[from] CaKeyError),
}

/// Names of the objects the rotator manages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertNames {
    /// The webhook's namespace (`POD_NAMESPACE`).
    pub namespace: String,
    /// The Service in front of the webhook.
    pub service: String,
    /// The Secret holding the certificates.
    pub secret: String,
    /// The MutatingWebhookConfiguration whose `caBundle` is kept current.
    pub webhook_configuration: String,
}

impl CertNames {
    /// Upstream's names in `namespace`.
    pub fn upstream(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            service: SERVICE_NAME.to_owned(),
            secret: SECRET_NAME.to_owned(),
            webhook_configuration: WEBHOOK_CONFIGURATION_NAME.to_owned(),
        }
    }

    /// The DNS names of the serving certificate: `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc` and
    /// `<svc>.<ns>.svc.cluster.local`.
    pub fn dns_names(&self) -> Vec<String> {
        let (svc, ns) = (&self.service, &self.namespace);
        vec![
            svc.clone(),
            format!("{svc}.{ns}"),
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
        ]
    }

    /// The name the API server calls the webhook by (`<svc>.<ns>.svc`): the one name a serving
    /// certificate must cover to be kept (upstream's certificates carry only this one).
    pub fn serving_dns_name(&self) -> String {
        format!("{}.{}.svc", self.service, self.namespace)
    }
}

/// A CA and a serving certificate signed by it, all PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertBundle {
    /// The CA certificate (what goes into `caBundle`).
    pub ca_cert_pem: String,
    /// The CA's private key.
    pub ca_key_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// The serving certificate's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle").finish_non_exhaustive()
    }
}

impl CertBundle {
    /// A new CA (upstream's format: RSA 2048, PKCS#1 key, its name as DNS name) and a serving
    /// certificate for `dns_names`, valid from `now`.
    pub fn generate(dns_names: &[String], now: OffsetDateTime) -> Result<Self, CertError> {
        let (ca_key_pem, ca_key) = ca_key::generate_rsa()?;
        let mut params = CertificateParams::new(vec![CA_COMMON_NAME.to_owned()])?;
        params.distinguished_name = name(CA_COMMON_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
        ];
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + CA_LIFETIME;
        let ca_cert = params.self_signed(&ca_key)?;
        let issuer = Issuer::new(params, &ca_key);
        let (cert_pem, key_pem) = issue_leaf(&issuer, dns_names, now)?;
        Ok(Self {
            ca_cert_pem: ca_cert.pem(),
            ca_key_pem,
            cert_pem,
            key_pem,
        })
    }

    /// A new serving certificate for `dns_names` from the same CA (whatever form its key is
    /// stored in; the Secret keeps it as it is), valid from `now`.
    pub fn renew_leaf(&self, dns_names: &[String], now: OffsetDateTime) -> Result<Self, CertError> {
        let ca_key = ca_key::parse(&self.ca_key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca_cert_pem, &ca_key)?;
        let (cert_pem, key_pem) = issue_leaf(&issuer, dns_names, now)?;
        Ok(Self {
            cert_pem,
            key_pem,
            ..self.clone()
        })
    }

    /// The serving certificate and key, parsed for rustls.
    pub fn serving_cert(&self) -> Result<ServingCert, TlsError> {
        ServingCert::from_pem(
            self.cert_pem.as_bytes(),
            self.key_pem.as_bytes(),
            "the generated certificate",
        )
    }

    fn from_secret(secret: &Secret) -> Option<Self> {
        let data = secret.data.as_ref()?;
        let get = |key: &str| {
            data.get(key)
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .filter(|s| !s.trim().is_empty())
        };
        Some(Self {
            ca_cert_pem: get(CA_CERT_KEY)?,
            ca_key_pem: get(CA_KEY_KEY)?,
            cert_pem: get(CERT_KEY)?,
            key_pem: get(KEY_KEY)?,
        })
    }

    fn secret_data(&self) -> BTreeMap<String, ByteString> {
        [
            (CA_CERT_KEY, &self.ca_cert_pem),
            (CA_KEY_KEY, &self.ca_key_pem),
            (CERT_KEY, &self.cert_pem),
            (KEY_KEY, &self.key_pem),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect()
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn
}

fn issue_leaf(
    issuer: &Issuer<'_, &KeyPair>,
    dns_names: &[String],
    now: OffsetDateTime,
) -> Result<(String, String), CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(dns_names.to_vec())?;
    // Upstream's subject: the `<svc>.<ns>.svc` name.
    let common_name = dns_names
        .iter()
        .find(|n| n.ends_with(".svc"))
        .or(dns_names.first())
        .map_or(SERVICE_NAME, String::as_str);
    params.distinguished_name = name(common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + LEAF_LIFETIME;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What to do with the certificates found in the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// They are fine; check again later.
    Keep,
    /// Keep the CA, issue a new serving certificate (why).
    RenewLeaf(String),
    /// Start over with a new CA (why).
    Regenerate(String),
}

/// Decides, at wall-clock time `now`, whether `bundle` can keep serving `dns_names` (the names
/// its serving certificate must cover; the rotator asks only for [`CertNames::serving_dns_name`],
/// as upstream does). The checks are upstream's (both certificates valid for 90 more days, the
/// serving certificate signed by the CA, for `serverAuth`, matching its key) plus that the CA key
/// matches the CA and can sign.
pub fn decide(bundle: Option<&CertBundle>, dns_names: &[String], now: OffsetDateTime) -> Decision {
    let Some(bundle) = bundle else {
        return Decision::Regenerate("the Secret holds no certificates".into());
    };
    let Some(ca_der) = first_der(&bundle.ca_cert_pem) else {
        return Decision::Regenerate("the CA certificate does not parse".into());
    };
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(&ca_der) else {
        return Decision::Regenerate("the CA certificate does not parse".into());
    };
    if ca.validity().not_after.to_datetime() - now < RENEW_BEFORE {
        return Decision::Regenerate("the CA expires within 90 days".into());
    }
    if !ca.is_ca() {
        return Decision::Regenerate("the CA certificate is not a CA".into());
    }
    match ca_key::parse(&bundle.ca_key_pem) {
        Err(error) => return Decision::Regenerate(error.to_string()),
        Ok(key) if key.public_key_raw() != ca.public_key().subject_public_key.data.as_ref() => {
            return Decision::Regenerate("the CA key does not belong to the CA certificate".into());
        }
        Ok(_) => {}
    }
    let Some(leaf_der) = first_der(&bundle.cert_pem) else {
        return Decision::RenewLeaf("the serving certificate does not parse".into());
    };
    let Ok((_, leaf)) = x509_parser::parse_x509_certificate(&leaf_der) else {
        return Decision::RenewLeaf("the serving certificate does not parse".into());
    };
    if leaf.verify_signature(Some(ca.public_key())).is_err() {
        return Decision::RenewLeaf("the serving certificate is not signed by the CA".into());
    }
    if leaf.validity().not_after.to_datetime() - now < RENEW_BEFORE {
        return Decision::RenewLeaf("the serving certificate expires within 90 days".into());
    }
    if let Ok(Some(eku)) = leaf.extended_key_usage()
        && !eku.value.server_auth
        && !eku.value.any
    {
        return Decision::RenewLeaf("the serving certificate is not for serverAuth".into());
    }
    let sans = dns_sans(&leaf);
    if let Some(missing) = dns_names.iter().find(|n| !sans.contains(n)) {
        return Decision::RenewLeaf(format!("the serving certificate does not cover {missing}"));
    }
    if bundle.serving_cert().is_err() {
        return Decision::RenewLeaf("the serving key does not match the certificate".into());
    }
    Decision::Keep
}

fn first_der(pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()
        .map(|c| c.to_vec())
}

/// The DNS names in a certificate's subjectAltName.
pub fn dns_sans(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some((*d).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Labels and annotations of the Secret as last read.
#[derive(Clone, Debug, Default)]
struct SecretMeta {
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

/// Keeps the Secret, the `caBundle` and the serving certificate current.
#[derive(Clone)]
pub struct Rotator {
    client: Client,
    names: CertNames,
    resolver: Arc<CertResolver>,
    clock: fn() -> OffsetDateTime,
    /// What the last pass served and published: restored when the Secret is deleted or emptied.
    served: Arc<std::sync::Mutex<Option<CertBundle>>>,
    /// The labels and annotations the Secret last had (Helm's ownership among them): a
    /// recreated Secret carries them, so the release still owns it.
    secret_meta: Arc<std::sync::Mutex<SecretMeta>>,
    restore_delay: Duration,
}

impl std::fmt::Debug for Rotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotator")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Rotator {
    /// A rotator for `names`, feeding `resolver`.
    pub fn new(client: Client, names: CertNames, resolver: Arc<CertResolver>) -> Self {
        Self {
            client,
            names,
            resolver,
            clock: OffsetDateTime::now_utc,
            served: Arc::default(),
            secret_meta: Arc::default(),
            restore_delay: RESTORE_DELAY,
        }
    }

    /// Uses `clock` instead of the system's wall clock (tests).
    pub fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = clock;
        self
    }

    /// How long a deleted Secret must stay deleted before it is recreated (default
    /// [`RESTORE_DELAY`]; tests).
    pub fn with_restore_delay(mut self, delay: Duration) -> Self {
        self.restore_delay = delay;
        self
    }

    /// Runs until `shutdown`: reconciles now, again whenever the Secret changes (a watch on it
    /// alone; a burst of events makes one pass), and every [`CHECK_INTERVAL`]; retries failures
    /// after 10 seconds.
    pub async fn run(self, shutdown: Shutdown) {
        use futures::StreamExt as _;
        use kube::runtime::{WatchStreamExt as _, watcher};

        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.names.namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.names.secret));
        let mut changes = watcher::watcher(secrets, config).default_backoff().boxed();
        let mut watch_failing = false;
        loop {
            // A pass may wait (a deleted Secret, RESTORE_DELAY): a stopping pod leaves instead.
            let result = tokio::select! {
                () = shutdown.wait() => return,
                result = self.reconcile() => result,
            };
            let wait = match result {
                Ok(()) => CHECK_INTERVAL,
                Err(error) => {
                    tracing::warn!(%error, "certificate rotation failed; retrying in 10 s");
                    Duration::from_secs(10)
                }
            };
            let deadline = tokio::time::Instant::now() + wait;
            // Wait for the deadline or a change of the Secret; the initial listing of the watch
            // (and every re-listing) counts as a change: it may have missed one.
            loop {
                tokio::select! {
                    () = shutdown.wait() => return,
                    () = tokio::time::sleep_until(deadline) => break,
                    event = changes.next() => match event {
                        Some(Ok(watcher::Event::Init | watcher::Event::InitApply(_))) => {}
                        Some(Ok(_)) => {
                            watch_failing = false;
                            // Gather the rest of a burst (our own write, another replica's).
                            tokio::time::sleep(SETTLE).await;
                            break;
                        }
                        Some(Err(error)) => {
                            if !watch_failing {
                                tracing::warn!(%error, "cannot watch the certificate Secret; retrying, and checking hourly meanwhile");
                            }
                            watch_failing = true;
                        }
                        None => {
                            tracing::warn!("the certificate Secret's watch ended; checking hourly");
                            changes = futures::stream::pending().boxed();
                        }
                    },
                }
            }
        }
    }

    /// One pass: read the Secret, renew what needs it (storing the result with optimistic
    /// concurrency, so that of several replicas one wins and the others adopt its result),
    /// publish the CA in the `caBundle`, and serve the serving certificate.
    ///
    /// What the Secret holds is kept while [`decide`] finds it valid (whoever wrote it: upstream's
    /// replicas, another of ours); a missing or empty Secret gets the certificates this rotator
    /// already serves, so deleting it changes no CA.
    pub async fn reconcile(&self) -> Result<(), CertError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.names.namespace);
        let dns_names = self.names.dns_names();
        let required = [self.names.serving_dns_name()];
        let mut waited = false;
        let bundle = loop {
            let existing = secrets
                .get_opt(&self.names.secret)
                .await
                .map_err(|source| CertError::Api {
                    action: format!(
                        "cannot read Secret {}/{}",
                        self.names.namespace, self.names.secret
                    ),
                    source,
                })?;
            if let Some(secret) = &existing
                && let Ok(mut meta) = self.secret_meta.lock()
            {
                *meta = SecretMeta {
                    labels: secret.metadata.labels.clone(),
                    annotations: secret.metadata.annotations.clone(),
                };
            }
            let stored = existing.as_ref().and_then(CertBundle::from_secret);
            let in_secret = stored.is_some();
            let restoring = existing.is_none() && self.served.lock().is_ok_and(|s| s.is_some());
            if restoring && !waited && !self.restore_delay.is_zero() {
                tracing::info!(
                    secret = self.names.secret,
                    delay = ?self.restore_delay,
                    "the certificate Secret was deleted; recreating it unless it comes back or this pod stops"
                );
                tokio::time::sleep(self.restore_delay).await;
                waited = true;
                continue;
            }
            let current = stored.or_else(|| self.served.lock().ok().and_then(|s| s.clone()));
            let now = (self.clock)();
            let renewed = match decide(current.as_ref(), &required, now) {
                Decision::Keep if in_secret => break current.expect("Keep implies a bundle"),
                Decision::Keep => {
                    tracing::info!(
                        secret = self.names.secret,
                        "the Secret holds no certificates; restoring the ones being served"
                    );
                    current.expect("Keep implies a bundle")
                }
                Decision::Regenerate(reason) => {
                    tracing::info!(%reason, "generating a new CA and serving certificate");
                    let names = dns_names.clone();
                    blocking(move || CertBundle::generate(&names, now)).await?
                }
                Decision::RenewLeaf(reason) => {
                    tracing::info!(%reason, "renewing the serving certificate");
                    let (names, old) = (
                        dns_names.clone(),
                        current.clone().expect("RenewLeaf implies a bundle"),
                    );
                    blocking(move || old.renew_leaf(&names, now)).await?
                }
            };
            match self.store(&secrets, existing, &renewed).await {
                Ok(()) => break renewed,
                Err(CertError::Api {
                    source: kube::Error::Api(status),
                    ..
                }) if status.code == 409 => {
                    tracing::info!(
                        "another replica updated the certificate Secret first; adopting its certificates"
                    );
                }
                Err(error) => return Err(error),
            }
        };
        self.publish_ca(&bundle.ca_cert_pem).await?;
        let cert = bundle.serving_cert()?;
        let not_after = cert.not_after();
        if self.resolver.set(cert) {
            tracing::info!(%not_after, "serving certificate loaded from the Secret");
        }
        if let Ok(mut served) = self.served.lock() {
            *served = Some(bundle);
        }
        Ok(())
    }

    async fn store(
        &self,
        secrets: &Api<Secret>,
        existing: Option<Secret>,
        bundle: &CertBundle,
    ) -> Result<(), CertError> {
        let action = format!(
            "cannot store the certificates in Secret {}/{}",
            self.names.namespace, self.names.secret
        );
        let result = match existing {
            // `replace` carries the resourceVersion read above: a concurrent writer makes it 409.
            // Other keys in the Secret stay, as upstream's rotator leaves them.
            Some(mut secret) => {
                secret.data.get_or_insert_default().extend(bundle.secret_data());
                secret.string_data = None;
                secrets
                    .replace(&self.names.secret, &PostParams::default(), &secret)
                    .await
                    .map(drop)
            }
            None => {
                let meta = self.secret_meta.lock().map(|m| m.clone()).unwrap_or_default();
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(self.names.secret.clone()),
                        namespace: Some(self.names.namespace.clone()),
                        labels: meta.labels,
                        annotations: meta.annotations,
                        ..ObjectMeta::default()
                    },
                    data: Some(bundle.secret_data()),
                    ..Secret::default()
                };
                secrets.create(&PostParams::default(), &secret).await.map(drop)
            }
        };
        result.map_err(|source| CertError::Api { action, source })
    }

    /// Writes `ca_pem` into `clientConfig.caBundle` of every webhook of the configuration.
    async fn publish_ca(&self, ca_pem: &str) -> Result<(), CertError> {
        let api: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        let name = &self.names.webhook_configuration;
        let action = format!("cannot update caBundle of MutatingWebhookConfiguration {name}");
        let Some(mwc) = api.get_opt(name).await.map_err(|source| CertError::Api {
            action: action.clone(),
            source,
        })?
        else {
            tracing::warn!(
                name,
                "MutatingWebhookConfiguration not found; the API server cannot trust this webhook"
            );
            return Ok(());
        };
        let patch = ca_bundle_patch(&mwc, ca_pem);
        if patch.is_empty() {
            return Ok(());
        }
        let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(patch))
            .map_err(|e| CertError::Task(format!("internal: bad caBundle patch: {e}")))?;
        api.patch(
            name,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::<()>::Json(patch),
        )
        .await
        .map_err(|source| CertError::Api { action, source })?;
        tracing::info!(name, "caBundle updated");
        Ok(())
    }
}

/// JSON Patch operations setting `caBundle` to `ca_pem` on every webhook that lacks it. Each
/// `add` is guarded by a `test` of the webhook's name so a concurrent reordering fails the patch
/// instead of touching the wrong webhook.
pub fn ca_bundle_patch(mwc: &MutatingWebhookConfiguration, ca_pem: &str) -> Vec<serde_json::Value> {
    let wanted = ByteString(ca_pem.as_bytes().to_vec());
    let mut ops = Vec::new();
    for (i, webhook) in mwc.webhooks.iter().flatten().enumerate() {
        if webhook.client_config.ca_bundle.as_ref() == Some(&wanted) {
            continue;
        }
        ops.push(
            serde_json::json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": webhook.name}),
        );
        ops.push(serde_json::json!({
            "op": "add",
            "path": format!("/webhooks/{i}/clientConfig/caBundle"),
            "value": serde_json::to_value(&wanted).unwrap_or_default(),
        }));
    }
    ops
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CertError> + Send + 'static,
) -> Result<T, CertError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CertError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::webhook::{
        metrics::Metrics,
        test_support::{Handler, fake_client, not_found},
    };

    const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

    fn names() -> CertNames {
        CertNames::upstream("azure-workload-identity-system")
    }

    fn parse(pem: &str) -> Vec<u8> {
        first_der(pem).expect("a PEM certificate")
    }

    #[test]
    fn the_serving_certificate_covers_the_service_names_and_is_signed_by_the_ca() {
        let bundle = CertBundle::generate(&names().dns_names(), NOW).unwrap();
        let (ca_der, leaf_der) = (parse(&bundle.ca_cert_pem), parse(&bundle.cert_pem));
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();

        assert!(ca.is_ca());
        assert_eq!(
            ca.subject().iter_common_name().next().unwrap().as_str().unwrap(),
            CA_COMMON_NAME
        );
        assert!(leaf.verify_signature(Some(ca.public_key())).is_ok());
        assert_eq!(leaf.issuer(), ca.subject());
        let sans = dns_sans(&leaf);
        for name in [
            "azure-wi-webhook-webhook-service",
            "azure-wi-webhook-webhook-service.azure-workload-identity-system",
            "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc",
            "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc.cluster.local",
        ] {
            assert!(sans.iter().any(|s| s == name), "{name} missing from {sans:?}");
        }
        assert_eq!(leaf.validity().not_after.to_datetime(), NOW + LEAF_LIFETIME);
        assert_eq!(ca.validity().not_after.to_datetime(), NOW + CA_LIFETIME);
        assert!(bundle.serving_cert().is_ok());
    }

    #[test]
    fn renewal_is_decided_against_the_given_wall_clock() {
        let dns = names().dns_names();
        let bundle = CertBundle::generate(&dns, NOW).unwrap();
        assert_eq!(decide(Some(&bundle), &dns, NOW), Decision::Keep);
        assert_eq!(
            decide(Some(&bundle), &dns, NOW + time::Duration::days(274)),
            Decision::Keep
        );
        assert!(matches!(
            decide(Some(&bundle), &dns, NOW + time::Duration::days(276)),
            Decision::RenewLeaf(_)
        ));
        assert!(matches!(
            decide(Some(&bundle), &dns, NOW + time::Duration::days(3600)),
            Decision::Regenerate(_)
        ));
        assert!(matches!(decide(None, &dns, NOW), Decision::Regenerate(_)));
    }

    #[test]
    fn a_leaf_for_other_names_or_another_ca_is_renewed() {
        let dns = names().dns_names();
        let bundle = CertBundle::generate(&dns, NOW).unwrap();
        let elsewhere = CertNames::upstream("other-namespace").dns_names();
        match decide(Some(&bundle), &elsewhere, NOW) {
            Decision::RenewLeaf(reason) => assert!(reason.contains("other-namespace"), "{reason}"),
            other => panic!("expected RenewLeaf, got {other:?}"),
        }
        let other = CertBundle::generate(&dns, NOW).unwrap();
        let mixed = CertBundle {
            cert_pem: other.cert_pem,
            key_pem: other.key_pem,
            ..bundle.clone()
        };
        assert!(
            matches!(decide(Some(&mixed), &dns, NOW), Decision::RenewLeaf(r) if r.contains("not signed"))
        );
        let garbage = CertBundle {
            ca_cert_pem: "junk".into(),
            ..bundle
        };
        assert!(matches!(
            decide(Some(&garbage), &dns, NOW),
            Decision::Regenerate(_)
        ));
    }

    /// What upstream's rotator (cert-controller) writes: an RSA 2048 CA whose key is PKCS#1,
    /// named `azure-workload-identity-ca` (also its one DNS name), and an RSA serving certificate
    /// (PKCS#1 key) for `<svc>.<ns>.svc` only, `serverAuth`.
    pub(super) fn upstream_bundle(now: OffsetDateTime) -> CertBundle {
        let (ca_key_pem, ca_key) = ca_key::generate_rsa().unwrap();
        let mut ca = CertificateParams::new(vec![CA_COMMON_NAME.to_owned()]).unwrap();
        ca.distinguished_name = name(CA_COMMON_NAME);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
        ];
        ca.not_before = now - time::Duration::hours(1);
        ca.not_after = now + CA_LIFETIME;
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, &ca_key);
        let (key_pem, key) = ca_key::generate_rsa().unwrap();
        let host = names().serving_dns_name();
        let mut leaf = CertificateParams::new(vec![host.clone()]).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        leaf.distinguished_name = dn;
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.not_before = now - time::Duration::hours(1);
        leaf.not_after = now + LEAF_LIFETIME;
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        CertBundle {
            ca_cert_pem: ca_cert.pem(),
            ca_key_pem,
            cert_pem: cert.pem(),
            key_pem,
        }
    }

    #[test]
    fn upstreams_secret_with_a_pkcs1_ca_key_is_kept() {
        let upstream = upstream_bundle(NOW);
        assert!(upstream.ca_key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let required = [names().serving_dns_name()];
        assert_eq!(decide(Some(&upstream), &required, NOW), Decision::Keep);
        assert!(upstream.serving_cert().is_ok(), "a PKCS#1 serving key is served");
        // Close to expiry, its serving certificate is renewed from upstream's CA, whose key stays
        // PKCS#1 in the Secret (what upstream's replicas parse).
        let later = NOW + time::Duration::days(300);
        assert!(matches!(
            decide(Some(&upstream), &required, later),
            Decision::RenewLeaf(_)
        ));
        let renewed = upstream.renew_leaf(&names().dns_names(), later).unwrap();
        assert_eq!(renewed.ca_cert_pem, upstream.ca_cert_pem);
        assert_eq!(renewed.ca_key_pem, upstream.ca_key_pem);
        assert_eq!(decide(Some(&renewed), &required, later), Decision::Keep);
    }

    #[test]
    fn what_we_issue_is_what_upstreams_rotator_accepts() {
        // Upstream keeps a CA when it verifies for the DNS name `azure-workload-identity-ca` and
        // its key is PKCS#1; a serving certificate when it verifies for `<svc>.<ns>.svc` and
        // `serverAuth` against the CA.
        let bundle = CertBundle::generate(&names().dns_names(), NOW).unwrap();
        assert!(bundle.ca_key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let (ca_der, leaf_der) = (parse(&bundle.ca_cert_pem), parse(&bundle.cert_pem));
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
        assert_eq!(dns_sans(&ca), vec![CA_COMMON_NAME.to_owned()]);
        assert!(ca.verify_signature(None).is_ok(), "self-signed");
        assert!(dns_sans(&leaf).contains(&names().serving_dns_name()));
        assert!(leaf.extended_key_usage().unwrap().unwrap().value.server_auth);
        assert_eq!(
            leaf.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            names().serving_dns_name()
        );
    }

    #[test]
    fn a_ca_key_of_another_ca_or_a_non_ca_is_replaced() {
        let dns = names().dns_names();
        let bundle = CertBundle::generate(&dns, NOW).unwrap();
        let other = CertBundle::generate(&dns, NOW).unwrap();
        let wrong_key = CertBundle {
            ca_key_pem: other.ca_key_pem,
            ..bundle.clone()
        };
        assert!(
            matches!(decide(Some(&wrong_key), &dns, NOW), Decision::Regenerate(r) if r.contains("does not belong"))
        );
        let leaf_as_ca = CertBundle {
            ca_cert_pem: bundle.cert_pem.clone(),
            ca_key_pem: bundle.key_pem.clone(),
            ..bundle
        };
        assert!(
            matches!(decide(Some(&leaf_as_ca), &dns, NOW), Decision::Regenerate(r) if r.contains("not a CA"))
        );
    }

    #[test]
    fn renewing_the_leaf_keeps_the_ca() {
        let dns = names().dns_names();
        let bundle = CertBundle::generate(&dns, NOW).unwrap();
        let later = NOW + time::Duration::days(300);
        let renewed = bundle.renew_leaf(&dns, later).unwrap();
        assert_eq!(renewed.ca_cert_pem, bundle.ca_cert_pem);
        assert_ne!(renewed.cert_pem, bundle.cert_pem);
        assert_eq!(decide(Some(&renewed), &dns, later), Decision::Keep);
    }

    #[test]
    fn the_ca_bundle_patch_touches_only_webhooks_that_need_it() {
        let mwc: MutatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": WEBHOOK_CONFIGURATION_NAME},
            "webhooks": [
                {"name": "mutation.azure-workload-identity.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                 "clientConfig": {"service": {"name": SERVICE_NAME, "namespace": "ns", "path": "/mutate-v1-pod"}}},
                {"name": "current.example", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                 "clientConfig": {"caBundle": "Q0E=", "url": "https://x"}}
            ]
        }))
        .unwrap();
        let ops = ca_bundle_patch(&mwc, "CA");
        assert_eq!(
            ops,
            vec![
                json!({"op": "test", "path": "/webhooks/0/name", "value": "mutation.azure-workload-identity.io"}),
                json!({"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Q0E="}),
            ]
        );
        assert!(ca_bundle_patch(&mwc, "different").len() == 4);
    }

    /// A fake API server holding one Secret and one MutatingWebhookConfiguration.
    fn fake_cluster(secret: Arc<Mutex<Option<serde_json::Value>>>) -> Arc<Handler> {
        Arc::new(move |r| {
            let secret_path = "/api/v1/namespaces/azure-workload-identity-system/secrets";
            let mwc_path = format!(
                "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{WEBHOOK_CONFIGURATION_NAME}"
            );
            let mut stored = secret.lock().unwrap();
            match (r.method.as_str(), r.path.split('?').next().unwrap_or_default()) {
                ("GET", p) if p == format!("{secret_path}/{SECRET_NAME}") => match stored.as_ref() {
                    Some(s) => Some((200, s.clone())),
                    None => Some(not_found("secrets", SECRET_NAME)),
                },
                ("POST", p) if p == secret_path => {
                    let mut body = r.body.clone();
                    body["metadata"]["resourceVersion"] = json!("1");
                    *stored = Some(body.clone());
                    Some((201, body))
                }
                ("PUT", p) if p == format!("{secret_path}/{SECRET_NAME}") => {
                    *stored = Some(r.body.clone());
                    Some((200, r.body.clone()))
                }
                ("GET", p) if p == mwc_path => Some((
                    200,
                    json!({
                        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                        "metadata": {"name": WEBHOOK_CONFIGURATION_NAME},
                        "webhooks": [{"name": "mutation.azure-workload-identity.io", "admissionReviewVersions": ["v1"],
                            "sideEffects": "None", "clientConfig": {"service": {"name": SERVICE_NAME, "namespace": "x"}}}]
                    }),
                )),
                ("PATCH", p) if p == mwc_path => Some((
                    200,
                    json!({
                        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                        "metadata": {"name": WEBHOOK_CONFIGURATION_NAME}
                    }),
                )),
                _ => Some(not_found("things", &r.path)),
            }
        })
    }

    #[tokio::test]
    async fn the_rotator_stores_publishes_and_serves_then_keeps_what_is_valid() {
        let secret = Arc::new(Mutex::new(None));
        let (client, log) = fake_client(fake_cluster(secret.clone()));
        let resolver = Arc::new(CertResolver::new(Metrics::new(), None));
        let rotator = Rotator::new(client, names(), resolver.clone()).with_clock(|| NOW);

        rotator.reconcile().await.unwrap();
        let stored = secret.lock().unwrap().clone().expect("the Secret was created");
        for key in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
            assert!(
                stored["data"][key].as_str().is_some_and(|v| !v.is_empty()),
                "{key} missing"
            );
        }
        let served = resolver.current().expect("a certificate is served");
        assert_eq!(served.not_after(), NOW + LEAF_LIFETIME);
        let patch = log
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.method == "PATCH")
            .cloned()
            .expect("caBundle patched");
        assert_eq!(patch.body[1]["path"], "/webhooks/0/clientConfig/caBundle");
        assert_eq!(patch.body[1]["value"], stored["data"]["ca.crt"]);

        // A second pass finds a valid bundle: no write.
        let writes_before = log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == "PUT" || r.method == "POST")
            .count();
        rotator.reconcile().await.unwrap();
        let writes_after = log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == "PUT" || r.method == "POST")
            .count();
        assert_eq!(writes_before, writes_after);

        // 300 days later the serving certificate is renewed from the same CA.
        let later = Rotator::new(
            fake_client(fake_cluster(secret.clone())).0,
            names(),
            resolver.clone(),
        )
        .with_clock(|| NOW + time::Duration::days(300));
        later.reconcile().await.unwrap();
        let renewed = secret.lock().unwrap().clone().unwrap();
        assert_eq!(renewed["data"]["ca.crt"], stored["data"]["ca.crt"]);
        assert_ne!(renewed["data"]["tls.crt"], stored["data"]["tls.crt"]);
        assert_eq!(
            resolver.current().unwrap().not_after(),
            NOW + time::Duration::days(300) + LEAF_LIFETIME
        );
    }

    #[tokio::test]
    async fn a_deleted_secret_is_recreated_with_the_certificates_being_served() {
        let secret = Arc::new(Mutex::new(None));
        let (client, log) = fake_client(fake_cluster(secret.clone()));
        let resolver = Arc::new(CertResolver::new(Metrics::new(), None));
        let rotator = Rotator::new(client, names(), resolver.clone())
            .with_clock(|| NOW)
            .with_restore_delay(Duration::from_millis(20));
        rotator.reconcile().await.unwrap();
        let first = secret.lock().unwrap().clone().expect("created");

        // Deleted (or emptied): the next pass creates it again with the same CA and certificate.
        *secret.lock().unwrap() = None;
        rotator.reconcile().await.unwrap();
        let again = secret.lock().unwrap().clone().expect("recreated");
        for key in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
            assert_eq!(again["data"][key], first["data"][key], "{key} changed");
        }
        let count = |method: &str| log.lock().unwrap().iter().filter(|r| r.method == method).count();
        assert_eq!(count("POST"), 2, "one create per missing Secret");
        // The deleted Secret was read again after the delay before it was recreated.
        let secret_reads = log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/secrets/"))
            .count();
        assert_eq!(secret_reads, 1 + 2);
        let helm = json!({"meta.helm.sh/release-name": "workload-identity-webhook"});
        *secret.lock().unwrap() = Some(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": "azure-workload-identity-system", "resourceVersion": "7",
                "labels": {"app.kubernetes.io/managed-by": "Helm"}, "annotations": helm},
        }));
        rotator.reconcile().await.unwrap();
        let refilled = secret.lock().unwrap().clone().unwrap();
        assert_eq!(refilled["data"]["ca.crt"], first["data"]["ca.crt"]);
        // Deleted again: recreated with the labels and annotations it had (Helm's ownership).
        *secret.lock().unwrap() = None;
        rotator.reconcile().await.unwrap();
        let owned = secret.lock().unwrap().clone().unwrap();
        assert_eq!(owned["metadata"]["annotations"], helm);
        assert_eq!(
            owned["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "Helm"
        );
        assert_eq!(owned["data"]["ca.crt"], first["data"]["ca.crt"]);
    }
}
