//! Interoperability of managed identity: Python azure-identity's `ManagedIdentityCredential` and
//! `azure-wi token --credential managed-identity`, given the same environment and the same local
//! endpoint, must send the same request: method, path, every query parameter in order, the
//! protocol headers and the body. Covers IMDS (through `AZURE_POD_IDENTITY_AUTHORITY_HOST`), App
//! Service, Azure ML, Cloud Shell and Service Fabric (over pinned TLS), system-assigned and each
//! user-assigned selector the platform takes.
//!
//! Python azure-identity is installed by `scripts/test.d/20-python-clients.sh`; this test runs
//! that script itself when the venv is missing, and fails when it cannot.

mod support;

use azure_wi_test_support::recording_server::{RecordedRequest, Reply, TestServer, self_signed_tls};
use serde_json::json;
use support::{
    assert_succeeded, python_with_azure_identity as python, run_azure_wi, run_python, stdout_json,
};

const SCOPE: &str = "https://vault.azure.net/.default";
const SECRET: &str = "interop-identity-s3cret";
const RESOURCE_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1";

/// Python side: `argv` = scope, selector kind (`none`, `client_id`, `object_id`, `resource_id`),
/// selector value.
const PYTHON_CLIENT: &str = r#"
import json, sys
from azure.identity import ManagedIdentityCredential
scope, kind, value = sys.argv[1], sys.argv[2], sys.argv[3]
kwargs = {}
if kind == "client_id":
    kwargs["client_id"] = value
elif kind != "none":
    kwargs["identity_config"] = {kind: value}
token = ManagedIdentityCredential(**kwargs).get_token(scope)
print(json.dumps({"access_token": token.token, "expires_on": token.expires_on}))
"#;

/// A token response every platform parser accepts (MSAL wants `expires_in` from IMDS and
/// `expires_on` from App Service, Azure ML and Service Fabric).
fn token_reply() -> Reply {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Reply::json(
        200,
        json!({
            "access_token": "interop-token", "expires_in": "3600", "expires_on": (now + 3600).to_string(),
            "resource": "https://vault.azure.net/", "token_type": "Bearer",
            "client_id": "00000000-0000-0000-0000-0000000000c1"
        })
        .to_string(),
    )
}

/// What both must agree on. `User-Agent`, request ids and SDK telemetry headers are left out.
type Sent = (
    String,
    String,
    Vec<(String, String)>,
    Vec<(String, Option<String>)>,
    Vec<u8>,
);

fn relevant(r: &RecordedRequest) -> Sent {
    let headers = [
        "metadata",
        "x-identity-header",
        "secret",
        "content-type",
        "authorization",
    ]
    .iter()
    .map(|h| (h.to_string(), r.header(h).map(str::to_owned)))
    .collect();
    (
        r.method.clone(),
        r.path().to_owned(),
        r.query().clone(),
        headers,
        r.body.clone(),
    )
}

