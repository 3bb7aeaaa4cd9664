//! Logs on stderr, shared by every command: one JSON object per line, one shape everywhere.
//!
//! Every record is flat: `timestamp` (RFC 3339, UTC), `level`, `message`, then the event's own
//! fields as top-level keys, then `target`. No key appears twice: a field whose name is already
//! taken (`message`, `level`, `timestamp`, `target`, or a field given twice) is written as
//! `field_<name>` (then `field_<name>_2`, ...). Records from crates that log through the `log`
//! facade take the same shape.

use std::{fmt, str::FromStr};

use time::format_description::well_known::Rfc3339;
use tracing::{Event, Subscriber, field::Field};
use tracing_log::NormalizeEvent;
use tracing_subscriber::{
    EnvFilter,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

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
            // `all` is upstream's most verbose level; the webhook passes it on to the sidecar.
            "trace" | "all" => Ok(Self::Trace),
            "debug" => Ok(Self::Debug),
            "info" => Ok(Self::Info),
            "warn" | "warning" => Ok(Self::Warn),
            "error" => Ok(Self::Error),
            other => Err(format!(
                "unknown log level {other:?}: use all, trace, debug, info, warning or error"
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
    let _ = install(directive, true);
}

/// Installs the subscriber with `directive` as the filter (`RUST_LOG`, when set, wins): the flat
/// JSON records of this module, or tracing's human-readable text when `json` is false.
pub fn install(directive: impl AsRef<str>, json: bool) -> Result<(), String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directive.as_ref()));
    // A failed write (stderr closed: the log collector went away) is dropped silently. Reporting
    // it would print to that same stderr, which panics, and a panic in the task that logs the
    // SIGTERM would leave the server running forever.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let result = if json {
        builder.event_format(FlatJson).try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|error| format!("cannot initialise logging: {error}"))
}

/// The event formatter: one flat JSON object per line, no duplicate keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(&render(event, time::OffsetDateTime::now_utc()))?;
        writer.write_char('\n')
    }
}

/// The JSON object for `event` at `now`.
fn render(event: &Event<'_>, now: time::OffsetDateTime) -> String {
    let normalized = event.normalized_metadata();
    let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
    let mut fields = Fields::default();
    event.record(&mut fields);

    let mut record = Record::default();
    let timestamp = now.format(&Rfc3339).unwrap_or_default();
    record.push("timestamp", serde_json::Value::String(timestamp));
    record.push("level", metadata.level().as_str().into());
    // tracing's macros record the format string first; a field also named `message` comes later.
    let mut others = fields.0;
    if let Some(first) = others.iter().position(|(name, _)| *name == "message") {
        let (_, message) = others.remove(first);
        record.push("message", message);
    }
    for (name, value) in others {
        record.push(name, value);
    }
    record.push("target", metadata.target().into());
    record.finish()
}

/// Keys in order, each once.
#[derive(Default)]
struct Record {
    keys: Vec<String>,
    text: String,
}

impl Record {
    fn push(&mut self, name: &str, value: serde_json::Value) {
        let mut key = name.to_owned();
        if self.keys.contains(&key) {
            key = format!("field_{name}");
            let mut n = 2;
            while self.keys.contains(&key) {
                key = format!("field_{name}_{n}");
                n += 1;
            }
        }
        self.text.push(if self.keys.is_empty() { '{' } else { ',' });
        // Serialising a String or a Value cannot fail.
        self.text
            .push_str(&serde_json::to_string(&key).unwrap_or_default());
        self.text.push(':');
        self.text
            .push_str(&serde_json::to_string(&value).unwrap_or_default());
        self.keys.push(key);
    }

    fn finish(mut self) -> String {
        if self.keys.is_empty() {
            self.text.push('{');
        }
        self.text.push('}');
        self.text
    }
}

/// An event's fields in the order given.
#[derive(Default)]
struct Fields(Vec<(&'static str, serde_json::Value)>);

impl Fields {
    fn add(&mut self, field: &Field, value: serde_json::Value) {
        let name = field.name();
        // `log` records carry their origin as `log.*` fields; the normalised metadata has it.
        if name.starts_with("log.") {
            return;
        }
        self.0.push((name, value));
    }
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.add(field, format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.add(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.add(field, value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn accepts_upstream_level_names() {
        assert_eq!("warning".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert_eq!("all".parse::<LogLevel>(), Ok(LogLevel::Trace));
        assert_eq!("INFO".parse::<LogLevel>(), Ok(LogLevel::Info));
        assert!("loud".parse::<LogLevel>().unwrap_err().contains("warning"));
    }

    /// Captures what the formatter writes for the events logged in `f`.
    fn captured(f: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    /// Keys of a JSON object line, in order, as written (a duplicate would show twice).
    fn keys(line: &str) -> Vec<String> {
        struct Keys(Vec<String>);
        impl<'de> serde::Deserialize<'de> for Keys {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Keys;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                        let mut keys = Vec::new();
                        while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                            keys.push(k);
                        }
                        Ok(Keys(keys))
                    }
                }
                d.deserialize_map(V)
            }
        }
        serde_json::from_str::<Keys>(line).unwrap().0
    }

    #[test]
    fn records_are_flat_with_rfc3339_timestamps_and_no_duplicate_keys() {
        let lines = captured(|| {
            tracing::warn!(
                status = 415,
                message = "Content-Type must be application/json",
                "admission request rejected"
            );
            tracing::info!(port = 8000, level = "shadowed", ok = true, "starting");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(
            keys(&lines[0]),
            [
                "timestamp",
                "level",
                "message",
                "status",
                "field_message",
                "target"
            ]
        );
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["message"], "admission request rejected");
        assert_eq!(first["field_message"], "Content-Type must be application/json");
        assert_eq!(first["status"], 415);
        assert_eq!(first["level"], "WARN");
        let timestamp = first["timestamp"].as_str().unwrap();
        time::OffsetDateTime::parse(timestamp, &Rfc3339).unwrap_or_else(|e| panic!("{timestamp}: {e}"));
        assert!(timestamp.ends_with('Z'), "{timestamp}");

        assert_eq!(
            keys(&lines[1]),
            [
                "timestamp",
                "level",
                "message",
                "port",
                "field_level",
                "ok",
                "target"
            ]
        );
        let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["level"], "INFO");
        assert_eq!(second["field_level"], "shadowed");
        assert_eq!(second["ok"], true);
    }
}
