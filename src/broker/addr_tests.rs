//! Table tests for address classification and the operator's allow list (no network).

use super::AddressClass::*;
use super::*;

fn class(s: &str) -> AddressClass {
    let ip: IpAddr = s.parse().expect("test address parses");
    classify(ip)
}

#[test]
fn ipv4_ranges() {
    let cases: &[(&str, AddressClass)] = &[
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", Reserved),
        ("0.255.255.255", Reserved),
        ("1.1.1.1", Public),
        ("8.8.8.8", Public),
        ("9.255.255.255", Public),
        ("10.0.0.0", Private),
        ("10.255.255.255", Private),
        ("11.0.0.0", Public),
        ("100.63.255.255", Public),
        ("100.64.0.0", SharedCgnat),
        ("100.127.255.255", SharedCgnat),
        ("100.128.0.0", Public),
        ("100.100.100.200", Metadata),
        ("126.255.255.255", Public),
        ("127.0.0.1", Loopback),
        ("127.1.2.3", Loopback),
        ("127.255.255.255", Loopback),
        ("128.0.0.0", Public),
        ("169.253.255.255", Public),
        ("169.254.0.1", LinkLocal),
        ("169.254.169.253", LinkLocal),
        ("169.254.169.254", Metadata),
        ("169.254.170.2", Metadata),
        ("169.254.255.255", LinkLocal),
        ("169.255.0.0", Public),
        ("172.15.255.255", Public),
        ("172.16.0.0", Private),
        ("172.31.255.255", Private),
        ("172.32.0.0", Public),
        ("192.0.0.1", Reserved),
        ("192.0.0.192", Metadata),
        ("192.0.1.1", Public),
        ("192.0.2.1", Documentation),
        ("192.0.3.1", Public),
        ("192.88.99.1", Reserved),
        ("192.167.255.255", Public),
        ("192.168.0.1", Private),
        ("192.168.255.255", Private),
        ("192.169.0.0", Public),
        ("198.17.255.255", Public),
        ("198.18.0.0", Benchmarking),
        ("198.19.255.255", Benchmarking),
        ("198.20.0.0", Public),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("203.0.114.0", Public),
        ("223.255.255.255", Public),
        ("224.0.0.1", Multicast),
        ("239.255.255.255", Multicast),
        ("240.0.0.1", Reserved),
        ("254.255.255.255", Reserved),
        ("255.255.255.254", Reserved),
        ("255.255.255.255", Broadcast),
    ];
    for (ip, want) in cases {
        assert_eq!(class(ip), *want, "{ip}");
    }
}

#[test]
fn ipv6_ranges() {
    let cases: &[(&str, AddressClass)] = &[
        ("::", Unspecified),
        ("::1", Loopback),
        ("::2", Reserved), // compatible form of 0.0.0.2
        ("2606:4700:4700::1111", Public),
        ("2a00:1450:4001::1", Public),
        ("2000::1", Public),
        ("3ffe::1", Public),
        ("3fff::1", Documentation),
        ("3fff:0fff::1", Documentation),
        ("4000::1", Reserved),
        ("100::1", Reserved),
        ("64:ff9b:1::1", Reserved),
        ("5f00::1", Reserved),
        ("fc00::1", Private),
        ("fd12:3456::1", Private),
        ("fdff:ffff::1", Private),
        ("fd00:ec2::254", Metadata),
        ("fd00:ec2::253", Private),
        ("fe80::1", LinkLocal),
        ("febf::1", LinkLocal),
        ("fec0::1", Private),
        ("ff02::1", Multicast),
        ("ff0e::1", Multicast),
        ("2001:db8::1", Documentation),
        ("2001:db8:ffff::1", Documentation),
        ("2001::1", Reserved),             // Teredo
        ("2001:0:4136:e378::1", Reserved), // Teredo with a server address
        ("2001:10::1", Reserved),
        ("2001:1ff::1", Reserved),
        ("2001:200::1", Public),
    ];
    for (ip, want) in cases {
        assert_eq!(class(ip), *want, "{ip}");
    }
}

