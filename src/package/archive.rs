//! Archives: gzip tar and zip, told apart by their magic bytes, read entry by entry with
//! every name checked and every byte counted against the limits as it is inflated.

use std::cell::Cell;
use std::io::{self, Cursor, Read};

use flate2::read::MultiGzDecoder;
use tar::EntryType;

use super::limits::{archive_too_large, unpacked_too_large, Budget, PackageLimits};
use super::{paths, PackageError, PackageErrorKind};

/// A regular file taken from a container: its package path and its bytes.
pub(crate) type RawFile = (String, Vec<u8>);

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const EMPTY_ZIP_MAGIC: &[u8] = b"PK\x05\x06";

/// The regular files of a gzip tar or zip, before wrapper stripping.
pub(crate) fn read_archive(
    bytes: &[u8],
    limits: &PackageLimits,
) -> Result<Vec<RawFile>, PackageError> {
    if bytes.len() as u64 > limits.max_archive_bytes {
        return Err(archive_too_large(bytes.len() as u64, limits));
    }
    if bytes.starts_with(GZIP_MAGIC) {
        read_tar_gz(bytes, limits)
    } else if bytes.starts_with(ZIP_MAGIC) || bytes.starts_with(EMPTY_ZIP_MAGIC) {
        read_zip(bytes, limits)
    } else {
        Err(PackageError::whole(
            PackageErrorKind::Archive,
            "not a package archive: expected a gzip-compressed tar (.tar.gz, .tgz) or a zip",
        ))
    }
}

/// Drops the single top-level directory that wraps everything in `npm pack` and GitHub
/// tarballs, when `agent.json` is not at the root but is inside that directory.
pub(crate) fn strip_wrapper(files: Vec<RawFile>) -> Vec<RawFile> {
    if files.iter().any(|(p, _)| p == super::MANIFEST_FILE) {
        return files;
    }
    let Some(top) = files
        .first()
        .and_then(|(p, _)| p.split_once('/'))
        .map(|(top, _)| format!("{top}/"))
    else {
        return files;
    };
    let wrapped = files.iter().all(|(p, _)| p.starts_with(&top))
        && files
            .iter()
            .any(|(p, _)| p.strip_prefix(&top) == Some(super::MANIFEST_FILE));
    if !wrapped {
        return files;
    }
    files
        .into_iter()
        .map(|(p, bytes)| (p[top.len()..].to_owned(), bytes))
        .collect()
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> PackageError {
    PackageError::whole(
        PackageErrorKind::Archive,
        format!("the {what} is corrupt or truncated: {e}"),
    )
}

/// The package path of an entry name, or the error that names the entry.
fn entry_path(name: &str) -> Result<String, PackageError> {
    paths::normalize(name).map_err(|r| PackageError::at(PackageErrorKind::Path, name, r))
}

fn not_regular(name: &str, what: &str) -> PackageError {
    PackageError::at(
        PackageErrorKind::Path,
        name,
        format!("is {what}; packages may hold only regular files"),
    )
}

fn read_tar_gz(bytes: &[u8], limits: &PackageLimits) -> Result<Vec<RawFile>, PackageError> {
    let capped = Cell::new(false);
    let stream = Capped {
        inner: MultiGzDecoder::new(bytes),
        left: limits.tar_stream_cap(),
        hit: &capped,
    };
    // Whatever went wrong, passing the stream cap is the real reason.
    let blame = |e: PackageError| {
        if capped.get() {
            unpacked_too_large(limits)
        } else {
            e
        }
    };
    let mut archive = tar::Archive::new(stream);
    let mut budget = Budget::new(limits);
    let mut files = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| blame(corrupt("tar archive", e)))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| blame(corrupt("tar archive", e)))?;
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw_name).map_err(|e| {
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            PackageError::at(
                PackageErrorKind::Path,
                &lossy,
                "the name is not valid UTF-8",
            )
        })?;
        let entry_type = entry.header().entry_type();
        let what = match entry_type {
            EntryType::Directory => {
                entry_path(&name)?;
                continue;
            }
            // Old tar writers mark directories as regular files named with a trailing '/'.
            EntryType::Regular if name.ends_with('/') => {
                entry_path(&name)?;
                continue;
            }
            // Archive-wide metadata that `git archive` and GitHub tarballs start with.
            EntryType::XGlobalHeader => continue,
            EntryType::Regular | EntryType::Continuous => None,
            EntryType::Symlink => Some("a symbolic link"),
            EntryType::Link => Some("a hard link"),
            EntryType::Char | EntryType::Block => Some("a device"),
            EntryType::Fifo => Some("a named pipe"),
            EntryType::GNUSparse => Some("a sparse file"),
            _ => Some("not a regular file"),
        };
        if let Some(what) = what {
            return Err(not_regular(&name, what));
        }
        let path = entry_path(&name)?;
        if path.is_empty() || paths::is_ignored(&path) {
            continue;
        }
        let declared = entry
            .header()
            .size()
            .map_err(|e| corrupt("tar archive", e))?;
        let data = budget.read(&path, declared, &mut entry).map_err(&blame)?;
        files.push((path, data));
    }
    // Read to the end of the gzip stream so a truncated or corrupt trailer (CRC, length)
    // is noticed even when the tar part happened to end cleanly.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| blame(corrupt("gzip stream", e)))?;
    Ok(files)
}

fn read_zip(bytes: &[u8], limits: &PackageLimits) -> Result<Vec<RawFile>, PackageError> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt("zip archive", e))?;
    let mut budget = Budget::new(limits);
    let mut files = Vec::new();
    for index in 0..zip.len() {
        let mut file = zip.by_index(index).map_err(|e| {
            let name = zip_name(bytes, index);
            PackageError::new(
                PackageErrorKind::Archive,
                name,
                format!("the zip entry cannot be read: {e}"),
            )
        })?;
        let name = file.name().to_owned();
        let path = entry_path(&name)?;
        const S_IFMT: u32 = 0o170000;
        let kind = file.unix_mode().map_or(0, |m| m & S_IFMT);
        let what = match kind {
            0 | 0o100000 | 0o040000 => None,
            0o120000 => Some("a symbolic link"),
            0o020000 | 0o060000 => Some("a device"),
            0o010000 => Some("a named pipe"),
            _ => Some("not a regular file"),
        };
        if let Some(what) = what {
            return Err(not_regular(&name, what));
        }
        if file.is_dir() || kind == 0o040000 || path.is_empty() || paths::is_ignored(&path) {
            continue;
        }
        let declared = file.size();
        files.push((path.clone(), budget.read(&path, declared, &mut file)?));
    }
    Ok(files)
}

/// The name of a zip entry that failed to open, for the error message.
fn zip_name(bytes: &[u8], index: usize) -> Option<String> {
    let zip = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    zip.name_for_index(index).map(str::to_owned)
}

/// A reader that stops after `left` bytes and records that it did, so the caller can tell
/// "passed the limit" from "corrupt" when the tar reader turns the cut into an error.
struct Capped<'a, R> {
    inner: R,
    left: u64,
    hit: &'a Cell<bool>,
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One probe byte tells a stream that ends exactly at the cap from a longer one.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.hit.set(true);
            return Err(io::Error::other(
                "the unpacked archive passes the size limit",
            ));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}
