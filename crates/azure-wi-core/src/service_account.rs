//! The ServiceAccount as the mutation sees it: its name and annotations, and which one a pod
//! runs as.

use std::collections::BTreeMap;

use serde_json::Value;

/// The parts of a ServiceAccount the mutation reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAccount {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.annotations` (only the `azure.workload.identity/*` ones matter).
    pub annotations: BTreeMap<String, String>,
}

/// The ServiceAccount a pod runs as: `spec.serviceAccountName`, or `default` when it is empty.
pub fn service_account_name(pod: &Value) -> &str {
    match pod
        .get("spec")
        .and_then(|spec| spec.get("serviceAccountName"))
        .and_then(Value::as_str)
    {
        Some(name) if !name.is_empty() => name,
        _ => "default",
    }
}