#[test]
fn ipv6_forms_with_embedded_ipv4_are_judged_by_the_ipv4() {
    let cases: &[(&str, AddressClass)] = &[
        ("::ffff:127.0.0.1", Loopback),
        ("::ffff:7f00:1", Loopback),
        ("::ffff:10.1.2.3", Private),
        ("::ffff:169.254.169.254", Metadata),
        ("::ffff:8.8.8.8", Public),
        ("::ffff:0.0.0.0", Unspecified),
        ("::127.0.0.1", Loopback),
        ("::192.168.1.1", Private),
        ("::8.8.8.8", Public),
        ("::ffff:0:127.0.0.1", Loopback),
        ("::ffff:0:1.1.1.1", Public),
        ("64:ff9b::127.0.0.1", Loopback),
        ("64:ff9b::169.254.169.254", Metadata),
        ("64:ff9b::1.1.1.1", Public),
        ("64:ff9b::ffff:10.0.0.1", Reserved), // not the /96 form
        ("2002:7f00:1::", Loopback),
        ("2002:a9fe:a9fe::1", Metadata),
        ("2002:c0a8:101::", Private),
        ("2002:808:808::1", Public),
        ("2002::", Unspecified),
    ];
    for (ip, want) in cases {
        assert_eq!(class(ip), *want, "{ip}");
    }
}

#[test]
fn only_public_is_public() {
    let all = [
        Public,
        Loopback,
        Private,
        LinkLocal,
        Metadata,
        Unspecified,
        Multicast,
        Broadcast,
        SharedCgnat,
        Documentation,
        Benchmarking,
        Reserved,
    ];
    for c in all {
        assert_eq!(c.is_public(), c == Public, "{c}");
    }
}

#[test]
fn empty_policy_permits_only_public() {
    let p = AddressPolicy::deny_all();
    assert_eq!(p.permits("1.1.1.1".parse().expect("ip")), Ok(()));
    assert_eq!(p.permits("2606:4700::1".parse().expect("ip")), Ok(()));
    assert_eq!(p.permits("127.0.0.1".parse().expect("ip")), Err(Loopback));
    assert_eq!(p.permits("::1".parse().expect("ip")), Err(Loopback));
    assert_eq!(
        p.permits("169.254.169.254".parse().expect("ip")),
        Err(Metadata)
    );
    assert_eq!(p.permits("10.0.0.1".parse().expect("ip")), Err(Private));
}

#[test]
fn allow_list_opens_exactly_its_networks() {
    let p = AddressPolicy::parse(["127.0.0.1/32", "10.0.0.0/8", "::1", "fd00::/8"])
        .expect("policy parses");
    let ok = [
        "127.0.0.1",
        "::ffff:127.0.0.1",
        "10.0.0.1",
        "10.255.255.255",
        "::1",
        "fd12::1",
        "8.8.8.8",
    ];
    for ip in ok {
        assert_eq!(p.permits(ip.parse().expect("ip")), Ok(()), "{ip}");
    }
    let refused: &[(&str, AddressClass)] = &[
        ("127.0.0.2", Loopback),
        ("::2", Reserved),
        ("172.16.0.1", Private),
        ("fc00::1", Private),
        ("169.254.169.254", Metadata),
    ];
    for (ip, want) in refused {
        assert_eq!(p.permits(ip.parse().expect("ip")), Err(*want), "{ip}");
    }
    // An operator network wins over the class, metadata included.
    assert_eq!(p.permits("fd00:ec2::254".parse().expect("ip")), Ok(()));
}

#[test]
fn parse_masks_host_bits_and_rejects_garbage() {
    let p = AddressPolicy::parse(["192.168.1.7/24", " 0.0.0.0/0 "]).expect("parses");
    assert_eq!(
        p.allow,
        vec![
            ("192.168.1.0".parse().expect("ip"), 24),
            ("0.0.0.0".parse().expect("ip"), 0)
        ]
    );
    // 0.0.0.0/0 allows every IPv4 address, but no IPv6 one.
    assert_eq!(p.permits("169.254.169.254".parse().expect("ip")), Ok(()));
    assert_eq!(p.permits("::1".parse().expect("ip")), Err(Loopback));
    let v6 = AddressPolicy::parse(["fe80::1234/10"]).expect("parses");
    assert_eq!(v6.allow, vec![("fe80::".parse().expect("ip"), 10)]);
    for bad in [
        "",
        "localhost",
        "10.0.0.0/33",
        "::1/129",
        "10.0.0/8",
        "10.0.0.0/x",
        "1.2.3.4/-1",
    ] {
        assert!(AddressPolicy::parse([bad]).is_err(), "{bad:?}");
    }
}
