//! Ops behind the web globals runtime-js provides: WHATWG URL parsing (the `url` crate)
//! and a CSPRNG for `crypto`.

use deno_core::{op2, OpState};
use deno_error::JsErrorBox;
use serde_json::json;
use url::Url;

fn parts(url: &Url) -> String {
    json!({
        "href": url.as_str(),
        "origin": url.origin().ascii_serialization(),
        "protocol": url::quirks::protocol(url),
        "username": url::quirks::username(url),
        "password": url::quirks::password(url),
        "host": url::quirks::host(url),
        "hostname": url::quirks::hostname(url),
        "port": url::quirks::port(url),
        "pathname": url::quirks::pathname(url),
        "search": url::quirks::search(url),
        "hash": url::quirks::hash(url),
    })
    .to_string()
}

fn parse(href: &str, base: Option<&str>) -> Result<Url, JsErrorBox> {
    let invalid = || JsErrorBox::type_error(format!("Invalid URL: '{href}'"));
    match base {
        Some(base) => Url::parse(base)
            .map_err(|_| JsErrorBox::type_error(format!("Invalid base URL: '{base}'")))?
            .join(href)
            .map_err(|_| invalid()),
        None => Url::parse(href).map_err(|_| invalid()),
    }
}

/// `null`/`undefined` or a base URL string.
#[derive(serde::Deserialize)]
pub struct MaybeBase(Option<String>);

#[op2]
#[string]
pub fn op_atoll_url_parse(
    #[string] href: String,
    #[serde] base: MaybeBase,
) -> Result<String, JsErrorBox> {
    Ok(parts(&parse(&href, base.0.as_deref())?))
}

#[op2]
#[string]
pub fn op_atoll_url_set(
    #[string] href: String,
    #[string] component: String,
    #[string] value: String,
) -> Result<String, JsErrorBox> {
    let mut url = parse(&href, None)?;
    // WHATWG setters ignore invalid values instead of throwing, except `href`.
    match component.as_str() {
        "href" => url = parse(&value, None)?,
        "protocol" => {
            let _ = url::quirks::set_protocol(&mut url, &value);
        }
        "username" => {
            let _ = url::quirks::set_username(&mut url, &value);
        }
        "password" => {
            let _ = url::quirks::set_password(&mut url, &value);
        }
        "host" => {
            let _ = url::quirks::set_host(&mut url, &value);
        }
        "hostname" => {
            let _ = url::quirks::set_hostname(&mut url, &value);
        }
        "port" => {
            let _ = url::quirks::set_port(&mut url, &value);
        }
        "pathname" => url::quirks::set_pathname(&mut url, &value),
        "search" => url::quirks::set_search(&mut url, &value),
        "hash" => url::quirks::set_hash(&mut url, &value),
        other => {
            return Err(JsErrorBox::type_error(format!(
                "unknown URL component '{other}'"
            )))
        }
    }
    Ok(parts(&url))
}

/// The run's replayable clock, when it has one (a journaled run in a sandbox process).
fn run_clock(state: &OpState) -> Option<std::sync::Arc<crate::host::RunClock>> {
    state
        .try_borrow::<std::rc::Rc<crate::sandbox::scope::RunScope>>()
        .and_then(|scope| scope.services.clock.clone())
}

/// `crypto.getRandomValues` and `Math.random`: the run's seeded stream when it is
/// journaled (a replay draws the same bytes), the operating system's CSPRNG otherwise.
#[op2(fast)]
pub fn op_atoll_random_fill(
    state: &mut OpState,
    #[buffer] buf: &mut [u8],
) -> Result<(), JsErrorBox> {
    if let Some(clock) = run_clock(state) {
        clock.fill(buf);
        return Ok(());
    }
    getrandom::getrandom(buf).map_err(|e| JsErrorBox::generic(format!("no randomness: {e}")))
}

/// `Date.now()` of a journaled run: the time of its last host answer (NaN: use the real
/// clock).
#[op2(fast)]
pub fn op_atoll_now(state: &mut OpState) -> f64 {
    run_clock(state).map_or(f64::NAN, |clock| clock.now_ms() as f64)
}

/// `performance.now()` of a journaled run: ms since its journaled start (NaN: real).
#[op2(fast)]
pub fn op_atoll_elapsed(state: &mut OpState) -> f64 {
    run_clock(state).map_or(f64::NAN, |clock| (clock.now_ms() - clock.start_ms()) as f64)
}
