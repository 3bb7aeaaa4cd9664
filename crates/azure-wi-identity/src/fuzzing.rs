//! Entry points for the `cargo fuzz` targets in `fuzz/` over the credential library's parsers
//! (feature `fuzzing`; not a public API).
//!
//! Each function feeds one parser the fuzzer's bytes and checks what must hold for any input:
//! no panic, and no secret echoed where it must not be. The parsers themselves stay
//! `pub(crate)`; only these wrappers are exported.

use time::OffsetDateTime;

use crate::{
    entra_error::{entra_error, excerpt},
    managed_identity::{arc_key_file::realm_path, response::Received},
    token_response::parse_token_response_with_extras,
};

/// The instant every relative expiry is counted from.
fn request_time() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Every token-response parser: the shared lenient parser (all `expires_in` / `expires_on` /
/// `refresh_in` shapes), a managed identity endpoint's answer with the given status, the error
/// quoting of managed identity endpoints and of Microsoft Entra. Panics when an invariant breaks.
///
/// Besides the body as given, the first bytes are also read as numbers put into the three time
/// fields in every shape the endpoints use (integer, float, exponent, numeric string): no number
/// may panic (issue 15: a `refresh_in` of 3e11 did), and an accepted token is never already
/// expired.
pub fn token_response(status: u16, body: &[u8]) {
    check_parsed(body);
    check_parsed(numeric_body(body).as_bytes());
    check_quoting(status, body);
}

/// A secret the quoting checks look for.
const SECRET: &str = "fuzz-secret-0f9e8d7c6b5a";

/// The body with `expires_in`, `expires_on` and `refresh_in` made from the fuzzer's bytes.
fn numeric_body(data: &[u8]) -> String {
    let mut bytes = [0u8; 25];
    for (b, d) in bytes.iter_mut().zip(data) {
        *b = *d;
    }
    let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let shape = bytes[24];
    let number = |raw: u64, shape: u8| -> String {
        match shape % 6 {
            0 => raw.to_string(),
            1 => (raw as i64).to_string(),
            2 => format!("{:?}", f64::from_bits(raw))
                .replace("inf", "1e309")
                .replace("NaN", "0"),
            3 => format!("\"{}\"", raw as i64),
            4 => format!("{}e{}", raw % 1000, (raw >> 10) % 400),
            _ => format!("\"{}\"", raw),
        }
    };
    format!(
        r#"{{"access_token":"t","expires_in":{},"expires_on":{},"refresh_in":{}}}"#,
        number(word(0), shape),
        number(word(1), shape / 6),
        number(word(2), shape / 36),
    )
}

fn check_parsed(body: &[u8]) {
    if let Ok(parsed) = parse_token_response_with_extras(body, request_time()) {
        let token = parsed.token.token.secret();
        assert!(!token.is_empty(), "an empty access token was accepted");
        assert!(
            parsed.token.expires_on > request_time(),
            "an already expired token was accepted"
        );
        if let Some(refresh_on) = parsed.token.refresh_on {
            assert!(
                refresh_on <= parsed.token.expires_on,
                "refresh_on after expires_on"
            );
        }
        if token.len() >= 12 && !parsed.token.token_type.contains(token) {
            let debug = format!("{:?}", parsed.token);
            assert!(
                !debug.contains(token),
                "Debug of AccessToken shows the token: {debug}"
            );
        }
    }
}

fn check_quoting(status: u16, body: &[u8]) {
    let received = Received {
        status,
        content_type: Some("application/json".to_owned()),
        www_authenticate: None,
        body: body.to_vec(),
    };
    let _ = received.token("fuzz", request_time());
    let secret = crate::Secret::new(SECRET);
    let quoted = received.server_message(&[&secret]);
    assert!(
        !quoted.contains(SECRET),
        "a managed identity error quotes the secret: {quoted}"
    );
    let entra = entra_error("fuzz", status, body, &[SECRET]).to_string();
    assert!(
        !entra.contains(SECRET),
        "an Entra error quotes the assertion: {entra}"
    );
    let quoted = excerpt(body, &[SECRET]);
    assert!(!quoted.contains(SECRET), "an excerpt quotes the secret: {quoted}");
}

/// The Azure Arc agent's `WWW-Authenticate` challenge parser.
pub fn arc_challenge(header: &str) {
    if let Ok(path) = realm_path(Some(header)) {
        assert!(!path.is_empty(), "an empty realm was accepted");
        assert_eq!(path, path.trim(), "the realm keeps surrounding whitespace");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15 item 9, the input that panicked, and the numeric bodies the target builds.
    #[test]
    fn the_refresh_in_panic_input_and_numeric_bodies() {
        token_response(
            200,
            br#"{"access_token":"t","expires_in":3599,"refresh_in":3e11}"#,
        );
        token_response(
            200,
            br#"{"access_token":"t","expires_in":3599,"refresh_in":"300000000000"}"#,
        );
        for seed in [
            &[][..],
            &[0xff; 25],
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 200,
            ],
        ] {
            let body = numeric_body(seed);
            serde_json::from_str::<serde_json::Value>(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
            token_response(200, seed);
        }
    }
}
