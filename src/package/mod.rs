//! TEMPORARY minimal package module (replaced by the full loader).
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default)]
pub struct PackageLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryScope {
    EndUser,
    App,
    Org,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Permissions {
    pub fetch: Vec<String>,
    pub connections: Vec<String>,
    pub tools: Vec<String>,
    pub llm: Vec<String>,
    pub memory: Vec<MemoryScope>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ManifestLimits {
    pub timeout_ms: Option<u64>,
    pub cpu_ms: Option<u64>,
    pub memory_mb: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: semver::Version,
    pub description: Option<String>,
    #[serde(default = "main_js")]
    pub entry: String,
    pub input: Option<Value>,
    pub output: Option<Value>,
    #[serde(default)]
    pub permissions: Permissions,
    #[serde(default)]
    pub limits: ManifestLimits,
    #[serde(default)]
    pub retry_on_node_lost: bool,
}
fn main_js() -> String {
    "main.js".into()
}

#[derive(Debug, thiserror::Error)]
#[error("{}{reason}", file.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct PackageError {
    pub file: Option<String>,
    pub reason: String,
}

pub struct AgentPackage {
    pub manifest: Manifest,
    pub files: BTreeMap<String, Arc<str>>,
    pub input_schema: Option<Arc<jsonschema::Validator>>,
    pub output_schema: Option<Arc<jsonschema::Validator>>,
    pub digest: String,
}

fn err(file: Option<&str>, reason: impl Into<String>) -> PackageError {
    PackageError {
        file: file.map(str::to_owned),
        reason: reason.into(),
    }
}

impl AgentPackage {
    pub fn load_path(path: &Path, _limits: &PackageLimits) -> Result<AgentPackage, PackageError> {
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(path.join("agent.json"))
                .map_err(|e| err(Some("agent.json"), e.to_string()))?,
        )
        .map_err(|e| err(Some("agent.json"), e.to_string()))?;
        let mut files = BTreeMap::new();
        fn walk(
            root: &Path,
            dir: &Path,
            files: &mut BTreeMap<String, String>,
        ) -> std::io::Result<()> {
            for e in std::fs::read_dir(dir)? {
                let e = e?;
                let p = e.path();
                if p.is_dir() {
                    walk(root, &p, files)?;
                } else {
                    let rel = p
                        .strip_prefix(root)
                        .unwrap_or(&p)
                        .to_string_lossy()
                        .replace('\\', "/");
                    if rel != "agent.json" {
                        files.insert(rel, std::fs::read_to_string(&p)?);
                    }
                }
            }
            Ok(())
        }
        walk(path, path, &mut files).map_err(|e| err(None, e.to_string()))?;
        Self::from_files(manifest, files, _limits)
    }
    pub fn from_files(
        manifest: Value,
        files: BTreeMap<String, String>,
        _limits: &PackageLimits,
    ) -> Result<AgentPackage, PackageError> {
        let manifest: Manifest =
            serde_json::from_value(manifest).map_err(|e| err(Some("agent.json"), e.to_string()))?;
        let compile = |s: &Option<Value>| {
            s.as_ref()
                .map(|s| jsonschema::draft202012::options().build(s).map(Arc::new))
                .transpose()
                .map_err(|e| err(Some("agent.json"), e.to_string()))
        };
        Ok(AgentPackage {
            input_schema: compile(&manifest.input)?,
            output_schema: compile(&manifest.output)?,
            manifest,
            files: files.into_iter().map(|(k, v)| (k, Arc::from(v))).collect(),
            digest: String::new(),
        })
    }
    pub fn validate_input(&self, v: &Value) -> Result<(), String> {
        match &self.input_schema {
            Some(s) => s.validate(v).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
    pub fn validate_output(&self, v: &Value) -> Result<(), String> {
        match &self.output_schema {
            Some(s) => s.validate(v).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

pub fn resolve_import(
    package: &AgentPackage,
    specifier: &str,
    referrer: &str,
) -> Result<String, PackageError> {
    if !(specifier.starts_with("./") || specifier.starts_with("../")) {
        return Err(err(
            Some(referrer),
            format!("import '{specifier}' is not a relative path"),
        ));
    }
    let mut parts: Vec<&str> = referrer.split('/').collect();
    parts.pop();
    for seg in specifier.split('/') {
        match seg {
            "." | "" => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(err(
                        Some(referrer),
                        format!("import '{specifier}' leaves the package"),
                    ));
                }
            }
            s => parts.push(s),
        }
    }
    let path = parts.join("/");
    if package.files.contains_key(&path) {
        Ok(path)
    } else {
        Err(err(
            Some(referrer),
            format!("imports {specifier}, which is not in the package"),
        ))
    }
}
