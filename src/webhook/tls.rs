//! The serving certificate: a rustls resolver that swaps certificates without a restart.
//!
//! [`CertResolver`] implements [`ResolvesServerCert`] over an `ArcSwapOption`, so a handshake
//! costs one atomic load and a rotation is one store; no file is read during a handshake.
//! Certificates reach it from two places:
//! - [`watch_cert_dir`]: `tls.crt`/`tls.key` in `--webhook-cert-dir`, re-read every few seconds
//!   and swapped in when their content changes. Polling the paths (not inotify on the files)
//!   survives the kubelet's `..data` symlink swap of Secret volumes.
//! - [`crate::webhook::certs`]: the self-managed CA and serving certificate, straight from memory.

use std::{fmt, path::Path, str::FromStr, sync::Arc, time::Duration};

use arc_swap::ArcSwapOption;
use azure_wi_identity::bounded_file::{FileError, read_regular_file_async};
use rustls::{
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use time::OffsetDateTime;

use super::metrics::Metrics;
use crate::server::{ReadinessCondition, Shutdown};

/// File name of the serving certificate chain in the certificate directory.
pub const CERT_FILE: &str = "tls.crt";
/// File name of the serving key in the certificate directory.
pub const KEY_FILE: &str = "tls.key";

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: FileError,
    },
    /// The PEM holds no certificate.
    #[error("{what} holds no PEM certificate")]
    NoCertificate {
        /// Where the PEM came from.
        what: String,
    },
    /// The PEM holds no usable private key.
    #[error("{what} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    BadKey {
        /// Where the PEM came from.
        what: String,
        /// Why.
        reason: String,
    },
    /// The certificate does not parse or does not match the key.
    #[error("invalid serving certificate: {0}")]
    BadCertificate(String),
    /// The `--tls-min-version` value is not one rustls supports.
    #[error("unsupported TLS version {0:?}: use 1.2 or 1.3 (rustls does not speak 1.0 or 1.1)")]
    UnsupportedVersion(String),
}

/// A parsed serving certificate with its key, ready for handshakes.
#[derive(Clone)]
pub struct ServingCert {
    key: Arc<CertifiedKey>,
    not_after: OffsetDateTime,
    fingerprint: [u8; 32],
}

impl fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCert")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl ServingCert {
    /// Parses a PEM certificate chain (leaf first) and its PEM private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], what: &str) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .filter_map(Result::ok)
            .collect();
        let leaf = chain.first().ok_or_else(|| TlsError::NoCertificate {
            what: what.to_owned(),
        })?;
        let not_after = not_after(leaf)?;
        let fingerprint = sha256(leaf);
        let key_der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadKey {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
        let signing_key = ring::sign::any_supported_type(&key_der).map_err(|e| TlsError::BadKey {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
        let key = CertifiedKey::new(chain, signing_key);
        key.keys_match()
            .map_err(|e| TlsError::BadCertificate(format!("{what}: {e}")))?;
        Ok(Self {
            key: Arc::new(key),
            not_after,
            fingerprint,
        })
    }

    /// The leaf's `notAfter`.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
}

fn sha256(der: &[u8]) -> [u8; 32] {
    let digest = ::ring::digest::digest(&::ring::digest::SHA256, der);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Reads the `notAfter` of a DER certificate.
pub fn not_after(der: &[u8]) -> Result<OffsetDateTime, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::BadCertificate(format!("cannot parse the certificate: {e}")))?;
    Ok(cert.validity().not_after.to_datetime())
}

/// Hands out the current serving certificate to every handshake; swapped atomically.
pub struct CertResolver {
    current: ArcSwapOption<ServingCert>,
    loaded: Option<ReadinessCondition>,
    metrics: Metrics,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver")
            .field("current", &self.current.load())
            .finish_non_exhaustive()
    }
}

