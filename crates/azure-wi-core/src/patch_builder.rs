//! Builds a JSON Patch against a raw document, one surgical operation at a time.
//!
//! Every operation is applied to a working copy as it is recorded, so later operations see the
//! indices and parents that earlier ones created (a sidecar prepended at `containers/0` shifts
//! every other container). The working copy is walked step by step, never through pointer
//! strings (parsing and unescaping those allocated per token on the admission hot path; the
//! tests check that every patch also applies with `json_patch`). The original document is never re-serialised, so fields this crate
//! does not know survive untouched, and only `add` and `replace` operations are ever produced.

use json_patch::{
    AddOperation, PatchOperation, ReplaceOperation,
    jsonptr::{PointerBuf, Token},
};
use serde_json::Value;

use crate::denial::Denial;

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
    /// Starts an empty patch against a copy of `doc`.
    #[cfg(test)]
    pub(crate) fn new(doc: &Value) -> Self {
        Self::from_owned(doc.clone())
    }

    /// Starts an empty patch against `doc`, which becomes the working copy.
    pub(crate) fn from_owned(doc: Value) -> Self {
        Self { doc, ops: Vec::new() }
    }

    /// The document with every recorded operation applied.
    pub(crate) fn doc(&self) -> &Value {
        &self.doc
    }

    /// The value at `steps` in the patched document, if present.
    pub(crate) fn get(&self, steps: &[Step<'_>]) -> Option<&Value> {
        steps.iter().try_fold(&self.doc, |value, step| match step {
            Step::Key(key) => value.get(*key),
            Step::Index(index) => value.get(*index),
            Step::End => None,
        })
    }

    /// Records `add` of `value` at `steps` (creates an object member, replaces an existing one,
    /// or inserts into an array).
    pub(crate) fn add(&mut self, steps: &[Step<'_>], value: Value) -> Result<(), Denial> {
        self.apply(steps, value.clone(), true)?;
        self.ops.push(PatchOperation::Add(AddOperation {
            path: pointer(steps),
            value,
        }));
        Ok(())
    }

    /// Records `replace` of the value at `steps`.
    pub(crate) fn replace(&mut self, steps: &[Step<'_>], value: Value) -> Result<(), Denial> {
        self.apply(steps, value.clone(), false)?;
        self.ops.push(PatchOperation::Replace(ReplaceOperation {
            path: pointer(steps),
            value,
        }));
        Ok(())
    }

    /// The recorded operations.
    pub(crate) fn into_ops(self) -> Vec<PatchOperation> {
        self.ops
    }

    /// Applies `add` (or `replace`) of `value` at `steps` to the working copy, with RFC 6902's
    /// rules: the parent must exist; `add` inserts into an array at an index up to its length or
    /// appends at `-`, and sets an object member; `replace` needs the target to exist.
    fn apply(&mut self, steps: &[Step<'_>], value: Value, add: bool) -> Result<(), Denial> {
        let impossible = || {
            Denial::new(format!(
                "internal error: the webhook built a patch it cannot apply ({} {})",
                if add { "add" } else { "replace" },
                pointer(steps)
            ))
        };
        let Some((last, parents)) = steps.split_last() else {
            return Err(impossible());
        };
        let mut parent = &mut self.doc;
        for step in parents {
            parent = match step {
                Step::Key(key) => parent.get_mut(*key),
                Step::Index(index) => parent.get_mut(*index),
                Step::End => None,
            }
            .ok_or_else(impossible)?;
        }
        match (parent, last) {
            (Value::Object(map), Step::Key(key)) if add || map.contains_key(*key) => {
                map.insert((*key).to_owned(), value);
            }
            (Value::Array(items), Step::Index(index)) if add && *index <= items.len() => {
                items.insert(*index, value);
            }
            (Value::Array(items), Step::Index(index)) if !add && *index < items.len() => {
                items[*index] = value;
            }
            (Value::Array(items), Step::End) if add => items.push(value),
            _ => return Err(impossible()),
        }
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
        let working = patch.doc().clone();
        let ops = patch.into_ops();
        assert_eq!(ops.len(), 1);
        let mut applied = original.clone();
        json_patch::patch(&mut applied, &ops).unwrap();
        assert_eq!(applied, working, "json_patch agrees with the working copy");
        assert_eq!(
            original["spec"]["containers"].as_array().unwrap().len(),
            1,
            "the input is not modified"
        );
    }

    #[test]
    fn the_working_copy_follows_json_patch_exactly() {
        // (Steps are typed: a key never addresses an array element, where a pointer string
        // could; the mutation only ever builds index steps into arrays. The whole document is
        // never replaced: see the next test.)
        let doc = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "volumes": []}, "n": null});
        let cases: &[&[Step<'_>]] = &[
            &[Step::Key("spec"), Step::Key("containers"), Step::Index(0)],
            &[Step::Key("spec"), Step::Key("containers"), Step::Index(2)],
            &[Step::Key("spec"), Step::Key("containers"), Step::Index(3)],
            &[Step::Key("spec"), Step::Key("containers"), Step::End],
            &[Step::Key("spec"), Step::Key("volumes"), Step::Index(0)],
            &[Step::Key("spec"), Step::Key("missing")],
            &[Step::Key("spec"), Step::Key("missing"), Step::Key("deeper")],
            &[
                Step::Key("spec"),
                Step::Key("containers"),
                Step::Index(1),
                Step::Key("env"),
            ],
            &[
                Step::Key("spec"),
                Step::Key("containers"),
                Step::Index(1),
                Step::Key("name"),
            ],
            &[Step::Key("n"), Step::Key("x")],
            &[Step::Key("a/b~c")],
        ];
        for steps in cases {
            for add in [true, false] {
                let mut ours = PatchBuilder::new(&doc);
                let value = json!({"v": 1});
                let result = if add {
                    ours.add(steps, value.clone())
                } else {
                    ours.replace(steps, value.clone())
                };
                let op = if add {
                    PatchOperation::Add(AddOperation {
                        path: pointer(steps),
                        value,
                    })
                } else {
                    PatchOperation::Replace(ReplaceOperation {
                        path: pointer(steps),
                        value,
                    })
                };
                let mut theirs = doc.clone();
                let reference = json_patch::patch(&mut theirs, &[op]);
                assert_eq!(
                    result.is_ok(),
                    reference.is_ok(),
                    "{steps:?} add={add}: {result:?} vs {reference:?}"
                );
                if result.is_ok() {
                    assert_eq!(ours.doc(), &theirs, "{steps:?} add={add}");
                } else {
                    assert_eq!(ours.doc(), &doc, "a refused operation leaves the copy untouched");
                    assert!(ours.into_ops().is_empty());
                }
            }
        }
    }

    #[test]
    fn impossible_operations_are_internal_denials() {
        let mut patch = PatchBuilder::new(&json!({}));
        let denial = patch
            .add(&["spec".into(), "containers".into()], json!([]))
            .unwrap_err();
        assert!(denial.message.starts_with("internal error"), "{denial}");
        let denial = patch.add(&[], json!({})).unwrap_err();
        assert!(
            denial.message.starts_with("internal error"),
            "the pod is never replaced whole: {denial}"
        );
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
