//! The label and annotations users write, and what a pod asks for once they are read.
//!
//! Names and parsing rules are upstream's (Azure/azure-workload-identity `pkg/webhook/consts.go`);
//! where this crate deliberately differs, the item says so.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::{
    config::Config,
    denial::{Denial, quoted},
    proxy_containers::{DEFAULT_PROXY_PORT, ProxyMode},
    service_account::ServiceAccount,
};

/// The pod label that the MutatingWebhookConfiguration's objectSelector matches (`"true"`).
pub const USE_LABEL: &str = "azure.workload.identity/use";
/// ServiceAccount annotation: the client ID written as `AZURE_CLIENT_ID`.
pub const CLIENT_ID: &str = "azure.workload.identity/client-id";
/// ServiceAccount annotation: the tenant ID written as `AZURE_TENANT_ID`.
pub const TENANT_ID: &str = "azure.workload.identity/tenant-id";
/// ServiceAccount and pod annotation: the projected token's lifetime in seconds.
pub const TOKEN_EXPIRATION: &str = "azure.workload.identity/service-account-token-expiration";
/// Pod annotation: `;`-separated container names to leave alone.
pub const SKIP_CONTAINERS: &str = "azure.workload.identity/skip-containers";
/// Pod annotation: inject the token proxy.
pub const INJECT_PROXY_SIDECAR: &str = "azure.workload.identity/inject-proxy-sidecar";
/// Pod annotation: the proxy's port (default 8000).
pub const PROXY_SIDECAR_PORT: &str = "azure.workload.identity/proxy-sidecar-port";
/// Pod annotation (this project's): `imds` (default) or `identity-endpoint`.
pub const PROXY_MODE: &str = "azure.workload.identity/proxy-mode";

/// The shortest token lifetime accepted, in seconds (also the default).
pub const MIN_TOKEN_EXPIRATION: i64 = 3600;
/// The longest token lifetime accepted, in seconds.
pub const MAX_TOKEN_EXPIRATION: i64 = 86400;

/// The injected proxy a pod asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProxyRequest {
    /// The port the proxy listens on.
    pub port: i32,
    /// How applications reach it.
    pub mode: ProxyMode,
}

/// Everything the mutation needs to know from the pod's and the ServiceAccount's annotations.
#[derive(Clone, Debug)]
pub(crate) struct PodSettings {
    /// `AZURE_CLIENT_ID` (none: not injected).
    pub client_id: Option<String>,
    /// `AZURE_TENANT_ID`.
    pub tenant_id: String,
    /// The token's `expirationSeconds`.
    pub expiration: i64,
    /// Containers to leave alone.
    pub skip: BTreeSet<String>,
    /// The proxy to inject, if any.
    pub proxy: Option<ProxyRequest>,
    /// Whether the pod opted into the custom token endpoint.
    pub custom_endpoint: bool,
}

