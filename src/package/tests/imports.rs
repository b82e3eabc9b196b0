//! `scan_imports` on tricky sources, `resolve_import`'s rules, and import checks at load.

use super::*;
use crate::package::{resolve_import, resolve_import_in, scan_imports};

const IMPORT: PackageErrorKind = PackageErrorKind::Import;

#[track_caller]
fn scans(source: &str, expected: &[&str]) {
    assert_eq!(scan_imports(source), expected, "source:\n{source}");
}

#[test]
fn static_import_forms() {
    scans(
        r#"
import a from "./a.js";
import * as b from './b.js';
import { c, d as e } from "./c.js";
import f, { g } from "./f.js";
import h, * as i from "./h.js";
import "./side-effect.js";
import { "string name" as j } from "./j.js";
import from from "./from.js";
import data from "./data.json" with { type: "json" };
import.meta.url;
"#,
        &[
            "./a.js",
            "./b.js",
            "./c.js",
            "./f.js",
            "./h.js",
            "./side-effect.js",
            "./j.js",
            "./from.js",
            "./data.json",
        ],
    );
}

#[test]
fn export_from_forms() {
    scans(
        "export * from './all.js';\nexport * as ns from \"./ns.js\";\n\
         export { a, b as c, default } from \"./named.js\";\n\
         export { local };\nexport const x = 1;\nexport default function () {}\n",
        &["./all.js", "./ns.js", "./named.js"],
    );
}

#[test]
fn multi_line_import_lists() {
    scans(
        "import {\n  alpha,\n  beta as b, // trailing comment\n  /* block */ gamma,\n}\n  from\n  \"./multi.js\"\n",
        &["./multi.js"],
    );
}

#[test]
fn export_list_without_from_does_not_swallow_the_next_statement() {
    scans(
        "export { a }\nexport * from \"./b.js\"\nimport c from './c.js'",
        &["./b.js", "./c.js"],
    );
}

#[test]
fn comments_are_skipped() {
    scans(
        "// import x from './line.js';\n/* import y from './block.js';\n import('./dyn.js') */\n\
         /** @example import z from './doc.js' */\nimport real from './real.js';",
        &["./real.js"],
    );
}

#[test]
fn strings_are_skipped() {
    scans(
        r#"const s = "import x from './in-double.js'";
const t = 'export * from "./in-single.js"';
const u = "escaped \" import y from './esc.js' \"";
const v = 'it\'s import("./quoted.js")';
import ok from "./ok.js";"#,
        &["./ok.js"],
    );
}

#[test]
fn template_literals_are_skipped_but_their_expressions_are_scanned() {
    scans(
        "const a = `import x from './in-template.js'`;\n\
         const b = `line1\n import y from './multi-line-template.js'\n`;\n\
         const c = `${ { k: `nested ${ 1 } import z from './nested.js'` }.k } import w from './after.js'`;\n\
         const d = `${await import(\"./inside-expr.js\")}`;\n\
         import ok from './ok.js';",
        &["./inside-expr.js", "./ok.js"],
    );
}

