//! JSON logs on stderr, shared by every command.

use std::str::FromStr;

use tracing_subscriber::{EnvFilter, fmt};

/// A `--log-level` value. Upstream's names are accepted (`warning` as well as `warn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Per-request details.
    Debug,
    /// Start-up, shutdown and notable events (the default).
    Info,
    /// Refused and failed requests.
    Warn,
    /// Failures only.
    Error,
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "trace" => Ok(Self::Trace),
            "debug" => Ok(Self::Debug),
            "info" => Ok(Self::Info),
            "warn" | "warning" => Ok(Self::Warn),
            "error" => Ok(Self::Error),
            other => Err(format!(
                "unknown log level {other:?}: use trace, debug, info, warning or error"
            )),
        }
    }
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// Installs the JSON subscriber. `RUST_LOG`, when set, overrides `level`. At `debug`, only this
/// crate logs at debug: its dependencies (rustls, hyper, reqwest) stay at `info`.
pub fn init(level: LogLevel) {
    let directive = match level {
        LogLevel::Debug => "info,azure_wi=debug".to_owned(),
        other => other.directive().to_owned(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directive));
    let _ = fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_upstream_level_names() {
        assert_eq!("warning".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert_eq!("INFO".parse::<LogLevel>(), Ok(LogLevel::Info));
        assert!("loud".parse::<LogLevel>().unwrap_err().contains("warning"));
    }
}
