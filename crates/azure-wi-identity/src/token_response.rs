//! A lenient parser of token responses from Microsoft Entra and the managed identity endpoints.
//!
//! Endpoints disagree on types and formats (reference §1.3): `expires_in` is a JSON integer or a
//! numeric string; `expires_on` is an epoch integer, an epoch string, or a date string in one of
//! two styles (`06/19/2019 23:42:01 +00:00`, `1/16/2020 5:24:12 AM +00:00`). The relative
//! `expires_in` is preferred when present (immune to clock skew). `refresh_on` is
//! `request_time + refresh_in` when the server sends `refresh_in`, else half the lifetime when the
//! token lives two hours or more, else unset.
//!
//! Error messages name the field and never contain the token.

use serde::Deserialize;
use serde_json::Value;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::AccessToken;

/// Tokens living at least this long get a `refresh_on` at half their lifetime.
const HALF_LIFE_THRESHOLD_SECS: i64 = 7200;

/// Why a token response could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExpiryError {
    /// The body is not a JSON object.
    #[error("the response is not a JSON object ({0})")]
    NotJson(#[source] serde_json::Error),
    /// A required field is absent or empty.
    #[error("the response has no `{0}` field")]
    Missing(&'static str),
    /// Neither `expires_in` nor `expires_on` is present.
    #[error("the response has neither `expires_in` nor `expires_on`")]
    NoExpiry,
    /// The token had expired before the request was sent.
    #[error(
        "the token in the response is already expired: `{field}` is {value}, which is not after the \
         time the request was sent ({sent}); the endpoint's clock or its token cache is wrong"
    )]
    Expired {
        /// The field the expiry came from (`expires_in` or `expires_on`).
        field: &'static str,
        /// The field's value as received.
        value: String,
        /// When the request was sent (RFC 3339).
        sent: String,
    },
    /// A field has a value that cannot be understood.
    #[error("the response field `{field}` is invalid: {reason}")]
    Invalid {
        /// The field name.
        field: &'static str,
        /// What was wrong (never the token).
        reason: String,
    },
}

/// A parsed token response: the token and the identity fields some endpoints echo.
#[derive(Debug, Clone)]
#[allow(dead_code)] // the echoed identity fields are for sources that check them
pub(crate) struct TokenResponse {
    /// The token with its expiry.
    pub(crate) token: AccessToken,
    /// The echoed `resource` (managed identity endpoints). Informational: caches are keyed by
    /// what the caller asked for, never by this.
    pub(crate) resource: Option<String>,
    /// The echoed `client_id` (IMDS, Arc).
    pub(crate) client_id: Option<String>,
    /// The echoed `object_id` (IMDS).
    pub(crate) object_id: Option<String>,
    /// The echoed `msi_res_id` (IMDS).
    pub(crate) msi_res_id: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    access_token: Option<String>,
    expires_in: Option<Value>,
    expires_on: Option<Value>,
    refresh_in: Option<Value>,
    token_type: Option<String>,
    resource: Option<String>,
    client_id: Option<String>,
    object_id: Option<String>,
    msi_res_id: Option<String>,
}

/// Parses a token response received for a request sent at `request_time`.
pub(crate) fn parse_token_response(
    body: &[u8],
    request_time: OffsetDateTime,
) -> Result<AccessToken, ExpiryError> {
    parse_token_response_with_extras(body, request_time).map(|r| r.token)
}

