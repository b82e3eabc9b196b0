//! Upload-time parsing of a package's modules: each is compiled and linked in a fresh
//! runtime with the package's own loader (JSON modules and import rules as at run time),
//! never evaluated. Runs inside a sandbox process: the engine parses tenant code there,
//! never in the server.

use std::rc::Rc;
use std::sync::Arc;

use deno_core::{JsRuntime, ModuleSpecifier, RuntimeOptions};

use super::loader::{PackageLoader, PACKAGE_URL_PREFIX};
use crate::package::AgentPackage;

/// The first module of `package` that does not compile or link, with the engine's
/// message (it names the file, line and column); None when all do.
pub fn check_modules(package: Arc<AgentPackage>) -> Option<String> {
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
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Some(format!("the package could not be checked: {e}")),
    };
    let loader = Rc::new(PackageLoader::default());
    loader.assign(package);
    let mut js = JsRuntime::new(RuntimeOptions {
        module_loader: Some(loader),
        ..RuntimeOptions::default()
    });
    for (path, url) in &modules {
        if let Err(e) = runtime.block_on(js.load_side_es_module(url)) {
            // The engine's message names the file, line and column as a package URL.
            let message = e.to_string().replace(PACKAGE_URL_PREFIX, "");
            return Some(format!("loading {path}: {message}"));
        }
    }
    None
}
