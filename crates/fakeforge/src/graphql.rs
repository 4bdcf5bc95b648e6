//! `POST /graphql`: a small, real GraphQL implementation over the fake's
//! data, for the subset of GitHub's schema a client resolving refs uses.
//!
//! A query goes through the stages a GraphQL server has: the lexer and
//! parser (executable documents: operations, variables, fields with aliases
//! and arguments, inline fragments, named fragments and spreads, `@include` /
//! `@skip`, comments, block strings), validation against the schema below
//! (GitHub's error shapes, from graphql-ruby, which GitHub runs), variable
//! coercion, GitHub's own checks (pagination bounds, the cost of the query),
//! and execution field by field. Any field list the schema allows gets the
//! right answer, and anything else gets the error GitHub would send.
//!
//! Answers are written with the keys in query order (as GraphQL requires);
//! `serde_json`'s map would sort them.
//!
//! # The schema served
//!
//! ```text
//! Query        rateLimit: RateLimit   repository(owner: String!, name: String!, followRenames: Boolean): Repository
//! RateLimit    cost limit nodeCount remaining used: Int!   resetAt: DateTime!
//! Repository   id databaseId name nameWithOwner url owner: RepositoryOwner! (Organization { login })
//!              issueOrPullRequest(number: Int!): IssueOrPullRequest (union)
//!              issue(number: Int!): Issue   pullRequest(number: Int!): PullRequest
//! Issue        id databaseId number title body(String!: null → "") url createdAt updatedAt closedAt closed
//!              state: IssueState (OPEN CLOSED)  stateReason (COMPLETED when closed)  author: Actor (User { login }, Bot { login }: a REST `name[bot]` is Bot `name`)
//!              labels(first, after): LabelConnection  comments(first, after): IssueCommentConnection!
//!              repository: Repository!
//! PullRequest  the same, with state: PullRequestState (OPEN CLOSED MERGED), merged mergedAt isDraft,
//!              reviews(first, after, states: [PullRequestReviewState!]): PullRequestReviewConnection,
//!              closingIssuesReferences(first, after): IssueConnection (nodes are Issues)
//! …Connection  totalCount nodes edges { cursor node } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
//! Label { name }   IssueComment { id author body createdAt }   PullRequestReview { id author state }
//! ```
//!
//! # What comes back (always HTTP 200 unless said)
//!
//! - Found: `{"data": …}`. A number that is missing, deleted or transferred
//!   (GraphQL does not follow transfers) is `null` at its alias, with
//!   `{"type":"NOT_FOUND","path":["repository","n13"],"locations":[…],
//!   "message":"Could not resolve to an issue or pull request with the number
//!   of 13."}` in `errors` next to `data` (`issue`/`pullRequest`: "… to an
//!   Issue / a PullRequest with …"). An unknown repository: `repository`
//!   null, path `["repository"]`, "Could not resolve to a Repository with the
//!   name 'o/n'.".
//! - Static errors (`errors` only, no `data`, nothing charged): a syntax
//!   error `{"message":"Parse error on \"}\" (RCURLY) at [1, 30]",
//!   "locations":[…]}` or `"Unexpected end of document"` with `locations: []`;
//!   validation `{"path":["query"|"fragment F",…],"extensions":{"code":
//!   "undefinedField",…},"locations":[…],"message":"Field 'x' doesn't exist
//!   on type 'Issue'"}` and graphql-ruby's other codes; a variable without a
//!   valid value `{"message":"Variable $owner of type String! was provided
//!   invalid value","locations":[…],"extensions":{"value":…,"problems":[…]}}`;
//!   `first` over 100 (`EXCESSIVE_PAGINATION`), `nodes`/`edges` without
//!   `first` (`MISSING_PAGINATION_BOUNDARIES`), a bad `after`
//!   (`INVALID_CURSOR_ARGUMENTS`), over 500,000 nodes
//!   (`MAX_NODE_LIMIT_EXCEEDED`): `{"type":…,"path":[…],"locations":[…],
//!   "message":…}`.
//! - A body that is not JSON: 400 `{"message":"Problems parsing JSON"}`; no
//!   `query` string: `{"errors":[{"message":"A query attribute must be
//!   specified and must be a string."}]}`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::http::{Request, Response};
use super::{
    Entry, FakeForge, Item, Kind, Repo, State, WINDOW_SECS, authorized, clock, iso, json_response,
};

/// GitHub's GraphQL points per hour.
const POINTS_PER_HOUR: u64 = 5_000;
/// The largest `first` GitHub accepts on a connection.
const MAX_FIRST: i64 = 100;
/// GitHub refuses a query that may return more nodes than this.
const MAX_NODES: u64 = 500_000;
const DOCS: &str = "https://docs.github.com/graphql";

// ---------------------------------------------------------------------------
// The fake's GraphQL state and its public controls
// ---------------------------------------------------------------------------

/// The GraphQL side of the fake's state (in `State::graphql`).
pub(super) struct Gql {
    enabled: bool,
    limit: u64,
    /// Points used in this window; may pass `limit`: GitHub runs the query
    /// that crosses zero and refuses the next one.
    used: u64,
    /// Epoch seconds.
    reset: u64,
    per_alias: Duration,
    slow_over: Option<(usize, Duration)>,
    queries: Vec<String>,
}

impl Gql {
    pub(super) fn new() -> Gql {
        Gql {
            enabled: true,
            limit: POINTS_PER_HOUR,
            used: 0,
            reset: clock::now_secs() as u64 + WINDOW_SECS,
            per_alias: Duration::ZERO,
            slow_over: None,
            queries: Vec::new(),
        }
    }

    fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// A new window once the reset time has passed (as `Rate::roll`).
    fn roll(&mut self, now: f64) {
        if now >= self.reset as f64 {
            self.used = 0;
            self.reset = now.floor() as u64 + WINDOW_SECS;
        }
    }
}

impl FakeForge {
    /// Sets the GraphQL budget (points), separate from REST's `core`.
    /// `reset_epoch_secs` is wall-clock epoch seconds; once it has passed,
    /// the budget refills to `limit` for a new hour.
    pub fn set_graphql_rate_limit(&self, limit: u64, remaining: u64, reset_epoch_secs: u64) {
        let g = &mut self.state().graphql;
        g.limit = limit;
        g.used = limit - remaining.min(limit);
        g.reset = reset_epoch_secs;
    }

    /// (limit, remaining, reset) of the GraphQL budget as they are now.
    pub fn graphql_rate_limit(&self) -> (u64, u64, u64) {
        let g = &mut self.state().graphql;
        g.roll(clock::now_f64());
        (g.limit, g.remaining(), g.reset)
    }

    /// Every GraphQL answer is delayed by `d` per item lookup in the query
    /// (`issueOrPullRequest`, `issue`, `pullRequest` fields).
    pub fn set_graphql_latency_per_alias(&self, d: Duration) {
        self.state().graphql.per_alias = d;
    }

    /// A GraphQL answer to a query with more than `aliases` item lookups is
    /// delayed by `delay` (on top of any other latency).
    pub fn set_graphql_slow_over(&self, aliases: usize, delay: Duration) {
        self.state().graphql.slow_over = Some((aliases, delay));
    }

    /// From now on `/graphql` is an unknown path (404, REST rules and
    /// counting), as on a GitHub Enterprise host with GraphQL turned off.
    pub fn disable_graphql(&self) {
        self.state().graphql.enabled = false;
    }

    /// The `query` of every POST to `/graphql` received, in order (the raw
    /// body when it has no `query` string); `clear_log` clears them too.
    pub fn graphql_queries(&self) -> Vec<String> {
        self.state().graphql.queries.clone()
    }

    pub(super) fn clear_graphql_queries(&self) {
        self.state().graphql.queries.clear();
    }
}

// ---------------------------------------------------------------------------
// The hooks `Shared::decide` and `Shared::route` call
// ---------------------------------------------------------------------------

/// Whether the request is for the GraphQL endpoint (and it is on).
pub(super) fn serves(st: &State, request: &Request) -> bool {
    st.graphql.enabled && request.method == "POST" && request.path() == "/graphql"
}

/// What `decide` needs to know of a GraphQL request, parsed once.
pub(super) struct Call {
    /// `None` when the query does not parse or validate: nothing to charge.
    plan: Option<Tally>,
}

impl Call {
    /// Rolls the GraphQL window; for a GraphQL request, logs its query and
    /// works out its cost. `None` for every other request.
    pub(super) fn read(st: &mut State, request: &Request, off_host: bool) -> Option<Call> {
        st.graphql.roll(clock::now_f64());
        if off_host || !serves(st, request) {
            return None;
        }
        let body: Option<Value> = serde_json::from_slice(&request.body).ok();
        let query = match body.as_ref().and_then(|b| b.get("query")?.as_str()) {
            Some(q) => q.to_string(),
            None => String::from_utf8_lossy(&request.body).into_owned(),
        };
        st.graphql.queries.push(query);
        let plan = prepare(&request.body).ok().map(|p| p.tally);
        Some(Call { plan })
    }

    /// The extra delay for a query of this many lookups.
    pub(super) fn delay(&self, st: &State) -> Duration {
        let lookups = self.plan.as_ref().map_or(0, |t| t.lookups) as usize;
        let g = &st.graphql;
        let mut delay = g.per_alias * u32::try_from(lookups).unwrap_or(u32::MAX);
        if let Some((over, extra)) = g.slow_over
            && lookups > over
        {
            delay += extra;
        }
        delay
    }

    /// Takes the query's cost from the budget (it was answered); false when
    /// there was nothing to charge (a query that does not validate).
    pub(super) fn charge(&self, st: &mut State) -> bool {
        let Some(t) = &self.plan else {
            return false;
        };
        st.graphql.used += t.cost;
        true
    }
}

/// The refusals before anything else (after the User-Agent check): no
/// credentials, wrong credentials, an empty budget.
pub(super) fn gate(st: &State, request: &Request) -> Option<Response> {
    let header = request
        .header("authorization")
        .filter(|h| !h.trim().is_empty());
    let Some(header) = header else {
        let doc = format!("{DOCS}/guides/forming-calls-with-graphql#authenticating-with-graphql");
        return Some(ordered_response(
            401,
            &obj(vec![
                (
                    "message",
                    s("This endpoint requires you to be authenticated."),
                ),
                ("documentation_url", s(doc)),
            ]),
        ));
    };
    if let Some(token) = &st.token
        && !authorized(Some(header), token)
    {
        return Some(ordered_response(
            401,
            &obj(vec![
                ("message", s("Bad credentials")),
                ("documentation_url", s(DOCS)),
            ]),
        ));
    }
    (st.graphql.remaining() == 0).then(rate_limited)
}

/// GitHub's answer to a query when the GraphQL budget is spent: 200.
pub(super) fn rate_limited() -> Response {
    let error = obj(vec![
        ("type", s("RATE_LIMITED")),
        ("code", s("graphql_rate_limit")),
        (
            "message",
            s("API rate limit already exceeded for user ID 1."),
        ),
    ]);
    ordered_response(200, &obj(vec![("errors", Out::List(vec![error]))]))
}

/// The `PrimaryLimit` fault on `/graphql`: the budget is spent until then.
pub(super) fn exhaust(st: &mut State, reset_in_secs: u64) {
    let g = &mut st.graphql;
    g.used = g.used.max(g.limit);
    g.reset = clock::now_secs() as u64 + reset_in_secs;
}

/// (limit, remaining, used, reset, resource) for the `x-ratelimit-*` headers.
pub(super) fn headers(st: &State) -> (u64, u64, u64, u64, &'static str) {
    let g = &st.graphql;
    (g.limit, g.remaining(), g.used, g.reset, "graphql")
}

/// (limit, used, remaining, reset) for `/rate_limit`.
pub(super) fn numbers(st: &State) -> (u64, u64, u64, u64) {
    let g = &st.graphql;
    (g.limit, g.used, g.remaining(), g.reset)
}

/// The `WrongTypes` fault: every object with a `number` gets it as a string,
/// and its `title` (if asked) as a number.
pub(super) fn retype(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(n) = o.get("number").cloned() {
                o.insert("number".into(), Value::String(n.to_string()));
                if o.contains_key("title") {
                    o.insert("title".into(), Value::from(12345));
                }
            }
            o.values_mut().for_each(retype);
        }
        Value::Array(items) => items.iter_mut().for_each(retype),
        _ => {}
    }
}

