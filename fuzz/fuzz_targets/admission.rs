//! AdmissionReview decoding + pod mutation + response encoding.
//! Input: the ServiceAccount's annotations (chosen among the webhook's names) and the review body.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = [
    "azure.workload.identity/client-id",
    "azure.workload.identity/tenant-id",
    "azure.workload.identity/service-account-token-expiration",
    "azure.workload.identity/inject-proxy-sidecar",
    "azure.workload.identity/proxy-sidecar-port",
    "azure.workload.identity/skip-containers",
    "azure.workload.identity/proxy-mode",
    "azure.workload.identity/use",
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    annotations: Vec<(u8, &'a str)>,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let annotations: Vec<(String, String)> = input
        .annotations
        .iter()
        .map(|(i, v)| (NAMES[usize::from(*i) % NAMES.len()].to_owned(), (*v).to_owned()))
        .collect();
    azure_wi::fuzzing::admission(input.body, &annotations);
});
