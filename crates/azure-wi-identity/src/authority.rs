//! Microsoft Entra authority hosts, and validation of tenant ids and scopes.
//!
//! The authority host comes from the credential's option, else `AZURE_AUTHORITY_HOST`, else the
//! public cloud. It is normalised (trailing spaces and `/` stripped: the AKS webhook writes
//! `https://login.microsoftonline.com/`; a bare host gets `https://`) and must use https, except
//! for a loopback address (`127.0.0.0/8`, `[::1]`, `localhost`: local test endpoints), the rule of
//! [`plain_http`](super::plain_http) that every endpoint follows. Tenant ids and scopes are checked before anything is sent, so a tenant like
//! `bad/tenant?x` never reaches the network.

use super::{
    Env,
    plain_http::{self, PlainHttp, PlainHttpError},
};

pub(crate) use crate::env_vars::AZURE_AUTHORITY_HOST;

/// An Azure cloud, for its Microsoft Entra authority host.
///
/// ```no_run
/// use azure_wi_identity::{
///     AzureCloud, ClientAssertionCredentialOptions, WorkloadIdentityCredential,
///     WorkloadIdentityCredentialOptions,
/// };
///
/// let options = WorkloadIdentityCredentialOptions {
///     credential_options: ClientAssertionCredentialOptions {
///         authority_host: Some(AzureCloud::UsGovernment.authority_host().to_owned()),
///         ..Default::default()
///     },
///     ..Default::default()
/// };
/// let credential = WorkloadIdentityCredential::new(Some(options))?;
/// # Ok::<(), azure_wi_identity::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AzureCloud {
    /// The public cloud: `https://login.microsoftonline.com`.
    #[default]
    Public,
    /// Azure US Government: `https://login.microsoftonline.us`.
    UsGovernment,
    /// Azure operated by 21Vianet (China): `https://login.chinacloudapi.cn`.
    China,
    /// Azure Germany (closed in 2021; kept for completeness): `https://login.microsoftonline.de`.
    Germany,
}

impl AzureCloud {
    /// Every cloud with a built-in authority host, the public cloud first. The webhook resolves
    /// `AZURE_ENVIRONMENT` against this table; the credentials take its authority hosts.
    pub const ALL: [AzureCloud; 4] = [Self::Public, Self::UsGovernment, Self::China, Self::Germany];

    /// The cloud's name as `AZURE_ENVIRONMENT` spells it (the Azure SDKs' environment names),
    /// e.g. `AzurePublicCloud`.
    pub const fn environment_name(self) -> &'static str {
        match self {
            Self::Public => "AzurePublicCloud",
            Self::UsGovernment => "AzureUSGovernmentCloud",
            Self::China => "AzureChinaCloud",
            Self::Germany => "AzureGermanCloud",
        }
    }

    /// The cloud whose [`environment_name`](Self::environment_name) is `name`, compared
    /// case-insensitively (as the Azure SDKs do); `None` for any other name.
    ///
    /// ```
    /// use azure_wi_identity::AzureCloud;
    ///
    /// assert_eq!(AzureCloud::from_environment_name("azureusgovernmentcloud"), Some(AzureCloud::UsGovernment));
    /// assert_eq!(AzureCloud::from_environment_name("AzureMoonCloud"), None);
    /// ```
    pub fn from_environment_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|cloud| cloud.environment_name().eq_ignore_ascii_case(name))
    }

    /// The cloud's authority host, without a trailing `/`.
    pub const fn authority_host(self) -> &'static str {
        match self {
            Self::Public => "https://login.microsoftonline.com",
            Self::UsGovernment => "https://login.microsoftonline.us",
            Self::China => "https://login.chinacloudapi.cn",
            Self::Germany => "https://login.microsoftonline.de",
        }
    }
}

/// Why an authority, tenant or scope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthorityError {
    /// The authority host is not a usable https URL.
    #[error(
        "authority host {value:?} (from {origin}) is invalid: {reason}. Use an https URL such as \
         https://login.microsoftonline.com"
    )]
    Authority {
        /// The value given.
        value: String,
        /// Where it came from: the option or `AZURE_AUTHORITY_HOST`.
        origin: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The tenant id cannot be a tenant: bad characters, only dots, or too long.
    #[error(
        "tenant id {value} (from {origin}) is invalid: {reason}. A tenant id is a GUID or a domain name \
         (at most {MAX_TENANT_LEN} characters), made of ASCII letters, digits, '-' and '.'"
    )]
    Tenant {
        /// The value given, shortened for quoting.
        value: String,
        /// Where it came from: a variable or an option.
        origin: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The scope is empty or holds characters a scope cannot have.
    #[error(
        "scope {0:?} is invalid: a scope is a URI such as https://management.azure.com/.default, \
         made of ASCII letters, digits and '_-.:/'"
    )]
    Scope(String),
    /// No scope was given.
    #[error("no scope was given: ask for at least one, e.g. https://management.azure.com/.default")]
    NoScope,
}

