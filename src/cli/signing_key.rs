//! Service-account signing keys in PEM files -> their public keys as JSON Web Keys, with the key
//! id (`kid`) and algorithm the Kubernetes API server gives them in `/openid/v1/jwks`.
//!
//! Accepted PEM blocks (several per file, in order): `PUBLIC KEY` (SubjectPublicKeyInfo),
//! `RSA PUBLIC KEY` (PKCS#1), `CERTIFICATE` (its public key), `PRIVATE KEY` (PKCS#8),
//! `RSA PRIVATE KEY` (PKCS#1) and `EC PRIVATE KEY` (SEC1). Only the public part of a private key
//! is kept. Keys are RSA (`RS256`, the only RSA algorithm the API server signs with) or EC on
//! P-256, P-384 or P-521 (`ES256`, `ES384`, `ES512`).
//!
//! The key id is the API server's: SHA-256 of the public key's DER SubjectPublicKeyInfo (RSA with
//! NULL parameters, EC as an uncompressed point with the curve's OID), unpadded base64url.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};

/// The most a key file may hold; signing keys are a few KiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// DER of the rsaEncryption OID (1.2.840.113549.1.1.1), content bytes.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// DER of the id-ecPublicKey OID (1.2.840.10045.2.1), content bytes.
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// An elliptic curve the API server signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
    /// NIST P-521 (secp521r1).
    P521,
}

impl Curve {
    fn from_oid(oid: &[u8]) -> Option<Self> {
        match oid {
            [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07] => Some(Self::P256),
            [0x2b, 0x81, 0x04, 0x00, 0x22] => Some(Self::P384),
            [0x2b, 0x81, 0x04, 0x00, 0x23] => Some(Self::P521),
            _ => None,
        }
    }

    fn oid(self) -> &'static [u8] {
        match self {
            Self::P256 => &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            Self::P384 => &[0x2b, 0x81, 0x04, 0x00, 0x22],
            Self::P521 => &[0x2b, 0x81, 0x04, 0x00, 0x23],
        }
    }

    /// The JWK `crv`.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    /// The JWS algorithm the API server signs with on this curve.
    pub fn algorithm(self) -> &'static str {
        match self {
            Self::P256 => "ES256",
            Self::P384 => "ES384",
            Self::P521 => "ES512",
        }
    }

    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }
}

/// A public key of a service-account signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA: modulus and public exponent, big-endian without leading zeros.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
    /// EC: the curve and the uncompressed point (`04 || x || y`).
    Ec {
        /// The curve.
        curve: Curve,
        /// The uncompressed point.
        point: Vec<u8>,
    },
}

/// A JSON Web Key, its fields in the order the API server writes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Jwk {
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// `RSA` or `EC`.
    pub kty: &'static str,
    /// The key id the API server puts in the tokens' header.
    pub kid: String,
    /// The curve (EC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    /// The signing algorithm.
    pub alg: &'static str,
    /// The modulus (RSA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// The public exponent (RSA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// The x coordinate (EC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// The y coordinate (EC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

impl PublicKey {
    /// The DER SubjectPublicKeyInfo, as Go's `x509.MarshalPKIXPublicKey` writes it.
    pub fn spki_der(&self) -> Vec<u8> {
        let (algorithm, key) = match self {
            Self::Rsa { n, e } => (
                der(0x30, &[der(0x06, RSA_ENCRYPTION), der(0x05, &[])].concat()),
                der(0x30, &[der_uint(n), der_uint(e)].concat()),
            ),
            Self::Ec { curve, point } => (
                der(0x30, &[der(0x06, EC_PUBLIC_KEY), der(0x06, curve.oid())].concat()),
                point.clone(),
            ),
        };
        let bits = [&[0u8][..], &key].concat();
        der(0x30, &[algorithm, der(0x03, &bits)].concat())
    }

