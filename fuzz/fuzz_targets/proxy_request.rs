//! The token proxy's request parsing: method, path + query, headers -> token request.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 5] = [
    "/metadata/identity/oauth2/token",
    "/msi/token",
    "/metadata/instance",
    "/",
    "",
];
const HEADERS: [&str; 6] = [
    "metadata",
    "x-identity-header",
    "x-forwarded-for",
    "host",
    "content-length",
    "x",
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    get: bool,
    path: u8,
    suffix: &'a str,
    query: &'a str,
    headers: Vec<(u8, &'a str)>,
}

fuzz_target!(|input: Input<'_>| {
    let method = if input.get { "GET" } else { "POST" };
    let uri = format!(
        "{}{}?{}",
        PATHS[usize::from(input.path) % PATHS.len()],
        input.suffix,
        input.query
    );
    let headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(i, v)| {
            (
                HEADERS[usize::from(*i) % HEADERS.len()].to_owned(),
                (*v).to_owned(),
            )
        })
        .collect();
    azure_wi::fuzzing::proxy_request(method, &uri, &headers);
});