impl PodSettings {
    /// Reads and validates the annotations, in upstream's order (proxy, then token expiration).
    pub(crate) fn read(
        pod: &Value,
        service_account: &ServiceAccount,
        config: &Config,
    ) -> Result<Self, Denial> {
        let pod_annotation = |key: &str| pod_annotation(pod, key);
        let sa_annotation = |key: &str| service_account.annotations.get(key).map(String::as_str);

        let proxy = proxy_request(pod)?;
        let expiration = match (pod_annotation(TOKEN_EXPIRATION), sa_annotation(TOKEN_EXPIRATION)) {
            (Some(value), _) if !value.is_empty() => parse_expiration(value, "on the pod")?,
            (_, Some(value)) if !value.is_empty() => parse_expiration(
                value,
                &format!("on service account {}", quoted(&service_account.name)),
            )?,
            _ => MIN_TOKEN_EXPIRATION,
        };
        // Deviation: an empty tenant-id annotation falls back to the configured tenant (upstream
        // then omits AZURE_TENANT_ID, which breaks every SDK).
        let tenant_id = match sa_annotation(TENANT_ID) {
            Some(tenant) if !tenant.is_empty() => tenant.to_owned(),
            _ => config.tenant_id.clone(),
        };
        let client_id = sa_annotation(CLIENT_ID)
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        let skip = pod_annotation(SKIP_CONTAINERS)
            .map(|list| {
                list.split(';')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let custom_endpoint = config.custom_token_endpoint.as_ref().is_some_and(|endpoint| {
            pod_annotation(&endpoint.annotation)
                .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
        });
        Ok(Self {
            client_id,
            tenant_id,
            expiration,
            skip,
            proxy,
            custom_endpoint,
        })
    }
}

/// A pod annotation's value.
fn pod_annotation<'a>(pod: &'a Value, key: &str) -> Option<&'a str> {
    pod.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// The proxy injection the pod asks for. Upstream injects whenever the annotation is present;
/// this crate does not inject when its value is a false boolean (`false`, `f`, `0`), which is
/// what the documentation always promised.
fn proxy_request(pod: &Value) -> Result<Option<ProxyRequest>, Denial> {
    let Some(value) = pod_annotation(pod, INJECT_PROXY_SIDECAR) else {
        return Ok(None);
    };
    if matches!(value.trim().to_ascii_lowercase().as_str(), "false" | "f" | "0") {
        return Ok(None);
    }
    if pod
        .get("spec")
        .and_then(|spec| spec.get("hostNetwork"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Err(Denial::new(
            "hostNetwork is set to true, cannot inject proxy sidecar",
        ));
    }
    let port = match pod_annotation(pod, PROXY_SIDECAR_PORT) {
        // Go's strconv.ParseInt(value, 10, 32) (an optional sign and digits), then, unlike
        // upstream, the range of a TCP port: -1, 0 or 65536 would be written into the patch.
        Some(value) => match value.parse::<i32>() {
            Ok(port) if (1..=65535).contains(&port) => port,
            Ok(_) => {
                return Err(Denial::new(format!(
                    "invalid proxy sidecar port: {PROXY_SIDECAR_PORT} {} is out of range: expected a \
                     whole number from 1 to 65535 (default {DEFAULT_PROXY_PORT})",
                    quoted(value)
                )));
            }
            Err(_) => {
                return Err(Denial::new(format!(
                    "failed to parse proxy sidecar port: {PROXY_SIDECAR_PORT} {} is not a whole number \
                     from 1 to 65535 (default {DEFAULT_PROXY_PORT})",
                    quoted(value)
                )));
            }
        },
        None => DEFAULT_PROXY_PORT,
    };
    let mode = match pod_annotation(pod, PROXY_MODE).map(|mode| mode.trim().to_ascii_lowercase()) {
        None => ProxyMode::Imds,
        Some(mode) if mode.is_empty() || mode == "imds" => ProxyMode::Imds,
        Some(mode) if mode == "identity-endpoint" => ProxyMode::IdentityEndpoint,
        Some(mode) => {
            return Err(Denial::new(format!(
                "{PROXY_MODE} {} is not valid: use \"imds\" (the default) or \"identity-endpoint\"",
                quoted(&mode)
            )));
        }
    };
    Ok(Some(ProxyRequest { port, mode }))
}

/// Parses a token expiration like upstream: Go's `strconv.ParseInt(value, 10, 64)` (an optional
/// sign and digits; `3600s` is invalid, `+4000` is 4000), then the [3600, 86400] range.
fn parse_expiration(value: &str, place: &str) -> Result<i64, Denial> {
    let seconds = value.parse::<i64>().map_err(|_| {
        Denial::new(format!(
            "failed to parse {TOKEN_EXPIRATION} {} {place}: expected whole seconds between \
             {MIN_TOKEN_EXPIRATION} and {MAX_TOKEN_EXPIRATION}",
            quoted(value)
        ))
    })?;
    if !(MIN_TOKEN_EXPIRATION..=MAX_TOKEN_EXPIRATION).contains(&seconds) {
        return Err(Denial::new(format!(
            "token expiration {seconds} not valid. Expected value to be between {MIN_TOKEN_EXPIRATION} and \
             {MAX_TOKEN_EXPIRATION} ({TOKEN_EXPIRATION} {} {place})",
            quoted(value)
        )));
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_parses_like_go_parse_int() {
        for (text, seconds) in [
            ("3600", 3600),
            ("+4000", 4000),
            ("86400", 86400),
            ("007200", 7200),
        ] {
            assert_eq!(parse_expiration(text, "on the pod").unwrap(), seconds, "{text}");
        }
        for text in ["3600s", " 3600", "3_600", "", "1e4", "99999999999999999999"] {
            let denial = parse_expiration(text, "on the pod").unwrap_err();
            assert!(denial.message.starts_with("failed to parse"), "{text}: {denial}");
            assert!(denial.message.contains(TOKEN_EXPIRATION), "{denial}");
        }
    }

    #[test]
    fn a_huge_expiration_is_quoted_only_in_part() {
        let value = "9".repeat(3 * 1024 * 1024);
        let denial = parse_expiration(&value, "on the pod").unwrap_err();
        assert!(denial.message.len() < 400, "{} bytes", denial.message.len());
        assert!(denial.message.contains("(3145728 bytes)"), "{}", denial.message);
    }

    #[test]
    fn proxy_ports_outside_1_to_65535_are_denied_naming_the_annotation_and_range() {
        let pod = |port: &str| {
            serde_json::json!({"metadata": {"annotations": {
                INJECT_PROXY_SIDECAR: "true", PROXY_SIDECAR_PORT: port,
            }}, "spec": {}})
        };
        for bad in ["-1", "0", "65536", "2147483647", "x"] {
            let denial = proxy_request(&pod(bad)).unwrap_err();
            assert!(denial.message.contains(PROXY_SIDECAR_PORT), "{bad}: {denial}");
            assert!(denial.message.contains("from 1 to 65535"), "{bad}: {denial}");
            assert!(denial.message.contains(&format!("{bad:?}")), "{bad}: {denial}");
        }
        for (good, port) in [("1", 1), ("8000", 8000), ("65535", 65535), ("+80", 80)] {
            assert_eq!(proxy_request(&pod(good)).unwrap().unwrap().port, port, "{good}");
        }
    }

    #[test]
    fn expiration_range_uses_upstreams_text() {
        for (text, seconds) in [("100", 100), ("3599", 3599), ("86401", 86401), ("-5", -5)] {
            let denial = parse_expiration(text, "on the pod").unwrap_err();
            let expected =
                format!("token expiration {seconds} not valid. Expected value to be between 3600 and 86400");
            assert!(denial.message.starts_with(&expected), "{denial}");
            assert_eq!(denial.code, 400);
        }
    }
}
