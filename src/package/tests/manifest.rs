//! Manifest rejections: each names `agent.json` and the field at fault.

use serde_json::json;

use super::*;

const MANIFEST: PackageErrorKind = PackageErrorKind::Manifest;
const AGENT_JSON: Option<&str> = Some("agent.json");

#[track_caller]
fn refused(edit: impl FnOnce(&mut Value), needle: &str) {
    assert_err(with_manifest(edit), MANIFEST, AGENT_JSON, needle);
}

#[test]
fn unknown_fields_are_refused_by_name() {
    refused(|m| m["colour"] = json!("red"), "unknown field `colour`");
    refused(
        |m| m["permissions"]["network"] = json!([]),
        "permissions: unknown field `network`",
    );
    refused(
        |m| m["limits"]["heap_mb"] = json!(1),
        "limits: unknown field `heap_mb`",
    );
}

#[test]
fn manifest_must_be_an_object() {
    let e = AgentPackage::from_files(json!(["@a/b"]), good_files(), &limits());
    assert_err(e, MANIFEST, AGENT_JSON, "must be a JSON object");
}

#[test]
fn name_is_required_and_must_be_scoped() {
    refused(
        |m| _ = m.as_object_mut().map(|o| o.remove("name")),
        "name is required",
    );
    for bad in [
        "acme/x",
        "@acme",
        "@Acme/x",
        "@acme/X",
        "@acme/-x",
        "@/x",
        "@acme/",
        "@acme/x/y",
        "@acme/x y",
        "@acme/ü",
    ] {
        refused(|m| m["name"] = json!(bad), "name: ");
    }
    let long = "a".repeat(65);
    refused(|m| m["name"] = json!(format!("@acme/{long}")), "1-64");
    refused(|m| m["name"] = json!(7), "name: invalid type");
    let ok = "a".repeat(64);
    let p = with_manifest(|m| m["name"] = json!(format!("@9.x_y-z/{ok}"))).expect("valid name");
    assert_eq!(p.manifest.scope(), "9.x_y-z");
}

#[test]
fn version_must_be_semver() {
    refused(
        |m| _ = m.as_object_mut().map(|o| o.remove("version")),
        "version is required",
    );
    for bad in ["1.0", "v1.0.0", "1.0.0.0", "latest", ""] {
        refused(|m| m["version"] = json!(bad), "version: ");
    }
    let p = with_manifest(|m| m["version"] = json!("2.0.0-rc.1+build.5")).expect("pre-release");
    assert_eq!(p.manifest.version.pre.as_str(), "rc.1");
}

#[test]
fn entry_must_be_a_relative_js_path() {
    for bad in [
        "../main.js",
        "/main.js",
        "lib\\util.js",
        "C:/main.js",
        "lib//util.js",
    ] {
        refused(|m| m["entry"] = json!(bad), "entry: ");
    }
    for bad in ["main.ts", "data.json", "lib/", "", ".hidden.js"] {
        refused(|m| m["entry"] = json!(bad), ".js or .mjs");
    }
}

#[test]
fn entry_must_exist() {
    let e = with_manifest(|m| m["entry"] = json!("lib/missing.js"));
    assert_err(e, PackageErrorKind::Missing, AGENT_JSON, "lib/missing.js");
    // The default entry, main.js, is required when `entry` is absent.
    let m = json!({ "name": "@a/b", "version": "1.0.0" });
    let files = [("index.js".to_string(), "export default 1".to_string())];
    let e = AgentPackage::from_files(m, files.into(), &limits());
    assert_err(e, PackageErrorKind::Missing, AGENT_JSON, "main.js");
}

#[test]
fn schemas_must_compile_as_2020_12() {
    refused(
        |m| m["input"] = json!({ "type": "strin" }),
        "input: not a valid JSON Schema",
    );
    refused(
        |m| m["output"] = json!({ "minimum": "five" }),
        "output: not a valid JSON Schema",
    );
    refused(|m| m["input"] = json!(42), "input: ");
    // No network at upload: a remote reference cannot be resolved.
    refused(
        |m| m["output"] = json!({ "$ref": "https://example.com/schema.json" }),
        "output: ",
    );
    // 2020-12 keywords are understood.
    let p = with_manifest(|m| {
        m["input"] = json!({ "type": "array", "prefixItems": [{ "type": "string" }] })
    })
    .expect("2020-12 schema");
    assert!(p.validate_input(&json!(["x"])).is_ok());
    assert!(p.validate_input(&json!([1])).is_err());
}

#[test]
fn memory_scopes_are_the_three_names() {
    for bad in ["user", "End_User", "global", ""] {
        refused(
            |m| m["permissions"]["memory"] = json!([bad]),
            "permissions.memory: unknown variant",
        );
    }
    let p = with_manifest(|m| m["permissions"]["memory"] = json!(["org", "app", "end_user"]))
        .expect("all three");
    assert_eq!(p.manifest.permissions.memory.len(), 3);
}

