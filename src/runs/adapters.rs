//! The sandbox's memory over the store, and small helpers the server shares.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tracing::warn;

use crate::host::{HostError, MemoryNamespace, MemoryStore};
use crate::ids::now_ms;
use crate::package::MemoryScope;
use crate::store::{MemoryNs, Store};

pub fn memory_ns(ns: &MemoryNamespace) -> MemoryNs {
    let (scope, app_id, end_user) = match ns.scope {
        MemoryScope::EndUser => (
            "end_user",
            ns.app_id.clone(),
            ns.end_user.clone().unwrap_or_default(),
        ),
        MemoryScope::App => ("app", ns.app_id.clone(), String::new()),
        MemoryScope::Org => ("org", String::new(), String::new()),
    };
    MemoryNs {
        org_id: ns.org_id.clone(),
        app_id,
        scope: scope.to_owned(),
        end_user,
    }
}

/// `ctx.memory` in the database.
pub struct StoreMemory(pub Arc<dyn Store>);

fn storage(e: crate::store::StoreError) -> HostError {
    warn!(error = %e, "memory store failed");
    HostError::new("storage_unavailable", "memory storage failed; try again")
}

#[async_trait]
impl MemoryStore for StoreMemory {
    async fn get(&self, ns: &MemoryNamespace, key: &str) -> Result<Option<Value>, HostError> {
        self.0
            .memory_get(&memory_ns(ns), key)
            .await
            .map_err(storage)
    }
    async fn set(&self, ns: &MemoryNamespace, key: &str, value: Value) -> Result<(), HostError> {
        self.0
            .memory_set(&memory_ns(ns), key, &value, now_ms())
            .await
            .map_err(storage)
    }
    async fn delete(&self, ns: &MemoryNamespace, key: &str) -> Result<bool, HostError> {
        self.0
            .memory_delete(&memory_ns(ns), key)
            .await
            .map_err(storage)
    }
    async fn list(
        &self,
        ns: &MemoryNamespace,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, HostError> {
        let rows = self
            .0
            .memory_list(
                &memory_ns(ns),
                prefix,
                None,
                limit.min(u32::MAX as usize) as u32,
            )
            .await
            .map_err(storage)?;
        Ok(rows.into_iter().map(|(k, _)| k).collect())
    }
}
