//! Connecting to the target's forge, the one way every mode does it: what
//! the forge is, where its API answers, which token goes with it, and the
//! pace ledger of its API host. What a forge is, is asked once: the answer
//! is kept in the database (`forge_sync_state`) for status and the next run.

use std::time::Duration;

use anyhow::Result;

use crate::ForgeOptions;
use crate::cli::ApiChoice;
use crate::forge::github::{self, GitHub};
use crate::forge::kind::{self, ForgeKind};
use crate::forge::token;
use crate::home::PatinaHome;
use crate::pace::{self, Pace, Turn};
use crate::report;
use crate::store::{Store, SyncState};
use crate::target::Target;

/// Why a mode connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Resolving the backlog: `--api` is checked, and a missing token is
    /// said once (it means a small budget).
    Drain,
    /// One quiet request (discovery's newest number).
    Probe,
}

impl Purpose {
    /// The longest wait for a turn in the pace ledger before a request:
    /// discovery is meant to return at once, a drain waits as long as the
    /// forge asks.
    pub fn max_wait(self) -> Option<Duration> {
        match self {
            Purpose::Drain => None,
            Purpose::Probe => Some(PROBE_MAX_WAIT),
        }
    }
}

/// Discovery waits for no rate limit: it is meant to return at once.
const PROBE_MAX_WAIT: Duration = Duration::from_secs(5);

/// The API client and the pace ledger for the target's forge.
pub struct Connection {
    /// The REST and GraphQL client, holding the token.
    pub forge: GitHub,
    /// The pace ledger of the API's host: every request passes it first.
    pub pace: Pace,
}

/// Connects to the target's forge for `purpose`, and remembers what the
/// forge is and where its API answers.
pub fn connect(
    home: &PatinaHome,
    target: &Target,
    options: &ForgeOptions,
    purpose: Purpose,
) -> Result<Connection> {
    // What the database knows of the forge, read once for both questions.
    let known = Store::open_read_only(&target.db_path)?
        .map(|store| store.sync_state(&target.forge.repo.to_string()))
        .transpose()?
        .unwrap_or_default();
    let host = &target.forge.host;
    let kind = resolve_kind(
        options.forge_kind,
        known.forge_kind.as_deref(),
        host,
        || probe(home, host, options, purpose),
    )?;
    // A base given once (`--api-url`) is kept with the repository, so that
    // later runs, `--all`'s among them, reach the same API without it.
    let given = options.api_url.as_deref().or(known.api_base.as_deref());
    let base = github::api_base(host, given, kind)?;
    let token = token::find(host, kind);
    if purpose == Purpose::Drain {
        check_api(options.api, kind, token.is_some())?;
        if token.is_none() {
            report::note(&no_token_note(kind));
        }
    }
    let forge = GitHub::new(
        base,
        target.forge.repo.clone(),
        token,
        options.timeout,
        kind,
    )?;
    remember_forge(target, &forge, &known)?;
    let pace = Pace::new(home, &forge.host_key(), options.delay)?.with_reserve(options.reserve);
    Ok(Connection { forge, pace })
}

/// What the forge is: `flag` (`--forge-kind`), else the kind the database
/// remembers, else what the host name tells, else what the host answers
/// when asked (`probe`, called only then).
pub fn resolve_kind(
    flag: Option<ForgeKind>,
    remembered: Option<&str>,
    host: &str,
    probe: impl FnOnce() -> Result<ForgeKind>,
) -> Result<ForgeKind> {
    if let Some(kind) = flag {
        return Ok(kind);
    }
    if let Some(kind) = remembered.and_then(ForgeKind::parse) {
        return Ok(kind);
    }
    if let Some(kind) = ForgeKind::known(host) {
        return Ok(kind);
    }
    probe()
}

