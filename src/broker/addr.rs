//! What kind of address an IP is, and whether the operator lets agents connect to it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The class of an IP address, as far as outbound fetch cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressClass {
    /// Globally routable unicast: the only class fetch reaches by default.
    Public,
    Loopback,
    /// RFC 1918, IPv6 unique-local and deprecated site-local.
    Private,
    LinkLocal,
    /// Cloud instance-metadata endpoints (credentials live there).
    Metadata,
    Unspecified,
    Multicast,
    Broadcast,
    /// 100.64.0.0/10, carrier-grade NAT.
    SharedCgnat,
    Documentation,
    /// 198.18.0.0/15, network benchmarking.
    Benchmarking,
    /// Special-purpose or unallocated space (240/4, Teredo, outside 2000::/3, ...).
    Reserved,
}

impl AddressClass {
    pub fn is_public(&self) -> bool {
        matches!(self, AddressClass::Public)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Metadata => "metadata",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::SharedCgnat => "shared (CGNAT)",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies an address; anything not known to be globally routable is not `Public`.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    prefix_eq(
        u32::from(ip).into(),
        u32::from(Ipv4Addr::from(net)).into(),
        prefix,
        32,
    )
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    prefix_eq(u128::from(ip), u128::from(net), prefix, 128)
}

/// Compares the top `prefix` bits of two `width`-bit numbers.
fn prefix_eq(a: u128, b: u128, prefix: u32, width: u32) -> bool {
    let shift = width.saturating_sub(prefix);
    // A shift of 128 would overflow; prefix 0 matches everything.
    shift >= 128 || (a >> shift) == (b >> shift)
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    let o = ip.octets();
    // Metadata endpoints first: they sit inside ranges with other classes.
    // AWS/GCP/Azure, AWS ECS task metadata, Alibaba Cloud, Oracle Cloud.
    const METADATA: [[u8; 4]; 4] = [
        [169, 254, 169, 254],
        [169, 254, 170, 2],
        [100, 100, 100, 200],
        [192, 0, 0, 192],
    ];
    if METADATA.contains(&o) {
        return Metadata;
    }
    if o == [0, 0, 0, 0] {
        return Unspecified;
    }
    if o == [255, 255, 255, 255] {
        return Broadcast;
    }
    const TABLE: &[([u8; 4], u32, AddressClass)] = &[
        ([0, 0, 0, 0], 8, Reserved),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedCgnat),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map_or(Public, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    let seg = ip.segments();
    if ip.is_unspecified() {
        return Unspecified;
    }
    if ip.is_loopback() {
        return Loopback;
    }
    // AWS's IPv6 instance-metadata endpoint sits inside fc00::/7.
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Metadata;
    }
    // Forms that carry an IPv4 address reach that address: judge it instead.
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let net = |a: u16, b: u16| Ipv6Addr::new(a, b, 0, 0, 0, 0, 0, 0);
    // Space outside 2000::/3 that is not listed here (local-use NAT64, discard-only
    // 100::/64, ...) falls through to Reserved below.
    let table: [(Ipv6Addr, u32, AddressClass); 8] = [
        (net(0x2001, 0x0db8), 32, Documentation),
        (net(0x2001, 0), 23, Reserved), // IETF protocol assignments, incl. Teredo 2001::/32
        (net(0x3fff, 0), 20, Documentation),
        (net(0x5f00, 0), 16, Reserved), // SRv6 SIDs
        (net(0xfc00, 0), 7, Private),
        (net(0xfe80, 0), 10, LinkLocal),
        (net(0xfec0, 0), 10, Private), // deprecated site-local
        (net(0xff00, 0), 8, Multicast),
    ];
    if let Some((_, _, class)) = table.iter().find(|(n, p, _)| in_v6(ip, *n, *p)) {
        return *class;
    }
    // Only 2000::/3 is allocated as global unicast.
    if seg[0] & 0xe000 == 0x2000 {
        Public
    } else {
        Reserved
    }
}

/// The IPv4 address inside IPv4-mapped, -compatible, -translated, NAT64 (64:ff9b::/96) and 6to4 forms.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let low = Ipv4Addr::new(
        (seg[6] >> 8) as u8,
        seg[6] as u8,
        (seg[7] >> 8) as u8,
        seg[7] as u8,
    );
    // ::ffff:a.b.c.d (mapped), ::a.b.c.d (deprecated compatible), ::ffff:0:a.b.c.d (SIIT).
    if seg[..5] == [0; 5] && (seg[5] == 0xffff || seg[5] == 0)
        || seg[..4] == [0; 4] && seg[4] == 0xffff && seg[5] == 0
    {
        return Some(low);
    }
    if seg[..6] == [0x0064, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    if seg[0] == 0x2002 {
        let [a, b] = seg[1].to_be_bytes();
        let [c, d] = seg[2].to_be_bytes();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    None
}

/// A CIDR list could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid address or CIDR {0:?} (expected e.g. \"10.0.0.0/8\" or \"::1\")")]
pub struct BadCidr(pub String);

/// Which non-public addresses the operator lets agents reach anyway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Networks allowed despite their class, host bits cleared.
    allow: Vec<(IpAddr, u8)>,
}

impl AddressPolicy {
    /// Refuses everything that is not public.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Parses entries like `"127.0.0.1/32"`, `"10.0.0.0/8"` or a bare `"::1"` (a single host).
    /// Host bits below the prefix are ignored: `"192.168.1.7/24"` means `192.168.1.0/24`.
    pub fn parse<I, S>(entries: I) -> Result<Self, BadCidr>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut allow = Vec::new();
        for entry in entries {
            let text = entry.as_ref().trim();
            let bad = || BadCidr(text.to_owned());
            let (addr, prefix) = match text.split_once('/') {
                Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
                None => (text, None),
            };
            let ip: IpAddr = addr.parse().map_err(|_| bad())?;
            let width = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.unwrap_or(width);
            if prefix > width {
                return Err(bad());
            }
            allow.push((mask(ip, prefix), prefix));
        }
        Ok(Self { allow })
    }

    /// `Ok` for public addresses and those the operator allowed; otherwise the refused class.
    pub fn permits(&self, ip: IpAddr) -> Result<(), AddressClass> {
        let class = classify(ip);
        if class.is_public() {
            return Ok(());
        }
        // ::ffff:127.0.0.1 is 127.0.0.1 on the wire, so "127.0.0.1/32" covers it.
        let canonical = ip.to_canonical();
        let allowed = self
            .allow
            .iter()
            .any(|(net, prefix)| match (canonical, net) {
                (IpAddr::V4(a), IpAddr::V4(n)) => in_v4(a, n.octets(), u32::from(*prefix)),
                (IpAddr::V6(a), IpAddr::V6(n)) => in_v6(a, *n, u32::from(*prefix)),
                _ => false,
            });
        if allowed {
            Ok(())
        } else {
            Err(class)
        }
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = bits.checked_shr(32 - u32::from(prefix)).unwrap_or(0);
            let masked = kept.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(masked))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = bits.checked_shr(128 - u32::from(prefix)).unwrap_or(0);
            let masked = kept.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(masked))
        }
    }
}

#[cfg(test)]
#[path = "addr_tests.rs"]
mod tests;
