//! `$PATINA_HOME`: where patina keeps its registry and reference clones, and
//! the one place where names from the outside become file names.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use yaml_rust2::{Yaml, YamlLoader};

/// GitHub allows 39 characters for an owner and 100 for a repository; a longer
/// name is not GitHub's and would only make an unwieldy file name.
const MAX_NAME_LEN: usize = 100;

/// Checks an owner, repository or registry name before it can reach a path:
/// `[A-Za-z0-9._-]`, no `..`, not `.`, at most 100 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name cannot be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("a name is at most {MAX_NAME_LEN} characters"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{:?} is not allowed in a name (only A-Z a-z 0-9 . _ -)",
            bad
        ));
    }
    if name == "." || name.contains("..") {
        return Err(format!("{name:?} is not a valid name (no `.` or `..`)"));
    }
    Ok(())
}

/// patina's home folder.
#[derive(Debug, Clone)]
pub struct PatinaHome {
    dir: PathBuf,
}

/// A reference repository as patina registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredRepo {
    /// The clone: the entry's `path` (`~/` expanded), else the cache folder.
    pub path: PathBuf,
    /// `owner/repo` from the entry's `github:` field, when present.
    pub github: Option<String>,
}

impl PatinaHome {
    /// `$PATINA_HOME`, else `~/.patina`.
    pub fn from_env() -> Result<Self> {
        let dir = match std::env::var_os("PATINA_HOME") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => dirs::home_dir()
                .ok_or_else(|| anyhow!("cannot find the home folder: set PATINA_HOME"))?
                .join(".patina"),
        };
        Ok(Self { dir })
    }

    /// The home at `dir`, without reading the environment.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$PATINA_HOME/run/`, created owner-only: PID files and pace ledgers.
    pub fn run_dir(&self) -> Result<PathBuf> {
        private_dir(&self.dir.join("run"))
    }

    /// `$PATINA_HOME/logs/`, created owner-only.
    pub fn logs_dir(&self) -> Result<PathBuf> {
        private_dir(&self.dir.join("logs"))
    }

    /// `logs/forge-sync-<owner>-<repo>.log` (the folder is not created).
    pub fn log_file(&self, owner: &str, name: &str) -> PathBuf {
        debug_assert!(check_name(owner).is_ok() && check_name(name).is_ok());
        self.dir
            .join("logs")
            .join(format!("forge-sync-{owner}-{name}.log"))
    }

    /// `run/NAME` (the folder is not created).
    pub fn run_file(&self, name: &str) -> PathBuf {
        self.dir.join("run").join(name)
    }

    /// `run/forge-sync-<owner>-<repo>.pid`, the file whose lock says a sync
    /// runs (the folder is not created). Names come checked by `ForgeName`.
    pub fn pid_file(&self, owner: &str, name: &str) -> PathBuf {
        debug_assert!(check_name(owner).is_ok() && check_name(name).is_ok());
        self.dir
            .join("run")
            .join(format!("forge-sync-{owner}-{name}.pid"))
    }

    /// Finds a reference repository: `registry.yaml` `repos[NAME]` first, then
    /// `cache/repos/NAME`. `name` must have passed [`check_name`].
    pub fn reference_repo(&self, name: &str) -> Result<RegisteredRepo> {
        debug_assert!(check_name(name).is_ok());
        let registry = self.registry();
        if let Some(found) = read_registry_entry(&registry, name)? {
            return Ok(found);
        }
        let cached = self.dir.join("cache").join("repos").join(name);
        if cached.is_dir() {
            return Ok(RegisteredRepo {
                path: cached,
                github: None,
            });
        }
        bail!(
            "no reference repository named {name:?}: it is not in {} and {} does not exist \
             (register it with `patina repo add`, or use -C DIR)",
            registry.display(),
            cached.display()
        )
    }
}

impl PatinaHome {
    /// `registry.yaml`'s path.
    pub fn registry(&self) -> PathBuf {
        self.dir.join("registry.yaml")
    }

    /// `run/forge-sync-all.pid`: the lock `--sync --all` holds (no
    /// repository's PID file can have this name: those are
    /// `forge-sync-OWNER-REPO.pid`).
    pub fn all_pid_file(&self) -> PathBuf {
        self.dir.join("run").join("forge-sync-all.pid")
    }

    /// `logs/forge-sync-all.log`: what `--sync --all` says of the whole run;
    /// each repository's lines go to its own log.
    pub fn all_log_file(&self) -> PathBuf {
        self.dir.join("logs").join("forge-sync-all.log")
    }

