//! `atoll dev` as a user starts it: it creates its tenant with the API's own key issuing,
//! deploys the sample agents with the API's own version records, and the key it prints
//! starts a run of one of them. A second start reuses the tenant.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Starts `atoll dev` on a free port with its data in `data`; returns it with the app key
/// and the org key it printed.
fn start_dev(data: &std::path::Path) -> (Child, String, String, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_atoll"))
        .arg("dev")
        .arg("--agents")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/agents"))
        .env("ATOLL_LISTEN", format!("127.0.0.1:{port}"))
        .env("ATOLL_DATA_DIR", data)
        // It saves a client profile: here, not in the user's ~/.config.
        .env("ATOLL_CONFIG_DIR", data.join("config"))
        .env("ATOLL_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start atoll dev");
    let stdout = child.stdout.take().expect("stdout");
    // Read to the end on a thread of its own: a closed pipe would fail the server's
    // later writes.
    let (found, key) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            for label in ["app key:", "org key:"] {
                if let Some(k) = line.trim().strip_prefix(label) {
                    let _ = found.send(k.trim().to_owned());
                }
            }
        }
    });
    let app_key = key.recv_timeout(Duration::from_secs(60)).ok();
    let org_key = key.recv_timeout(Duration::from_secs(10)).ok();
    (
        child,
        app_key.expect("atoll dev printed an app key"),
        org_key.expect("atoll dev printed an org key"),
        port,
    )
}

fn stop(mut child: Child) {
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "atoll dev exited with {status}");
}

#[tokio::test]
async fn dev_creates_a_tenant_deploys_agents_and_runs_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (child, key, org_key, port) = start_dev(&data);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "atoll dev did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run: Value = http
        .post(format!("{base}/v1/agents/atoll/hello/runs?wait=20"))
        .bearer_auth(&key)
        .json(&json!({ "input": { "name": "Dev" } }))
        .send()
        .await
        .expect("run")
        .json()
        .await
        .expect("json");
    assert_eq!(run["output"]["greeting"], "Hello, Dev!", "{run}");
    let keys: Value = http
        .get(format!("{base}/v1/api-keys"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("keys")
        .json()
        .await
        .expect("json");
    let listed = &keys["data"][0];
    assert_eq!(listed["kind"], "app", "{keys}");
    assert_eq!(listed["name"], "dev app key", "{keys}");
    assert_eq!(listed["prefix"].as_str(), Some(&key[..12]), "{keys}");
    // Only the samples meant for users are deployed: the hostile agents are test fixtures.
    let agents: Value = http
        .get(format!("{base}/v1/agents?limit=200"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("agents")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = agents["data"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(names.contains(&"@atoll/hello"), "{names:?}");
    assert!(names.iter().all(|n| !n.contains("hostile")), "{names:?}");
    // The app's last key cannot be revoked (the dev tenant would be lost); with another
    // key made by the org key, it can.
    let key_id = listed["id"].as_str().expect("key id").to_owned();
    let revoke = |k: &str| {
        http.delete(format!("{base}/v1/api-keys/{key_id}"))
            .bearer_auth(k.to_owned())
            .send()
    };
    assert_eq!(revoke(&key).await.expect("revoke").status(), 409);
    let app_id = listed["app_id"].as_str().expect("app id").to_owned();
    let second: Value = http
        .post(format!("{base}/v1/api-keys"))
        .bearer_auth(&org_key)
        .json(&json!({ "name": "second", "app_id": app_id }))
        .send()
        .await
        .expect("second key")
        .json()
        .await
        .expect("json");
    let second_key = second["secret"].as_str().expect("secret").to_owned();
    assert_eq!(revoke(&second_key).await.expect("revoke").status(), 204);
    // The second key is now the app's last, yet the org key revokes it at once (a leaked
    // app key is never kept alive by the rule; the org can always make another).
    let second_id = second["id"].as_str().expect("key id");
    let by_org = http
        .delete(format!("{base}/v1/api-keys/{second_id}"))
        .bearer_auth(&org_key)
        .send()
        .await
        .expect("revoke by the org");
    assert_eq!(by_org.status(), 204);
    stop(child);
    // It holds keys: only its owner may read it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("dev-tenant.json"))
        .expect("tenant file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "dev-tenant.json mode {mode:o}");

    // The second start keeps the tenant and its org key.
    let (child, _, org_again, _) = start_dev(&data);
    assert_eq!(org_again, org_key);
    stop(child);
}
