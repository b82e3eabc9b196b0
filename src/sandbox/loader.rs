//! The module loader of an isolate: it serves the files of the one package assigned to
//! the run, and nothing else — no URLs, no bare specifiers, no file system.

use std::cell::RefCell;
use std::sync::Arc;

use deno_core::{
    ModuleLoadOptions, ModuleLoadReferrer, ModuleLoadResponse, ModuleLoader, ModuleResolveResponse,
    ModuleSource, ModuleSourceCode, ModuleSpecifier, ModuleType, RequestedModuleType,
    ResolutionKind,
};
use deno_error::JsErrorBox;

use crate::package::{resolve_import, AgentPackage};

/// Package files appear to the engine under this URL prefix: stack traces read
/// `agent:///main.js:3:7`.
pub const PACKAGE_URL_PREFIX: &str = "agent:///";

/// What must be escaped in a package path to make it a URL path (`/` stays).
const PATH_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Loads modules of the package assigned to the current run.
///
/// Blank isolates are created before any run is known, so the package is assigned
/// later; a load failure is remembered so the host can report `package_invalid` with the
/// loader's own words rather than whatever the engine wraps it in.
#[derive(Default)]
pub struct PackageLoader {
    package: RefCell<Option<Arc<AgentPackage>>>,
    failure: RefCell<Option<String>>,
    /// The upload check loads every module of the package from outside it; a run loads
    /// only the entry from outside.
    any_module_from_outside: bool,
}

impl PackageLoader {
    /// The loader of the upload check ([`super::check`]): every module of the package
    /// may be loaded from outside it, so each is parsed even if nothing imports it.
    pub fn for_check() -> PackageLoader {
        PackageLoader {
            any_module_from_outside: true,
            ..PackageLoader::default()
        }
    }

    pub fn assign(&self, package: Arc<AgentPackage>) {
        *self.package.borrow_mut() = Some(package);
    }

    /// The first resolve/load failure of this run, if any.
    pub fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    pub fn entry_url(package: &AgentPackage) -> String {
        Self::module_url(&package.manifest.entry)
    }

    /// The URL a package file is loaded under.
    pub fn module_url(path: &str) -> String {
        let path = percent_encoding::utf8_percent_encode(path, PATH_ENCODE);
        format!("{PACKAGE_URL_PREFIX}{path}")
    }

    fn fail(&self, message: String) -> JsErrorBox {
        self.failure
            .borrow_mut()
            .get_or_insert_with(|| message.clone());
        JsErrorBox::type_error(message)
    }

    fn package(&self) -> Result<Arc<AgentPackage>, JsErrorBox> {
        self.package
            .borrow()
            .clone()
            .ok_or_else(|| JsErrorBox::generic("no package is assigned to this isolate"))
    }
}

/// The package path of an `agent:///` URL (URLs percent-encode spaces, `%`, `#`...).
fn package_path(url: &str) -> Option<String> {
    let raw = url.strip_prefix(PACKAGE_URL_PREFIX)?;
    Some(
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()?
            .into_owned(),
    )
}

impl ModuleLoader for PackageLoader {
    fn resolve(
        &self,
        specifier: &str,
        referrer: &str,
        _kind: ResolutionKind,
    ) -> ModuleResolveResponse {
        let package = self.package()?;
        let resolved = match package_path(referrer) {
            Some(referrer_path) => resolve_import(&package, specifier, &referrer_path)
                .map_err(|e| self.fail(e.to_string()))?,
            // Only the host's runner (an `ext:` module) imports from outside the
            // package, and only the entry.
            None if specifier == Self::entry_url(&package) => package.manifest.entry.clone(),
            None if self.any_module_from_outside => package_path(specifier)
                .filter(|path| package.files.contains_key(path))
                .ok_or_else(|| self.fail(format!("'{specifier}' is not a file of the package")))?,
            None => {
                return Err(self.fail(format!(
                    "import '{specifier}' from '{referrer}' is not allowed"
                )))
            }
        };
        let encoded = percent_encoding::utf8_percent_encode(&resolved, PATH_ENCODE).to_string();
        ModuleSpecifier::parse(&format!("{PACKAGE_URL_PREFIX}{encoded}"))
            .map_err(|e| self.fail(format!("import '{specifier}': {e}")))
    }

    fn load(
        &self,
        specifier: &ModuleSpecifier,
        _referrer: Option<&ModuleLoadReferrer>,
        options: ModuleLoadOptions,
    ) -> ModuleLoadResponse {
        ModuleLoadResponse::Sync(self.load_sync(specifier, &options.requested_module_type))
    }
}

impl PackageLoader {
    fn load_sync(
        &self,
        specifier: &ModuleSpecifier,
        requested: &RequestedModuleType,
    ) -> Result<ModuleSource, JsErrorBox> {
        let package = self.package()?;
        let url = specifier.as_str();
        let path = package_path(url)
            .ok_or_else(|| self.fail(format!("'{url}' is not a file of this package")))?;
        let source = package
            .files
            .get(&path)
            .ok_or_else(|| self.fail(format!("'{path}' is not in the package")))?;
        let module_type = if path.ends_with(".json") {
            ModuleType::Json
        } else {
            ModuleType::JavaScript
        };
        let type_matches = matches!(
            (requested, &module_type),
            (RequestedModuleType::None, ModuleType::JavaScript)
                | (RequestedModuleType::Json, ModuleType::Json)
        );
        if !type_matches {
            return Err(self.fail(format!(
                "'{path}' must be imported {}",
                if module_type == ModuleType::Json {
                    "with { type: \"json\" }"
                } else {
                    "without an import attribute"
                }
            )));
        }
        Ok(ModuleSource::new(
            module_type,
            ModuleSourceCode::String(source.to_string().into()),
            specifier,
            None,
        ))
    }
}
