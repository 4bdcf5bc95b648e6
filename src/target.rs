//! Which repository, which database, which forge repository: everything the
//! command line and the repository's own config say about the target.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::home::{self, PatinaHome};

/// `OWNER/REPO` on the forge, both parts checked by [`home::check_name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeName {
    /// The user or organisation.
    pub owner: String,
    /// The repository.
    pub name: String,
}

impl ForgeName {
    /// `OWNER/REPO`, both parts checked; the error is a message for clap.
    pub fn parse(value: &str) -> Result<Self, String> {
        let (owner, name) = value
            .split_once('/')
            .ok_or_else(|| format!("expected OWNER/REPO, got {value:?}"))?;
        home::check_name(owner)?;
        home::check_name(name)?;
        Ok(Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for ForgeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// The forge repository and the host that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forge {
    /// Lower-case host name without port, e.g. `github.com`.
    pub host: String,
    /// The repository on that host.
    pub repo: ForgeName,
}

/// What the command line asked for.
#[derive(Debug, Default, Clone)]
pub struct TargetSpec {
    /// `-C DIR`: where to look for the repository.
    pub path: Option<PathBuf>,
    /// `--repo NAME`: a reference repository registered with patina.
    pub repo: Option<String>,
    /// `--db PATH`: the database instead of the project's.
    pub db: Option<PathBuf>,
    /// `--forge OWNER/REPO`: when `origin` does not tell.
    pub forge: Option<ForgeName>,
    /// `--all`: every registered repository, and the project run from.
    pub all: bool,
}

/// The resolved target of one run.
pub struct Target {
    /// The repository whose history is mined.
    pub repo: gix::Repository,
    /// Where `.patina/` lives: the work tree's root, or the git dir of a bare repository.
    pub root: PathBuf,
    /// `--db`, else `<root>/.patina/local/data/patina.db`.
    pub db_path: PathBuf,
    /// `--forge`, else read from `origin`'s URL, else the registry's
    /// `github:` entry.
    pub forge: Forge,
}

const DEFAULT_HOST: &str = "github.com";

impl Target {
    /// Finds the repository (`--repo`, `-C`, else the current directory), its
    /// database and its forge repository. Fails, saying which flag to pass,
    /// when neither `--forge`, an `origin` URL of a known shape nor a registry
    /// entry names the forge repository; the host is `origin`'s, else
    /// github.com.
    pub fn resolve(spec: &TargetSpec, home: &PatinaHome) -> Result<Self> {
        let (start, registered) = match &spec.repo {
            Some(name) => {
                let found = home.reference_repo(name)?;
                (found.path.clone(), Some(found))
            }
            None => (
                spec.path.clone().unwrap_or_else(|| PathBuf::from(".")),
                None,
            ),
        };
        Self::resolve_at(&start, registered, spec)
    }

    /// `--all`: every repository `registry.yaml` lists, in its order, and
    /// the project run from (`-C DIR`, else the current directory, when it
    /// is a git repository with patina's `.patina/` folder) unless the
    /// registry lists it too. An entry that cannot be used (no clone, no
    /// forge repository) is listed with its error; only a registry that
    /// cannot be read, or a `-C DIR` that is no repository, fails the whole.
    pub fn resolve_all(spec: &TargetSpec, home: &PatinaHome) -> Result<Vec<Listed>> {
        let mut listed: Vec<Listed> = home
            .registered()?
            .into_iter()
            .map(|(name, found)| {
                let path = found.as_ref().map(|r| r.path.clone()).unwrap_or_default();
                let target = found.and_then(|registered| {
                    let start = registered.path.clone();
                    Self::resolve_at(&start, Some(registered), spec).map_err(|e| {
                        anyhow!(
                            "{e:#} (clone it again, or remove repos.{name} from {})",
                            home.registry().display()
                        )
                    })
                });
                Listed {
                    name: Some(name),
                    path,
                    target,
                }
            })
            .collect();
        let project = match &spec.path {
            Some(dir) => Some(Self::resolve_at(dir, None, spec)?),
            None => Self::resolve_at(Path::new("."), None, spec)
                .ok()
                .filter(|t| t.root.join(".patina").is_dir()),
        };
        if let Some(project) = project {
            let same = |t: &Target| same_dir(&t.root, &project.root);
            if !listed.iter().any(|l| l.target.as_ref().is_ok_and(same)) {
                listed.push(Listed {
                    name: None,
                    path: project.root.clone(),
                    target: Ok(project),
                });
            }
        }
        Ok(listed)
    }

    fn resolve_at(
        start: &Path,
        registered: Option<home::RegisteredRepo>,
        spec: &TargetSpec,
    ) -> Result<Self> {
        let repo = open_repository(start)?;
        let root = match repo.workdir() {
            Some(workdir) => workdir.to_owned(),
            None => repo.git_dir().to_owned(),
        };
        let root = std::path::absolute(&root).unwrap_or(root);
        let db_path = match &spec.db {
            Some(db) => db.clone(),
            None => root
                .join(".patina")
                .join("local")
                .join("data")
                .join("patina.db"),
        };

        let origin = repo
            .config_snapshot()
            .string("remote.origin.url")
            .map(|url| url.to_string());
        let from_origin = origin.as_deref().map(parse_remote_url);
        let forge = match (&spec.forge, from_origin) {
            (Some(name), Some(Ok(parsed))) => Forge {
                host: parsed.host,
                repo: name.clone(),
            },
            (Some(name), _) => Forge {
                host: DEFAULT_HOST.into(),
                repo: name.clone(),
            },
            (None, Some(Ok(parsed))) => parsed,
            (None, Some(Err(e))) => {
                bail!("{e}; pass --forge OWNER/REPO")
            }
            (None, None) => match registered.and_then(|r| r.github) {
                Some(github) => Forge {
                    host: DEFAULT_HOST.into(),
                    repo: ForgeName::parse(&github).map_err(|e| {
                        anyhow!("registry.yaml names the forge repository {github:?}: {e}")
                    })?,
                },
                None => bail!(
                    "{} has no `origin` remote to tell the forge repository: pass --forge OWNER/REPO",
                    root.display()
                ),
            },
        };
        Ok(Self {
            repo,
            root,
            db_path,
            forge,
        })
    }
}

/// One repository of `--all`, usable or not.
pub struct Listed {
    /// Its name in `registry.yaml`; `None` for the project run from.
    pub name: Option<String>,
    /// Its clone, as the registry says (empty when the entry has no path).
    pub path: PathBuf,
    /// The target, or why it cannot be used (its clone is gone, its forge
    /// repository unknown).
    pub target: Result<Target>,
}

impl Listed {
    /// How output names it: the registry's name, else the forge repository,
    /// else its folder.
    pub fn label(&self) -> String {
        match (&self.name, &self.target) {
            (Some(name), _) => name.clone(),
            (None, Ok(target)) => target.forge.repo.to_string(),
            (None, Err(_)) => self.path.display().to_string(),
        }
    }
}

/// Whether two paths name one folder (symlinks and `..` resolved).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn open_repository(start: &Path) -> Result<gix::Repository> {
    if !start.exists() {
        bail!("{} does not exist", start.display());
    }
    // gix's own error says little to a user; its typed search result tells
    // "no repository here" from a broken one.
    if let Err(e) = gix::discover::upwards(start) {
        use gix::discover::upwards::Error as Upwards;
        if let Some(
            Upwards::NoGitRepository { .. }
            | Upwards::NoGitRepositoryWithinCeiling { .. }
            | Upwards::NoGitRepositoryWithinFs { .. },
        ) = e.downcast_any_ref::<Upwards>()
        {
            bail!(
                "{} is not inside a git repository (use -C DIR or --repo NAME)",
                start.display()
            );
        }
    }
    gix::discover(start)
        .with_context(|| format!("cannot open the git repository at {}", start.display()))
}

/// Reads `OWNER/REPO` and the host from a remote URL, in the forms GitHub and
/// its peers hand out. Anything else is refused rather than guessed at.
pub fn parse_remote_url(url: &str) -> Result<Forge, String> {
    let refuse = || {
        format!(
            "cannot tell the forge repository from origin's URL {:?} (expected \
             git@HOST:OWNER/REPO, ssh://, https:// or git:// HOST/OWNER/REPO)",
            redact(url)
        )
    };
    // gix reads every form git accepts (scp-like, ssh://, https://, file
    // paths); only a forge's forms name a host and a repository.
    let parsed = gix::url::parse(url.trim().as_bytes()).map_err(|_| refuse())?;
    if !matches!(
        parsed.scheme,
        gix::url::Scheme::Https | gix::url::Scheme::Ssh | gix::url::Scheme::Git
    ) {
        return Err(refuse());
    }
    let host = parsed.host().ok_or_else(refuse)?;
    let path = std::str::from_utf8(&parsed.path).map_err(|_| refuse())?;
    // scp-like `host:/abs` is a local path on the host, not a repository.
    let path = match parsed.serialize_alternative_form {
        true if path.starts_with('/') => return Err(refuse()),
        true => path,
        false => path.strip_prefix('/').ok_or_else(refuse)?,
    };
    // A DNS name: at most 253 characters, dot-separated labels of 1 to 63
    // letters, digits and inner hyphens (so not `..`, `.`, `a..b` or `-x`,
    // which only look like hosts).
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(refuse());
    }
    let path = path.strip_suffix('/').unwrap_or(path);
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, name) = path.split_once('/').ok_or_else(refuse)?;
    if name.contains('/') {
        return Err(refuse());
    }
    let repo = ForgeName::parse(&format!("{owner}/{name}")).map_err(|_| refuse())?;
    Ok(Forge {
        host: host.to_ascii_lowercase(),
        repo,
    })
}

