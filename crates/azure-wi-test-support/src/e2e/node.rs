//! A real node for the in-cluster tests: `scripts/testbed/node` runs containerd, runc, the CNI
//! bridge, the kubelet and kube-proxy in a network namespace of their own, and the controllers a
//! node needs (kube-controller-manager, kube-scheduler), around the API server of a
//! [`TestBed::start_for_node`]; `scripts/testbed/images` builds the images it runs (ours from the
//! Dockerfile, and the pause image) without a container daemon.
//!
//! The script lives as long as its stdin: dropping [`Node`] closes it and waits until every
//! process, mount, cgroup and the namespace are gone (the script's own clean-up; when the test
//! process dies instead, the pipe closes just the same).

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Node as KubeNode;
use kube::Api;

use super::testbed::TestBed;

/// The images `scripts/testbed/images` built: target (`pause`, `webhook`, `proxy`, `proxy-init`) to
/// (reference, OCI layout tar).
pub struct Images(pub BTreeMap<String, (String, PathBuf)>);

impl Images {
    /// Builds (or finds in the cache) the test bed's images; panics with the script's output.
    pub fn build() -> Images {
        let mut images = BTreeMap::new();
        insert_printed(
            &mut images,
            &run_script(images_command(), "scripts/testbed/images"),
        );
        for t in ["pause", "webhook", "proxy", "proxy-init"] {
            assert!(
                images.contains_key(t),
                "scripts/testbed/images printed no {t} image"
            );
        }
        Images(images)
    }

    /// Adds the variants `<target>-ca` of `targets` whose CA bundle also trusts `ca_pem` (written
    /// to `dir`): the proxy sidecar trusts the Entra stand-in so, as it would trust a private PKI.
    pub fn add_trusting(&mut self, ca_pem: &str, dir: &Path, targets: &[&str]) {
        let ca = dir.join("extra-ca.pem");
        std::fs::write(&ca, ca_pem).expect("write extra-ca.pem");
        let mut command = images_command();
        command.arg("--extra-ca").arg(&ca).args(targets);
        insert_printed(
            &mut self.0,
            &run_script(command, "scripts/testbed/images --extra-ca"),
        );
        for t in targets {
            assert!(self.0.contains_key(&format!("{t}-ca")), "no {t}-ca image built");
        }
    }

    /// Adds upstream's images v1.6.0 (`upstream-webhook`, `upstream-proxy`, `upstream-proxy-init`),
    /// built by `scripts/testbed/upstream-images` from upstream's Go module and Dockerfiles; returns
    /// the directory of upstream's Helm chart (`workload-identity-webhook`, from the same module).
    pub fn add_upstream(&mut self) -> PathBuf {
        let stdout = run_script(
            script_command("scripts/testbed/upstream-images"),
            "scripts/testbed/upstream-images",
        );
        let mut chart = None;
        for line in stdout.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["upstream-chart", dir] => chart = Some(PathBuf::from(dir)),
                [t, r, p] => {
                    self.0.insert(t.to_string(), (r.to_string(), PathBuf::from(p)));
                }
                _ => {}
            }
        }
        for t in ["upstream-webhook", "upstream-proxy", "upstream-proxy-init"] {
            assert!(
                self.0.contains_key(t),
                "scripts/testbed/upstream-images printed no {t} image"
            );
        }
        chart.expect("scripts/testbed/upstream-images printed no chart directory")
    }

    /// The reference of `target`'s image.
    pub fn reference(&self, target: &str) -> &str {
        &self.0[target].0
    }

    /// `reference` split into repository and tag.
    pub fn repository_and_tag(&self, target: &str) -> (&str, &str) {
        self.reference(target)
            .rsplit_once(':')
            .expect("reference with a tag")
    }
}

