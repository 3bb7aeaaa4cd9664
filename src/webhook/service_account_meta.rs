//! A ServiceAccount as the webhook reads it from the API server: its metadata only, decoded leanly.
//!
//! [`AccountMeta`] is a [`kube::Resource`] for `serviceaccounts` that asks for metadata-only
//! responses (`PartialObjectMetadata`, so the API server never sends `secrets` lists) and whose
//! decoder keeps only `name`, `namespace`, `resourceVersion` (the watch resumes from it) and the
//! `azure.workload.identity/*` annotations. Every other field — `managedFields`, labels,
//! `kubectl.kubernetes.io/last-applied-configuration` and other annotations — is skipped while
//! parsing, without being allocated, so an initial LIST of 10,000 ServiceAccounts leaves no garbage
//! behind in the allocator.

use std::{borrow::Cow, collections::BTreeMap, fmt};

use k8s_openapi::NamespaceResourceScope;
use kube::{Resource, api::ObjectMeta};
use serde::{
    Deserialize, Deserializer,
    de::{IgnoredAny, MapAccess, Visitor},
};

/// The annotation prefix the mutation reads; every other annotation is dropped while decoding.
pub const ANNOTATION_PREFIX: &str = "azure.workload.identity/";

/// A ServiceAccount's metadata, reduced to what the webhook reads (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountMeta {
    /// `name`, `namespace`, `resourceVersion` and the `azure.workload.identity/*` annotations;
    /// every other field is `None`.
    pub metadata: ObjectMeta,
}

impl AccountMeta {
    /// A ServiceAccount with these annotations (those outside [`ANNOTATION_PREFIX`] are dropped, as
    /// the decoder drops them).
    pub fn new(namespace: &str, name: &str, annotations: &[(&str, &str)]) -> Self {
        let annotations: BTreeMap<String, String> = annotations
            .iter()
            .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                annotations: (!annotations.is_empty()).then_some(annotations),
                ..ObjectMeta::default()
            },
        }
    }
}

impl Resource for AccountMeta {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn metadata_api() -> bool {
        true
    }

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("ServiceAccount")
    }

    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("serviceaccounts")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de> Deserialize<'de> for AccountMeta {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = AccountMeta;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a ServiceAccount or PartialObjectMetadata object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AccountMeta, A::Error> {
        let mut metadata = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == "metadata" {
                metadata = Some(map.next_value::<Metadata>()?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(AccountMeta {
            metadata: metadata.ok_or_else(|| serde::de::Error::missing_field("metadata"))?,
        })
    }
}

/// `metadata`, reduced.
struct Metadata(ObjectMeta);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MetadataVisitor)
    }
}

struct MetadataVisitor;

impl<'de> Visitor<'de> for MetadataVisitor {
    type Value = Metadata;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("object metadata")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
        let mut meta = ObjectMeta::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match &*key.0 {
                "name" => meta.name = map.next_value()?,
                "namespace" => meta.namespace = map.next_value()?,
                "resourceVersion" => meta.resource_version = map.next_value()?,
                "annotations" => {
                    meta.annotations = map.next_value::<Option<Annotations>>()?.and_then(|a| a.0)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Metadata(meta))
    }
}

/// The `azure.workload.identity/*` annotations (`None` when there are none).
struct Annotations(Option<BTreeMap<String, String>>);

impl<'de> Deserialize<'de> for Annotations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AnnotationsVisitor)
    }
}

struct AnnotationsVisitor;

impl<'de> Visitor<'de> for AnnotationsVisitor {
    type Value = Annotations;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of annotations")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Annotations, A::Error> {
        let mut kept: Option<BTreeMap<String, String>> = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0.starts_with(ANNOTATION_PREFIX) {
                let value: String = map.next_value()?;
                kept.get_or_insert_default().insert(key.0.into_owned(), value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Annotations(kept))
    }
}

/// A map key, borrowed from the input when the input allows it (no allocation per skipped key).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CLIENT_ID: &str = "azure.workload.identity/client-id";

    #[test]
    fn partial_object_metadata_keeps_only_what_the_webhook_reads() {
        let text = json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {
                "name": "app", "namespace": "team-a", "resourceVersion": "42", "uid": "u-1",
                "labels": {"app": "x"},
                "annotations": {
                    CLIENT_ID: "1111",
                    "azure.workload.identity/tenant-id": "t",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}"
                },
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:metadata": {}}}]
            }
        })
        .to_string();
        let sa: AccountMeta = serde_json::from_str(&text).unwrap();
        let m = &sa.metadata;
        assert_eq!(
            (m.name.as_deref(), m.namespace.as_deref()),
            (Some("app"), Some("team-a"))
        );
        assert_eq!(m.resource_version.as_deref(), Some("42"));
        assert_eq!(
            m.annotations,
            Some(BTreeMap::from([
                (CLIENT_ID.to_owned(), "1111".to_owned()),
                ("azure.workload.identity/tenant-id".to_owned(), "t".to_owned()),
            ]))
        );
        assert!(m.uid.is_none() && m.labels.is_none() && m.managed_fields.is_none());
    }

    #[test]
    fn a_full_service_account_and_escaped_keys_decode_too() {
        // A full object (as a GET without the metadata Accept header returns) and a key written
        // with a JSON escape (which cannot be borrowed from the input).
        let text = r#"{"apiVersion":"v1","kind":"ServiceAccount","secrets":[{"name":"t"}],
            "metadata":{"name":"sa","namespace":"ns","annotations":{"azure.workload.identity\/client-id":"2",
            "other":"x"}}}"#;
        let sa: AccountMeta = serde_json::from_str(text).unwrap();
        assert_eq!(
            sa.metadata.annotations,
            Some(BTreeMap::from([(CLIENT_ID.to_owned(), "2".to_owned())]))
        );
        assert_eq!(
            sa,
            AccountMeta::new("ns", "sa", &[(CLIENT_ID, "2"), ("other", "x")])
        );
    }

    #[test]
    fn no_workload_identity_annotation_means_none() {
        let text = r#"{"metadata":{"name":"sa","namespace":"ns","annotations":{"a":"b"}}}"#;
        let sa: AccountMeta = serde_json::from_str(text).unwrap();
        assert!(sa.metadata.annotations.is_none());
        let null = r#"{"metadata":{"name":"sa","annotations":null}}"#;
        assert!(
            serde_json::from_str::<AccountMeta>(null)
                .unwrap()
                .metadata
                .annotations
                .is_none()
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for text in [
            r#"{}"#,
            r#"{"metadata": 3}"#,
            r#"{"metadata": {"annotations": {"azure.workload.identity/x": 1}}}"#,
            r#"[1]"#,
        ] {
            assert!(serde_json::from_str::<AccountMeta>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn requests_go_to_serviceaccounts_as_metadata() {
        assert!(AccountMeta::metadata_api());
        assert_eq!(
            AccountMeta::url_path(&(), Some("ns")),
            "/api/v1/namespaces/ns/serviceaccounts"
        );
    }
}
