//! `atoll login`: asks for what is missing (URL, key), checks the key with a cheap
//! authenticated read, and saves both as a profile.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::Value;

use super::error::{CliError, CliResult, Exit};
use super::http::Api;
use super::profile::{self, Connection, Profile, DEFAULT_URL};

/// A line from stdin after a prompt on stderr; `secret` turns the terminal's echo off.
fn ask(prompt: &str, secret: bool) -> CliResult<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let echo = (secret && tty).then(EchoOff::new).flatten();
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if echo.is_some() {
        eprintln!();
    }
    drop(echo);
    match read {
        Ok(0) => Err(CliError::usage(format!(
            "{} was not given (stdin ended)",
            prompt.trim_end_matches(": ")
        ))
        .hint("give --url and --api-key, or answer the prompts")),
        Ok(_) => Ok(line.trim().to_owned()),
        Err(e) => Err(CliError::usage(format!("cannot read stdin: {e}"))),
    }
}

/// The terminal's echo turned off until dropped.
struct EchoOff(libc::termios);

impl EchoOff {
    fn new() -> Option<EchoOff> {
        // SAFETY: tcgetattr/tcsetattr on stdin with a termios they fill in; a failure
        // (not a terminal) leaves echo as it was.
        unsafe {
            let mut term: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut term) != 0 {
                return None;
            }
            let saved = term;
            term.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &term) != 0 {
                return None;
            }
            Some(EchoOff(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.0);
        }
    }
}

/// `atoll login`.
pub async fn login(
    url: Option<String>,
    api_key: Option<String>,
    app_id: Option<String>,
    name: &str,
    json: bool,
) -> CliResult<Exit> {
    let url = match url {
        Some(u) => u,
        None => {
            let given = ask(&format!("atoll server URL [{DEFAULT_URL}]: "), false)?;
            if given.is_empty() {
                DEFAULT_URL.to_owned()
            } else {
                given
            }
        }
    };
    let url = profile::normalize_url(&url)?;
    let api_key = match api_key {
        Some(k) => k,
        None => ask("API key: ", true)?,
    };
    let api_key = api_key.trim().to_owned();
    if !api_key.starts_with("atl_") || api_key.len() < 8 {
        return Err(
            CliError::usage("that is not an atoll API key (they start with atl_)").hint(
                "keys are shown once when created (POST /v1/api-keys); `atoll dev` prints its own",
            ),
        );
    }
    let api = Api::new(Connection {
        url: url.clone(),
        api_key: api_key.clone(),
        app_id: app_id.clone(),
    })?;
    // Any key that may act on an org or an app may list apps (an app key sees its own).
    let check = api.get("/v1/apps", &[("limit", "1".to_owned())]).await;
    let (note, answer) = match check {
        Ok(answer) => {
            let app = answer.body["data"][0]["id"].as_str().map(str::to_owned);
            (
                app.map(|id| format!(" (app {id})")).unwrap_or_default(),
                answer.body,
            )
        }
        // The key is real but may not list apps (a narrower scope): it is saved, with why.
        Err(e) if e.is_status(403) => {
            let detail = e
                .problem
                .as_ref()
                .and_then(|p| p["detail"].as_str())
                .unwrap_or("")
                .to_owned();
            eprintln!("atoll: note: the key may not list apps ({detail}); saved anyway");
            (String::new(), e.problem.map_or(Value::Null, |p| *p))
        }
        Err(e) if e.is_status(401) => {
            return Err(CliError {
                hint: Some(
                    "check the key (it is shown once, when it is created; `atoll dev` prints \
                     its own) and run `atoll login` again; nothing was saved"
                        .into(),
                ),
                message: format!("{url} refused this API key: {}", e.message),
                ..e
            })
        }
        Err(e) => return Err(e),
    };
    let path = profile::save_profile(
        name,
        Profile {
            url: url.clone(),
            api_key,
            app_id,
        },
    )?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "profile": name, "url": url, "path": path, "answer": answer })
        );
    } else {
        println!(
            "logged in to {url}{note}; saved as profile `{name}` in {}",
            path.display()
        );
    }
    Ok(Exit::Success)
}
