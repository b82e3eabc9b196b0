//! `agent.json`: its types, and the checks that make a manifest acceptable at upload.
//!
//! Parsing goes field by field (rather than through the derived `Deserialize`) so that each
//! error names the field at fault; the derive stays for reading back stored manifests.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{is_module, paths, PackageError, PackageErrorKind, MANIFEST_FILE};

/// The parsed `agent.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `@scope/name`.
    pub name: String,
    pub version: semver::Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Package path of the entry module, normalised (a leading "./" is dropped).
    #[serde(default = "default_entry")]
    pub entry: String,
    /// JSON Schema 2020-12 for run input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// JSON Schema 2020-12 for run output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default)]
    pub permissions: Permissions,
    #[serde(default)]
    pub limits: ManifestLimits,
    /// Whether a run whose node died may be started again elsewhere; off by default since
    /// the agent may have had side effects.
    #[serde(default)]
    pub retry_on_node_lost: bool,
    /// A run whose node died resumes elsewhere by replaying its journal (every host
    /// call's answer is stored before the isolate sees it).
    pub durable: bool,
}

/// What the agent may reach; everything is denied unless listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Permissions {
    /// Hostnames (`api.example.com`) or wildcards (`*.example.com`, subdomains only).
    pub fetch: Vec<String>,
    pub connections: Vec<String>,
    pub tools: Vec<String>,
    /// `provider/model` or `provider/*`.
    pub llm: Vec<String>,
    pub memory: Vec<MemoryScope>,
}

/// Where memory lives: per end-user of the app, per app, or shared across the org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryScope {
    EndUser,
    App,
    Org,
}

/// Per-agent limits; they may lower, never raise, the app's ceilings (applied at run time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManifestLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
}

fn default_entry() -> String {
    "main.js".to_owned()
}

const FIELDS: &[&str] = &[
    "name",
    "version",
    "description",
    "entry",
    "input",
    "output",
    "permissions",
    "limits",
    "retry_on_node_lost",
    "durable",
];
const PERMISSION_FIELDS: &[&str] = &["fetch", "connections", "tools", "llm", "memory"];
const LIMIT_FIELDS: &[&str] = &["timeout_ms", "cpu_ms", "memory_mb"];

/// Attempts a durable run gets when the nodes (or sandbox processes) under it keep dying.
const DURABLE_ATTEMPTS: u32 = 5;

impl Manifest {
    /// Whether a run of this agent whose node or sandbox process died on `attempt` is
    /// tried again: a durable one resumes by replay (a few times, so that a run which
    /// kills every host it meets ends), one with `retry_on_node_lost` restarts once.
    pub fn tries_again_after_loss(&self, attempt: u32) -> bool {
        if self.durable {
            attempt < DURABLE_ATTEMPTS
        } else {
            self.retry_on_node_lost && attempt < 2
        }
    }

    /// Parses and validates `agent.json`; errors name `agent.json` and the field at fault.
    /// Schemas are only compiled later, with the package.
    pub fn from_json(json: &Value) -> Result<Manifest, PackageError> {
        parse(json).map_err(|r| PackageError::at(PackageErrorKind::Manifest, MANIFEST_FILE, r))
    }

    /// "acme" for "@acme/x".
    pub fn scope(&self) -> &str {
        self.split_name().0
    }

    /// "x" for "@acme/x".
    pub fn short_name(&self) -> &str {
        self.split_name().1
    }

    fn split_name(&self) -> (&str, &str) {
        let bare = self.name.strip_prefix('@').unwrap_or(&self.name);
        bare.split_once('/').unwrap_or(("", bare))
    }
}

fn parse(json: &Value) -> Result<Manifest, String> {
    let obj = object(json, "", FIELDS)?;
    let name: String = field(obj, "", "name")?.ok_or("name is required")?;
    if !valid_name(&name) {
        return Err(format!(
            "name: {name:?} must look like @scope/name (lowercase letters, digits, '-', '.', \
             '_'; each part 1-64 characters, starting with a letter or digit)"
        ));
    }
    let version = field(obj, "", "version")?.ok_or("version is required")?;
    let entry = field::<String>(obj, "", "entry")?.unwrap_or_else(default_entry);
    let entry = check_entry(&entry)?;
    let permissions = match obj.get("permissions") {
        Some(v) => parse_permissions(v)?,
        None => Permissions::default(),
    };
    let limits = match obj.get("limits") {
        Some(v) => parse_limits(v)?,
        None => ManifestLimits::default(),
    };
    Ok(Manifest {
        name,
        version,
        description: field::<Option<String>>(obj, "", "description")?.flatten(),
        entry,
        input: field::<Option<Value>>(obj, "", "input")?.flatten(),
        output: field::<Option<Value>>(obj, "", "output")?.flatten(),
        permissions,
        limits,
        retry_on_node_lost: field(obj, "", "retry_on_node_lost")?.unwrap_or(false),
        durable: field(obj, "", "durable")?.unwrap_or(false),
    })
}

