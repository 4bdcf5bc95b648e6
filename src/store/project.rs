//! The projection: what patina reads, derived from our store and written
//! into `patina.db` with patina's schema alone. Every function here is
//! idempotent and reads only our store, so a projection that was lost
//! (patina deleted or rebuilt its file), overwritten (patina's own forge
//! scrape replaces whole rows) or cut short (a crash between the commit of
//! our store and of patina's file) is made whole again by [`reconcile`],
//! without a request.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::resolve::MARK;

/// The patina columns of `forge_refs`, copied from our store where they
/// differ (or are missing); `filter` narrows the rows of our store.
fn refs_where(conn: &Connection, filter: &str, values: &[&dyn rusqlite::ToSql]) -> Result<u64> {
    let n = conn.execute(
        &format!(
            "INSERT INTO patina.forge_refs
                 (repo, ref_number, ref_kind, discovered, source, resolved, error)
             SELECT m.repo, m.ref_number, m.ref_kind, m.discovered, m.source, m.resolved, m.error
             FROM main.forge_refs m
             LEFT JOIN patina.forge_refs p ON p.repo = m.repo AND p.ref_number = m.ref_number
             WHERE {filter}
               AND (p.ref_number IS NULL OR p.ref_kind IS NOT m.ref_kind
                    OR p.discovered IS NOT m.discovered OR p.source IS NOT m.source
                    OR p.resolved IS NOT m.resolved OR p.error IS NOT m.error)
             ON CONFLICT (repo, ref_number) DO UPDATE SET
                 ref_kind = excluded.ref_kind, discovered = excluded.discovered,
                 source = excluded.source, resolved = excluded.resolved, error = excluded.error"
        ),
        values,
    )?;
    Ok(n as u64)
}

/// Projects ref `number` of `repo`.
pub(super) fn one_ref(conn: &Connection, repo: &str, number: u32) -> Result<()> {
    refs_where(
        conn,
        "m.repo = ?1 AND m.ref_number = ?2",
        params![repo, number],
    )?;
    Ok(())
}

/// Projects every ref of `repo` that differs: one pass after a discovery.
pub(super) fn repo_refs(conn: &Connection, repo: &str) -> Result<u64> {
    refs_where(conn, "m.repo = ?1", params![repo])
}

/// Moves patina's high-water mark up to ours (never back: patina's own
/// forge scrape may have gone further).
pub(super) fn mark(conn: &Connection) -> Result<()> {
    conn.execute(
        "INSERT INTO patina.scrape_meta (key, value)
         SELECT key, value FROM main.scrape_meta WHERE key = ?1 AND value IS NOT NULL
         ON CONFLICT (key) DO UPDATE SET value = max(coalesce(value, ''), excluded.value)",
        [MARK],
    )?;
    Ok(())
}