    /// The API server's key id: unpadded base64url of the SHA-256 of [`Self::spki_der`].
    pub fn key_id(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.spki_der()))
    }

    /// The signing algorithm the API server announces for this key.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Rsa { .. } => "RS256",
            Self::Ec { curve, .. } => curve.algorithm(),
        }
    }

    /// The JSON Web Key.
    pub fn jwk(&self) -> Jwk {
        let b64 = |bytes: &[u8]| Some(URL_SAFE_NO_PAD.encode(bytes));
        let mut jwk = Jwk {
            use_: "sig",
            kty: "RSA",
            kid: self.key_id(),
            crv: None,
            alg: self.algorithm(),
            n: None,
            e: None,
            x: None,
            y: None,
        };
        match self {
            Self::Rsa { n, e } => {
                jwk.n = b64(n);
                jwk.e = b64(e);
            }
            Self::Ec { curve, point } => {
                let len = curve.coordinate_len();
                jwk.kty = "EC";
                jwk.crv = Some(curve.name());
                jwk.x = b64(&point[1..1 + len]);
                jwk.y = b64(&point[1 + len..]);
            }
        }
        jwk
    }
}

/// Every key in a PEM file's text, in order. `file` names the file in errors.
pub fn keys_from_pem(text: &[u8], file: &str) -> Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    for (index, block) in x509_parser::pem::Pem::iter_from_buffer(text).enumerate() {
        let block =
            block.map_err(|error| format!("{file}: PEM block {} is malformed: {error}", index + 1))?;
        let what = |problem: &str| format!("{file}: the {} block is {problem}", block.label);
        let key = match block.label.as_str() {
            "PUBLIC KEY" => from_spki(&block.contents),
            "RSA PUBLIC KEY" => rsa_public_pkcs1(&block.contents),
            "CERTIFICATE" => x509_parser::parse_x509_certificate(&block.contents)
                .map_err(|_| "not a DER certificate".to_owned())
                .and_then(|(_, cert)| from_spki(cert.public_key().raw)),
            "RSA PRIVATE KEY" => rsa_private_pkcs1(&block.contents),
            "EC PRIVATE KEY" => ec_private_sec1(&block.contents, None),
            "PRIVATE KEY" => private_pkcs8(&block.contents),
            "ENCRYPTED PRIVATE KEY" => {
                Err("encrypted: decrypt it first (openssl pkey -in FILE -out PLAIN)".into())
            }
            other => Err(format!(
                "of a kind that holds no signing key ({other:?}; expected PUBLIC KEY, RSA PUBLIC KEY, \
                 CERTIFICATE, PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
            )),
        }
        .map_err(|problem| what(&problem))?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(format!(
            "{file} holds no PEM block: give the API server's --service-account-key-file (or the \
             signing key file) in PEM"
        ));
    }
    Ok(keys)
}

/// One DER element: (tag byte, content, rest).
fn element(input: &[u8]) -> Result<(Any<'_>, &[u8]), String> {
    let (rest, any) =
        <Any as FromDer>::from_der(input).map_err(|error| format!("not valid DER ({error})"))?;
    Ok((any, rest))
}

/// The elements of the SEQUENCE at the start of `input`.
fn sequence(input: &[u8]) -> Result<Vec<Any<'_>>, String> {
    let (outer, _) = element(input)?;
    sequence_items(&outer)
}

/// The elements of a SEQUENCE.
fn sequence_items<'a>(outer: &Any<'a>) -> Result<Vec<Any<'a>>, String> {
    if outer.header.tag() != Tag::Sequence {
        return Err("not a DER SEQUENCE".into());
    }
    let mut items = Vec::new();
    let mut data = outer.data;
    while !data.is_empty() {
        let (item, rest) = element(data)?;
        items.push(item);
        data = rest;
    }
    Ok(items)
}

fn integer<'a>(any: Option<&Any<'a>>, name: &str) -> Result<&'a [u8], String> {
    match any {
        Some(any) if any.header.tag() == Tag::Integer && any.header.class() == Class::Universal => {
            let bytes = any.data;
            let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
            Ok(&bytes[start..])
        }
        _ => Err(format!("missing the {name}")),
    }
}

fn rsa(n: &[u8], e: &[u8]) -> Result<PublicKey, String> {
    if n.len() < 256 {
        return Err(format!(
            "an RSA key of {} bits: the API server needs 2048 bits or more",
            n.len() * 8
        ));
    }
    if e.is_empty() {
        return Err("an RSA key without a public exponent".into());
    }
    Ok(PublicKey::Rsa {
        n: n.to_vec(),
        e: e.to_vec(),
    })
}

