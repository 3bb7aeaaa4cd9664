//! The webhook's mutation settings: flags and environment variables, parsed and validated once.
//!
//! [`ConfigArgs`] holds every flag and variable with upstream's names (the webhook ConfigMap and
//! Helm values of Azure/azure-workload-identity work unchanged); [`ConfigArgs::into_config`]
//! checks them and produces the [`Config`] that [`mutate`](crate::mutation::mutate) reads.

use std::{fmt, path::PathBuf, str::FromStr};

use crate::{
    cloud::{Cloud, CloudError},
    token_layout::TokenLayout,
};

/// The default audience of the projected service-account token.
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The default image of the injected `azwi-proxy` sidecar (upstream's release image).
pub const DEFAULT_PROXY_IMAGE: &str = "mcr.microsoft.com/oss/azure/workload-identity/proxy:v1.6.0";

/// The default image of the injected `azwi-proxy-init` container (upstream's release image).
pub const DEFAULT_PROXY_INIT_IMAGE: &str = "mcr.microsoft.com/oss/azure/workload-identity/proxy-init:v1.6.0";

/// The first Kubernetes version whose API server the proxy is injected into as a native sidecar.
pub const NATIVE_SIDECAR_MIN_VERSION: (u32, u32) = (1, 32);

/// The annotation prefix of the custom token endpoint opt-in: `azure.workload.identity/use-<suffix>`.
const CUSTOM_ENDPOINT_ANNOTATION_PREFIX: &str = "azure.workload.identity/use-";

/// Mutation settings as given on the command line and in the environment.
///
/// Flatten this into a command (`#[command(flatten)]`) and call [`ConfigArgs::into_config`].
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ConfigArgs {
    /// The default tenant written as AZURE_TENANT_ID (required).
    #[cfg_attr(
        feature = "clap",
        arg(long = "tenant-id", env = "AZURE_TENANT_ID", value_name = "TENANT")
    )]
    pub tenant_id: Option<String>,

    /// The Azure cloud: AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud, AzureGermanCloud
    /// or AzureStackCloud (case-insensitive).
    #[cfg_attr(
        feature = "clap",
        arg(long = "azure-environment", env = "AZURE_ENVIRONMENT", value_name = "NAME")
    )]
    pub azure_environment: Option<String>,

    /// For AzureStackCloud: the JSON environment file holding `activeDirectoryEndpoint`.
    #[cfg_attr(
        feature = "clap",
        arg(
            long = "azure-environment-filepath",
            env = "AZURE_ENVIRONMENT_FILEPATH",
            value_name = "FILE"
        )
    )]
    pub azure_environment_filepath: Option<PathBuf>,

    /// The audience of the projected service-account token.
    #[cfg_attr(feature = "clap", arg(long, value_name = "AUDIENCE", default_value = DEFAULT_AUDIENCE))]
    pub audience: String,

    /// Log level: warning (when empty), error, info, debug, trace or all. Also passed to the injected proxy.
    #[cfg_attr(
        feature = "clap",
        arg(long = "log-level", value_name = "LEVEL", default_value = "")
    )]
    pub log_level: String,

    /// Enables custom token endpoints: pods opt in with `azure.workload.identity/use-<SUFFIX>: "true"`.
    #[cfg_attr(
        feature = "clap",
        arg(long = "custom-token-endpoint-annotation-suffix", value_name = "SUFFIX")
    )]
    pub custom_token_endpoint_annotation_suffix: Option<String>,

    /// The token audience for pods that use the custom token endpoint.
    #[cfg_attr(
        feature = "clap",
        arg(long = "custom-token-endpoint-audience", value_name = "AUDIENCE")
    )]
    pub custom_token_endpoint_audience: Option<String>,

    /// The image of the injected `azwi-proxy` sidecar.
    #[cfg_attr(
        feature = "clap",
        arg(long = "proxy-image", env = "PROXY_IMAGE", value_name = "IMAGE")
    )]
    pub proxy_image: Option<String>,

    /// The image of the injected `azwi-proxy-init` container.
    #[cfg_attr(
        feature = "clap",
        arg(long = "proxy-init-image", env = "PROXY_INIT_IMAGE", value_name = "IMAGE")
    )]
    pub proxy_init_image: Option<String>,

    /// Custom token endpoint: the token proxy URL (AZURE_KUBERNETES_TOKEN_PROXY).
    #[cfg_attr(
        feature = "clap",
        arg(
            long = "azure-kubernetes-token-proxy",
            env = "AZURE_KUBERNETES_TOKEN_PROXY",
            value_name = "URL"
        )
    )]
    pub azure_kubernetes_token_proxy: Option<String>,

    /// Custom token endpoint: the TLS server name (AZURE_KUBERNETES_SNI_NAME).
    #[cfg_attr(
        feature = "clap",
        arg(
            long = "azure-kubernetes-sni-name",
            env = "AZURE_KUBERNETES_SNI_NAME",
            value_name = "NAME"
        )
    )]
    pub azure_kubernetes_sni_name: Option<String>,

    /// Custom token endpoint: inline PEM CA data (AZURE_KUBERNETES_CA_DATA).
    #[cfg_attr(
        feature = "clap",
        arg(
            long = "azure-kubernetes-ca-data",
            env = "AZURE_KUBERNETES_CA_DATA",
            value_name = "PEM"
        )
    )]
    pub azure_kubernetes_ca_data: Option<String>,

    /// Custom token endpoint: a ConfigMap holding `ca.crt` (AZURE_KUBERNETES_CA_CONFIGMAP_NAME).
    #[cfg_attr(
        feature = "clap",
        arg(
            long = "azure-kubernetes-ca-configmap-name",
            env = "AZURE_KUBERNETES_CA_CONFIGMAP_NAME",
            value_name = "NAME"
        )
    )]
    pub azure_kubernetes_ca_configmap_name: Option<String>,

    /// Custom token endpoint: a ClusterTrustBundle signer (AZURE_KUBERNETES_CA_CTB_SIGNER_NAME).
    #[cfg_attr(
        feature = "clap",
        arg(
            long = "azure-kubernetes-ca-ctb-signer-name",
            env = "AZURE_KUBERNETES_CA_CTB_SIGNER_NAME",
            value_name = "SIGNER"
        )
    )]
    pub azure_kubernetes_ca_ctb_signer_name: Option<String>,

    /// Custom token endpoint: a JSON label selector for the ClusterTrustBundle
    /// (AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR).
    #[cfg_attr(
        feature = "clap",
        arg(
            long = "azure-kubernetes-ca-ctb-label-selector",
            env = "AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR",
            value_name = "JSON"
        )
    )]
    pub azure_kubernetes_ca_ctb_label_selector: Option<String>,

    /// Inject the proxy as a native sidecar (init container with restartPolicy Always); `auto`
    /// does so when the API server is 1.32 or newer.
    #[cfg_attr(
        feature = "clap",
        arg(
            long = "native-sidecar",
            env = "AZWI_NATIVE_SIDECAR",
            value_enum,
            default_value = "auto"
        )
    )]
    pub native_sidecar: NativeSidecar,

    /// The token path layout: `v1.6` (/var/run/secrets/azure/wi/token/azure-identity-token) or
    /// `legacy` (/var/run/secrets/azure/tokens/azure-identity-token, upstream before v1.6.0).
    #[cfg_attr(
        feature = "clap",
        arg(
            long = "token-path-layout",
            env = "AZWI_TOKEN_PATH_LAYOUT",
            value_enum,
            default_value = "v1.6"
        )
    )]
    pub token_path_layout: TokenLayout,
}

