//! `atoll deploy [DIR]`: checks the package with the server's own loader
//! ([`AgentPackage`], the same limits), packs it as a gzip tar, and uploads it with
//! `PUT /v1/agents/{scope}/{name}/versions/{version}`.
//!
//! What is uploaded is exactly what was checked: the tarball is built from the files the
//! loader read and loaded back with [`AgentPackage::from_archive_bytes`], the call the
//! server makes on the body. Only the server's parse of every module in a sandbox
//! process (syntax errors, with file, line and column) happens there alone.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::stream;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::{header, Method, StatusCode};
use serde_json::Value;

use super::error::{CliError, CliResult, Exit};
use super::http::{seg, Api};
use crate::package::{AgentPackage, PackageLimits, MANIFEST_FILE};

/// Bytes per chunk of the upload (the progress bar moves by these).
const CHUNK: usize = 16 * 1024;

/// A checked package, packed.
pub struct Packed {
    pub package: AgentPackage,
    /// The gzip tar that is uploaded.
    pub bytes: Vec<u8>,
    pub scope: String,
    pub name: String,
    pub version: String,
}

impl Packed {
    pub fn label(&self) -> String {
        format!("{}@{}", self.package.manifest.name, self.version)
    }
}

/// The refusal of a package that does not check out; nothing was uploaded.
fn invalid(dir: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::refused(format!(
        "{} is not a valid agent package: {e}",
        dir.display()
    ))
    .hint("fix it and deploy again; nothing was uploaded")
}

/// Loads and checks `dir`, and packs it; with `version`, as that version (its
/// `agent.json` says so in the tarball, the file on disk is left alone).
pub fn pack_dir(dir: &Path, version: Option<&semver::Version>) -> CliResult<Packed> {
    let limits = PackageLimits::default();
    let checked = AgentPackage::load_path(dir, &limits).map_err(|e| invalid(dir, e))?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let raw = std::fs::read(&manifest_path).map_err(|e| invalid(dir, e))?;
    let manifest_bytes = match version {
        None => raw,
        Some(v) => {
            let text = String::from_utf8_lossy(&raw);
            let mut manifest: Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
                .map_err(|e| invalid(dir, e))?;
            manifest["version"] = Value::String(v.to_string());
            serde_json::to_vec_pretty(&manifest).map_err(|e| invalid(dir, e))?
        }
    };
    let mut files: Vec<(&str, &[u8])> = vec![(MANIFEST_FILE, &manifest_bytes)];
    files.extend(
        checked
            .files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_bytes())),
    );
    let bytes = tar_gz(&files).map_err(|e| invalid(dir, format!("cannot pack it: {e}")))?;
    // The server's own check of the body it will get.
    let package = AgentPackage::from_archive_bytes(&bytes, &limits).map_err(|e| invalid(dir, e))?;
    let version = package.manifest.version.to_string();
    Ok(Packed {
        scope: package.manifest.scope().to_owned(),
        name: package.manifest.short_name().to_owned(),
        version,
        package,
        bytes,
    })
}

/// A gzip tar of `files`, deterministic (fixed times, modes and order).
fn tar_gz(files: &[(&str, &[u8])]) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, data) in files {
        let mut head = tar::Header::new_gnu();
        head.set_size(data.len() as u64);
        head.set_mode(0o644);
        head.set_mtime(0);
        head.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut head, path, *data)?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}

/// What the server answered an upload.
pub struct Uploaded {
    pub status: StatusCode,
    pub body: Value,
}