#[test]
fn limits_are_positive_integers() {
    for key in ["timeout_ms", "cpu_ms", "memory_mb"] {
        refused(
            |m| m["limits"][key] = json!(0),
            &format!("limits.{key}: must be a positive"),
        );
        refused(|m| m["limits"][key] = json!(-5), &format!("limits.{key}: "));
        refused(
            |m| m["limits"][key] = json!(1.5),
            &format!("limits.{key}: "),
        );
        refused(
            |m| m["limits"][key] = json!("100"),
            &format!("limits.{key}: "),
        );
    }
    refused(|m| m["limits"] = json!([]), "limits must be a JSON object");
}

#[test]
fn fetch_patterns_are_hostnames_or_subdomain_wildcards() {
    for bad in [
        "https://api.example.com",
        "api.example.com/v1",
        "api.example.com:443",
        "*",
        "*.com",
        "api.*.com",
        "API.example.com",
        "",
        "-api.example.com",
        "api..example.com",
        "api.example.com.",
        "[::1]",
        "user@api.example.com",
    ] {
        refused(
            |m| m["permissions"]["fetch"] = json!([bad]),
            "permissions.fetch: ",
        );
    }
    let good = json!([
        "api.example.com",
        "*.acme.dev",
        "localhost",
        "10.0.0.1",
        "x-y.z9.io"
    ]);
    let p = with_manifest(|m| m["permissions"]["fetch"] = good).expect("good hosts");
    assert_eq!(p.manifest.permissions.fetch.len(), 5);
}

#[test]
fn llm_patterns_are_provider_slash_model() {
    for bad in [
        "gpt-4o",
        "*",
        "*/*",
        "openai/",
        "/gpt-4o",
        "openai/gpt*",
        "OpenAI/gpt-4o",
        "openai/gpt 4o",
    ] {
        refused(
            |m| m["permissions"]["llm"] = json!([bad]),
            "permissions.llm: ",
        );
    }
    let good = json!([
        "openai/*",
        "openai/gpt-4o",
        "openrouter/meta-llama/llama-3:8b"
    ]);
    let p = with_manifest(|m| m["permissions"]["llm"] = good).expect("good models");
    assert_eq!(p.manifest.permissions.llm.len(), 3);
}

#[test]
fn connection_and_tool_names_are_checked() {
    refused(
        |m| m["permissions"]["tools"] = json!([""]),
        "permissions.tools: ",
    );
    refused(
        |m| m["permissions"]["connections"] = json!(["acme api"]),
        "permissions.connections: ",
    );
    refused(
        |m| m["permissions"]["tools"] = json!("lookup"),
        "permissions.tools: invalid type",
    );
}

#[test]
fn field_types_are_checked() {
    refused(|m| m["description"] = json!(1), "description: invalid type");
    refused(
        |m| m["retry_on_node_lost"] = json!("yes"),
        "retry_on_node_lost: invalid type",
    );
    refused(
        |m| m["permissions"] = json!(null),
        "permissions must be a JSON object",
    );
}

#[test]
fn manifest_file_must_be_json_text() {
    let mut entries = good_entries("");
    entries[0].1 = b"{ \"name\": \"@a/b\", ".to_vec();
    let e = AgentPackage::from_archive_bytes(&tgz_of(&entries), &limits());
    assert_err(e, MANIFEST, AGENT_JSON, "EOF");
    entries[0].1 = b"\xff\xfe{}".to_vec();
    let e = AgentPackage::from_archive_bytes(&zip_of(&entries), &limits());
    assert_err(e, PackageErrorKind::Encoding, AGENT_JSON, "UTF-8");
    // A UTF-8 byte-order mark, as Windows editors write, is tolerated.
    entries[0].1 = format!("\u{feff}{}", manifest_text()).into_bytes();
    AgentPackage::from_archive_bytes(&zip_of(&entries), &limits()).expect("BOM");
}

#[test]
fn manifest_file_must_exist() {
    let entries: Vec<_> = good_entries("").into_iter().skip(1).collect();
    let e = AgentPackage::from_archive_bytes(&tgz_of(&entries), &limits());
    assert_err(
        e,
        PackageErrorKind::Missing,
        AGENT_JSON,
        "missing at the package root",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write_tree(dir.path(), &entries);
    let e = AgentPackage::load_path(dir.path(), &limits());
    assert_err(
        e,
        PackageErrorKind::Missing,
        AGENT_JSON,
        "missing at the package root",
    );
}

#[test]
fn derived_deserialize_also_denies_unknown_fields() {
    let mut m = manifest();
    m["permissions"]["network"] = json!([]);
    let e = serde_json::from_value::<crate::package::Manifest>(m).expect_err("unknown");
    assert!(e.to_string().contains("network"), "{e}");
}
