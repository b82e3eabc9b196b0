//! Package paths: which entry names are safe to become package paths, and how an import
//! specifier resolves against the package's files.

use std::collections::BTreeMap;

use super::{is_module, AgentPackage, PackageError, PackageErrorKind};

/// Turns an archive entry name or upload key into a package path ("lib/a.js").
///
/// A leading "./" (as `tar -C dir .` writes) and a trailing "/" (directory entries) are
/// dropped; "" means the root itself. Anything that could land outside the package on
/// some system, or smuggle an odd name into logs, is refused with the reason.
pub(crate) fn normalize(name: &str) -> Result<String, String> {
    if name.contains('\0') {
        return Err("the name contains a NUL byte".into());
    }
    if name.contains('\\') {
        return Err("the name contains a backslash; use '/' as separator".into());
    }
    if name.chars().any(char::is_control) {
        return Err("the name contains a control character".into());
    }
    if name.starts_with('/') {
        return Err("is an absolute path".into());
    }
    let b = name.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err("starts with a drive letter".into());
    }
    let mut rest = name;
    while let Some(r) = rest.strip_prefix("./") {
        rest = r;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest == "." {
        return Ok(String::new());
    }
    for segment in rest.split('/') {
        match segment {
            ".." => return Err("escapes the package root ('..')".into()),
            "" => return Err("has an empty path segment ('//')".into()),
            "." => return Err("has a '.' path segment".into()),
            _ => {}
        }
    }
    Ok(rest.to_owned())
}

/// Whether a package path is left out of packages read from disk or archives: dotfiles
/// and dot-directories (`.git`, `.DS_Store`, macOS `._*` resource forks) and the
/// `__MACOSX` folder that macOS zips carry.
pub(crate) fn is_ignored(path: &str) -> bool {
    path.split('/').next() == Some("__MACOSX") || path.split('/').any(|s| s.starts_with('.'))
}

/// Resolves an import specifier written in `referrer` (a package path like "lib/a.js") to
/// a package path, or explains why it is refused. The error names the referrer.
///
/// Only relative specifiers ("./x.js", "../y.js") are allowed, resolved against the
/// referrer's directory as a browser would, with no implicit extensions, and only to
/// `.js`, `.mjs` and `.json` files.
pub fn resolve_import(
    package: &AgentPackage,
    specifier: &str,
    referrer: &str,
) -> Result<String, PackageError> {
    resolve_import_in(&package.files, specifier, referrer)
}

/// [`resolve_import`] against a bare file set, for use before a package is built.
pub fn resolve_import_in<V>(
    files: &BTreeMap<String, V>,
    specifier: &str,
    referrer: &str,
) -> Result<String, PackageError> {
    let refuse = |reason: String| PackageError::at(PackageErrorKind::Import, referrer, reason);
    if !(specifier.starts_with("./") || specifier.starts_with("../")) {
        return Err(refuse(refusal(specifier)));
    }
    let mut parts: Vec<&str> = referrer.split('/').collect();
    parts.pop();
    for segment in specifier.split('/') {
        match segment {
            "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(refuse(format!(
                        "imports {specifier}, which points outside the package"
                    )));
                }
            }
            "" => {
                return Err(refuse(format!(
                    "imports {specifier}, which has an empty path segment"
                )))
            }
            s => parts.push(s),
        }
    }
    let path = parts.join("/");
    if !files.contains_key(&path) {
        return Err(refuse(format!(
            "imports {specifier}, which is not in the package"
        )));
    }
    // The loader serves JavaScript and JSON modules only; anything else would fail to
    // parse at run time, so it is refused now.
    if !(is_module(&path) || path.ends_with(".json")) {
        return Err(refuse(format!(
            "imports {specifier}, which is not a module; only .js, .mjs and .json files \
             can be imported"
        )));
    }
    Ok(path)
}

/// Why a non-relative specifier is refused, naming its kind.
fn refusal(specifier: &str) -> String {
    const ONLY: &str = "only relative imports of package files (./x.js, ../y.js) are allowed";
    if specifier.is_empty() {
        return format!("has an empty import specifier; {ONLY}");
    }
    if specifier == "." || specifier == ".." {
        return format!("imports {specifier}: a directory cannot be imported; {ONLY}");
    }
    if specifier.starts_with('/') {
        return format!("imports {specifier}: absolute paths are not allowed; {ONLY}");
    }
    if let Some(scheme) = scheme(specifier) {
        return format!("imports {specifier}: URL imports ({scheme}:) are not allowed; {ONLY}");
    }
    format!(
        "imports {specifier}: bare specifiers (package names) are not allowed; bundle \
         dependencies into the package and import them by relative path; {ONLY}"
    )
}

/// The URL scheme a specifier starts with (`https`, `node`, `data`, ...), if any.
fn scheme(specifier: &str) -> Option<&str> {
    let (scheme, _) = specifier.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}