/// Like [`parse_token_response`], also returning the echoed identity fields.
pub(crate) fn parse_token_response_with_extras(
    body: &[u8],
    request_time: OffsetDateTime,
) -> Result<TokenResponse, ExpiryError> {
    let raw: Raw = serde_json::from_slice(body).map_err(ExpiryError::NotJson)?;
    let access_token = raw
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or(ExpiryError::Missing("access_token"))?;
    let request_secs = request_time.unix_timestamp();

    let expires_in = raw
        .expires_in
        .as_ref()
        .filter(|v| !is_blank(v))
        .map(|v| seconds("expires_in", v))
        .transpose()?;
    let (expires_on, lifetime, field) = match expires_in {
        Some(secs) => (request_secs.saturating_add(secs), secs, "expires_in"),
        None => {
            let on = raw
                .expires_on
                .as_ref()
                .filter(|v| !is_blank(v))
                .ok_or(ExpiryError::NoExpiry)?;
            let on = epoch_or_date("expires_on", on)?;
            (on, on.saturating_sub(request_secs), "expires_on")
        }
    };
    if lifetime <= 0 {
        let value = match field {
            "expires_in" => raw.expires_in.as_ref(),
            _ => raw.expires_on.as_ref(),
        };
        return Err(ExpiryError::Expired {
            field,
            value: value.map(Value::to_string).unwrap_or_default(),
            sent: rfc3339(request_time),
        });
    }
    let expires_on = OffsetDateTime::from_unix_timestamp(expires_on).map_err(|e| ExpiryError::Invalid {
        field,
        reason: e.to_string(),
    })?;

    let refresh_in = match raw.refresh_in.as_ref().filter(|v| !is_blank(v)) {
        Some(v) => Some(seconds("refresh_in", v)?),
        None if lifetime >= HALF_LIFE_THRESHOLD_SECS => Some(lifetime / 2),
        None => None,
    };
    // A server's refresh_in beyond the lifetime would put refresh_on after expiry: clamp it. Any
    // number is accepted (a `refresh_in` past the year 9999 is simply "at expiry"): the checked
    // addition never panics.
    let refresh_on = refresh_in.map(|r| {
        request_time
            .checked_add(time::Duration::seconds(r))
            .map_or(expires_on, |at| at.min(expires_on))
    });

    let token = AccessToken::new(access_token, expires_on)
        .with_refresh_on(refresh_on)
        .with_token_type(
            raw.token_type
                .as_deref()
                .filter(|t| !t.is_empty())
                .unwrap_or("Bearer"),
        );
    Ok(TokenResponse {
        token,
        resource: raw.resource,
        client_id: raw.client_id,
        object_id: raw.object_id,
        msi_res_id: raw.msi_res_id,
    })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn is_blank(v: &Value) -> bool {
    v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty())
}

/// A non-negative number of seconds: a JSON integer (or an integral float) or a numeric string.
fn seconds(field: &'static str, v: &Value) -> Result<i64, ExpiryError> {
    let n = match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let n = n.ok_or_else(|| ExpiryError::Invalid {
        field,
        reason: format!("expected a number of seconds, got {v}"),
    })?;
    if n < 0 {
        return Err(ExpiryError::Invalid {
            field,
            reason: format!("negative value {n}"),
        });
    }
    Ok(n)
}

/// An epoch second (integer or numeric string) or a `+00:00` date string.
fn epoch_or_date(field: &'static str, v: &Value) -> Result<i64, ExpiryError> {
    if let Ok(n) = seconds(field, v) {
        return Ok(n);
    }
    let s = v.as_str().ok_or_else(|| ExpiryError::Invalid {
        field,
        reason: format!("expected epoch seconds or a date string, got {v}"),
    })?;
    parse_date(s)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|reason| ExpiryError::Invalid { field, reason })
}

