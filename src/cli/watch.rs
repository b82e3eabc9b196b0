//! `atoll dev --watch`: redeploys an agent directory whenever its files change, as a new
//! version that becomes the agent's latest, so the next run (without `--version`) runs
//! the edited code.
//!
//! "Latest" is the highest version in semver order (`latest_agent_version` in
//! `src/store/mod.rs`, which uses `semver::Version`'s order), and a prerelease sorts
//! below its release: `1.0.0-dev.3 < 1.0.0`. So an edit of a package whose latest is
//! `1.0.0` is uploaded as `1.0.1-dev.1`, the next as `1.0.1-dev.2`, ... (each above the
//! last, all below a real `1.0.1`). When `agent.json` itself names a version above the
//! latest, that version is uploaded as it is. Uploads go through the HTTP API, so an edit
//! that does not check out is refused like any upload (the 422 is printed) and the
//! previous version keeps serving. Content equal to the latest version's (its digest) is
//! not uploaded again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use semver::{BuildMetadata, Prerelease, Version};
use tracing::{debug, warn};

use super::client::deploy::{pack_dir, upload};
use super::client::error::{CliError, CliResult};
use super::client::http::{seg, Api};
use super::client::profile::Connection;

/// Changes closer together than this are one redeploy (an editor's save is often
/// several events: truncate, write, rename, chmod).
const DEBOUNCE: Duration = Duration::from_millis(300);

/// The version after `latest` that still sorts above it: the next `-dev.N`.
pub fn dev_successor(latest: &Version) -> CliResult<Version> {
    let n = latest
        .pre
        .as_str()
        .strip_prefix("dev.")
        .and_then(|n| n.parse::<u64>().ok());
    let (patch, n) = match n {
        Some(n) => (latest.patch, n + 1),
        None => (latest.patch + 1, 1),
    };
    let pre = Prerelease::new(&format!("dev.{n}"))
        .map_err(|e| CliError::usage(format!("cannot make a dev version: {e}")))?;
    Ok(Version {
        major: latest.major,
        minor: latest.minor,
        patch,
        pre,
        build: BuildMetadata::EMPTY,
    })
}

/// Starts watching `dirs` (agent package directories) and redeploying them through the
/// server at `url` with `app_key`. Each directory is brought up to date once at start
/// (an edit made while the server was down is deployed then).
pub fn spawn(
    url: &str,
    app_key: &str,
    dirs: Vec<PathBuf>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let api = Api::new(Connection {
        url: url.to_owned(),
        api_key: app_key.to_owned(),
        app_id: None,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dirs: Vec<PathBuf> = dirs.iter().filter_map(|d| d.canonicalize().ok()).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    // Symlinks are not followed: a link to `~` or `/` would watch the whole tree (the
    // package check refuses symlinks anyway).
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher = notify::RecommendedWatcher::new(
        move |event: notify::Result<notify::Event>| {
            match event {
                // Reading a file is an event too (inotify's open): only changes count, or
                // the redeploy's own reads would start the next one.
                Ok(event) if changes(&event.kind) => {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "watching agent directories failed"),
            }
        },
        config,
    )?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::Recursive)?;
    }
    Ok(tokio::spawn(async move {
        // Watching lasts as long as the watcher does.
        let _watcher = watcher;
        for dir in &dirs {
            sync(&api, dir).await;
        }
        while let Some(path) = rx.recv().await {
            let mut changed = BTreeSet::new();
            changed.extend(owner(&dirs, &path));
            // Debounced: what changes until a quiet moment is one redeploy per directory.
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(path)) => changed.extend(owner(&dirs, &path)),
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            for dir in changed {
                sync(&api, dir).await;
            }
        }
    }))
}

/// Whether an event is a change of the files (not a read).
fn changes(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    )
}

/// The watched directory a changed path belongs to, unless it is a dotfile (editors'
/// swap files; packages leave those out anyway).
fn owner<'a>(dirs: &'a [PathBuf], path: &Path) -> Option<&'a PathBuf> {
    let dir = dirs.iter().find(|d| path.starts_with(d))?;
    let rel = path.strip_prefix(dir).ok()?;
    let hidden = rel
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    (!hidden).then_some(dir)
}

