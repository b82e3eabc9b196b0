//! `atoll logs`: history, `--follow`, and resuming after a dropped connection.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::{unix_ms, until_status, Dev};

/// A loopback proxy to `upstream` that cuts its first connection right after forwarding
/// the server's bytes holding `cut_after`; the request heads it saw.
async fn cutting_proxy(
    upstream: String,
    cut_after: &'static str,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = heads.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((client, _)) = listener.accept().await {
            let first = n == 0;
            n += 1;
            let upstream = upstream.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut logged = false;
                    while let Ok(k) = cr.read(&mut buf).await {
                        if k == 0 || sw.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                        if !logged {
                            logged = true;
                            seen.lock()
                                .expect("lock")
                                .push(String::from_utf8_lossy(&buf[..k]).into_owned());
                        }
                    }
                });
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while let Ok(k) = sr.read(&mut buf).await {
                    if k == 0 || cw.write_all(&buf[..k]).await.is_err() {
                        break;
                    }
                    got.extend_from_slice(&buf[..k]);
                    if first && String::from_utf8_lossy(&got).contains(cut_after) {
                        break;
                    }
                }
                up.abort();
                // Dropping both halves closes the client's connection mid-stream.
            });
        }
    });
    (format!("http://{addr}"), heads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_show_history_follow_a_running_run_and_resume_after_a_drop() {
    let dev = Dev::start(&[]).await;
    // Follow a run while it runs (long enough for a loaded machine to start the CLI).
    let out = dev
        .run(&["run", "@t/slow", "--input", "{\"ms\":6000}"])
        .await
        .expect(0);
    let run = out.stdout.trim().to_owned();
    let mut follow = dev
        .cli(&["logs", &run, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logs");
    let mut lines = tokio::io::BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let started = Instant::now();
    let mut one_at = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("log   one") && one_at.is_none() {
            one_at = Some(unix_ms());
        }
        seen.push(line);
    }
    // The first log line came while the run was still sleeping, not as history.
    let (_, record) = dev
        .api(reqwest::Method::GET, &format!("/v1/runs/{run}"), None)
        .await;
    let finished = record["finished_at"].as_i64().expect("finished");
    assert!(
        one_at.is_some_and(|at| at < finished),
        "{one_at:?} < {finished}"
    );
    let status = follow.wait().await.expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(30));
    let text = seen.join("\n");
    for expected in [
        "status   running",
        "log      log   one",
        "log      warn  two",
        "emit     done {\"ok\":true}",
        "output   {\"slept\":true}",
        "end      succeeded",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    assert!(seen.last().is_some_and(|l| l.starts_with("end")), "{text}");

    // The history of the ended run: the same events, as JSON lines with increasing ids.
    let out = dev.run(&["logs", &run]).await.expect(0);
    assert_eq!(
        out.stdout.trim(),
        text.trim(),
        "history = what was followed"
    );
    let out = dev.run(&["logs", &run, "--json"]).await.expect(0);
    let events: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON per line"))
        .collect();
    assert_eq!(
        events.last().map(|e| e["event"].clone()),
        Some(json!("end"))
    );
    let ids: Vec<i64> = events.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // Without --follow, a run still going shows what is stored and stops, saying so.
    let out = dev
        .run(&["run", "@t/slow", "--input", "{\"ms\":4000}"])
        .await
        .expect(0);
    let running = out.stdout.trim().to_owned();
    until_status(&dev, &running, "running").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = dev.run(&["logs", &running]).await.expect(0);
    assert!(out.stdout.contains("log      log   one"), "{}", out.stdout);
    assert!(!out.stdout.contains("end "), "{}", out.stdout);
    assert!(out.stderr.contains("has not ended"), "{}", out.stderr);

    // A connection cut mid-stream is resumed with Last-Event-ID: nothing lost or repeated.
    let (proxy, heads) = cutting_proxy(
        dev.url.trim_start_matches("http://").to_owned(),
        "\"message\":\"one\"",
    )
    .await;
    let out = dev.run(&["run", "@t/slow"]).await.expect(0);
    let cut = out.stdout.trim().to_owned();
    let out = dev
        .run(&[
            "logs",
            &cut,
            "--follow",
            "--json",
            "--url",
            &proxy,
            "--api-key",
            &dev.app_key,
        ])
        .await
        .expect(0);
    assert!(out.stderr.contains("connection lost"), "{}", out.stderr);
    let events: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON per line"))
        .collect();
    let ids: Vec<i64> = events.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "no event twice: {ids:?}"
    );
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "log").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"end"), "{kinds:?}");
    let heads = heads.lock().expect("lock").clone();
    assert!(heads.len() >= 2, "it reconnected: {heads:?}");
    let resumed = heads[1].to_ascii_lowercase();
    assert!(resumed.contains("last-event-id: "), "{resumed}");
    let last_before: i64 = events
        .iter()
        .find(|e| e["data"]["message"] == "one")
        .and_then(|e| e["id"].as_i64())
        .expect("the log before the cut");
    assert!(
        resumed.contains(&format!("last-event-id: {last_before}")),
        "{resumed}"
    );
}
