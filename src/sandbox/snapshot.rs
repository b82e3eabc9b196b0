//! The startup snapshot: runtime-js evaluated once per process, so each isolate
//! restores a ready heap instead of compiling and running ~4k lines of JS.

use std::sync::OnceLock;

use deno_core::{JsRuntimeForSnapshot, RuntimeOptions};
use tracing::{info, warn};

use super::ops;

static SNAPSHOT: OnceLock<Option<&'static [u8]>> = OnceLock::new();

/// The process's snapshot, made on first use; `None` if the engine could not make one
/// (isolates are then bootstrapped from source, which is slower but equivalent).
pub fn runtime_snapshot() -> Option<&'static [u8]> {
    *SNAPSHOT.get_or_init(|| {
        // A thread of its own: on QuickJS every runtime a thread creates counts against
        // that thread's lifetime budget (see notes/quickjs-engine.md).
        let made = std::thread::Builder::new()
            .name("atoll-snapshot".into())
            .spawn(make)
            .ok()
            .and_then(|h| h.join().ok())
            .flatten();
        match made {
            Some(bytes) => {
                info!(bytes = bytes.len(), "runtime-js startup snapshot ready");
                Some(&*Box::leak(bytes))
            }
            None => {
                warn!("no startup snapshot; isolates will bootstrap from source");
                None
            }
        }
    })
}

fn make() -> Option<Box<[u8]>> {
    let started = std::time::Instant::now();
    let runtime = JsRuntimeForSnapshot::try_new(RuntimeOptions {
        extensions: vec![ops::extension(true)],
        ..Default::default()
    });
    match runtime {
        Ok(runtime) => {
            let bytes = runtime.snapshot();
            info!(
                ms = started.elapsed().as_millis() as u64,
                "made startup snapshot"
            );
            Some(bytes)
        }
        Err(e) => {
            warn!(error = %e, "startup snapshot failed");
            None
        }
    }
}

/// Adopts a snapshot another process of this same binary made (a sandbox process gets
/// the server's); empty means none could be made. Answers false if this process already
/// has one.
pub fn install(bytes: Vec<u8>) -> bool {
    let snapshot = (!bytes.is_empty()).then(|| &*Box::leak(bytes.into_boxed_slice()));
    SNAPSHOT.set(snapshot).is_ok()
}
