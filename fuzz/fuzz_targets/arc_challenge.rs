//! The Azure Arc agent's `WWW-Authenticate: Basic realm=<path>` challenge parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|header: &str| {
    azure_wi::fuzzing::arc_challenge(header);
});
