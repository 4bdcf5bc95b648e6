//! The man page, `patina-forge --generate man`: clap's rendering of the
//! command line (the same definition as `--help`), with the sections clap
//! does not know. `man/patina-forge.1` is this text, checked by
//! `tests/man_page.rs`.

/// Sections beyond the options, in roff. They speak of contracts (files,
/// environment, exit status) that the flags' own help cannot.
const EXTRA: &str = r#".SH ENVIRONMENT
.TP
\fBPATINA_HOME\fR
patina's home folder (default \fI~/.patina\fR): \fIregistry.yaml\fR and the reference
repositories under \fIcache/repos/\fR, the sync lock and the pace ledger under \fIrun/\fR,
the sync logs under \fIlogs/\fR.
.TP
\fBGITHUB_TOKEN\fR, \fBGH_TOKEN\fR
The token for github.com, in this order; else \fBgh auth token\fR when \fBgh\fR is
installed; else none
(GitHub allows 60 requests an hour without one). With a token the backlog is resolved in
GraphQL batches, comments, approvals and linked issues included. A token is never taken from
the command line, never written to a log, a database or a message, and sent only to the API's
own host.
.TP
\fBGH_ENTERPRISE_TOKEN\fR, \fBGITHUB_ENTERPRISE_TOKEN\fR
The token for a GitHub Enterprise host, before \fBGITHUB_TOKEN\fR and \fBGH_TOKEN\fR, as
\fBgh\fR takes them.
.TP
\fBGITEA_TOKEN\fR, \fBFORGEJO_TOKEN\fR
The token for a Gitea, Forgejo or Codeberg host, sent as \fBAuthorization: token\fR.
.TP
\fBPATINA_FORGE_API_URL\fR
The API base, as \fB\-\-api\-url\fR.
.TP
\fBPATINA_FORGE_TIMEOUT\fR
The longest wait for one answer, as \fB\-\-timeout\fR.
.TP
\fBNO_COLOR\fR
Honoured: patina-forge prints no colour.
.SH FILES
.TP
\fI<project root>/.patina/local/data/patina.db\fR
The project's database, patina's (\fI<git dir>/.patina/...\fR for a bare repository).
patina\-forge writes there a projection of its store in patina's schema alone; when patina
deletes, rebuilds or writes over it, the next run that writes puts the projection back
without a request.
.TP
\fI<project root>/.patina/local/data/patina\-forge.db\fR
patina\-forge's store, beside the database and named after it (\fB\-\-db\fR
\fI/x/foo.db\fR: \fI/x/foo\-forge.db\fR): everything fetched, the backlog, the runs.
Written one outcome per transaction: a kill loses at most the request in flight.
.TP
\fI$PATINA_HOME/run/forge\-sync\-<owner>\-<repo>.pid\fR
The PID of the process that drains this repository, which holds an exclusive \fBflock\fR on
the file for its whole life. The lock, not the PID, says whether a sync runs. The PID is
written in place, so that the file is never empty.
.TP
\fI$PATINA_HOME/logs/forge\-sync\-<owner>\-<repo>.log\fR
The background sync's log, appended; every line starts with an RFC 3339 UTC time.
.TP
\fI$PATINA_HOME/run/forge\-sync\-all.pid\fR, \fI$PATINA_HOME/logs/forge\-sync\-all.log\fR
The lock of \fB\-\-resume \-\-all\fR, \fB\-\-limit \-\-all\fR and \fB\-\-sync \-\-all\fR
(the same rules as a repository's), and what \fB\-\-sync \-\-all\fR says of the whole
run; each repository's lines go to its own log.
.TP
\fI$PATINA_HOME/run/pace\-<host>.json\fR
The pace ledger of one API host: when the next request may leave, shared under \fBflock\fR
by every patina\-forge process of the user.
.SH EXIT STATUS
.TP
\fB0\fR
Done (also after SIGINT or SIGTERM: what was fetched is kept).
.TP
\fB1\fR
Failed; one line on stderr says what and what to do. With \fB\-\-all\fR: one line for each
repository that failed; the others were done.
.TP
\fB2\fR
Bad usage.
.TP
\fB75\fR
Another process holds this repository's sync lock, or with \fB\-\-all\fR the
all\-repositories lock (\fB\-\-sync\fR, \fB\-\-limit\fR; \fB\-\-resume\fR says so and
exits 0).
.SH PATINA
patina runs plugins the way git does: \fBpatina scrape forge\fR \fIARGS...\fR and
\fBpatina forge\fR \fIARGS...\fR execute \fBpatina\-forge\fR \fIARGS...\fR found on
\fBPATH\fR, with the same environment (\fBPATINA_HOME\fR included) and working directory.
The exit status is passed back unchanged.
.SH EXAMPLES
.TP
\fBpatina\-forge\fR
First run in a project: scan its history, learn the newest issue number, fill the backlog.
.TP
\fBpatina\-forge \-\-sync\fR
Resolve the backlog in the background; \fBpatina\-forge \-\-status\fR and
\fBpatina\-forge \-\-log \-\-follow\fR tell how it goes.
.TP
\fBpatina\-forge \-\-repo claude\-code \-\-limit 50\fR
Resolve 50 refs of a reference repository in the foreground.
.TP
\fBpatina\-forge \-\-resume \-\-all\fR
Walk the new commits of every repository registered with patina, then drain them all,
taking turns; what a single hourly timer runs.
.TP
\fBpatina\-forge \-\-generate systemd\-units \-\-all | sh\fR
Install the systemd user units for all registered repositories into
\fI~/.config/systemd/user/\fR and enable their hourly timer, one process that runs
\fB\-\-resume \-\-all\fR (\fBsystemctl \-\-user enable \-\-now patina\-forge\-all.timer\fR
where a package installed the units already).
.TP
\fBpatina\-forge \-\-generate launchd\-plist \-\-all > ~/Library/LaunchAgents/patina\-forge.all.plist\fR
The same on macOS, as a launchd agent; load it with \fBlaunchctl bootstrap gui/$(id \-u)\fR
and the plist's path.
.TP
\fB(crontab \-l; patina\-forge \-\-generate crontab \-\-all) | crontab \-\fR
The same as a crontab line, its output appended to \fI~/.patina/logs/\fR.
.TP
\fBpatina\-forge \-\-generate systemd\-units claude\-code | sh\fR
Install the template units for reference repositories and enable the hourly timer of
\fIclaude\-code\fR alone, on a schedule of its own
(\fBpatina\-forge@claude\-code.timer\fR); \fBlaunchd\-plist\fR and \fBcrontab\fR take a
NAME too.
.TP
\fBpatina\-forge \-\-generate man > ~/.local/share/man/man1/patina\-forge.1\fR
This page, for \fBman patina\-forge\fR after \fBcargo install\fR.
.SH SEE ALSO
\fBpatina\fR(1), \fBgit\fR(1), \fBgh\fR(1), \fBsystemd.timer\fR(5), \fBcrontab\fR(5), \fBlaunchd.plist\fR(5)
"#;

/// The date of the release the page describes (moves with the version).
const RELEASE_DATE: &str = "2026-11-28";

/// The page, in roff.
pub fn render() -> String {
    // The release alone: the commit in --version would make the page stale
    // at every commit.
    let command = crate::cli::command().version(env!("CARGO_PKG_VERSION"));
    let man = clap_mangen::Man::new(command).date(RELEASE_DATE);
    let mut page = Vec::new();
    man.render_title(&mut page).expect("in memory");
    man.render_name_section(&mut page).expect("in memory");
    man.render_synopsis_section(&mut page).expect("in memory");
    man.render_description_section(&mut page)
        .expect("in memory");
    man.render_options_section(&mut page).expect("in memory");
    page.extend_from_slice(EXTRA.as_bytes());
    man.render_version_section(&mut page).expect("in memory");
    String::from_utf8(page).expect("clap_mangen writes UTF-8")
}
