//! `atoll dev --watch`.

use super::{Dev, GREET, SLOW};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_watch_deploys_an_edit_for_the_next_run() {
    let dev = Dev::start(&["--watch"]).await;
    let greet = dev.agents.join("greet");
    let run = || async {
        dev.run(&[
            "run",
            "@t/greet",
            "--input",
            "{\"name\":\"W\"}",
            "--wait",
            "--json",
        ])
        .await
        .expect(0)
        .json()
    };
    let first = run().await;
    assert_eq!(first["output"]["v"], 1, "{first}");
    assert_eq!(first["version"], "1.0.0");

    std::fs::write(greet.join("main.js"), GREET.replace("v: 1", "v: 2")).expect("edit");
    dev.wait_printed("deployed @t/greet@1.0.1-dev.1", 30).await;
    let second = run().await;
    assert_eq!(
        second["output"]["v"], 2,
        "the next run runs the edit: {second}"
    );
    assert_eq!(second["version"], "1.0.1-dev.1");

    // A broken edit is refused by the server (its 422 printed); the last version serves.
    std::fs::write(
        greet.join("main.js"),
        "export default async (input) => {\n  return { v: ;\n};\n",
    )
    .expect("edit");
    let refused = dev.wait_printed("not deployed", 30).await;
    assert!(refused.contains("422"), "{refused}");
    assert!(
        refused.contains("@t/greet@1.0.1-dev.1 keeps serving"),
        "{refused}"
    );
    let third = run().await;
    assert_eq!(third["output"]["v"], 2, "{third}");

    // Fixed: the next dev version.
    std::fs::write(greet.join("main.js"), GREET.replace("v: 1", "v: 3")).expect("edit");
    dev.wait_printed("deployed @t/greet@1.0.1-dev.2", 30).await;
    let fourth = run().await;
    assert_eq!(fourth["output"]["v"], 3, "{fourth}");
    assert_eq!(fourth["version"], "1.0.1-dev.2");
    // An edit of another agent redeploys that one only.
    let slow = dev.agents.join("slow");
    std::fs::write(slow.join("main.js"), SLOW.replace("\"one\"", "\"uno\"")).expect("edit");
    dev.wait_printed("deployed @t/slow@1.0.1-dev.1", 30).await;
    assert!(dev.printed("deployed @t/greet@1.0.1-dev.3").is_none());
}