/// The answer to a GraphQL request (no side effects: the charge is the
/// caller's; `rateLimit` reports the numbers after it).
pub(super) fn respond(st: &State, request: &Request) -> Response {
    let plan = match prepare(&request.body) {
        Ok(plan) => plan,
        Err(response) => return response,
    };
    let g = &st.graphql;
    let cost = plan.tally.cost;
    let op = &plan.doc.ops[plan.op];
    let mut exec = Exec {
        st,
        doc: &plan.doc,
        vars: &plan.vars,
        rate: [
            ("cost", cost),
            ("limit", g.limit),
            ("nodeCount", plan.tally.nodes),
            ("remaining", g.remaining().saturating_sub(cost)),
            ("used", g.used + cost),
        ],
        reset: g.reset,
        errors: Vec::new(),
    };
    let data = exec.set(&Obj::Query, &[&op.sel], &mut Vec::new());
    let mut answer = vec![("data", data)];
    if !exec.errors.is_empty() {
        answer.push(("errors", Out::List(exec.errors)));
    }
    ordered_response(200, &obj(answer))
}

/// 200 with only `errors`.
fn errors_response(errors: Vec<Out>) -> Response {
    ordered_response(200, &obj(vec![("errors", Out::List(errors))]))
}

fn ordered_response(status: u16, body: &Out) -> Response {
    let mut text = String::new();
    body.write(&mut text);
    let mut response =
        Response::new(status).header("content-type", "application/json; charset=utf-8");
    response.body = Some(text.into_bytes());
    response
}

// ---------------------------------------------------------------------------
// Ordered JSON output
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Out {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Out>),
    Obj(Vec<(String, Out)>),
    Json(Value),
}

impl Out {
    fn write(&self, buf: &mut String) {
        match self {
            Out::Null => buf.push_str("null"),
            Out::Bool(b) => buf.push_str(if *b { "true" } else { "false" }),
            Out::Int(n) => buf.push_str(&n.to_string()),
            Out::Str(text) => buf.push_str(&Value::from(text.as_str()).to_string()),
            Out::Json(v) => buf.push_str(&v.to_string()),
            Out::List(items) => {
                buf.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        buf.push(',');
                    }
                    item.write(buf);
                }
                buf.push(']');
            }
            Out::Obj(pairs) => {
                buf.push('{');
                for (i, (key, value)) in pairs.iter().enumerate() {
                    if i > 0 {
                        buf.push(',');
                    }
                    buf.push_str(&Value::from(key.as_str()).to_string());
                    buf.push(':');
                    value.write(buf);
                }
                buf.push('}');
            }
        }
    }
}

fn s(text: impl Into<String>) -> Out {
    Out::Str(text.into())
}

fn obj(pairs: Vec<(&str, Out)>) -> Out {
    Out::Obj(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn locations(positions: &[Pos]) -> Out {
    Out::List(
        positions
            .iter()
            .map(|p| {
                obj(vec![
                    ("line", Out::Int(p.line as i64)),
                    ("column", Out::Int(p.col as i64)),
                ])
            })
            .collect(),
    )
}

fn strings(path: &[String]) -> Out {
    Out::List(path.iter().map(|p| s(p.as_str())).collect())
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    col: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Punct(&'static str),
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    /// A character or sequence no token starts with (the text).
    Bad(String),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: Pos,
}

const PUNCTS: [&str; 14] = [
    "...", "!", "$", "&", "(", ")", ":", "=", "@", "[", "]", "{", "|", "}",
];

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: usize,
    col: usize,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }

    /// Steps over one character, counting lines (`\r\n` is one line end).
    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.i += 1;
        match c {
            '\n' => {
                self.line += 1;
                self.col = 1;
            }
            '\r' => {
                if self.peek(0) != Some('\n') {
                    self.line += 1;
                    self.col = 1;
                }
            }
            _ => self.col += 1,
        }
        Some(c)
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn tokens(mut self) -> Vec<Token> {
        let mut out = Vec::new();
        loop {
            while let Some(c) = self.peek(0) {
                match c {
                    '\u{feff}' | ' ' | '\t' | ',' | '\n' | '\r' => {
                        self.bump();
                    }
                    '#' => {
                        while self.peek(0).is_some_and(|c| c != '\n' && c != '\r') {
                            self.bump();
                        }
                    }
                    _ => break,
                }
            }
            let pos = self.pos();
            let Some(c) = self.peek(0) else {
                out.push(Token { tok: Tok::Eof, pos });
                return out;
            };
            let tok = if c == '_' || c.is_ascii_alphabetic() {
                let mut name = String::new();
                while let Some(c) = self
                    .peek(0)
                    .filter(|c| *c == '_' || c.is_ascii_alphanumeric())
                {
                    name.push(c);
                    self.bump();
                }
                Tok::Name(name)
            } else if c == '-' || c.is_ascii_digit() {
                self.number()
            } else if c == '"' {
                if self.peek(1) == Some('"') && self.peek(2) == Some('"') {
                    self.block_string()
                } else {
                    self.string()
                }
            } else if let Some(p) = PUNCTS.iter().find(|p| {
                p.chars()
                    .enumerate()
                    .all(|(k, pc)| self.peek(k) == Some(pc))
            }) {
                for _ in 0..p.len() {
                    self.bump();
                }
                Tok::Punct(p)
            } else {
                self.bump();
                Tok::Bad(c.to_string())
            };
            let bad = matches!(tok, Tok::Bad(_));
            out.push(Token { tok, pos });
            if bad {
                // The parser stops at the first bad token anyway.
                out.push(Token {
                    tok: Tok::Eof,
                    pos: self.pos(),
                });
                return out;
            }
        }
    }

    fn number(&mut self) -> Tok {
        let mut text = String::new();
        let digits = |lx: &mut Lexer, text: &mut String| {
            let mut n = 0;
            while let Some(c) = lx.peek(0).filter(char::is_ascii_digit) {
                text.push(c);
                lx.bump();
                n += 1;
            }
            n
        };
        if self.peek(0) == Some('-') {
            text.push('-');
            self.bump();
        }
        let mut float = false;
        if digits(self, &mut text) == 0 {
            return Tok::Bad(text);
        }
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            float = true;
            text.push('.');
            self.bump();
            digits(self, &mut text);
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            float = true;
            text.push('e');
            self.bump();
            if let Some(sign) = self.peek(0).filter(|c| *c == '+' || *c == '-') {
                text.push(sign);
                self.bump();
            }
            if digits(self, &mut text) == 0 {
                return Tok::Bad(text);
            }
        }
        // A name right after a number is not a separate token.
        if self
            .peek(0)
            .is_some_and(|c| c == '_' || c == '.' || c.is_ascii_alphabetic())
        {
            return Tok::Bad(text);
        }
        match (float, text.parse::<i64>()) {
            (false, Ok(n)) => Tok::Int(n),
            _ => text.parse().map_or(Tok::Bad(text), Tok::Float),
        }
    }

    fn string(&mut self) -> Tok {
        self.bump();
        let mut value = String::new();
        loop {
            match self.bump() {
                None | Some('\n' | '\r') => return Tok::Bad(format!("\"{value}")),
                Some('"') => return Tok::Str(value),
                Some('\\') => {
                    let escaped = match self.bump() {
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('/') => '/',
                        Some('b') => '\u{8}',
                        Some('f') => '\u{c}',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('u') => {
                            let hex: String = (0..4).filter_map(|_| self.bump()).collect();
                            match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                                Some(c) => c,
                                None => return Tok::Bad(format!("\\u{hex}")),
                            }
                        }
                        other => return Tok::Bad(format!("\\{}", other.unwrap_or(' '))),
                    };
                    value.push(escaped);
                }
                Some(c) => value.push(c),
            }
        }
    }

    /// `"""…"""`: raw text (only `\"""` escaped), common indentation removed,
    /// blank first and last lines dropped (the spec's BlockStringValue).
    fn block_string(&mut self) -> Tok {
        for _ in 0..3 {
            self.bump();
        }
        let mut raw = String::new();
        loop {
            if self.peek(0) == Some('"') && self.peek(1) == Some('"') && self.peek(2) == Some('"') {
                for _ in 0..3 {
                    self.bump();
                }
                break;
            }
            if self.peek(0) == Some('\\')
                && self.peek(1) == Some('"')
                && self.peek(2) == Some('"')
                && self.peek(3) == Some('"')
            {
                for _ in 0..4 {
                    self.bump();
                }
                raw.push_str("\"\"\"");
                continue;
            }
            match self.bump() {
                Some(c) => raw.push(c),
                None => return Tok::Bad(format!("\"\"\"{raw}")),
            }
        }
        let raw = raw.replace("\r\n", "\n").replace('\r', "\n");
        let lines: Vec<&str> = raw.split('\n').collect();
        let indent = lines
            .iter()
            .skip(1)
            .filter(|l| l.chars().any(|c| c != ' ' && c != '\t'))
            .map(|l| l.chars().take_while(|c| *c == ' ' || *c == '\t').count())
            .min()
            .unwrap_or(0);
        let mut lines: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    l.to_string()
                } else {
                    l.chars().skip(indent).collect()
                }
            })
            .collect();
        let blank = |l: &String| l.chars().all(|c| c == ' ' || c == '\t');
        while lines.first().is_some_and(blank) {
            lines.remove(0);
        }
        while lines.last().is_some_and(blank) {
            lines.pop();
        }
        Tok::Str(lines.join("\n"))
    }
}

/// graphql-ruby's token names, which GitHub's parse errors show.
fn token_name(tok: &Tok) -> String {
    match tok {
        Tok::Punct(p) => match *p {
            "{" => "LCURLY",
            "}" => "RCURLY",
            "(" => "LPAREN",
            ")" => "RPAREN",
            "[" => "LBRACKET",
            "]" => "RBRACKET",
            ":" => "COLON",
            "$" => "VAR_SIGN",
            "!" => "BANG",
            "..." => "ELLIPSIS",
            "=" => "EQUALS",
            "@" => "DIR_SIGN",
            "|" => "PIPE",
            _ => "AMP",
        }
        .to_string(),
        Tok::Name(n) => match n.as_str() {
            "query" | "mutation" | "subscription" | "fragment" | "on" | "true" | "false"
            | "null" | "schema" | "type" | "input" | "enum" | "union" | "scalar" | "interface"
            | "extend" | "directive" | "implements" => n.to_ascii_uppercase(),
            _ => "IDENTIFIER".to_string(),
        },
        Tok::Int(_) => "INT".to_string(),
        Tok::Float(_) => "FLOAT".to_string(),
        Tok::Str(_) => "STRING".to_string(),
        Tok::Bad(_) => "UNKNOWN_CHAR".to_string(),
        Tok::Eof => "EOF".to_string(),
    }
}

fn token_text(tok: &Tok) -> String {
    match tok {
        Tok::Punct(p) => p.to_string(),
        Tok::Name(n) | Tok::Str(n) | Tok::Bad(n) => n.clone(),
        Tok::Int(n) => n.to_string(),
        Tok::Float(f) => f.to_string(),
        Tok::Eof => String::new(),
    }
}

// ---------------------------------------------------------------------------
// Syntax tree and parser
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Document {
    ops: Vec<Operation>,
    frags: Vec<Fragment>,
}

impl Document {
    fn fragment(&self, name: &str) -> Option<&Fragment> {
        self.frags.iter().find(|f| f.name == name)
    }
}

#[derive(Debug)]
struct Operation {
    kind: String,
    name: Option<String>,
    vars: Vec<VarDef>,
    sel: Vec<Selection>,
    pos: Pos,
}

impl Operation {
    /// The first element of a validation error's path: `query` or `query Name`.
    fn path_key(&self) -> String {
        match &self.name {
            Some(n) => format!("{} {n}", self.kind),
            None => self.kind.clone(),
        }
    }

    /// How graphql-ruby names it in variable errors.
    fn describe(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("anonymous {}", self.kind),
        }
    }
}

#[derive(Debug)]
struct VarDef {
    name: String,
    ty: TypeRef,
    default: Option<Literal>,
    pos: Pos,
}

#[derive(Debug)]
struct Fragment {
    name: String,
    on: String,
    directives: Vec<Directive>,
    sel: Vec<Selection>,
    pos: Pos,
}

#[derive(Debug)]
enum Selection {
    Field(Field),
    Spread {
        name: String,
        directives: Vec<Directive>,
        pos: Pos,
    },
    Inline {
        on: Option<String>,
        directives: Vec<Directive>,
        sel: Vec<Selection>,
        pos: Pos,
    },
}

#[derive(Debug)]
struct Field {
    alias: Option<String>,
    name: String,
    args: Vec<Arg>,
    directives: Vec<Directive>,
    /// Empty: no selection set (`{}` is a syntax error).
    sel: Vec<Selection>,
    pos: Pos,
}

impl Field {
    /// The response key: the alias, else the name.
    fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug)]
