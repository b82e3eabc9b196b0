//! Agent packages: `agent.json` plus ES modules, loaded from a directory, a `.tar.gz`/`.zip`
//! archive or the JSON upload form, and validated once so that a bad package is refused at
//! upload rather than at its first run.
//!
//! # Layout
//! - [`manifest`]: the `agent.json` types and their validation.
//! - [`limits`]: [`PackageLimits`] and the budget that enforces them while bytes are read.
//! - [`archive`]: gzip tar and zip containers, wrapper-directory stripping.
//! - [`dir`]: packages laid out as a directory on disk.
//! - [`paths`]: entry-name hygiene and [`resolve_import`].
//! - [`imports`]: [`scan_imports`], a lexer-level scan of import specifiers.
//! - [`schema`]: compiling `input`/`output` schemas and reporting validation errors.
//! - [`digest`]: the content digest that is the same whatever the container.

mod archive;
mod digest;
mod dir;
mod imports;
mod limits;
mod manifest;
mod paths;
mod schema;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

pub use imports::scan_imports;
pub use limits::PackageLimits;
pub use manifest::{Manifest, ManifestLimits, MemoryScope, Permissions};
pub use paths::{resolve_import, resolve_import_in};
pub use schema::check_value as check_against_schema;

use limits::Budget;

/// The manifest's file name, at the package root.
pub const MANIFEST_FILE: &str = "agent.json";

/// What class of problem made a package unacceptable; the API maps it to a problem type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageErrorKind {
    /// `agent.json` is not valid JSON or does not validate.
    Manifest,
    /// The container is corrupt, truncated, of an unknown format, or could not be read.
    Archive,
    /// A size or count limit was passed.
    TooLarge,
    /// An entry name is unsafe (traversal, absolute, ...) or the entry is not a regular file.
    Path,
    /// A module imports something outside the package or missing from it.
    Import,
    /// A module does not compile; produced by the JS engine's caller, never by this module.
    Syntax,
    /// A file is not UTF-8 text.
    Encoding,
    /// `agent.json` or the entry module is absent.
    Missing,
}

impl PackageErrorKind {
    /// A stable snake_case name, for problem types and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manifest => "manifest",
            Self::Archive => "archive",
            Self::TooLarge => "too_large",
            Self::Path => "path",
            Self::Import => "import",
            Self::Syntax => "syntax",
            Self::Encoding => "encoding",
            Self::Missing => "missing",
        }
    }
}

/// Why a package was refused, naming the file at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PackageError {
    /// Package path of the file at fault (`"agent.json"`, `"lib/a.js"`), if any.
    pub file: Option<String>,
    pub reason: String,
    pub kind: PackageErrorKind,
}

impl PackageError {
    pub fn new(kind: PackageErrorKind, file: Option<String>, reason: impl Into<String>) -> Self {
        Self {
            file,
            reason: reason.into(),
            kind,
        }
    }

    /// An error about one file.
    pub(crate) fn at(kind: PackageErrorKind, file: &str, reason: impl Into<String>) -> Self {
        Self::new(kind, Some(file.to_owned()), reason)
    }

    /// An error about the package as a whole.
    pub(crate) fn whole(kind: PackageErrorKind, reason: impl Into<String>) -> Self {
        Self::new(kind, None, reason)
    }
}

impl fmt::Display for PackageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{file}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// A validated package, ready to run: every import resolves and both schemas compile.
#[derive(Debug, Clone)]
pub struct AgentPackage {
    pub manifest: Manifest,
    /// Package path ("main.js", "lib/util.js"; '/'-separated, no leading "./") -> UTF-8 text.
    /// `agent.json` itself is not in here; it is [`AgentPackage::manifest`].
    pub files: BTreeMap<String, Arc<str>>,
    pub input_schema: Option<Arc<jsonschema::Validator>>,
    pub output_schema: Option<Arc<jsonschema::Validator>>,
    /// sha256 hex over the canonical manifest JSON and the sorted files, so the same content
    /// gives the same digest whatever the container format or the manifest's key order.
    pub digest: String,
}

