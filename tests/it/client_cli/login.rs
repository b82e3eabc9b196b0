//! `atoll login` and where the client finds its server and key.

use serde_json::Value;

use super::{cli_in, done, mode, with_stdin, Dev};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_saves_a_private_profile_and_refuses_a_wrong_key() {
    let dev = Dev::start(&[]).await;
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("atoll");
    let profiles = config.join("profiles.json");

    // Nothing saved yet: not logged in is a usage error that says what to do.
    let out = done(
        cli_in(&config, &["runs", "list"])
            .output()
            .await
            .expect("run"),
    )
    .expect(2);
    assert!(out.stderr.contains("atoll login"), "{}", out.stderr);

    // A key the server does not know is refused with its 401, and nothing is saved.
    let wrong = "atl_wrongwrongwrongwrongwrongwrongwrong";
    let out = done(
        cli_in(&config, &["login", "--url", &dev.url, "--api-key", wrong])
            .output()
            .await
            .expect("run"),
    )
    .expect(3);
    assert!(
        out.stderr.contains("refused this API key"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("401"), "{}", out.stderr);
    assert!(!profiles.exists(), "a refused key is not saved");
    // Not a key at all: refused before anything is sent.
    let out = done(
        cli_in(
            &config,
            &["login", "--url", &dev.url, "--api-key", "hunter2"],
        )
        .output()
        .await
        .expect("run"),
    )
    .expect(2);
    assert!(out.stderr.contains("atl_"), "{}", out.stderr);

    // The URL and the key from stdin (as a prompt would read them).
    let input = format!("{}\n{}\n", dev.url, dev.app_key);
    let out = with_stdin(cli_in(&config, &["login"]), &input)
        .await
        .expect(0);
    assert!(out.stdout.contains("profile `default`"), "{}", out.stdout);
    assert_eq!(mode(&profiles), 0o600, "profiles.json holds keys");
    assert_eq!(mode(&config), 0o700);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&profiles).expect("read")).expect("json");
    assert_eq!(saved["profiles"]["default"]["url"], dev.url.as_str());
    assert_eq!(
        saved["profiles"]["default"]["api_key"],
        dev.app_key.as_str()
    );

    // The profile is used without flags; an org key works too, under its own name.
    let out = done(
        cli_in(&config, &["runs", "list", "--json"])
            .output()
            .await
            .expect("run"),
    )
    .expect(0);
    assert!(out.json()["data"].is_array(), "{}", out.stdout);
    let out = done(
        cli_in(
            &config,
            &[
                "login",
                "--profile",
                "org",
                "--url",
                &dev.url,
                "--api-key",
                &dev.org_key,
            ],
        )
        .output()
        .await
        .expect("run"),
    )
    .expect(0);
    assert!(out.stdout.contains("profile `org`"), "{}", out.stdout);
    // An org key reads runs only naming the app: the server's 400 says so, exit 3.
    let out = done(
        cli_in(&config, &["runs", "list", "--profile", "org"])
            .output()
            .await
            .expect("run"),
    )
    .expect(3);
    assert!(
        out.stderr.contains("app_id") && out.stderr.contains("--app"),
        "{}",
        out.stderr
    );
    // With --app it does.
    let (_, apps) = dev.api(reqwest::Method::GET, "/v1/apps", None).await;
    let app_id = apps["data"][0]["id"].as_str().expect("app id").to_owned();
    let out = done(
        cli_in(
            &config,
            &[
                "runs",
                "list",
                "--profile",
                "org",
                "--app",
                &app_id,
                "--json",
            ],
        )
        .output()
        .await
        .expect("run"),
    )
    .expect(0);
    assert!(out.json()["data"].is_array(), "{}", out.stdout);
    let out = done(
        cli_in(&config, &["runs", "list", "--profile", "nope"])
            .output()
            .await
            .expect("run"),
    )
    .expect(2);
    assert!(out.stderr.contains("no profile `nope`"), "{}", out.stderr);

    // ATOLL_API_KEY overrides the profile (here with a wrong key: 401 and a hint).
    let out = done(
        cli_in(&config, &["runs", "list"])
            .env("ATOLL_API_KEY", wrong)
            .output()
            .await
            .expect("run"),
    )
    .expect(3);
    assert!(
        out.stderr.contains("401") && out.stderr.contains("atoll login"),
        "{}",
        out.stderr
    );
    // A server that is not there: exit 4, and a hint.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let out = done(
        cli_in(
            &config,
            &[
                "runs",
                "list",
                "--url",
                &format!("http://{closed}"),
                "--api-key",
                "atl_any",
            ],
        )
        .output()
        .await
        .expect("run"),
    )
    .expect(4);
    assert!(
        out.stderr.contains("is the server running"),
        "{}",
        out.stderr
    );
    // The saved key is never sent to a server the profile does not name.
    let out = done(
        cli_in(
            &config,
            &["runs", "list", "--url", &format!("http://{closed}")],
        )
        .output()
        .await
        .expect("run"),
    )
    .expect(2);
    assert!(
        out.stderr.contains("its key is not sent elsewhere"),
        "{}",
        out.stderr
    );

    // `atoll dev` saved its app key as profiles `dev` and `default`, owner-only ...
    let dev_profiles = dev.config.join("profiles.json");
    assert_eq!(mode(&dev_profiles), 0o600);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&dev_profiles).expect("read")).expect("json");
    for name in ["dev", "default"] {
        assert_eq!(
            saved["profiles"][name]["api_key"],
            dev.app_key.as_str(),
            "{saved}"
        );
        assert_eq!(saved["profiles"][name]["url"], dev.url.as_str(), "{saved}");
    }
    // ... and its org key as `dev-org`, with the dev app, so that runs can be read with it.
    assert_eq!(
        saved["profiles"]["dev-org"]["api_key"],
        dev.org_key.as_str(),
        "{saved}"
    );
    let out = dev
        .run(&["runs", "list", "--profile", "dev-org", "--json"])
        .await
        .expect(0);
    assert!(out.json()["data"].is_array(), "{}", out.stdout);
}
