//! `atoll init [DIR]`: a new agent package that deploys and runs as it is — `agent.json`
//! (name, version, entry, input and output schemas), `main.js` using `ctx`, and an
//! `input.json` to run it with. Existing files are never overwritten.

use std::path::Path;

use serde_json::json;

use super::error::{CliError, CliResult, Exit};
use crate::package::{AgentPackage, PackageLimits};

const MAIN_JS: &str = r#"// The entry module of an atoll agent: its default export gets the run's input (checked
// against "input" in agent.json) and `ctx`, and returns the output (checked against
// "output"). See the README's "Inside the sandbox" for everything `ctx` offers.
export default async (input, ctx) => {
  // State is what the previous successful run (same agent and end-user) left.
  const runs = (ctx.state?.runs ?? 0) + 1;
  ctx.setState({ runs });

  console.log(`greeting ${input.name} (run ${runs})`); // a `log` event
  ctx.emit("greeted", { name: input.name }); //           an `emit` event

  return { greeting: `Hello, ${input.name}!`, runs, run_id: ctx.run.id };
};
"#;

/// A package name made from a directory name: `@local/<name>`, lowercased, other
/// characters as '-'.
fn name_for(dir: &Path) -> String {
    let base = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let mut short: String = base
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if !short.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        short = "agent".into();
    }
    format!("@local/{short}")
}

/// `atoll init`.
pub fn init(dir: &Path, name: Option<&str>) -> CliResult<Exit> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::usage(format!("cannot create {}: {e}", dir.display())))?;
    let name = name.map_or_else(|| name_for(dir), str::to_owned);
    let manifest = json!({
        "name": name,
        "version": "0.1.0",
        "description": "A new atoll agent: greets by name and counts its runs",
        "entry": "main.js",
        "input": {
            "type": "object",
            "properties": { "name": { "type": "string", "minLength": 1 } },
            "required": ["name"],
            "additionalProperties": false
        },
        "output": {
            "type": "object",
            "properties": {
                "greeting": { "type": "string" },
                "runs": { "type": "integer", "minimum": 1 },
                "run_id": { "type": "string" }
            },
            "required": ["greeting", "runs", "run_id"],
            "additionalProperties": false
        },
        "permissions": {}
    });
    // The same check as at upload, before anything is written: a bad --name stops here.
    let files = [("main.js".to_owned(), MAIN_JS.to_owned())].into();
    AgentPackage::from_files(manifest.clone(), files, &PackageLimits::default()).map_err(|e| {
        CliError::usage(format!("cannot make that package: {e}"))
            .hint("--name takes @scope/name (lowercase letters, digits, '-', '.', '_')")
    })?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    let planned = [
        ("agent.json", pretty(&manifest)),
        ("main.js", MAIN_JS.to_owned()),
        ("input.json", pretty(&json!({ "name": "Ada" }))),
    ];
    let taken: Vec<&str> = planned
        .iter()
        .filter(|(f, _)| dir.join(f).exists())
        .map(|(f, _)| *f)
        .collect();
    if !taken.is_empty() {
        return Err(CliError::usage(format!(
            "{} already has {}; nothing was written",
            dir.display(),
            taken.join(", ")
        ))
        .hint("run `atoll init` in an empty directory, or name a new one: `atoll init my-agent`"));
    }
    for (file, text) in &planned {
        write_new(&dir.join(file), text)?;
    }
    let shown = dir.display();
    println!("created {name} in {shown}: agent.json, main.js, input.json");
    println!();
    println!("next:");
    println!("  atoll deploy {shown}");
    println!(
        "  atoll run {name} --input @{} --wait",
        dir.join("input.json").display()
    );
    Ok(Exit::Success)
}

/// Creates a file that must not exist yet (another process may have made it meanwhile).
fn write_new(path: &Path, text: &str) -> CliResult<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scaffold_loads_and_is_never_written_twice() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("My Agent");
        assert_eq!(init(&dir, None).ok(), Some(Exit::Success));
        let package = AgentPackage::load_path(&dir, &PackageLimits::default()).expect("loads");
        assert_eq!(package.manifest.name, "@local/my-agent");
        let input: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("input.json")).expect("read"))
                .expect("json");
        package
            .validate_input(&input)
            .expect("the sample input fits the schema");
        std::fs::write(dir.join("main.js"), "// mine").expect("write");
        let again = init(&dir, None).expect_err("refused");
        assert_eq!(again.exit, Exit::Usage);
        assert_eq!(
            std::fs::read_to_string(dir.join("main.js")).ok().as_deref(),
            Some("// mine")
        );
        assert!(init(&root.path().join("x"), Some("bad name")).is_err());
    }
}
