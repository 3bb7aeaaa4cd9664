//! The server's memory, read from `/proc/<pid>/status`.

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmRSS:`, `VmHWM:`); `None` when the process or the
/// field is gone.
pub fn kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let rss = super::kib(std::process::id(), "VmRSS:").expect("VmRSS of this process");
        assert!(rss > 0);
        assert_eq!(super::kib(std::process::id(), "NoSuchField:"), None);
    }
}
