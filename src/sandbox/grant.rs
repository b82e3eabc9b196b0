//! A run's grant: what the manifest asked for, bounded by what the operator and the app
//! allow. Ops consult it on the host side at every call.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::broker::host_allowed;
use crate::package::{Manifest, MemoryScope};

const MIB: u64 = 1024 * 1024;

/// Limits of SPEC §4. As operator/app configuration they are ceilings; on a run they are
/// what is enforced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub timeout_ms: u64,
    pub cpu_ms: u64,
    pub memory_mb: u64,
    pub max_output_bytes: u64,
    pub max_state_bytes: u64,
    pub max_fetches: u32,
    pub max_fetch_response_bytes: u64,
    pub max_event_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 60_000,
            cpu_ms: 2_000,
            memory_mb: 64,
            max_output_bytes: MIB,
            max_state_bytes: MIB,
            max_fetches: 100,
            max_fetch_response_bytes: 10 * MIB,
            max_event_bytes: MIB,
        }
    }
}

impl Limits {
    pub fn wall(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn cpu(&self) -> Duration {
        Duration::from_millis(self.cpu_ms)
    }

    pub fn heap_bytes(&self) -> usize {
        usize::try_from(self.memory_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }
}

/// Everything a run may do, checked by the ops.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunGrant {
    pub fetch_hosts: Vec<String>,
    pub connections: Vec<String>,
    pub tools: Vec<String>,
    pub llm: Vec<String>,
    pub memory: Vec<MemoryScope>,
    pub limits: Limits,
}

impl RunGrant {
    /// The manifest's permissions with its limits clamped to `ceilings`: a manifest may
    /// lower a limit, never raise it.
    pub fn from_manifest(manifest: &Manifest, ceilings: &Limits) -> RunGrant {
        let asked = &manifest.limits;
        let clamp = |asked: Option<u64>, ceiling: u64| asked.map_or(ceiling, |a| a.min(ceiling));
        let limits = Limits {
            timeout_ms: clamp(asked.timeout_ms, ceilings.timeout_ms),
            cpu_ms: clamp(asked.cpu_ms, ceilings.cpu_ms),
            memory_mb: clamp(asked.memory_mb, ceilings.memory_mb),
            ..ceilings.clone()
        };
        let p = &manifest.permissions;
        RunGrant {
            fetch_hosts: p.fetch.clone(),
            connections: p.connections.clone(),
            tools: p.tools.clone(),
            llm: p.llm.clone(),
            memory: p.memory.clone(),
            limits,
        }
    }

    pub fn allows_host(&self, host: &str) -> bool {
        host_allowed(&self.fetch_hosts, host)
    }

    pub fn allows_connection(&self, name: &str) -> bool {
        self.connections.iter().any(|c| c == name)
    }

    pub fn allows_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t == name)
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.llm.iter().any(|pattern| glob_match(pattern, model))
    }

    pub fn allows_memory(&self, scope: MemoryScope) -> bool {
        self.memory.contains(&scope)
    }
}

/// Matches `text` against a pattern where `*` stands for any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let tail: Vec<&str> = parts.collect();
    let Some((last, middle)) = tail.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_provider_wildcards() {
        assert!(glob_match("openai/*", "openai/gpt-4o"));
        assert!(!glob_match("openai/*", "anthropic/claude"));
        assert!(glob_match("openai/gpt-4o", "openai/gpt-4o"));
        assert!(!glob_match("openai/gpt-4o", "openai/gpt-4o-mini"));
        assert!(glob_match("*/mini", "openai/mini"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXcYYb"));
        assert!(!glob_match("ab*ba", "aba"));
    }
}
