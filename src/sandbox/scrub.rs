//! The heap scrub run on a QuickJS isolate just before it is disposed, so that disposal
//! really frees its heap.
//!
//! Why: v8x (QuickJS-ng behind rusty_v8's API) caches, in every `FunctionTemplate`, a
//! reference to the prototype object it built (`{constructor: f, ...}`); templates are
//! boxes that are never freed, and isolate disposal never drops those references. Each
//! such prototype keeps `Object.prototype` alive, and through it the whole context: at
//! teardown QuickJS only returns the blocks nobody references, so ~0.9 MB per isolate
//! (more when the agent left data on its heap) stays allocated and unreachable forever —
//! neither `malloc_trim` nor ending the thread gives it back (notes/quickjs-engine.md,
//! "Where the ~0.9 MB per runtime goes").
//!
//! What: with the isolate entered and no JS running any more, visit every object on the
//! QuickJS heap (`v82jsc_heap_objects`) and cut the two edges that tie the leaked
//! prototypes to the rest of the heap: set the object's prototype to `null` and delete
//! its own `constructor` property. What stays leaked is then a few empty objects per
//! template instead of a whole context.
//!
//! Safety of the walk itself: it runs no JS and raises no exception. Proxies are skipped
//! (their traps are JS); so is deletion on v8x's named-interceptor objects (their delete
//! hook calls into Rust). Non-extensible objects keep their prototype (changing it would
//! throw). The runtime's memory limit is lifted first, so an isolate that died at its
//! heap limit neither fails an allocation here nor calls the near-heap-limit callback
//! again; any exception an operation still left pending is cleared. Everything is inside
//! `catch_unwind`: a failure skips (part of) the scrub, never the disposal.
//!
//! Default on; `ATOLL_NO_SCRUB=1` in the environment turns it off (for measurements).

#![cfg(feature = "quickjs")]

use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Instant;

use deno_core::{v8, JsRuntime};

/// QuickJS-ng's `JSValue` on 64-bit targets: `JS_NAN_BOXING` is only defined when
/// `INTPTR_MAX < INT64_MAX`, so values are this 16-byte struct, passed and returned by
/// value (as in v8x's own `quickjs_sys.rs`).
#[repr(C)]
#[derive(Clone, Copy)]
struct JSValue {
    u: JSValueUnion,
    tag: i64,
}

#[repr(C)]
#[derive(Clone, Copy)]
union JSValueUnion {
    int32: i32,
    float64: f64,
    ptr: *mut c_void,
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<JSValue>() == 16);

#[repr(C)]
struct JSContext {
    _private: [u8; 0],
}

#[repr(C)]
struct JSRuntime {
    _private: [u8; 0],
}

type JSAtom = u32;
type JSClassID = u32;

const JS_TAG_NULL: i64 = 2;
const JS_ATOM_NULL: JSAtom = 0;
/// The tag v8x gives the handle slot of a `Local<Context>`; its pointer is the
/// `JSContext*` (v8x `core.rs`, `JS_TAG_V8_CONTEXT` / `ctx_of`).
const JS_TAG_V8_CONTEXT: i64 = 0x7632;
/// The class v8x registers for `ObjectTemplate::set_named_property_handler` objects,
/// whose `delete_property` hook calls into Rust.
const NAMED_HANDLER_CLASS: &std::ffi::CStr = c"v8x_named_handler";
/// Class ids this scrub remembers a verdict for; ids above it are treated as unknown
/// custom classes (not deleted from). QuickJS-ng has ~70 built-in classes, v8x adds 2.
const CLASS_CACHE: usize = 1024;

// Defined by QuickJS-ng (vendored in v8x and linked into every quickjs build through
// v8x's `libquickjs.a`); signatures as in its `quickjs.h` and v8x's `quickjs_sys.rs`.
extern "C" {
    fn JS_GetRuntime(ctx: *mut JSContext) -> *mut JSRuntime;
    fn JS_SetMemoryLimit(rt: *mut JSRuntime, limit: usize);
    /// Declared `bool` in C: must be bound as `bool`, not `c_int`.
    fn JS_HasException(ctx: *mut JSContext) -> bool;
    fn JS_GetException(ctx: *mut JSContext) -> JSValue;
    fn JS_FreeValue(ctx: *mut JSContext, v: JSValue);
    fn JS_NewAtom(ctx: *mut JSContext, s: *const c_char) -> JSAtom;
    fn JS_FreeAtom(ctx: *mut JSContext, atom: JSAtom);
    fn JS_GetClassID(v: JSValue) -> JSClassID;
    /// Returns a duplicated atom (or `JS_ATOM_NULL`), to be freed.
    fn JS_GetClassName(rt: *mut JSRuntime, class_id: JSClassID) -> JSAtom;
    fn JS_IsProxy(v: JSValue) -> bool;
    /// -1 only for a Proxy (whose trap may throw); 0 or 1 otherwise.
    fn JS_IsExtensible(ctx: *mut JSContext, obj: JSValue) -> c_int;
    fn JS_SetPrototype(ctx: *mut JSContext, obj: JSValue, proto: JSValue) -> c_int;
    fn JS_DeleteProperty(ctx: *mut JSContext, obj: JSValue, prop: JSAtom, flags: c_int) -> c_int;
    /// v8x's patch: a `malloc`ed array of new references to every live object.
    fn v82jsc_heap_objects(ctx: *mut JSContext, count: *mut usize) -> *mut JSValue;
    fn v82jsc_free_heap_objects(ctx: *mut JSContext, objects: *mut JSValue, count: usize);
}