/// Whether the proxy is injected as a native sidecar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum NativeSidecar {
    /// When the API server is at least 1.32 (upstream's rule).
    #[default]
    Auto,
    /// Always as a native sidecar (`initContainers[0]`, `restartPolicy: Always`).
    True,
    /// Always as a regular container (`containers[0]`).
    False,
}

/// The webhook's log level, with upstream's names. It is also passed to the injected proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors only (the level when `--log-level` is empty).
    #[default]
    Warning,
    /// Informational messages.
    Info,
    /// Debug messages.
    Debug,
    /// Trace messages.
    Trace,
    /// Everything.
    All,
}

impl LogLevel {
    /// The name passed to the proxy's `--log-level`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
            Self::All => "all",
        }
    }

    /// The matching `tracing` filter directive (`warn`, `info`, `debug`, `trace`).
    pub fn tracing_directive(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace | Self::All => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogLevel {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "error" => Ok(Self::Error),
            "" | "warning" | "warn" => Ok(Self::Warning),
            "info" => Ok(Self::Info),
            "debug" => Ok(Self::Debug),
            "trace" => Ok(Self::Trace),
            "all" => Ok(Self::All),
            _ => Err(ConfigError::InvalidLogLevel {
                value: value.to_owned(),
            }),
        }
    }
}