/// Redeploys `dir` if its content is not the latest version's, and says what happened.
async fn sync(api: &Api, dir: &Path) {
    match redeploy(api, dir).await {
        Ok(Some(label)) => println!("watch: deployed {label} from {}", dir.display()),
        Ok(None) => debug!(dir = %dir.display(), "unchanged"),
        Err((e, serving)) => {
            // The reason last: a server's detail may run over several lines.
            let serving = serving.map_or(String::new(), |s| format!(" ({s} keeps serving)"));
            println!(
                "watch: {} not deployed{serving}: {}",
                dir.display(),
                e.message
            );
        }
    }
}

/// Uploads `dir` as the version after the latest; `None` when its content is the
/// latest's already. An error comes with the version still serving, if any.
async fn redeploy(api: &Api, dir: &Path) -> Result<Option<String>, (CliError, Option<String>)> {
    let disk = pack_dir(dir, None).map_err(|e| (e, None))?;
    let name = disk.package.manifest.name.clone();
    let agent = format!("/v1/agents/{}/{}", seg(&disk.scope), seg(&disk.name));
    let latest = match api.get(&agent, &[]).await {
        Ok(a) => a.body["latest_version"].as_str().map(str::to_owned),
        Err(e) if e.is_status(404) => None,
        Err(e) => return Err((e, None)),
    };
    let serving = latest.as_ref().map(|l| format!("{name}@{l}"));
    let fail = |e: CliError| (e, serving.clone());
    let target = match &latest {
        None => disk.package.manifest.version.clone(),
        Some(latest) => {
            let latest = Version::parse(latest)
                .map_err(|e| fail(CliError::usage(format!("latest version {latest}: {e}"))))?;
            let as_latest = pack_dir(dir, Some(&latest)).map_err(fail)?;
            let stored = api
                .get(
                    &format!("{agent}/versions/{}", seg(&latest.to_string())),
                    &[],
                )
                .await
                .map_err(fail)?;
            if stored.body["digest"].as_str() == Some(as_latest.package.digest.as_str()) {
                return Ok(None);
            }
            let on_disk = &disk.package.manifest.version;
            if *on_disk > latest {
                on_disk.clone()
            } else {
                dev_successor(&latest).map_err(fail)?
            }
        }
    };
    // A number already taken (a deprecated or deleted version `latest` skips) is
    // passed over: the next dev number is tried.
    let mut target = target;
    for _ in 0..TAKEN_NUMBERS {
        let packed = if target == disk.package.manifest.version {
            pack_dir(dir, None).map_err(fail)?
        } else {
            pack_dir(dir, Some(&target)).map_err(fail)?
        };
        match upload(api, &packed, false).await {
            Ok(_) => return Ok(Some(packed.label())),
            Err(e) if e.is_status(409) => target = dev_successor(&target).map_err(fail)?,
            Err(e) => return Err(fail(e)),
        }
    }
    Err(fail(CliError::usage(format!(
        "{TAKEN_NUMBERS} version numbers after {} are taken; bump the version in agent.json",
        latest.as_deref().unwrap_or("the latest")
    ))))
}

/// Version numbers a redeploy passes over before it gives up.
const TAKEN_NUMBERS: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect("semver")
    }

    #[test]
    fn each_dev_version_sorts_above_the_last_and_below_the_next_release() {
        let mut latest = v("1.0.0");
        let mut seen = vec![latest.clone()];
        for _ in 0..12 {
            let next = dev_successor(&latest).expect("successor");
            assert!(next > latest, "{next} > {latest}");
            seen.push(next.clone());
            latest = next;
        }
        assert_eq!(seen[1], v("1.0.1-dev.1"));
        assert_eq!(seen[12], v("1.0.1-dev.12"));
        assert!(seen[12] < v("1.0.1"));
        // The store's "latest" is the maximum in this order.
        assert_eq!(seen.iter().max(), Some(&seen[12]));
        assert_eq!(
            dev_successor(&v("2.3.4-beta.1")).ok(),
            Some(v("2.3.5-dev.1"))
        );
    }

    #[test]
    fn dotfiles_and_other_paths_do_not_trigger() {
        let dirs = vec![PathBuf::from("/a/agent")];
        assert!(owner(&dirs, Path::new("/a/agent/main.js")).is_some());
        assert!(owner(&dirs, Path::new("/a/agent/lib/x.js")).is_some());
        assert!(owner(&dirs, Path::new("/a/agent/.main.js.swp")).is_none());
        assert!(owner(&dirs, Path::new("/a/other/main.js")).is_none());
    }
}
