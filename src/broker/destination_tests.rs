use super::*;

fn url(s: &str) -> Url {
    Url::parse(s).expect("url")
}

fn hosts(list: &[&str]) -> Vec<String> {
    list.iter().map(|h| h.to_string()).collect()
}

#[test]
fn wildcards_over_a_public_suffix_are_refused_at_save() {
    for bad in [
        "*",
        "*.com",
        "*.co.uk",
        "*.github.io",
        "*.internal",
        "*.COM.",
        "*.xn--p1ai",
    ] {
        let err = validate_entry(bad).expect_err(bad);
        assert!(!err.is_empty(), "{bad}");
    }
    for good in [
        "*.example.com",
        "*.example.co.uk",
        "api.example.com",
        "api.example.com:8443",
        "127.0.0.1",
        "127.0.0.1:8080",
        "::1",
        "[::1]",
        "[::1]:8080",
        "com",
    ] {
        validate_entry(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "",
        "https://api.example.com",
        "api.example.com/x",
        "user@api.example.com",
        "api.example.com:0",
        "api.example.com:99999",
        "a.*.example.com",
        "**.example.com",
        "[::1",
        "[nothost]:80",
    ] {
        assert!(validate_entry(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn https_only_unless_allowed() {
    let h = hosts(&["api.example.com"]);
    assert_eq!(check(&h, false, &url("https://api.example.com/x")), Ok(()));
    assert_eq!(
        check(&h, false, &url("http://api.example.com/x")),
        Err(Refusal::Scheme("http".into()))
    );
    assert_eq!(check(&h, true, &url("http://api.example.com/x")), Ok(()));
}

#[test]
fn the_default_port_only_unless_listed() {
    let h = hosts(&["api.example.com", "other.example.com:8443"]);
    assert_eq!(
        check(&h, false, &url("https://api.example.com:443/")),
        Ok(())
    );
    assert!(matches!(
        check(&h, false, &url("https://api.example.com:8443/")),
        Err(Refusal::Port { port: 8443, .. })
    ));
    assert_eq!(
        check(&h, false, &url("https://other.example.com:8443/")),
        Ok(())
    );
    assert!(matches!(
        check(&h, false, &url("https://other.example.com/")),
        Err(Refusal::Port { port: 443, .. })
    ));
    // http's default port is 80, not 443.
    let h = hosts(&["127.0.0.1:443"]);
    assert!(check(&h, true, &url("http://127.0.0.1/")).is_err());
}

#[test]
fn hosts_and_ipv6_literals_in_one_form() {
    let h = hosts(&["*.Example.com", "[::1]:8080", "2001:db8::1"]);
    assert_eq!(check(&h, false, &url("https://a.b.example.com/")), Ok(()));
    assert_eq!(
        check(&h, false, &url("https://example.com/")),
        Err(Refusal::Host("example.com".into()))
    );
    assert_eq!(check(&h, true, &url("http://[::1]:8080/x")), Ok(()));
    assert_eq!(check(&h, false, &url("https://[2001:db8:0::1]/")), Ok(()));
    assert!(matches!(
        check(&h, true, &url("http://[::1]:9090/x")),
        Err(Refusal::Port { port: 9090, .. })
    ));
    assert_eq!(url_host(&url("http://[::1]:1/")).as_deref(), Some("::1"));
    assert_eq!(patterns(&h), ["*.example.com", "::1", "2001:db8::1"]);
}