struct Arg {
    name: String,
    value: Literal,
    pos: Pos,
}

#[derive(Debug)]
struct Directive {
    name: String,
    args: Vec<Arg>,
    pos: Pos,
}

/// A value as written in the query.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Var(String),
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
    Enum(String),
    List(Vec<Literal>),
    Object(Vec<(String, Literal)>),
}

impl fmt::Display for Literal {
    /// As graphql-ruby prints it in messages (`to_query_string`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Var(n) => write!(f, "${n}"),
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Float(x) => write!(f, "{x}"),
            Literal::Str(text) => write!(f, "{}", Value::from(text.as_str())),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => write!(f, "null"),
            Literal::Enum(e) => write!(f, "{e}"),
            Literal::List(items) => {
                let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", parts.join(", "))
            }
            Literal::Object(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                write!(f, "{{{}}}", parts.join(", "))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TypeRef {
    Named(String),
    List(Box<TypeRef>),
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    /// A schema type string: `String!`, `[Label]`, `[PullRequestReviewState!]`.
    fn parse(text: &str) -> TypeRef {
        if let Some(inner) = text.strip_suffix('!') {
            return TypeRef::NonNull(Box::new(TypeRef::parse(inner)));
        }
        if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return TypeRef::List(Box::new(TypeRef::parse(inner)));
        }
        TypeRef::Named(text.to_string())
    }

    fn named(&self) -> &str {
        match self {
            TypeRef::Named(n) => n,
            TypeRef::List(inner) | TypeRef::NonNull(inner) => inner.named(),
        }
    }

    fn nullable(&self) -> &TypeRef {
        match self {
            TypeRef::NonNull(inner) => inner,
            other => other,
        }
    }
}

impl fmt::Display for TypeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeRef::Named(n) => write!(f, "{n}"),
            TypeRef::List(inner) => write!(f, "[{inner}]"),
            TypeRef::NonNull(inner) => write!(f, "{inner}!"),
        }
    }
}

/// A syntax error, as GitHub sends it.
fn parse_error(token: &Token) -> Out {
    if token.tok == Tok::Eof {
        return obj(vec![
            ("message", s("Unexpected end of document")),
            ("locations", Out::List(Vec::new())),
        ]);
    }
    let message = format!(
        "Parse error on {} ({}) at [{}, {}]",
        Value::from(token_text(&token.tok)),
        token_name(&token.tok),
        token.pos.line,
        token.pos.col
    );
    obj(vec![
        ("message", s(message)),
        ("locations", locations(&[token.pos])),
    ])
}

type Parsed<T> = Result<T, Out>;

struct Parser {
    toks: Vec<Token>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.toks[(self.i + ahead).min(self.toks.len() - 1)].tok
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn unexpected<T>(&self) -> Parsed<T> {
        Err(parse_error(self.peek()))
    }

    fn is(&self, punct: &'static str) -> bool {
        self.peek().tok == Tok::Punct(punct)
    }

    fn expect(&mut self, punct: &'static str) -> Parsed<Pos> {
        if self.is(punct) {
            Ok(self.next().pos)
        } else {
            self.unexpected()
        }
    }

    fn is_name(&self, word: &str) -> bool {
        matches!(&self.peek().tok, Tok::Name(n) if n == word)
    }

    fn name(&mut self) -> Parsed<(String, Pos)> {
        match &self.peek().tok {
            Tok::Name(n) => {
                let n = n.clone();
                Ok((n, self.next().pos))
            }
            _ => self.unexpected(),
        }
    }

    fn document(&mut self) -> Parsed<Document> {
        let mut doc = Document {
            ops: Vec::new(),
            frags: Vec::new(),
        };
        loop {
            let token = self.peek().clone();
            match &token.tok {
                Tok::Eof if !doc.ops.is_empty() || !doc.frags.is_empty() => return Ok(doc),
                Tok::Punct("{") => doc.ops.push(Operation {
                    kind: "query".to_string(),
                    name: None,
                    vars: Vec::new(),
                    sel: self.selection_set()?,
                    pos: token.pos,
                }),
                Tok::Name(n) if matches!(n.as_str(), "query" | "mutation" | "subscription") => {
                    doc.ops.push(self.operation()?)
                }
                Tok::Name(n) if n == "fragment" => doc.frags.push(self.fragment()?),
                _ => return self.unexpected(),
            }
        }
    }

    fn operation(&mut self) -> Parsed<Operation> {
        let (kind, pos) = self.name()?;
        let name = match &self.peek().tok {
            Tok::Name(_) => Some(self.name()?.0),
            _ => None,
        };
        let mut vars = Vec::new();
        if self.is("(") {
            self.next();
            loop {
                let pos = self.expect("$")?;
                let (name, _) = self.name()?;
                self.expect(":")?;
                let ty = self.type_ref()?;
                let default = if self.is("=") {
                    self.next();
                    Some(self.value(true)?)
                } else {
                    None
                };
                self.directives()?;
                vars.push(VarDef {
                    name,
                    ty,
                    default,
                    pos,
                });
                if self.is(")") {
                    self.next();
                    break;
                }
            }
        }
        self.directives()?;
        Ok(Operation {
            kind,
            name,
            vars,
            sel: self.selection_set()?,
            pos,
        })
    }

    fn fragment(&mut self) -> Parsed<Fragment> {
        let (_, pos) = self.name()?;
        if self.is_name("on") {
            return self.unexpected();
        }
        let (name, _) = self.name()?;
        if !self.is_name("on") {
            return self.unexpected();
        }
        self.next();
        let (on, _) = self.name()?;
        let directives = self.directives()?;
        Ok(Fragment {
            name,
            on,
            directives,
            sel: self.selection_set()?,
            pos,
        })
    }

    fn type_ref(&mut self) -> Parsed<TypeRef> {
        let base = if self.is("[") {
            self.next();
            let inner = self.type_ref()?;
            self.expect("]")?;
            TypeRef::List(Box::new(inner))
        } else {
            TypeRef::Named(self.name()?.0)
        };
        if self.is("!") {
            self.next();
            return Ok(TypeRef::NonNull(Box::new(base)));
        }
        Ok(base)
    }

    fn selection_set(&mut self) -> Parsed<Vec<Selection>> {
        self.expect("{")?;
        let mut out = Vec::new();
        loop {
            out.push(self.selection()?);
            if self.is("}") {
                self.next();
                return Ok(out);
            }
        }
    }

    fn selection(&mut self) -> Parsed<Selection> {
        if self.is("...") {
            let pos = self.next().pos;
            return match self.peek_at(0) {
                Tok::Name(n) if n == "on" => {
                    self.next();
                    let (on, _) = self.name()?;
                    let directives = self.directives()?;
                    Ok(Selection::Inline {
                        on: Some(on),
                        directives,
                        sel: self.selection_set()?,
                        pos,
                    })
                }
                Tok::Name(_) => {
                    let (name, _) = self.name()?;
                    Ok(Selection::Spread {
                        name,
                        directives: self.directives()?,
                        pos,
                    })
                }
                Tok::Punct("{" | "@") => {
                    let directives = self.directives()?;
                    Ok(Selection::Inline {
                        on: None,
                        directives,
                        sel: self.selection_set()?,
                        pos,
                    })
                }
                _ => self.unexpected(),
            };
        }
        let (first, pos) = self.name()?;
        let (alias, name) = if self.is(":") {
            self.next();
            (Some(first), self.name()?.0)
        } else {
            (None, first)
        };
        let args = self.arguments(false)?;
        let directives = self.directives()?;
        let sel = if self.is("{") {
            self.selection_set()?
        } else {
            Vec::new()
        };
        Ok(Selection::Field(Field {
            alias,
            name,
            args,
            directives,
            sel,
            pos,
        }))
    }

    fn arguments(&mut self, constant: bool) -> Parsed<Vec<Arg>> {
        let mut args = Vec::new();
        if !self.is("(") {
            return Ok(args);
        }
        self.next();
        loop {
            let (name, pos) = self.name()?;
            self.expect(":")?;
            let value = self.value(constant)?;
            args.push(Arg { name, value, pos });
            if self.is(")") {
                self.next();
                return Ok(args);
            }
        }
    }

    fn directives(&mut self) -> Parsed<Vec<Directive>> {
        let mut out = Vec::new();
        while self.is("@") {
            let pos = self.next().pos;
            let (name, _) = self.name()?;
            let args = self.arguments(false)?;
            out.push(Directive { name, args, pos });
        }
        Ok(out)
    }

    fn value(&mut self, constant: bool) -> Parsed<Literal> {
        let token = self.peek().clone();
        let value = match token.tok {
            Tok::Punct("$") if !constant => {
                self.next();
                Literal::Var(self.name()?.0)
            }
            Tok::Int(n) => {
                self.next();
                Literal::Int(n)
            }
            Tok::Float(x) => {
                self.next();
                Literal::Float(x)
            }
            Tok::Str(text) => {
                self.next();
                Literal::Str(text)
            }
            Tok::Name(n) => {
                self.next();
                match n.as_str() {
                    "true" => Literal::Bool(true),
                    "false" => Literal::Bool(false),
                    "null" => Literal::Null,
                    _ => Literal::Enum(n),
                }
            }
            Tok::Punct("[") => {
                self.next();
                let mut items = Vec::new();
                while !self.is("]") {
                    items.push(self.value(constant)?);
                }
                self.next();
                Literal::List(items)
            }
            Tok::Punct("{") => {
                self.next();
                let mut fields = Vec::new();
                while !self.is("}") {
                    let (name, _) = self.name()?;
                    self.expect(":")?;
                    fields.push((name, self.value(constant)?));
                }
                self.next();
                Literal::Object(fields)
            }
            _ => return self.unexpected(),
        };
        Ok(value)
    }
}

fn parse(text: &str) -> Parsed<Document> {
    let lexer = Lexer {
        chars: text.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
    };
    Parser {
        toks: lexer.tokens(),
        i: 0,
    }
    .document()
}

// ---------------------------------------------------------------------------
// Schema: the part of GitHub's that the fake serves
// ---------------------------------------------------------------------------

struct FieldDef {
    name: &'static str,
    ty: &'static str,
    args: &'static [ArgDef],
}

struct ArgDef {
    name: &'static str,
    ty: &'static str,
}

