//! What a client verb can end with: an exit code that means one thing, and an error that
//! says what happened and what to do next.

use std::fmt;
use std::process::ExitCode;

use reqwest::StatusCode;
use serde_json::Value;

/// The exit codes of the client verbs (documented in `docs/cli.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The verb did what it was asked (for `run --wait`/`--follow`: the run succeeded).
    Success = 0,
    /// The run ended other than `succeeded`: failed, timed out or cancelled.
    RunFailed = 1,
    /// The command line (or a file it names, or the profile) is wrong; nothing was sent.
    Usage = 2,
    /// The server (4xx), or the local package check, refused the request.
    Refused = 3,
    /// The server could not be reached, or failed (5xx).
    Unavailable = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// A client verb's failure: one line of what happened, an optional hint of what to do,
/// and for API refusals the problem+json document the server answered.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
    pub problem: Option<Box<Value>>,
}

pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            message: message.into(),
            hint: None,
            problem: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Usage, message)
    }

    pub fn refused(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Refused, message)
    }

    pub fn unavailable(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Unavailable, message)
    }

    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    /// A non-2xx answer: its problem+json `detail` (or body) and a hint chosen by status.
    pub fn from_answer(status: StatusCode, body: Value, request_id: Option<String>) -> CliError {
        let detail = body
            .get("detail")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| body.as_str().map(str::to_owned))
            .filter(|d| !d.trim().is_empty())
            .or_else(|| body.get("title").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        let exit = if status.is_server_error() {
            Exit::Unavailable
        } else {
            Exit::Refused
        };
        let mut message = format!("the server answered {}: {detail}", status.as_u16());
        if status.is_server_error() {
            if let Some(id) = request_id {
                message.push_str(&format!(" (request id {id})"));
            }
        }
        let hint = match status.as_u16() {
            400 if detail.contains("app_id") => Some(
                "with an org key, name the app: --app APP_ID (or save it with `atoll login \
                 --app APP_ID`); `atoll login` with an app key avoids it"
                    .to_owned(),
            ),
            401 => Some(
                "the API key is missing, wrong or revoked: run `atoll login` (or set \
                 ATOLL_API_KEY) with a valid key; `atoll dev` prints and saves its keys"
                    .to_owned(),
            ),
            403 => Some(
                "this key may not do that: deploying and running need an app key with the \
                 agents:write / runs:write scopes (or `*`)"
                    .to_owned(),
            ),
            429 => Some("slow down and try again in a moment".to_owned()),
            s if s >= 500 => Some("the server failed; try again, or look at its log".to_owned()),
            _ => None,
        };
        CliError {
            exit,
            message,
            hint,
            problem: body.is_object().then(|| Box::new(body)),
        }
    }

    /// Whether this is an API answer with this status.
    pub fn is_status(&self, status: u16) -> bool {
        self.problem
            .as_ref()
            .and_then(|p| p.get("status"))
            .and_then(Value::as_u64)
            == Some(u64::from(status))
    }

    /// Prints the error for a person (stderr) and, with `--json`, the server's problem
    /// document for a script (stdout).
    pub fn report(&self, json: bool) {
        if json {
            if let Some(problem) = &self.problem {
                println!("{problem}");
            }
        }
        eprintln!("atoll: {}", self.message);
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_map_to_exit_codes_and_hints() {
        let e = CliError::from_answer(
            StatusCode::UNAUTHORIZED,
            json!({ "status": 401, "detail": "missing key" }),
            None,
        );
        assert_eq!(e.exit, Exit::Refused);
        assert!(e.message.contains("401: missing key"), "{}", e.message);
        assert!(e.hint.as_deref().unwrap_or("").contains("atoll login"));
        assert!(e.is_status(401));
        let e = CliError::from_answer(
            StatusCode::BAD_GATEWAY,
            json!("upstream"),
            Some("req_1".into()),
        );
        assert_eq!(e.exit, Exit::Unavailable);
        assert!(e.message.contains("upstream (request id req_1)"));
        assert!(e.problem.is_none());
    }
}
