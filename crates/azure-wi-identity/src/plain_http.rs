//! The one rule for every endpoint URL the library is given: where plain http may go, and no
//! user info.
//!
//! Plain `http` is allowed only to a host on this machine: any loopback address (the whole of
//! `127.0.0.0/8`, `::1`) or the name `localhost`. Managed identity endpoints may also be
//! link-local (`169.254.0.0/16`, `fe80::/10`): IMDS is at the fixed `169.254.169.254` and App
//! Service on Linux puts its identity endpoint on a `169.254.x.x` address; link-local traffic is
//! never routed off the machine's link. Everything else must be `https`. The same rule holds for
//! `AZURE_AUTHORITY_HOST` and the authority option, `SYSTEM_OIDCREQUESTURI` (which carries the
//! job's bearer token), `IDENTITY_ENDPOINT`, `MSI_ENDPOINT` and
//! `AZURE_POD_IDENTITY_AUTHORITY_HOST`.
//!
//! A URL with user info (`http://user:password@host`) is refused everywhere, and errors quote
//! such values with the user info replaced by `***` ([`redact`]), even when they do not parse.

use std::net::{IpAddr, Ipv4Addr};

use url::{Host, Url};

/// Which hosts may be reached over plain http.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlainHttp {
    /// Loopback only: Microsoft Entra authority hosts, the Azure Pipelines OIDC endpoint.
    LoopbackOnly,
    /// Loopback or link-local: the managed identity endpoints of the platforms.
    LoopbackOrLinkLocal,
}

impl PlainHttp {
    /// The hosts plain http may go to, in words, for error messages.
    pub(crate) fn allowed(self) -> &'static str {
        match self {
            Self::LoopbackOnly => "plain http only for a loopback address (127.0.0.0/8, [::1]) or localhost",
            Self::LoopbackOrLinkLocal => {
                "plain http only for a loopback address (127.0.0.0/8, [::1]), localhost or a link-local \
                 address (169.254.0.0/16, [fe80::/10])"
            }
        }
    }
}

/// Why a URL breaks the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlainHttpError {
    /// A scheme other than http and https.
    #[error("only https is allowed ({})", .0.allowed())]
    Scheme(PlainHttp),
    /// Plain http to a host that is not allowed.
    #[error("plain http to this host would send credentials unencrypted: use https ({})", .0.allowed())]
    NotLocal(PlainHttp),
    /// The URL has no host.
    #[error("it has no host")]
    NoHost,
    /// The URL carries a user name or password.
    #[error("it must not carry a user name or password (user info)")]
    UserInfo,
}

/// Checks `url` against the rule.
pub(crate) fn check(url: &Url, allow: PlainHttp) -> Result<(), PlainHttpError> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(PlainHttpError::UserInfo);
    }
    let host = url.host().ok_or(PlainHttpError::NoHost)?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&host) => Ok(()),
        "http" if allow == PlainHttp::LoopbackOrLinkLocal && is_link_local(&host) => Ok(()),
        "http" => Err(PlainHttpError::NotLocal(allow)),
        _ => Err(PlainHttpError::Scheme(allow)),
    }
}

/// `localhost`, `127.0.0.0/8`, `::1` (also written as an IPv4-mapped address).
pub(crate) fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

fn is_link_local(host: &Host<&str>) -> bool {
    let ip = match host {
        Host::Domain(_) => return false,
        Host::Ipv4(ip) => IpAddr::V4(*ip),
        Host::Ipv6(ip) => IpAddr::V6(*ip),
    };
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_unicast_link_local() || v6.to_ipv4_mapped().is_some_and(|v4: Ipv4Addr| v4.is_link_local())
        }
    }
}

/// `value` for an error message or a log line: any user info between `scheme://` and the host is
/// replaced by `***`, whether or not the value parses as a URL.
pub(crate) fn redact(value: &str) -> String {
    let scheme_end = value.find("://").map_or(0, |i| i + 3);
    let rest = &value[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &value[..scheme_end], &rest[at..]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(url: &str, allow: PlainHttp) -> Result<(), PlainHttpError> {
        check(&Url::parse(url).unwrap(), allow)
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        use PlainHttp::*;
        for ok in [
            "http://127.0.0.1:8080/x",
            "http://127.0.0.2/x",
            "http://127.255.255.254",
            "http://localhost:1",
            "http://LOCALHOST",
            "http://[::1]:1",
            "http://[::ffff:127.0.0.9]",
            "https://login.microsoftonline.com",
            "https://10.0.0.4:2377/metadata",
        ] {
            assert_eq!(verdict(ok, LoopbackOnly), Ok(()), "{ok}");
            assert_eq!(verdict(ok, LoopbackOrLinkLocal), Ok(()), "{ok}");
        }
        for link_local in [
            "http://169.254.169.254/metadata",
            "http://169.254.129.2:8081/msi/token",
            "http://[fe80::1]:80",
        ] {
            assert_eq!(verdict(link_local, LoopbackOrLinkLocal), Ok(()), "{link_local}");
            assert_eq!(
                verdict(link_local, LoopbackOnly),
                Err(PlainHttpError::NotLocal(LoopbackOnly)),
                "{link_local}"
            );
        }
        for bad in [
            "http://128.0.0.1",
            "http://10.0.0.4",
            "http://localhost.evil.com",
            "http://127.0.0.1.nip.io",
            "http://evil.example",
            "http://[::2]",
        ] {
            assert_eq!(
                verdict(bad, LoopbackOrLinkLocal),
                Err(PlainHttpError::NotLocal(LoopbackOrLinkLocal)),
                "{bad}"
            );
        }
        assert_eq!(
            verdict("ftp://127.0.0.1", LoopbackOnly),
            Err(PlainHttpError::Scheme(LoopbackOnly))
        );
        for with_user_info in ["http://user:pw@127.0.0.1", "https://user@x", "https://:pw@x"] {
            assert_eq!(
                verdict(with_user_info, LoopbackOnly),
                Err(PlainHttpError::UserInfo),
                "{with_user_info}"
            );
        }
    }

    #[test]
    fn redact_hides_user_info_even_unparsed() {
        assert_eq!(
            redact("http://user:pw@127.0.0.1:1/x?a=b@c"),
            "http://***@127.0.0.1:1/x?a=b@c"
        );
        assert_eq!(redact("http://u:p@w@[::1 bad/"), "http://***@[::1 bad/");
        assert_eq!(redact("http://host/p@th"), "http://host/p@th");
        assert_eq!(redact("not a url"), "not a url");
        assert_eq!(redact("user:pw@host/x"), "***@host/x");
    }
}
