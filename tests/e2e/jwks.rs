//! End to end: `azure-wi jwks` writes what the real API server serves on `/openid/v1/jwks` and
//! `/.well-known/openid-configuration` for the same keys: its RSA signing key (read from the
//! private key file) and two more verification keys, EC P-256 (public key file) and EC P-384
//! (SEC1 private key file).

use azure_wi_test_support::e2e;

use e2e::testbed::TestBed;
use serde_json::Value;

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let response = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_and_discovery_match_the_api_servers() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let keys = tempfile::tempdir().unwrap();
    let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let p256_pub = keys.path().join("p256.pub");
    std::fs::write(&p256_pub, p256.public_key_pem()).unwrap();
    // The same P-384 key as SEC1 (`EC PRIVATE KEY`), the form `openssl ecparam -genkey` writes.
    let p384_key = keys.path().join("p384.key");
    std::fs::write(&p384_key, sec1_pem(&p384)).unwrap();

    let bed = TestBed::start_with(
        &[],
        &[
            format!("--service-account-key-file={}", p256_pub.display()),
            format!("--service-account-key-file={}", p384_key.display()),
        ],
    )
    .await;
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(bed.ca_pem.as_bytes()).unwrap()])
        .no_proxy()
        .build()
        .unwrap();
    let served_jwks = get_json(&http, &format!("{}/openid/v1/jwks", bed.url)).await;
    let served_discovery = get_json(&http, &format!("{}/.well-known/openid-configuration", bed.url)).await;
    assert_eq!(served_jwks["keys"].as_array().unwrap().len(), 3, "{served_jwks}");

    let out = tempfile::tempdir().unwrap();
    let (jwks_file, discovery_file) = (
        out.path().join("jwks.json"),
        out.path().join("openid-configuration"),
    );
    let signing_key = bed.dir.join("sa.key");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_azure-wi"))
        .arg("jwks")
        .arg("--public-keys")
        .arg(format!("{},{}", signing_key.display(), p256_pub.display()))
        .arg("--public-keys")
        .arg(&p384_key)
        .arg("--output-file")
        .arg(&jwks_file)
        .args(["--issuer", &bed.url])
        .arg("--discovery-file")
        .arg(&discovery_file)
        .output()
        .unwrap();
    assert_succeeded(&output);
    let written_jwks: Value = serde_json::from_slice(&std::fs::read(&jwks_file).unwrap()).unwrap();
    let written_discovery: Value = serde_json::from_slice(&std::fs::read(&discovery_file).unwrap()).unwrap();
    assert_eq!(written_jwks, served_jwks);
    assert_eq!(written_discovery, served_discovery);
    assert_eq!(
        served_discovery["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256", "ES384", "RS256"])
    );

    // Without --output-file: the same key set on standard output.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_azure-wi"))
        .args(["jwks", "--public-keys"])
        .arg(bed.dir.join("sa.pub"))
        .output()
        .unwrap();
    assert_succeeded(&output);
    let stdout: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stdout["keys"][0], served_jwks["keys"][0]);
}

/// The SEC1 (`EC PRIVATE KEY`) form of an rcgen P-384 key: the ECPrivateKey inside its PKCS#8.
/// The command exited successfully; its stderr otherwise.
fn assert_succeeded(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn sec1_pem(pair: &rcgen::KeyPair) -> String {
    let pkcs8 = pair.serialize_der();
    // PrivateKeyInfo ::= SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING ecPrivateKey }
    let (body, _) = der_element(&pkcs8);
    let (_, after_version) = der_element(body);
    let (_, after_algorithm) = der_element(after_version);
    let (sec1, _) = der_element(after_algorithm);
    // The curve is in PKCS#8's AlgorithmIdentifier; SEC1 files carry it as [0]; add it.
    let (items, _) = der_element(sec1);
    let curve = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    let mut with_curve = Vec::new();
    let (version, rest) = split_element(items);
    let (private, rest) = split_element(rest);
    with_curve.extend_from_slice(version);
    with_curve.extend_from_slice(private);
    with_curve.extend_from_slice(&der(0xa0, &curve));
    with_curve.extend_from_slice(rest);
    let sec1 = der(0x30, &with_curve);
    pem::encode(&pem::Pem::new("EC PRIVATE KEY", sec1))
}

/// (content, rest) of the DER element at the start of `input`.
fn der_element(input: &[u8]) -> (&[u8], &[u8]) {
    let (header, len) = match input[1] {
        n if n < 0x80 => (2, n as usize),
        0x81 => (3, input[2] as usize),
        0x82 => (4, (input[2] as usize) << 8 | input[3] as usize),
        other => panic!("length form {other:#x}"),
    };
    (&input[header..header + len], &input[header + len..])
}

/// (whole element, rest).
fn split_element(input: &[u8]) -> (&[u8], &[u8]) {
    let (_, rest) = der_element(input);
    (&input[..input.len() - rest.len()], rest)
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        out.push(0x81);
        out.push(content.len() as u8);
    }
    out.extend_from_slice(content);
    out
}