/// The authority host to use: `option`, else `AZURE_AUTHORITY_HOST` from `env`, else the public
/// cloud; normalised and validated.
pub(crate) fn authority_host(option: Option<&str>, env: &Env) -> Result<String, AuthorityError> {
    match option.map(str::trim).filter(|s| !s.is_empty()) {
        Some(value) => normalize_authority_host(value, "the authority_host option"),
        None => match env.var(AZURE_AUTHORITY_HOST) {
            Some(value) => normalize_authority_host(&value, AZURE_AUTHORITY_HOST),
            None => Ok(AzureCloud::Public.authority_host().to_owned()),
        },
    }
}

/// Normalises one authority host value: trims it, strips trailing `/`, adds `https://` to a bare
/// host, and refuses anything but https (or loopback http).
pub(crate) fn normalize_authority_host(value: &str, origin: &'static str) -> Result<String, AuthorityError> {
    let err = |reason| AuthorityError::Authority {
        value: plain_http::redact(value),
        origin,
        reason,
    };
    let trimmed = value.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(err("it is empty"));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|_| err("it is not a URL"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("it must not have a query or fragment"));
    }
    plain_http::check(&url, PlainHttp::LoopbackOnly).map_err(|e| match e {
        PlainHttpError::UserInfo => err("it must not carry credentials"),
        PlainHttpError::NoHost => err("it has no host"),
        PlainHttpError::Scheme(_) | PlainHttpError::NotLocal(_) => err(
            "only https is allowed (plain http only for a loopback address: 127.0.0.0/8, [::1] or localhost)",
        ),
    })?;
    Ok(with_scheme)
}

/// The token endpoint of `tenant` at `authority` (already normalised).
pub(crate) fn token_endpoint(authority: &str, tenant: &str) -> String {
    format!("{authority}/{tenant}/oauth2/v2.0/token")
}

/// The longest tenant id: a DNS name has at most 253 characters (a GUID has 36).
pub(crate) const MAX_TENANT_LEN: usize = 253;

/// Accepts a tenant id of 1 to 253 ASCII letters, digits, `-` and `.`, not made of dots alone
/// (`.` and `..` would turn `{authority}/{tenant}/oauth2/...` into another path). `origin` names
/// where the value came from (a variable or an option) for the error.
pub(crate) fn validate_tenant_id(tenant: &str, origin: &'static str) -> Result<(), AuthorityError> {
    let reason = if tenant.is_empty() {
        Some("it is empty")
    } else if tenant.len() > MAX_TENANT_LEN {
        Some("it is too long")
    } else if !tenant
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        Some("it holds characters a tenant id cannot have")
    } else if tenant.bytes().all(|b| b == b'.') {
        Some("it is only dots, which would change the request's path")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(AuthorityError::Tenant {
            value: quote_shortened(tenant),
            origin,
            reason,
        }),
    }
}

/// `value` quoted for an error message, shortened to its first 64 characters.
pub(crate) fn quote_shortened(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((i, _)) => format!("{:?}... ({} characters)", &value[..i], value.chars().count()),
        None => format!("{value:?}"),
    }
}

/// Accepts a non-empty scope of ASCII letters, digits and `_-.:/`.
pub(crate) fn validate_scope(scope: &str) -> Result<(), AuthorityError> {
    if !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b))
    {
        Ok(())
    } else {
        Err(AuthorityError::Scope(scope.to_owned()))
    }
}