fn ec(curve: Curve, point: &[u8]) -> Result<PublicKey, String> {
    let len = curve.coordinate_len();
    if point.len() != 1 + 2 * len || point[0] != 0x04 {
        return Err(format!(
            "an EC {} key whose public point is not uncompressed ({} bytes)",
            curve.name(),
            point.len()
        ));
    }
    Ok(PublicKey::Ec {
        curve,
        point: point.to_vec(),
    })
}

fn curve_of(oid: Option<&Any<'_>>) -> Result<Curve, String> {
    match oid {
        Some(oid) if oid.header.tag() == Tag::Oid => Curve::from_oid(oid.data)
            .ok_or_else(|| "an EC key on a curve other than P-256, P-384 or P-521".to_owned()),
        _ => Err("an EC key without its curve".into()),
    }
}

/// SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier, BIT STRING }.
fn from_spki(der_bytes: &[u8]) -> Result<PublicKey, String> {
    let items = sequence(der_bytes)?;
    let (Some(algorithm), Some(bits)) = (items.first(), items.get(1)) else {
        return Err("not a SubjectPublicKeyInfo".into());
    };
    let algorithm = sequence_items(algorithm)?;
    let key = match bits.data.split_first() {
        Some((0, key)) if bits.header.tag() == Tag::BitString => key,
        _ => return Err("not a SubjectPublicKeyInfo (no key bits)".into()),
    };
    match algorithm.first().map(|oid| oid.data) {
        Some(RSA_ENCRYPTION) => rsa_public_pkcs1(key),
        Some(EC_PUBLIC_KEY) => ec(curve_of(algorithm.get(1))?, key),
        _ => Err("a key that is neither RSA nor EC".into()),
    }
}

/// RSAPublicKey: SEQUENCE { modulus, publicExponent }.
fn rsa_public_pkcs1(der_bytes: &[u8]) -> Result<PublicKey, String> {
    let items = sequence(der_bytes)?;
    rsa(
        integer(items.first(), "modulus")?,
        integer(items.get(1), "public exponent")?,
    )
}

/// RSAPrivateKey: SEQUENCE { version, modulus, publicExponent, ... }.
fn rsa_private_pkcs1(der_bytes: &[u8]) -> Result<PublicKey, String> {
    let items = sequence(der_bytes)?;
    rsa(
        integer(items.get(1), "modulus")?,
        integer(items.get(2), "public exponent")?,
    )
}

/// ECPrivateKey: SEQUENCE { 1, privateKey OCTET STRING, [0] curve OID OPTIONAL, [1] publicKey
/// BIT STRING OPTIONAL }; PKCS#8 gives the curve in its algorithm instead.
fn ec_private_sec1(der_bytes: &[u8], curve: Option<Curve>) -> Result<PublicKey, String> {
    let items = sequence(der_bytes)?;
    let tagged = |n: u32| {
        items
            .iter()
            .find(|any| any.header.class() == Class::ContextSpecific && any.header.tag() == Tag(n))
            .map(|any| element(any.data).map(|(inner, _)| inner))
            .transpose()
    };
    let curve = match (tagged(0)?, curve) {
        (Some(oid), _) => curve_of(Some(&oid))?,
        (None, Some(curve)) => curve,
        (None, None) => return Err("an EC key without its curve".into()),
    };
    match tagged(1)? {
        Some(bits) if bits.header.tag() == Tag::BitString => match bits.data.split_first() {
            Some((0, point)) => ec(curve, point),
            _ => Err("an EC key with a malformed public key".into()),
        },
        _ => Err(
            "an EC private key without its public key: write the public key with \
             `openssl ec -in KEY -pubout` and give that file"
                .into(),
        ),
    }
}

/// PrivateKeyInfo: SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING, ... }.
fn private_pkcs8(der_bytes: &[u8]) -> Result<PublicKey, String> {
    let items = sequence(der_bytes)?;
    let (Some(algorithm), Some(private)) = (items.get(1), items.get(2)) else {
        return Err("not a PKCS#8 private key".into());
    };
    let algorithm = sequence_items(algorithm)?;
    if private.header.tag() != Tag::OctetString {
        return Err("not a PKCS#8 private key".into());
    }
    match algorithm.first().map(|oid| oid.data) {
        Some(RSA_ENCRYPTION) => rsa_private_pkcs1(private.data),
        Some(EC_PUBLIC_KEY) => ec_private_sec1(private.data, Some(curve_of(algorithm.get(1))?)),
        _ => Err("a key that is neither RSA nor EC".into()),
    }
}