/// Asks `host` what it is, at `--api-url` when given, each request paced
/// like any other; the answer is remembered by [`connect`].
fn probe(
    home: &PatinaHome,
    host: &str,
    options: &ForgeOptions,
    purpose: Purpose,
) -> Result<ForgeKind> {
    let given = options
        .api_url
        .as_deref()
        .map(|url| github::api_base(host, Some(url), ForgeKind::Github))
        .transpose()?;
    let detected = kind::detect(host, given.as_ref(), &mut |url| {
        let pace =
            Pace::new(home, &pace::host_key(url), options.delay)?.with_reserve(options.reserve);
        match pace.wait_turn(purpose.max_wait(), &mut |_, _| {})? {
            Turn::Go => Ok(()),
            Turn::Stopped => anyhow::bail!("interrupted"),
            Turn::TooLong(wait) => anyhow::bail!(
                "{host} cannot be asked what it is before a {} wait (rate limit); \
                 the next sync asks",
                humantime::format_duration(Duration::from_secs(wait.as_secs()))
            ),
        }
    })?;
    report::note(&format!(
        "note: {host} is {} (API at {}); remembered in the database",
        detected.kind.name(),
        detected.base
    ));
    Ok(detected.kind)
}

/// `--api graphql` asks for what this forge, or the lack of a token, cannot
/// give: said before anything is asked.
fn check_api(choice: ApiChoice, kind: ForgeKind, has_token: bool) -> Result<()> {
    if choice != ApiChoice::Graphql {
        return Ok(());
    }
    if !kind.has_graphql() {
        anyhow::bail!("--api graphql: {} has no GraphQL API", kind.name());
    }
    if !has_token {
        anyhow::bail!(
            "--api graphql needs a token: set GITHUB_TOKEN (or GH_TOKEN, or run `gh auth login`)"
        );
    }
    Ok(())
}

/// What a drain without a token can read, and where a token comes from.
fn no_token_note(kind: ForgeKind) -> String {
    match kind {
        ForgeKind::Gitea => "note: no Gitea token (GITEA_TOKEN or FORGEJO_TOKEN): only \
                             public repositories can be read"
            .to_owned(),
        _ => format!(
            "note: no {} token ({} or `gh auth login`): GitHub allows 60 requests an hour \
             without one",
            kind.name(),
            kind.token_vars().join(", ")
        ),
    }
}

/// Which API resolves the backlog: `(graphql, note)`, the note saying why
/// REST when it is REST (kept with the run, shown by status). GraphQL needs
/// a token and a forge that serves it.
pub fn choose_api(choice: ApiChoice, kind: ForgeKind, has_token: bool) -> (bool, Option<String>) {
    match (choice, has_token) {
        (ApiChoice::Rest, _) => (false, Some("--api rest".to_owned())),
        _ if !kind.has_graphql() => (false, Some("Gitea has no GraphQL".to_owned())),
        (_, true) => (true, None),
        (_, false) => (false, Some("no token".to_owned())),
    }
}

