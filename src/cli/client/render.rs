//! Human output: run events one line each (LLM deltas condensed into one growing line),
//! run records as a short table, run lists as columns. `--json` bypasses all of it.

use std::io::Write;

use serde_json::Value;

use super::logs::SseEvent;

/// What an agent wrote (logs, emits, model output, tool results) reaches a terminal:
/// control characters other than newline and tab are shown escaped, never sent, so no
/// escape sequence (colours, cursor moves, OSC 52 clipboard writes) comes through.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

pub fn event_line(event: &SseEvent) -> String {
    printable(&event_line_raw(event))
}

pub fn run_record(run: &Value) -> String {
    printable(&run_record_raw(run))
}

pub fn run_outcome(run: &Value) -> String {
    printable(&run_outcome_raw(run))
}

pub fn run_table(runs: &[Value]) -> String {
    printable(&run_table_raw(runs))
}

/// `code: message`, and the stack (indented) when there is one.
pub fn error_text(error: &Value) -> String {
    printable(&error_text_raw(error))
}

/// Longest JSON value shown inline before it is cut.
const INLINE: usize = 240;

/// Compact JSON, cut at `max` characters.
pub fn compact(v: &Value, max: usize) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    cut(&text, max)
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max).collect();
    format!("{head}… ({} more characters)", text.chars().count() - max)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn error_text_raw(error: &Value) -> String {
    let code = str_of(error, "code");
    let message = str_of(error, "message");
    let mut out = match (code.is_empty(), message.is_empty()) {
        (false, false) => format!("{code}: {message}"),
        (false, true) => code.to_owned(),
        (true, false) => message.to_owned(),
        (true, true) => compact(error, INLINE),
    };
    if let Some(stack) = error.get("stack").and_then(Value::as_str) {
        for line in stack.lines().filter(|l| !l.trim().is_empty()) {
            out.push_str("\n    ");
            out.push_str(line.trim());
        }
    }
    out
}

/// Milliseconds as a short duration.
pub fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 120_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{:.1} min", ms / 60_000.0)
    }
}

/// Unix milliseconds as UTC time.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Prints events for a person. Consecutive `llm.delta`s of one model share a line.
#[derive(Default)]
pub struct EventPrinter {
    /// The model whose deltas are being written on the current line.
    delta_line: Option<String>,
}

impl EventPrinter {
    pub fn print(&mut self, event: &SseEvent) {
        let mut out = std::io::stdout().lock();
        if event.event == "llm.delta" {
            let model = str_of(&event.data, "model").to_owned();
            if self.delta_line.as_deref() != Some(model.as_str()) {
                if self.delta_line.is_some() {
                    let _ = writeln!(out);
                }
                let _ = write!(out, "{:<9}{}: ", "llm", printable(&model));
                self.delta_line = Some(model);
            }
            let _ = write!(out, "{}", printable(str_of(&event.data, "delta")));
            if let Some(dropped) = event.data.get("dropped") {
                let _ = write!(out, " [{dropped} deltas dropped]");
            }
            let _ = out.flush();
            return;
        }
        if self.delta_line.take().is_some() {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "{}", event_line(event));
        let _ = out.flush();
    }

    /// Ends a line of deltas left open.
    pub fn finish(&mut self) {
        if self.delta_line.take().is_some() {
            println!();
        }
    }
}