    /// Every reference repository in `registry.yaml`, in the file's order,
    /// each with its entry read as [`PatinaHome::reference_repo`] reads it
    /// (an entry it cannot use is an `Err` of its own, so that one bad
    /// entry does not hide the rest). No registry is an empty list; one
    /// that cannot be read or parsed is an error.
    pub fn registered(&self) -> Result<Vec<(String, Result<RegisteredRepo>)>> {
        let registry = self.registry();
        let Some(docs) = load_registry(&registry)? else {
            return Ok(Vec::new());
        };
        let Some(repos) = docs.first().and_then(|doc| doc["repos"].as_hash()) else {
            return Ok(Vec::new());
        };
        Ok(repos
            .iter()
            .map(|(key, entry)| {
                let name = match key {
                    Yaml::String(name) => name.clone(),
                    other => format!("{other:?}"),
                };
                let found = check_name(&name)
                    .map_err(|e| anyhow!("{}: repos.{name}: {e}", registry.display()))
                    .and_then(|()| read_entry(&registry, &name, entry));
                (name, found)
            })
            .collect())
    }
}

/// Creates `dir` (and its parents) with owner-only permissions; refuses a
/// symlink in its place, which could point our state files anywhere.
fn private_dir(dir: &Path) -> Result<PathBuf> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            bail!(
                "{} is a symlink; refusing to keep state behind it",
                dir.display()
            )
        }
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!("{} is not a folder", dir.display()),
        Err(_) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?,
    }
    Ok(dir.to_owned())
}

/// Opens (creating, owner-only) a state file for reading and writing,
/// without following a symlink and without truncating it.
pub fn open_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
}

/// Opens a file of our state folders for reading, refusing a symbolic link
/// in its place (it would show another file's contents as ours).
pub fn open_private_read(path: &Path) -> std::io::Result<fs::File> {
    match fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => Err(std::io::Error::other(
            format!("{} is a symbolic link: not followed", path.display()),
        )),
        other => other,
    }
}

/// The registry's YAML documents; `None` when there is no registry.
fn load_registry(registry: &Path) -> Result<Option<Vec<Yaml>>> {
    let text = match fs::read_to_string(registry) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", registry.display())),
    };
    YamlLoader::load_from_str(&text)
        .with_context(|| format!("cannot parse {}", registry.display()))
        .map(Some)
}

fn read_registry_entry(registry: &Path, name: &str) -> Result<Option<RegisteredRepo>> {
    let Some(docs) = load_registry(registry)? else {
        return Ok(None);
    };
    let Some(entry) = docs.first().map(|doc| &doc["repos"][name]) else {
        return Ok(None);
    };
    if entry.is_badvalue() {
        return Ok(None);
    }
    read_entry(registry, name, entry).map(Some)
}

fn read_entry(registry: &Path, name: &str, entry: &Yaml) -> Result<RegisteredRepo> {
    let Some(path) = entry["path"].as_str() else {
        bail!(
            "{}: repos.{name} has no `path`: fix the entry or use -C DIR",
            registry.display()
        );
    };
    Ok(RegisteredRepo {
        path: expand_tilde(path),
        github: match &entry["github"] {
            Yaml::String(s) => Some(s.clone()),
            _ => None,
        },
    })
}

/// patina writes absolute paths, but a hand-edited registry may say `~/…`.
fn expand_tilde(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_github_rules() {
        for ok in ["patina", "claude-code", "a.b_c-1", ".github", "x"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(101);
        for bad in [
            "", ".", "..", "a..b", "a/b", "a b", "a\0b", "a\nb", "ü", "../x", &long,
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn registry_entry_wins_over_cache() {
        let dir = tempfile::tempdir().unwrap();
        let home = PatinaHome::at(dir.path());
        fs::create_dir_all(dir.path().join("cache/repos/dojo")).unwrap();
        fs::write(
            dir.path().join("registry.yaml"),
            "version: 1\nrepos:\n  claude-code:\n    path: /srv/cc\n    github: anthropics/claude-code\n",
        )
        .unwrap();
        assert_eq!(
            home.reference_repo("claude-code").unwrap(),
            RegisteredRepo {
                path: "/srv/cc".into(),
                github: Some("anthropics/claude-code".into())
            }
        );
        assert_eq!(
            home.reference_repo("dojo").unwrap().path,
            dir.path().join("cache/repos/dojo")
        );
        let err = home.reference_repo("nope").unwrap_err().to_string();
        assert!(
            err.contains("no reference repository named \"nope\""),
            "{err}"
        );
    }
}