/// Hides the credentials a URL may carry (`https://user:token@host/…`),
/// also in a text that failed to parse as one: everything before an `@` of
/// its authority.
pub fn redact(text: &str) -> String {
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let shown = format!("***{}", &rest[at..]);
            if scheme.is_empty() {
                shown
            } else {
                format!("{scheme}://{shown}")
            }
        }
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, String) {
        let forge = parse_remote_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (forge.host, forge.repo.to_string())
    }

    #[test]
    fn accepts_the_forms_forges_hand_out() {
        let gh = |r: &str| ("github.com".to_owned(), r.to_owned());
        assert_eq!(ok("git@github.com:o/r.git"), gh("o/r"));
        assert_eq!(ok("git@github.com:o/r"), gh("o/r"));
        assert_eq!(ok("ssh://git@github.com/o/r.git"), gh("o/r"));
        assert_eq!(ok("ssh://github.com:22/o/r"), gh("o/r"));
        assert_eq!(ok("ssh://git@GitHub.com:2222/o/r.git"), gh("o/r"));
        assert_eq!(ok("https://github.com/o/r.git"), gh("o/r"));
        assert_eq!(ok("https://github.com/o/r"), gh("o/r"));
        assert_eq!(ok("https://github.com/o/r/"), gh("o/r"));
        assert_eq!(ok("https://github.com/o/r.git/"), gh("o/r"));
        assert_eq!(ok("https://user:secret@github.com/o/r"), gh("o/r"));
        assert_eq!(ok("git://github.com/o/r"), gh("o/r"));
        assert_eq!(
            ok("https://ghe.example.com:8443/team/tool.git"),
            ("ghe.example.com".into(), "team/tool".into())
        );
    }

    #[test]
    fn refuses_everything_else() {
        for url in [
            "/srv/git/x.git",
            "file:///srv/git/x.git",
            "../x",
            "https://github.com/only-one",
            "https://github.com/a/b/c",
            "https://github.com/../b",
            "git@github.com:/abs/path",
            "ftp://host/o/r",
            "C:\\repos\\x",
            "https://github.com/o/r%20x",
            "https://../o/r",
            "https://./o/r",
            "https://a..b/o/r",
            "https://.github.com/o/r",
            "ssh://git@-x/o/r",
            "git@..:o/r",
            &format!("https://{}.com/o/r", "x".repeat(64)),
            &format!("https://{}com/o/r", "x.".repeat(127)),
            "",
        ] {
            assert!(parse_remote_url(url).is_err(), "{url:?} was accepted");
        }
    }

    #[test]
    fn refusals_never_show_credentials() {
        let err = parse_remote_url("https://user:hunter2@example.com/x").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
