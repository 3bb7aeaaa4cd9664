//! Where credentials read their environment variables from.

use std::{collections::HashMap, fmt, sync::Arc};

/// The environment a credential reads its configuration from.
///
/// [`Env::Process`] (the default) reads the process environment. [`Env::from_pairs`] gives a
/// fixed set of variables instead, for programs that configure credentials themselves (the token
/// proxy does) and for tests, without touching the process environment.
///
/// Empty values count as unset, as in azure-identity. `Debug` lists variable names only, never
/// their values (some hold secrets such as `IDENTITY_HEADER`).
///
/// `#[non_exhaustive]`: build a fixed environment with [`Env::from_pairs`], not the variant.
///
/// ```
/// use azure_wi_identity::{
///     ClientAssertionCredentialOptions, Env, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
/// };
///
/// let env = Env::from_pairs([
///     ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
///     ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001"),
///     ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token"),
/// ]);
/// assert_eq!(env.var("AZURE_AUTHORITY_HOST"), None);
/// let options = WorkloadIdentityCredentialOptions {
///     credential_options: ClientAssertionCredentialOptions { env, ..Default::default() },
///     ..Default::default()
/// };
/// let credential = WorkloadIdentityCredential::new(Some(options))?;
/// # Ok::<(), azure_wi_identity::Error>(())
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Env {
    /// The process environment.
    #[default]
    Process,
    /// A fixed set of variables.
    Fixed(Arc<HashMap<String, String>>),
}

impl Env {
    /// An environment holding exactly these variables.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self::Fixed(Arc::new(
            pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        ))
    }

    /// The value of `name`, or `None` when it is unset or empty.
    pub fn var(&self, name: &str) -> Option<String> {
        let value = match self {
            Self::Process => std::env::var(name).ok(),
            Self::Fixed(map) => map.get(name).cloned(),
        };
        value.filter(|v| !v.is_empty())
    }

    /// Whether `name` is set to a non-empty value.
    pub fn is_set(&self, name: &str) -> bool {
        self.var(name).is_some()
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Process => f.write_str("Env::Process"),
            Self::Fixed(map) => {
                let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
                names.sort_unstable();
                f.debug_tuple("Env::Fixed").field(&names).finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_unset_and_debug_hides_values() {
        let env = Env::from_pairs([("IDENTITY_HEADER", "s3cr3t"), ("EMPTY", "")]);
        assert_eq!(env.var("IDENTITY_HEADER").as_deref(), Some("s3cr3t"));
        assert!(!env.is_set("EMPTY"));
        assert!(!env.is_set("MISSING"));
        let printed = format!("{env:?}");
        assert!(
            printed.contains("IDENTITY_HEADER") && !printed.contains("s3cr3t"),
            "{printed}"
        );
    }
}
