//! AdmissionReview round trips in v1 and v1beta1, and bodies that are not reviews of pods.

mod support;

use azure_wi::webhook::{
    AdmissionError, AdmissionRequest,
    admission::{ReviewVersion, invalid_review},
};
use azure_wi_core::Denial;
use base64::Engine as _;
use json_patch::PatchOperation;
use serde_json::{Value, json};
use support::*;

fn review(api_version: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "apps",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": object,
            "oldObject": null,
            "dryRun": true,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }))
    .unwrap()
}

fn decode_response(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("the response is JSON")
}

#[test]
fn v1_and_v1beta1_are_answered_in_the_version_asked_with_the_patch() {
    for (api_version, version) in [
        ("admission.k8s.io/v1", ReviewVersion::V1),
        ("admission.k8s.io/v1beta1", ReviewVersion::V1Beta1),
    ] {
        let request = AdmissionRequest::decode(&review(api_version, pod())).unwrap();
        assert_eq!(request.api_version, version);
        assert_eq!(request.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(request.namespace, "apps");
        assert_eq!(request.operation, "CREATE");
        assert!(request.dry_run);
        assert_eq!(request.kind.kind, "Pod");
        assert_eq!(request.object, pod());

        let ops = mutate(&request.object, &sa(), &config()).unwrap();
        let response = decode_response(&request.respond(Ok(ops.clone())));
        assert_eq!(response["apiVersion"], api_version);
        assert_eq!(response["kind"], "AdmissionReview");
        assert_eq!(
            response["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(response["response"]["allowed"], true);
        assert_eq!(response["response"]["patchType"], "JSONPatch");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(response["response"]["patch"].as_str().unwrap())
            .unwrap();
        let decoded: Vec<PatchOperation> = serde_json::from_slice(&patch).unwrap();
        assert_eq!(decoded, ops);
    }
}

#[test]
fn denials_carry_code_400_and_the_message() {
    let request = AdmissionRequest::decode(&review("admission.k8s.io/v1beta1", pod())).unwrap();
    let response = decode_response(&request.respond(Err(Denial::service_account_not_found("workload"))));
    assert_eq!(response["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(
        response["response"],
        json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "allowed": false,
            "status": {"code": 400, "message": "serviceaccounts \"workload\" not found"},
        })
    );
}

#[test]
fn an_empty_patch_is_allowed_without_a_patch_field() {
    let request = AdmissionRequest::decode(&review("admission.k8s.io/v1", pod())).unwrap();
    let response = decode_response(&request.respond(Ok(vec![])));
    assert_eq!(
        response["response"],
        json!({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true})
    );
}

#[test]
fn unknown_pod_fields_reach_the_mutation_untouched() {
    let mut object = pod();
    object["spec"]["someFutureField"] = json!({"x": [1, 2]});
    let request = AdmissionRequest::decode(&review("admission.k8s.io/v1", object.clone())).unwrap();
    assert_eq!(request.object, object);
}

/// The decoder is ours, not `kube::core::admission::AdmissionReview` (BENCHMARKS.md, "kube-rs
/// where it does the job"): kube's request type requires `resource`, `userInfo` and an
/// `operation` the webhook never reads, and a review without them is answered by upstream's Go
/// webhook (missing fields are zero values there), so it is answered here too.
#[test]
fn a_review_with_only_the_fields_the_webhook_reads_is_answered() {
    let body = serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "apps",
            "object": pod(),
        },
    }))
    .unwrap();
    let request = AdmissionRequest::decode(&body).unwrap();
    assert_eq!(request.object, pod());
    assert_eq!(request.operation, "");
    let ops = mutate(&request.object, &sa(), &config()).unwrap();
    let response = decode_response(&request.respond(Ok(ops)));
    assert_eq!(response["response"]["allowed"], true);
    // kube's own request type refuses this review: the day it does not, reconsider using it.
    let kube =
        serde_json::from_slice::<kube::core::admission::AdmissionReview<kube::core::DynamicObject>>(&body);
    assert!(
        kube.as_ref()
            .is_err_and(|e| e.to_string().contains("missing field")),
        "{kube:?}"
    );
}