/// Parses `MM/DD/YYYY HH:MM:SS +00:00` and `M/D/YYYY h:MM:SS AM +00:00` (UTC only).
///
/// With `AM`/`PM`, hours run 1-12 (12 AM is midnight, 12 PM noon); an hour of `00` is read as
/// midnight-based 24-hour time whatever the marker, as in the App Service documentation's own
/// example `09/14/2017 00:00:00 PM +00:00`.
fn parse_date(s: &str) -> Result<OffsetDateTime, String> {
    let bad = |what: &str| format!("{what} in date string {s:?}");
    let rest = s
        .trim()
        .strip_suffix("+00:00")
        .ok_or_else(|| bad("only the +00:00 offset is supported"))?;
    let mut parts = rest.split_whitespace();
    let (date, clock, marker) = (parts.next(), parts.next(), parts.next());
    if parts.next().is_some() {
        return Err(bad("unexpected text"));
    }
    let nums = |text: Option<&str>, sep: char| -> Option<Vec<u32>> {
        let v: Option<Vec<u32>> = text?.split(sep).map(|p| p.parse().ok()).collect();
        v.filter(|v| v.len() == 3)
    };
    let d = nums(date, '/').ok_or_else(|| bad("expected month/day/year"))?;
    let t = nums(clock, ':').ok_or_else(|| bad("expected hours:minutes:seconds"))?;
    let hour = match marker.map(str::to_ascii_uppercase).as_deref() {
        None => t[0],
        Some(m @ ("AM" | "PM")) => match t[0] {
            0 => 0,
            h @ 1..=12 if m == "AM" => h % 12,
            h @ 1..=12 => h % 12 + 12,
            _ => return Err(bad("hour out of range for AM/PM")),
        },
        Some(_) => return Err(bad("expected AM or PM")),
    };
    let month = u8::try_from(d[0])
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or_else(|| bad("invalid month"))?;
    let year = i32::try_from(d[2]).map_err(|_| bad("invalid year"))?;
    let small = |n: u32, what: &str| u8::try_from(n).map_err(|_| bad(what));
    let date = Date::from_calendar_date(year, month, small(d[1], "invalid date")?)
        .map_err(|_| bad("invalid date"))?;
    let time = Time::from_hms(
        small(hour, "invalid time")?,
        small(t[1], "invalid time")?,
        small(t[2], "invalid time")?,
    )
    .map_err(|_| bad("invalid time"))?;
    Ok(PrimitiveDateTime::new(date, time).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-26 12:00:00 UTC);

    fn parse(body: Value) -> Result<AccessToken, ExpiryError> {
        parse_token_response(body.to_string().as_bytes(), NOW)
    }

    #[test]
    fn every_expiry_shape() {
        let at = |secs: i64| NOW + time::Duration::seconds(secs);
        let epoch = at(3599).unix_timestamp();
        let cases: Vec<(&str, Value, OffsetDateTime, Option<OffsetDateTime>)> = vec![
            ("expires_in int", json!({"expires_in": 3599}), at(3599), None),
            ("expires_in string", json!({"expires_in": "3599"}), at(3599), None),
            (
                "expires_in long lives get half-life",
                json!({"expires_in": "86399"}),
                at(86399),
                Some(at(43199)),
            ),
            (
                "exactly two hours",
                json!({"expires_in": 7200}),
                at(7200),
                Some(at(3600)),
            ),
            (
                "just under two hours",
                json!({"expires_in": 7199}),
                at(7199),
                None,
            ),
            ("expires_on int", json!({"expires_on": epoch}), at(3599), None),
            (
                "expires_on string",
                json!({"expires_on": epoch.to_string()}),
                at(3599),
                None,
            ),
            (
                "linux date style",
                json!({"expires_on": "11/26/2026 13:42:01 +00:00"}),
                datetime!(2026-11-26 13:42:01 UTC),
                None,
            ),
            (
                "windows date style PM",
                json!({"expires_on": "11/26/2026 1:24:12 PM +00:00"}),
                datetime!(2026-11-26 13:24:12 UTC),
                None,
            ),
            (
                "windows date style, one-digit month and day",
                json!({"expires_on": "1/6/2027 5:24:12 AM +00:00"}),
                datetime!(2027-01-06 05:24:12 UTC),
                Some(at(3_518_652 / 2)),
            ),
            (
                "windows date style 12 PM is noon",
                json!({"expires_on": "11/27/2026 12:00:00 PM +00:00"}),
                datetime!(2026-11-27 12:00:00 UTC),
                Some(at(43200)),
            ),
            (
                "windows date style 12 AM is midnight",
                json!({"expires_on": "11/27/2026 12:30:00 AM +00:00"}),
                datetime!(2026-11-27 00:30:00 UTC),
                Some(at(22500)),
            ),
            (
                "expires_in preferred over expires_on",
                json!({"expires_in": 60, "expires_on": epoch}),
                at(60),
                None,
            ),
            (
                "refresh_in honoured",
                json!({"expires_in": 3599, "refresh_in": 1800}),
                at(3599),
                Some(at(1800)),
            ),
            (
                "refresh_in as string",
                json!({"expires_in": 86399, "refresh_in": "600"}),
                at(86399),
                Some(at(600)),
            ),
            (
                "blank expires_in falls back",
                json!({"expires_in": "", "expires_on": epoch}),
                at(3599),
                None,
            ),
        ];
        for (name, mut body, expires_on, refresh_on) in cases {
            body["access_token"] = json!("tok");
            let token = parse(body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(token.expires_on, expires_on, "{name}");
            assert_eq!(token.refresh_on, refresh_on, "{name}");
            assert_eq!(token.token_type, "Bearer", "{name}");
            assert_eq!(token.token.secret(), "tok", "{name}");
        }
    }

    #[test]
    fn docs_example_with_zero_hour_and_pm_is_read_as_midnight() {
        let body = json!({"access_token": "t", "expires_on": "09/14/2017 00:00:00 PM +00:00"});
        let t =
            parse_token_response(body.to_string().as_bytes(), datetime!(2017-09-13 23:00:00 UTC)).unwrap();
        assert_eq!(t.expires_on, datetime!(2017-09-14 00:00:00 UTC));
    }

    #[test]
    fn token_type_and_echoes() {
        let body = json!({"access_token": "t", "expires_in": "3599", "token_type": "pop",
            "resource": "https://management.azure.com/", "client_id": "cid", "object_id": "oid", "msi_res_id": "/sub/x"});
        let r = parse_token_response_with_extras(body.to_string().as_bytes(), NOW).unwrap();
        assert_eq!(r.token.token_type, "pop");
        assert_eq!(r.resource.as_deref(), Some("https://management.azure.com/"));
        assert_eq!(r.client_id.as_deref(), Some("cid"));
        assert_eq!(r.object_id.as_deref(), Some("oid"));
        assert_eq!(r.msi_res_id.as_deref(), Some("/sub/x"));
    }

    #[test]
    fn errors_name_the_field_and_never_the_token() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"expires_in": 3599}), "`access_token`"),
            (json!({"access_token": "", "expires_in": 3599}), "`access_token`"),
            (
                json!({"access_token": "SECRET"}),
                "neither `expires_in` nor `expires_on`",
            ),
            (
                json!({"access_token": "SECRET", "expires_in": "soon"}),
                "`expires_in`",
            ),
            (
                json!({"access_token": "SECRET", "expires_in": -5}),
                "`expires_in`",
            ),
            (
                json!({"access_token": "SECRET", "expires_on": "06/19/2019 23:42:01 +01:00"}),
                "+00:00",
            ),
            (
                json!({"access_token": "SECRET", "expires_on": "13/19/2019 23:42:01 +00:00"}),
                "month",
            ),
            (
                json!({"access_token": "SECRET", "expires_on": "02/30/2019 23:42:01 +00:00"}),
                "date",
            ),
            (
                json!({"access_token": "SECRET", "expires_on": "06/19/2019 25:42:01 +00:00"}),
                "time",
            ),
            (
                json!({"access_token": "SECRET", "expires_on": "06/19/2019 13:42:01 PM +00:00"}),
                "AM/PM",
            ),
            (
                json!({"access_token": "SECRET", "expires_on": "06/19/2019 1:42:01 XM +00:00"}),
                "AM or PM",
            ),
            (
                json!({"access_token": "SECRET", "expires_on": true}),
                "`expires_on`",
            ),
            (
                json!({"access_token": "SECRET", "expires_in": 10, "refresh_in": "x"}),
                "`refresh_in`",
            ),
        ];
        for (body, expected) in cases {
            let e = parse(body.clone()).unwrap_err().to_string();
            assert!(e.contains(expected), "{body}: {e}");
            assert!(!e.contains("SECRET"), "{body}: {e}");
        }
        let e = parse_token_response(b"<html>", NOW).unwrap_err();
        assert!(matches!(e, ExpiryError::NotJson(_)), "{e}");
    }

    /// Found while writing the `token_response` fuzz invariant: a `refresh_in` beyond the lifetime gave a `refresh_on`
    /// after `expires_on`.
    #[test]
    fn refresh_on_never_passes_expiry() {
        let token = parse(json!({"access_token": "t", "expires_in": 600, "refresh_in": 7200})).unwrap();
        assert_eq!(token.expires_on, NOW + time::Duration::seconds(600));
        assert_eq!(token.refresh_on, Some(token.expires_on));
        let token = parse(json!({"access_token": "t", "expires_in": 600, "refresh_in": 300})).unwrap();
        assert_eq!(token.refresh_on, Some(NOW + time::Duration::seconds(300)));
    }

    /// Issue 15 item 9: `refresh_in` of 3e11 s or more put `refresh_on` past the year 9999 and
    /// panicked in the addition ("resulting value is out of range").
    #[test]
    fn huge_refresh_in_of_any_shape_is_clamped_not_a_panic() {
        for refresh_in in [
            json!(300_000_000_000i64),
            json!(3e11),
            json!(1e300),
            json!("300000000000"),
            json!(i64::MAX),
            json!(i64::MAX.to_string()),
            json!(u64::MAX),
        ] {
            let token = parse(json!({"access_token": "t", "expires_in": 3599, "refresh_in": refresh_in}))
                .unwrap_or_else(|e| panic!("{refresh_in}: {e}"));
            assert_eq!(token.refresh_on, Some(token.expires_on), "{refresh_in}");
        }
    }

    /// Issue 15 item 11: a token that had expired before the request was sent is refused,
    /// naming the field.
    #[test]
    fn already_expired_tokens_are_refused_naming_the_field() {
        let past = (NOW - time::Duration::seconds(1)).unix_timestamp();
        let now = NOW.unix_timestamp();
        for (body, field) in [
            (json!({"expires_on": 0}), "`expires_on` is 0"),
            (json!({"expires_on": 1}), "`expires_on` is 1"),
            (json!({"expires_on": "1"}), "`expires_on` is \"1\""),
            (json!({"expires_on": past}), "`expires_on`"),
            (json!({"expires_on": now}), "`expires_on`"),
            (
                json!({"expires_on": "01/01/1970 00:00:42 +00:00"}),
                "`expires_on`",
            ),
            (json!({"expires_in": 0}), "`expires_in` is 0"),
            (json!({"expires_in": "0"}), "`expires_in` is \"0\""),
            (json!({"expires_in": 0.0}), "`expires_in` is 0.0"),
        ] {
            let mut body = body;
            body["access_token"] = json!("SECRET");
            let e = parse(body.clone()).unwrap_err();
            assert!(matches!(e, ExpiryError::Expired { .. }), "{body}: {e:?}");
            let m = e.to_string();
            assert!(m.contains("already expired") && m.contains(field), "{body}: {m}");
            assert!(!m.contains("SECRET"), "{m}");
        }
        // One second of life left is still a token.
        parse(json!({"access_token": "t", "expires_in": 1})).unwrap();
        parse(json!({"access_token": "t", "expires_on": now + 1})).unwrap();
    }

    /// A JSON number of every shape the endpoints use (integer, float, exponent, numeric string)
    /// with any value.
    fn any_number() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            (0u32..20, -5i32..400).prop_map(|(m, e)| json!(format!("{m}e{e}").parse::<f64>().ok())),
            any::<i64>().prop_map(|n| json!(n.to_string())),
            any::<u64>().prop_map(|n| json!(n.to_string())),
            any::<f64>().prop_map(|f| json!(f.to_string())),
            "[ 0-9eE+.-]{0,24}".prop_map(|s| json!(s)),
        ]
    }

    proptest::proptest! {
        /// No number in any of the three time fields, in any shape, panics; whatever is accepted
        /// is a live token whose refresh time is not after its expiry.
        #[test]
        fn no_number_panics(
            expires_in in proptest::option::of(any_number()),
            expires_on in proptest::option::of(any_number()),
            refresh_in in proptest::option::of(any_number()),
        ) {
            let mut body = json!({"access_token": "t"});
            for (name, value) in [("expires_in", expires_in), ("expires_on", expires_on), ("refresh_in", refresh_in)] {
                if let Some(v) = value {
                    body[name] = v;
                }
            }
            if let Ok(token) = parse(body) {
                proptest::prop_assert!(token.expires_on > NOW);
                if let Some(r) = token.refresh_on {
                    proptest::prop_assert!(r <= token.expires_on);
                }
            }
        }
    }
}
