//! AdmissionReview in and out, in `admission.k8s.io/v1` or `v1beta1` (answered in the version asked).
//!
//! The object is kept as raw JSON ([`serde_json::Value`]) so the mutation sees every field the API
//! server sent, including ones newer than this crate's Kubernetes types. See
//! <https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#request>.

use std::fmt;

use base64::Engine as _;
use json_patch::PatchOperation;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use azure_wi_core::{Denial, excerpt, excerpt_to};

/// The most bytes of a JSON decoder's message kept in an error: it may quote the input.
const MAX_DECODER_MESSAGE: usize = 256;

fn decoder_message(error: &serde_json::Error) -> String {
    excerpt_to(&error.to_string(), MAX_DECODER_MESSAGE).into_owned()
}

/// The longest request uid accepted. The API server sends a UUID (36 characters); the uid is
/// echoed in the answer, so a longer one did not come from it and is not answered in a review.
pub const MAX_UID_LEN: usize = 128;

/// The AdmissionReview versions the webhook speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReviewVersion {
    /// `admission.k8s.io/v1`.
    #[default]
    V1,
    /// `admission.k8s.io/v1beta1` (Kubernetes before 1.16, and configurations that still list it).
    V1Beta1,
}

impl ReviewVersion {
    /// The `apiVersion` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "admission.k8s.io/v1",
            Self::V1Beta1 => "admission.k8s.io/v1beta1",
        }
    }

    fn parse(api_version: &str) -> Option<Self> {
        match api_version {
            "admission.k8s.io/v1" => Some(Self::V1),
            "admission.k8s.io/v1beta1" => Some(Self::V1Beta1),
            _ => None,
        }
    }
}

/// The group, version and kind of the admitted object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct GroupVersionKind {
    /// The API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// The version, e.g. `v1`.
    #[serde(default)]
    pub version: String,
    /// The kind, e.g. `Pod`.
    #[serde(default)]
    pub kind: String,
}

/// An AdmissionReview request for a pod.
#[derive(Clone, PartialEq)]
pub struct AdmissionRequest {
    /// The AdmissionReview version the request came in (and the response goes out) in.
    pub api_version: ReviewVersion,
    /// The request's uid, echoed in the response.
    pub uid: String,
    /// The admitted object's kind (always core/v1 Pod after [`AdmissionRequest::decode`]).
    pub kind: GroupVersionKind,
    /// The namespace of the request.
    pub namespace: String,
    /// The object's name (empty for pods created from `generateName`).
    pub name: String,
    /// `CREATE`, `UPDATE`, ...
    pub operation: String,
    /// Whether the request is a dry run (it gets the same mutation, as upstream).
    pub dry_run: bool,
    /// The pod, as raw JSON.
    pub object: Value,
}

/// Leaves the pod out: it may hold secrets (environment values, the identity header).
impl fmt::Debug for AdmissionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionRequest")
            .field("api_version", &self.api_version)
            .field("uid", &self.uid)
            .field("kind", &self.kind)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("operation", &self.operation)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// A body that is not an AdmissionReview for a pod. The server answers it with a 400 (or an
/// `invalid` review, see [`invalid_review`]); it is never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// The body is not JSON.
    #[error("the request body is not valid JSON: {}", decoder_message(.0))]
    MalformedJson(#[source] serde_json::Error),
    /// The JSON does not have an AdmissionReview's shape.
    #[error("the request body is not an AdmissionReview: {}", decoder_message(.0))]
    InvalidReview(#[source] serde_json::Error),
    /// The `apiVersion` is missing or unsupported.
    #[error(
        "unsupported AdmissionReview apiVersion {0:?}: expected admission.k8s.io/v1 or \
         admission.k8s.io/v1beta1"
    )]
    UnsupportedVersion(String),
    /// The `kind` is not `AdmissionReview`.
    #[error("the request body has kind {0:?}, expected AdmissionReview")]
    WrongKind(String),
    /// There is no `request`.
    #[error("the AdmissionReview has no request")]
    MissingRequest,
    /// The request has no uid.
    #[error("the AdmissionReview request has no uid")]
    MissingUid,
    /// The request's uid is longer than [`MAX_UID_LEN`].
    #[error(
        "the AdmissionReview request uid is {0} bytes long; the API server sends a UUID (at most \
         {MAX_UID_LEN} bytes are accepted)"
    )]
    UidTooLong(usize),
    /// The request carries no object.
    #[error("the AdmissionReview request has no object (the webhook only handles CREATE of pods)")]
    MissingObject,
    /// The object is not a pod.
    #[error(
        "the AdmissionReview request is for {0}, not a core/v1 Pod: check the \
         MutatingWebhookConfiguration's rules"
    )]
    NotAPod(String),
}

/// The fields of an AdmissionReview this module reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    request: Option<Request>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    kind: Option<GroupVersionKind>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    object: Option<Value>,
}

