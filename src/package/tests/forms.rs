//! Acceptance of a good package in every form, digests, wrappers and schema checks.

use serde_json::json;

use super::*;
use crate::package::MemoryScope;

fn good_from_files() -> AgentPackage {
    AgentPackage::from_files(manifest(), good_files(), &limits()).expect("good package")
}

#[test]
fn json_form_is_accepted_with_every_field() {
    let p = good_from_files();
    let m = &p.manifest;
    assert_eq!(m.name, "@acme/invoice-triage");
    assert_eq!((m.scope(), m.short_name()), ("acme", "invoice-triage"));
    assert_eq!(m.version, semver::Version::new(1, 2, 0));
    assert_eq!(m.entry, "main.js");
    assert_eq!(
        m.permissions.memory,
        vec![MemoryScope::EndUser, MemoryScope::App]
    );
    assert_eq!(m.limits.cpu_ms, Some(2000));
    assert!(m.retry_on_node_lost);
    assert!(p.entry_source().contains("export default"));
    assert_eq!(p.files.len(), GOOD_FILES.len());
    assert!(!p.files.contains_key("agent.json"));
    assert_eq!(p.digest.len(), 64);
}

#[test]
fn all_three_forms_give_the_same_digest() {
    let from_json = good_from_files();
    let entries = good_entries("");
    let from_tgz = AgentPackage::from_archive_bytes(&tgz_of(&entries), &limits()).expect("tgz");
    let from_zip = AgentPackage::from_archive_bytes(&zip_of(&entries), &limits()).expect("zip");
    let dir = tempfile::tempdir().expect("tempdir");
    write_tree(dir.path(), &entries);
    let from_dir = AgentPackage::load_path(dir.path(), &limits()).expect("dir");
    for other in [&from_tgz, &from_zip, &from_dir] {
        assert_eq!(other.digest, from_json.digest);
        assert_eq!(other.files, from_json.files);
        assert_eq!(other.manifest, from_json.manifest);
    }
}

#[test]
fn digest_follows_content_not_manifest_formatting() {
    let base = good_from_files().digest;
    let mut entries = good_entries("");
    // Same manifest, other key order and whitespace.
    let mut keys: Vec<(String, serde_json::Value)> = manifest()
        .as_object()
        .expect("object")
        .clone()
        .into_iter()
        .collect();
    keys.reverse();
    let body: Vec<String> = keys
        .iter()
        .map(|(k, v)| format!("{}: {}", json!(k), v))
        .collect();
    entries[0].1 = format!("{{\n  {}\n}}", body.join(",\n  ")).into_bytes();
    let reordered = AgentPackage::from_archive_bytes(&tgz_of(&entries), &limits()).expect("tgz");
    assert_eq!(reordered.digest, base);

    let changed = with_files(&[("README.md", "# changed\n")]).expect("ok");
    assert_ne!(changed.digest, base);
    let renamed = with_manifest(|m| m["version"] = json!("1.2.1")).expect("ok");
    assert_ne!(renamed.digest, base);
}

#[test]
fn archives_are_detected_by_magic_bytes_not_extension() {
    let entries = good_entries("");
    let dir = tempfile::tempdir().expect("tempdir");
    let zip_named_tgz = dir.path().join("pkg.tar.gz");
    std::fs::write(&zip_named_tgz, zip_of(&entries)).expect("write");
    let tgz_named_bin = dir.path().join("pkg.bin");
    std::fs::write(&tgz_named_bin, tgz_of(&entries)).expect("write");
    let a = AgentPackage::load_path(&zip_named_tgz, &limits()).expect("zip");
    let b = AgentPackage::load_path(&tgz_named_bin, &limits()).expect("tgz");
    assert_eq!(a.digest, b.digest);

    let text = dir.path().join("pkg.zip");
    std::fs::write(&text, "just text").expect("write");
    let e = AgentPackage::load_path(&text, &limits());
    assert_err(e, PackageErrorKind::Archive, None, "gzip-compressed tar");
}

#[test]
fn load_path_of_a_missing_path_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = AgentPackage::load_path(&dir.path().join("nope"), &limits());
    assert_err(e, PackageErrorKind::Missing, None, "cannot read");
}

#[test]
fn a_single_wrapper_directory_is_stripped() {
    let base = good_from_files().digest;
    let entries = good_entries("package/");
    let mut tar_entries = vec![T::Dir("package/")];
    tar_entries.extend(entries.iter().map(|(p, d)| T::File(p, d)));
    let p = from_tgz(&tar_entries).expect("wrapped tgz");
    assert_eq!(p.digest, base);
    assert!(p.files.contains_key("lib/util.js"));

    // A macOS zip: a wrapper folder plus __MACOSX resource forks (binary, ignored).
    let mut zip_entries = vec![Z::Dir("acme-x-1a2b3c/")];
    let entries = good_entries("acme-x-1a2b3c/");
    zip_entries.extend(entries.iter().map(|(p, d)| Z::File(p, d)));
    zip_entries.push(Z::File(
        "__MACOSX/acme-x-1a2b3c/._main.js",
        b"\x00\x05\x16\x07\xff",
    ));
    zip_entries.push(Z::File("__MACOSX/acme-x-1a2b3c/Icon", b"\xff\xfe"));
    let p = from_zip(&zip_entries).expect("wrapped zip");
    assert_eq!(p.digest, base);
}

