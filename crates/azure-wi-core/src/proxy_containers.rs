//! The containers injected for `azure.workload.identity/inject-proxy-sidecar`.
//!
//! The specs match upstream's field for field (names, image defaults, args, the postStart probe,
//! ports and security contexts), so upstream's proxy images work with this webhook and this
//! project's image works with upstream's. The identity-endpoint mode is this project's: it adds
//! `--identity-endpoint` and `IDENTITY_HEADER` to the sidecar and injects no iptables container.

use serde_json::{Value, json};

use crate::config::Config;

/// The name of the iptables init container.
pub const PROXY_INIT_CONTAINER_NAME: &str = "azwi-proxy-init";

/// The name of the proxy sidecar.
pub const PROXY_CONTAINER_NAME: &str = "azwi-proxy";

/// The proxy's port when `azure.workload.identity/proxy-sidecar-port` is absent.
pub const DEFAULT_PROXY_PORT: i32 = 8000;

/// The environment variable holding the identity-endpoint mode's per-pod secret.
pub const IDENTITY_HEADER_ENV: &str = "IDENTITY_HEADER";

/// The environment variable holding the identity-endpoint mode's URL.
pub const IDENTITY_ENDPOINT_ENV: &str = "IDENTITY_ENDPOINT";

/// The proxy argument that turns on the App Service (identity endpoint) protocol.
pub const IDENTITY_ENDPOINT_ARG: &str = "--identity-endpoint";

/// How the injected proxy receives the application's token requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyMode {
    /// Upstream's: a privileged init container redirects IMDS traffic (169.254.169.254:80) to the
    /// proxy with iptables.
    #[default]
    Imds,
    /// No redirection and no privileges: applications find the proxy through `IDENTITY_ENDPOINT`
    /// and authenticate with `IDENTITY_HEADER` (the App Service managed identity protocol).
    IdentityEndpoint,
}

/// The `IDENTITY_ENDPOINT` URL of a proxy listening on `port`.
pub fn identity_endpoint_url(port: i32) -> String {
    format!("http://127.0.0.1:{port}/msi/token")
}

/// The `azwi-proxy-init` container (IMDS mode only): it installs the iptables redirect as root
/// with `NET_ADMIN`.
pub fn proxy_init_container(config: &Config, port: i32) -> Value {
    json!({
        "name": PROXY_INIT_CONTAINER_NAME,
        "image": config.proxy_init_image,
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": "PROXY_PORT", "value": port.to_string()}],
        "securityContext": {
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
            "privileged": true,
            "runAsNonRoot": false,
            "runAsUser": 0,
        },
    })
}

/// The `azwi-proxy` sidecar. `native` makes it a native sidecar (`restartPolicy: Always`, for
/// `initContainers`); `identity_header` is set in identity-endpoint mode.
pub fn proxy_container(config: &Config, port: i32, native: bool, identity_header: Option<&str>) -> Value {
    let port_arg = format!("--proxy-port={port}");
    let level_arg = format!("--log-level={}", config.log_level);
    let mut args = vec![json!(port_arg), json!(level_arg)];
    if identity_header.is_some() {
        args.push(json!(IDENTITY_ENDPOINT_ARG));
    }
    let mut container = json!({
        "name": PROXY_CONTAINER_NAME,
        "image": config.proxy_image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "ports": [{"containerPort": port}],
        "lifecycle": {
            "postStart": {"exec": {"command": ["/proxy", port_arg, "--probe", level_arg]}},
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
        },
    });
    if let Some(header) = identity_header {
        container["env"] = json!([{"name": IDENTITY_HEADER_ENV, "value": header}]);
    }
    if native {
        container["restartPolicy"] = json!("Always");
    }
    container
}