impl AdmissionRequest {
    /// Decodes an AdmissionReview body and checks that it asks about a pod.
    pub fn decode(body: &[u8]) -> Result<Self, AdmissionError> {
        // One pass from bytes to the review (the pod stays a raw `Value` tree inside it): a
        // syntax error is malformed JSON, valid JSON of the wrong shape is not a review.
        let review: Review = serde_json::from_slice(body).map_err(|error| match error.classify() {
            serde_json::error::Category::Data => AdmissionError::InvalidReview(error),
            _ => AdmissionError::MalformedJson(error),
        })?;
        let api_version = review.api_version.unwrap_or_default();
        let api_version = ReviewVersion::parse(&api_version)
            .ok_or_else(|| AdmissionError::UnsupportedVersion(excerpt(&api_version).into_owned()))?;
        match review.kind.as_deref() {
            Some("AdmissionReview") => {}
            other => {
                return Err(AdmissionError::WrongKind(
                    excerpt(other.unwrap_or_default()).into_owned(),
                ));
            }
        }
        let request = review.request.ok_or(AdmissionError::MissingRequest)?;
        let uid = request
            .uid
            .filter(|uid| !uid.is_empty())
            .ok_or(AdmissionError::MissingUid)?;
        if uid.len() > MAX_UID_LEN {
            return Err(AdmissionError::UidTooLong(uid.len()));
        }
        let kind = request.kind.unwrap_or_default();
        if !(kind.group.is_empty() && kind.kind == "Pod") {
            let described = if kind.kind.is_empty() {
                "an object of unknown kind".to_owned()
            } else {
                format!(
                    "{}/{} {}",
                    if kind.group.is_empty() {
                        "core".into()
                    } else {
                        excerpt(&kind.group)
                    },
                    excerpt(&kind.version),
                    excerpt(&kind.kind)
                )
            };
            return Err(AdmissionError::NotAPod(described));
        }
        let object = match request.object {
            None | Some(Value::Null) => return Err(AdmissionError::MissingObject),
            Some(object @ Value::Object(_)) => object,
            Some(_) => {
                return Err(AdmissionError::NotAPod(
                    "a value that is not a JSON object".to_owned(),
                ));
            }
        };
        if let Some(object_kind) = object
            .get("kind")
            .and_then(Value::as_str)
            .filter(|kind| *kind != "Pod")
        {
            return Err(AdmissionError::NotAPod(format!(
                "an object of kind {}",
                excerpt(object_kind)
            )));
        }
        Ok(Self {
            api_version,
            uid,
            kind,
            namespace: request.namespace.unwrap_or_default(),
            name: request.name.unwrap_or_default(),
            operation: request.operation.unwrap_or_default(),
            dry_run: request.dry_run.unwrap_or(false),
            object,
        })
    }

    /// The serialised AdmissionReview answering this request: allowed with the patch (none when
    /// there is nothing to change), or denied with the denial's code and message.
    pub fn respond(&self, outcome: Result<Vec<PatchOperation>, Denial>) -> Vec<u8> {
        let patch = outcome.and_then(|ops| {
            encode_patch(&ops).map_err(|error| Denial {
                message: format!("internal error: cannot encode the patch: {error}"),
                code: 500,
            })
        });
        let response = match &patch {
            Ok(patch) => ResponseOut::allowed(&self.uid, patch.as_deref()),
            Err(denial) => ResponseOut::denied(&self.uid, denial),
        };
        review(self.api_version, response)
    }
}

/// The patch as the review carries it, JSON then base64; `None` when there is nothing to change.
/// Sized up front: a patch of a few operations is 1-3 KB, and growing a buffer from serde_json's
/// 128 bytes took five copies.
fn encode_patch(ops: &[PatchOperation]) -> Result<Option<String>, serde_json::Error> {
    if ops.is_empty() {
        return Ok(None);
    }
    let mut patch = Vec::with_capacity(PATCH_BYTES_PER_OP * ops.len());
    serde_json::to_writer(&mut patch, ops)?;
    Ok(Some(base64::engine::general_purpose::STANDARD.encode(patch)))
}

/// About what one operation of the mutation takes in JSON (an environment variable is ~100
/// bytes, a container's mount ~150, the token volume ~400).
const PATCH_BYTES_PER_OP: usize = 160;

/// The AdmissionReview sent back, borrowed from what it answers (its fields in the order the
/// webhook has always written them).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    allowed: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    patch: Option<PatchOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut<'a>>,
    uid: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PatchOut<'a> {
    patch: &'a str,
    patch_type: &'static str,
}

#[derive(Serialize)]
struct StatusOut<'a> {
    code: u16,
    message: &'a str,
}