impl CertResolver {
    /// An empty resolver: handshakes fail until [`CertResolver::set`] is called. `loaded` is
    /// set once a certificate is in.
    pub fn new(metrics: Metrics, loaded: Option<ReadinessCondition>) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            loaded,
            metrics,
        }
    }

    /// Installs `cert` for every later handshake. Returns whether it differs from the previous one.
    pub fn set(&self, cert: ServingCert) -> bool {
        let expiry = cert.not_after.unix_timestamp();
        let previous = self.current.swap(Some(Arc::new(cert)));
        let changed = match &previous {
            Some(previous) => {
                let now = self.current.load();
                now.as_ref()
                    .is_some_and(|now| now.fingerprint != previous.fingerprint)
            }
            None => true,
        };
        if previous.is_some() && changed {
            self.metrics.certificate_reloads.inc();
        }
        self.metrics.certificate_expiry.set(expiry);
        if let Some(loaded) = &self.loaded {
            loaded.set(true);
        }
        changed
    }

    /// The certificate in use, if any.
    pub fn current(&self) -> Option<Arc<ServingCert>> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load().as_ref().map(|cert| cert.key.clone())
    }
}

/// The lowest TLS version the server accepts (`--tls-min-version`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMinVersion {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only (upstream's default).
    #[default]
    Tls13,
}

impl FromStr for TlsMinVersion {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "1.2" => Ok(Self::Tls12),
            "1.3" => Ok(Self::Tls13),
            other => Err(TlsError::UnsupportedVersion(other.to_owned())),
        }
    }
}

impl fmt::Display for TlsMinVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        })
    }
}

/// A rustls server configuration over `resolver` (ring provider, ALPN `h2` and `http/1.1`).
pub fn server_config(resolver: Arc<CertResolver>, min_version: TlsMinVersion) -> Arc<rustls::ServerConfig> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min_version {
        TlsMinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(versions)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Loads `tls.crt`/`tls.key` from `dir`.
pub async fn load_cert_dir(dir: &Path) -> Result<ServingCert, TlsError> {
    let (cert, key) = read_pair(dir).await?;
    ServingCert::from_pem(&cert, &key, &dir.display().to_string())
}

/// The most a PEM file of the pair may hold: a Secret, where the pair usually comes from, holds
/// at most 1 MiB in all. The pair is re-read on a timer, so a file that grows without end (or a
/// FIFO) is never read whole.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

async fn read_pair(dir: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |name: &'static str| {
        let path = dir.join(name);
        async move {
            read_regular_file_async(path.clone(), MAX_PEM_BYTES)
                .await
                .map_err(|source| TlsError::Read {
                    path: path.display().to_string(),
                    source,
                })
        }
    };
    Ok((read(CERT_FILE).await?, read(KEY_FILE).await?))
}

/// Keeps `resolver` in step with `tls.crt`/`tls.key` in `dir`: re-reads both every `interval`
/// and swaps in the pair whenever its content changed and parses. A pair that does not parse
/// (e.g. the certificate rewritten before the key) is logged and retried when the files change
/// again; the previous certificate keeps serving meanwhile. Returns when `shutdown` fires.
pub async fn watch_cert_dir(dir: &Path, resolver: Arc<CertResolver>, interval: Duration, shutdown: Shutdown) {
    let mut last_seen: Option<(Vec<u8>, Vec<u8>)> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = ticker.tick() => {}
        }
        let pair = match read_pair(dir).await {
            Ok(pair) => pair,
            Err(error) => {
                if last_seen.is_some() {
                    tracing::warn!(%error, "cannot re-read the serving certificate; keeping the current one");
                } else {
                    tracing::info!(%error, "waiting for the serving certificate");
                }
                continue;
            }
        };
        if last_seen.as_ref() == Some(&pair) {
            continue;
        }
        match ServingCert::from_pem(&pair.0, &pair.1, &dir.display().to_string()) {
            Ok(cert) => {
                let not_after = cert.not_after();
                if resolver.set(cert) {
                    tracing::info!(dir = %dir.display(), %not_after, "serving certificate loaded");
                }
            }
            Err(error) => tracing::warn!(%error, "ignoring the serving certificate files until they change"),
        }
        last_seen = Some(pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_oversized_pem_file_is_refused_naming_the_file_and_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let crt = dir.path().join(CERT_FILE);
        std::fs::write(&crt, vec![b'A'; MAX_PEM_BYTES as usize + 1]).unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "key").unwrap();
        let error = load_cert_dir(dir.path()).await.unwrap_err().to_string();
        assert!(error.contains(&crt.display().to_string()), "{error}");
        assert!(error.contains("larger than 1048576 bytes"), "{error}");

        std::fs::remove_file(&crt).unwrap();
        std::fs::create_dir(&crt).unwrap();
        let error = load_cert_dir(dir.path()).await.unwrap_err().to_string();
        assert!(error.contains("a directory, not a regular file"), "{error}");
    }
}
