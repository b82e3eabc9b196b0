//! Packages laid out as a directory: every regular file except dotfiles, with symlinks and
//! special files refused rather than followed, and limits applied while reading.

use std::fs;
use std::path::{Path, PathBuf};

use super::archive::RawFile;
use super::limits::{Budget, PackageLimits};
use super::{paths, PackageError, PackageErrorKind};

/// The regular files under `root`, as package paths. Dotfiles and dot-directories (`.git`)
/// are skipped without being descended into; anything else that is not a plain file or
/// directory is an error, so nothing is left out silently.
pub(crate) fn read_dir(root: &Path, limits: &PackageLimits) -> Result<Vec<RawFile>, PackageError> {
    let mut budget = Budget::new(limits);
    let mut files = Vec::new();
    let mut pending: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    let mut dirs_seen = 0usize;
    while let Some((dir, prefix)) = pending.pop() {
        dirs_seen += 1;
        // Empty directories cost nothing in the budget, so they are bounded on their own.
        if dirs_seen > limits.max_files {
            return Err(PackageError::whole(
                PackageErrorKind::TooLarge,
                format!("the package has more than {} directories", limits.max_files),
            ));
        }
        let label = if prefix.is_empty() { "." } else { &prefix };
        let io_err = |e: std::io::Error| {
            PackageError::at(
                PackageErrorKind::Archive,
                label,
                format!("could not be read: {e}"),
            )
        };
        let mut entries = fs::read_dir(&dir)
            .map_err(io_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_err)?;
        // Sorted so that which error is reported first does not depend on the file system.
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().into_string().map_err(|raw| {
                let lossy = raw.to_string_lossy();
                PackageError::at(
                    PackageErrorKind::Path,
                    &join(&prefix, &lossy),
                    "the name is not valid UTF-8",
                )
            })?;
            let rel = join(&prefix, &name);
            let path = paths::normalize(&rel)
                .map_err(|r| PackageError::at(PackageErrorKind::Path, &rel, r))?;
            if paths::is_ignored(&path) {
                continue;
            }
            // `DirEntry::file_type` does not follow symlinks.
            let file_type = entry.file_type().map_err(io_err)?;
            if file_type.is_symlink() {
                return Err(PackageError::at(
                    PackageErrorKind::Path,
                    &path,
                    "is a symbolic link; packages may hold only regular files",
                ));
            } else if file_type.is_dir() {
                pending.push((entry.path(), path));
            } else if file_type.is_file() {
                let open_err = |e: std::io::Error| {
                    PackageError::at(
                        PackageErrorKind::Archive,
                        &path,
                        format!("could not be read: {e}"),
                    )
                };
                let file = fs::File::open(entry.path()).map_err(open_err)?;
                let len = file.metadata().map_err(open_err)?.len();
                let data = budget.read(&path, len, file)?;
                files.push((path, data));
            } else {
                return Err(PackageError::at(
                    PackageErrorKind::Path,
                    &path,
                    "is not a regular file (a device, pipe or socket)",
                ));
            }
        }
    }
    Ok(files)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}
