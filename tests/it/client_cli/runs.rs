//! `atoll runs list|get|cancel`.

use serde_json::json;

use super::{until_status, Dev};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_list_follows_pages_and_get_and_cancel_work() {
    let dev = Dev::start(&[]).await;
    // 55 runs, more than one page of the CLI's (50).
    for i in 0..55 {
        let (status, body) = dev
            .api(
                reqwest::Method::POST,
                "/v1/agents/t/greet/runs",
                Some(json!({ "input": { "name": format!("n{i}") } })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let out = dev
        .run(&["runs", "list", "--limit", "53", "--json"])
        .await
        .expect(0);
    let listed = out.json();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 53, "{listed}");
    let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), 53, "no run twice across pages");
    let out = dev
        .run(&["runs", "list", "--limit", "200", "--json"])
        .await
        .expect(0);
    assert_eq!(out.json()["data"].as_array().map(Vec::len), Some(55));

    // One run of another agent, failed: the filters find it.
    let out = dev
        .run(&["run", "@t/fail", "--wait", "--json"])
        .await
        .expect(1);
    let failed = out.json()["id"].as_str().expect("id").to_owned();
    let out = dev
        .run(&["runs", "list", "--agent", "@t/fail", "--json"])
        .await
        .expect(0);
    assert_eq!(out.json()["data"][0]["id"], failed.as_str());
    let out = dev
        .run(&["runs", "list", "--status", "failed"])
        .await
        .expect(0);
    assert!(out.stdout.starts_with("ID"), "{}", out.stdout);
    assert!(out.stdout.contains(&failed), "{}", out.stdout);
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    dev.run(&["runs", "list", "--status", "done"])
        .await
        .expect(2);

    // get: human and JSON.
    let out = dev.run(&["runs", "get", &failed]).await.expect(0);
    assert!(out.stdout.contains("status    failed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("agent_error: Error: on purpose"),
        "{}",
        out.stdout
    );
    let out = dev.run(&["runs", "get", &failed, "--json"]).await.expect(0);
    assert_eq!(out.json()["error"]["code"], "agent_error");
    let out = dev
        .run(&["runs", "get", "run_nope", "--json"])
        .await
        .expect(3);
    assert_eq!(
        out.json()["status"],
        404,
        "--json prints the problem: {}",
        out.stdout
    );
    assert!(out.stderr.contains("runs list"), "{}", out.stderr);

    // cancel: a waiting run is cancelled; an ended one is left as it was.
    let out = dev.run(&["run", "@t/approve"]).await.expect(0);
    let waiting = out.stdout.trim().to_owned();
    assert!(waiting.starts_with("run_"), "{}", out.stdout);
    until_status(&dev, &waiting, "waiting").await;
    let out = dev.run(&["runs", "cancel", &waiting]).await.expect(0);
    assert!(out.stdout.contains("cancelled"), "{}", out.stdout);
    until_status(&dev, &waiting, "cancelled").await;
    let out = dev.run(&["runs", "cancel", &failed]).await.expect(0);
    assert!(
        out.stdout.contains("already ended (failed)"),
        "{}",
        out.stdout
    );
}
