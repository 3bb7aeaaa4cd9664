//! The standard `process_*` metrics of every Prometheus client, read from `/proc` at each scrape.
//!
//! | metric | type | source |
//! | --- | --- | --- |
//! | `process_cpu_seconds_total` | counter | `/proc/self/stat` utime + stime, in clock ticks / 100 |
//! | `process_resident_memory_bytes` | gauge | `/proc/self/status` `VmRSS` |
//! | `process_virtual_memory_bytes` | gauge | `/proc/self/stat` vsize |
//! | `process_open_fds` | gauge | entries of `/proc/self/fd` |
//! | `process_max_fds` | gauge | `/proc/self/limits`, the soft `Max open files` |
//! | `process_start_time_seconds` | gauge | `/proc/stat` btime + `/proc/self/stat` starttime / 100 |
//!
//! Names, meanings and the tick rate (100 per second, the Linux `USER_HZ` of every architecture
//! Kubernetes runs on) are those of the Go client, so dashboards built on it read the same
//! values. `prometheus-client` has no process collector; the crates that have one serve another
//! metrics facade, so these six values are read here. A file that cannot be read (not Linux)
//! leaves its metrics out; a scrape never fails because of them.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

/// Clock ticks per second of the times in `/proc/self/stat` (`USER_HZ`).
const USER_HZ: f64 = 100.0;

/// The collector registered with the webhook's registry.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessCollector;

/// One reading of the process's figures; `None` where `/proc` did not tell.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User + system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory size, in bytes.
    pub virtual_memory_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Start time, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads this process's figures from `/proc`.
    pub fn read() -> Self {
        let stat = read_small("/proc/self/stat");
        let fields = stat.as_deref().map(stat_fields).unwrap_or_default();
        let field = |index: usize| fields.get(index).and_then(|f| f.parse::<u64>().ok());
        // Indexes count from field 3 (`state`), the first after the command name.
        let (utime, stime, starttime, vsize) = (field(11), field(12), field(19), field(20));
        let boot_time = read_small("/proc/stat").as_deref().and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        let resident = read_small("/proc/self/status").as_deref().and_then(|text| {
            let line = text.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
            let kib = line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
            Some(kib * 1024)
        });
        let max_fds = read_small("/proc/self/limits")
            .as_deref()
            .and_then(max_open_files);
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as u64);
        Self {
            cpu_seconds: utime.zip(stime).map(|(u, s)| (u + s) as f64 / USER_HZ),
            resident_memory_bytes: resident,
            virtual_memory_bytes: vsize,
            open_fds,
            max_fds,
            start_time_seconds: boot_time
                .zip(starttime)
                .map(|(boot, ticks)| boot as f64 + ticks as f64 / USER_HZ),
        }
    }
}

/// Reads a `/proc` file of a few KiB at most (bounded: `/proc` files are generated, not trusted
/// to be small).
fn read_small(path: &str) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The fields of `/proc/self/stat` after the command name (which may hold spaces and `)`).
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// The soft `Max open files` of `/proc/self/limits` (`unlimited` is left out).
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = ProcessStats::read();
        if let Some(seconds) = stats.cpu_seconds {
            let metric = ConstCounter::new(seconds);
            metric.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stats.resident_memory_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stats.virtual_memory_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                stats.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                stats.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                stats.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                ConstGauge::new(value).encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    MetricType::Gauge,
                )?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1234 \
                    987654 321 18446744073709551615";
        let fields = stat_fields(stat);
        assert_eq!(fields[0], "S");
        assert_eq!(fields[11], "250", "utime");
        assert_eq!(fields[12], "50", "stime");
        assert_eq!(fields[19], "1234", "starttime");
        assert_eq!(fields[20], "987654", "vsize");
    }

    #[test]
    fn max_open_files_is_the_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63304                63304                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(max_open_files("Max open files unlimited unlimited files"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_every_figure() {
        let stats = ProcessStats::read();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = stats.start_time_seconds.unwrap();
        assert!(
            started <= now + 1.0 && started > now - 24.0 * 3600.0,
            "{started} vs {now}"
        );
        assert!(stats.cpu_seconds.unwrap() >= 0.0);
        let rss = stats.resident_memory_bytes.unwrap();
        assert!(rss > 1 << 20, "{rss}");
        assert!(stats.virtual_memory_bytes.unwrap() >= rss);
        assert!(stats.open_fds.unwrap() >= 3);
        assert!(stats.max_fds.unwrap() >= stats.open_fds.unwrap());
    }
}
