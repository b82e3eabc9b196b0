//! `atoll run`, `atoll runs list|get|cancel` and `atoll signal`.

use std::io::Read;

use reqwest::Method;
use serde_json::{json, Value};

use super::error::{CliError, CliResult, Exit};
use super::http::{seg, Api};
use super::logs::{print_events, stream_events, StreamEnd};
use super::render;
use crate::status::RunStatus;

/// Most runs asked of one page (the API's own ceiling is 200).
const PAGE: usize = 50;
/// `?wait=` of `run --wait`: how long the server may hold its first answer.
const FIRST_WAIT_SECS: u64 = 5;

/// `@scope/name` or `scope/name` as its two path segments.
pub fn agent_path(agent: &str) -> CliResult<(String, String)> {
    let bare = agent.strip_prefix('@').unwrap_or(agent);
    match bare.split_once('/') {
        Some((scope, name)) if !scope.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((scope.to_owned(), name.to_owned()))
        }
        _ => Err(CliError::usage(format!(
            "{agent:?} is not an agent name: write @scope/name (or scope/name)"
        ))),
    }
}

/// A JSON argument: the JSON itself, `@path` for a file's content, `-` for stdin.
pub fn json_arg(flag: &str, raw: &str) -> CliResult<Value> {
    let (text, from) = if raw == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::usage(format!("{flag} -: cannot read stdin: {e}")))?;
        (text, "stdin".to_owned())
    } else if let Some(path) = raw.strip_prefix('@') {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("{flag} @{path}: cannot read it: {e}")))?;
        (text, path.to_owned())
    } else {
        (raw.to_owned(), "the command line".to_owned())
    };
    serde_json::from_str(&text).map_err(|e| {
        CliError::usage(format!("{flag}: {from} does not hold JSON: {e}")).hint(format!(
            "quote it for the shell, e.g. {flag} '{{\"name\":\"Ada\"}}', or give @file.json"
        ))
    })
}

fn status_of(run: &Value) -> Option<RunStatus> {
    run["status"].as_str().and_then(|s| s.parse().ok())
}

/// The exit code an ended run means.
pub fn outcome_exit(run: &Value) -> Exit {
    match status_of(run) {
        Some(RunStatus::Succeeded) => Exit::Success,
        _ => Exit::RunFailed,
    }
}

pub struct RunRequest {
    pub agent: String,
    pub input: Value,
    pub version: Option<String>,
    pub end_user: Option<String>,
    pub wait: bool,
    pub follow: bool,
}

/// `atoll run`.
pub async fn run(api: &Api, req: RunRequest, json: bool) -> CliResult<Exit> {
    let (scope, name) = agent_path(&req.agent)?;
    let mut body = json!({ "input": req.input });
    if let Some(v) = &req.version {
        body["version"] = json!(v);
    }
    if let Some(u) = &req.end_user {
        body["end_user"] = json!(u);
    }
    // `--follow` starts at once and shows the events; `--wait` lets the server hold the
    // answer a few seconds (a quick run is one round trip), then follows the events until
    // the end, so that a run parked on a signal is reported at once.
    let query = if req.wait && !req.follow {
        vec![("wait", FIRST_WAIT_SECS.to_string())]
    } else {
        Vec::new()
    };
    let path = format!("/v1/agents/{}/{}/runs", seg(&scope), seg(&name));
    let started = api
        .call(Method::POST, &path, &query, Some(&body))
        .await
        .map_err(|e| not_found_agent(e, &req.agent, req.version.as_deref()))?
        .body;
    let id = started["id"].as_str().unwrap_or_default().to_owned();
    if req.follow {
        if !json {
            eprintln!("atoll: started {id}");
        }
        let end = print_events(api, &id, false, json).await?;
        let run = get_run(api, &id).await?;
        if json {
            println!("{run}");
        } else {
            if let StreamEnd::Ended(_) = end {
                println!();
            }
            println!("{}", render::run_outcome(&run));
        }
        return Ok(outcome_exit(&run));
    }
    if !req.wait {
        if json {
            println!("{started}");
        } else {
            println!("{id}");
            eprintln!(
                "atoll: started {id} ({}@{}, {}); `atoll logs {id} --follow` shows its events",
                started["agent"].as_str().unwrap_or(""),
                started["version"].as_str().unwrap_or(""),
                started["status"].as_str().unwrap_or("")
            );
        }
        return Ok(Exit::Success);
    }
    let run = wait_until_ended(api, started).await?;
    if json {
        println!("{run}");
    } else {
        println!("{}", render::run_outcome(&run));
    }
    Ok(outcome_exit(&run))
}

/// Waits for a run to end by following its events (no polling; a dropped connection is
/// resumed); says on stderr what a parked run waits for. The run's final record.
async fn wait_until_ended(api: &Api, run: Value) -> CliResult<Value> {
    if status_of(&run).is_some_and(RunStatus::is_final) {
        return Ok(run);
    }
    let id = run["id"].as_str().unwrap_or_default().to_owned();
    stream_events(api, &id, false, |event| {
        if event.event != "waiting" {
            return;
        }
        match event.data["signal"].as_str() {
            Some(signal) => eprintln!(
                "atoll: {id} waits for the signal {signal:?}: send it with `atoll signal {id} {signal} --payload JSON` (still waiting; Ctrl-C stops waiting, not the run)"
            ),
            None => eprintln!("atoll: {id} is asleep (ctx.sleep); still waiting"),
        }
    })
    .await?;
    get_run(api, &id).await
}

