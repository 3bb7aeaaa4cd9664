//! `azure-wi webhook` as a process: static ServiceAccounts, certificates from files, readiness,
//! an admission over TLS, metrics, JSON logs, and a clean exit on SIGTERM.

mod support;

use std::{
    io::{BufRead, BufReader},
    sync::mpsc,
    time::Duration,
};

use azure_wi_test_support::{admission_review::pod_review, response_body};
use serde_json::Value;

fn review(service_account: &str) -> Value {
    pod_review("c0ffee00-0000-0000-0000-000000000001", "team-a", service_account)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_process_serves_admissions_and_stops_cleanly_on_sigterm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let files = support::OfflineWebhook::new();

    let mut child = files.command("info").spawn().unwrap();

    // Every stderr line is a JSON log record; collect them on a thread.
    let (lines_tx, lines_rx) = mpsc::channel::<Value>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let record: Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
            if lines_tx.send(record).is_err() {
                break;
            }
        }
    });
    let mut logs = Vec::new();
    let listening = loop {
        let record = lines_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the webhook logs its addresses");
        logs.push(record.clone());
        if record["message"] == "listening" {
            break record;
        }
    };
    let addr = |name: &str| support::OfflineWebhook::listening_addr(&listening, name);
    let (webhook, health, metrics) = (addr("webhook"), addr("health"), addr("metrics"));

    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    // Ready once the certificate files are loaded.
    support::OfflineWebhook::wait_ready(health).await;
    assert_eq!(
        plain
            .get(format!("http://{health}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let client = files.client(webhook);
    let url = support::OfflineWebhook::mutate_url(webhook);
    let answer = response_body::json(client.post(&url).json(&review("web"))).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(answer["response"]["patchType"], "JSONPatch");
    let denied = response_body::json(client.post(&url).json(&review("ghost"))).await;
    assert_eq!(denied["response"]["allowed"], false);
    assert!(
        denied["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains(r#"serviceaccounts "ghost" not found"#)
    );

    let exposition = response_body::text(plain.get(format!("http://{metrics}/metrics"))).await;
    assert!(
        exposition.contains(r#"azwi_mutation_request_count{namespace="team-a"} 2"#),
        "{exposition}"
    );
    assert!(
        exposition.contains(r#"azwi_admission_requests_total{outcome="mutated"} 1"#),
        "{exposition}"
    );

    support::terminate(&mut child);
    reader.join().unwrap();
    logs.extend(lines_rx.try_iter());

    // One structured line per admission, with uid, namespace, pod and ServiceAccount.
    let mutated = logs
        .iter()
        .find(|r| r["message"] == "pod mutated")
        .expect("an admission log line");
    assert_eq!(mutated["uid"], "c0ffee00-0000-0000-0000-000000000001");
    assert_eq!(mutated["namespace"], "team-a");
    assert_eq!(mutated["pod"], "web-0");
    assert_eq!(mutated["service_account"], "web");
    assert!(
        logs.iter().any(|r| r["message"] == "webhook stopped"),
        "no clean stop in {logs:?}"
    );
}