/// Accepts a non-empty list of valid scopes.
pub(crate) fn validate_scopes(scopes: &[&str]) -> Result<(), AuthorityError> {
    if scopes.is_empty() {
        return Err(AuthorityError::NoScope);
    }
    scopes.iter().try_for_each(|s| validate_scope(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_resolution_order_and_normalisation() {
        let none = Env::from_pairs::<&str, &str>([]);
        let gov = Env::from_pairs([(AZURE_AUTHORITY_HOST, "https://login.microsoftonline.us/")]);
        assert_eq!(
            authority_host(None, &none).unwrap(),
            "https://login.microsoftonline.com"
        );
        assert_eq!(
            authority_host(None, &gov).unwrap(),
            "https://login.microsoftonline.us"
        );
        assert_eq!(
            authority_host(Some(AzureCloud::China.authority_host()), &gov).unwrap(),
            "https://login.chinacloudapi.cn"
        );
        assert_eq!(
            authority_host(Some(" login.microsoftonline.de// "), &none).unwrap(),
            "https://login.microsoftonline.de"
        );
        assert_eq!(
            authority_host(Some("http://127.0.0.1:8080/"), &none).unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            authority_host(Some("http://localhost:1"), &none).unwrap(),
            "http://localhost:1"
        );
        assert_eq!(
            authority_host(Some("http://[::1]:1"), &none).unwrap(),
            "http://[::1]:1"
        );
        assert_eq!(
            authority_host(Some("https://adfs.contoso.com/adfs/"), &none).unwrap(),
            "https://adfs.contoso.com/adfs"
        );
    }

    #[test]
    fn authority_refusals_name_the_origin() {
        let plain = Env::from_pairs([(AZURE_AUTHORITY_HOST, "http://login.microsoftonline.com")]);
        let e = authority_host(None, &plain).unwrap_err();
        assert!(
            e.to_string().contains("AZURE_AUTHORITY_HOST") && e.to_string().contains("https"),
            "{e}"
        );
        let none = Env::from_pairs::<&str, &str>([]);
        assert_eq!(
            authority_host(Some("http://127.0.0.2:1"), &none).unwrap(),
            "http://127.0.0.2:1",
            "the whole of 127.0.0.0/8 is loopback"
        );
        for bad in [
            "ftp://x",
            "http://128.0.0.1",
            "http://169.254.169.254",
            "http://localhost.evil.com",
            "https://u:p@x",
            "https://x?y=1",
            "/",
        ] {
            let e = authority_host(Some(bad), &none).unwrap_err();
            assert!(e.to_string().contains("authority_host option"), "{bad}: {e}");
            assert!(!e.to_string().contains("u:p"), "user info is never quoted: {e}");
        }
    }

    #[test]
    fn clouds() {
        assert_eq!(
            AzureCloud::default().authority_host(),
            "https://login.microsoftonline.com"
        );
        assert_eq!(
            AzureCloud::UsGovernment.authority_host(),
            "https://login.microsoftonline.us"
        );
        assert_eq!(
            AzureCloud::Germany.authority_host(),
            "https://login.microsoftonline.de"
        );
    }

    #[test]
    fn tenants() {
        let longest = format!("{}.com", "a".repeat(MAX_TENANT_LEN - 4));
        for ok in [
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "contoso.onmicrosoft.com",
            "organizations",
            longest.as_str(),
        ] {
            validate_tenant_id(ok, "AZURE_TENANT_ID").unwrap();
        }
        for bad in ["", "bad/tenant?x", "a b", "tenant#", "ténant", "../x"] {
            let e = validate_tenant_id(bad, "AZURE_TENANT_ID").unwrap_err();
            assert!(e.to_string().contains("tenant id"), "{e}");
        }
        assert_eq!(token_endpoint("https://h", "t"), "https://h/t/oauth2/v2.0/token");
    }

    #[test]
    fn scopes() {
        for ok in [
            "https://vault.azure.net/.default",
            "api://x/Read",
            "https://management.azure.com//.default",
            "User_Read",
        ] {
            validate_scope(ok).unwrap();
        }
        for bad in ["", "a b", "https://x/.default?y", "scope\n"] {
            assert!(
                matches!(validate_scope(bad), Err(AuthorityError::Scope(_))),
                "{bad:?}"
            );
        }
        assert_eq!(validate_scopes(&[]), Err(AuthorityError::NoScope));
        assert!(validate_scopes(&["ok", "not ok"]).is_err());
    }

    /// Issue 15 item 12: `.` and `..` passed and removed the tenant segment from the token URL;
    /// a 10,000-character tenant was sent.
    #[test]
    fn dot_and_overlong_tenants_are_refused_naming_the_origin() {
        let huge = "a".repeat(10_000);
        let just_over = "a".repeat(MAX_TENANT_LEN + 1);
        for (bad, reason) in [
            (".", "only dots"),
            ("..", "only dots"),
            ("...", "only dots"),
            (huge.as_str(), "too long"),
            (just_over.as_str(), "too long"),
        ] {
            let e = validate_tenant_id(bad, "AZURE_TENANT_ID")
                .unwrap_err()
                .to_string();
            assert!(e.contains("AZURE_TENANT_ID") && e.contains(reason), "{e}");
            assert!(e.len() < 400, "the value is quoted shortened: {e}");
        }
    }
}