struct Case {
    name: &'static str,
    /// The environment, given the endpoint's base URL.
    env: fn(&str) -> Vec<(&'static str, String)>,
    /// (token command flag, Python selector kind, value)
    selector: Option<(&'static str, &'static str, &'static str)>,
}

async fn run_case(
    python: &std::path::Path,
    server: &TestServer,
    base: &str,
    case: &Case,
    extra_env: &[(&'static str, String)],
) {
    let mut env = (case.env)(base);
    env.extend(extra_env.iter().cloned());
    let (kind, value) = case.selector.map_or(("none", ""), |(_, k, v)| (k, v));

    let args = ["-c", PYTHON_CLIENT, SCOPE, kind, value];
    let py = run_python(python, &args, &env, &format!("{}: python", case.name)).await;
    assert_eq!(py["access_token"], "interop-token", "{}", case.name);
    let python_sent = server.requests();

    let mut args = vec!["token", "--credential", "managed-identity"];
    if let Some((flag, _, value)) = case.selector {
        args.extend([flag, value]);
    }
    args.push(SCOPE);
    let ours = run_azure_wi(&args, &env).await;
    assert_succeeded(&ours, &format!("{}: azure-wi", case.name));
    assert_eq!(
        stdout_json(&ours)["access_token"],
        "interop-token",
        "{}",
        case.name
    );
    let all = server.requests();
    let we_sent = &all[python_sent.len()..];

    assert_eq!(python_sent.len(), 1, "{}: python sent {python_sent:?}", case.name);
    assert_eq!(we_sent.len(), 1, "{}: azure-wi sent {we_sent:?}", case.name);
    assert_eq!(
        relevant(&we_sent[0]),
        relevant(&python_sent[0]),
        "{}: azure-wi must send what azure-identity sends",
        case.name
    );
}

fn imds(base: &str) -> Vec<(&'static str, String)> {
    vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", base.to_owned())]
}
fn app_service(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("IDENTITY_ENDPOINT", format!("{base}/msi/token")),
        ("IDENTITY_HEADER", SECRET.to_owned()),
    ]
}
fn azure_ml(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MSI_ENDPOINT", format!("{base}/msi/auth")),
        ("MSI_SECRET", SECRET.to_owned()),
    ]
}
fn cloud_shell(base: &str) -> Vec<(&'static str, String)> {
    vec![("MSI_ENDPOINT", format!("{base}/oauth2/token"))]
}

#[tokio::test]
async fn python_and_azure_wi_send_the_same_managed_identity_requests() {
    let python = python();
    let cases = [
        Case {
            name: "imds system-assigned",
            env: imds,
            selector: None,
        },
        Case {
            name: "imds client id",
            env: imds,
            selector: Some(("--client-id", "client_id", "cid-1")),
        },
        Case {
            name: "imds object id",
            env: imds,
            selector: Some(("--object-id", "object_id", "oid-1")),
        },
        Case {
            name: "imds resource id",
            env: imds,
            selector: Some(("--resource-id", "resource_id", RESOURCE_ID)),
        },
        Case {
            name: "app service system-assigned",
            env: app_service,
            selector: None,
        },
        Case {
            name: "app service client id",
            env: app_service,
            selector: Some(("--client-id", "client_id", "cid-1")),
        },
        Case {
            name: "app service object id",
            env: app_service,
            selector: Some(("--object-id", "object_id", "oid-1")),
        },
        Case {
            name: "app service resource id",
            env: app_service,
            selector: Some(("--resource-id", "resource_id", RESOURCE_ID)),
        },
        Case {
            name: "azure ml system-assigned",
            env: azure_ml,
            selector: None,
        },
        Case {
            name: "azure ml client id",
            env: azure_ml,
            selector: Some(("--client-id", "client_id", "cid-1")),
        },
        Case {
            name: "azure ml object id",
            env: azure_ml,
            selector: Some(("--object-id", "object_id", "oid-1")),
        },
        Case {
            name: "azure ml resource id",
            env: azure_ml,
            selector: Some(("--resource-id", "resource_id", RESOURCE_ID)),
        },
        Case {
            name: "cloud shell",
            env: cloud_shell,
            selector: None,
        },
    ];
    for case in &cases {
        let server = TestServer::with_handler(|_| token_reply()).await;
        run_case(&python, &server, &server.url_for(""), case, &[]).await;
    }
}

#[tokio::test]
async fn python_and_azure_wi_send_the_same_service_fabric_request_over_pinned_tls() {
    let python = python();
    let (config, thumbprint) = self_signed_tls();
    let server = TestServer::with_handler_tls(config, |_| token_reply()).await;
    let case = Case {
        name: "service fabric",
        env: |base| {
            vec![
                (
                    "IDENTITY_ENDPOINT",
                    format!("{base}/metadata/identity/oauth2/token"),
                ),
                ("IDENTITY_HEADER", SECRET.to_owned()),
            ]
        },
        selector: None,
    };
    let base = server.url_for("");
    run_case(
        &python,
        &server,
        &base,
        &case,
        &[("IDENTITY_SERVER_THUMBPRINT", thumbprint)],
    )
    .await;
}