/// The validated mutation settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The tenant written as `AZURE_TENANT_ID` unless the ServiceAccount names one.
    pub tenant_id: String,
    /// The cloud; its authority host is written as `AZURE_AUTHORITY_HOST`.
    pub cloud: Cloud,
    /// The audience of the projected token.
    pub audience: String,
    /// The log level (passed to the injected proxy).
    pub log_level: LogLevel,
    /// The image of the `azwi-proxy` sidecar.
    pub proxy_image: String,
    /// The image of the `azwi-proxy-init` container.
    pub proxy_init_image: String,
    /// Whether the proxy is injected as a native sidecar.
    pub native_sidecar: bool,
    /// Where the token is mounted.
    pub token_layout: TokenLayout,
    /// The custom token endpoint, when both of its flags are set.
    pub custom_token_endpoint: Option<CustomTokenEndpoint>,
}

/// A custom token endpoint (upstream v1.6.0, AKS identity bindings) that pods opt into.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomTokenEndpoint {
    /// The pod annotation that opts in (`azure.workload.identity/use-<suffix>`, value `true`).
    pub annotation: String,
    /// The token audience for opted-in pods.
    pub audience: String,
    /// `AZURE_KUBERNETES_TOKEN_PROXY`, when set.
    pub token_proxy: Option<String>,
    /// `AZURE_KUBERNETES_SNI_NAME`, when set.
    pub sni_name: Option<String>,
    /// Where the endpoint's CA certificate comes from, when configured.
    pub ca: Option<CaSource>,
}

/// The source of a custom token endpoint's CA certificate (at most one may be configured).
#[derive(Clone, Debug, PartialEq)]
pub enum CaSource {
    /// Inline PEM, passed to containers as `AZURE_KUBERNETES_CA_DATA`.
    Data(String),
    /// A ConfigMap whose `ca.crt` key is projected into the token volume.
    ConfigMap(String),
    /// A ClusterTrustBundle projection into the token volume.
    ClusterTrustBundle {
        /// The signer name.
        signer_name: String,
        /// An optional label selector (a Kubernetes `LabelSelector` object).
        label_selector: Option<serde_json::Value>,
    },
}

