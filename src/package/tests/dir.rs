//! Directory packages: symlinks and special files refused, dotfiles skipped, limits.

use std::os::unix::fs::symlink;

use super::*;

fn good_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tree(dir.path(), &good_entries(""));
    dir
}

fn load(dir: &tempfile::TempDir) -> Result<AgentPackage, PackageError> {
    AgentPackage::load_path(dir.path(), &limits())
}

#[test]
fn dotfiles_and_dot_directories_are_skipped() {
    let dir = good_dir();
    let junk = vec![
        (
            ".git/objects/ab/cdef".to_string(),
            b"\x78\x01\xff\x00".to_vec(),
        ),
        (
            ".DS_Store".to_string(),
            b"\x00\x00\x00\x01Bud1\xff".to_vec(),
        ),
        ("lib/.eslintrc.json".to_string(), b"{}".to_vec()),
    ];
    write_tree(dir.path(), &junk);
    let p = load(&dir).expect("dotfiles skipped");
    assert_eq!(p.files.len(), GOOD_FILES.len());
    // A symlink inside a skipped directory is never looked at.
    symlink("/etc/passwd", dir.path().join(".git/HEAD")).expect("symlink");
    load(&dir).expect("still fine");
}

#[test]
fn node_modules_is_not_skipped() {
    let dir = good_dir();
    write_tree(
        dir.path(),
        &[(
            "node_modules/x/index.js".into(),
            b"import 'lodash';".to_vec(),
        )],
    );
    let e = load(&dir);
    assert_err(
        e,
        PackageErrorKind::Import,
        Some("node_modules/x/index.js"),
        "lodash",
    );
}

#[test]
fn symlinked_files_are_refused() {
    let dir = good_dir();
    let outside = tempfile::NamedTempFile::new().expect("outside");
    symlink(outside.path(), dir.path().join("lib/secret.js")).expect("symlink");
    let e = load(&dir);
    assert_err(
        e,
        PackageErrorKind::Path,
        Some("lib/secret.js"),
        "symbolic link",
    );
}

#[test]
fn symlinked_directories_are_refused_not_followed() {
    let dir = good_dir();
    let outside = tempfile::tempdir().expect("outside");
    symlink(outside.path(), dir.path().join("vendor")).expect("symlink");
    let e = load(&dir);
    assert_err(e, PackageErrorKind::Path, Some("vendor"), "symbolic link");
}

#[test]
fn special_files_are_refused() {
    let dir = good_dir();
    let _socket =
        std::os::unix::net::UnixListener::bind(dir.path().join("lib/sock")).expect("socket");
    let e = load(&dir);
    assert_err(
        e,
        PackageErrorKind::Path,
        Some("lib/sock"),
        "not a regular file",
    );
}

#[test]
fn binary_files_are_refused() {
    let dir = good_dir();
    write_tree(
        dir.path(),
        &[("assets/logo.png".into(), b"\x89PNG\r\n\x1a\n".to_vec())],
    );
    let e = load(&dir);
    assert_err(
        e,
        PackageErrorKind::Encoding,
        Some("assets/logo.png"),
        "not UTF-8",
    );
}

#[test]
fn odd_names_on_disk_are_refused() {
    let dir = good_dir();
    write_tree(dir.path(), &[("lib/a\\b.js".into(), b"export {}".to_vec())]);
    let e = load(&dir);
    assert_err(e, PackageErrorKind::Path, Some("lib/a\\b.js"), "backslash");
}

#[test]
fn large_files_and_trees_are_refused() {
    let dir = good_dir();
    let big = vec![b'a'; 2000];
    write_tree(dir.path(), &[("big.txt".into(), big)]);
    let small = PackageLimits {
        max_file_bytes: 1999,
        ..limits()
    };
    let e = AgentPackage::load_path(dir.path(), &small);
    assert_err(
        e,
        PackageErrorKind::TooLarge,
        Some("big.txt"),
        "1999 bytes file limit",
    );

    let few = PackageLimits {
        max_files: 3,
        ..limits()
    };
    let e = AgentPackage::load_path(dir.path(), &few);
    assert_err(e, PackageErrorKind::TooLarge, None, "more than 3 files");

    let dir = good_dir();
    for i in 0..5 {
        std::fs::create_dir_all(dir.path().join(format!("empty/{i}"))).expect("mkdir");
    }
    let few_dirs = PackageLimits {
        max_files: 6,
        ..limits()
    };
    let e = AgentPackage::load_path(dir.path(), &few_dirs);
    assert_err(
        e,
        PackageErrorKind::TooLarge,
        None,
        "more than 6 directories",
    );
}
