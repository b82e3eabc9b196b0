//! The `atoll` extension: every op an isolate can call, and the runtime-js it boots.
//!
//! Ops are grouped by capability. Each one that reaches outside the isolate looks up
//! the run's [`RunScope`] in `OpState` and checks its grant there, on the host side, at
//! every call — whatever the JS in front of it does.

mod capability;
mod fetch;
mod run;
mod wait;
mod web;

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

use deno_core::{Extension, ExtensionFileSource, OpState};
use deno_error::JsErrorBox;

use super::scope::RunScope;

/// runtime-js, in load order. Embedded in the binary.
const RUNTIME_JS: &[(&str, &str)] = &[
    (
        "ext:atoll/01_timers.js",
        include_str!("../../../runtime-js/01_timers.js"),
    ),
    (
        "ext:atoll/02_encoding.js",
        include_str!("../../../runtime-js/02_encoding.js"),
    ),
    (
        "ext:atoll/03_url.js",
        include_str!("../../../runtime-js/03_url.js"),
    ),
    (
        "ext:atoll/04_events.js",
        include_str!("../../../runtime-js/04_events.js"),
    ),
    (
        "ext:atoll/05_crypto.js",
        include_str!("../../../runtime-js/05_crypto.js"),
    ),
    (
        "ext:atoll/06_inspect.js",
        include_str!("../../../runtime-js/06_inspect.js"),
    ),
    (
        "ext:atoll/06_console.js",
        include_str!("../../../runtime-js/06_console.js"),
    ),
    (
        "ext:atoll/07_headers.js",
        include_str!("../../../runtime-js/07_headers.js"),
    ),
    (
        "ext:atoll/07_fetch.js",
        include_str!("../../../runtime-js/07_fetch.js"),
    ),
    (
        "ext:atoll/08_web_globals.js",
        include_str!("../../../runtime-js/08_web_globals.js"),
    ),
    (
        "ext:atoll/09_clock.js",
        include_str!("../../../runtime-js/09_clock.js"),
    ),
    (
        "ext:atoll/10_ctx.js",
        include_str!("../../../runtime-js/10_ctx.js"),
    ),
    (
        "ext:atoll/99_main.js",
        include_str!("../../../runtime-js/99_main.js"),
    ),
];

deno_core::extension!(
    atoll,
    ops = [
        run::op_atoll_register_runner,
        run::op_atoll_run_start,
        run::op_atoll_run_output,
        run::op_atoll_run_error,
        run::op_atoll_state_set,
        run::op_atoll_log,
        run::op_atoll_emit,
        run::op_atoll_cancel_wait,
        capability::op_atoll_memory,
        capability::op_atoll_tool_call,
        capability::op_atoll_llm_chat,
        fetch::op_atoll_fetch,
        fetch::op_atoll_fetch_body,
        wait::op_atoll_wait,
        wait::op_atoll_timer,
        wait::op_atoll_clear_timer,
        web::op_atoll_url_parse,
        web::op_atoll_url_set,
        web::op_atoll_random_fill,
        web::op_atoll_now,
        web::op_atoll_elapsed,
    ],
);

/// The extension; `with_js` is false when the runtime is restored from a startup
/// snapshot that already holds runtime-js.
pub fn extension(with_js: bool) -> Extension {
    let mut ext = atoll::init();
    if !with_js {
        return ext;
    }
    ext.esm_files = Cow::Owned(
        RUNTIME_JS
            .iter()
            .map(|(specifier, source)| {
                ExtensionFileSource::new_computed(specifier, Arc::from(*source))
            })
            .collect(),
    );
    ext.esm_entry_point = Some("ext:atoll/99_main.js");
    ext
}

/// The scope of the run this isolate serves. Bootstrap code runs before any run is
/// assigned, so ops called then are refused.
pub(crate) fn run_scope(state: &OpState) -> Result<Rc<RunScope>, JsErrorBox> {
    state
        .try_borrow::<Rc<RunScope>>()
        .cloned()
        .ok_or_else(|| JsErrorBox::generic("no run is assigned to this isolate"))
}

/// Parses the JSON text of an op call, refusing text over `limit` bytes before parsing:
/// a JSON text can parse into many times its size on the host (nested empty arrays), and
/// a parse is work that termination cannot interrupt.
pub(crate) fn parse_bounded<T: serde::de::DeserializeOwned>(
    json: &str,
    limit: u64,
    what: &str,
) -> Result<T, JsErrorBox> {
    if json.len() as u64 > limit {
        return Err(refusal(
            "request_too_large",
            format!(
                "{what} is {} bytes of JSON; the limit is {limit}",
                json.len()
            ),
        ));
    }
    serde_json::from_str(json)
        .map_err(|e| JsErrorBox::type_error(format!("{what} is not valid: {e}")))
}

/// An error the agent sees as `Error("<code>: <message>")`; runtime-js exposes the code as
/// `err.code`.
pub(crate) fn refusal(code: &str, message: impl std::fmt::Display) -> JsErrorBox {
    JsErrorBox::generic(format!("{code}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::RUNTIME_JS;

    /// deno_core loads extension code as one-byte strings: anything outside ASCII would
    /// be garbled (release builds do not check), so escapes must be used instead.
    #[test]
    fn runtime_js_is_ascii() {
        for (name, source) in RUNTIME_JS {
            if let Some((line, _)) = source.lines().enumerate().find(|(_, l)| !l.is_ascii()) {
                panic!(
                    "{name}:{} has a non-ASCII character; use a \\u escape",
                    line + 1
                );
            }
        }
    }
}
