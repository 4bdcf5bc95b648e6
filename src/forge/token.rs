//! Where the token comes from, and how it is sent. It is never taken from
//! the command line and never printed: `Debug` shows only that there is
//! one, and the header that carries it is marked sensitive.

use std::fmt;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use reqwest::header::HeaderValue;

use super::kind::ForgeKind;

/// A forge token.
#[derive(Clone)]
pub struct Token(String);

/// How the token is sent: GitHub's `Bearer`, Gitea's `token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer TOKEN`: GitHub and GitHub Enterprise.
    Bearer,
    /// `Authorization: token TOKEN`: Gitea.
    Token,
}

impl Auth {
    /// How a forge of `kind` takes its token.
    pub fn of(kind: ForgeKind) -> Self {
        match kind {
            ForgeKind::Gitea => Auth::Token,
            ForgeKind::Github | ForgeKind::GithubEnterprise => Auth::Bearer,
        }
    }

    fn scheme(self) -> &'static str {
        match self {
            Auth::Bearer => "Bearer",
            Auth::Token => "token",
        }
    }
}

impl Token {
    /// The `Authorization` value that sends this token to a forge of `kind`,
    /// marked sensitive. The HTTP client sends it only to the API's origin.
    pub fn authorization(&self, kind: ForgeKind) -> Result<HeaderValue> {
        let scheme = Auth::of(kind).scheme();
        let mut value = HeaderValue::from_str(&format!("{scheme} {}", self.0))
            .context("the token is not a valid header value")?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// The kind's variables in order (`GITHUB_TOKEN`, `GH_TOKEN` for
/// github.com; the enterprise ones first for GitHub Enterprise; `GITEA_TOKEN`,
/// `FORGEJO_TOKEN` for Gitea), else, for GitHub's kinds,
/// `gh auth token --hostname HOST` when `gh` is installed; else none.
pub fn find(host: &str, kind: ForgeKind) -> Option<Token> {
    for var in kind.token_vars() {
        if let Some(value) = std::env::var(var).ok().and_then(clean) {
            return Some(Token(value));
        }
    }
    match kind {
        ForgeKind::Gitea => None,
        _ => from_gh(host),
    }
}

fn from_gh(host: &str) -> Option<Token> {
    // `gh` is run directly, never through a shell; its stderr (prompts,
    // "not logged in") is not ours to show.
    let output = Command::new("gh")
        .args(["auth", "token", "--hostname", host])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8(output.stdout)
        .ok()
        .and_then(clean)
        .map(Token)
}

/// A token is one line of visible characters; anything else would be a
/// header injection or a copy-paste accident.
fn clean(value: String) -> Option<String> {
    let value = value.trim();
    (!value.is_empty() && value.chars().all(|c| c.is_ascii_graphic())).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let token = Token("ghp_secret".into());
        assert_eq!(format!("{token:?}"), "Token(***)");
    }

    #[test]
    fn each_kind_sends_its_scheme_in_a_sensitive_header() {
        assert_eq!(Auth::of(ForgeKind::Gitea), Auth::Token);
        assert_eq!(Auth::of(ForgeKind::Github), Auth::Bearer);
        assert_eq!(Auth::of(ForgeKind::GithubEnterprise), Auth::Bearer);
        let token = Token("ghp_secret".into());
        for (kind, expected) in [
            (ForgeKind::Github, "Bearer ghp_secret"),
            (ForgeKind::GithubEnterprise, "Bearer ghp_secret"),
            (ForgeKind::Gitea, "token ghp_secret"),
        ] {
            let value = token.authorization(kind).unwrap();
            assert!(value.is_sensitive());
            assert_eq!(value.to_str().unwrap(), expected);
            assert!(!format!("{value:?}").contains("ghp_secret"));
        }
    }

    #[test]
    fn tokens_are_one_visible_line() {
        assert_eq!(clean(" ghp_x \n".into()), Some("ghp_x".into()));
        assert_eq!(clean("".into()), None);
        assert_eq!(clean("a\r\nX-Evil: 1".into()), None);
        assert_eq!(clean("a b".into()), None);
    }
}
