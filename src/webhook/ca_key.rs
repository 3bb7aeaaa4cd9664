//! The CA's private key in every form a certificate Secret may hold it, and a new one in the form
//! upstream's certificate rotator writes.
//!
//! Upstream (open-policy-agent/cert-controller, used by azure-workload-identity) writes its CA key
//! as PKCS#1 (`BEGIN RSA PRIVATE KEY`, RSA 2048) and reads it back only as PKCS#1. rcgen on ring
//! signs only with PKCS#8 keys, so PKCS#1 RSA and SEC1 EC (`BEGIN EC PRIVATE KEY`) keys are
//! re-wrapped as PKCS#8 in memory; the Secret keeps what it holds.
//!
//! A CA we generate is RSA 2048 stored as PKCS#1, like upstream's, so that upstream's replicas
//! (a mixed rollout, or a rollback) can renew their serving certificate from it. The `rsa` crate
//! only generates the key; every signature is made by ring.

use rcgen::KeyPair;
use rsa::pkcs8::{
    AlgorithmIdentifierRef, EncodePrivateKey, ObjectIdentifier, PrivateKeyInfo, der::Encode as _,
};
use rustls::pki_types::{PrivateKeyDer, pem::PemObject};

/// Why a CA key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaKeyError {
    /// No PEM private key block.
    #[error("the CA key is not a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)")]
    NotPem,
    /// A PEM block whose content ring cannot sign with.
    #[error("the CA key ({form}) cannot be used for signing")]
    Unusable {
        /// `PKCS#8`, `PKCS#1` or `SEC1`.
        form: &'static str,
    },
    /// Generating a key failed.
    #[error("cannot generate an RSA key: {0}")]
    Generate(String),
}

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const EC_CURVES: [ObjectIdentifier; 2] = [
    ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"), // P-256
    ObjectIdentifier::new_unwrap("1.3.132.0.34"),        // P-384
];

/// The signing key in `pem`: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
/// (`EC PRIVATE KEY`, P-256 or P-384).
pub fn parse(pem: &str) -> Result<KeyPair, CaKeyError> {
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| CaKeyError::NotPem)?;
    match der {
        PrivateKeyDer::Pkcs8(der) => {
            KeyPair::try_from(der.secret_pkcs8_der()).map_err(|_| CaKeyError::Unusable { form: "PKCS#8" })
        }
        PrivateKeyDer::Pkcs1(der) => {
            let pkcs8 = wrap(RSA_ENCRYPTION, None, der.secret_pkcs1_der())
                .ok_or(CaKeyError::Unusable { form: "PKCS#1" })?;
            KeyPair::try_from(pkcs8.as_slice()).map_err(|_| CaKeyError::Unusable { form: "PKCS#1" })
        }
        PrivateKeyDer::Sec1(der) => EC_CURVES
            .iter()
            .filter_map(|curve| wrap(EC_PUBLIC_KEY, Some(curve), der.secret_sec1_der()))
            .find_map(|pkcs8| KeyPair::try_from(pkcs8.as_slice()).ok())
            .ok_or(CaKeyError::Unusable { form: "SEC1" }),
        _ => Err(CaKeyError::NotPem),
    }
}

/// A PKCS#8 `PrivateKeyInfo` around a PKCS#1 or SEC1 key.
fn wrap(algorithm: ObjectIdentifier, curve: Option<&ObjectIdentifier>, key: &[u8]) -> Option<Vec<u8>> {
    let parameters = match curve {
        Some(curve) => Some(curve.into()),
        // rsaEncryption carries an explicit NULL.
        None => Some(rsa::pkcs8::der::asn1::AnyRef::NULL),
    };
    PrivateKeyInfo::new(
        AlgorithmIdentifierRef {
            oid: algorithm,
            parameters,
        },
        key,
    )
    .to_der()
    .ok()
}

/// A new RSA 2048 key: (PKCS#1 PEM for the Secret, the key pair to sign with).
pub fn generate_rsa() -> Result<(String, KeyPair), CaKeyError> {
    use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
        .map_err(|e| CaKeyError::Generate(e.to_string()))?;
    let pem = key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| CaKeyError::Generate(e.to_string()))?;
    let pkcs8 = key
        .to_pkcs8_der()
        .map_err(|e| CaKeyError::Generate(e.to_string()))?;
    let pair = KeyPair::try_from(pkcs8.as_bytes()).map_err(|e| CaKeyError::Generate(e.to_string()))?;
    Ok((pem.to_string(), pair))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_pkcs1_and_parses_back_to_the_same_key() {
        let (pem, pair) = generate_rsa().unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"), "{pem}");
        let parsed = parse(&pem).unwrap();
        assert_eq!(parsed.public_key_raw(), pair.public_key_raw());
        assert_eq!(parsed.algorithm(), &rcgen::PKCS_RSA_SHA256);
    }

    #[test]
    fn pkcs8_and_sec1_keys_parse() {
        let pair = KeyPair::generate().unwrap();
        let pkcs8 = pair.serialize_pem();
        assert_eq!(parse(&pkcs8).unwrap().public_key_raw(), pair.public_key_raw());
        // SEC1: the ECPrivateKey inside the PKCS#8 document, as `openssl ec` writes it.
        let info = PrivateKeyInfo::try_from(pair.serialized_der()).unwrap();
        let sec1_pem = pem_block("EC PRIVATE KEY", info.private_key);
        assert_eq!(parse(&sec1_pem).unwrap().public_key_raw(), pair.public_key_raw());
    }

    #[test]
    fn garbage_and_unsupported_keys_are_refused_with_the_form() {
        assert!(matches!(parse("junk"), Err(CaKeyError::NotPem)));
        let bad = pem_block("RSA PRIVATE KEY", b"\x30\x03\x02\x01\x00");
        assert!(matches!(
            parse(&bad),
            Err(CaKeyError::Unusable { form: "PKCS#1" })
        ));
    }

    fn pem_block(label: &str, der: &[u8]) -> String {
        pem::encode(&pem::Pem::new(label, der))
    }
}
