//! Where the projected service-account token lives inside a mutated pod.
//!
//! Upstream v1.6.0 moved the token from `/var/run/secrets/azure/tokens/azure-identity-token`
//! (volume `azure-identity-token`) to `/var/run/secrets/azure/wi/token/azure-identity-token` (a
//! reserved volume named after a hash of the pod name). SDKs follow `AZURE_FEDERATED_TOKEN_FILE`,
//! but images that hard-coded the old path need the [`TokenLayout::Legacy`] switch.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// The prefix of the reserved volume name in the v1.6 layout.
pub const RESERVED_VOLUME_PREFIX: &str = "azure-workload-identity-reserved-";

/// How many hex characters of sha256(pod name) follow [`RESERVED_VOLUME_PREFIX`] (63 chars in all).
const RESERVED_HASH_CHARS: usize = 30;

/// The file name of the token, in both layouts.
const TOKEN_FILE_NAME: &str = "azure-identity-token";

/// The token path layout the webhook injects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum TokenLayout {
    /// Upstream v1.6.0 and later: `/var/run/secrets/azure/wi/token/azure-identity-token`.
    #[default]
    #[cfg_attr(feature = "clap", value(name = "v1.6", alias = "v1.6.0", alias = "current"))]
    Current,
    /// Upstream up to v1.5.x: `/var/run/secrets/azure/tokens/azure-identity-token`.
    #[cfg_attr(feature = "clap", value(name = "legacy", alias = "v1.5", alias = "pre-1.6"))]
    Legacy,
}

impl TokenLayout {
    /// The directory the token volume is mounted at.
    pub fn mount_path(self) -> &'static str {
        match self {
            Self::Current => "/var/run/secrets/azure/wi",
            Self::Legacy => "/var/run/secrets/azure/tokens",
        }
    }

    /// The token's path inside the volume (the `serviceAccountToken.path` of the projection).
    pub fn token_path(self) -> &'static str {
        match self {
            Self::Current => "token/azure-identity-token",
            Self::Legacy => TOKEN_FILE_NAME,
        }
    }

    /// The value of `AZURE_FEDERATED_TOKEN_FILE`.
    pub fn token_file(self) -> String {
        format!("{}/{}", self.mount_path(), self.token_path())
    }

    /// Where a custom token endpoint's CA certificate is projected (`AZURE_KUBERNETES_CA_FILE`).
    pub fn ca_file(self) -> String {
        format!("{}/{}", self.mount_path(), CA_CERT_PATH)
    }

    /// The token volume's name for a pod. `pod_name` is `metadata.name`, or
    /// `generateName + " (prefix)"` when the name is not yet known (see [`pod_name_for_hash`]).
    pub fn volume_name(self, pod_name: &str) -> String {
        match self {
            Self::Current => {
                let digest = Sha256::digest(pod_name.as_bytes());
                let mut name = String::with_capacity(RESERVED_VOLUME_PREFIX.len() + RESERVED_HASH_CHARS);
                name.push_str(RESERVED_VOLUME_PREFIX);
                for byte in digest.iter() {
                    let _ = write!(name, "{byte:02x}");
                }
                name.truncate(RESERVED_VOLUME_PREFIX.len() + RESERVED_HASH_CHARS);
                name
            }
            Self::Legacy => TOKEN_FILE_NAME.to_owned(),
        }
    }
}

/// The CA certificate's path inside the token volume, for custom token endpoints.
pub const CA_CERT_PATH: &str = "ca-cert/ca.crt";

/// The string upstream hashes for the reserved volume name: `metadata.name`, or
/// `metadata.generateName` followed by `" (prefix)"` when the name is empty or absent.
pub fn pod_name_for_hash(pod: &serde_json::Value) -> String {
    let metadata = pod.get("metadata");
    let field = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    match field("name") {
        "" => format!("{} (prefix)", field("generateName")),
        name => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reserved_volume_name_is_63_chars_of_prefix_and_hash() {
        // sha256("demo") = 2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea
        let name = TokenLayout::Current.volume_name("demo");
        assert_eq!(
            name,
            "azure-workload-identity-reserved-2a97516c354b68848cdbd8f54a226a"
        );
        assert_eq!(name.len(), 63);
    }

    #[test]
    fn generate_name_pods_hash_the_prefix_marker() {
        let named = json!({"metadata": {"name": "web-0", "generateName": "web-"}});
        assert_eq!(pod_name_for_hash(&named), "web-0");
        let generated = json!({"metadata": {"generateName": "web-7d9f-"}});
        assert_eq!(pod_name_for_hash(&generated), "web-7d9f- (prefix)");
        let empty_name = json!({"metadata": {"name": "", "generateName": "job-"}});
        assert_eq!(pod_name_for_hash(&empty_name), "job- (prefix)");
    }

    #[test]
    fn layouts_give_the_documented_paths() {
        assert_eq!(
            TokenLayout::Current.token_file(),
            "/var/run/secrets/azure/wi/token/azure-identity-token"
        );
        assert_eq!(
            TokenLayout::Legacy.token_file(),
            "/var/run/secrets/azure/tokens/azure-identity-token"
        );
        assert_eq!(
            TokenLayout::Legacy.volume_name("anything"),
            "azure-identity-token"
        );
        assert_eq!(
            TokenLayout::Current.ca_file(),
            "/var/run/secrets/azure/wi/ca-cert/ca.crt"
        );
    }
}