#[derive(Clone, Copy)]
enum Def {
    Object(&'static [FieldDef]),
    /// Fields, possible types.
    Interface(&'static [FieldDef], &'static [&'static str]),
    Union(&'static [&'static str]),
    Scalar,
    Enum(&'static [&'static str]),
}

const fn field(name: &'static str, ty: &'static str) -> FieldDef {
    FieldDef {
        name,
        ty,
        args: &[],
    }
}

const fn with_args(name: &'static str, ty: &'static str, args: &'static [ArgDef]) -> FieldDef {
    FieldDef { name, ty, args }
}

const fn arg(name: &'static str, ty: &'static str) -> ArgDef {
    ArgDef { name, ty }
}

const NUMBER: &[ArgDef] = &[arg("number", "Int!")];
const PAGE: &[ArgDef] = &[arg("first", "Int"), arg("after", "String")];
const REVIEW_PAGE: &[ArgDef] = &[
    arg("first", "Int"),
    arg("after", "String"),
    arg("states", "[PullRequestReviewState!]"),
];

static QUERY: &[FieldDef] = &[
    field("rateLimit", "RateLimit"),
    with_args(
        "repository",
        "Repository",
        &[
            arg("owner", "String!"),
            arg("name", "String!"),
            arg("followRenames", "Boolean"),
        ],
    ),
];

static RATE_LIMIT: &[FieldDef] = &[
    field("cost", "Int!"),
    field("limit", "Int!"),
    field("nodeCount", "Int!"),
    field("remaining", "Int!"),
    field("resetAt", "DateTime!"),
    field("used", "Int!"),
];

static REPOSITORY: &[FieldDef] = &[
    field("id", "ID!"),
    field("databaseId", "Int"),
    field("name", "String!"),
    field("nameWithOwner", "String!"),
    field("owner", "RepositoryOwner!"),
    field("url", "URI!"),
    with_args("issueOrPullRequest", "IssueOrPullRequest", NUMBER),
    with_args("issue", "Issue", NUMBER),
    with_args("pullRequest", "PullRequest", NUMBER),
];

static LOGIN: &[FieldDef] = &[field("login", "String!")];

static ISSUE: &[FieldDef] = &[
    field("id", "ID!"),
    field("databaseId", "Int"),
    field("number", "Int!"),
    field("title", "String!"),
    field("body", "String!"),
    field("url", "URI!"),
    field("createdAt", "DateTime!"),
    field("updatedAt", "DateTime!"),
    field("closedAt", "DateTime"),
    field("closed", "Boolean!"),
    field("state", "IssueState!"),
    field("stateReason", "IssueStateReason"),
    field("author", "Actor"),
    with_args("labels", "LabelConnection", PAGE),
    with_args("comments", "IssueCommentConnection!", PAGE),
    field("repository", "Repository!"),
];

static PULL_REQUEST: &[FieldDef] = &[
    field("id", "ID!"),
    field("databaseId", "Int"),
    field("number", "Int!"),
    field("title", "String!"),
    field("body", "String!"),
    field("url", "URI!"),
    field("createdAt", "DateTime!"),
    field("updatedAt", "DateTime!"),
    field("closedAt", "DateTime"),
    field("closed", "Boolean!"),
    field("state", "PullRequestState!"),
    field("merged", "Boolean!"),
    field("mergedAt", "DateTime"),
    field("isDraft", "Boolean!"),
    field("author", "Actor"),
    with_args("labels", "LabelConnection", PAGE),
    with_args("comments", "IssueCommentConnection!", PAGE),
    with_args("reviews", "PullRequestReviewConnection", REVIEW_PAGE),
    with_args("closingIssuesReferences", "IssueConnection", PAGE),
    field("repository", "Repository!"),
];

static LABEL: &[FieldDef] = &[field("name", "String!")];

static ISSUE_COMMENT: &[FieldDef] = &[
    field("id", "ID!"),
    field("author", "Actor"),
    field("body", "String!"),
    field("createdAt", "DateTime!"),
];

static REVIEW: &[FieldDef] = &[
    field("id", "ID!"),
    field("author", "Actor"),
    field("state", "PullRequestReviewState!"),
];

static PAGE_INFO: &[FieldDef] = &[
    field("hasNextPage", "Boolean!"),
    field("hasPreviousPage", "Boolean!"),
    field("startCursor", "String"),
    field("endCursor", "String"),
];

macro_rules! connection {
    ($conn:ident, $edge:ident, $nodes:literal, $edges:literal, $node:literal) => {
        static $conn: &[FieldDef] = &[
            field("totalCount", "Int!"),
            field("nodes", $nodes),
            field("edges", $edges),
            field("pageInfo", "PageInfo!"),
        ];
        static $edge: &[FieldDef] = &[field("cursor", "String!"), field("node", $node)];
    };
}

connection!(
    LABEL_CONNECTION,
    LABEL_EDGE,
    "[Label]",
    "[LabelEdge]",
    "Label"
);
connection!(
    COMMENT_CONNECTION,
    COMMENT_EDGE,
    "[IssueComment]",
    "[IssueCommentEdge]",
    "IssueComment"
);
connection!(
    REVIEW_CONNECTION,
    REVIEW_EDGE,
    "[PullRequestReview]",
    "[PullRequestReviewEdge]",
    "PullRequestReview"
);
connection!(
    ISSUE_CONNECTION,
    ISSUE_EDGE,
    "[Issue]",
    "[IssueEdge]",
    "Issue"
);

/// Every type name, so that others can be `&'static str`.
static TYPE_NAMES: &[&str] = &[
    "Query",
    "RateLimit",
    "Repository",
    "RepositoryOwner",
    "Organization",
    "User",
    "Bot",
    "Actor",
    "IssueOrPullRequest",
    "Issue",
    "PullRequest",
    "Label",
    "IssueComment",
    "PullRequestReview",
    "PageInfo",
    "LabelConnection",
    "LabelEdge",
    "IssueCommentConnection",
    "IssueCommentEdge",
    "PullRequestReviewConnection",
    "PullRequestReviewEdge",
    "IssueConnection",
    "IssueEdge",
    "Int",
    "Float",
    "String",
    "Boolean",
    "ID",
    "DateTime",
    "URI",
    "IssueState",
    "IssueStateReason",
    "PullRequestState",
    "PullRequestReviewState",
];

fn type_def(name: &str) -> Option<Def> {
    Some(match name {
        "Query" => Def::Object(QUERY),
        "RateLimit" => Def::Object(RATE_LIMIT),
        "Repository" => Def::Object(REPOSITORY),
        "RepositoryOwner" => Def::Interface(LOGIN, &["Organization", "User"]),
        "Organization" | "User" | "Bot" => Def::Object(LOGIN),
        "Actor" => Def::Interface(LOGIN, &["User", "Bot"]),
        "IssueOrPullRequest" => Def::Union(&["Issue", "PullRequest"]),
        "Issue" => Def::Object(ISSUE),
        "PullRequest" => Def::Object(PULL_REQUEST),
        "Label" => Def::Object(LABEL),
        "IssueComment" => Def::Object(ISSUE_COMMENT),
        "PullRequestReview" => Def::Object(REVIEW),
        "PageInfo" => Def::Object(PAGE_INFO),
        "LabelConnection" => Def::Object(LABEL_CONNECTION),
        "LabelEdge" => Def::Object(LABEL_EDGE),
        "IssueCommentConnection" => Def::Object(COMMENT_CONNECTION),
        "IssueCommentEdge" => Def::Object(COMMENT_EDGE),
        "PullRequestReviewConnection" => Def::Object(REVIEW_CONNECTION),
        "PullRequestReviewEdge" => Def::Object(REVIEW_EDGE),
        "IssueConnection" => Def::Object(ISSUE_CONNECTION),
        "IssueEdge" => Def::Object(ISSUE_EDGE),
        "Int" | "Float" | "String" | "Boolean" | "ID" | "DateTime" | "URI" => Def::Scalar,
        "IssueState" => Def::Enum(&["OPEN", "CLOSED"]),
        "IssueStateReason" => Def::Enum(&["COMPLETED", "NOT_PLANNED", "REOPENED", "DUPLICATE"]),
        "PullRequestState" => Def::Enum(&["OPEN", "CLOSED", "MERGED"]),
        "PullRequestReviewState" => Def::Enum(&[
            "PENDING",
            "COMMENTED",
            "APPROVED",
            "CHANGES_REQUESTED",
            "DISMISSED",
        ]),
        _ => return None,
    })
}

fn field_def(ty: &str, name: &str) -> Option<&'static FieldDef> {
    match type_def(ty)? {
        Def::Object(fields) | Def::Interface(fields, _) => fields.iter().find(|f| f.name == name),
        _ => None,
    }
}

/// The object types a value of type `ty` can be.
fn possible(ty: &str) -> Vec<&'static str> {
    match type_def(ty) {
        Some(Def::Object(_)) => TYPE_NAMES.iter().copied().filter(|n| *n == ty).collect(),
        Some(Def::Interface(_, types) | Def::Union(types)) => types.to_vec(),
        _ => Vec::new(),
    }
}

fn is_composite(ty: &str) -> bool {
    matches!(
        type_def(ty),
        Some(Def::Object(_) | Def::Interface(..) | Def::Union(_))
    )
}

fn is_leaf(ty: &str) -> bool {
    matches!(type_def(ty), Some(Def::Scalar | Def::Enum(_)))
}

fn is_connection(ty: &str) -> bool {
    ty.ends_with("Connection")
}

/// Whether a fragment on `cond` can apply to a value of type `parent`.
fn can_spread(cond: &str, parent: &str) -> bool {
    let inside = possible(parent);
    possible(cond).iter().any(|t| inside.contains(t))
}

/// Whether a fragment on `cond` applies to an object of type `concrete`.
fn applies(cond: Option<&str>, concrete: &str) -> bool {
    cond.is_none_or(|c| possible(c).contains(&concrete))
}

/// Whether a literal fits an input type (variables are checked apart).
fn literal_fits(value: &Literal, ty: &TypeRef) -> bool {
    match (value, ty) {
        (Literal::Var(_), _) => true,
        (Literal::Null, TypeRef::NonNull(_)) => false,
        (Literal::Null, _) => true,
        (v, TypeRef::NonNull(inner)) => literal_fits(v, inner),
        (Literal::List(items), TypeRef::List(inner)) => {
            items.iter().all(|i| literal_fits(i, inner))
        }
        (v, TypeRef::List(inner)) => literal_fits(v, inner),
        (v, TypeRef::Named(name)) => match (v, name.as_str()) {
            (Literal::Int(n), "Int") => i32::try_from(*n).is_ok(),
            (Literal::Int(_) | Literal::Float(_), "Float") => true,
            (Literal::Str(_), "String" | "DateTime" | "URI") => true,
            (Literal::Str(_) | Literal::Int(_), "ID") => true,
            (Literal::Bool(_), "Boolean") => true,
            (Literal::Enum(e), _) => {
                matches!(type_def(name), Some(Def::Enum(values)) if values.contains(&e.as_str()))
            }
            _ => false,
        },
    }
}

// ---------------------------------------------------------------------------
// Validation (graphql-ruby's static rules, as GitHub reports them)
// ---------------------------------------------------------------------------

/// A validation error: path, extensions (code first), locations, message.
fn static_error(path: &[String], at: &[Pos], message: String, ext: Vec<(&str, Out)>) -> Out {
    obj(vec![
        ("path", strings(path)),
        ("extensions", obj(ext)),
        ("locations", locations(at)),
        ("message", s(message)),
    ])
}

struct Validator<'d> {
    doc: &'d Document,
    errors: Vec<Out>,
    seen: HashSet<String>,
}

/// A variable where it is used: its name, the type the position wants
/// (`None`: not known), the argument's name, where.
struct Usage {
    name: String,
    expected: Option<TypeRef>,
    argument: String,
    pos: Pos,
}

impl<'d> Validator<'d> {
    fn push(&mut self, error: Out) {
        let mut key = String::new();
        error.write(&mut key);
        if self.seen.insert(key) {
            self.errors.push(error);
        }
    }

    fn run(mut self) -> Vec<Out> {
        let doc = self.doc;
        if doc.ops.len() > 1 {
            for op in &doc.ops {
                if op.name.is_none() {
                    self.push(static_error(
                        &[op.path_key()],
                        &[op.pos],
                        "Operation name is required when multiple operations are present"
                            .to_string(),
                        vec![("code", s("uniquelyNamedOperations"))],
                    ));
                }
            }
        }
        let mut names = HashSet::new();
        for op in &doc.ops {
            if let Some(name) = &op.name
                && !names.insert(name.as_str())
            {
                self.push(static_error(
                    &[op.path_key()],
                    &[op.pos],
                    format!("Operation name \"{name}\" must be unique"),
                    vec![
                        ("code", s("uniquelyNamedOperations")),
                        ("operationName", s(name.as_str())),
                    ],
                ));
            }
        }
        for op in &doc.ops {
            self.operation(op);
        }
        let mut frag_names = HashSet::new();
        for frag in &doc.frags {
            let path = vec![format!("fragment {}", frag.name)];
            if !frag_names.insert(frag.name.as_str()) {
                self.push(static_error(
                    &path,
                    &[frag.pos],
                    format!("Fragment name \"{}\" must be unique", frag.name),
                    vec![
                        ("code", s("fragmentNamesAreUnique")),
                        ("fragmentName", s(frag.name.as_str())),
                    ],
                ));
            }
            self.directives(&frag.directives, &path);
            if self.fragment_type(Some(&frag.on), None, frag.pos, &path) {
                let mut path = path.clone();
                self.selection_set(&frag.sel, &frag.on, &mut path);
            }
        }
        self.fragment_use();
        self.errors
    }

