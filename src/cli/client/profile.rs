//! Where the client finds its server and key: `--url`/`--api-key` flags, then
//! `ATOLL_URL`/`ATOLL_API_KEY`, then a named profile in `profiles.json` (saved by
//! `atoll login` and `atoll dev`, mode 0600 since it holds keys).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{CliError, CliResult};

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";
/// The profile `atoll dev` saves its app key under.
pub const DEV_PROFILE: &str = "dev";
/// The profile `atoll dev` saves its org key under.
pub const DEV_ORG_PROFILE: &str = "dev-org";
/// Where `atoll serve` listens unless told otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7070";
const FILE_NAME: &str = "profiles.json";

/// The whole `profiles.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One named server + key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub url: String,
    pub api_key: String,
    /// For an org key: the app whose runs `runs`/`logs` read (`?app_id=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
}

/// What a client verb talks to, and where that came from (for messages).
#[derive(Debug, Clone)]
pub struct Connection {
    pub url: String,
    pub api_key: String,
    pub app_id: Option<String>,
}

/// `$ATOLL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/atoll`, else `~/.config/atoll`.
pub fn config_dir() -> CliResult<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("ATOLL_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("atoll"));
    }
    match var("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("atoll")),
        None => Err(CliError::usage(
            "cannot tell where to keep profiles: set ATOLL_CONFIG_DIR (or HOME)",
        )),
    }
}

pub fn profiles_path() -> CliResult<PathBuf> {
    Ok(config_dir()?.join(FILE_NAME))
}

/// The profiles file, or an empty one if there is none yet.
pub fn load(path: &Path) -> CliResult<ProfileFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            CliError::usage(format!("{} is not a profiles file: {e}", path.display()))
                .hint("fix it, or delete it and run `atoll login` again")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProfileFile::default()),
        Err(e) => Err(CliError::usage(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Writes the file atomically, readable by its owner only (its directory too).
pub fn save(path: &Path, file: &ProfileFile) -> CliResult<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |what: &str, e: std::io::Error| {
        CliError::usage(format!("cannot {what} {}: {e}", path.display()))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io("create the directory of", e))?;
    let text = serde_json::to_string_pretty(file).map_err(|e| io("encode", e.into()))?;
    let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("write", e));
    }
    Ok(())
}

/// Saves one profile (replacing one of that name); the file's path.
pub fn save_profile(name: &str, profile: Profile) -> CliResult<PathBuf> {
    let path = profiles_path()?;
    let mut file = load(&path)?;
    file.profiles.insert(name.to_owned(), profile);
    save(&path, &file)?;
    Ok(path)
}

/// The keys `atoll dev` made, for [`save_dev`].
pub struct DevKeys<'a> {
    pub url: &'a str,
    pub app_key: &'a str,
    pub org_key: Option<&'a str>,
    /// The dev app (the org key's profile reads its runs).
    pub app_id: &'a str,
}

/// What `atoll dev` saves: its app key as profile `dev`, its org key as `dev-org` (with
/// the dev app, so `runs`/`logs` work with it), and the app key as `default` when there
/// is no default profile yet (so `atoll run` works right after `atoll dev`, but a
/// default profile pointing at a real server is never replaced). The names saved, and
/// the path.
pub fn save_dev(keys: &DevKeys) -> CliResult<(Vec<&'static str>, PathBuf)> {
    let path = profiles_path()?;
    let saved = save_dev_in(&path, keys)?;
    Ok((saved, path))
}

fn save_dev_in(path: &Path, keys: &DevKeys) -> CliResult<Vec<&'static str>> {
    let mut file = load(path)?;
    let app = Profile {
        url: keys.url.to_owned(),
        api_key: keys.app_key.to_owned(),
        app_id: None,
    };
    let mut saved = vec![DEV_PROFILE];
    file.profiles.insert(DEV_PROFILE.to_owned(), app.clone());
    if let Some(org_key) = keys.org_key {
        let org = Profile {
            url: keys.url.to_owned(),
            api_key: org_key.to_owned(),
            app_id: Some(keys.app_id.to_owned()),
        };
        file.profiles.insert(DEV_ORG_PROFILE.to_owned(), org);
        saved.push(DEV_ORG_PROFILE);
    }
    if !file.profiles.contains_key(DEFAULT_PROFILE) {
        file.profiles.insert(DEFAULT_PROFILE.to_owned(), app);
        saved.push(DEFAULT_PROFILE);
    }
    save(path, &file)?;
    Ok(saved)
}

/// Flags and environment (clap already put the environment under the flags) over the
/// profile. A profile named with `--profile`/`ATOLL_PROFILE` must exist.
pub fn resolve(
    url: Option<&str>,
    api_key: Option<&str>,
    app_id: Option<&str>,
    profile: Option<&str>,
) -> CliResult<Connection> {
    let name = profile.unwrap_or(DEFAULT_PROFILE);
    let saved = if url.is_some() && api_key.is_some() && profile.is_none() {
        None
    } else {
        let path = profiles_path()?;
        let saved = load(&path)?.profiles.remove(name);
        if saved.is_none() && profile.is_some() {
            return Err(
                CliError::usage(format!("no profile `{name}` in {}", path.display())).hint(
                    format!("save one with `atoll login --profile {name}`, or leave --profile out"),
                ),
            );
        }
        saved
    };
    connection_from(url, api_key, app_id, name, saved)
}

