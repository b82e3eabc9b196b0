//! Tests of the package module, with archives built in the test (no fixture binaries).

mod archive;
mod dir;
mod forms;
mod imports;
mod manifest;

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::Path;

use serde_json::{json, Value};
use tar::{EntryType, Header};

use super::{AgentPackage, PackageError, PackageErrorKind, PackageLimits};

/// A manifest that uses every field.
pub(super) fn manifest() -> Value {
    json!({
        "name": "@acme/invoice-triage",
        "version": "1.2.0",
        "description": "Sorts incoming invoices",
        "entry": "main.js",
        "input": { "type": "object", "properties": { "invoice_id": { "type": "string" } }, "required": ["invoice_id"] },
        "output": { "type": "object" },
        "permissions": {
            "fetch": ["api.example.com", "*.acme.dev"],
            "connections": ["acme-api"],
            "tools": ["lookup_customer"],
            "llm": ["openai/*"],
            "memory": ["end_user", "app"]
        },
        "limits": { "timeout_ms": 60000, "cpu_ms": 2000, "memory_mb": 64 },
        "retry_on_node_lost": true
    })
}

pub(super) fn manifest_text() -> String {
    serde_json::to_string_pretty(&manifest()).expect("serialises")
}

/// The modules of a good package: nested directories, `..`, JSON imports, re-exports.
pub(super) const GOOD_FILES: &[(&str, &str)] = &[
    (
        "main.js",
        "import { greet } from \"./lib/util.js\";\n\
         import data from './data.json' with { type: 'json' };\n\
         export default async (input, ctx) => ({ greeting: greet(input.invoice_id), n: data.n });\n",
    ),
    (
        "lib/util.js",
        "export * from \"./strings.mjs\";\n\
         import cfg from \"../data.json\" with { type: \"json\" };\n\
         export const greet = (n) => `hello ${n} ${cfg.n}`;\n",
    ),
    ("lib/strings.mjs", "export const x = \"y\";\n"),
    ("data.json", "{\"n\": 1}\n"),
    ("README.md", "# invoice triage\n"),
];

pub(super) fn good_files() -> BTreeMap<String, String> {
    GOOD_FILES
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

/// `GOOD_FILES` plus `agent.json`, under `prefix` ("" or "package/").
pub(super) fn good_entries(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(format!("{prefix}agent.json"), manifest_text().into_bytes())];
    out.extend(
        GOOD_FILES
            .iter()
            .map(|(p, t)| (format!("{prefix}{p}"), t.as_bytes().to_vec())),
    );
    out
}

/// One tar member, with names written raw so that hostile names can be built.
pub(super) enum T<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Link(EntryType, &'a str, &'a str),
    Special(EntryType, &'a str),
}

pub(super) fn tar_bytes(entries: &[T]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (ty, name, link, data): (EntryType, &str, &str, &[u8]) = match e {
            T::File(n, d) => (EntryType::Regular, n, "", d),
            T::Dir(n) => (EntryType::Directory, n, "", b""),
            T::Link(ty, n, target) => (*ty, n, target, b""),
            T::Special(ty, n) => (*ty, n, "", b""),
        };
        let mut h = Header::new_gnu();
        {
            let g = h.as_gnu_mut().expect("gnu header");
            g.name[..name.len()].copy_from_slice(name.as_bytes());
            g.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(ty);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }
    b.into_inner().expect("tar")
}

pub(super) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

pub(super) fn tgz(entries: &[T]) -> Vec<u8> {
    gzip(&tar_bytes(entries))
}

pub(super) fn tgz_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let entries: Vec<T> = files.iter().map(|(p, d)| T::File(p, d)).collect();
    tgz(&entries)
}

/// One zip member.
pub(super) enum Z<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

pub(super) fn zip(entries: &[Z]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
    for e in entries {
        match e {
            Z::File(n, d) => {
                w.start_file(*n, opts).expect("start");
                w.write_all(d).expect("write");
            }
            Z::Dir(n) => w.add_directory(*n, opts).expect("dir"),
            Z::Symlink(n, target) => w.add_symlink(*n, *target, opts).expect("symlink"),
        }
    }
    w.finish().expect("zip").into_inner()
}

pub(super) fn zip_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let entries: Vec<Z> = files.iter().map(|(p, d)| Z::File(p, d)).collect();
    zip(&entries)
}

/// Writes `files` under `root`, creating directories.
pub(super) fn write_tree(root: &Path, files: &[(String, Vec<u8>)]) {
    for (p, d) in files {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, d).expect("write");
    }
}

pub(super) fn limits() -> PackageLimits {
    PackageLimits::default()
}

pub(super) fn from_tgz(entries: &[T]) -> Result<AgentPackage, PackageError> {
    AgentPackage::from_archive_bytes(&tgz(entries), &limits())
}

pub(super) fn from_zip(entries: &[Z]) -> Result<AgentPackage, PackageError> {
    AgentPackage::from_archive_bytes(&zip(entries), &limits())
}

/// The good package's files plus `extra` modules, in the JSON upload form.
pub(super) fn with_files(extra: &[(&str, &str)]) -> Result<AgentPackage, PackageError> {
    let mut files = good_files();
    for (p, t) in extra {
        files.insert(p.to_string(), t.to_string());
    }
    AgentPackage::from_files(manifest(), files, &limits())
}

/// The good package with one manifest field replaced (or removed, for `Value::Null`
/// with `remove`).
pub(super) fn with_manifest(edit: impl FnOnce(&mut Value)) -> Result<AgentPackage, PackageError> {
    let mut m = manifest();
    edit(&mut m);
    AgentPackage::from_files(m, good_files(), &limits())
}

/// Asserts the error's kind, file and that its reason mentions `needle`.
#[track_caller]
pub(super) fn assert_err(
    result: Result<AgentPackage, PackageError>,
    kind: PackageErrorKind,
    file: Option<&str>,
    needle: &str,
) -> PackageError {
    let e = result.expect_err("the package should have been refused");
    assert_eq!(e.kind, kind, "wrong kind: {e}");
    assert_eq!(e.file.as_deref(), file, "wrong file: {e}");
    assert!(
        e.reason.contains(needle),
        "{:?} does not mention {needle:?}",
        e.reason
    );
    e
}
