//! No test sends traffic to the real instance metadata service (169.254.169.254): every started
//! proxy has its forwarding target (`--imds-endpoint` / `AZWI_PROXY_IMDS_ENDPOINT`) on loopback,
//! and the address appears in the test sources only as text (comments, expected iptables rules).

use std::path::{Path, PathBuf};

const IMDS: &str = "169.254.169.254";

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(
                name.as_ref(),
                "target" | "node_modules" | ".venv" | "__pycache__" | "results"
            ) {
                files(&path, out);
            }
        } else if [".rs", ".sh", ".py", ".js", ".mjs"]
            .iter()
            .any(|ext| name.ends_with(ext))
            || !name.contains('.')
        {
            out.push(path);
        }
    }
}

/// The test, script and benchmark sources of the repository.
fn sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    for dir in ["tests", "scripts", "bench", "examples", "benches"] {
        files(&root.join(dir), &mut paths);
    }
    assert!(paths.len() > 20, "found only {} files", paths.len());
    paths
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|text| (p, text)))
        .collect()
}

/// Whether a line names the address only as text: a comment, or an iptables destination in an
/// expected rule.
fn only_text(line: &str) -> bool {
    let code = line.trim_start();
    code.starts_with("//") || code.starts_with('#') || line.contains(&format!("-d {IMDS}/32"))
}

#[test]
fn the_real_imds_address_is_never_a_destination_in_tests_or_scripts() {
    let mut offenders = Vec::new();
    for (path, text) in sources() {
        if path.ends_with("imds_destination.rs") {
            continue;
        }
        for (number, line) in text.lines().enumerate() {
            if line.contains(IMDS) && !only_text(line) {
                offenders.push(format!("{}:{}: {line}", path.display(), number + 1));
            }
            if path.starts_with(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"))
                && line.contains("DEFAULT_IMDS_ENDPOINT")
            {
                offenders.push(format!("{}:{}: {line}", path.display(), number + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the real IMDS address used as a destination:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn every_started_proxy_forwards_to_loopback() {
    let mut checked = 0;
    let mut offenders = Vec::new();
    for (path, text) in sources() {
        // A proxy process: `azure-wi proxy` in a script, or a command given the `proxy` argument.
        let starts_proxy = text.contains("azure-wi\" proxy")
            || text.contains("azure-wi proxy ")
            || text
                .lines()
                .any(|l| l.trim() == "\"proxy\"," || l.contains(".arg(\"proxy\")"));
        if !starts_proxy || path.ends_with("imds_destination.rs") {
            continue;
        }
        checked += 1;
        let loopback = text.lines().any(|l| {
            (l.contains("AZWI_PROXY_IMDS_ENDPOINT") || l.contains("--imds-endpoint"))
                && (l.contains("http://127.") || l.contains("http://[::1]"))
        });
        if !loopback {
            offenders.push(path.display().to_string());
        }
    }
    assert!(checked >= 2, "found only {checked} places that start the proxy");
    assert!(
        offenders.is_empty(),
        "these start `azure-wi proxy` without AZWI_PROXY_IMDS_ENDPOINT (or --imds-endpoint) on \
         loopback:\n{}",
        offenders.join("\n")
    );
}
