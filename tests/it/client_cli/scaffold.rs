//! `atoll init`, `atoll deploy` and `atoll run` of what they made.

use super::Dev;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_deploy_and_run_the_scaffold() {
    let dev = Dev::start(&[]).await;
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("hello-agent");
    let dir_s = dir.to_str().expect("utf-8 path");

    let out = dev.run(&["init", dir_s]).await.expect(0);
    assert!(
        out.stdout.contains(&format!("atoll deploy {dir_s}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("--input @"), "{}", out.stdout);
    for file in ["agent.json", "main.js", "input.json"] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    // A second init overwrites nothing.
    std::fs::write(dir.join("input.json"), "{\"name\":\"Grace\"}").expect("edit");
    let out = dev.run(&["init", dir_s]).await.expect(2);
    assert!(out.stderr.contains("already has"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("input.json")).expect("read"),
        "{\"name\":\"Grace\"}"
    );

    // Deploy it (right after `atoll dev`, with no flags: dev saved the default profile).
    let out = dev.run(&["deploy", dir_s]).await.expect(0);
    assert!(
        out.stdout.contains("deployed @local/hello-agent@0.1.0"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("atoll run @local/hello-agent --input @"),
        "{}",
        out.stdout
    );
    // Identical content again: harmless, and said so.
    let out = dev.run(&["deploy", dir_s, "--json"]).await.expect(0);
    assert_eq!(out.json()["version"], "0.1.0");
    let out = dev.run(&["deploy", dir_s]).await.expect(0);
    assert!(out.stdout.contains("already deployed"), "{}", out.stdout);

    // Run it with its input file and wait: the output, and exit 0.
    let input = format!("@{}", dir.join("input.json").display());
    let out = dev
        .run(&["run", "@local/hello-agent", "--input", &input, "--wait"])
        .await
        .expect(0);
    assert!(out.stdout.contains("succeeded"), "{}", out.stdout);
    assert!(
        out.stdout.contains("\"greeting\": \"Hello, Grace!\""),
        "{}",
        out.stdout
    );
    let out = dev
        .run(&[
            "run",
            "local/hello-agent",
            "--input",
            &input,
            "--wait",
            "--json",
        ])
        .await
        .expect(0);
    let run = out.json();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"]["greeting"], "Hello, Grace!");
    assert_eq!(run["output"]["runs"], 2, "state carried over: {run}");

    // Input the schema refuses: the server's 422 detail, exit 3, no run.
    let out = dev
        .run(&[
            "run",
            "@local/hello-agent",
            "--input",
            "{\"nom\":1}",
            "--wait",
        ])
        .await
        .expect(3);
    assert!(out.stderr.contains("422"), "{}", out.stderr);
    // Input that is not JSON: exit 2, nothing sent.
    dev.run(&["run", "@local/hello-agent", "--input", "{nope"])
        .await
        .expect(2);
    // An agent that is not deployed: 404 and how to deploy.
    let out = dev.run(&["run", "@local/none", "--wait"]).await.expect(3);
    assert!(out.stderr.contains("atoll deploy"), "{}", out.stderr);
    // A run that fails: exit 1, the error shown.
    let out = dev.run(&["run", "@t/fail", "--wait"]).await.expect(1);
    assert!(out.stdout.contains("on purpose"), "{}", out.stdout);

    // Other content under the same version: the server's 409, and what to do.
    std::fs::write(
        dir.join("main.js"),
        "export default async (i) => ({ greeting: 'x', runs: 1, run_id: 'r' });\n",
    )
    .expect("edit");
    let out = dev.run(&["deploy", dir_s]).await.expect(3);
    assert!(
        out.stderr.contains("409") && out.stderr.contains("bump"),
        "{}",
        out.stderr
    );

    // A package the local check refuses: nothing is uploaded. The URL points at nothing,
    // so an upload would have failed with 4; a syntax error only the server sees is its 422.
    let broken = work.path().join("broken");
    std::fs::create_dir_all(&broken).expect("dir");
    std::fs::write(
        broken.join("agent.json"),
        r#"{"name":"@t/broken","version":"1.0.0"}"#,
    )
    .expect("write");
    std::fs::write(
        broken.join("main.js"),
        "import x from './missing.js';\nexport default x;\n",
    )
    .expect("write");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let out = dev
        .run(&[
            "deploy",
            broken.to_str().expect("path"),
            "--url",
            &format!("http://{closed}"),
            "--api-key",
            &dev.app_key,
        ])
        .await
        .expect(3);
    assert!(
        out.stderr.contains("main.js") && out.stderr.contains("missing.js"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("nothing was uploaded"),
        "{}",
        out.stderr
    );
    let (status, _) = dev
        .api(reqwest::Method::GET, "/v1/agents/t/broken", None)
        .await;
    assert_eq!(status, 404);
    std::fs::write(
        broken.join("main.js"),
        "export default async (input, ctx) => {\n  return {;\n};\n",
    )
    .expect("write");
    let out = dev
        .run(&["deploy", broken.to_str().expect("path")])
        .await
        .expect(3);
    assert!(
        out.stderr.contains("422") && out.stderr.contains("main.js"),
        "{}",
        out.stderr
    );
    let (status, _) = dev
        .api(reqwest::Method::GET, "/v1/agents/t/broken", None)
        .await;
    assert_eq!(status, 404, "a refused upload stores nothing");
}
