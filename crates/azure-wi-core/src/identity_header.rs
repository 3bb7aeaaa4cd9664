//! The per-pod secret of the identity-endpoint mode (`IDENTITY_HEADER`).
//!
//! Applications send it as `X-IDENTITY-HEADER`; the proxy compares it in constant time. It only
//! guards against request forgery from inside the pod (e.g. SSRF), as on App Service: the proxy
//! listens on the pod's loopback interface, which other pods cannot reach.

use ring::rand::{SecureRandom, SystemRandom};

use crate::denial::Denial;

/// How many random bytes an identity header holds (it is written as twice as many hex digits).
pub const IDENTITY_HEADER_BYTES: usize = 32;

/// A fresh identity header: 32 bytes from the operating system's CSPRNG, hex-encoded.
pub fn generate_identity_header() -> Result<String, Denial> {
    let mut bytes = [0u8; IDENTITY_HEADER_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Denial::new("internal error: no random numbers for the identity header; retry"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_64_hex_digits_and_differ() {
        let first = generate_identity_header().unwrap();
        let second = generate_identity_header().unwrap();
        assert_eq!(first.len(), 2 * IDENTITY_HEADER_BYTES);
        assert!(
            first
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{first}"
        );
        assert_ne!(first, second);
    }
}