#[test]
fn regex_literals_with_quotes_are_skipped() {
    scans(
        r#"const re = /["']import x from '.\/re.js'["']/g;
const cls = /[/"]/.test(s) ? 1 : 2;
if (ok) { /'/.test(s); }
const half = a / 2, other = b / 3; import y from "./after-division.js";
function f() { return /"/.source; }
import z from './ok.js';"#,
        &["./after-division.js", "./ok.js"],
    );
}

#[test]
fn regex_and_import_on_one_line() {
    // Were the regex taken for a division, its quote would open a string that swallows
    // the import that follows on the same line.
    scans(
        r#"const q = /["']/g; import a from "./a.js"; const s = "x";"#,
        &["./a.js"],
    );
    scans(
        "let n = 0; n = n++ / 2; import b from './b.js'; const c = 'x';",
        &["./b.js"],
    );
    scans(
        "function f(s) { return /'/.test(s) } import k from './k.js'; const t = 'x';",
        &["./k.js"],
    );
    scans(
        r"const r = /\/'/; import e from './e.js'; const s = 'x';",
        &["./e.js"],
    );
}

#[test]
fn division_is_not_mistaken_for_a_regex() {
    scans(
        "const x = (a) / 2; import z from './z.js'; const q = 1 / 3;\n\
         const y = arr[0] / 4; import w from './w.js'; const r = y / 3;\n\
         const v = 10 / 5; import u from './u.js'; const t = 1 / 2;",
        &["./z.js", "./w.js", "./u.js"],
    );
}

#[test]
fn dynamic_imports() {
    scans(
        "const a = await import('./a.js');\n\
         const b = await import(\"./b.json\", { with: { type: \"json\" } });\n\
         const c = await import(`./c.js`);\n\
         const d = await import(name);\n\
         const e = await import('./e-' + lang + '.js');\n\
         const f = await import(`./f-${lang}.js`);\n\
         const g = [...import('./g.js')];",
        &["./a.js", "./b.json", "./c.js", "./g.js"],
    );
}

#[test]
fn member_and_property_named_import_are_not_imports() {
    scans(
        "loader.import('./not.js'); const o = { import: './no.js', export: 1 };\n\
         class K { import(x) { return x; } }\nconst e = obj.export;",
        &[],
    );
}

#[test]
fn escapes_in_specifiers_are_decoded_and_duplicates_listed_once() {
    scans(
        "import a from '\\x2e/a.js'; import b from \"./\\u0062.js\"; import c from './a.js';",
        &["./a.js", "./b.js"],
    );
}

#[test]
fn hashbang_bom_and_odd_input_do_not_panic() {
    scans(
        "\u{feff}#!/usr/bin/env node\nimport a from './a.js'",
        &["./a.js"],
    );
    for src in [
        "'unterminated",
        "`unterminated ${",
        "/* open",
        "import",
        "import(",
        "export {",
        "a / ",
        "é",
        "ü import x from './x.js'",
        "\\",
        "x = 'a\\",
    ] {
        let _ = scan_imports(src);
    }
    scans("const café = 1; import x from './x.js'", &["./x.js"]);
}

#[test]
fn resolve_relative_specifiers() {
    let files = good_files();
    assert_eq!(
        resolve_import_in(&files, "./lib/util.js", "main.js"),
        Ok("lib/util.js".into())
    );
    assert_eq!(
        resolve_import_in(&files, "../data.json", "lib/util.js"),
        Ok("data.json".into())
    );
    assert_eq!(
        resolve_import_in(&files, "./strings.mjs", "lib/util.js"),
        Ok("lib/strings.mjs".into())
    );
    assert_eq!(
        resolve_import_in(&files, "./././main.js", "main.js"),
        Ok("main.js".into())
    );
    let p = AgentPackage::from_files(manifest(), files, &limits()).expect("good");
    assert_eq!(
        resolve_import(&p, "../main.js", "lib/util.js"),
        Ok("main.js".into())
    );
}

#[test]
fn resolve_refuses_each_kind_naming_the_referrer() {
    let files = good_files();
    for (spec, why) in [
        ("https://esm.sh/lodash", "URL imports (https:)"),
        ("file:///etc/passwd", "URL imports (file:)"),
        (
            "data:text/javascript,export default 1",
            "URL imports (data:)",
        ),
        ("node:fs", "URL imports (node:)"),
        ("npm:lodash", "URL imports (npm:)"),
        ("jsr:@std/path", "URL imports (jsr:)"),
        ("lodash", "bare specifiers"),
        ("@scope/pkg", "bare specifiers"),
        ("/etc/passwd", "absolute paths"),
        ("//evil.example/x.js", "absolute paths"),
        ("..", "a directory"),
        ("", "empty import specifier"),
        ("../main.js", "outside the package"),
        ("./lib/../../x.js", "outside the package"),
        (
            "./missing.js",
            "imports ./missing.js, which is not in the package",
        ),
        ("./lib/util", "not in the package"),
        ("./lib", "not in the package"),
        ("./lib//util.js", "empty path segment"),
        ("./README.md", "not a module"),
    ] {
        let e = resolve_import_in(&files, spec, "main.js").expect_err(spec);
        assert_eq!(e.kind, IMPORT, "{spec}");
        assert_eq!(e.file.as_deref(), Some("main.js"), "{spec}");
        assert!(e.reason.contains(why), "{spec}: {}", e.reason);
        assert!(e.reason.contains(spec), "{spec}: {}", e.reason);
    }
}

#[test]
fn bad_imports_are_refused_at_load_in_every_form() {
    let bad = "import { x } from './helpers.js';\nexport default async () => x;\n";
    let e = with_files(&[("lib/bad.js", bad)]);
    assert_err(
        e,
        IMPORT,
        Some("lib/bad.js"),
        "imports ./helpers.js, which is not in the package",
    );

    let mut entries = good_entries("");
    entries.push((
        "lib/bad.mjs".into(),
        b"export * from 'https://cdn.example/x.js';".to_vec(),
    ));
    let e = AgentPackage::from_archive_bytes(&zip_of(&entries), &limits());
    assert_err(e, IMPORT, Some("lib/bad.mjs"), "https://cdn.example/x.js");

    entries.pop();
    entries.push((
        "main.js".into(),
        b"const fs = await import('node:fs');".to_vec(),
    ));
    entries.remove(1);
    let dir = tempfile::tempdir().expect("tempdir");
    write_tree(dir.path(), &entries);
    let e = AgentPackage::load_path(dir.path(), &limits());
    assert_err(e, IMPORT, Some("main.js"), "node:fs");
}

#[test]
fn only_module_files_are_scanned() {
    // Import-looking text in non-module files is data, not code.
    let p = with_files(&[
        ("notes.txt", "import x from 'lodash'"),
        ("lib/types.d.ts", "import 'x'"),
    ]);
    p.expect("text files are not scanned");
}

#[test]
fn upload_form_paths_are_checked() {
    let e = with_files(&[("../escape.js", "export {}")]);
    assert_err(
        e,
        PackageErrorKind::Path,
        Some("../escape.js"),
        "escapes the package root",
    );
    let e = with_files(&[("/abs.js", "export {}")]);
    assert_err(e, PackageErrorKind::Path, Some("/abs.js"), "absolute path");
    let e = with_files(&[("nul\0.js", "export {}")]);
    assert_err(e, PackageErrorKind::Path, Some("nul\0.js"), "NUL");
    let e = with_files(&[("./", "x")]);
    assert_err(e, PackageErrorKind::Path, Some("./"), "not a file name");
    let e = with_files(&[(".env", "SECRET=1")]);
    assert_err(e, PackageErrorKind::Path, Some(".env"), "hidden files");
    let e = with_files(&[("agent.json", "{}")]);
    assert_err(e, PackageErrorKind::Path, Some("agent.json"), "`manifest`");
    let e = with_files(&[("./main.js", "export default 1")]);
    assert_err(e, PackageErrorKind::Path, Some("main.js"), "appears twice");
}

#[test]
fn upload_form_limits_are_checked() {
    let few = PackageLimits {
        max_files: 3,
        ..limits()
    };
    let e = AgentPackage::from_files(manifest(), good_files(), &few);
    assert_err(e, PackageErrorKind::TooLarge, None, "more than 3 files");
    let big = "a".repeat(3000);
    let small = PackageLimits {
        max_file_bytes: 2999,
        ..limits()
    };
    let mut files = good_files();
    files.insert("big.txt".into(), big);
    let e = AgentPackage::from_files(manifest(), files.clone(), &small);
    assert_err(e, PackageErrorKind::TooLarge, Some("big.txt"), "file limit");
    let total = PackageLimits {
        max_unpacked_bytes: 3500,
        ..limits()
    };
    let e = AgentPackage::from_files(manifest(), files, &total);
    assert_err(
        e,
        PackageErrorKind::TooLarge,
        None,
        "unpacks to more than 3500 bytes",
    );
}