#[test]
fn github_style_tarball_with_pax_global_header_is_accepted() {
    let entries = good_entries("acme-x-0123abc/");
    let mut tar_entries = vec![
        T::Special(EntryType::XGlobalHeader, "pax_global_header"),
        T::Dir("acme-x-0123abc/"),
    ];
    tar_entries.extend(entries.iter().map(|(p, d)| T::File(p, d)));
    let p = from_tgz(&tar_entries).expect("github tarball");
    assert_eq!(p.digest, good_from_files().digest);
}

#[test]
fn nested_manifest_without_a_single_wrapper_is_missing() {
    let mut entries = good_entries("pkg/");
    entries.push(("other/x.js".into(), b"export {}".to_vec()));
    let e = AgentPackage::from_archive_bytes(&tgz_of(&entries), &limits());
    assert_err(
        e,
        PackageErrorKind::Missing,
        Some("agent.json"),
        "found pkg/agent.json",
    );
}

#[test]
fn dot_slash_entries_and_dotfiles_in_archives() {
    // What `tar -C dir -czf x.tgz .` writes, with a .git directory and .DS_Store around.
    let entries = good_entries("./");
    let mut tar_entries = vec![T::Dir("./"), T::Dir("./.git"), T::File("./lib/", b"")];
    tar_entries.extend(entries.iter().map(|(p, d)| T::File(p, d)));
    tar_entries.push(T::File("./.git/index", b"\xff\xfe binary"));
    tar_entries.push(T::File("./.DS_Store", b"\x00\x00\x00\x01Bud1"));
    tar_entries.push(T::File("./lib/._util.js", b"\x00\x05\x16\x07"));
    let p = from_tgz(&tar_entries).expect("dot-slash tarball");
    assert_eq!(p.digest, good_from_files().digest);
}

#[test]
fn entry_may_be_written_with_dot_slash_and_be_an_mjs() {
    let p = with_manifest(|m| m["entry"] = json!("./lib/strings.mjs")).expect("ok");
    assert_eq!(p.manifest.entry, "lib/strings.mjs");
    assert_eq!(p.entry_source(), "export const x = \"y\";\n");
}

#[test]
fn minimal_manifest_takes_defaults() {
    let m = json!({ "name": "@a/b", "version": "0.1.0" });
    let files = [(
        "main.js".to_string(),
        "export default async () => 1;".to_string(),
    )];
    let p = AgentPackage::from_files(m, files.into(), &limits()).expect("minimal");
    assert_eq!(p.manifest.entry, "main.js");
    assert_eq!(p.manifest.permissions, Default::default());
    assert!(!p.manifest.retry_on_node_lost);
    assert!(p.input_schema.is_none() && p.output_schema.is_none());
    assert_eq!(p.validate_input(&json!("anything")), Ok(()));
    assert_eq!(p.validate_output(&json!(null)), Ok(()));
}

#[test]
fn input_and_output_are_validated_with_pointer_paths() {
    let p = good_from_files();
    assert_eq!(p.validate_input(&json!({ "invoice_id": "x" })), Ok(()));
    let err = p
        .validate_input(&json!({ "invoice_id": 5 }))
        .expect_err("bad type");
    assert!(err.starts_with("/invoice_id: "), "{err}");
    assert!(err.contains("string"), "{err}");
    let err = p.validate_input(&json!({})).expect_err("missing");
    assert!(err.starts_with("(root): "), "{err}");
    assert!(err.contains("invoice_id"), "{err}");
    let err = p.validate_output(&json!([1])).expect_err("not object");
    assert!(err.starts_with("(root): "), "{err}");
}

#[test]
fn many_schema_errors_are_listed_compactly() {
    let props: serde_json::Map<String, serde_json::Value> = (0..15)
        .map(|i| (format!("k{i}"), json!({ "type": "string" })))
        .collect();
    let p = with_manifest(|m| m["input"] = json!({ "type": "object", "properties": props }))
        .expect("ok");
    let bad: serde_json::Map<String, serde_json::Value> =
        (0..15).map(|i| (format!("k{i}"), json!(i))).collect();
    let err = p.validate_input(&json!(bad)).expect_err("15 errors");
    assert_eq!(err.matches("; ").count(), 10, "{err}");
    assert!(err.ends_with("and 5 more"), "{err}");
}

#[test]
fn manifest_round_trips_through_serde() {
    let p = good_from_files();
    let stored = serde_json::to_value(&p.manifest).expect("serialise");
    let back: crate::package::Manifest = serde_json::from_value(stored.clone()).expect("derive");
    assert_eq!(back, p.manifest);
    let reparsed = crate::package::Manifest::from_json(&stored).expect("parse");
    assert_eq!(reparsed, p.manifest);
}

#[test]
fn error_display_names_the_file() {
    let e = PackageError::new(
        PackageErrorKind::Syntax,
        Some("main.js".into()),
        "bad token",
    );
    assert_eq!(e.to_string(), "main.js: bad token");
    let e = PackageError::new(PackageErrorKind::TooLarge, None, "too big");
    assert_eq!(e.to_string(), "too big");
    assert_eq!(PackageErrorKind::TooLarge.as_str(), "too_large");
}
