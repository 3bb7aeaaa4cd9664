//! The environment variables the credentials read, by name: one definition each, shared with the
//! webhook (the crate `azure-wi-core` writes the first four into every mutated container, and this
//! library reads them back).

/// The application's Microsoft Entra tenant (workload identity; the webhook writes it).
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
/// The application (client) id (workload identity; the webhook writes it).
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// The projected service-account token file (workload identity; the webhook writes it).
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
/// The Microsoft Entra authority host (the webhook writes its cloud's, with a trailing `/`).
pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
/// Set to `true`, a request's own tenant is ignored (as in the Azure SDKs).
pub const AZURE_IDENTITY_DISABLE_MULTITENANTAUTH: &str = "AZURE_IDENTITY_DISABLE_MULTITENANTAUTH";
/// Another IMDS host (managed identity).
pub const AZURE_POD_IDENTITY_AUTHORITY_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
/// App Service, Functions, Container Apps, Service Fabric and Azure Arc's token endpoint.
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// The secret header of `IDENTITY_ENDPOINT` (App Service, Service Fabric).
pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
/// Service Fabric's pinned server certificate (SHA-1 thumbprint).
pub const IDENTITY_SERVER_THUMBPRINT: &str = "IDENTITY_SERVER_THUMBPRINT";
/// Azure Arc, with `IDENTITY_ENDPOINT`.
pub const IMDS_ENDPOINT: &str = "IMDS_ENDPOINT";
/// Azure Machine Learning (with `MSI_SECRET`) and Cloud Shell (alone).
pub const MSI_ENDPOINT: &str = "MSI_ENDPOINT";
/// Azure Machine Learning's secret.
pub const MSI_SECRET: &str = "MSI_SECRET";
/// An extra PEM bundle of trusted CAs (every credential).
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// The Azure Pipelines job's OIDC endpoint, read per request.
pub const SYSTEM_OIDCREQUESTURI: &str = "SYSTEM_OIDCREQUESTURI";
/// The Azure Pipelines job token, when not passed explicitly.
pub const SYSTEM_ACCESSTOKEN: &str = "SYSTEM_ACCESSTOKEN";
/// An identity binding's token proxy URL (read with `enable_azure_proxy`).
pub const AZURE_KUBERNETES_TOKEN_PROXY: &str = "AZURE_KUBERNETES_TOKEN_PROXY";
/// The TLS server name of an identity binding's token proxy.
pub const AZURE_KUBERNETES_SNI_NAME: &str = "AZURE_KUBERNETES_SNI_NAME";
/// A PEM file with the token proxy's CA (projected by the kubelet, rotated in place).
pub const AZURE_KUBERNETES_CA_FILE: &str = "AZURE_KUBERNETES_CA_FILE";
/// The token proxy's CA, PEM, inline.
pub const AZURE_KUBERNETES_CA_DATA: &str = "AZURE_KUBERNETES_CA_DATA";
