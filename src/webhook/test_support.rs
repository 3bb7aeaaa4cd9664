//! Test helpers: a local fake of the Kubernetes API server behind a real `kube::Client`.
#![allow(dead_code)]

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use axum::{body::Bytes, http};
use serde_json::Value;

/// One request as the fake API server received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: http::Method,
    pub path: String,
    pub body: Value,
}

/// The fake's behaviour: `Some((status, body))` answers, `None` never answers (an API server
/// that cannot be reached).
pub type Handler = dyn Fn(&Recorded) -> Option<(u16, Value)> + Send + Sync;

/// A `kube::Client` whose requests go to `handler`; every request is recorded.
pub fn fake_client(handler: Arc<Handler>) -> (kube::Client, Arc<Mutex<Vec<Recorded>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let recorded = log.clone();
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let (handler, log) = (handler.clone(), recorded.clone());
        async move {
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX)
                .await
                .unwrap_or_default();
            let entry = Recorded {
                method: parts.method,
                path: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            log.lock().unwrap().push(entry.clone());
            let answer = handler(&entry);
            let Some((status, body)) = answer else {
                std::future::pending::<()>().await;
                unreachable!()
            };
            let response = http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(Bytes::from(
                    serde_json::to_vec(&body).unwrap(),
                )))
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    (kube::Client::new(service, "default"), log)
}

/// The API server's NotFound status for `resource`/`name`.
pub fn not_found(resource: &str, name: &str) -> (u16, Value) {
    (
        404,
        serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{resource} \"{name}\" not found"), "reason": "NotFound", "code": 404
        }),
    )
}