/// The connection the flags, environment and a saved profile make together.
fn connection_from(
    url: Option<&str>,
    api_key: Option<&str>,
    app_id: Option<&str>,
    name: &str,
    saved: Option<Profile>,
) -> CliResult<Connection> {
    // A profile's key goes only to that profile's server: a URL from a flag or the
    // environment that names another server needs its own key.
    if let (Some(flag_url), None, Some(p)) = (url, api_key, &saved) {
        if normalize_url(flag_url)? != normalize_url(&p.url)? {
            return Err(CliError::usage(format!(
                "{flag_url} is not the server of profile `{name}` ({}); its key is not sent elsewhere",
                p.url
            ))
            .hint("give the key for that server with --api-key or ATOLL_API_KEY, or log in to it with `atoll login --profile NAME`"));
        }
    }
    let api_key = match (api_key, &saved) {
        (Some(k), _) => k.to_owned(),
        (None, Some(p)) => p.api_key.clone(),
        (None, None) => {
            return Err(CliError::usage("no API key: not logged in").hint(
                "run `atoll login` (or `atoll dev`, which saves its key), or set \
                 ATOLL_URL and ATOLL_API_KEY",
            ))
        }
    };
    let url = match (url, &saved) {
        (Some(u), _) => u.to_owned(),
        (None, Some(p)) => p.url.clone(),
        (None, None) => DEFAULT_URL.to_owned(),
    };
    let app_id = app_id
        .map(str::to_owned)
        .or_else(|| saved.and_then(|p| p.app_id));
    Ok(Connection {
        url: normalize_url(&url)?,
        api_key,
        app_id,
    })
}

/// An `http(s)://host[:port][/prefix]` URL without its trailing slash.
pub fn normalize_url(raw: &str) -> CliResult<String> {
    let raw = raw.trim();
    let parsed = url::Url::parse(raw).map_err(|e| {
        CliError::usage(format!("{raw:?} is not a URL: {e}"))
            .hint("write it like http://127.0.0.1:7070")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(CliError::usage(format!("{raw:?} is not an http(s) URL"))
            .hint("write it like http://127.0.0.1:7070"));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_saves_default_only_when_there_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        let keys = |url, app_key| DevKeys {
            url,
            app_key,
            org_key: Some("atl_org"),
            app_id: "app_1",
        };
        let saved = save_dev_in(&path, &keys("http://127.0.0.1:1", "atl_one")).expect("save");
        assert_eq!(saved, [DEV_PROFILE, DEV_ORG_PROFILE, DEFAULT_PROFILE]);
        // A later start (another port, another key) replaces `dev` only.
        let saved = save_dev_in(&path, &keys("http://127.0.0.1:2", "atl_two")).expect("save");
        assert_eq!(saved, [DEV_PROFILE, DEV_ORG_PROFILE]);
        let file = load(&path).expect("load");
        assert_eq!(file.profiles[DEV_PROFILE].api_key, "atl_two");
        assert_eq!(file.profiles[DEFAULT_PROFILE].api_key, "atl_one");
        assert_eq!(
            file.profiles[DEV_ORG_PROFILE].app_id.as_deref(),
            Some("app_1")
        );
    }

    #[test]
    fn a_profiles_key_goes_only_to_its_own_server() {
        let saved = || {
            Some(Profile {
                url: "https://prod.example.com/".into(),
                api_key: "atl_prod".into(),
                app_id: None,
            })
        };
        let elsewhere = connection_from(Some("http://evil.test"), None, None, "default", saved());
        assert!(
            elsewhere.is_err(),
            "the prod key would go to another server"
        );
        let same = connection_from(
            Some("https://prod.example.com"),
            None,
            None,
            "default",
            saved(),
        )
        .expect("its own server");
        assert_eq!(same.api_key, "atl_prod");
        let own_key = connection_from(
            Some("http://evil.test"),
            Some("atl_other"),
            None,
            "default",
            saved(),
        )
        .expect("a key of its own");
        assert_eq!(own_key.api_key, "atl_other");
    }

    #[test]
    fn urls_are_checked_and_normalised() {
        assert_eq!(
            normalize_url("http://127.0.0.1:7070/").ok().as_deref(),
            Some("http://127.0.0.1:7070")
        );
        assert!(normalize_url("127.0.0.1:7070").is_err());
        assert!(normalize_url("ftp://x").is_err());
    }

    #[test]
    fn the_file_round_trips_with_owner_only_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join(FILE_NAME);
        let mut file = ProfileFile::default();
        file.profiles.insert(
            "x".into(),
            Profile {
                url: "http://h".into(),
                api_key: "atl_k".into(),
                app_id: None,
            },
        );
        save(&path, &file).expect("save");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = load(&path).expect("load");
        assert_eq!(back.profiles["x"].api_key, "atl_k");
        assert!(load(&dir.path().join("none.json"))
            .expect("empty")
            .profiles
            .is_empty());
    }
}
