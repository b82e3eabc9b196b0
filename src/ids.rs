//! Crate-wide basics every layer uses: record ids and the wall clock.

/// A new id: `{prefix}_` and 32 hex digits of a random UUID (`run_…`, `org_…`, `key_…`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Now, in Unix milliseconds (the API's and the store's timestamps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
