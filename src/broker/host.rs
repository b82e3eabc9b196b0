//! Matching a URL host against an agent's `permissions.fetch` patterns.

use std::net::IpAddr;

/// True when `host` matches one of `patterns`.
///
/// A pattern is an exact hostname, or `*.domain`, which matches subdomains at any depth but
/// not `domain` itself. Comparison is case-insensitive, ignores a trailing dot and compares
/// internationalised names in their ASCII (punycode) form. An IP literal (`10.0.0.1`, `::1`
/// or `[::1]`) matches only a pattern that is the same address; wildcards never match one.
/// A bare `*` matches nothing.
pub fn host_allowed(patterns: &[String], host: &str) -> bool {
    let Some(host) = normalize(host) else {
        return false;
    };
    if let Some(ip) = parse_ip(&host) {
        return patterns
            .iter()
            .any(|p| normalize(p).and_then(|p| parse_ip(&p)) == Some(ip));
    }
    patterns.iter().any(|pattern| {
        let Some(pattern) = normalize(pattern) else {
            return false;
        };
        match pattern.strip_prefix("*.") {
            Some(domain) if !domain.is_empty() => {
                host.len() > domain.len() + 1
                    && host.ends_with(domain)
                    && host[..host.len() - domain.len()].ends_with('.')
            }
            Some(_) => false,
            None => pattern == host,
        }
    })
}

/// Lowercase, trailing dot and surrounding brackets removed, IDN in punycode.
/// `None` for what can never be a host (empty, or unparseable non-ASCII).
pub(crate) fn normalize(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let trimmed = trimmed
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(trimmed);
    if trimmed.is_empty() {
        return None;
    }
    if trimmed.is_ascii() {
        return Some(trimmed.to_ascii_lowercase());
    }
    // Keep a leading "*." out of IDNA processing, which would reject it.
    let (prefix, rest) = match trimmed.strip_prefix("*.") {
        Some(rest) => ("*.", rest),
        None => ("", trimmed),
    };
    match url::Host::parse(rest).ok()? {
        url::Host::Domain(d) => Some(format!("{prefix}{d}")),
        _ => None,
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    fn allowed(patterns: &[&str], host: &str) -> bool {
        let owned: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        host_allowed(&owned, host)
    }

    #[test]
    fn exact_names() {
        assert!(allowed(&["api.example.com"], "api.example.com"));
        assert!(allowed(&["API.Example.COM"], "api.example.com"));
        assert!(allowed(&["api.example.com"], "Api.Example.Com"));
        assert!(allowed(&["api.example.com."], "api.example.com"));
        assert!(allowed(&["api.example.com"], "api.example.com."));
        assert!(!allowed(&["api.example.com"], "example.com"));
        assert!(!allowed(&["api.example.com"], "x.api.example.com"));
        assert!(!allowed(&["api.example.com"], "api.example.com.evil.net"));
        assert!(!allowed(&["api.example.com"], "evilapi.example.com"));
        assert!(!allowed(&[], "api.example.com"));
    }

    #[test]
    fn wildcards_match_subdomains_at_any_depth_only() {
        let p = ["*.acme.dev"];
        assert!(allowed(&p, "a.acme.dev"));
        assert!(allowed(&p, "a.b.c.acme.dev"));
        assert!(allowed(&p, "A.ACME.DEV."));
        assert!(!allowed(&p, "acme.dev"));
        assert!(!allowed(&p, "acme.dev."));
        assert!(!allowed(&p, "evilacme.dev"));
        assert!(!allowed(&p, ".acme.dev"));
        assert!(!allowed(&p, "acme.dev.evil.net"));
        assert!(!allowed(&p, "a.acme.devx"));
        assert!(allowed(&["*.acme.dev", "acme.dev"], "acme.dev"));
    }

    #[test]
    fn degenerate_patterns_match_nothing() {
        for p in ["*", "*.", "", "  ", ".", "**.acme.dev"] {
            assert!(!allowed(&[p], "acme.dev"), "{p:?}");
            assert!(!allowed(&[p], "a.acme.dev"), "{p:?}");
        }
        assert!(!allowed(&["acme.dev"], ""));
        assert!(!allowed(&["*.dev"], "."));
    }

    #[test]
    fn ip_literals_match_only_the_same_address() {
        assert!(allowed(&["10.0.0.1"], "10.0.0.1"));
        assert!(allowed(&["::1"], "::1"));
        assert!(allowed(&["::1"], "[::1]"));
        assert!(allowed(&["[::1]"], "::1"));
        assert!(allowed(&["2001:DB8::1"], "2001:db8:0::1"));
        assert!(!allowed(&["10.0.0.1"], "10.0.0.2"));
        assert!(!allowed(&["*.0.0.1"], "10.0.0.1"));
        assert!(!allowed(&["*.1"], "10.0.0.1"));
        assert!(!allowed(&["10.0.0.1"], "::ffff:10.0.0.1"));
        assert!(!allowed(&["*.example.com"], "10.0.0.1"));
    }

    #[test]
    fn internationalised_names_compare_as_punycode() {
        assert!(allowed(&["bücher.de"], "xn--bcher-kva.de"));
        assert!(allowed(&["*.bücher.de"], "shop.xn--bcher-kva.de"));
        assert!(allowed(&["xn--bcher-kva.de"], "BÜCHER.de"));
        assert!(!allowed(&["*.bücher.de"], "xn--bcher-kva.de"));
    }
}