impl<'a> ResponseOut<'a> {
    fn allowed(uid: &'a str, patch: Option<&'a str>) -> Self {
        Self {
            allowed: true,
            patch: patch.map(|patch| PatchOut {
                patch,
                patch_type: "JSONPatch",
            }),
            status: None,
            uid,
        }
    }

    fn denied(uid: &'a str, denial: &'a Denial) -> Self {
        Self {
            allowed: false,
            patch: None,
            status: Some(StatusOut {
                code: denial.code,
                message: &denial.message,
            }),
            uid,
        }
    }
}

/// The AdmissionReview answering a body that [`AdmissionRequest::decode`] rejected: not allowed,
/// status 400 with the error, in the body's version and for its request uid. `None` when the body
/// has no known `apiVersion` or no usable `request.uid`: nothing an API server sent, so nothing to
/// answer in a review (the server answers HTTP 400). Only those two fields are read; the rest of
/// the body is skipped without being built.
pub fn invalid_review(body: &[u8], error: &AdmissionError) -> Option<Vec<u8>> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "apiVersion", borrow)]
        api_version: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        request: Option<RequestUid<'a>>,
    }
    #[derive(Deserialize)]
    struct RequestUid<'a> {
        #[serde(borrow)]
        uid: Option<std::borrow::Cow<'a, str>>,
    }
    let envelope: Envelope<'_> = serde_json::from_slice(body).ok()?;
    let version = ReviewVersion::parse(envelope.api_version.as_deref()?)?;
    // A uid no API server sends is not echoed.
    let uid = envelope
        .request?
        .uid
        .filter(|uid| !uid.is_empty() && uid.len() <= MAX_UID_LEN)?;
    let denial = Denial::new(error.to_string());
    Some(review(version, ResponseOut::denied(&uid, &denial)))
}

fn review(version: ReviewVersion, response: ResponseOut<'_>) -> Vec<u8> {
    let review = ReviewOut {
        api_version: version.as_str(),
        kind: "AdmissionReview",
        response,
    };
    let size = 160
        + review
            .response
            .patch
            .as_ref()
            .map_or(0, |patch| patch.patch.len());
    let mut out = Vec::with_capacity(size);
    // Strings, numbers and booleans always serialise.
    let _ = serde_json::to_writer(&mut out, &review);
    out
}

#[cfg(test)]
mod tests {
    use json_patch::{AddOperation, jsonptr::PointerBuf};
    use serde_json::json;

    use super::*;

    fn request(api_version: ReviewVersion) -> AdmissionRequest {
        AdmissionRequest {
            api_version,
            uid: "705ab4f5-6393-11e8-b7cc-42010a800002".to_owned(),
            kind: GroupVersionKind::default(),
            namespace: "team-a".to_owned(),
            name: String::new(),
            operation: "CREATE".to_owned(),
            dry_run: false,
            object: Value::Null,
        }
    }

    #[test]
    fn answers_carry_exactly_the_fields_of_their_outcome() {
        let op = PatchOperation::Add(AddOperation {
            path: PointerBuf::parse("/metadata/namespace").unwrap(),
            value: json!("team-a"),
        });
        let patch = base64::engine::general_purpose::STANDARD
            .encode(br#"[{"op":"add","path":"/metadata/namespace","value":"team-a"}]"#);
        let allowed = request(ReviewVersion::V1).respond(Ok(vec![op]));
        assert_eq!(
            String::from_utf8(allowed).unwrap(),
            format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"allowed":true,"patch":"{patch}","patchType":"JSONPatch","uid":"705ab4f5-6393-11e8-b7cc-42010a800002"}}}}"#
            )
        );

        let unchanged = request(ReviewVersion::V1Beta1).respond(Ok(Vec::new()));
        assert_eq!(
            String::from_utf8(unchanged).unwrap(),
            r#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","response":{"allowed":true,"uid":"705ab4f5-6393-11e8-b7cc-42010a800002"}}"#
        );

        let denied = request(ReviewVersion::V1).respond(Err(Denial::new("a \"quoted\" reason")));
        assert_eq!(
            String::from_utf8(denied).unwrap(),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"allowed":false,"status":{"code":400,"message":"a \"quoted\" reason"},"uid":"705ab4f5-6393-11e8-b7cc-42010a800002"}}"#
        );
    }

    #[test]
    fn a_body_that_is_no_review_is_answered_in_its_own_version_and_uid() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"}}}"#;
        let error = AdmissionRequest::decode(body).unwrap_err();
        let answer: Value = serde_json::from_slice(&invalid_review(body, &error).unwrap()).unwrap();
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(answer["response"]["uid"], "u-1");
        assert_eq!(answer["response"]["allowed"], false);
        assert_eq!(answer["response"]["status"]["code"], 400);
        assert_eq!(
            answer["response"]["status"]["message"],
            "the AdmissionReview request has no object (the webhook only handles CREATE of pods)"
        );
    }
}
