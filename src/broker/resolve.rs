//! DNS resolution that only ever hands policy-checked addresses to the connector.
//!
//! reqwest connects to exactly the addresses its resolver returns, so checking here, and
//! returning nothing else, leaves no window for DNS rebinding between check and connect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::addr::{AddressClass, AddressPolicy};

/// Turns a host name into addresses. The system resolver in production; tests swap in a
/// table so that a name can "resolve" to loopback without touching DNS.
#[async_trait::async_trait]
pub trait Lookup: Send + Sync {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// `getaddrinfo` through tokio's blocking pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

#[async_trait::async_trait]
impl Lookup for SystemLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        let addrs = tokio::net::lookup_host((host, 0)).await?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

/// Every address of `host` was refused by the policy.
#[derive(Debug, Clone, thiserror::Error)]
#[error("address of {host} is refused ({class})")]
pub struct Refused {
    pub host: String,
    pub ip: IpAddr,
    pub class: AddressClass,
}

/// True for `localhost` and names under `.localhost`, which must mean this machine
/// (RFC 6761) whatever DNS says.
pub fn is_localhost(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Addresses a host stands for without asking DNS: an IP literal, or loopback for
/// localhost names. `None` means DNS must be asked.
pub fn fixed_addrs(host: &str) -> Option<Vec<IpAddr>> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(vec![ip]);
    }
    if is_localhost(host) {
        return Some(vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]);
    }
    None
}

/// Keeps the addresses the policy permits. Refused ones are dropped rather than failing
/// the whole name, because none of them is ever connected to; only when nothing is left is
/// the first refusal reported.
pub fn permitted(
    host: &str,
    addrs: Vec<IpAddr>,
    policy: &AddressPolicy,
) -> Result<Vec<IpAddr>, Refused> {
    let mut kept = Vec::with_capacity(addrs.len());
    let mut first_refusal = None;
    for ip in addrs {
        match policy.permits(ip) {
            Ok(()) if !kept.contains(&ip) => kept.push(ip),
            Ok(()) => {}
            Err(class) => {
                tracing::debug!(host, %ip, %class, "fetch: address refused");
                first_refusal.get_or_insert(Refused {
                    host: host.to_owned(),
                    ip,
                    class,
                });
            }
        }
    }
    match (kept.is_empty(), first_refusal) {
        (false, _) => Ok(kept),
        (true, Some(refused)) => Err(refused),
        // Only reachable with an empty list, which `resolve` reports before calling this.
        (true, None) => Err(Refused {
            host: host.to_owned(),
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            class: AddressClass::Unspecified,
        }),
    }
}

/// The resolver installed in the fetcher's reqwest client.
#[derive(Clone)]
pub struct PolicyResolver {
    policy: Arc<AddressPolicy>,
    lookup: Arc<dyn Lookup>,
}

impl PolicyResolver {
    pub fn new(policy: Arc<AddressPolicy>, lookup: Arc<dyn Lookup>) -> Self {
        Self { policy, lookup }
    }

    /// Resolves `host` and returns only permitted addresses (never an empty list).
    pub async fn resolve_checked(
        &self,
        host: &str,
    ) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let addrs = match fixed_addrs(host) {
            Some(addrs) => addrs,
            None => self
                .lookup
                .lookup(host)
                .await
                .map_err(|e| format!("dns lookup of {host} failed: {e}"))?,
        };
        if addrs.is_empty() {
            return Err(format!("dns lookup of {host} returned no addresses").into());
        }
        Ok(permitted(host, addrs, &self.policy)?)
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = this.resolve_checked(&host).await?;
            // Port 0: the connector fills in the URL's port.
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::testutil::table_lookup;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address parses")
    }

    fn resolver(policy: &[&str]) -> PolicyResolver {
        let lookup = table_lookup(&[
            ("mixed.test", &["10.0.0.1", "127.0.0.1", "127.0.0.1"]),
            ("internal.test", &["169.254.169.254", "10.1.1.1"]),
            ("empty.test", &[]),
        ]);
        let policy = AddressPolicy::parse(policy).expect("policy parses");
        PolicyResolver::new(Arc::new(policy), lookup)
    }

    #[tokio::test]
    async fn only_permitted_addresses_come_back() {
        let r = resolver(&["127.0.0.1/32"]);
        let got = r.resolve_checked("mixed.test").await.expect("resolves");
        assert_eq!(got, vec![ip("127.0.0.1")]);
        let got = r.resolve_checked("localhost").await.expect("resolves");
        assert_eq!(got, vec![ip("127.0.0.1")]);
        let got = r.resolve_checked("a.b.LOCALHOST.").await.expect("resolves");
        assert_eq!(got, vec![ip("127.0.0.1")]);
    }

    #[tokio::test]
    async fn all_refused_reports_the_first_refusal() {
        let r = resolver(&[]);
        let err = r
            .resolve_checked("internal.test")
            .await
            .expect_err("refused");
        let refused = err.downcast_ref::<Refused>().expect("a Refused error");
        assert_eq!(refused.ip, ip("169.254.169.254"));
        assert_eq!(refused.class, AddressClass::Metadata);
        for host in ["localhost", "mixed.test", "[::1]", "127.0.0.1"] {
            let err = r.resolve_checked(host).await.expect_err("refused");
            assert!(err.downcast_ref::<Refused>().is_some(), "{host}");
        }
    }

    #[tokio::test]
    async fn lookup_failures_are_not_refusals() {
        let r = resolver(&[]);
        for host in ["nxdomain.test", "empty.test"] {
            let err = r.resolve_checked(host).await.expect_err("fails");
            assert!(err.downcast_ref::<Refused>().is_none(), "{host}");
            assert!(err.to_string().contains(host), "{err}");
        }
    }

    #[tokio::test]
    async fn system_lookup_answers_from_the_hosts_file() {
        let ips = SystemLookup
            .lookup("localhost")
            .await
            .expect("localhost resolves");
        assert!(ips.iter().all(|ip| ip.is_loopback()), "{ips:?}");
        assert!(!ips.is_empty());
    }

    #[test]
    fn localhost_names() {
        for h in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "x.localhost",
            "a.b.localhost.",
        ] {
            assert!(is_localhost(h), "{h}");
        }
        for h in ["localhost.com", "notlocalhost", "localhostx", "local"] {
            assert!(!is_localhost(h), "{h}");
        }
    }
}