const UNSET: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;
static MODE: AtomicU8 = AtomicU8::new(UNSET);

/// Totals over the process, for tests and measurements.
static SCRUBBED: AtomicU64 = AtomicU64::new(0);
static NOT_SCRUBBED: AtomicU64 = AtomicU64::new(0);
static NANOS: AtomicU64 = AtomicU64::new(0);

/// Whether isolates are scrubbed before disposal: yes unless `ATOLL_NO_SCRUB` is set to
/// something other than `0` (read once).
pub(super) fn enabled() -> bool {
    match MODE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => {
            let off = std::env::var_os("ATOLL_NO_SCRUB").is_some_and(|v| !v.is_empty() && v != "0");
            // A concurrent `set_enabled` wins over the environment.
            let _ = MODE.compare_exchange(
                UNSET,
                if off { OFF } else { ON },
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            MODE.load(Ordering::Relaxed) == ON
        }
    }
}

/// Turns the scrub on or off for the whole process (measurements compare both; a
/// sandbox process follows its server's setting).
pub(super) fn set_enabled(on: bool) {
    MODE.store(if on { ON } else { OFF }, Ordering::Relaxed);
}

/// What one scrub did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Scrubbed {
    /// Objects on the heap.
    pub objects: usize,
    /// Objects whose prototype was set to `null`.
    pub unlinked: usize,
    /// Objects left without an own `constructor` (deleted, or there was none).
    pub ctor_free: usize,
    /// Operations that failed (their exception was cleared).
    pub failed: usize,
}

/// Process totals: isolates scrubbed, isolates that could not be (no context found or a
/// panic), and nanoseconds spent scrubbing.
#[cfg(test)]
pub(super) fn totals() -> (u64, u64, u64) {
    (
        SCRUBBED.load(Ordering::Relaxed),
        NOT_SCRUBBED.load(Ordering::Relaxed),
        NANOS.load(Ordering::Relaxed),
    )
}

/// Scrubs `runtime`'s heap if scrubbing is enabled. The isolate must be entered on this
/// thread, with no JS running and none to run again: the next thing to happen to it is
/// its disposal.
pub(super) fn before_dispose(runtime: &mut JsRuntime) -> Option<Scrubbed> {
    if !enabled() || cfg!(not(target_pointer_width = "64")) {
        return None;
    }
    let started = Instant::now();
    let scrubbed = catch_unwind(AssertUnwindSafe(|| scrub_runtime(runtime)))
        .ok()
        .flatten();
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    NANOS.fetch_add(nanos, Ordering::Relaxed);
    match scrubbed {
        Some(s) => {
            SCRUBBED.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(
                objects = s.objects,
                unlinked = s.unlinked,
                ctor_free = s.ctor_free,
                failed = s.failed,
                micros = nanos / 1000,
                "isolate heap scrubbed"
            );
        }
        None => {
            NOT_SCRUBBED.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("isolate heap not scrubbed: no QuickJS context found");
        }
    }
    scrubbed
}

fn scrub_runtime(runtime: &mut JsRuntime) -> Option<Scrubbed> {
    let context = runtime.main_context();
    let isolate: &mut v8::Isolate = runtime.v8_isolate();
    v8::scope!(let scope, isolate);
    let context = v8::Local::new(scope, context);
    let ctx = js_context(&context)?;
    // SAFETY: `ctx` is the live main context of this isolate, which the caller entered on
    // this thread; no JS is running in it (see `before_dispose`). The `Local` keeps the
    // context referenced until the walk is done.
    Some(unsafe { scrub_heap(ctx) })
}

