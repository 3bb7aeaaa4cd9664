//! Child processes of the test bed (etcd, kube-apiserver, the webhook) that never outlive the test.
//!
//! Each child runs in its own process group, its output goes to a log file, and a watchdog (a tiny
//! `bash` in yet another process group) holds a pipe from the test process: when the test process
//! ends for any reason, including a panic or a shared server that is never dropped, the pipe closes
//! and the watchdog kills the child's process group and removes what it was told to clean up.

use std::{
    fs::File,
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

/// A running child process, killed (with its process group) on drop.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    /// Closing this pipe (on drop or when the test process exits) fires the watchdog.
    _watchdog: ChildStdin,
}

impl Process {
    /// Starts `command` in its own process group with stdout and stderr appended to `log`. When
    /// the test process ends, the watchdog kills the group and removes `cleanup` (if given).
    pub fn spawn(name: &str, mut command: Command, log: &Path, cleanup: Option<&Path>) -> Process {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log file");
        let err = out.try_clone().expect("clone log file");
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", command.get_program()));
        let watchdog = watchdog(child.id(), cleanup);
        Process {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            _watchdog: watchdog,
        }
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics with the tail of the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait for child") {
            panic!(
                "{} exited early ({status}); its log:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// The last lines of the process's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Polls `http://127.0.0.1:{health_port}/readyz` every `poll` until it answers 2xx; panics
    /// with the tail of the log when the process exits or `within` passes first.
    pub async fn wait_ready(&mut self, health_port: u16, within: Duration, poll: Duration) {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{health_port}/readyz");
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return;
            }
            self.assert_running();
            assert!(
                started.elapsed() < within,
                "{} not ready after {within:?}; its log:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(poll).await;
        }
    }

    /// Sends `signal` (e.g. `TERM`, `KILL`) to the process group and waits for the process to exit.
    pub fn stop(&mut self, signal: &str) {
        signal_group(self.pid(), signal);
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        signal_group(self.pid(), "KILL");
        let _ = self.child.wait();
    }
}

fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".to_string(), format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Starts the watchdog of process group `pgid` and returns the pipe that keeps it waiting.
/// The watchdog is never waited for: it must outlive the test process.
#[allow(clippy::zombie_processes)]
fn watchdog(pgid: u32, cleanup: Option<&Path>) -> ChildStdin {
    let script = r#"read -r _ ; kill -TERM -- "-$1" 2>/dev/null; sleep 2; kill -KILL -- "-$1" 2>/dev/null
        [ -z "$2" ] || rm -rf -- "$2""#;
    let cleanup = cleanup.map(|p| p.display().to_string()).unwrap_or_default();
    // bash, not sh: dash's `kill` cannot signal a process group.
    let mut child = Command::new("bash")
        .args(["-c", script, "azwi-e2e-watchdog", &pgid.to_string(), &cleanup])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start watchdog (sh)");
    child.stdin.take().expect("watchdog stdin")
}

/// A free TCP port on 127.0.0.1 (bound once, then released for the server that will use it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