impl AgentPackage {
    /// Loads a directory, or a gzip tar / zip file recognised by its magic bytes.
    pub fn load_path(path: &Path, limits: &PackageLimits) -> Result<AgentPackage, PackageError> {
        let meta = std::fs::metadata(path).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                PackageErrorKind::Missing
            } else {
                PackageErrorKind::Archive
            };
            PackageError::whole(kind, format!("cannot read {}: {e}", path.display()))
        })?;
        if meta.is_dir() {
            return Self::assemble(dir::read_dir(path, limits)?, false);
        }
        if meta.len() > limits.max_archive_bytes {
            return Err(limits::archive_too_large(meta.len(), limits));
        }
        let read_err = |e: std::io::Error| {
            PackageError::whole(
                PackageErrorKind::Archive,
                format!("cannot read {}: {e}", path.display()),
            )
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut bytes = Vec::new();
        // The file may grow between the size check and the read.
        file.take(limits.max_archive_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        Self::from_archive_bytes(&bytes, limits)
    }

    /// Loads a gzip tar or a zip, recognised by its magic bytes.
    pub fn from_archive_bytes(
        bytes: &[u8],
        limits: &PackageLimits,
    ) -> Result<AgentPackage, PackageError> {
        Self::assemble(archive::read_archive(bytes, limits)?, true)
    }

    /// Loads the JSON upload form `{ manifest, files: { path: text } }`.
    pub fn from_files(
        manifest: Value,
        files: BTreeMap<String, String>,
        limits: &PackageLimits,
    ) -> Result<AgentPackage, PackageError> {
        let mut budget = Budget::new(limits);
        budget.count(
            MANIFEST_FILE,
            digest::canonical_json(&manifest).len() as u64,
        )?;
        let mut out = BTreeMap::new();
        for (name, text) in files {
            let path = paths::normalize(&name).map_err(|r| PackageError::at(PATH, &name, r))?;
            if path == MANIFEST_FILE {
                return Err(PackageError::at(
                    PATH,
                    &name,
                    "the manifest goes in `manifest`, not in `files`",
                ));
            }
            if path.is_empty() {
                return Err(PackageError::at(PATH, &name, "is not a file name"));
            }
            if paths::is_ignored(&path) {
                let why = "hidden files (names starting with '.') are not package files";
                return Err(PackageError::at(PATH, &name, why));
            }
            budget.count(&path, text.len() as u64)?;
            if out.insert(path.clone(), Arc::from(text)).is_some() {
                return Err(PackageError::at(PATH, &name, "appears twice"));
            }
        }
        Self::build(manifest, out)
    }

    /// A package validated before (at upload), rebuilt from its parts in another process
    /// (a sandbox process): only its schemas are compiled again.
    pub fn rebuilt(
        manifest: Manifest,
        files: BTreeMap<String, Arc<str>>,
        digest: String,
    ) -> Result<AgentPackage, PackageError> {
        let input_schema = schema::compile("input", manifest.input.as_ref())?;
        let output_schema = schema::compile("output", manifest.output.as_ref())?;
        Ok(AgentPackage {
            manifest,
            files,
            input_schema,
            output_schema,
            digest,
        })
    }

    /// The entry module's source.
    pub fn entry_source(&self) -> &str {
        self.files.get(&self.manifest.entry).map_or("", |s| s)
    }

    /// Checks a run's input against the manifest's `input` schema (Ok when there is none).
    pub fn validate_input(&self, v: &Value) -> Result<(), String> {
        schema::check(self.input_schema.as_deref(), v)
    }

    /// Checks a run's output against the manifest's `output` schema (Ok when there is none).
    pub fn validate_output(&self, v: &Value) -> Result<(), String> {
        schema::check(self.output_schema.as_deref(), v)
    }

    /// Turns the regular files read from a directory or archive into a package.
    fn assemble(
        raw: Vec<(String, Vec<u8>)>,
        strip_wrapper: bool,
    ) -> Result<AgentPackage, PackageError> {
        let raw = if strip_wrapper {
            archive::strip_wrapper(raw)
        } else {
            raw
        };
        let mut manifest_bytes = None;
        let mut files = BTreeMap::new();
        for (path, bytes) in raw {
            if path == MANIFEST_FILE {
                if manifest_bytes.replace(bytes).is_some() {
                    return Err(PackageError::at(
                        PATH,
                        &path,
                        "appears twice in the archive",
                    ));
                }
                continue;
            }
            let text = String::from_utf8(bytes).map_err(|_| not_text(&path))?;
            if files.insert(path.clone(), Arc::from(text)).is_some() {
                return Err(PackageError::at(
                    PATH,
                    &path,
                    "appears twice in the archive",
                ));
            }
        }
        let Some(bytes) = manifest_bytes else {
            return Err(missing_manifest(&files));
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| not_text(MANIFEST_FILE))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let manifest: Value = serde_json::from_str(text).map_err(|e| {
            PackageError::at(PackageErrorKind::Manifest, MANIFEST_FILE, format!("{e}"))
        })?;
        Self::build(manifest, files)
    }

    /// Validates the manifest against the files and compiles what runs will need.
    fn build(
        manifest_json: Value,
        files: BTreeMap<String, Arc<str>>,
    ) -> Result<AgentPackage, PackageError> {
        let manifest = Manifest::from_json(&manifest_json)?;
        if !files.contains_key(&manifest.entry) {
            return Err(PackageError::at(
                PackageErrorKind::Missing,
                MANIFEST_FILE,
                format!("entry {} is not in the package", manifest.entry),
            ));
        }
        check_imports(&files)?;
        let digest = digest::digest(&manifest_json, &files);
        Self::rebuilt(manifest, files, digest)
    }
}

const PATH: PackageErrorKind = PackageErrorKind::Path;

/// Whether a package path is a module whose imports must resolve.
pub(crate) fn is_module(path: &str) -> bool {
    path.ends_with(".js") || path.ends_with(".mjs")
}

/// Refuses the package if any module imports something that will not resolve at run time.
fn check_imports(files: &BTreeMap<String, Arc<str>>) -> Result<(), PackageError> {
    for (path, source) in files.iter().filter(|(p, _)| is_module(p)) {
        for specifier in scan_imports(source) {
            resolve_import_in(files, &specifier, path)?;
        }
    }
    Ok(())
}

fn not_text(path: &str) -> PackageError {
    PackageError::at(
        PackageErrorKind::Encoding,
        path,
        "is not UTF-8 text; packages may hold only text files",
    )
}

/// A missing-manifest error that points at a misplaced `agent.json` when there is one.
fn missing_manifest(files: &BTreeMap<String, Arc<str>>) -> PackageError {
    let nested = files.keys().find(|p| p.ends_with("/agent.json"));
    let hint = match nested {
        Some(p) => format!(
            " (found {p}; it must be at the root, or every file must sit in one top-level \
             directory)"
        ),
        None => String::new(),
    };
    PackageError::at(
        PackageErrorKind::Missing,
        MANIFEST_FILE,
        format!("is missing at the package root{hint}"),
    )
}