    fn operation(&mut self, op: &'d Operation) {
        let path = vec![op.path_key()];
        if op.kind != "query" {
            self.push(static_error(
                &path,
                &[op.pos],
                format!("Schema is not configured for {}s", op.kind),
                vec![("code", s("missingQueryConfiguration"))],
            ));
            return;
        }
        let mut var_names = HashSet::new();
        for var in &op.vars {
            if !var_names.insert(var.name.as_str()) {
                self.push(static_error(
                    &path,
                    &[var.pos],
                    format!("There can only be one variable named \"{}\"", var.name),
                    vec![
                        ("code", s("variableNotUnique")),
                        ("variableName", s(var.name.as_str())),
                    ],
                ));
            }
            let named = var.ty.named();
            match type_def(named) {
                None => self.push(static_error(
                    &path,
                    &[var.pos],
                    format!("{named} isn't a defined input type (on ${})", var.name),
                    vec![
                        ("code", s("variableRequiresValidType")),
                        ("typeName", s(named)),
                        ("variableName", s(var.name.as_str())),
                    ],
                )),
                Some(Def::Scalar | Def::Enum(_)) => {}
                Some(_) => self.push(static_error(
                    &path,
                    &[var.pos],
                    format!("{named} isn't a valid input type (on ${})", var.name),
                    vec![
                        ("code", s("variableRequiresValidType")),
                        ("typeName", s(named)),
                        ("variableName", s(var.name.as_str())),
                    ],
                )),
            }
        }
        let mut p = path.clone();
        self.selection_set(&op.sel, "Query", &mut p);
        // Variables, following spreads.
        let mut usages = Vec::new();
        let mut visited = HashSet::new();
        self.usages(&op.sel, "Query", &mut visited, &mut usages);
        let mut used = HashSet::new();
        for u in &usages {
            used.insert(u.name.as_str());
            let Some(def) = op.vars.iter().find(|v| v.name == u.name) else {
                self.push(static_error(
                    &path,
                    &[u.pos],
                    format!(
                        "Variable ${} is used by {} but not declared",
                        u.name,
                        op.describe()
                    ),
                    vec![
                        ("code", s("variableNotDefined")),
                        ("variableName", s(u.name.as_str())),
                    ],
                ));
                continue;
            };
            if let Some(expected) = &u.expected
                && !var_fits(&def.ty, def.default.is_some(), expected)
            {
                let kind = if def.ty.nullable() == expected.nullable() {
                    "Nullability"
                } else {
                    "Type"
                };
                self.push(static_error(
                    &path,
                    &[u.pos],
                    format!(
                        "{kind} mismatch on variable ${} and argument {} ({} / {})",
                        u.name, u.argument, def.ty, expected
                    ),
                    vec![
                        ("code", s("variableMismatch")),
                        ("variableName", s(u.name.as_str())),
                        ("typeName", s(def.ty.to_string())),
                        ("argumentName", s(u.argument.as_str())),
                        ("errorMessage", s(format!("{kind} mismatch"))),
                    ],
                ));
            }
        }
        for var in &op.vars {
            if !used.contains(var.name.as_str()) {
                self.push(static_error(
                    &path,
                    &[var.pos],
                    format!(
                        "Variable ${} is declared by {} but not used",
                        var.name,
                        op.describe()
                    ),
                    vec![
                        ("code", s("variableNotUsed")),
                        ("variableName", s(var.name.as_str())),
                    ],
                ));
            }
        }
    }

    /// Checks a fragment's type condition; true when its selections can be
    /// checked against it.
    fn fragment_type(
        &mut self,
        on: Option<&str>,
        inside: Option<(&str, Option<&str>)>,
        pos: Pos,
        path: &[String],
    ) -> bool {
        let Some(on) = on else {
            return true;
        };
        if type_def(on).is_none() {
            self.push(static_error(
                path,
                &[pos],
                format!("No such type {on}, so it can't be a fragment condition"),
                vec![("code", s("undefinedType")), ("typeName", s(on))],
            ));
            return false;
        }
        if !is_composite(on) {
            self.push(static_error(
                path,
                &[pos],
                format!("Invalid fragment on type {on} (must be Union, Interface or Object)"),
                vec![
                    ("code", s("fragmentOnNonCompositeType")),
                    ("typeName", s(on)),
                ],
            ));
            return false;
        }
        if let Some((parent, name)) = inside
            && !can_spread(on, parent)
        {
            let what = match name {
                Some(n) => format!("Fragment {n} on {on}"),
                None => format!("Fragment on {on}"),
            };
            let mut ext = vec![("code", s("cannotSpreadFragment")), ("typeName", s(on))];
            if let Some(n) = name {
                ext.push(("fragmentName", s(n)));
            }
            ext.push(("parentName", s(parent)));
            self.push(static_error(
                path,
                &[pos],
                format!("{what} can't be spread inside {parent}"),
                ext,
            ));
            return false;
        }
        true
    }

    fn directives(&mut self, directives: &[Directive], path: &[String]) {
        for d in directives {
            if d.name != "include" && d.name != "skip" {
                self.push(static_error(
                    path,
                    &[d.pos],
                    format!("Directive @{} is not defined", d.name),
                    vec![
                        ("code", s("undefinedDirective")),
                        ("directiveName", s(d.name.as_str())),
                    ],
                ));
                continue;
            }
            let defs = [ArgDef {
                name: "if",
                ty: "Boolean!",
            }];
            self.arguments(&d.args, &defs, "Directive", &d.name, d.pos, path);
        }
    }

    /// Argument rules for a field or directive (`kind`: "Field"/"Directive").
    fn arguments(
        &mut self,
        args: &[Arg],
        defs: &[ArgDef],
        kind: &str,
        owner: &str,
        pos: Pos,
        path: &[String],
    ) {
        let mut seen = HashSet::new();
        for a in args {
            let mut p = path.to_vec();
            p.push(a.name.clone());
            if !seen.insert(a.name.as_str()) {
                self.push(static_error(
                    &p,
                    &[a.pos],
                    format!("There can be only one argument named \"{}\"", a.name),
                    vec![
                        ("code", s("argumentNotUnique")),
                        ("name", s(a.name.as_str())),
                    ],
                ));
                continue;
            }
            match defs.iter().find(|d| d.name == a.name) {
                None => self.push(static_error(
                    &p,
                    &[a.pos],
                    format!("{kind} '{owner}' doesn't accept argument '{}'", a.name),
                    vec![
                        ("code", s("argumentNotAccepted")),
                        ("name", s(owner)),
                        ("typeName", s(kind)),
                        ("argumentName", s(a.name.as_str())),
                    ],
                )),
                Some(def) => {
                    let ty = TypeRef::parse(def.ty);
                    if !literal_fits(&a.value, &ty) {
                        self.push(static_error(
                            &p,
                            &[a.pos],
                            format!(
                                "Argument '{}' on {kind} '{owner}' has an invalid value ({}). Expected type '{ty}'.",
                                a.name, a.value
                            ),
                            vec![
                                ("code", s("argumentLiteralsIncompatible")),
                                ("typeName", s(kind)),
                                ("argumentName", s(a.name.as_str())),
                            ],
                        ));
                    }
                }
            }
        }
        let missing: Vec<&str> = defs
            .iter()
            .filter(|d| d.ty.ends_with('!') && !args.iter().any(|a| a.name == d.name))
            .map(|d| d.name)
            .collect();
        if !missing.is_empty() {
            let list = missing.join(", ");
            self.push(static_error(
                path,
                &[pos],
                format!("{kind} '{owner}' is missing required arguments: {list}"),
                vec![
                    ("code", s("missingRequiredArguments")),
                    ("className", s(kind)),
                    ("name", s(owner)),
                    ("arguments", s(list)),
                ],
            ));
        }
    }

    fn selection_set(&mut self, sel: &'d [Selection], parent: &str, path: &mut Vec<String>) {
        for selection in sel {
            match selection {
                Selection::Field(f) => {
                    path.push(f.key().to_string());
                    self.field(f, parent, path);
                    path.pop();
                }
                Selection::Spread {
                    name,
                    directives,
                    pos,
                } => {
                    path.push(format!("... {name}"));
                    self.directives(directives, path);
                    match self.doc.fragment(name) {
                        None => self.push(static_error(
                            path,
                            &[*pos],
                            format!("Fragment {name} was used, but not defined"),
                            vec![
                                ("code", s("useAndDefineFragment")),
                                ("fragmentName", s(name.as_str())),
                            ],
                        )),
                        Some(frag) => {
                            if type_def(&frag.on).is_some_and(|_| is_composite(&frag.on)) {
                                let p = path.clone();
                                self.fragment_type(
                                    Some(&frag.on),
                                    Some((parent, Some(name))),
                                    *pos,
                                    &p,
                                );
                            }
                        }
                    }
                    path.pop();
                }
                Selection::Inline {
                    on,
                    directives,
                    sel,
                    pos,
                } => {
                    path.push(match on {
                        Some(t) => format!("... on {t}"),
                        None => "...".to_string(),
                    });
                    self.directives(directives, path);
                    let p = path.clone();
                    if self.fragment_type(on.as_deref(), Some((parent, None)), *pos, &p) {
                        let ty = on.as_deref().unwrap_or(parent);
                        self.selection_set(sel, ty, path);
                    }
                    path.pop();
                }
            }
        }
        self.merges(sel, parent, path);
    }

    fn field(&mut self, f: &'d Field, parent: &str, path: &mut Vec<String>) {
        self.directives(&f.directives, path);
        let (ty, args): (TypeRef, &[ArgDef]) = if f.name == "__typename" {
            (TypeRef::parse("String!"), &[])
        } else {
            match field_def(parent, &f.name) {
                Some(def) => (TypeRef::parse(def.ty), def.args),
                None => {
                    self.push(static_error(
                        path,
                        &[f.pos],
                        format!("Field '{}' doesn't exist on type '{parent}'", f.name),
                        vec![
                            ("code", s("undefinedField")),
                            ("typeName", s(parent)),
                            ("fieldName", s(f.name.as_str())),
                        ],
                    ));
                    return;
                }
            }
        };
        self.arguments(&f.args, args, "Field", &f.name, f.pos, path);
        let named = ty.named();
        if is_leaf(named) {
            if !f.sel.is_empty() {
                let what = if matches!(type_def(named), Some(Def::Enum(_))) {
                    "enums"
                } else {
                    "scalars"
                };
                let keys: Vec<String> = f
                    .sel
                    .iter()
                    .map(|s| match s {
                        Selection::Field(f) => f.name.clone(),
                        Selection::Spread { name, .. } => format!("...{name}"),
                        Selection::Inline { .. } => "...".to_string(),
                    })
                    .collect();
                self.push(static_error(
                    path,
                    &[f.pos],
                    format!(
                        "Selections can't be made on {what} (field '{}' returns {named} but has selections [{}])",
                        f.name,
                        keys.join(", ")
                    ),
                    vec![
                        ("code", s("selectionMismatch")),
                        ("nodeName", s(format!("field '{}'", f.name))),
                        ("typeName", s(named)),
                    ],
                ));
            }
        } else if f.sel.is_empty() {
            self.push(static_error(
                path,
                &[f.pos],
                format!(
                    "Field must have selections (field '{}' returns {named} but has no selections. Did you mean '{} {{ ... }}'?)",
                    f.name, f.name
                ),
                vec![
                    ("code", s("selectionMismatch")),
                    ("nodeName", s(format!("field '{}'", f.name))),
                    ("typeName", s(named)),
                ],
            ));
        } else {
            let named = named.to_string();
            self.selection_set(&f.sel, &named, path);
        }
    }

    /// Fields that answer under one key must be the same field (GraphQL's
    /// "fields can merge"), and have the same shape even on different types
    /// (why `state` is aliased apart on Issue and PullRequest).
    fn merges(&mut self, sel: &'d [Selection], parent: &str, path: &[String]) {
        let mut all = Vec::new();
        let mut visited = HashSet::new();
        collect_all(self.doc, parent, sel, &mut all, &mut visited);
        let mut reported = HashSet::new();
        for (i, (a, pa)) in all.iter().enumerate() {
            for (b, pb) in &all[i + 1..] {
                if a.key() != b.key() || reported.contains(a.key()) {
                    continue;
                }
                let type_of = |f: &Field, p: &str| {
                    if f.name == "__typename" {
                        Some(TypeRef::parse("String!"))
                    } else {
                        field_def(p, &f.name).map(|d| TypeRef::parse(d.ty))
                    }
                };
                let (Some(ta), Some(tb)) = (type_of(a, pa), type_of(b, pb)) else {
                    continue;
                };
                let objects = |t: &str| matches!(type_def(t), Some(Def::Object(_)));
                let key = a.key();
                let conflict = if (pa == pb || !objects(pa) || !objects(pb)) && a.name != b.name {
                    Some((
                        format!(
                            "Field '{key}' has a field conflict: {} or {}?",
                            a.name, b.name
                        ),
                        "fieldConflict",
                    ))
                } else if (pa == pb || !objects(pa) || !objects(pb))
                    && args_text(&a.args) != args_text(&b.args)
                {
                    Some((
                        format!(
                            "Field '{key}' has an argument conflict: {} or {}?",
                            args_text(&a.args),
                            args_text(&b.args)
                        ),
                        "argumentConflict",
                    ))
                } else if !same_shape(&ta, &tb) {
                    Some((
                        format!("Field '{key}' has a return_type conflict: `{ta}` or `{tb}`?"),
                        "returnTypeConflict",
                    ))
                } else {
                    None
                };
                if let Some((message, code)) = conflict {
                    reported.insert(key.to_string());
                    self.push(static_error(
                        path,
                        &[a.pos, b.pos],
                        message,
                        vec![("code", s(code)), ("fieldName", s(key))],
                    ));
                }
            }
        }
    }