/// Keeps what the forge is and where its API answers, for status and for the
/// next run (which then asks the host nothing).
fn remember_forge(target: &Target, forge: &GitHub, known: &SyncState) -> Result<()> {
    let repo = target.forge.repo.to_string();
    let (kind, base) = (forge.kind().as_str(), forge.base().as_str());
    let base = base.trim_end_matches('/');
    if known.forge_kind.as_deref() != Some(kind) || known.api_base.as_deref() != Some(base) {
        Store::open(&target.db_path)?.write(|w| w.set_forge(&repo, kind, base))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    const KINDS: [ForgeKind; 3] = [
        ForgeKind::Github,
        ForgeKind::GithubEnterprise,
        ForgeKind::Gitea,
    ];

    #[test]
    fn rest_when_asked_when_the_forge_has_no_graphql_or_without_a_token() {
        let rest = |why: &str| (false, Some(why.to_owned()));
        for kind in KINDS {
            for has_token in [false, true] {
                assert_eq!(
                    choose_api(ApiChoice::Rest, kind, has_token),
                    rest("--api rest")
                );
            }
        }
        for choice in [ApiChoice::Auto, ApiChoice::Graphql] {
            for has_token in [false, true] {
                assert_eq!(
                    choose_api(choice, ForgeKind::Gitea, has_token),
                    rest("Gitea has no GraphQL")
                );
            }
            for kind in [ForgeKind::Github, ForgeKind::GithubEnterprise] {
                assert_eq!(choose_api(choice, kind, true), (true, None));
                assert_eq!(choose_api(choice, kind, false), rest("no token"));
            }
        }
    }

    #[test]
    fn api_graphql_is_refused_where_it_cannot_work() {
        for kind in KINDS {
            for has_token in [false, true] {
                assert!(check_api(ApiChoice::Auto, kind, has_token).is_ok());
                assert!(check_api(ApiChoice::Rest, kind, has_token).is_ok());
            }
        }
        assert!(check_api(ApiChoice::Graphql, ForgeKind::Github, true).is_ok());
        assert!(check_api(ApiChoice::Graphql, ForgeKind::GithubEnterprise, true).is_ok());
        let gitea = check_api(ApiChoice::Graphql, ForgeKind::Gitea, true).unwrap_err();
        assert_eq!(gitea.to_string(), "--api graphql: Gitea has no GraphQL API");
        // The forge's answer comes first: a token would not help Gitea.
        let gitea = check_api(ApiChoice::Graphql, ForgeKind::Gitea, false).unwrap_err();
        assert_eq!(gitea.to_string(), "--api graphql: Gitea has no GraphQL API");
        let tokenless = check_api(ApiChoice::Graphql, ForgeKind::Github, false).unwrap_err();
        assert!(
            tokenless
                .to_string()
                .starts_with("--api graphql needs a token")
        );
    }

    #[test]
    fn the_no_token_note_names_the_kinds_variables() {
        assert!(no_token_note(ForgeKind::Gitea).contains("GITEA_TOKEN or FORGEJO_TOKEN"));
        assert!(
            no_token_note(ForgeKind::Github)
                .contains("no GitHub token (GITHUB_TOKEN, GH_TOKEN or `gh auth login`)")
        );
        assert!(
            no_token_note(ForgeKind::GithubEnterprise)
                .starts_with("note: no GitHub Enterprise token (GH_ENTERPRISE_TOKEN, ")
        );
    }

    /// The probe of `resolve_kind`: counts its calls, answers `kind`.
    fn probe_answering(kind: ForgeKind, calls: &Cell<u32>) -> impl FnOnce() -> Result<ForgeKind> {
        move || {
            calls.set(calls.get() + 1);
            Ok(kind)
        }
    }

    #[test]
    fn the_flag_wins_over_the_remembered_kind_the_host_and_the_probe() {
        let calls = Cell::new(0);
        let probe = probe_answering(ForgeKind::Github, &calls);
        let kind = resolve_kind(
            Some(ForgeKind::GithubEnterprise),
            Some("gitea"),
            "github.com",
            probe,
        );
        assert_eq!(kind.unwrap(), ForgeKind::GithubEnterprise);
        assert_eq!(calls.get(), 0);
    }

    #[test]
    fn the_remembered_kind_wins_over_the_host_and_the_probe() {
        let calls = Cell::new(0);
        let probe = probe_answering(ForgeKind::Github, &calls);
        let kind = resolve_kind(None, Some("gitea"), "github.com", probe);
        assert_eq!(kind.unwrap(), ForgeKind::Gitea);
        assert_eq!(calls.get(), 0);
    }

    #[test]
    fn the_host_name_wins_over_the_probe_and_an_unknown_remembered_kind() {
        let calls = Cell::new(0);
        let kind = resolve_kind(
            None,
            None,
            "codeberg.org",
            probe_answering(ForgeKind::Github, &calls),
        );
        assert_eq!(kind.unwrap(), ForgeKind::Gitea);
        // A kind this binary does not know is as good as none.
        let kind = resolve_kind(
            None,
            Some("gitlab"),
            "GitHub.com",
            probe_answering(ForgeKind::Gitea, &calls),
        );
        assert_eq!(kind.unwrap(), ForgeKind::Github);
        assert_eq!(calls.get(), 0);
    }

    #[test]
    fn an_unknown_host_is_probed_once_and_its_failure_is_the_answer() {
        let calls = Cell::new(0);
        let probe = probe_answering(ForgeKind::GithubEnterprise, &calls);
        let kind = resolve_kind(None, None, "git.example.org", probe);
        assert_eq!(kind.unwrap(), ForgeKind::GithubEnterprise);
        assert_eq!(calls.get(), 1);
        let failed = resolve_kind(None, None, "git.example.org", || {
            anyhow::bail!("cannot tell what forge git.example.org is")
        });
        assert_eq!(
            failed.unwrap_err().to_string(),
            "cannot tell what forge git.example.org is"
        );
    }
}
