//! Upload-time parsing of a package's modules: each is compiled and linked in a fresh
//! runtime with the package's own loader (JSON modules and import rules as at run time),
//! never evaluated. Runs inside a sandbox process: the engine parses tenant code there,
//! never in the server.

use std::rc::Rc;
use std::sync::Arc;

use deno_core::{JsRuntime, ModuleSpecifier, RuntimeOptions};

use super::loader::{PackageLoader, PACKAGE_URL_PREFIX};
use crate::package::AgentPackage;

/// Heap a check may use: parsing a package of at most 5 MiB needs far less.
const CHECK_HEAP_BYTES: usize = 64 << 20;

/// The first module of `package` that does not compile or link, with the engine's
/// message (it names the file, line and column): `Ok(None)` when all do; `Err` when the
/// check itself could not run.
pub fn check_modules(package: Arc<AgentPackage>) -> Result<Option<String>, String> {
    let modules: Vec<(String, ModuleSpecifier)> = package
        .files
        .keys()
        .filter(|path| path.ends_with(".js") || path.ends_with(".mjs"))
        .filter_map(|path| {
            ModuleSpecifier::parse(&PackageLoader::module_url(path))
                .ok()
                .map(|url| (path.clone(), url))
        })
        .collect();
    // No I/O driver: loading modules from the package needs none (and no descriptors).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("no runtime for the check: {e}"))?;
    let loader = Rc::new(PackageLoader::for_check());
    loader.assign(package);
    let mut js = JsRuntime::try_new(RuntimeOptions {
        module_loader: Some(loader),
        create_params: Some(
            deno_core::v8::CreateParams::default().heap_limits(0, CHECK_HEAP_BYTES),
        ),
        ..RuntimeOptions::default()
    })
    .map_err(|e| format!("no engine for the check: {e}"))?;
    // A package that makes the parser outgrow the heap is stopped, not the process.
    let handle = js.v8_isolate().thread_safe_handle();
    let raised = std::cell::Cell::new(false);
    js.add_near_heap_limit_callback(move |current, _initial| {
        handle.terminate_execution();
        super::isolate::near_heap_limit_answer(current, raised.replace(true))
    });
    for (path, url) in &modules {
        if let Err(e) = runtime.block_on(js.load_side_es_module(url)) {
            // The engine's message names the file, line and column as a package URL.
            let message = e.to_string().replace(PACKAGE_URL_PREFIX, "");
            return Ok(Some(format!("loading {path}: {message}")));
        }
    }
    Ok(None)
}
