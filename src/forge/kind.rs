//! Which kind of forge a host is, and what follows from it: where its API
//! lives, which token variables it reads, how many items a page holds (how
//! the token is sent is `token`'s).
//!
//! Known hosts are recognised by name; any other host is asked once, cheaply
//! and without a token, what it is (Gitea answers `GET /api/v1/version`,
//! GitHub Enterprise `GET /api/v3/meta`), and the answer is remembered in the
//! database by the caller.

use anyhow::{Result, anyhow};
use reqwest::Url;
use serde::Deserialize;

use super::http::{Http, PROBE_TIMEOUT};

/// `--forge-kind`. The variants' docs describe the values in zsh and fish
/// completions; `hide_possible_values` keeps them out of `--help` and the
/// man page, whose lint rejects the list clap_mangen would make of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForgeKind {
    /// github.com
    Github,
    /// Any other host speaking GitHub's API (REST at /api/v3, GraphQL at /api/graphql)
    GithubEnterprise,
    /// Gitea, Forgejo, Codeberg (REST at /api/v1)
    Gitea,
}

impl ForgeKind {
    /// The name `--forge-kind` takes and the database keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::GithubEnterprise => "github-enterprise",
            ForgeKind::Gitea => "gitea",
        }
    }

    /// The kind [`ForgeKind::as_str`] names; `None` for a name this build
    /// does not know.
    pub fn parse(text: &str) -> Option<Self> {
        [
            ForgeKind::Github,
            ForgeKind::GithubEnterprise,
            ForgeKind::Gitea,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    /// What people call it, in messages.
    pub fn name(self) -> &'static str {
        match self {
            ForgeKind::Github => "GitHub",
            ForgeKind::GithubEnterprise => "GitHub Enterprise",
            ForgeKind::Gitea => "Gitea",
        }
    }

    /// Hosts known by name.
    pub fn known(host: &str) -> Option<Self> {
        match host.to_ascii_lowercase().as_str() {
            "github.com" | "www.github.com" => Some(ForgeKind::Github),
            "codeberg.org" => Some(ForgeKind::Gitea),
            _ => None,
        }
    }

    /// The API base of `host` for this kind.
    pub fn default_base(self, host: &str) -> String {
        match self {
            ForgeKind::Github => "https://api.github.com".to_owned(),
            ForgeKind::GithubEnterprise => format!("https://{host}/api/v3"),
            ForgeKind::Gitea => format!("https://{host}/api/v1"),
        }
    }

    /// Where the token comes from, in order (`gh auth token` after these
    /// for GitHub's kinds).
    pub fn token_vars(self) -> &'static [&'static str] {
        match self {
            ForgeKind::Github => &["GITHUB_TOKEN", "GH_TOKEN"],
            // As gh does: the enterprise variables first.
            ForgeKind::GithubEnterprise => &[
                "GH_ENTERPRISE_TOKEN",
                "GITHUB_ENTERPRISE_TOKEN",
                "GITHUB_TOKEN",
                "GH_TOKEN",
            ],
            ForgeKind::Gitea => &["GITEA_TOKEN", "FORGEJO_TOKEN"],
        }
    }

    /// Items per listing page: GitHub's maximum, Gitea's default maximum.
    pub fn per_page(self) -> u32 {
        match self {
            ForgeKind::Gitea => 50,
            _ => 100,
        }
    }

    /// Whether GraphQL can resolve the backlog: not on Gitea.
    pub fn has_graphql(self) -> bool {
        self != ForgeKind::Gitea
    }

    /// Whether the changed-since listing comes oldest change first, so the
    /// high-water mark may move page by page. Gitea lists newest first.
    pub fn updates_ascending(self) -> bool {
        self != ForgeKind::Gitea
    }
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// What the host is.
    pub kind: ForgeKind,
    /// The API base that answered.
    pub base: String,
}