    /// Variable usages under `sel`, following spreads once each.
    fn usages(
        &self,
        sel: &'d [Selection],
        parent: &str,
        visited: &mut HashSet<&'d str>,
        out: &mut Vec<Usage>,
    ) {
        let directive_usages = |directives: &[Directive], out: &mut Vec<Usage>| {
            for d in directives {
                for a in &d.args {
                    literal_usages(
                        &a.value,
                        Some(TypeRef::parse("Boolean!")),
                        &a.name,
                        a.pos,
                        out,
                    );
                }
            }
        };
        for selection in sel {
            match selection {
                Selection::Field(f) => {
                    directive_usages(&f.directives, out);
                    let def = field_def(parent, &f.name);
                    for a in &f.args {
                        let expected = def
                            .and_then(|d| d.args.iter().find(|x| x.name == a.name))
                            .map(|x| TypeRef::parse(x.ty));
                        literal_usages(&a.value, expected, &a.name, a.pos, out);
                    }
                    let child =
                        def.map_or(String::new(), |d| TypeRef::parse(d.ty).named().to_string());
                    self.usages(&f.sel, &child, visited, out);
                }
                Selection::Spread {
                    name, directives, ..
                } => {
                    directive_usages(directives, out);
                    if let Some(frag) = self.doc.fragment(name)
                        && visited.insert(frag.name.as_str())
                    {
                        directive_usages(&frag.directives, out);
                        self.usages(&frag.sel, &frag.on, visited, out);
                    }
                }
                Selection::Inline {
                    on,
                    directives,
                    sel,
                    ..
                } => {
                    directive_usages(directives, out);
                    self.usages(sel, on.as_deref().unwrap_or(parent), visited, out);
                }
            }
        }
    }

    /// Fragments never spread from an operation, and fragments that spread
    /// themselves.
    fn fragment_use(&mut self) {
        let doc = self.doc;
        let mut reached = HashSet::new();
        let mut stack: Vec<&str> = Vec::new();
        for op in &doc.ops {
            spreads_in(&op.sel, &mut stack);
        }
        while let Some(name) = stack.pop() {
            if reached.insert(name)
                && let Some(frag) = doc.fragment(name)
            {
                spreads_in(&frag.sel, &mut stack);
            }
        }
        for frag in &doc.frags {
            let path = vec![format!("fragment {}", frag.name)];
            if !reached.contains(frag.name.as_str()) {
                self.push(static_error(
                    &path,
                    &[frag.pos],
                    format!("Fragment {} was defined, but not used", frag.name),
                    vec![
                        ("code", s("useAndDefineFragment")),
                        ("fragmentName", s(frag.name.as_str())),
                    ],
                ));
            }
            // Does it reach itself?
            let mut seen = HashSet::new();
            let mut todo = Vec::new();
            spreads_in(&frag.sel, &mut todo);
            let mut looped = false;
            while let Some(name) = todo.pop() {
                if name == frag.name {
                    looped = true;
                    break;
                }
                if seen.insert(name)
                    && let Some(next) = doc.fragment(name)
                {
                    spreads_in(&next.sel, &mut todo);
                }
            }
            if looped {
                self.push(static_error(
                    &path,
                    &[frag.pos],
                    format!("Fragment {} contains an infinite loop", frag.name),
                    vec![
                        ("code", s("infiniteLoop")),
                        ("fragmentName", s(frag.name.as_str())),
                    ],
                ));
            }
        }
    }
}

fn spreads_in<'d>(sel: &'d [Selection], out: &mut Vec<&'d str>) {
    for selection in sel {
        match selection {
            Selection::Field(f) => spreads_in(&f.sel, out),
            Selection::Spread { name, .. } => out.push(name),
            Selection::Inline { sel, .. } => spreads_in(sel, out),
        }
    }
}

fn literal_usages(
    value: &Literal,
    expected: Option<TypeRef>,
    argument: &str,
    pos: Pos,
    out: &mut Vec<Usage>,
) {
    match value {
        Literal::Var(name) => out.push(Usage {
            name: name.clone(),
            expected,
            argument: argument.to_string(),
            pos,
        }),
        Literal::List(items) => {
            let inner = match expected.as_ref().map(TypeRef::nullable) {
                Some(TypeRef::List(inner)) => Some((**inner).clone()),
                _ => None,
            };
            for item in items {
                literal_usages(item, inner.clone(), argument, pos, out);
            }
        }
        Literal::Object(fields) => {
            for (_, v) in fields {
                literal_usages(v, None, argument, pos, out);
            }
        }
        _ => {}
    }
}

/// Whether a variable of type `var` (with a default or not) may be used
/// where `want` is expected (the spec's "are types compatible").
fn var_fits(var: &TypeRef, has_default: bool, want: &TypeRef) -> bool {
    match (var, want) {
        (TypeRef::NonNull(v), TypeRef::NonNull(w)) => var_fits(v, false, w),
        (v, TypeRef::NonNull(w)) => has_default && var_fits(v, false, w),
        (TypeRef::NonNull(v), w) => var_fits(v, false, w),
        (TypeRef::List(v), TypeRef::List(w)) => var_fits(v, false, w),
        (TypeRef::Named(v), TypeRef::Named(w)) => v == w,
        _ => false,
    }
}

/// Same list and null wrappers, and the same leaf type.
fn same_shape(a: &TypeRef, b: &TypeRef) -> bool {
    match (a, b) {
        (TypeRef::NonNull(x), TypeRef::NonNull(y)) | (TypeRef::List(x), TypeRef::List(y)) => {
            same_shape(x, y)
        }
        (TypeRef::Named(x), TypeRef::Named(y)) => x == y || (!is_leaf(x) && !is_leaf(y)),
        _ => false,
    }
}

fn args_text(args: &[Arg]) -> String {
    let mut parts: Vec<String> = args
        .iter()
        .map(|a| format!("{}: {}", a.name, a.value))
        .collect();
    parts.sort();
    format!("{{{}}}", parts.join(", "))
}

/// Every field under `sel` with the type it is selected on, through all
/// fragments whatever their condition (for the merge rule).
fn collect_all<'d>(
    doc: &'d Document,
    parent: &str,
    sel: &'d [Selection],
    out: &mut Vec<(&'d Field, String)>,
    visited: &mut HashSet<&'d str>,
) {
    for selection in sel {
        match selection {
            Selection::Field(f) => out.push((f, parent.to_string())),
            Selection::Inline { on, sel, .. } => {
                let ty = on.as_deref().unwrap_or(parent);
                if type_def(ty).is_some() {
                    collect_all(doc, ty, sel, out, visited);
                }
            }
            Selection::Spread { name, .. } => {
                if let Some(frag) = doc.fragment(name)
                    && type_def(&frag.on).is_some()
                    && visited.insert(frag.name.as_str())
                {
                    collect_all(doc, &frag.on, &frag.sel, out, visited);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Values: literals and variables, coerced
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Enum(String),
    List(Vec<Val>),
    Object(Vec<(String, Val)>),
}

type Vars = HashMap<String, Val>;

/// A literal with variables filled in (an unset variable is null).
fn val(value: &Literal, vars: &Vars) -> Val {
    match value {
        Literal::Var(n) => vars.get(n).cloned().unwrap_or(Val::Null),
        Literal::Int(n) => Val::Int(*n),
        Literal::Float(x) => Val::Float(*x),
        Literal::Str(text) => Val::Str(text.clone()),
        Literal::Bool(b) => Val::Bool(*b),
        Literal::Null => Val::Null,
        Literal::Enum(e) => Val::Enum(e.clone()),
        Literal::List(items) => Val::List(items.iter().map(|i| val(i, vars)).collect()),
        Literal::Object(fields) => Val::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), val(v, vars)))
                .collect(),
        ),
    }
}

/// An argument's value; `None` when absent, null or an unset variable.
fn argument(f: &Field, name: &str, vars: &Vars) -> Option<Val> {
    let a = f.args.iter().find(|a| a.name == name)?;
    match val(&a.value, vars) {
        Val::Null => None,
        v => Some(v),
    }
}

fn int_arg(f: &Field, name: &str, vars: &Vars) -> Option<i64> {
    match argument(f, name, vars)? {
        Val::Int(n) => Some(n),
        _ => None,
    }
}

fn str_arg(f: &Field, name: &str, vars: &Vars) -> Option<String> {
    match argument(f, name, vars)? {
        Val::Str(text) => Some(text),
        _ => None,
    }
}

/// A JSON variable value as the type wants it, or the problem with it.
fn coerce(json: &Value, ty: &TypeRef) -> Result<Val, String> {
    match ty {
        TypeRef::NonNull(inner) => {
            if json.is_null() {
                return Err("Expected value to not be null".to_string());
            }
            coerce(json, inner)
        }
        _ if json.is_null() => Ok(Val::Null),
        TypeRef::List(inner) => match json {
            Value::Array(items) => items
                .iter()
                .map(|i| coerce(i, inner))
                .collect::<Result<_, _>>()
                .map(Val::List),
            single => Ok(Val::List(vec![coerce(single, inner)?])),
        },
        TypeRef::Named(name) => {
            let fail = || Err(format!("Could not coerce value {json} to {name}"));
            match (name.as_str(), json) {
                ("Int", Value::Number(n)) => match n.as_i64().filter(|n| i32::try_from(*n).is_ok())
                {
                    Some(n) => Ok(Val::Int(n)),
                    None => fail(),
                },
                ("Float", Value::Number(n)) => Ok(Val::Float(n.as_f64().unwrap_or(0.0))),
                ("String" | "DateTime" | "URI" | "ID", Value::String(text)) => {
                    Ok(Val::Str(text.clone()))
                }
                ("ID", Value::Number(n)) if n.is_i64() => Ok(Val::Str(n.to_string())),
                ("Boolean", Value::Bool(b)) => Ok(Val::Bool(*b)),
                (_, Value::String(text)) => match type_def(name) {
                    Some(Def::Enum(values)) if values.contains(&text.as_str()) => {
                        Ok(Val::Enum(text.clone()))
                    }
                    Some(Def::Enum(values)) => Err(format!(
                        "Expected \"{text}\" to be one of: {}",
                        values.join(", ")
                    )),
                    _ => fail(),
                },
                _ => fail(),
            }
        }
    }
}

fn coerce_vars(op: &Operation, given: &Map<String, Value>) -> Result<Vars, Vec<Out>> {
    let mut vars = Vars::new();
    let mut errors = Vec::new();
    for def in &op.vars {
        let value = match given.get(&def.name) {
            Some(json) => coerce(json, &def.ty).map_err(|problem| (json.clone(), problem)),
            None => match &def.default {
                Some(default) => Ok(val(default, &Vars::new())),
                None if matches!(def.ty, TypeRef::NonNull(_)) => {
                    Err((Value::Null, "Expected value to not be null".to_string()))
                }
                None => continue,
            },
        };
        match value {
            Ok(v) => {
                vars.insert(def.name.clone(), v);
            }
            Err((json, problem)) => errors.push(obj(vec![
                (
                    "message",
                    s(format!(
                        "Variable ${} of type {} was provided invalid value",
                        def.name, def.ty
                    )),
                ),
                ("locations", locations(&[def.pos])),
                (
                    "extensions",
                    obj(vec![
                        ("value", Out::Json(json)),
                        (
                            "problems",
                            Out::List(vec![obj(vec![
                                ("path", Out::List(Vec::new())),
                                ("explanation", s(problem)),
                            ])]),
                        ),
                    ]),
                ),
            ])),
        }
    }
    if errors.is_empty() {
        Ok(vars)
    } else {
        Err(errors)
    }
}

/// Whether `@skip` / `@include` keep the selection.
fn included(directives: &[Directive], vars: &Vars) -> bool {
    directives.iter().all(|d| {
        let cond = d
            .args
            .iter()
            .find(|a| a.name == "if")
            .map(|a| val(&a.value, vars));
        !matches!(
            (d.name.as_str(), cond),
            ("skip", Some(Val::Bool(true))) | ("include", Some(Val::Bool(false)))
        )
    })
}

type Grouped<'d> = Vec<(String, Vec<&'d Field>)>;