/// patina's flattening of a PR's discussion: one `author: body` line per
/// comment (a deleted account is `ghost`, as GitHub shows it).
pub(super) fn comments_text(conn: &Connection, number: u32) -> Result<String> {
    let mut stmt = conn.prepare_cached(
        "SELECT coalesce(author, 'ghost'), body FROM main.forge_comments
         WHERE number = ?1 ORDER BY position",
    )?;
    let lines = stmt
        .query_map([number], |row| {
            Ok(format!(
                "{}: {}",
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(lines.join("\n"))
}

/// Item `number` as our store holds it, in the shape of patina's row.
struct Row {
    title: String,
    body: Option<String>,
    state: String,
    labels: Option<String>,
    author: Option<String>,
    created_at: String,
    updated_at: Option<String>,
    url: String,
    merged_at: Option<String>,
    linked_issues: Option<String>,
    approvals: Option<i64>,
}

fn read_row(conn: &Connection, number: u32, pr: bool) -> Result<Option<Row>> {
    let sql = if pr {
        "SELECT title, body, state, labels, author, created_at, updated_at, url,
                merged_at, linked_issues, approvals
         FROM main.forge_prs WHERE number = ?1"
    } else {
        "SELECT title, body, state, labels, author, created_at, updated_at, url,
                NULL, NULL, NULL
         FROM main.forge_issues WHERE number = ?1"
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row([number], |row| {
            Ok(Row {
                title: row.get(0)?,
                body: row.get(1)?,
                state: row.get(2)?,
                labels: row.get(3)?,
                author: row.get(4)?,
                created_at: row.get(5)?,
                updated_at: row.get(6)?,
                url: row.get(7)?,
                merged_at: row.get(8)?,
                linked_issues: row.get(9)?,
                approvals: row.get(10)?,
            })
        })
        .optional()?)
}

fn json_or(text: Option<&str>, default: Value) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(default)
}

/// Projects item `number` (a PR when `pr`): its event, its row, and, with
/// `fts`, its row of `code_fts`. With `new_event` a new event is appended
/// (a new version, or its discussion known for the first time); without, the
/// newest event of this version is reused when patina's file has one, as
/// patina's own de-duplication finds it (type, JSON `number` and
/// `updated_at`), and one is appended only when none is there.
pub(super) fn item(
    conn: &Connection,
    number: u32,
    pr: bool,
    new_event: bool,
    fts: bool,
) -> Result<()> {
    let Some(row) = read_row(conn, number, pr)? else {
        return Ok(());
    };
    let kind = if pr { "forge.pr" } else { "forge.issue" };
    let comments = if pr {
        Some(comments_text(conn, number)?)
    } else {
        None
    };
    let known: Option<i64> = if new_event {
        None
    } else {
        conn.prepare_cached(
            "SELECT max(seq) FROM patina.eventlog
             WHERE source_id = ?1 AND event_type = ?2 AND data ->> '$.number' = ?3
               AND data ->> '$.updated_at' IS ?4",
        )?
        .query_row(
            params![number.to_string(), kind, number, row.updated_at],
            |r| r.get(0),
        )?
    };
    let seq = match known {
        Some(seq) => seq,
        None => {
            let mut data = json!({
                "number": number,
                "title": row.title,
                "body": row.body,
                "state": row.state,
                "labels": json_or(row.labels.as_deref(), json!([])),
                "author": row.author,
                "url": row.url,
                "updated_at": row.updated_at,
            });
            if pr {
                data["linked_issues"] = json_or(row.linked_issues.as_deref(), json!([]));
                data["comments"] = json!(comments);
                data["approvals"] = json!(row.approvals.unwrap_or(0));
            }
            conn.prepare_cached(
                "INSERT INTO patina.eventlog (event_type, timestamp, source_id, source_file, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                kind,
                row.created_at,
                number.to_string(),
                row.url,
                data.to_string()
            ])?;
            conn.last_insert_rowid()
        }
    };
    if pr {
        conn.prepare_cached(
            "INSERT INTO patina.forge_prs (number, title, body, state, labels, author, created_at,
                                           merged_at, url, linked_issues, approvals, event_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (number) DO UPDATE SET
                 title = excluded.title, body = excluded.body, state = excluded.state,
                 labels = excluded.labels, author = excluded.author,
                 created_at = excluded.created_at, merged_at = excluded.merged_at,
                 url = excluded.url, linked_issues = excluded.linked_issues,
                 approvals = excluded.approvals, event_seq = excluded.event_seq",
        )?
        .execute(params![
            number,
            row.title,
            row.body,
            row.state,
            row.labels,
            row.author,
            row.created_at,
            row.merged_at,
            row.url,
            row.linked_issues,
            row.approvals,
            seq
        ])?;
        conn.prepare_cached("UPDATE main.forge_prs SET event_seq = ?2 WHERE number = ?1")?
            .execute(params![number, seq])?;
    } else {
        conn.prepare_cached(
            "INSERT INTO patina.forge_issues (number, title, body, state, labels, author,
                                              created_at, updated_at, url, event_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (number) DO UPDATE SET
                 title = excluded.title, body = excluded.body, state = excluded.state,
                 labels = excluded.labels, author = excluded.author,
                 created_at = excluded.created_at, updated_at = excluded.updated_at,
                 url = excluded.url, event_seq = excluded.event_seq",
        )?
        .execute(params![
            number,
            row.title,
            row.body,
            row.state,
            row.labels,
            row.author,
            row.created_at,
            row.updated_at,
            row.url,
            seq
        ])?;
        conn.prepare_cached("UPDATE main.forge_issues SET event_seq = ?2 WHERE number = ?1")?
            .execute(params![number, seq])?;
    }
    if fts {
        let body = row.body.unwrap_or_default();
        let content = match comments {
            Some(comments) => format!("{body} {comments}"),
            None => body,
        };
        fts_item(conn, kind, &row.url, &row.title, &content)?;
    }
    Ok(())
}

/// Replaces the `code_fts` row of one item (found by its URL and type, as
/// patina's forge scrape writes them) by its latest version. The URL's last
/// segment (the number) finds the few candidates through the index; the
/// exact URL decides. The whole URL as a phrase would read the long lists of
/// the words every URL shares, seven times slower.
fn fts_item(conn: &Connection, kind: &str, url: &str, title: &str, content: &str) -> Result<()> {
    let last = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if last.chars().any(char::is_alphanumeric) {
        let phrase = format!("file_path : \"{}\"", last.replace('"', "\"\""));
        conn.prepare_cached(
            "DELETE FROM patina.code_fts
             WHERE rowid IN (SELECT rowid FROM patina.code_fts WHERE code_fts MATCH ?1)
               AND file_path = ?2 AND event_type = ?3",
        )?
        .execute(params![phrase, url, kind])?;
    } else {
        conn.prepare_cached(
            "DELETE FROM patina.code_fts WHERE file_path = ?1 AND event_type = ?2",
        )?
        .execute(params![url, kind])?;
    }
    conn.prepare_cached(
        "INSERT INTO patina.code_fts (symbol_name, file_path, content, event_type)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![title, url, content, kind])?;
    Ok(())
}

/// Whether `code_fts` holds one forge row per item of ours: counted through
/// the index alone (reading each row to compare its `event_type` exactly
/// would cost ten times more, and no other type has these words).
fn fts_whole(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT (SELECT count(*) FROM patina.code_fts
                 WHERE code_fts MATCH 'event_type : \"forge.issue\"')
                = (SELECT count(*) FROM main.forge_issues)
            AND (SELECT count(*) FROM patina.code_fts
                 WHERE code_fts MATCH 'event_type : \"forge.pr\"')
                = (SELECT count(*) FROM main.forge_prs)",
        [],
        |row| row.get(0),
    )?)
}

/// Writes the forge rows of `code_fts` again, as patina's forge scrape
/// would leave them, but one per item (its latest version); other rows are
/// never touched.
fn fts_all(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM patina.code_fts
         WHERE rowid IN (SELECT rowid FROM patina.code_fts WHERE code_fts MATCH 'event_type : forge')
           AND event_type IN ('forge.issue', 'forge.pr');
         INSERT INTO patina.code_fts (symbol_name, file_path, content, event_type)
         SELECT title, url, coalesce(body, ''), 'forge.issue' FROM main.forge_issues
         ORDER BY number;
         INSERT INTO patina.code_fts (symbol_name, file_path, content, event_type)
         SELECT p.title, p.url,
                coalesce(p.body, '') || ' ' || coalesce(
                    (SELECT group_concat(coalesce(c.author, 'ghost') || ': ' || c.body, char(10)
                                         ORDER BY c.position)
                     FROM main.forge_comments c WHERE c.number = p.number), ''),
                'forge.pr'
         FROM main.forge_prs p ORDER BY p.number;",
    )?;
    Ok(())
}