/// One event as one line (the label padded so that what follows lines up).
fn event_line_raw(event: &SseEvent) -> String {
    let d = &event.data;
    let text = match event.event.as_str() {
        "status" => str_of(d, "status").to_owned(),
        "log" => format!("{:<5} {}", str_of(d, "level"), str_of(d, "message")),
        "emit" => format!(
            "{} {}",
            str_of(d, "type"),
            compact(d.get("data").unwrap_or(&Value::Null), INLINE)
        ),
        "tool.call" => format!(
            "→ {} {}",
            str_of(d, "name"),
            compact(d.get("args").unwrap_or(&Value::Null), INLINE)
        ),
        "tool.result" => match d.get("ok").and_then(Value::as_bool) {
            Some(true) => format!(
                "← {} {}",
                str_of(d, "name"),
                compact(d.get("result").unwrap_or(&Value::Null), INLINE)
            ),
            _ => format!(
                "← {} failed: {}",
                str_of(d, "name"),
                error_text(d.get("error").unwrap_or(&Value::Null))
            ),
        },
        "fetch" => {
            let target = format!(
                "{} {}{}",
                str_of(d, "method"),
                str_of(d, "host"),
                str_of(d, "path")
            );
            let ms = d.get("ms").and_then(Value::as_f64).unwrap_or(0.0);
            match d.get("status") {
                Some(status) => format!(
                    "{target} → {status} ({} bytes, {})",
                    d.get("bytes").and_then(Value::as_u64).unwrap_or(0),
                    duration(ms)
                ),
                None => format!("{target} → {} ({})", compact(&d["error"], 80), duration(ms)),
            }
        }
        "waiting" => {
            let wake = d.get("wake_at").and_then(Value::as_i64).map(time);
            match (d.get("signal").and_then(Value::as_str), wake) {
                (Some(signal), Some(at)) => format!("for signal {signal:?} (until {at})"),
                (Some(signal), None) => format!("for signal {signal:?}"),
                (None, Some(at)) => format!("asleep until {at}"),
                (None, None) => "parked".to_owned(),
            }
        }
        "resumed" => "replaying its journal, then going on".to_owned(),
        "output" => compact(d.get("output").unwrap_or(d), INLINE),
        "error" => error_text(d),
        "log_truncated" => {
            let message = str_of(d, "message");
            if message.is_empty() {
                compact(d, INLINE)
            } else {
                message.to_owned()
            }
        }
        "end" => str_of(d, "status").to_owned(),
        _ => compact(d, INLINE),
    };
    let label = match event.event.as_str() {
        "tool.call" | "tool.result" => "tool",
        "log_truncated" => "truncated",
        other => other,
    };
    format!("{label:<9}{text}")
}