/// An invalid webhook configuration; the message names the flag or variable and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `AZURE_TENANT_ID` is unset or empty.
    #[error(
        "AZURE_TENANT_ID is required: set the environment variable (or --tenant-id) to your Microsoft \
         Entra tenant ID"
    )]
    MissingTenantId,
    /// `AZURE_ENVIRONMENT` (or the Azure Stack file) names no usable cloud.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// `--log-level` is not a known level.
    #[error(
        "--log-level {value:?} is not valid: use error, warning, info, debug, trace or all (or leave it empty)"
    )]
    InvalidLogLevel {
        /// The value given.
        value: String,
    },
    /// Only one of the two custom token endpoint flags is set.
    #[error("--{given} is set but --{missing} is not: custom token endpoints need both flags (or neither)")]
    IncompleteCustomEndpoint {
        /// The flag that is set.
        given: &'static str,
        /// The flag that is missing.
        missing: &'static str,
    },
    /// The custom audience is the default audience.
    #[error(
        "--custom-token-endpoint-audience must differ from {DEFAULT_AUDIENCE} (got {audience:?}): \
         choose the custom endpoint's own audience"
    )]
    CustomAudienceIsDefault {
        /// The audience given.
        audience: String,
    },
    /// The annotation suffix makes an invalid annotation key.
    #[error(
        "--custom-token-endpoint-annotation-suffix {suffix:?} does not make a valid annotation key \
         {CUSTOM_ENDPOINT_ANNOTATION_PREFIX}<suffix>: {reason}"
    )]
    InvalidAnnotationSuffix {
        /// The suffix given.
        suffix: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// More than one CA source is configured.
    #[error("only one custom token endpoint CA source may be set, but {names} are: keep one of them")]
    ConflictingCaSources {
        /// The variables that are set.
        names: String,
    },
    /// A ClusterTrustBundle label selector without a signer.
    #[error(
        "AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR is set without AZURE_KUBERNETES_CA_CTB_SIGNER_NAME: set \
         the signer name or remove the selector"
    )]
    LabelSelectorWithoutSigner,
    /// The ClusterTrustBundle label selector is not a JSON label selector.
    #[error(
        "AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR is not a JSON label selector \
         (e.g. {{\"matchLabels\":{{\"k\":\"v\"}}}}): {source}"
    )]
    InvalidLabelSelector {
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

impl ConfigArgs {
    /// Validates the settings. `server_version` is the API server's (major, minor) version, used
    /// when `--native-sidecar=auto`; unknown means no native sidecar.
    pub fn into_config(self, server_version: Option<(u32, u32)>) -> Result<Config, ConfigError> {
        let Self {
            tenant_id,
            azure_environment,
            azure_environment_filepath,
            audience,
            log_level,
            custom_token_endpoint_annotation_suffix,
            custom_token_endpoint_audience,
            proxy_image,
            proxy_init_image,
            azure_kubernetes_token_proxy,
            azure_kubernetes_sni_name,
            azure_kubernetes_ca_data,
            azure_kubernetes_ca_configmap_name,
            azure_kubernetes_ca_ctb_signer_name,
            azure_kubernetes_ca_ctb_label_selector,
            native_sidecar,
            token_path_layout,
        } = self;

        let tenant_id = non_empty(tenant_id).ok_or(ConfigError::MissingTenantId)?;
        let cloud = Cloud::resolve(
            azure_environment.as_deref().unwrap_or(""),
            azure_environment_filepath.as_deref(),
        )?;
        let log_level = log_level.parse()?;
        let custom_token_endpoint = custom_endpoint(
            non_empty(custom_token_endpoint_annotation_suffix),
            non_empty(custom_token_endpoint_audience),
            CaArgs {
                // Passed to containers byte for byte, as upstream does (a PEM ends with a newline).
                data: azure_kubernetes_ca_data.filter(|data| !data.is_empty()),
                config_map: non_empty(azure_kubernetes_ca_configmap_name),
                signer: non_empty(azure_kubernetes_ca_ctb_signer_name),
                label_selector: non_empty(azure_kubernetes_ca_ctb_label_selector),
            },
            non_empty(azure_kubernetes_token_proxy),
            non_empty(azure_kubernetes_sni_name),
        )?;
        let native_sidecar = match native_sidecar {
            NativeSidecar::True => true,
            NativeSidecar::False => false,
            NativeSidecar::Auto => {
                server_version.is_some_and(|version| version >= NATIVE_SIDECAR_MIN_VERSION)
            }
        };
        Ok(Config {
            tenant_id,
            cloud,
            audience: non_empty(Some(audience)).unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            log_level,
            proxy_image: non_empty(proxy_image).unwrap_or_else(|| DEFAULT_PROXY_IMAGE.to_owned()),
            proxy_init_image: non_empty(proxy_init_image)
                .unwrap_or_else(|| DEFAULT_PROXY_INIT_IMAGE.to_owned()),
            native_sidecar,
            token_layout: token_path_layout,
            custom_token_endpoint,
        })
    }
}

/// Parses the API server's version as discovery reports it (`major: "1"`, `minor: "32+"`).
pub fn parse_server_version(major: &str, minor: &str) -> Option<(u32, u32)> {
    let number = |text: &str| {
        let digits: String = text
            .trim()
            .trim_start_matches('v')
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u32>().ok()
    };
    Some((number(major)?, number(minor)?))
}

/// Where the custom token endpoint's CA comes from (the `AZURE_KUBERNETES_CA_*` settings): inline
/// data, a ConfigMap, or a ClusterTrustBundle signer with its label selector.
struct CaArgs {
    data: Option<String>,
    config_map: Option<String>,
    signer: Option<String>,
    label_selector: Option<String>,
}

fn custom_endpoint(
    suffix: Option<String>,
    audience: Option<String>,
    ca: CaArgs,
    token_proxy: Option<String>,
    sni_name: Option<String>,
) -> Result<Option<CustomTokenEndpoint>, ConfigError> {
    const SUFFIX_FLAG: &str = "custom-token-endpoint-annotation-suffix";
    const AUDIENCE_FLAG: &str = "custom-token-endpoint-audience";
    let (suffix, audience) = match (suffix, audience) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(ConfigError::IncompleteCustomEndpoint {
                given: SUFFIX_FLAG,
                missing: AUDIENCE_FLAG,
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::IncompleteCustomEndpoint {
                given: AUDIENCE_FLAG,
                missing: SUFFIX_FLAG,
            });
        }
        (Some(suffix), Some(audience)) => (suffix, audience),
    };
    if audience.trim().eq_ignore_ascii_case(DEFAULT_AUDIENCE) {
        return Err(ConfigError::CustomAudienceIsDefault { audience });
    }
    validate_suffix(&suffix)?;
    Ok(Some(CustomTokenEndpoint {
        annotation: format!("{CUSTOM_ENDPOINT_ANNOTATION_PREFIX}{suffix}"),
        audience,
        token_proxy,
        sni_name,
        ca: ca_source(ca)?,
    }))
}