/// GraphQL's CollectFields: the fields that apply to an object of type
/// `concrete`, grouped by response key in query order.
fn collect<'d>(
    doc: &'d Document,
    vars: &Vars,
    concrete: &str,
    sels: &[&'d [Selection]],
) -> Grouped<'d> {
    fn walk<'d>(
        doc: &'d Document,
        vars: &Vars,
        concrete: &str,
        sel: &'d [Selection],
        out: &mut Grouped<'d>,
        index: &mut HashMap<String, usize>,
        visited: &mut HashSet<&'d str>,
    ) {
        for selection in sel {
            match selection {
                Selection::Field(f) => {
                    if !included(&f.directives, vars) {
                        continue;
                    }
                    match index.get(f.key()) {
                        Some(&i) => out[i].1.push(f),
                        None => {
                            index.insert(f.key().to_string(), out.len());
                            out.push((f.key().to_string(), vec![f]));
                        }
                    }
                }
                Selection::Inline {
                    on,
                    directives,
                    sel,
                    ..
                } => {
                    if included(directives, vars) && applies(on.as_deref(), concrete) {
                        walk(doc, vars, concrete, sel, out, index, visited);
                    }
                }
                Selection::Spread {
                    name, directives, ..
                } => {
                    if !included(directives, vars) || !visited.insert(name.as_str()) {
                        continue;
                    }
                    if let Some(frag) = doc.fragment(name)
                        && included(&frag.directives, vars)
                        && applies(Some(&frag.on), concrete)
                    {
                        walk(doc, vars, concrete, &frag.sel, out, index, visited);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut index = HashMap::new();
    let mut visited = HashSet::new();
    for sel in sels {
        walk(doc, vars, concrete, sel, &mut out, &mut index, &mut visited);
    }
    out
}

// ---------------------------------------------------------------------------
// From a request body to a plan: parse, validate, coerce, GitHub's limits
// ---------------------------------------------------------------------------

/// What GitHub's rate limiter works out before running a query.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Requests needed (a connection under N parents counts N).
    requests: u64,
    /// Most nodes the query may return.
    nodes: u64,
    /// `issueOrPullRequest` / `issue` / `pullRequest` fields.
    lookups: u64,
    /// Points: requests / 100, rounded, at least 1.
    cost: u64,
}

struct Plan {
    doc: Document,
    op: usize,
    vars: Vars,
    tally: Tally,
}

fn prepare(body: &[u8]) -> Result<Plan, Response> {
    let message = |m: &str| obj(vec![("message", s(m))]);
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return Err(json_response(
            400,
            &serde_json::json!({"message": "Problems parsing JSON", "documentation_url": DOCS}),
        ));
    };
    let Some(query) = json.get("query").and_then(Value::as_str) else {
        return Err(errors_response(vec![message(
            "A query attribute must be specified and must be a string.",
        )]));
    };
    if query.trim().is_empty() {
        return Err(errors_response(vec![message(
            "No query string was present",
        )]));
    }
    let doc = parse(query).map_err(|e| errors_response(vec![e]))?;
    let errors = Validator {
        doc: &doc,
        errors: Vec::new(),
        seen: HashSet::new(),
    }
    .run();
    if !errors.is_empty() {
        return Err(errors_response(errors));
    }
    let op = match json.get("operationName").and_then(Value::as_str) {
        Some(name) => doc
            .ops
            .iter()
            .position(|o| o.name.as_deref() == Some(name))
            .ok_or_else(|| {
                errors_response(vec![message(&format!("No operation named \"{name}\""))])
            })?,
        None if doc.ops.len() == 1 => 0,
        None if doc.ops.is_empty() => {
            return Err(errors_response(vec![message(
                "No operations in this document",
            )]));
        }
        None => {
            return Err(errors_response(vec![message(
                "An operation name is required",
            )]));
        }
    };
    let given = match json.get("variables") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            _ => return Err(errors_response(vec![message("Variables are invalid JSON")])),
        },
        Some(_) => return Err(errors_response(vec![message("Variables are invalid JSON")])),
    };
    let vars = coerce_vars(&doc.ops[op], &given).map_err(errors_response)?;
    let mut planner = Planner {
        doc: &doc,
        vars: &vars,
        errors: Vec::new(),
        seen: HashSet::new(),
    };
    let mut tally = planner.walk(&[&doc.ops[op].sel], "Query", 1, &mut Vec::new());
    let mut errors = planner.errors;
    if errors.is_empty() && tally.nodes > MAX_NODES {
        errors.push(obj(vec![
            ("type", s("MAX_NODE_LIMIT_EXCEEDED")),
            (
                "message",
                s(format!(
                    "This query requests up to {} possible nodes which exceeds the maximum limit of 500,000.",
                    tally.nodes
                )),
            ),
        ]));
    }
    if !errors.is_empty() {
        return Err(errors_response(errors));
    }
    tally.cost = ((tally.requests + 50) / 100).max(1);
    Ok(Plan {
        doc,
        op,
        vars,
        tally,
    })
}

/// Walks the operation as it will run, for GitHub's pagination rules and
/// its cost: where a selection can meet several types, the most expensive.
struct Planner<'d> {
    doc: &'d Document,
    vars: &'d Vars,
    errors: Vec<Out>,
    seen: HashSet<String>,
}

impl<'d> Planner<'d> {
    fn error(&mut self, kind: Option<&str>, path: &[String], pos: Pos, message: String) {
        let mut pairs = Vec::new();
        if let Some(kind) = kind {
            pairs.push(("type", s(kind)));
        }
        pairs.push(("path", strings(path)));
        pairs.push(("locations", locations(&[pos])));
        pairs.push(("message", s(message)));
        let error = obj(pairs);
        let mut key = String::new();
        error.write(&mut key);
        if self.seen.insert(key) {
            self.errors.push(error);
        }
    }

    fn walk(
        &mut self,
        sels: &[&'d [Selection]],
        ty: &str,
        parents: u64,
        path: &mut Vec<String>,
    ) -> Tally {
        let mut best = Tally::default();
        for concrete in possible(ty) {
            let mut t = Tally::default();
            for (key, nodes) in collect(self.doc, self.vars, concrete, sels) {
                let f = nodes[0];
                let Some(def) = field_def(concrete, &f.name) else {
                    continue;
                };
                let named = TypeRef::parse(def.ty).named().to_string();
                let subs: Vec<&'d [Selection]> = nodes.iter().map(|n| n.sel.as_slice()).collect();
                path.push(key);
                if matches!(
                    f.name.as_str(),
                    "issueOrPullRequest" | "issue" | "pullRequest"
                ) {
                    t.lookups += parents;
                }
                if is_connection(&named) {
                    let first = self.page_checks(f, &named, &subs, path);
                    t.requests += parents;
                    t.nodes += parents * first;
                    let inner = self.walk(&subs, &named, parents * first, path);
                    t.add(inner);
                } else if is_composite(&named) {
                    let inner = self.walk(&subs, &named, parents, path);
                    t.add(inner);
                }
                path.pop();
            }
            best.requests = best.requests.max(t.requests);
            best.nodes = best.nodes.max(t.nodes);
            best.lookups = best.lookups.max(t.lookups);
        }
        best
    }

    /// GitHub's checks of `first`/`after` on a connection; the page size.
    fn page_checks(
        &mut self,
        f: &Field,
        conn: &str,
        subs: &[&'d [Selection]],
        path: &[String],
    ) -> u64 {
        let name = &f.name;
        let first = int_arg(f, "first", self.vars);
        match first {
            Some(n) if n > MAX_FIRST => self.error(
                Some("EXCESSIVE_PAGINATION"),
                path,
                f.pos,
                format!(
                    "Requesting {n} records on the `{name}` connection exceeds the `first` limit of {MAX_FIRST} records."
                ),
            ),
            Some(n) if n < 0 => self.error(
                None,
                path,
                f.pos,
                format!("`first` on the `{name}` connection cannot be less than zero."),
            ),
            Some(_) => {}
            None => {
                let lists = collect(self.doc, self.vars, conn, subs)
                    .iter()
                    .any(|(_, fs)| fs[0].name == "nodes" || fs[0].name == "edges");
                if lists {
                    self.error(
                        Some("MISSING_PAGINATION_BOUNDARIES"),
                        path,
                        f.pos,
                        format!(
                            "You must provide a `first` or `last` value to properly paginate the `{name}` connection."
                        ),
                    );
                }
            }
        }
        if let Some(after) = str_arg(f, "after", self.vars)
            && cursor_index(&after).is_none()
        {
            self.error(
                Some("INVALID_CURSOR_ARGUMENTS"),
                path,
                f.pos,
                format!("`{after}` does not appear to be a valid cursor."),
            );
        }
        first.unwrap_or(0).clamp(0, MAX_FIRST) as u64
    }
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.requests += other.requests;
        self.nodes += other.nodes;
        self.lookups += other.lookups;
    }
}

fn cursor(index: usize) -> String {
    format!("cursor:{index}")
}

fn cursor_index(text: &str) -> Option<usize> {
    text.strip_prefix("cursor:")?.parse().ok()
}

// ---------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------

/// A repository as an answer sees it (one the fake may not hold: the other
/// end of a cross-repository link).
#[derive(Clone)]
struct At<'a> {
    owner: String,
    name: String,
    id: u64,
    repo: Option<&'a Repo>,
}

impl<'a> At<'a> {
    fn of(repo: &'a Repo) -> At<'a> {
        At {
            owner: repo.owner.clone(),
            name: repo.name.clone(),
            id: repo.id,
            repo: Some(repo),
        }
    }

    fn full(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// A value being answered.
enum Obj<'a> {
    Query,
    RateLimit,
    Repository(At<'a>),
    Owner(String),
    User(String),
    /// A GitHub App's bot, its login without the `[bot]` REST adds.
    Bot(String),
    Item(At<'a>, Box<Item>),
    Label(String),
    Comment {
        id: String,
        author: Option<String>,
        body: String,
        created_at: String,
    },
    Review {
        id: String,
        author: Option<String>,
        state: String,
    },
    Connection {
        ty: &'static str,
        total: usize,
        offset: usize,
        nodes: Vec<Obj<'a>>,
    },
    Edge {
        ty: &'static str,
        cursor: String,
        node: Box<Obj<'a>>,
    },
    PageInfo {
        start: Option<String>,
        end: Option<String>,
        next: bool,
        previous: bool,
    },
}

impl Obj<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Obj::Query => "Query",
            Obj::RateLimit => "RateLimit",
            Obj::Repository(_) => "Repository",
            Obj::Owner(_) => "Organization",
            Obj::User(_) => "User",
            Obj::Bot(_) => "Bot",
            Obj::Item(_, item) if item.is_pr() => "PullRequest",
            Obj::Item(..) => "Issue",
            Obj::Label(_) => "Label",
            Obj::Comment { .. } => "IssueComment",
            Obj::Review { .. } => "PullRequestReview",
            Obj::Connection { ty, .. } | Obj::Edge { ty, .. } => ty,
            Obj::PageInfo { .. } => "PageInfo",
        }
    }
}

/// What a field resolved to, before its selections are applied.
enum Resolved<'a> {
    Null,
    Leaf(Out),
    One(Obj<'a>),
    Many(Vec<Obj<'a>>),
}

enum Step {
    Key(String),
    Index(usize),
}

struct Exec<'a> {
    st: &'a State,
    doc: &'a Document,
    vars: &'a Vars,
    /// `rateLimit`'s numbers, after this query's charge.
    rate: [(&'static str, u64); 5],
    reset: u64,
    errors: Vec<Out>,
}

fn opt_str(value: Option<&str>) -> Resolved<'static> {
    match value {
        Some(text) => Resolved::Leaf(s(text)),
        None => Resolved::Null,
    }
}

fn leaf_str(text: impl Into<String>) -> Resolved<'static> {
    Resolved::Leaf(s(text))
}

/// GraphQL answers a deleted account with `null`, and a bot (whose REST
/// login is `name[bot]`) as a `Bot` named without the suffix.
fn author(login: Option<&str>) -> Resolved<'static> {
    match login {
        Some(l) => match l.strip_suffix("[bot]") {
            Some(name) => Resolved::One(Obj::Bot(name.to_string())),
            None => Resolved::One(Obj::User(l.to_string())),
        },
        None => Resolved::Null,
    }
}

