//! A real `atoll serve` process for the tests that kill one: started on a data
//! directory with a few settings, and reached with plain HTTP.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `atoll serve` on embedded storage in `data`, listening on `port`, with `env` set;
/// returns once it answers `/healthz`.
pub async fn serve(data: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_atoll"));
    command
        .arg("serve")
        .env("ATOLL_LISTEN", format!("127.0.0.1:{port}"))
        .env("ATOLL_DATA_DIR", data)
        .env("ATOLL_ALLOW_NET", "127.0.0.1/32")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().expect("start atoll serve");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// One API call (no body for `Value::Null`) that must succeed; its JSON answer.
pub async fn call(
    http: &reqwest::Client,
    method: Method,
    url: String,
    key: &str,
    body: Value,
) -> Value {
    let mut request = http.request(method, url).bearer_auth(key);
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("json")
}

/// Sends `signal` to the process.
pub fn kill(child: &mut Child, signal: i32) {
    // SAFETY: kill(2) on a child this test started.
    unsafe { libc::kill(child.id() as i32, signal) };
    child.wait().expect("reaped");
}