/// Asks `host` what it is: `GET {base}/version` (Gitea), then
/// `GET {base}/meta` (GitHub and GitHub Enterprise), at the bases given
/// (`--api-url`) or the default ones. No token is sent: both are public,
/// and a GitHub Enterprise server in private mode, which refuses even
/// `/meta` without one, names itself in the refusal's headers.
/// `wait` is called before each request (the pace ledger's turn).
pub fn detect(
    host: &str,
    given: Option<&Url>,
    wait: &mut dyn FnMut(&Url) -> Result<()>,
) -> Result<Detected> {
    let candidates: Vec<(Url, &str)> = match given {
        Some(base) => vec![(base.clone(), "version"), (base.clone(), "meta")],
        None => vec![
            (base_url(&ForgeKind::Gitea.default_base(host))?, "version"),
            (
                base_url(&ForgeKind::GithubEnterprise.default_base(host))?,
                "meta",
            ),
        ],
    };
    let mut heard = Vec::new();
    for (base, probe) in candidates {
        let url = base.join(probe).expect("a relative path joins");
        wait(&url)?;
        let http = Http::new(&base, None, PROBE_TIMEOUT)?;
        let reply = match http.get(&url, None) {
            Ok(reply) => reply,
            Err(e) => {
                heard.push(format!("{url}: {e:#}"));
                continue;
            }
        };
        heard.push(format!("{url}: {}", reply.status));
        let base = base.as_str().trim_end_matches('/').to_owned();
        // Every answer of GitHub Enterprise Server names its version, the
        // 401 of a server in private mode too (most company servers): the
        // kind is known without ever sending the token to an unknown host.
        if probe == "meta" && reply.header(ENTERPRISE_VERSION).is_some() {
            return Ok(Detected {
                kind: ForgeKind::GithubEnterprise,
                base,
            });
        }
        if !reply.status.is_success() {
            continue;
        }
        match probe {
            "version" if serde_json::from_slice::<Version>(&reply.body).is_ok() => {
                return Ok(Detected {
                    kind: ForgeKind::Gitea,
                    base,
                });
            }
            "meta" => {
                if let Ok(meta) = serde_json::from_slice::<Meta>(&reply.body) {
                    let kind = if meta.installed_version.is_some() || given.is_none() {
                        ForgeKind::GithubEnterprise
                    } else {
                        ForgeKind::Github
                    };
                    return Ok(Detected { kind, base });
                }
            }
            _ => {}
        }
    }
    Err(anyhow!(
        "cannot tell what forge {host} is (asked {}): pass --forge-kind github-enterprise or \
         --forge-kind gitea",
        heard.join("; ")
    ))
}

/// The header on every answer of GitHub Enterprise Server.
const ENTERPRISE_VERSION: &str = "x-github-enterprise-version";

fn base_url(text: &str) -> Result<Url> {
    let mut url = Url::parse(text)?;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[derive(Deserialize)]
struct Version {
    #[allow(dead_code)]
    version: String,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    installed_version: Option<String>,
    // Present on every GitHub's /meta; tells it from any other JSON object.
    #[allow(dead_code)]
    verifiable_password_authentication: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_hosts_are_known() {
        for kind in [
            ForgeKind::Github,
            ForgeKind::GithubEnterprise,
            ForgeKind::Gitea,
        ] {
            assert_eq!(ForgeKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ForgeKind::parse("gitlab"), None);
        assert_eq!(ForgeKind::known("GitHub.com"), Some(ForgeKind::Github));
        assert_eq!(ForgeKind::known("codeberg.org"), Some(ForgeKind::Gitea));
        assert_eq!(ForgeKind::known("git.example.org"), None);
    }

    #[test]
    fn each_kind_has_its_base_token_and_page() {
        assert_eq!(
            ForgeKind::Gitea.default_base("codeberg.org"),
            "https://codeberg.org/api/v1"
        );
        assert_eq!(
            ForgeKind::GithubEnterprise.default_base("ghe.corp"),
            "https://ghe.corp/api/v3"
        );
        assert_eq!(
            ForgeKind::GithubEnterprise.token_vars()[0],
            "GH_ENTERPRISE_TOKEN"
        );
        assert_eq!(ForgeKind::Gitea.per_page(), 50);
        assert!(!ForgeKind::Gitea.has_graphql() && !ForgeKind::Gitea.updates_ascending());
    }
}