/// A DER TLV.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER of an unsigned big-endian number without leading zeros.
fn der_uint(value: &[u8]) -> Vec<u8> {
    match value.first() {
        None => der(0x02, &[0]),
        Some(first) if first & 0x80 != 0 => der(0x02, &[&[0u8][..], value].concat()),
        Some(_) => der(0x02, value),
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PublicKeyData};

    use super::*;

    fn pem(label: &str, der_bytes: &[u8]) -> String {
        pem::encode(&pem::Pem::new(label, der_bytes))
    }

    #[test]
    fn ec_keys_private_and_public_give_the_same_jwk() {
        for alg in [&PKCS_ECDSA_P256_SHA256, &PKCS_ECDSA_P384_SHA384] {
            let pair = KeyPair::generate_for(alg).unwrap();
            let private = keys_from_pem(pair.serialize_pem().as_bytes(), "key.pem").unwrap();
            let public = keys_from_pem(pair.public_key_pem().as_bytes(), "pub.pem").unwrap();
            assert_eq!(private, public);
            // Re-encoding the key gives the file's SubjectPublicKeyInfo byte for byte.
            assert_eq!(public[0].spki_der(), pair.subject_public_key_info());
            let jwk = public[0].jwk();
            assert_eq!(jwk.kty, "EC");
            assert_eq!(
                jwk.kid,
                URL_SAFE_NO_PAD.encode(Sha256::digest(pair.subject_public_key_info()))
            );
        }
    }

    #[test]
    fn rsa_keys_in_every_encoding_give_the_same_jwk() {
        use rsa::{
            pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey},
            pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding},
        };
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let public = key.to_public_key();
        let files = [
            key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
            key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public.to_public_key_pem(LineEnding::LF).unwrap(),
            public.to_pkcs1_pem(LineEnding::LF).unwrap(),
        ];
        let spki = public.to_public_key_der().unwrap();
        for file in &files {
            let keys = keys_from_pem(file.as_bytes(), "sa").unwrap();
            assert_eq!(keys.len(), 1);
            assert_eq!(keys[0].spki_der(), spki.as_bytes(), "{file}");
            let jwk = keys[0].jwk();
            assert_eq!((jwk.kty, jwk.alg, jwk.use_), ("RSA", "RS256", "sig"));
            assert_eq!(jwk.e.as_deref(), Some("AQAB"));
            assert_eq!(jwk.kid, URL_SAFE_NO_PAD.encode(Sha256::digest(spki.as_bytes())));
        }
        // Several blocks in one file: every key, in order.
        let both = keys_from_pem(format!("{}{}", files[2], files[0]).as_bytes(), "both").unwrap();
        assert_eq!(both.len(), 2);
    }

    #[test]
    fn files_without_keys_or_with_other_blocks_are_named_in_the_error() {
        let error = keys_from_pem(b"hello", "sa.pub").unwrap_err();
        assert!(error.contains("sa.pub holds no PEM block"), "{error}");
        let error = keys_from_pem(pem("DH PARAMETERS", &[0x30, 0]).as_bytes(), "x.pem").unwrap_err();
        assert!(error.contains("x.pem: the DH PARAMETERS block"), "{error}");
        let error =
            keys_from_pem(pem("PUBLIC KEY", &[0x30, 0x03, 0x02, 0x01]).as_bytes(), "y.pem").unwrap_err();
        assert!(error.starts_with("y.pem: the PUBLIC KEY block is"), "{error}");
    }

    #[test]
    fn der_lengths_and_integers() {
        assert_eq!(der(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        assert_eq!(der(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(der_uint(&[0x80]), [0x02, 2, 0, 0x80]);
        assert_eq!(der_uint(&[1, 0, 1]), [0x02, 3, 1, 0, 1]);
    }
}
