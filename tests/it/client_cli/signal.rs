//! `atoll signal`, and `atoll run --wait`/`--follow` of a run that waits for one.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use super::{done, with_stdin, Dev};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_wakes_a_waiting_run_and_run_wait_reports_its_end() {
    let dev = Dev::start(&[]).await;
    let mut waiter = dev
        .cli(&["run", "@t/approve", "--wait", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run --wait");
    // `--wait` says (on stderr) what the parked run waits for and how to send it.
    let mut stderr = tokio::io::BufReader::new(waiter.stderr.take().expect("stderr")).lines();
    let hint = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = stderr.next_line().await {
            if line.contains("waits for the signal") {
                return line;
            }
        }
        String::new()
    })
    .await
    .expect("the hint came");
    let run = hint
        .split_whitespace()
        .find(|w| w.starts_with("run_"))
        .expect("run id in the hint")
        .trim_end_matches(':')
        .to_owned();
    assert!(
        hint.contains(&format!("atoll signal {run} approve")),
        "{hint}"
    );
    // The payload from stdin.
    let out = with_stdin(
        dev.cli(&["signal", &run, "approve", "--payload", "-"]),
        "{\"ok\":true}",
    )
    .await
    .expect(0);
    assert!(out.stdout.contains("delivered"), "{}", out.stdout);
    let output = tokio::time::timeout(Duration::from_secs(60), waiter.wait_with_output())
        .await
        .expect("run --wait ended")
        .expect("output");
    let finished = done(output).expect(0);
    let record = finished.json();
    assert_eq!(record["id"], run.as_str());
    assert_eq!(record["output"]["ok"], true, "{record}");
    // The run has ended: a signal now is the server's 409, exit 3.
    let out = dev
        .run(&["signal", &run, "approve", "--payload", "{\"ok\":false}"])
        .await
        .expect(3);
    assert!(out.stderr.contains("409"), "{}", out.stderr);
    let out = dev
        .run(&["signal", &run, "approve", "--payload", "{bad"])
        .await
        .expect(2);
    assert!(out.stderr.contains("--payload"), "{}", out.stderr);

    // `run --follow` shows the waiting and resumed events, then the outcome.
    let mut follow = dev
        .cli(&["run", "@t/approve", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run --follow");
    let mut lines = tokio::io::BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let waiting = line.starts_with("waiting");
        seen.push(line);
        if waiting {
            let list = dev
                .run(&["runs", "list", "--status", "waiting", "--json"])
                .await
                .expect(0);
            let id = list.json()["data"][0]["id"]
                .as_str()
                .expect("waiting run")
                .to_owned();
            dev.run(&["signal", &id, "approve", "--payload", "{\"ok\":false}"])
                .await
                .expect(0);
        }
    }
    let status = follow.wait().await.expect("wait");
    let text = seen.join("\n");
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("waiting  for signal \"approve\""), "{text}");
    assert!(text.contains("resumed"), "{text}");
    assert!(text.contains("\"ok\": false"), "{text}");
}