impl<'a> Exec<'a> {
    fn set(&mut self, object: &Obj<'a>, sels: &[&'a [Selection]], path: &mut Vec<Step>) -> Out {
        let ty = object.type_name();
        let mut out = Vec::new();
        for (key, nodes) in collect(self.doc, self.vars, ty, sels) {
            let f = nodes[0];
            path.push(Step::Key(key.clone()));
            let value = if f.name == "__typename" {
                s(ty)
            } else {
                let subs: Vec<&'a [Selection]> = nodes.iter().map(|n| n.sel.as_slice()).collect();
                match self.resolve(object, f) {
                    Ok(Resolved::Null) => Out::Null,
                    Ok(Resolved::Leaf(v)) => v,
                    Ok(Resolved::One(child)) => self.set(&child, &subs, path),
                    Ok(Resolved::Many(children)) => {
                        let mut items = Vec::new();
                        for (i, child) in children.iter().enumerate() {
                            path.push(Step::Index(i));
                            items.push(self.set(child, &subs, path));
                            path.pop();
                        }
                        Out::List(items)
                    }
                    Err(message) => {
                        let steps = path
                            .iter()
                            .map(|p| match p {
                                Step::Key(k) => s(k.as_str()),
                                Step::Index(i) => Out::Int(*i as i64),
                            })
                            .collect();
                        self.errors.push(obj(vec![
                            ("type", s("NOT_FOUND")),
                            ("path", Out::List(steps)),
                            ("locations", locations(&[f.pos])),
                            ("message", s(message)),
                        ]));
                        Out::Null
                    }
                }
            };
            path.pop();
            out.push((key, value));
        }
        Out::Obj(out)
    }

    /// One field of one object; `Err` is a NOT_FOUND with that message.
    fn resolve(&self, object: &Obj<'a>, f: &Field) -> Result<Resolved<'a>, String> {
        let vars = self.vars;
        let name = f.name.as_str();
        let int = |n: u64| Resolved::Leaf(Out::Int(n as i64));
        Ok(match object {
            Obj::Query => match name {
                "rateLimit" => Resolved::One(Obj::RateLimit),
                _ => {
                    let owner = str_arg(f, "owner", vars).unwrap_or_default();
                    let repo = str_arg(f, "name", vars).unwrap_or_default();
                    match self.st.repo_index(&format!("{owner}/{repo}")) {
                        Some(i) => Resolved::One(Obj::Repository(At::of(&self.st.repos[i]))),
                        None => {
                            return Err(format!(
                                "Could not resolve to a Repository with the name '{owner}/{repo}'."
                            ));
                        }
                    }
                }
            },
            Obj::RateLimit => match name {
                "resetAt" => leaf_str(iso(self.reset as i64)),
                _ => self
                    .rate
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map_or(Resolved::Null, |(_, v)| int(*v)),
            },
            Obj::Repository(at) => match name {
                "id" => leaf_str(format!("R_fake{}", at.id)),
                "databaseId" => int(at.id),
                "name" => leaf_str(at.name.as_str()),
                "nameWithOwner" => leaf_str(at.full()),
                "owner" => Resolved::One(Obj::Owner(at.owner.clone())),
                "url" => leaf_str(format!("https://github.com/{}", at.full())),
                _ => {
                    let n = int_arg(f, "number", vars).unwrap_or(0);
                    let item = at
                        .repo
                        .and_then(|r| r.items.get(&u64::try_from(n).ok()?))
                        .and_then(|e| match e {
                            Entry::Live(item) => Some(item),
                            _ => None,
                        })
                        .filter(|item| match name {
                            "issue" => !item.is_pr(),
                            "pullRequest" => item.is_pr(),
                            _ => true,
                        });
                    match item {
                        Some(item) => Resolved::One(Obj::Item(at.clone(), item.clone())),
                        None => {
                            let what = match name {
                                "issue" => "an Issue",
                                "pullRequest" => "a PullRequest",
                                _ => "an issue or pull request",
                            };
                            return Err(format!(
                                "Could not resolve to {what} with the number of {n}."
                            ));
                        }
                    }
                }
            },
            Obj::Owner(login) | Obj::User(login) | Obj::Bot(login) => leaf_str(login.as_str()),
            Obj::Item(at, item) => self.item_field(at, item, f),
            Obj::Label(label) => leaf_str(label.as_str()),
            Obj::Comment {
                id,
                author: who,
                body,
                created_at,
            } => match name {
                "id" => leaf_str(id.as_str()),
                "author" => author(who.as_deref()),
                "body" => leaf_str(body.as_str()),
                _ => leaf_str(created_at.as_str()),
            },
            Obj::Review {
                id,
                author: who,
                state,
            } => match name {
                "id" => leaf_str(id.as_str()),
                "author" => author(who.as_deref()),
                _ => leaf_str(state.as_str()),
            },
            Obj::Connection {
                ty,
                total,
                offset,
                nodes,
            } => match name {
                "totalCount" => int(*total as u64),
                "nodes" => Resolved::Many(nodes.iter().map(Obj::shallow).collect()),
                "edges" => Resolved::Many(
                    nodes
                        .iter()
                        .enumerate()
                        .map(|(i, node)| Obj::Edge {
                            ty: edge_type(ty),
                            cursor: cursor(offset + i),
                            node: Box::new(node.shallow()),
                        })
                        .collect(),
                ),
                _ => Resolved::One(Obj::PageInfo {
                    start: (!nodes.is_empty()).then(|| cursor(*offset)),
                    end: (!nodes.is_empty()).then(|| cursor(offset + nodes.len() - 1)),
                    next: offset + nodes.len() < *total,
                    previous: *offset > 0,
                }),
            },
            Obj::Edge { cursor, node, .. } => match name {
                "cursor" => leaf_str(cursor.as_str()),
                _ => Resolved::One(node.shallow()),
            },
            Obj::PageInfo {
                start,
                end,
                next,
                previous,
            } => match name {
                "hasNextPage" => Resolved::Leaf(Out::Bool(*next)),
                "hasPreviousPage" => Resolved::Leaf(Out::Bool(*previous)),
                "startCursor" => opt_str(start.as_deref()),
                _ => opt_str(end.as_deref()),
            },
        })
    }

    fn item_field(&self, at: &At<'a>, item: &Item, f: &Field) -> Resolved<'a> {
        let n = item.number;
        let database_id = at.id * 10_000_000 + n;
        let merged = matches!(item.kind, Kind::Pr { merged: true, .. });
        let closed = item.state == "closed";
        match f.name.as_str() {
            "id" if item.is_pr() => leaf_str(format!("PR_fake{database_id}")),
            "id" => leaf_str(format!("I_fake{database_id}")),
            "databaseId" => Resolved::Leaf(Out::Int(database_id as i64)),
            "number" => Resolved::Leaf(Out::Int(n as i64)),
            "title" => leaf_str(item.title.as_str()),
            "body" => leaf_str(item.body.clone().unwrap_or_default()),
            "url" => {
                let web = if item.is_pr() { "pull" } else { "issues" };
                leaf_str(format!("https://github.com/{}/{web}/{n}", at.full()))
            }
            "createdAt" => leaf_str(item.created_at.as_str()),
            "updatedAt" => leaf_str(item.updated_at.as_str()),
            "closedAt" => opt_str(item.closed_at.as_deref()),
            "closed" => Resolved::Leaf(Out::Bool(closed)),
            "state" => leaf_str(match () {
                _ if merged => "MERGED",
                _ if closed => "CLOSED",
                _ => "OPEN",
            }),
            "stateReason" if closed => leaf_str("COMPLETED"),
            "stateReason" => Resolved::Null,
            "merged" => Resolved::Leaf(Out::Bool(merged)),
            "mergedAt" => match &item.kind {
                Kind::Pr { merged_at, .. } => opt_str(merged_at.as_deref()),
                Kind::Issue => Resolved::Null,
            },
            "isDraft" => Resolved::Leaf(Out::Bool(false)),
            "author" => author(item.author.as_deref()),
            "repository" => Resolved::One(Obj::Repository(at.clone())),
            "labels" => {
                // Nothing promises that GitHub's two APIs name an item's
                // labels in the same order: REST here gives them as added,
                // GraphQL by name, so no client can come to rely on either.
                let mut names = item.labels.clone();
                names.sort();
                let all = names.into_iter().map(Obj::Label).collect();
                self.connection("LabelConnection", all, f)
            }
            "comments" => {
                let all = item
                    .comments
                    .iter()
                    .enumerate()
                    .map(|(k, c)| Obj::Comment {
                        id: format!("IC_{}_{n}_{}", at.id, k + 1),
                        author: c.author.clone(),
                        body: c.body.clone(),
                        created_at: c.created_at.clone(),
                    })
                    .collect();
                self.connection("IssueCommentConnection", all, f)
            }
            "reviews" => {
                // A single value where a list is wanted is a list of one
                // (GraphQL's input coercion): `states: APPROVED`.
                let states: Option<Vec<String>> =
                    argument(f, "states", self.vars).map(|v| match v {
                        Val::List(items) => items
                            .into_iter()
                            .filter_map(|v| match v {
                                Val::Enum(e) | Val::Str(e) => Some(e),
                                _ => None,
                            })
                            .collect(),
                        Val::Enum(e) | Val::Str(e) => vec![e],
                        _ => Vec::new(),
                    });
                let all = item
                    .reviews
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| states.as_ref().is_none_or(|s| s.contains(&r.state)))
                    .map(|(k, r)| Obj::Review {
                        id: format!("PRR_{}_{n}_{}", at.id, k + 1),
                        author: r.author.clone(),
                        state: r.state.clone(),
                    })
                    .collect();
                self.connection("PullRequestReviewConnection", all, f)
            }
            "closingIssuesReferences" => {
                let all = item
                    .closes
                    .iter()
                    .map(|(repo, number)| self.linked(at, repo.as_deref(), *number))
                    .collect();
                self.connection("IssueConnection", all, f)
            }
            _ => Resolved::Null,
        }
    }

    /// A page of `all`, by `first` and `after`.
    fn connection(&self, ty: &'static str, all: Vec<Obj<'a>>, f: &Field) -> Resolved<'a> {
        let total = all.len();
        let offset = str_arg(f, "after", self.vars)
            .and_then(|c| cursor_index(&c))
            .map_or(0, |i| i + 1)
            .min(total);
        let first =
            int_arg(f, "first", self.vars).map_or(total, |n| n.clamp(0, MAX_FIRST) as usize);
        let nodes = all.into_iter().skip(offset).take(first).collect();
        Resolved::One(Obj::Connection {
            ty,
            total,
            offset,
            nodes,
        })
    }

    /// The issue at the other end of a `closes` link: from the fake's data
    /// when it holds it, else a plain open issue of that number.
    fn linked(&self, at: &At<'a>, repo: Option<&str>, number: u64) -> Obj<'a> {
        let target = match repo {
            None => at.clone(),
            Some(full) => match self.st.repo_index(full) {
                Some(i) => At::of(&self.st.repos[i]),
                None => {
                    let (owner, name) = full.split_once('/').unwrap_or((full, ""));
                    At {
                        owner: owner.to_string(),
                        name: name.to_string(),
                        id: 0,
                        repo: None,
                    }
                }
            },
        };
        let live = target.repo.and_then(|r| match r.items.get(&number) {
            Some(Entry::Live(item)) if !item.is_pr() => Some(item.clone()),
            _ => None,
        });
        let item =
            live.unwrap_or_else(|| Box::new(Item::issue(number, &format!("Issue #{number}"))));
        Obj::Item(target, item)
    }
}

impl<'a> Obj<'a> {
    /// A copy for a child position (nodes and edges show the same objects).
    fn shallow(&self) -> Obj<'a> {
        match self {
            Obj::Query => Obj::Query,
            Obj::RateLimit => Obj::RateLimit,
            Obj::Repository(at) => Obj::Repository(at.clone()),
            Obj::Owner(l) => Obj::Owner(l.clone()),
            Obj::User(l) => Obj::User(l.clone()),
            Obj::Bot(l) => Obj::Bot(l.clone()),
            Obj::Item(at, item) => Obj::Item(at.clone(), item.clone()),
            Obj::Label(l) => Obj::Label(l.clone()),
            Obj::Comment {
                id,
                author,
                body,
                created_at,
            } => Obj::Comment {
                id: id.clone(),
                author: author.clone(),
                body: body.clone(),
                created_at: created_at.clone(),
            },
            Obj::Review { id, author, state } => Obj::Review {
                id: id.clone(),
                author: author.clone(),
                state: state.clone(),
            },
            Obj::Connection {
                ty,
                total,
                offset,
                nodes,
            } => Obj::Connection {
                ty,
                total: *total,
                offset: *offset,
                nodes: nodes.iter().map(Obj::shallow).collect(),
            },
            Obj::Edge { ty, cursor, node } => Obj::Edge {
                ty,
                cursor: cursor.clone(),
                node: Box::new(node.shallow()),
            },
            Obj::PageInfo {
                start,
                end,
                next,
                previous,
            } => Obj::PageInfo {
                start: start.clone(),
                end: end.clone(),
                next: *next,
                previous: *previous,
            },
        }
    }
}

fn edge_type(connection: &str) -> &'static str {
    match connection {
        "LabelConnection" => "LabelEdge",
        "IssueCommentConnection" => "IssueCommentEdge",
        "PullRequestReviewConnection" => "PullRequestReviewEdge",
        _ => "IssueEdge",
    }
}
