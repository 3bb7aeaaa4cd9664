//! TEMPORARY stand-in for the `webhook-mutation` branch's `config`, `mutation` and `admission`
//! modules, with the agreed names only. Deleted when that branch is merged.
#![allow(missing_docs)]

pub mod config {
    #[derive(Clone, Debug, clap::Args)]
    pub struct ConfigArgs {
        #[arg(long, env = "AZURE_TENANT_ID", default_value = "")]
        pub tenant_id: String,
        #[arg(long, default_value = "api://AzureADTokenExchange")]
        pub audience: String,
    }
    #[derive(Clone, Debug)]
    pub struct Config {
        pub tenant_id: String,
        pub audience: String,
    }
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct ConfigError(pub String);
    impl ConfigArgs {
        pub fn into_config(self, _server_version: Option<(u32, u32)>) -> Result<Config, ConfigError> {
            if self.tenant_id.is_empty() {
                return Err(ConfigError("AZURE_TENANT_ID is required".into()));
            }
            Ok(Config { tenant_id: self.tenant_id, audience: self.audience })
        }
    }
}

pub mod mutation {
    use std::collections::BTreeMap;

    use json_patch::{AddOperation, PatchOperation, jsonptr::PointerBuf};
    use serde_json::{Value, json};

    use super::config::Config;

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct ServiceAccount {
        pub name: String,
        pub annotations: BTreeMap<String, String>,
    }
    #[derive(Clone, Debug, thiserror::Error)]
    #[error("{message}")]
    pub struct Denial {
        pub message: String,
    }
    pub fn service_account_name(pod: &Value) -> &str {
        match pod.pointer("/spec/serviceAccountName").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name,
            _ => "default",
        }
    }
    pub fn mutate(
        pod: &Value,
        _ns: &str,
        sa: &ServiceAccount,
        config: &Config,
    ) -> Result<Vec<PatchOperation>, Denial> {
        if pod.pointer("/spec/containers").is_none() {
            return Err(Denial { message: "pod has no containers".into() });
        }
        let client_id = sa.annotations.get("azure.workload.identity/client-id").cloned().unwrap_or_default();
        Ok(vec![PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["spec", "containers", "0", "env"]),
            value: json!([{"name": "AZURE_CLIENT_ID", "value": client_id},
                          {"name": "AZURE_TENANT_ID", "value": config.tenant_id}]),
        })])
    }
}

pub mod admission {
    use base64::Engine;
    use serde_json::{Value, json};

    use super::mutation::Denial;

    #[derive(Clone, Debug)]
    pub struct AdmissionRequest {
        pub uid: String,
        pub namespace: String,
        pub name: String,
        pub api_version: String,
        pub dry_run: bool,
        pub object: Value,
    }
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct AdmissionError(String);

    impl AdmissionRequest {
        pub fn decode(body: &[u8]) -> Result<Self, AdmissionError> {
            let review: Value = serde_json::from_slice(body)
                .map_err(|e| AdmissionError(format!("the body is not a JSON AdmissionReview: {e}")))?;
            let api_version = review["apiVersion"].as_str().unwrap_or_default().to_owned();
            if api_version != "admission.k8s.io/v1" && api_version != "admission.k8s.io/v1beta1" {
                return Err(AdmissionError(format!("unsupported apiVersion {api_version:?}")));
            }
            let request = review.get("request").ok_or_else(|| AdmissionError("missing request".into()))?;
            let object = request.get("object").cloned().filter(Value::is_object);
            let object = object.ok_or_else(|| AdmissionError("missing request.object".into()))?;
            let s = |k: &str| request[k].as_str().unwrap_or_default().to_owned();
            Ok(Self {
                uid: s("uid"),
                namespace: s("namespace"),
                name: s("name"),
                api_version,
                dry_run: request["dryRun"].as_bool().unwrap_or(false),
                object,
            })
        }
        pub fn respond(&self, result: Result<Vec<json_patch::PatchOperation>, Denial>) -> Vec<u8> {
            let response = match result {
                Ok(ops) => json!({"uid": self.uid, "allowed": true, "patchType": "JSONPatch",
                    "patch": base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&ops).unwrap_or_default())}),
                Err(d) => json!({"uid": self.uid, "allowed": false, "status": {"code": 400, "message": d.message}}),
            };
            serde_json::to_vec(&json!({"apiVersion": self.api_version, "kind": "AdmissionReview", "response": response}))
                .unwrap_or_default()
        }
    }
}