/// The answer is ours too: the API server takes the patch as base64 (a Go `[]byte`), as upstream
/// sends it, while kube's `AdmissionResponse` serialises it as an array of numbers
/// (kube-rs/kube#1781), which is several times larger.
#[test]
fn the_patch_goes_out_as_base64_unlike_kube_rs_response_type() {
    let request = AdmissionRequest::decode(&review("admission.k8s.io/v1", pod())).unwrap();
    let ops = mutate(&request.object, &sa(), &config()).unwrap();
    let ours = decode_response(&request.respond(Ok(ops.clone())));
    assert!(ours["response"]["patch"].is_string(), "{ours}");

    let kube_review: kube::core::admission::AdmissionReview<kube::core::DynamicObject> =
        serde_json::from_slice(&review("admission.k8s.io/v1", pod())).unwrap();
    let kube_request: kube::core::admission::AdmissionRequest<_> = kube_review.try_into().unwrap();
    let kube_answer = kube::core::admission::AdmissionResponse::from(&kube_request)
        .with_patch(json_patch::Patch(ops))
        .unwrap()
        .into_review();
    let kube_answer = serde_json::to_value(&kube_answer).unwrap();
    assert!(
        kube_answer["response"]["patch"].is_array(),
        "kube-rs now encodes the patch as {}: reconsider its response type",
        kube_answer["response"]["patch"]
    );
}

#[test]
fn debug_output_leaves_the_pod_out() {
    let mut object = pod();
    object["spec"]["containers"][0]["env"] =
        json!([{"name": "IDENTITY_HEADER", "value": "top-secret-value"}]);
    let request = AdmissionRequest::decode(&review("admission.k8s.io/v1", object)).unwrap();
    let debug = format!("{request:?}");
    assert!(!debug.contains("top-secret-value"), "{debug}");
    assert!(debug.contains("705ab4f5"), "{debug}");
}

#[test]
fn bodies_that_are_not_pod_reviews_are_clear_errors() {
    let valid: Value = serde_json::from_slice(&review("admission.k8s.io/v1", pod())).unwrap();
    let with = |pointer: &str, value: Value| {
        let mut body = valid.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        serde_json::to_vec(&body).unwrap()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "not valid JSON"),
        (b"".to_vec(), "not valid JSON"),
        (b"[1,2]".to_vec(), "not an AdmissionReview"),
        (with("/request/uid", json!(7)), "not an AdmissionReview"),
        (
            with("/apiVersion", json!("admission.k8s.io/v2")),
            "unsupported AdmissionReview apiVersion \"admission.k8s.io/v2\"",
        ),
        (
            with("/kind", json!("Pod")),
            "kind \"Pod\", expected AdmissionReview",
        ),
        (with("/request", Value::Null), "has no request"),
        (with("/request/uid", json!("")), "has no uid"),
        (with("/request/object", Value::Null), "has no object"),
        (
            with(
                "/request/kind",
                json!({"group": "apps", "version": "v1", "kind": "Deployment"}),
            ),
            "apps/v1 Deployment, not a core/v1 Pod",
        ),
        (with("/request/object", json!("pod")), "not a JSON object"),
        (with("/request/object/kind", json!("Secret")), "kind Secret"),
    ];
    for (body, message) in cases {
        let error = AdmissionRequest::decode(&body).unwrap_err();
        assert!(
            error.to_string().contains(message),
            "{}: {error}",
            String::from_utf8_lossy(&body)
        );
    }
    assert!(matches!(
        AdmissionRequest::decode(b"{").unwrap_err(),
        AdmissionError::MalformedJson(_)
    ));
}

#[test]
fn invalid_reviews_echo_what_they_can() {
    let mut body: Value = serde_json::from_slice(&review("admission.k8s.io/v1beta1", pod())).unwrap();
    body["request"]["object"] = Value::Null;
    let body = serde_json::to_vec(&body).unwrap();
    let error = AdmissionRequest::decode(&body).unwrap_err();
    let response = decode_response(&invalid_review(&body, &error).expect("a review"));
    assert_eq!(response["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(
        response["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(response["response"]["allowed"], false);
    assert_eq!(response["response"]["status"]["code"], 400);
    assert!(
        response["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no object")
    );

    // Nothing an API server sent: no review to answer in (the server answers HTTP 400).
    let unanswerable: [&[u8]; 6] = [
        b"\xff\xfe",
        br#"{"apiVersion":"admission.k8s.io/v2","request":{"uid":"u"}}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","request":{"uid":""}}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","request":"u"}"#,
        br#"{"apiVersion":"admission.k8s.io/v1"}"#,
        br#"{"request":{"uid":"u"}}"#,
    ];
    for body in unanswerable {
        let error = AdmissionRequest::decode(body).unwrap_err();
        assert_eq!(
            invalid_review(body, &error),
            None,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let long_uid = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","request":{{"uid":"{}"}}}}"#,
        "u".repeat(129)
    );
    let error = AdmissionRequest::decode(long_uid.as_bytes()).unwrap_err();
    assert_eq!(
        invalid_review(long_uid.as_bytes(), &error),
        None,
        "a uid no API server sends"
    );
}
