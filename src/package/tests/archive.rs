//! Archive rejections: hostile names, non-regular entries, bombs, corruption, limits.

use super::*;
use crate::package::limits::Budget;

const PATH: PackageErrorKind = PackageErrorKind::Path;

/// A good tarball with `extra` members appended.
fn tgz_with(extra: Vec<T>) -> Result<AgentPackage, PackageError> {
    let entries = good_entries("");
    let mut all: Vec<T> = entries.iter().map(|(p, d)| T::File(p, d)).collect();
    all.extend(extra);
    from_tgz(&all)
}

/// A good zip with `extra` members appended.
fn zip_with(extra: Vec<Z>) -> Result<AgentPackage, PackageError> {
    let entries = good_entries("");
    let mut all: Vec<Z> = entries.iter().map(|(p, d)| Z::File(p, d)).collect();
    all.extend(extra);
    from_zip(&all)
}

#[test]
fn tar_path_traversal_is_refused_naming_the_entry() {
    for (name, why) in [
        ("../evil.js", "escapes the package root"),
        ("lib/../../evil.js", "escapes the package root"),
        ("/etc/passwd", "absolute path"),
        ("lib\\evil.js", "backslash"),
        ("C:/evil.js", "drive letter"),
        ("lib//evil.js", "empty path segment"),
        ("lib\u{1b}[2Jevil.js", "control character"),
    ] {
        let e = tgz_with(vec![T::File(name, b"x")]);
        assert_err(e, PATH, Some(name), why);
    }
    let e = tgz_with(vec![T::Dir("../up/")]);
    assert_err(e, PATH, Some("../up/"), "escapes the package root");
}

#[test]
fn zip_slip_is_refused_naming_the_entry() {
    for (name, why) in [
        ("../evil.js", "escapes the package root"),
        ("a/../../evil.js", "escapes the package root"),
        ("/abs.js", "absolute path"),
        ("..\\evil.js", "backslash"),
        ("D:\\evil.js", "backslash"),
        ("D:evil.js", "drive letter"),
        ("nul\0.js", "NUL"),
    ] {
        let e = zip_with(vec![Z::File(name, b"x")]);
        assert_err(e, PATH, Some(name), why);
    }
}

#[test]
fn tar_links_and_special_files_are_refused() {
    let cases = [
        (
            T::Link(EntryType::Symlink, "lib/link.js", "/etc/passwd"),
            "symbolic link",
        ),
        (
            T::Link(EntryType::Link, "lib/hard.js", "main.js"),
            "hard link",
        ),
        (T::Special(EntryType::Char, "dev/null"), "a device"),
        (T::Special(EntryType::Block, "dev/sda"), "a device"),
        (T::Special(EntryType::Fifo, "pipe"), "named pipe"),
    ];
    for (entry, why) in cases {
        let name = match &entry {
            T::Link(_, n, _) | T::Special(_, n) => n.to_string(),
            _ => unreachable!(),
        };
        assert_err(tgz_with(vec![entry]), PATH, Some(&name), why);
    }
}

#[test]
fn zip_symlinks_are_refused() {
    let e = zip_with(vec![Z::Symlink("lib/link.js", "../../etc/passwd")]);
    assert_err(e, PATH, Some("lib/link.js"), "symbolic link");
}

#[test]
fn duplicate_entries_are_refused() {
    let e = tgz_with(vec![T::File("lib/util.js", b"export const evil = 1;")]);
    assert_err(e, PATH, Some("lib/util.js"), "appears twice");
    let e = tgz_with(vec![T::File("agent.json", b"{}")]);
    assert_err(e, PATH, Some("agent.json"), "appears twice");
    // Same file under two spellings.
    let e = tgz_with(vec![T::File("./main.js", b"export default 1;")]);
    assert_err(e, PATH, Some("main.js"), "appears twice");
}

#[test]
fn binary_files_are_refused_naming_the_file() {
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR";
    let e = tgz_with(vec![T::File("img/logo.png", png)]);
    assert_err(
        e,
        PackageErrorKind::Encoding,
        Some("img/logo.png"),
        "not UTF-8",
    );
    let e = zip_with(vec![Z::File("lib/blob.js", b"\xc3\x28")]);
    assert_err(
        e,
        PackageErrorKind::Encoding,
        Some("lib/blob.js"),
        "not UTF-8",
    );
}

