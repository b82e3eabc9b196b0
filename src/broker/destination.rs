//! Where a credential may go: a connection's `hosts` entries (`api.example.com`,
//! `*.example.com`, `api.example.com:8443`, `10.0.0.5`, `[::1]:8080`), the scheme and
//! the port. Every credentialed request — fetch, HTTP tools, LLM providers, OAuth token
//! calls — passes [`check`] before anything is sent, and [`validate_entry`] runs when a
//! connection is saved.
//!
//! A host is compared in one normal form everywhere ([`url_host`]): lowercase, punycode,
//! IPv6 without brackets.

use std::net::IpAddr;

use url::{Host, Url};

use super::host::{host_allowed, normalize};

/// One `hosts` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// A pattern as `permissions.fetch` has them (brackets of IPv6 removed).
    pub pattern: String,
    /// The one port allowed; `None`: the scheme's default port only.
    pub port: Option<u16>,
}

/// Why a credential may not go to a URL; the caller names the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("may not be sent to host {0}")]
    Host(String),
    #[error("may not be sent over {0} (only https, unless the connection sets allow_http)")]
    Scheme(String),
    #[error(
        "may not be sent to port {port} of {host} (list \"{host}:{port}\" in hosts to allow it)"
    )]
    Port { host: String, port: u16 },
}

/// The host of `url` in the one form the broker compares: lowercase ASCII (punycode)
/// domain as written, or an IP address without brackets.
pub fn url_host(url: &Url) -> Option<String> {
    match url.host()? {
        Host::Domain(d) => Some(d.to_ascii_lowercase()),
        Host::Ipv4(ip) => Some(ip.to_string()),
        Host::Ipv6(ip) => Some(ip.to_string()),
    }
}

/// Parses `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal.
pub fn parse_entry(raw: &str) -> Result<HostEntry, String> {
    let raw = raw.trim();
    let bad = || {
        format!(
            "{raw:?} is not a host: write api.example.com, *.example.com, \
             api.example.com:8443, 10.0.0.5 or [::1]:8080 (no scheme, path or user)"
        )
    };
    if raw.is_empty() || raw.contains(['/', '@', '?', '#', ' ']) {
        return Err(bad());
    }
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (inner, port)
    } else {
        match raw.matches(':').count() {
            0 => (raw, None),
            1 => raw
                .split_once(':')
                .map(|(h, p)| (h, Some(p)))
                .ok_or_else(bad)?,
            _ => (raw, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => return Err(format!("{raw:?}: the port must be 1 to 65535")),
        },
    };
    let pattern = normalize(host).ok_or_else(bad)?;
    if raw.starts_with('[') && pattern.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(bad());
    }
    Ok(HostEntry { pattern, port })
}

/// What a save checks of one entry: it parses, names a host, and a wildcard covers
/// subdomains of a registrable domain — never a public suffix (`*.com`, `*.co.uk`,
/// `*.github.io`) or everything (`*`).
pub fn validate_entry(raw: &str) -> Result<HostEntry, String> {
    if raw.trim() == "*" {
        return Err("\"*\" would send the credential anywhere: list the hosts it is for".into());
    }
    let entry = parse_entry(raw)?;
    if entry.pattern.parse::<IpAddr>().is_ok() {
        return Ok(entry);
    }
    let domain = match entry.pattern.strip_prefix("*.") {
        Some(domain) => domain,
        None => entry.pattern.as_str(),
    };
    if domain.contains('*') || !matches!(Host::parse(domain), Ok(Host::Domain(_))) {
        return Err(format!(
            "{raw:?} is not a host name (a wildcard is allowed only as a whole first label, \"*.example.com\")"
        ));
    }
    if entry.pattern.starts_with("*.") && is_public_suffix(domain) {
        return Err(format!(
            "{raw:?} covers every domain under the public suffix {domain:?}: name a domain \
             you trust, e.g. \"*.example.{domain}\" or \"api.example.{domain}\""
        ));
    }
    Ok(entry)
}

/// True when `domain` is itself a public suffix (ICANN or private section, or an
/// unlisted top-level domain) per the Public Suffix List.
fn is_public_suffix(domain: &str) -> bool {
    let domain = domain.trim_end_matches('.');
    match psl::suffix(domain.as_bytes()) {
        Some(suffix) => suffix.as_bytes() == domain.as_bytes(),
        None => true,
    }
}

/// The check every credentialed request passes before it is sent: `url` is https (or
/// http when `allow_http`), its host matches an entry, and its port is that entry's
/// port, or the scheme's default for an entry without one.
pub fn check(hosts: &[String], allow_http: bool, url: &Url) -> Result<(), Refusal> {
    let host = url_host(url).ok_or_else(|| Refusal::Host("(none)".into()))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        other => return Err(Refusal::Scheme(other.to_owned())),
    }
    let entries: Vec<HostEntry> = hosts.iter().filter_map(|h| parse_entry(h).ok()).collect();
    let matching: Vec<&HostEntry> = entries
        .iter()
        .filter(|e| host_allowed(std::slice::from_ref(&e.pattern), &host))
        .collect();
    if matching.is_empty() {
        return Err(Refusal::Host(host));
    }
    let port = url.port_or_known_default().unwrap_or(0);
    let default = url.port().is_none();
    if matching
        .iter()
        .any(|e| e.port == Some(port) || (e.port.is_none() && default))
    {
        return Ok(());
    }
    let shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Err(Refusal::Port { host: shown, port })
}

/// The patterns of `hosts` without their ports, for checks that see only a host name
/// (redirect hops, whose credential is dropped anyway when the origin changes).
pub fn patterns(hosts: &[String]) -> Vec<String> {
    hosts
        .iter()
        .filter_map(|h| parse_entry(h).ok())
        .map(|e| e.pattern)
        .collect()
}

#[cfg(test)]
#[path = "destination_tests.rs"]
mod tests;
