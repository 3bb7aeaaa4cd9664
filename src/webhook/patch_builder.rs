//! Builds a JSON Patch against a raw document, one surgical operation at a time.
//!
//! Every operation is applied to a working copy as it is recorded, so later operations see the
//! indices and parents that earlier ones created (a sidecar prepended at `containers/0` shifts
//! every other container). The original document is never re-serialised, so fields this crate
//! does not know survive untouched, and only `add` and `replace` operations are ever produced.

use json_patch::{
    AddOperation, PatchOperation, ReplaceOperation,
    jsonptr::{PointerBuf, Token},
};
use serde_json::Value;

use super::denial::Denial;

/// A JSON Patch under construction, with the document as it will look after the patch.
#[derive(Debug)]
pub(crate) struct PatchBuilder {
    doc: Value,
    ops: Vec<PatchOperation>,
}

/// One step of a JSON pointer: an object key or an array index.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step<'a> {
    /// An object member.
    Key(&'a str),
    /// An array element.
    Index(usize),
    /// The end of an array (`-`), for appending.
    End,
}

impl<'a> From<&'a str> for Step<'a> {
    fn from(key: &'a str) -> Self {
        Step::Key(key)
    }
}

impl From<usize> for Step<'_> {
    fn from(index: usize) -> Self {
        Step::Index(index)
    }
}

/// Builds an escaped JSON pointer from steps (`~` and `/` in keys become `~0` and `~1`).
pub(crate) fn pointer(steps: &[Step<'_>]) -> PointerBuf {
    PointerBuf::from_tokens(steps.iter().map(|step| match step {
        Step::Key(key) => Token::new(*key),
        Step::Index(index) => Token::new(index.to_string()),
        Step::End => Token::new("-"),
    }))
}

impl PatchBuilder {
    /// Starts an empty patch against `doc`.
    pub(crate) fn new(doc: &Value) -> Self {
        Self {
            doc: doc.clone(),
            ops: Vec::new(),
        }
    }

    /// The document with every recorded operation applied.
    pub(crate) fn doc(&self) -> &Value {
        &self.doc
    }

    /// The value at `steps` in the patched document, if present.
    pub(crate) fn get(&self, steps: &[Step<'_>]) -> Option<&Value> {
        self.doc.pointer(pointer(steps).as_str())
    }

    /// Records `add` of `value` at `steps` (creates an object member, replaces an existing one,
    /// or inserts into an array).
    pub(crate) fn add(&mut self, steps: &[Step<'_>], value: Value) -> Result<(), Denial> {
        self.apply(PatchOperation::Add(AddOperation {
            path: pointer(steps),
            value,
        }))
    }

    /// Records `replace` of the value at `steps`.
    pub(crate) fn replace(&mut self, steps: &[Step<'_>], value: Value) -> Result<(), Denial> {
        self.apply(PatchOperation::Replace(ReplaceOperation {
            path: pointer(steps),
            value,
        }))
    }

    /// The recorded operations.
    pub(crate) fn into_ops(self) -> Vec<PatchOperation> {
        self.ops
    }

    fn apply(&mut self, op: PatchOperation) -> Result<(), Denial> {
        json_patch::patch(&mut self.doc, std::slice::from_ref(&op)).map_err(|error| {
            Denial::new(format!(
                "internal error: the webhook built a patch it cannot apply ({error})"
            ))
        })?;
        self.ops.push(op);
        Ok(())
    }
}

/// Whether `actual` already holds everything in `wanted`: every member of a wanted object is in
/// the actual one with a matching value (extra members, e.g. API server defaults like
/// `defaultMode: 420`, are allowed), arrays match element by element, scalars are equal.
pub(crate) fn contains(actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::Object(actual), Value::Object(wanted)) => wanted
            .iter()
            .all(|(key, value)| actual.get(key).is_some_and(|a| contains(a, value))),
        (Value::Array(actual), Value::Array(wanted)) => {
            actual.len() == wanted.len() && actual.iter().zip(wanted).all(|(a, w)| contains(a, w))
        }
        _ => actual == wanted,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pointers_escape_tilde_and_slash() {
        let path = pointer(&[
            Step::Key("metadata"),
            Step::Key("annotations"),
            Step::Key("a/b~c"),
            Step::Index(2),
        ]);
        assert_eq!(path.as_str(), "/metadata/annotations/a~1b~0c/2");
        assert_eq!(
            pointer(&[Step::Key("spec"), Step::Key("volumes"), Step::End]).as_str(),
            "/spec/volumes/-"
        );
    }

    #[test]
    fn operations_apply_to_the_working_copy() {
        let original = json!({"spec": {"containers": [{"name": "a"}]}});
        let mut patch = PatchBuilder::new(&original);
        patch
            .add(
                &["spec".into(), "containers".into(), 0.into()],
                json!({"name": "proxy"}),
            )
            .unwrap();
        assert_eq!(
            patch.get(&["spec".into(), "containers".into(), 1.into(), "name".into()]),
            Some(&json!("a"))
        );
        let ops = patch.into_ops();
        assert_eq!(ops.len(), 1);
        assert_eq!(
            original["spec"]["containers"].as_array().unwrap().len(),
            1,
            "the input is not modified"
        );
    }

    #[test]
    fn impossible_operations_are_internal_denials() {
        let mut patch = PatchBuilder::new(&json!({}));
        let denial = patch
            .add(&["spec".into(), "containers".into()], json!([]))
            .unwrap_err();
        assert!(denial.message.starts_with("internal error"), "{denial}");
    }

    #[test]
    fn containment_allows_server_defaults() {
        let wanted = json!({"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}});
        let defaulted = json!({"name": "v", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"path": "t"}}]}});
        assert!(contains(&defaulted, &wanted));
        let changed =
            json!({"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "other"}}]}});
        assert!(!contains(&changed, &wanted));
        let extra_source =
            json!({"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}, {}]}});
        assert!(!contains(&extra_source, &wanted));
    }
}