/// The value as an object with no keys outside `known`.
fn object<'a>(v: &'a Value, ctx: &str, known: &[&str]) -> Result<&'a Map<String, Value>, String> {
    let obj = v.as_object().ok_or_else(|| match ctx {
        "" => "the manifest must be a JSON object".to_owned(),
        _ => format!("{ctx} must be a JSON object"),
    })?;
    if let Some(key) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        let prefix = if ctx.is_empty() {
            String::new()
        } else {
            format!("{ctx}: ")
        };
        return Err(format!(
            "{prefix}unknown field `{key}` (known fields: {})",
            known.join(", ")
        ));
    }
    Ok(obj)
}

/// One field, deserialized with an error that says which.
fn field<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    ctx: &str,
    key: &str,
) -> Result<Option<T>, String> {
    obj.get(key)
        .map(|v| T::deserialize(v).map_err(|e| format!("{ctx}{key}: {e}")))
        .transpose()
}

fn valid_name(name: &str) -> bool {
    let part = |p: &str| {
        (1..=64).contains(&p.len())
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
            })
    };
    name.strip_prefix('@')
        .and_then(|r| r.split_once('/'))
        .is_some_and(|(scope, short)| part(scope) && part(short))
}

fn check_entry(entry: &str) -> Result<String, String> {
    let path = paths::normalize(entry).map_err(|r| format!("entry: {entry:?} {r}"))?;
    if path.is_empty() || paths::is_ignored(&path) || !is_module(&path) {
        return Err(format!(
            "entry: {entry:?} must be the relative path of a .js or .mjs file in the package"
        ));
    }
    Ok(path)
}

fn parse_permissions(v: &Value) -> Result<Permissions, String> {
    const CTX: &str = "permissions.";
    let obj = object(v, "permissions", PERMISSION_FIELDS)?;
    let list = |key: &str| field::<Vec<String>>(obj, CTX, key).map(Option::unwrap_or_default);
    let perms = Permissions {
        fetch: list("fetch")?,
        connections: list("connections")?,
        tools: list("tools")?,
        llm: list("llm")?,
        memory: field(obj, CTX, "memory")?.unwrap_or_default(),
    };
    check_all("fetch", &perms.fetch, valid_fetch_pattern, "must be a lowercase hostname like api.example.com or a wildcard like *.example.com (no scheme, path, port or bare *)")?;
    check_all(
        "llm",
        &perms.llm,
        valid_llm_pattern,
        "must look like provider/model or provider/* (e.g. openai/gpt-4o, openai/*)",
    )?;
    let name_rule = "must be a name of 1-128 characters without spaces";
    check_all("connections", &perms.connections, valid_ref_name, name_rule)?;
    check_all("tools", &perms.tools, valid_ref_name, name_rule)?;
    Ok(perms)
}

fn check_all(key: &str, items: &[String], ok: fn(&str) -> bool, rule: &str) -> Result<(), String> {
    match items.iter().find(|p| !ok(p)) {
        Some(bad) => Err(format!("permissions.{key}: {bad:?} {rule}")),
        None => Ok(()),
    }
}

fn parse_limits(v: &Value) -> Result<ManifestLimits, String> {
    const CTX: &str = "limits.";
    let obj = object(v, "limits", LIMIT_FIELDS)?;
    let positive = |key: &str| match field::<u64>(obj, CTX, key)? {
        Some(0) => Err(format!("{CTX}{key}: must be a positive integer")),
        n => Ok(n),
    };
    Ok(ManifestLimits {
        timeout_ms: positive("timeout_ms")?,
        cpu_ms: positive("cpu_ms")?,
        memory_mb: positive("memory_mb")?,
    })
}

/// `api.example.com` or `*.example.com`; a wildcard needs at least two labels after it so
/// that `*.com` cannot open a whole top-level domain.
fn valid_fetch_pattern(p: &str) -> bool {
    match p.strip_prefix("*.") {
        Some(domain) => domain.contains('.') && valid_hostname(domain),
        None => valid_hostname(p),
    }
}

fn valid_hostname(h: &str) -> bool {
    h.len() <= 253
        && h.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// `provider/model` or `provider/*`; the model part may hold '/', ':' and '.', as
/// router-style model ids do, but '*' only on its own.
fn valid_llm_pattern(p: &str) -> bool {
    let Some((provider, model)) = p.split_once('/') else {
        return false;
    };
    let provider_ok = !provider.is_empty()
        && provider.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    let model_ok = model == "*"
        || (!model.is_empty()
            && !model.contains('*')
            && !model.chars().any(|c| c.is_whitespace() || c.is_control()));
    provider_ok && model_ok
}

fn valid_ref_name(n: &str) -> bool {
    (1..=128).contains(&n.chars().count())
        && !n.chars().any(|c| c.is_whitespace() || c.is_control())
}
