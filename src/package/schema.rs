//! The manifest's `input`/`output` JSON Schemas: compiled once at load, then used to check
//! each run's input and output with errors short enough for an API response.

use std::sync::Arc;

use serde_json::Value;

use super::{PackageError, PackageErrorKind, MANIFEST_FILE};

/// How many schema errors are listed before "and N more".
const MAX_LISTED: usize = 10;
/// Error messages quote the offending value; a huge value must not flood the response.
const MAX_MESSAGE_CHARS: usize = 200;

/// Compiles `input` or `output` as JSON Schema 2020-12. Without the crate's resolver
/// features, a remote `$ref` fails here instead of fetching at upload.
pub(crate) fn compile(
    which: &str,
    schema: Option<&Value>,
) -> Result<Option<Arc<jsonschema::Validator>>, PackageError> {
    let Some(schema) = schema else {
        return Ok(None);
    };
    match jsonschema::draft202012::options().build(schema) {
        Ok(v) => Ok(Some(Arc::new(v))),
        Err(e) => {
            let at = match e.instance_path().as_str() {
                "" => String::new(),
                p => format!(" at {p}"),
            };
            Err(PackageError::at(
                PackageErrorKind::Manifest,
                MANIFEST_FILE,
                format!(
                    "{which}: not a valid JSON Schema 2020-12{at}: {}",
                    clip(&e.to_string())
                ),
            ))
        }
    }
}

/// Ok when there is no schema or `v` matches it; otherwise "path: message; ..." with JSON
/// pointers, `(root)` for the value itself.
pub(crate) fn check(schema: Option<&jsonschema::Validator>, v: &Value) -> Result<(), String> {
    let Some(schema) = schema else {
        return Ok(());
    };
    let errors: Vec<String> = schema
        .iter_errors(v)
        .map(|e| {
            let path = match e.instance_path().as_str() {
                "" => "(root)".to_owned(),
                p => p.to_owned(),
            };
            format!("{path}: {}", clip(&e.to_string()))
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    let mut out = errors
        .iter()
        .take(MAX_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > MAX_LISTED {
        out.push_str(&format!("; and {} more", errors.len() - MAX_LISTED));
    }
    Err(out)
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Checks `v` against a schema given as JSON (a wait's, or a signal's): compiled, then
/// checked, with the same short errors.
pub fn check_value(schema: &Value, v: &Value) -> Result<(), String> {
    let compiled = compile("schema", Some(schema)).map_err(|e| e.to_string())?;
    check(compiled.as_deref(), v)
}
