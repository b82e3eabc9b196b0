//! Size and count limits, enforced while bytes are read so that a decompression bomb is
//! stopped at the limit instead of being inflated first and measured after.

use std::io::Read;

use super::{PackageError, PackageErrorKind};

const MIB: u64 = 1024 * 1024;

/// Ceilings for one package; the defaults follow the spec's 5 MiB package limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageLimits {
    /// Size of a `.tar.gz`/`.zip` as uploaded, checked before anything is decompressed.
    pub max_archive_bytes: u64,
    /// Sum of the sizes of all package files (including `agent.json`) once unpacked.
    pub max_unpacked_bytes: u64,
    /// Number of package files, `agent.json` included.
    pub max_files: usize,
    /// Size of any one file.
    pub max_file_bytes: u64,
}

impl Default for PackageLimits {
    fn default() -> Self {
        Self {
            max_archive_bytes: 5 * MIB,
            max_unpacked_bytes: 5 * MIB,
            max_files: 1000,
            max_file_bytes: 5 * MIB,
        }
    }
}

impl PackageLimits {
    /// How much of a decompressed tar stream is read at most: the files themselves plus
    /// generous room for headers, padding, directories and skipped dotfiles. It bounds what
    /// the tar reader buffers on its own (long-name and pax headers are read whole).
    pub(crate) fn tar_stream_cap(&self) -> u64 {
        let per_entry_overhead = 4 * 1024;
        self.max_unpacked_bytes
            .saturating_add(MIB)
            .saturating_add((self.max_files as u64).saturating_mul(per_entry_overhead))
    }
}

/// "5 MiB", "64 KiB" or "1000 bytes", for error messages.
pub(crate) fn human(n: u64) -> String {
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

pub(crate) fn archive_too_large(len: u64, limits: &PackageLimits) -> PackageError {
    PackageError::whole(
        PackageErrorKind::TooLarge,
        format!(
            "the archive is {len} bytes, over the {} limit",
            human(limits.max_archive_bytes)
        ),
    )
}

pub(crate) fn unpacked_too_large(limits: &PackageLimits) -> PackageError {
    PackageError::whole(
        PackageErrorKind::TooLarge,
        format!(
            "the package unpacks to more than {}",
            human(limits.max_unpacked_bytes)
        ),
    )
}

/// Counts files and bytes against the limits as each file is taken in.
pub(crate) struct Budget<'a> {
    limits: &'a PackageLimits,
    files: usize,
    bytes: u64,
}

impl<'a> Budget<'a> {
    pub(crate) fn new(limits: &'a PackageLimits) -> Self {
        Self {
            limits,
            files: 0,
            bytes: 0,
        }
    }

    /// Takes in a file whose size is already known (its text is in memory).
    pub(crate) fn count(&mut self, path: &str, len: u64) -> Result<(), PackageError> {
        self.one_more_file()?;
        self.fits(path, len)?;
        self.bytes += len;
        Ok(())
    }

    /// Reads one file, giving up as soon as it passes the per-file or the package limit,
    /// whatever size its header declared.
    pub(crate) fn read(
        &mut self,
        path: &str,
        declared: u64,
        reader: impl Read,
    ) -> Result<Vec<u8>, PackageError> {
        self.one_more_file()?;
        self.fits(path, declared)?;
        let left = self.limits.max_unpacked_bytes.saturating_sub(self.bytes);
        let allowance = self.limits.max_file_bytes.min(left);
        let mut buf = Vec::with_capacity(declared.min(allowance).min(MIB) as usize);
        reader
            .take(allowance.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| {
                PackageError::at(
                    PackageErrorKind::Archive,
                    path,
                    format!("could not be read: {e}"),
                )
            })?;
        let len = buf.len() as u64;
        self.fits(path, len)?;
        self.bytes += len;
        Ok(buf)
    }

    fn one_more_file(&mut self) -> Result<(), PackageError> {
        self.files += 1;
        if self.files > self.limits.max_files {
            return Err(PackageError::whole(
                PackageErrorKind::TooLarge,
                format!("the package has more than {} files", self.limits.max_files),
            ));
        }
        Ok(())
    }

    fn fits(&self, path: &str, len: u64) -> Result<(), PackageError> {
        if len > self.limits.max_file_bytes {
            return Err(PackageError::at(
                PackageErrorKind::TooLarge,
                path,
                format!(
                    "is larger than the {} file limit",
                    human(self.limits.max_file_bytes)
                ),
            ));
        }
        if self.bytes.saturating_add(len) > self.limits.max_unpacked_bytes {
            return Err(unpacked_too_large(self.limits));
        }
        Ok(())
    }
}
