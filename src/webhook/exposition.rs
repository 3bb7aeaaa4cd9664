//! The `/metrics` formats: Prometheus text 0.0.4 or OpenMetrics 1.0.0, chosen from the scraper's
//! `Accept` header as the Go client does (`expfmt.NegotiateIncludingOpenMetrics`): the media
//! ranges in order of preference (`q`, highest first; ties keep their order), the first that is
//! OpenMetrics (version 1.0.0, 0.0.1 or none) or `text/plain` (version 0.0.4 or none) wins;
//! anything else, or no `Accept` at all, gets the Prometheus text format.

use prometheus_client::{encoding, registry::Registry};

/// A text exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format, version 0.0.4.
    PrometheusText,
    /// OpenMetrics text, version 1.0.0.
    OpenMetrics,
}

impl Format {
    /// The format asked for by an `Accept` header value.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::PrometheusText;
        };
        let mut ranges: Vec<(f32, Option<Self>)> = accept
            .split(',')
            .map(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default().to_ascii_lowercase();
                let (mut q, mut version) = (1.0_f32, None);
                for parameter in parts {
                    let Some((key, value)) = parameter.split_once('=') else {
                        continue;
                    };
                    let value = value.trim().trim_matches('"');
                    match key.trim().to_ascii_lowercase().as_str() {
                        "q" => q = value.parse().unwrap_or(0.0),
                        "version" => version = Some(value.to_owned()),
                        _ => {}
                    }
                }
                let format = match (media.as_str(), version.as_deref()) {
                    ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => {
                        Some(Self::OpenMetrics)
                    }
                    ("text/plain", None | Some("0.0.4")) => Some(Self::PrometheusText),
                    _ => None,
                };
                (q, format)
            })
            .collect();
        // Stable: equal preferences keep the order the scraper wrote them in.
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranges
            .into_iter()
            .filter(|(q, _)| *q > 0.0)
            .find_map(|(_, format)| format)
            .unwrap_or(Self::PrometheusText)
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::PrometheusText => encoding::prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Renders every metric of `registry`.
    pub fn encode(self, registry: &Registry) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = match self {
            Self::PrometheusText => encoding::prometheus_text::encode(&mut out, registry),
            Self::OpenMetrics => encoding::text::encode(&mut out, registry),
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_go_client() {
        use Format::*;
        // What Prometheus sends by default.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, expected) in [
            (None, PrometheusText),
            (Some(prometheus), OpenMetrics),
            (Some("application/openmetrics-text"), OpenMetrics),
            (Some("application/openmetrics-text; version=0.0.1"), OpenMetrics),
            (
                Some("application/openmetrics-text; version=2.0.0"),
                PrometheusText,
            ),
            (Some("text/plain"), PrometheusText),
            (Some("*/*"), PrometheusText),
            (
                Some("text/plain;version=0.0.4;q=0.9, application/openmetrics-text;q=0.8"),
                PrometheusText,
            ),
            (
                Some("text/plain;version=0.0.4;q=0.5, application/openmetrics-text;q=0.8"),
                OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;q=0, text/plain"),
                PrometheusText,
            ),
            (
                Some("text/plain;version=1.0.0,application/openmetrics-text"),
                OpenMetrics,
            ),
        ] {
            assert_eq!(Format::negotiate(accept), expected, "{accept:?}");
        }
    }
}