/// What [`reconcile`] found missing or changed in patina's file and wrote again.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repaired {
    /// Refs whose patina columns were missing or differed.
    pub refs: u64,
    /// Issues and PRs whose row or event was missing or differed.
    pub items: u64,
    /// Whether the forge rows of `code_fts` were written again.
    pub search: bool,
}

impl Repaired {
    /// Nothing was missing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Adds what a later check repaired.
    pub fn add(&mut self, other: Repaired) {
        self.refs += other.refs;
        self.items += other.items;
        self.search |= other.search;
    }
}

/// Items of our store whose patina row differs, or whose `event_seq` does
/// not point at an event of this version.
fn stale_items(conn: &Connection, pr: bool) -> Result<Vec<u32>> {
    let sql = if pr {
        "SELECT m.number FROM main.forge_prs m
         LEFT JOIN patina.forge_prs p ON p.number = m.number
         LEFT JOIN patina.eventlog e ON e.seq = p.event_seq
         WHERE p.number IS NULL OR p.title IS NOT m.title OR p.body IS NOT m.body
            OR p.state IS NOT m.state OR p.labels IS NOT m.labels OR p.author IS NOT m.author
            OR p.created_at IS NOT m.created_at OR p.merged_at IS NOT m.merged_at
            OR p.url IS NOT m.url OR p.linked_issues IS NOT m.linked_issues
            OR p.approvals IS NOT m.approvals
            OR e.seq IS NULL OR e.event_type IS NOT 'forge.pr'
            OR e.source_id IS NOT CAST(m.number AS TEXT)
            OR e.data ->> '$.updated_at' IS NOT m.updated_at"
    } else {
        "SELECT m.number FROM main.forge_issues m
         LEFT JOIN patina.forge_issues p ON p.number = m.number
         LEFT JOIN patina.eventlog e ON e.seq = p.event_seq
         WHERE p.number IS NULL OR p.title IS NOT m.title OR p.body IS NOT m.body
            OR p.state IS NOT m.state OR p.labels IS NOT m.labels OR p.author IS NOT m.author
            OR p.created_at IS NOT m.created_at OR p.updated_at IS NOT m.updated_at
            OR p.url IS NOT m.url
            OR e.seq IS NULL OR e.event_type IS NOT 'forge.issue'
            OR e.source_id IS NOT CAST(m.number AS TEXT)
            OR e.data ->> '$.updated_at' IS NOT m.updated_at"
    };
    let mut stmt = conn.prepare(sql)?;
    let numbers = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<u32>>>()?;
    Ok(numbers)
}

/// Compares patina's file with our store and writes again whatever is
/// missing or differs: refs, items and their events, the mark, the search
/// rows. Cheap when nothing is (one pass of joins); without a request
/// always.
pub(super) fn reconcile(conn: &Connection) -> Result<Repaired> {
    let mut repaired = Repaired {
        refs: refs_where(conn, "1", &[]).context("cannot project the backlog")?,
        ..Repaired::default()
    };
    for pr in [false, true] {
        for number in stale_items(conn, pr)? {
            item(conn, number, pr, false, false)
                .with_context(|| format!("cannot project #{number}"))?;
            repaired.items += 1;
        }
    }
    mark(conn)?;
    if repaired.items > 0 || !fts_whole(conn)? {
        fts_all(conn).context("cannot fill patina's search index")?;
        repaired.search = true;
    }
    Ok(repaired)
}