/// Uploads a packed package, with a progress bar on stderr when `progress`.
pub async fn upload(api: &Api, packed: &Packed, progress: bool) -> CliResult<Uploaded> {
    let path = format!(
        "/v1/agents/{}/{}/versions/{}",
        seg(&packed.scope),
        seg(&packed.name),
        seg(&packed.version)
    );
    let total = packed.bytes.len() as u64;
    let bar = if progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "uploading {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(packed.label());
        bar
    } else {
        ProgressBar::hidden()
    };
    let response = api
        .send(|| {
            bar.set_position(0);
            let chunks: Vec<bytes::Bytes> = packed
                .bytes
                .chunks(CHUNK)
                .map(bytes::Bytes::copy_from_slice)
                .collect();
            let tick = bar.clone();
            let body = stream::iter(chunks.into_iter().map(move |c| {
                tick.inc(c.len() as u64);
                Ok::<_, std::io::Error>(c)
            }));
            api.request(Method::PUT, &path)
                .header(header::CONTENT_TYPE, "application/gzip")
                .header(header::CONTENT_LENGTH, total)
                .body(reqwest::Body::wrap_stream(body))
        })
        .await;
    bar.finish_and_clear();
    let answer = api.answer(response?).await.map_err(|e| {
        if e.is_status(409) {
            e.hint(format!(
                "versions are immutable: bump \"version\" in agent.json (now {}) and deploy again",
                packed.version
            ))
        } else if e.is_status(422) {
            e.hint("fix the package and deploy again; nothing was stored")
        } else {
            e
        }
    })?;
    Ok(Uploaded {
        status: answer.status,
        body: answer.body,
    })
}

/// `atoll deploy`.
pub async fn deploy(api: &Api, dir: &Path, json: bool) -> CliResult<Exit> {
    let packed = pack_dir(dir, None)?;
    let progress = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let uploaded = upload(api, &packed, progress).await?;
    if json {
        println!("{}", uploaded.body);
        return Ok(Exit::Success);
    }
    let digest = uploaded.body["digest"]
        .as_str()
        .unwrap_or(&packed.package.digest);
    let short = digest.get(..12).unwrap_or(digest);
    if uploaded.status == StatusCode::CREATED {
        println!(
            "deployed {} ({} files, {} bytes packed, digest {short})",
            packed.label(),
            packed.package.files.len() + 1,
            packed.bytes.len()
        );
    } else {
        println!(
            "{} is already deployed with exactly this content; nothing changed (the server answered {})",
            packed.label(),
            uploaded.status.as_u16()
        );
    }
    println!("run it:   {}", run_hint(dir, &packed.package.manifest.name));
    Ok(Exit::Success)
}

/// The `atoll run` line that runs the package in `dir` (with its `input.json` if any).
pub fn run_hint(dir: &Path, name: &str) -> String {
    let input = dir.join("input.json");
    if input.is_file() {
        format!("atoll run {name} --input @{} --wait", display(&input))
    } else {
        format!("atoll run {name} --input '{{}}' --wait")
    }
}

fn display(p: &Path) -> String {
    let p: PathBuf = p.strip_prefix("./").unwrap_or(p).to_path_buf();
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    #[test]
    fn a_package_packs_into_what_the_server_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "agent.json",
            r#"{"name":"@t/p","version":"1.2.3"}"#,
        );
        write(
            dir.path(),
            "main.js",
            "import x from './lib.js'; export default async () => x;",
        );
        write(dir.path(), "lib.js", "export default 1;");
        write(dir.path(), ".hidden", "not packed");
        let packed = pack_dir(dir.path(), None).expect("packs");
        assert_eq!((packed.scope.as_str(), packed.name.as_str()), ("t", "p"));
        assert_eq!(packed.version, "1.2.3");
        assert_eq!(packed.package.files.len(), 2);
        // The same content packs the same way (and so has the same digest).
        let again = pack_dir(dir.path(), None).expect("packs");
        assert_eq!(again.bytes, packed.bytes);
        assert_eq!(again.package.digest, packed.package.digest);
        let v = semver::Version::parse("1.2.4-dev.1").expect("semver");
        let dev = pack_dir(dir.path(), Some(&v)).expect("packs");
        assert_eq!(dev.version, "1.2.4-dev.1");
        assert_ne!(dev.package.digest, packed.package.digest);
    }

    #[test]
    fn a_broken_package_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "agent.json",
            r#"{"name":"@t/p","version":"1.0.0"}"#,
        );
        write(
            dir.path(),
            "main.js",
            "import x from './missing.js'; export default x;",
        );
        let e = pack_dir(dir.path(), None).err().expect("refused");
        assert_eq!(e.exit, Exit::Refused);
        assert!(e.message.contains("main.js"), "{}", e.message);
    }
}
