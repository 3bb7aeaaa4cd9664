//! Sending a test's HTTP request and reading the whole answer.

/// Sends `request` and parses its body as JSON; panics when it cannot be sent or is not JSON.
pub async fn json(request: reqwest::RequestBuilder) -> serde_json::Value {
    request
        .send()
        .await
        .expect("the request is answered")
        .json()
        .await
        .expect("the answer is JSON")
}

/// Sends `request` and reads its body as text; panics when it cannot be sent or read.
pub async fn text(request: reqwest::RequestBuilder) -> String {
    request
        .send()
        .await
        .expect("the request is answered")
        .text()
        .await
        .expect("the answer is read")
}