async fn get_run(api: &Api, id: &str) -> CliResult<Value> {
    api.get(&format!("/v1/runs/{}", seg(id)), &api.app_query())
        .await
        .map(|a| a.body)
        .map_err(|e| not_found_run(e, id))
}

fn not_found_run(e: CliError, id: &str) -> CliError {
    if e.is_status(404) {
        e.hint(format!(
            "no run {id} is visible to this key: `atoll runs list` shows this app's runs"
        ))
    } else {
        e
    }
}

fn not_found_agent(e: CliError, agent: &str, version: Option<&str>) -> CliError {
    if !e.is_status(404) {
        return e;
    }
    let what = version.map_or(agent.to_owned(), |v| format!("{agent}@{v}"));
    e.hint(format!(
        "{what} is not deployed in this app: `atoll deploy DIR` uploads it"
    ))
}

/// `atoll runs list`: follows `next_cursor` until `limit` runs (or the last page).
pub async fn list(
    api: &Api,
    agent: Option<&str>,
    status: Option<&str>,
    limit: usize,
    json: bool,
) -> CliResult<Exit> {
    let mut query = api.app_query();
    if let Some(agent) = agent {
        let (scope, name) = agent_path(agent)?;
        query.push(("agent", format!("@{scope}/{name}")));
    }
    if let Some(status) = status {
        status
            .parse::<RunStatus>()
            .map_err(|e| CliError::usage(format!("--status: {e}")))?;
        query.push(("status", status.to_owned()));
    }
    let mut runs: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = query.clone();
        q.push(("limit", (limit - runs.len()).min(PAGE).to_string()));
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let page = api.get("/v1/runs", &q).await?.body;
        if let Some(data) = page["data"].as_array() {
            runs.extend(data.iter().cloned());
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() || runs.len() >= limit {
            break;
        }
    }
    runs.truncate(limit);
    if json {
        println!("{}", json!({ "data": runs, "next_cursor": cursor }));
    } else if runs.is_empty() {
        eprintln!("atoll: no runs");
    } else {
        println!("{}", render::run_table(&runs));
        if cursor.is_some() {
            eprintln!("atoll: more runs exist; --limit shows more");
        }
    }
    Ok(Exit::Success)
}

/// `atoll runs get`.
pub async fn get(api: &Api, id: &str, json: bool) -> CliResult<Exit> {
    let run = get_run(api, id).await?;
    if json {
        println!("{run}");
    } else {
        println!("{}", render::run_record(&run));
    }
    Ok(Exit::Success)
}

/// `atoll runs cancel`: the run as it is after the cancel (a run that had ended already
/// is left as it was, and that is not an error).
pub async fn cancel(api: &Api, id: &str, json: bool) -> CliResult<Exit> {
    let run = api
        .call(
            Method::POST,
            &format!("/v1/runs/{}/cancel", seg(id)),
            &[],
            None,
        )
        .await
        .map_err(|e| not_found_run(e, id))?
        .body;
    if json {
        println!("{run}");
        return Ok(Exit::Success);
    }
    match status_of(&run) {
        Some(RunStatus::Cancelled) => println!("{id} cancelled"),
        Some(s) if s.is_final() => println!("{id} had already ended ({s}); nothing to cancel"),
        Some(s) => println!("{id} is being cancelled (still {s})"),
        None => println!("{run}"),
    }
    Ok(Exit::Success)
}

/// `atoll signal`.
pub async fn signal(
    api: &Api,
    id: &str,
    name: &str,
    payload: Value,
    json: bool,
) -> CliResult<Exit> {
    let path = format!("/v1/runs/{}/signals/{}", seg(id), seg(name));
    let run = api
        .call(
            Method::POST,
            &path,
            &[],
            Some(&json!({ "payload": payload })),
        )
        .await
        .map_err(|e| {
            if e.is_status(409) {
                e.hint(format!("`atoll runs get {id}` shows how it ended"))
            } else {
                not_found_run(e, id)
            }
        })?
        .body;
    if json {
        println!("{run}");
    } else {
        println!(
            "signal {name:?} delivered to {id} ({})",
            run["status"].as_str().unwrap_or("")
        );
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_take_both_forms() {
        let ok = |a: &str| agent_path(a).ok();
        assert_eq!(ok("@acme/triage"), Some(("acme".into(), "triage".into())));
        assert_eq!(ok("acme/triage"), Some(("acme".into(), "triage".into())));
        assert!(ok("triage").is_none());
        assert!(ok("@acme/").is_none());
        assert!(ok("a/b/c").is_none());
    }

    #[test]
    fn json_arguments_come_inline_or_from_files() {
        assert_eq!(json_arg("--input", "{\"a\":1}").ok(), Some(json!({"a":1})));
        let e = json_arg("--input", "{a}").err().map(|e| e.exit);
        assert_eq!(e, Some(Exit::Usage));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.json");
        std::fs::write(&path, "[1,2]").expect("write");
        let arg = format!("@{}", path.display());
        assert_eq!(json_arg("--input", &arg).ok(), Some(json!([1, 2])));
        assert!(json_arg("--input", "@/nonexistent/x.json").is_err());
    }
}