/// The name part of a qualified annotation key: at most 63 characters, alphanumerics and `-_.`,
/// starting and ending alphanumeric. `use-` is already the start, so the suffix must end well.
fn validate_suffix(suffix: &str) -> Result<(), ConfigError> {
    let name_len = CUSTOM_ENDPOINT_ANNOTATION_PREFIX.len() - "azure.workload.identity/".len() + suffix.len();
    let invalid = |reason| {
        Err(ConfigError::InvalidAnnotationSuffix {
            suffix: suffix.to_owned(),
            reason,
        })
    };
    if name_len > 63 {
        return invalid("the part after the slash may be at most 63 characters");
    }
    if !suffix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return invalid("only letters, digits, '-', '_' and '.' are allowed");
    }
    if !suffix.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return invalid("it must end with a letter or digit");
    }
    Ok(())
}

fn ca_source(ca: CaArgs) -> Result<Option<CaSource>, ConfigError> {
    let CaArgs {
        data,
        config_map,
        signer,
        label_selector,
    } = ca;
    let set: Vec<&str> = [
        ("AZURE_KUBERNETES_CA_DATA", data.is_some()),
        ("AZURE_KUBERNETES_CA_CONFIGMAP_NAME", config_map.is_some()),
        ("AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", signer.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, is_set)| is_set.then_some(name))
    .collect();
    if set.len() > 1 {
        return Err(ConfigError::ConflictingCaSources {
            names: set.join(" and "),
        });
    }
    if label_selector.is_some() && signer.is_none() {
        return Err(ConfigError::LabelSelectorWithoutSigner);
    }
    if let Some(data) = data {
        return Ok(Some(CaSource::Data(data)));
    }
    if let Some(name) = config_map {
        return Ok(Some(CaSource::ConfigMap(name)));
    }
    let Some(signer_name) = signer else {
        return Ok(None);
    };
    let label_selector = label_selector
        .map(|text| {
            // Validate the shape with the typed selector, keep the value as written.
            serde_json::from_str::<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>(&text)
                .and_then(|_| serde_json::from_str::<serde_json::Value>(&text))
                .map_err(|source| ConfigError::InvalidLabelSelector { source })
        })
        .transpose()?;
    Ok(Some(CaSource::ClusterTrustBundle {
        signer_name,
        label_selector,
    }))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ConfigArgs {
        ConfigArgs {
            tenant_id: Some("tenant".into()),
            audience: DEFAULT_AUDIENCE.into(),
            ..ConfigArgs::default()
        }
    }

    fn error(args: ConfigArgs) -> String {
        args.into_config(None).unwrap_err().to_string()
    }

    #[test]
    fn defaults_match_upstream() {
        let config = args().into_config(None).unwrap();
        assert_eq!(config.tenant_id, "tenant");
        assert_eq!(config.cloud.authority_host, "https://login.microsoftonline.com/");
        assert_eq!(config.audience, DEFAULT_AUDIENCE);
        assert_eq!(config.log_level, LogLevel::Warning);
        assert_eq!(config.proxy_image, DEFAULT_PROXY_IMAGE);
        assert_eq!(config.proxy_init_image, DEFAULT_PROXY_INIT_IMAGE);
        assert!(!config.native_sidecar);
        assert_eq!(config.token_layout, TokenLayout::Current);
        assert_eq!(config.custom_token_endpoint, None);
    }

    #[test]
    fn tenant_is_required_and_empty_counts_as_missing() {
        for tenant in [None, Some(String::new()), Some("  ".into())] {
            let message = error(ConfigArgs {
                tenant_id: tenant,
                ..args()
            });
            assert!(message.contains("AZURE_TENANT_ID is required"), "{message}");
        }
    }

    #[test]
    fn empty_audience_means_the_default() {
        let config = ConfigArgs {
            audience: String::new(),
            ..args()
        }
        .into_config(None)
        .unwrap();
        assert_eq!(config.audience, DEFAULT_AUDIENCE);
    }

    #[test]
    fn native_sidecar_auto_follows_the_server_version() {
        let cases = [
            (NativeSidecar::Auto, None, false),
            (NativeSidecar::Auto, Some((1, 31)), false),
            (NativeSidecar::Auto, Some((1, 32)), true),
            (NativeSidecar::Auto, Some((1, 40)), true),
            (NativeSidecar::Auto, Some((2, 0)), true),
            (NativeSidecar::True, None, true),
            (NativeSidecar::False, Some((1, 33)), false),
        ];
        for (mode, version, expected) in cases {
            let config = ConfigArgs {
                native_sidecar: mode,
                ..args()
            }
            .into_config(version)
            .unwrap();
            assert_eq!(config.native_sidecar, expected, "{mode:?} {version:?}");
        }
    }

    #[test]
    fn server_versions_parse_like_discovery_reports_them() {
        assert_eq!(parse_server_version("1", "32+"), Some((1, 32)));
        assert_eq!(parse_server_version("1", "31"), Some((1, 31)));
        assert_eq!(parse_server_version("v1", "33"), Some((1, 33)));
        assert_eq!(parse_server_version("", "33"), None);
    }

    #[test]
    fn log_levels_are_upstreams() {
        for (text, level) in [
            ("", LogLevel::Warning),
            ("info", LogLevel::Info),
            ("DEBUG", LogLevel::Debug),
            ("error", LogLevel::Error),
            ("Error", LogLevel::Error),
        ] {
            assert_eq!(text.parse::<LogLevel>().unwrap(), level);
        }
        let message = error(ConfigArgs {
            log_level: "verbose".into(),
            ..args()
        });
        assert!(message.contains("--log-level \"verbose\""), "{message}");
    }

    #[test]
    fn unknown_cloud_stops_start_up() {
        let message = error(ConfigArgs {
            azure_environment: Some("AzureMoon".into()),
            ..args()
        });
        assert!(message.contains("AZURE_ENVIRONMENT \"AzureMoon\""), "{message}");
    }

    #[test]
    fn custom_endpoint_needs_both_flags() {
        let suffix_only = ConfigArgs {
            custom_token_endpoint_annotation_suffix: Some("identity-binding".into()),
            ..args()
        };
        let message = error(suffix_only);
        assert!(message.contains("--custom-token-endpoint-audience"), "{message}");
        let audience_only = ConfigArgs {
            custom_token_endpoint_audience: Some("api://AKSIdentityBinding".into()),
            ..args()
        };
        let message = error(audience_only);
        assert!(
            message.contains("is set but --custom-token-endpoint-annotation-suffix is not"),
            "{message}"
        );
    }

    fn custom() -> ConfigArgs {
        ConfigArgs {
            custom_token_endpoint_annotation_suffix: Some("identity-binding".into()),
            custom_token_endpoint_audience: Some("api://AKSIdentityBinding".into()),
            azure_kubernetes_token_proxy: Some("https://kubernetes.default.svc".into()),
            ..args()
        }
    }

    #[test]
    fn custom_endpoint_is_validated() {
        let config = ConfigArgs {
            azure_kubernetes_ca_configmap_name: Some("kube-root-ca.crt".into()),
            ..custom()
        }
        .into_config(None)
        .unwrap();
        let endpoint = config.custom_token_endpoint.unwrap();
        assert_eq!(
            endpoint.annotation,
            "azure.workload.identity/use-identity-binding"
        );
        assert_eq!(endpoint.ca, Some(CaSource::ConfigMap("kube-root-ca.crt".into())));

        let message = error(ConfigArgs {
            custom_token_endpoint_audience: Some("API://azureadtokenexchange".into()),
            ..custom()
        });
        assert!(
            message.contains("must differ from api://AzureADTokenExchange"),
            "{message}"
        );

        for (suffix, reason) in [
            ("bad/suffix", "only letters"),
            ("ends-", "must end"),
            (&"x".repeat(60)[..], "63"),
        ] {
            let message = error(ConfigArgs {
                custom_token_endpoint_annotation_suffix: Some(suffix.into()),
                ..custom()
            });
            assert!(message.contains(reason), "{suffix}: {message}");
        }
        assert!(
            ConfigArgs {
                custom_token_endpoint_annotation_suffix: Some("x".repeat(59)),
                ..custom()
            }
            .into_config(None)
            .is_ok()
        );
    }

    #[test]
    fn ca_data_is_kept_byte_for_byte() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let config = ConfigArgs {
            azure_kubernetes_ca_data: Some(pem.into()),
            ..custom()
        }
        .into_config(None)
        .unwrap();
        let ca = config.custom_token_endpoint.unwrap().ca;
        assert_eq!(ca, Some(CaSource::Data(pem.into())));
        let empty = ConfigArgs {
            azure_kubernetes_ca_data: Some(String::new()),
            ..custom()
        }
        .into_config(None)
        .unwrap();
        assert_eq!(
            empty.custom_token_endpoint.unwrap().ca,
            None,
            "empty is unset, as upstream"
        );
    }

    #[test]
    fn ca_sources_are_exclusive() {
        let both = ConfigArgs {
            azure_kubernetes_ca_data: Some("PEM".into()),
            azure_kubernetes_ca_configmap_name: Some("kube-root-ca.crt".into()),
            ..custom()
        };
        let message = error(both);
        assert!(
            message.contains("AZURE_KUBERNETES_CA_DATA and AZURE_KUBERNETES_CA_CONFIGMAP_NAME"),
            "{message}"
        );

        let selector_only = ConfigArgs {
            azure_kubernetes_ca_ctb_label_selector: Some(r#"{"matchLabels":{"a":"b"}}"#.into()),
            ..custom()
        };
        assert!(error(selector_only).contains("without AZURE_KUBERNETES_CA_CTB_SIGNER_NAME"));

        let bad_selector = ConfigArgs {
            azure_kubernetes_ca_ctb_signer_name: Some("example.com/signer".into()),
            azure_kubernetes_ca_ctb_label_selector: Some(r#"{"matchLabels":"oops"}"#.into()),
            ..custom()
        };
        assert!(error(bad_selector).contains("not a JSON label selector"));

        let good = ConfigArgs {
            azure_kubernetes_ca_ctb_signer_name: Some("example.com/signer".into()),
            azure_kubernetes_ca_ctb_label_selector: Some(r#"{"matchLabels":{"a":"b"}}"#.into()),
            ..custom()
        }
        .into_config(None)
        .unwrap();
        assert_eq!(
            good.custom_token_endpoint.unwrap().ca,
            Some(CaSource::ClusterTrustBundle {
                signer_name: "example.com/signer".into(),
                label_selector: Some(serde_json::json!({"matchLabels": {"a": "b"}})),
            })
        );
    }
}
