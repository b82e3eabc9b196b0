//! The client verbs of the `atoll` binary (`login`, `init`, `deploy`, `run`, `runs`,
//! `logs`, `signal`, and `dev --watch`) driven as a user drives them, against a real
//! `atoll dev` child process on loopback. Each test has its own server, data directory
//! and config directory (`ATOLL_CONFIG_DIR`), so no profile of the machine is touched.

mod login;
mod logs;
mod runs;
mod scaffold;
mod signal;
mod watch;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

pub(super) const BIN: &str = env!("CARGO_BIN_EXE_atoll");

/// Agents the tests deploy through `atoll dev --agents`.
pub(super) const GREET: &str = r#"export default async (input, ctx) => {
  console.log(`hi ${input.name ?? "you"}`);
  return { v: 1, name: input.name ?? null };
};
"#;
pub(super) const SLOW: &str = r#"export default async (input, ctx) => {
  console.log("one");
  await new Promise((r) => setTimeout(r, input.ms ?? 2500));
  console.warn("two");
  ctx.emit("done", { ok: true });
  return { slept: true };
};
"#;
pub(super) const APPROVE: &str = r#"export default async (input, ctx) => {
  console.log("asking");
  const answer = await ctx.waitFor("approve");
  return { ok: answer.ok === true };
};
"#;
pub(super) const FAIL: &str = r#"export default async () => { throw new Error("on purpose"); };
"#;

pub(super) fn write_agent(root: &Path, short: &str, version: &str, main: &str) -> PathBuf {
    let dir = root.join(short);
    std::fs::create_dir_all(&dir).expect("agent dir");
    let manifest = json!({ "name": format!("@t/{short}"), "version": version });
    std::fs::write(dir.join("agent.json"), manifest.to_string()).expect("agent.json");
    std::fs::write(dir.join("main.js"), main).expect("main.js");
    dir
}

/// A running `atoll dev` with its keys, and what it has printed so far.
pub(super) struct Dev {
    pub(super) child: std::process::Child,
    pub(super) url: String,
    pub(super) app_key: String,
    pub(super) org_key: String,
    /// `ATOLL_CONFIG_DIR` of the CLI calls (where `atoll dev` saved its profiles).
    pub(super) config: PathBuf,
    pub(super) agents: PathBuf,
    pub(super) stdout: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Dev {
    /// `atoll dev` on a free port with the test agents (greet, slow, approve, fail).
    pub(super) async fn start(extra: &[&str]) -> Dev {
        let dir = tempfile::tempdir().expect("tempdir");
        let agents = dir.path().join("agents");
        write_agent(&agents, "greet", "1.0.0", GREET);
        write_agent(&agents, "slow", "1.0.0", SLOW);
        write_agent(&agents, "approve", "1.0.0", APPROVE);
        write_agent(&agents, "fail", "1.0.0", FAIL);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = dir.path().join("config");
        let mut child = std::process::Command::new(BIN)
            .arg("dev")
            .arg("--agents")
            .arg(&agents)
            .args(extra)
            .env("ATOLL_LISTEN", format!("127.0.0.1:{port}"))
            .env("ATOLL_DATA_DIR", dir.path().join("data"))
            .env("ATOLL_CONFIG_DIR", &config)
            .env("ATOLL_LOG", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start atoll dev");
        let out = child.stdout.take().expect("stdout");
        let stdout: Arc<Mutex<Vec<String>>> = Arc::default();
        let lines = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().expect("lock").push(line);
            }
        });
        let mut dev = Dev {
            child,
            url: format!("http://127.0.0.1:{port}"),
            app_key: String::new(),
            org_key: String::new(),
            config,
            agents,
            stdout,
            _dir: dir,
        };
        let key = |label: &str| {
            dev.printed(label)
                .and_then(|l| l.trim().strip_prefix(label).map(|k| k.trim().to_owned()))
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        // The profiles line comes after the keys: then the server is up and saved them.
        while key("profiles:").is_none() {
            assert!(Instant::now() < deadline, "atoll dev did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let app_key = key("app key:").expect("app key");
        let org_key = key("org key:").expect("org key");
        dev.app_key = app_key;
        dev.org_key = org_key;
        dev
    }

    /// The first line printed so far that contains `needle`.
    pub(super) fn printed(&self, needle: &str) -> Option<String> {
        self.stdout
            .lock()
            .expect("lock")
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }

    pub(super) async fn wait_printed(&self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(line) = self.printed(needle) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "atoll dev never printed {needle:?}; it printed:\n{}",
                self.stdout.lock().expect("lock").join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `atoll ARGS` with the dev server's config directory and no ATOLL_* overrides.
    pub(super) fn cli(&self, args: &[&str]) -> tokio::process::Command {
        cli_in(&self.config, args)
    }

    pub(super) async fn run(&self, args: &[&str]) -> Done {
        done(self.cli(args).output().await.expect("atoll runs"))
    }

    /// One API call as the app, outside the CLI.
    pub(super) async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.app_key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("api call");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

pub(super) fn cli_in(config: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env("ATOLL_CONFIG_DIR", config)
        .env_remove("ATOLL_URL")
        .env_remove("ATOLL_API_KEY")
        .env_remove("ATOLL_PROFILE")
        .env_remove("ATOLL_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// A finished CLI call.
pub(super) struct Done {
    pub(super) code: i32,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Done {
    pub(super) fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", self.stdout))
    }

    pub(super) fn expect(self, code: i32) -> Done {
        assert_eq!(
            self.code, code,
            "exit code {}, expected {code}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

pub(super) fn done(output: Output) -> Done {
    Done {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the command with `input` on stdin.
pub(super) async fn with_stdin(mut command: tokio::process::Command, input: &str) -> Done {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("write stdin");
    drop(stdin);
    done(child.wait_with_output().await.expect("wait"))
}

/// Polls `runs get` until the run has this status; its record.
pub(super) async fn until_status(dev: &Dev, run: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = dev
            .run(&["runs", "get", run, "--json"])
            .await
            .expect(0)
            .json();
        if got["status"] == status {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{run} never became {status}: {got}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(super) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}