#[test]
fn archive_byte_limit_is_checked_first() {
    let small = PackageLimits {
        max_archive_bytes: 100,
        ..limits()
    };
    // Garbage over the limit is refused for its size before its format is looked at.
    let e = AgentPackage::from_archive_bytes(&[0u8; 101], &small);
    assert_err(
        e,
        PackageErrorKind::TooLarge,
        None,
        "over the 100 bytes limit",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.zip");
    std::fs::write(&path, zip_of(&good_entries(""))).expect("write");
    let e = AgentPackage::load_path(&path, &small);
    assert_err(e, PackageErrorKind::TooLarge, None, "the archive is");
}

#[test]
fn gzip_bomb_is_stopped_at_the_file_limit() {
    let zeros = vec![b' '; 6 * 1024 * 1024];
    let bomb = tgz_with(vec![T::File("bomb.js", &zeros)]);
    assert_err(
        bomb,
        PackageErrorKind::TooLarge,
        Some("bomb.js"),
        "5 MiB file limit",
    );
    let bomb = zip_with(vec![Z::File("bomb.js", &zeros)]);
    assert_err(
        bomb,
        PackageErrorKind::TooLarge,
        Some("bomb.js"),
        "5 MiB file limit",
    );
}

#[test]
fn unpacked_total_is_limited() {
    let small = PackageLimits {
        max_unpacked_bytes: 4096,
        ..limits()
    };
    let filler = vec![b'a'; 2000];
    let mut entries = good_entries("");
    entries.push(("a.txt".into(), filler.clone()));
    entries.push(("b.txt".into(), filler));
    for bytes in [tgz_of(&entries), zip_of(&entries)] {
        let e = AgentPackage::from_archive_bytes(&bytes, &small);
        assert_err(
            e,
            PackageErrorKind::TooLarge,
            None,
            "unpacks to more than 4 KiB",
        );
    }
}

#[test]
fn file_count_is_limited() {
    let few = PackageLimits {
        max_files: GOOD_FILES.len() + 1,
        ..limits()
    };
    let mut entries = good_entries("");
    AgentPackage::from_archive_bytes(&tgz_of(&entries), &few).expect("exactly at the limit");
    entries.push(("one-more.txt".into(), b"x".to_vec()));
    for bytes in [tgz_of(&entries), zip_of(&entries)] {
        let e = AgentPackage::from_archive_bytes(&bytes, &few);
        assert_err(e, PackageErrorKind::TooLarge, None, "more than 6 files");
    }
}

#[test]
fn reading_stops_at_the_limit_whatever_the_header_declared() {
    // An endless reader that declared 10 bytes: the read must end, refused.
    let limits = limits();
    let mut budget = Budget::new(&limits);
    let e = budget
        .read("liar.js", 10, std::io::repeat(b'a'))
        .expect_err("endless");
    assert_eq!(e.kind, PackageErrorKind::TooLarge);
    assert_eq!(e.file.as_deref(), Some("liar.js"));
}

#[test]
fn huge_tar_metadata_is_stopped_by_the_stream_cap() {
    // A GNU long-name record is buffered whole by the tar reader; 2 MiB of it must be cut
    // at the stream cap (about 1 MiB over the tiny limits here), not read into memory.
    let tiny = PackageLimits {
        max_unpacked_bytes: 1000,
        max_files: 2,
        ..limits()
    };
    let name = vec![b'a'; 2 * 1024 * 1024];
    let mut tar = tar_bytes(&[T::Special(EntryType::GNULongName, "././@LongLink")]);
    tar.truncate(512);
    let mut h = Header::from_byte_slice(&tar[..512]).clone();
    h.set_size(name.len() as u64);
    h.set_cksum();
    let mut raw = h.as_bytes().to_vec();
    raw.extend_from_slice(&name);
    raw.extend(tar_bytes(&[T::File("agent.json", b"{}")]));
    let e = AgentPackage::from_archive_bytes(&gzip(&raw), &tiny);
    assert_err(
        e,
        PackageErrorKind::TooLarge,
        None,
        "unpacks to more than 1000 bytes",
    );
}

#[test]
fn corrupt_gzip_is_an_archive_error() {
    let good = tgz_of(&good_entries(""));
    let mid = good.len() / 2;
    let mut flipped = good.clone();
    flipped[mid] ^= 0x55;
    let mut bad_crc = good.clone();
    let crc_at = good.len() - 8;
    bad_crc[crc_at] ^= 0xff;
    for bytes in [
        flipped,
        bad_crc,
        good[..mid].to_vec(),
        good[..good.len() - 4].to_vec(),
        good[..10].to_vec(),
    ] {
        let e = AgentPackage::from_archive_bytes(&bytes, &limits()).expect_err("corrupt");
        assert_corrupt(&e);
    }
}

/// A corrupt stream is an Archive error, about the whole archive or about the package file
/// whose data was being inflated when the damage showed.
#[track_caller]
fn assert_corrupt(e: &PackageError) {
    assert_eq!(e.kind, PackageErrorKind::Archive, "{e}");
    match e.file.as_deref() {
        None => assert!(e.reason.contains("corrupt or truncated"), "{e}"),
        Some(f) => {
            assert!(
                f == "agent.json" || GOOD_FILES.iter().any(|(p, _)| *p == f),
                "{e}"
            );
            assert!(e.reason.contains("could not be read"), "{e}");
        }
    }
}

#[test]
fn every_truncation_of_a_tgz_fails_cleanly() {
    let good = tgz_of(&good_entries(""));
    for len in 2..good.len() {
        let e = AgentPackage::from_archive_bytes(&good[..len], &limits())
            .expect_err("truncated must not load");
        assert_corrupt(&e);
    }
}

#[test]
fn corrupt_or_truncated_zip_is_an_archive_error() {
    let good = zip_of(&good_entries(""));
    for len in [4, 30, good.len() / 2, good.len() - 1] {
        let e = AgentPackage::from_archive_bytes(&good[..len], &limits());
        assert_err(e, PackageErrorKind::Archive, None, "corrupt or truncated");
    }
    // Damaged file data: the CRC check names the entry.
    let mut damaged = good.clone();
    let at = local_data_offset(&damaged, "main.js") + 4;
    damaged[at] ^= 0x01;
    let e = AgentPackage::from_archive_bytes(&damaged, &limits()).expect_err("damaged");
    assert!(matches!(e.kind, PackageErrorKind::Archive), "{e}");
    assert_eq!(e.file.as_deref(), Some("main.js"), "{e}");
}

#[test]
fn unsupported_zip_compression_is_an_archive_error_naming_the_entry() {
    let mut bytes = zip_of(&good_entries(""));
    // Mark main.js as bzip2-compressed (method 12) in its local and central headers.
    let local = local_data_offset(&bytes, "main.js");
    let local_header = (0..local)
        .rev()
        .find(|&h| bytes[h..].starts_with(b"PK\x03\x04"))
        .expect("local header");
    bytes[local_header + 8] = 12;
    let central = (0..bytes.len() - 46)
        .find(|&h| bytes[h..].starts_with(b"PK\x01\x02") && bytes[h + 46..].starts_with(b"main.js"))
        .expect("central header");
    bytes[central + 10] = 12;
    let e = AgentPackage::from_archive_bytes(&bytes, &limits());
    assert_err(
        e,
        PackageErrorKind::Archive,
        Some("main.js"),
        "cannot be read",
    );
}

#[test]
fn every_truncation_of_a_zip_fails_cleanly() {
    let good = zip_of(&good_entries(""));
    for len in 0..good.len() {
        let e = AgentPackage::from_archive_bytes(&good[..len], &limits());
        let e = e.expect_err("truncated must not load");
        assert_eq!(e.kind, PackageErrorKind::Archive, "at {len}: {e}");
    }
}

/// Where the data of `name` starts, from its zip local file header.
fn local_data_offset(zip: &[u8], name: &str) -> usize {
    let u16_at = |i: usize| usize::from(u16::from_le_bytes([zip[i], zip[i + 1]]));
    (0..zip.len() - 30)
        .find(|&h| {
            zip[h..].starts_with(b"PK\x03\x04") && zip[h + 30..].starts_with(name.as_bytes())
        })
        .map(|h| h + 30 + u16_at(h + 26) + u16_at(h + 28))
        .expect("local header")
}