/// A run record as a short table (`runs get`, and after `run --wait`).
fn run_record_raw(run: &Value) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("id", str_of(run, "id").to_owned()),
        (
            "agent",
            format!("{}@{}", str_of(run, "agent"), str_of(run, "version")),
        ),
        ("status", str_of(run, "status").to_owned()),
    ];
    if let Some(user) = run.get("end_user").and_then(Value::as_str) {
        rows.push(("end user", user.to_owned()));
    }
    rows.push(("trigger", str_of(run, "trigger").to_owned()));
    for (label, key) in [
        ("created", "created_at"),
        ("started", "started_at"),
        ("finished", "finished_at"),
    ] {
        if let Some(ms) = run.get(key).and_then(Value::as_i64) {
            rows.push((label, time(ms)));
        }
    }
    if let Some(wait) = run.get("wait").filter(|w| w.is_object()) {
        let line = match (wait["signal"].as_str(), wait["wake_at"].as_i64()) {
            (Some(s), Some(at)) => format!("signal {s:?} (until {})", time(at)),
            (Some(s), None) => format!("signal {s:?}"),
            (None, Some(at)) => format!("asleep until {}", time(at)),
            (None, None) => "parked".to_owned(),
        };
        rows.push(("waits for", line));
    }
    if let Some(usage) = run.get("usage").filter(|u| u.is_object()) {
        let num = |k: &str| usage.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        rows.push((
            "usage",
            format!(
                "cpu {}, wall {}, heap {:.1} MB, fetches {}, llm tokens {} in / {} out",
                duration(num("cpu_ms")),
                duration(num("wall_ms")),
                num("heap_peak_bytes") / 1e6,
                num("fetches"),
                num("llm_tokens_in"),
                num("llm_tokens_out")
            ),
        ));
    }
    rows.push(("input", compact(&run["input"], INLINE)));
    if let Some(output) = run.get("output").filter(|o| !o.is_null()) {
        rows.push(("output", compact(output, INLINE)));
    }
    if let Some(error) = run.get("error").filter(|e| !e.is_null()) {
        rows.push(("error", error_text(error)));
    }
    rows.iter()
        .map(|(k, v)| format!("{k:<10}{v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The one-line verdict of an ended run, and its output (pretty) or error.
fn run_outcome_raw(run: &Value) -> String {
    let took = match (
        run.get("started_at").and_then(Value::as_i64),
        run.get("finished_at").and_then(Value::as_i64),
    ) {
        (Some(a), Some(b)) => format!(" in {}", duration((b - a).max(0) as f64)),
        _ => String::new(),
    };
    let head = format!(
        "{} {} ({}@{}){took}",
        str_of(run, "id"),
        str_of(run, "status"),
        str_of(run, "agent"),
        str_of(run, "version"),
    );
    match (run.get("output"), run.get("error")) {
        (_, Some(error)) if !error.is_null() => format!("{head}\n{}", error_text(error)),
        (Some(output), _) if !output.is_null() => {
            let pretty = serde_json::to_string_pretty(output).unwrap_or_default();
            format!("{head}\n{pretty}")
        }
        _ => head,
    }
}

/// Runs as aligned columns.
fn run_table_raw(runs: &[Value]) -> String {
    let header = ["ID", "AGENT", "VERSION", "STATUS", "CREATED", "TOOK"];
    let mut rows: Vec<[String; 6]> = vec![header.map(str::to_owned)];
    for run in runs {
        let took = match (run["started_at"].as_i64(), run["finished_at"].as_i64()) {
            (Some(a), Some(b)) => duration((b - a).max(0) as f64),
            _ => "-".to_owned(),
        };
        rows.push([
            str_of(run, "id").to_owned(),
            str_of(run, "agent").to_owned(),
            str_of(run, "version").to_owned(),
            str_of(run, "status").to_owned(),
            run["created_at"].as_i64().map(time).unwrap_or_default(),
            took,
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_text_cannot_send_escape_sequences_to_the_terminal() {
        let hostile = "ok\u{1b}]52;c;cGF5bG9hZA==\u{7}\u{1b}[2Jdone\nnext\tcol\u{9b}";
        let shown = printable(hostile);
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{shown:?}"
        );
        assert!(
            shown.contains("\\u{1b}") && shown.contains("next\tcol"),
            "{shown:?}"
        );
        let line = event_line(&SseEvent {
            id: Some(1),
            event: "log".into(),
            data: serde_json::json!({ "level": "info", "message": hostile }),
        });
        assert!(!line.contains('\u{1b}'), "{line:?}");
    }
    use serde_json::json;

    fn event(kind: &str, data: Value) -> SseEvent {
        SseEvent {
            id: Some(1),
            event: kind.into(),
            data,
        }
    }

    #[test]
    fn events_read_as_one_line_each() {
        let line = |k: &str, d: Value| event_line(&event(k, d));
        assert_eq!(
            line("status", json!({"status":"running"})),
            "status   running"
        );
        assert_eq!(
            line("log", json!({"level":"warn","message":"careful"})),
            "log      warn  careful"
        );
        assert_eq!(
            line("tool.call", json!({"name":"lookup","args":{"id":1}})),
            "tool     → lookup {\"id\":1}"
        );
        assert_eq!(
            line(
                "fetch",
                json!({"method":"GET","host":"api.x","path":"/a","ms":3.2,"status":200,"bytes":5})
            ),
            "fetch    GET api.x/a → 200 (5 bytes, 3 ms)"
        );
        assert_eq!(
            line("error", json!({"code":"agent_error","message":"boom"})),
            "error    agent_error: boom"
        );
        assert_eq!(
            line("waiting", json!({"signal":"approve","wake_at":null})),
            "waiting  for signal \"approve\""
        );
        assert!(compact(&json!("x".repeat(300)), 10).starts_with("xxxxxxxxxx… (290 more"));
    }

    #[test]
    fn runs_read_as_tables() {
        let run = json!({"id":"run_1","agent":"@a/b","version":"1.0.0","status":"failed",
            "created_at":0,"started_at":0,"finished_at":1500,"input":{},
            "error":{"code":"agent_error","message":"boom","stack":"at main.js:1"}});
        let text = run_outcome(&run);
        assert!(
            text.starts_with(
                "run_1 failed (@a/b@1.0.0) in 1.5 s\nagent_error: boom\n    at main.js:1"
            ),
            "{text}"
        );
        let table = run_table(&[run]);
        assert!(
            table
                .lines()
                .nth(1)
                .unwrap_or("")
                .starts_with("run_1  @a/b"),
            "{table}"
        );
    }
}