/// A running node (see the module documentation).
pub struct Node {
    /// The directory with the node's state and logs (`<component>.log`).
    pub dir: PathBuf,
    /// The host side of the veth pair: the API server and the Entra stand-in bind it.
    pub host_ip: Ipv4Addr,
    /// The node's address.
    pub node_ip: Ipv4Addr,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Node {
    /// Creates the node's network namespace; the node joins a control plane with [`Node::join`].
    pub fn start_network() -> Node {
        let dir = tempfile::Builder::new()
            .prefix("azwi-node-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let log = std::fs::File::create(dir.join("node.log")).expect("node.log");
        let mut child = Command::new(repo().join("scripts/testbed/node"))
            .arg("run")
            .arg(&dir)
            .current_dir(repo())
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start scripts/testbed/node");
        let stdin = child.stdin.take();
        let env = wait_for_file(&mut child, &dir, "net.env", Duration::from_secs(1800));
        let get = |key: &str| -> Ipv4Addr {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} missing from net.env"))
                .parse()
                .expect("IPv4 address")
        };
        Node {
            host_ip: get("HOST_IP"),
            node_ip: get("NODE_IP"),
            dir,
            child,
            stdin,
        }
    }

    /// Starts the node's components against `bed`, with `images` imported into containerd, and
    /// waits until the Node object is Ready.
    pub async fn join(&mut self, bed: &TestBed, images: &Images) {
        let tars: Vec<String> = images
            .0
            .values()
            .map(|(_, tar)| tar.display().to_string())
            .collect();
        let env = format!(
            "KUBECONFIG={}\nCA_FILE={}\nSA_KEY={}\nPAUSE_IMAGE={}\nIMAGES=\"{}\"\n",
            bed.kubeconfig.display(),
            bed.ca_file.display(),
            bed.dir.join("sa.key").display(),
            images.reference("pause"),
            tars.join(" ")
        );
        let tmp = self.dir.join("cluster.env.tmp");
        std::fs::write(&tmp, env).expect("write cluster.env");
        std::fs::rename(&tmp, self.dir.join("cluster.env")).expect("rename cluster.env");
        wait_for_file(&mut self.child, &self.dir, "started", Duration::from_secs(300));
        let nodes: Api<KubeNode> = Api::all(bed.client().await);
        let started = Instant::now();
        loop {
            if let Ok(node) = nodes.get("azwi-node").await {
                let ready = node
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if ready {
                    return;
                }
            }
            self.assert_running();
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "node azwi-node not Ready after 180 s; kubelet log:\n{}",
                tail(&self.dir.join("kubelet.log"), 40)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Panics with the script's log when it has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait for the node script") {
            panic!(
                "scripts/testbed/node exited ({status}):\n{}",
                tail(&self.dir.join("node.log"), 40)
            );
        }
    }

    /// The last lines of a component's log (`kubelet`, `containerd`, `kube-proxy`, ...).
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        tail(&self.dir.join(format!("{component}.log")), lines)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        // Stdin closed: the script stops everything and removes its namespace and mounts.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The same clean-up again (idempotent): whatever the script could not finish.
        let _ = Command::new(repo().join("scripts/testbed/node"))
            .arg("down")
            .arg(&self.dir)
            .status();
        // The logs stay for a failed test (its message names the directory's files).
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn wait_for_file(child: &mut Child, dir: &Path, name: &str, deadline: Duration) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
            return text;
        }
        if let Some(status) = child.try_wait().expect("wait for the node script") {
            panic!(
                "scripts/testbed/node exited ({status}) before writing {name}:\n{}",
                tail(&dir.join("node.log"), 40)
            );
        }
        assert!(
            started.elapsed() < deadline,
            "scripts/testbed/node wrote no {name} in {deadline:?}:\n{}",
            tail(&dir.join("node.log"), 40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `scripts/testbed/images` as a command, without the variables `cargo test` gives its tests
/// (`CARGO_PKG_*`, `CARGO_BIN_EXE_*`, `LD_LIBRARY_PATH`, ...): with them the release build it runs
/// would not match the one `scripts/testbed/node-e2e` ran before, and cargo would rebuild it.
/// Runs `command` (the script `what`) with its stderr shown; panics unless it succeeds; its stdout.
fn run_script(mut command: Command, what: &str) -> String {
    let out = command
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(out.status.success(), "{what} failed (see above)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Adds the images `scripts/testbed/images` printed (`target reference tar`, a line each).
fn insert_printed(images: &mut BTreeMap<String, (String, PathBuf)>, stdout: &str) {
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        if let (Some(t), Some(r), Some(p)) = (words.next(), words.next(), words.next()) {
            images.insert(t.to_string(), (r.to_string(), PathBuf::from(p)));
        }
    }
}

fn images_command() -> Command {
    script_command("scripts/testbed/images")
}

/// A script of the repository (`path` relative to it) without cargo test's variables (see
/// [`images_command`]).
fn script_command(path: &str) -> Command {
    let mut command = Command::new(repo().join(path));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let cargo_set = key.starts_with("CARGO") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR";
        if cargo_set
            || key == "LD_LIBRARY_PATH"
            || key.starts_with("RUSTUP_TOOLCHAIN")
            || key == "RUST_RECURSION_COUNT"
        {
            command.env_remove(&key);
        }
    }
    command.current_dir(repo());
    command
}

fn repo() -> PathBuf {
    super::repo()
}
