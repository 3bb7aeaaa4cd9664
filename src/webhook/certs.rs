//! Self-managed certificates, like upstream's cert rotation: a CA and a serving certificate kept
//! in a Secret, the CA written into the MutatingWebhookConfiguration's `caBundle`, renewal before
//! expiry.
//!
//! - [`CertBundle::generate`] / [`CertBundle::renew_leaf`]: pure rcgen work (ECDSA P-256; run them in
//!   `spawn_blocking`).
//! - [`decide`]: what to do with the bundle found in the Secret at a given wall-clock time.
//! - [`Rotator`]: the Kubernetes side (Secret, MutatingWebhookConfiguration) and the periodic check.
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

use super::tls::{CertResolver, ServingCert, TlsError};
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
/// How often the Secret is re-read and the expiry checked.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(3600);

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
        vec![svc.clone(), format!("{svc}.{ns}"), format!("{svc}.{ns}.svc"), format!("{svc}.{ns}.svc.cluster.local")]
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
    /// A new CA and a serving certificate for `dns_names`, valid from `now`.
    pub fn generate(dns_names: &[String], now: OffsetDateTime) -> Result<Self, CertError> {
        let ca_key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(CA_COMMON_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + CA_LIFETIME;
        let ca_cert = params.self_signed(&ca_key)?;
        let issuer = Issuer::new(params, &ca_key);
        let (cert_pem, key_pem) = issue_leaf(&issuer, dns_names, now)?;
        Ok(Self { ca_cert_pem: ca_cert.pem(), ca_key_pem: ca_key.serialize_pem(), cert_pem, key_pem })
    }

    /// A new serving certificate for `dns_names` from the same CA, valid from `now`.
    pub fn renew_leaf(&self, dns_names: &[String], now: OffsetDateTime) -> Result<Self, CertError> {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca_cert_pem, &ca_key)?;
        let (cert_pem, key_pem) = issue_leaf(&issuer, dns_names, now)?;
        Ok(Self { cert_pem, key_pem, ..self.clone() })
    }

    /// The serving certificate and key, parsed for rustls.
    pub fn serving_cert(&self) -> Result<ServingCert, TlsError> {
        ServingCert::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes(), "the generated certificate")
    }

    fn from_secret(secret: &Secret) -> Option<Self> {
        let data = secret.data.as_ref()?;
        let get = |key: &str| {
            data.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok()).filter(|s| !s.trim().is_empty())
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
    params.distinguished_name = name(dns_names.first().map_or(SERVICE_NAME, String::as_str));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
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

/// Decides, at wall-clock time `now`, whether `bundle` can keep serving `dns_names`.
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
    if rcgen::KeyPair::from_pem(&bundle.ca_key_pem).is_err() {
        return Decision::Regenerate("the CA key does not parse".into());
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
    CertificateDer::pem_slice_iter(pem.as_bytes()).next()?.ok().map(|c| c.to_vec())
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

/// Keeps the Secret, the `caBundle` and the serving certificate current.
#[derive(Clone)]
pub struct Rotator {
    client: Client,
    names: CertNames,
    resolver: Arc<CertResolver>,
    clock: fn() -> OffsetDateTime,
}

impl std::fmt::Debug for Rotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotator").field("names", &self.names).finish_non_exhaustive()
    }
}

impl Rotator {
    /// A rotator for `names`, feeding `resolver`.
    pub fn new(client: Client, names: CertNames, resolver: Arc<CertResolver>) -> Self {
        Self { client, names, resolver, clock: OffsetDateTime::now_utc }
    }

    /// Uses `clock` instead of the system's wall clock (tests).
    pub fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = clock;
        self
    }

    /// Runs until `shutdown`: reconciles now, then every [`CHECK_INTERVAL`]; retries failures
    /// after 10 seconds.
    pub async fn run(self, shutdown: Shutdown) {
        loop {
            let wait = match self.reconcile().await {
                Ok(()) => CHECK_INTERVAL,
                Err(error) => {
                    tracing::warn!(%error, "certificate rotation failed; retrying in 10 s");
                    Duration::from_secs(10)
                }
            };
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One pass: read the Secret, renew what needs it (storing the result with optimistic
    /// concurrency, so that of several replicas one wins and the others adopt its result),
    /// publish the CA in the `caBundle`, and serve the serving certificate.
    pub async fn reconcile(&self) -> Result<(), CertError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.names.namespace);
        let dns_names = self.names.dns_names();
        let bundle = loop {
            let existing = secrets.get_opt(&self.names.secret).await.map_err(|source| CertError::Api {
                action: format!("cannot read Secret {}/{}", self.names.namespace, self.names.secret),
                source,
            })?;
            let current = existing.as_ref().and_then(CertBundle::from_secret);
            let now = (self.clock)();
            let renewed = match decide(current.as_ref(), &dns_names, now) {
                Decision::Keep => break current.expect("Keep implies a bundle"),
                Decision::Regenerate(reason) => {
                    tracing::info!(%reason, "generating a new CA and serving certificate");
                    let names = dns_names.clone();
                    blocking(move || CertBundle::generate(&names, now)).await?
                }
                Decision::RenewLeaf(reason) => {
                    tracing::info!(%reason, "renewing the serving certificate");
                    let (names, old) = (dns_names.clone(), current.clone().expect("RenewLeaf implies a bundle"));
                    blocking(move || old.renew_leaf(&names, now)).await?
                }
            };
            match self.store(&secrets, existing, &renewed).await {
                Ok(()) => break renewed,
                Err(CertError::Api { source: kube::Error::Api(status), .. }) if status.code == 409 => {
                    tracing::info!("another replica updated the certificate Secret first; adopting its certificates");
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
        Ok(())
    }

    async fn store(&self, secrets: &Api<Secret>, existing: Option<Secret>, bundle: &CertBundle) -> Result<(), CertError> {
        let action = format!("cannot store the certificates in Secret {}/{}", self.names.namespace, self.names.secret);
        let result = match existing {
            // `replace` carries the resourceVersion read above: a concurrent writer makes it 409.
            Some(mut secret) => {
                secret.data = Some(bundle.secret_data());
                secret.string_data = None;
                secrets.replace(&self.names.secret, &PostParams::default(), &secret).await.map(drop)
            }
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(self.names.secret.clone()),
                        namespace: Some(self.names.namespace.clone()),
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
        let Some(mwc) = api.get_opt(name).await.map_err(|source| CertError::Api { action: action.clone(), source })?
        else {
            tracing::warn!(name, "MutatingWebhookConfiguration not found; the API server cannot trust this webhook");
            return Ok(());
        };
        let patch = ca_bundle_patch(&mwc, ca_pem);
        if patch.is_empty() {
            return Ok(());
        }
        let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(patch))
            .map_err(|e| CertError::Task(format!("internal: bad caBundle patch: {e}")))?;
        api.patch(name, &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &Patch::<()>::Json(patch))
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
        ops.push(serde_json::json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": webhook.name}));
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
    tokio::task::spawn_blocking(f).await.map_err(|e| CertError::Task(e.to_string()))?
}