/// The `JSContext*` behind a `Local<Context>`: v8x's handle slot is a `JSValue` tagged
/// `JS_TAG_V8_CONTEXT` whose pointer is the context (the "first word" of the handle).
fn js_context(context: &v8::Context) -> Option<*mut JSContext> {
    let slot = context as *const v8::Context as *const JSValue;
    // SAFETY: a `Local<Context>` in v8x points at a 16-byte, 8-aligned `JSValue` slot
    // owned by the current handle scope (v8x `core.rs`, `intern_ctx`); v8x also accepts a
    // bare `JSContext*` there, which is larger than 16 bytes, so the read stays in bounds
    // either way and the tag check tells the two apart.
    let value = unsafe { slot.read() };
    if value.tag != JS_TAG_V8_CONTEXT {
        return None;
    }
    // SAFETY: the tag says the union holds the context pointer.
    let ptr = unsafe { value.u.ptr } as *mut JSContext;
    (!ptr.is_null()).then_some(ptr)
}

/// Clears the exception pending in `ctx`, if any.
///
/// # Safety
/// `ctx` must be a live context of the entered isolate.
unsafe fn clear_pending(ctx: *mut JSContext) {
    // SAFETY: per the function's contract; the taken exception is ours to free.
    unsafe {
        if JS_HasException(ctx) {
            JS_FreeValue(ctx, JS_GetException(ctx));
        }
    }
}

/// # Safety
/// `ctx` must be the live context of the entered isolate, with no JS running.
unsafe fn scrub_heap(ctx: *mut JSContext) -> Scrubbed {
    let mut done = Scrubbed::default();
    // SAFETY: per the function's contract. Every value passed to QuickJS below is either
    // a reference the heap array owns (alive until `v82jsc_free_heap_objects`) or `null`;
    // the atoms are freed at the end, the exceptions as soon as they are seen.
    unsafe {
        let rt = JS_GetRuntime(ctx);
        if rt.is_null() {
            return done;
        }
        // 0 = unlimited: no allocation here can fail or call the near-heap-limit callback
        // of an isolate that already hit its limit. The isolate is about to go anyway.
        JS_SetMemoryLimit(rt, 0);
        // An uncatchable termination error or a leftover exception of the last run.
        clear_pending(ctx);

        // Predefined atom: found, not allocated.
        let constructor = JS_NewAtom(ctx, c"constructor".as_ptr());
        let handler_class = JS_NewAtom(ctx, NAMED_HANDLER_CLASS.as_ptr());
        clear_pending(ctx);
        let null = JSValue {
            u: JSValueUnion { int32: 0 },
            tag: JS_TAG_NULL,
        };
        // Per class id: 0 = not looked up, 1 = may delete from, 2 = must not.
        let mut deletable = [0u8; CLASS_CACHE];

        let mut count = 0usize;
        let objects = v82jsc_heap_objects(ctx, &mut count);
        if !objects.is_null() {
            done.objects = count;
            for &object in std::slice::from_raw_parts(objects, count) {
                if JS_IsProxy(object) {
                    continue;
                }
                if JS_IsExtensible(ctx, object) == 1 {
                    match JS_SetPrototype(ctx, object, null) {
                        r if r < 0 => {
                            done.failed += 1;
                            clear_pending(ctx);
                        }
                        _ => done.unlinked += 1,
                    }
                }
                if constructor == JS_ATOM_NULL {
                    continue;
                }
                let class = JS_GetClassID(object) as usize;
                let verdict = match deletable.get(class) {
                    Some(0) => {
                        let name = JS_GetClassName(rt, class as JSClassID);
                        let plain = handler_class == JS_ATOM_NULL || name != handler_class;
                        if name != JS_ATOM_NULL {
                            JS_FreeAtom(ctx, name);
                        }
                        let verdict = if plain { 1 } else { 2 };
                        deletable[class] = verdict;
                        verdict
                    }
                    Some(&v) => v,
                    None => 2,
                };
                if verdict != 1 {
                    continue;
                }
                // Flags 0: a non-configurable `constructor` answers false, never throws.
                match JS_DeleteProperty(ctx, object, constructor, 0) {
                    r if r < 0 => {
                        done.failed += 1;
                        clear_pending(ctx);
                    }
                    _ => done.ctor_free += 1,
                }
            }
            v82jsc_free_heap_objects(ctx, objects, count);
        }
        if constructor != JS_ATOM_NULL {
            JS_FreeAtom(ctx, constructor);
        }
        if handler_class != JS_ATOM_NULL {
            JS_FreeAtom(ctx, handler_class);
        }
        clear_pending(ctx);
    }
    done
}

#[cfg(test)]
#[path = "scrub_tests.rs"]
mod tests;
