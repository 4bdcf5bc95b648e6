//! Property tests over everything that reads outside input, through the
//! crate's public API: the commit-message parser, the decoder of GitHub's
//! answers (`Item::from_github`, `list_from_github`, `merged_at_from_pull`),
//! the classification of an answer and its `Link` header, the API base, and
//! the checks that names and remote URLs pass before they touch a path.
//! Whatever the input: no panic, no hang (a call not done after a minute
//! ends the test process as hung; how fast the parser and decoder are is for
//! the benchmarks, not a bound here), memory bounded (an allocator that
//! counts what the decoder holds at its peak), and what is accepted obeys
//! the rules.
//!
//! This extends, and does not repeat, the parser's own properties in
//! `src/discover/parser.rs` (no panic on short messages against one fixed
//! forge, determinism, appending, the squash and closing shapes) and the
//! decoder's handful of hostile bodies in `src/forge/mod.rs`.
//!
//! Cases: proptest's default (256 per property, `PROPTEST_CASES=N` for a
//! longer run), fewer where one case is large (noted at each). A failing
//! case is printed with its seed; nothing is written to disk.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use patina_forge::discover::parser::{ForgeRef, Found, refs_in_message};
use patina_forge::forge::github::{Answer, Limit, api_base, classify, next_link};
use patina_forge::forge::http::Reply;
use patina_forge::forge::kind::ForgeKind;
use patina_forge::forge::{Item, Kind, MAX_NUMBER, MergedAt, merged_at_from_pull};
use patina_forge::home::check_name;
use patina_forge::target::{ForgeName, parse_remote_url};
use proptest::prelude::*;
use proptest::test_runner::Config;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

// ---- an allocator that knows the decoder's peak ------------------------------------

/// Counts the bytes live on the current thread while `measure` runs, and
/// the peak; everything else goes to the system allocator untouched.
struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    if TRACKING.with(Cell::get) {
        let live = LIVE.with(|l| {
            l.set(l.get() + delta);
            l.get()
        });
        PEAK.with(|p| p.set(p.get().max(live)));
    }
}

// SAFETY: every call is passed on to `System` unchanged; the counters are
// thread-local cells with constant initialisers (no allocation, no drop).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// How long one measured call may run before the test calls it hung: a
/// guard, not a claim about speed.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Ends the test process, as hung, unless dropped within `HANG_GUARD` (a
/// computation that does not return cannot be stopped any other way).
struct Watchdog(Arc<(Mutex<bool>, Condvar)>);

impl Watchdog {
    fn start() -> Watchdog {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let seen = Arc::clone(&done);
        std::thread::spawn(move || {
            let (lock, cvar) = &*seen;
            let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let (guard, _) = cvar
                .wait_timeout_while(guard, HANG_GUARD, |done| !*done)
                .unwrap_or_else(|p| p.into_inner());
            if !*guard {
                eprintln!("a measured call hangs: not done after {HANG_GUARD:?}");
                std::process::exit(101);
            }
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.0;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cvar.notify_one();
    }
}

/// Runs `f` under a `Watchdog`, returning its result and the peak of bytes
/// it held at once beyond what was live before.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let watchdog = Watchdog::start();
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    drop(watchdog);
    (out, PEAK.with(Cell::get).max(0) as usize)
}

/// What a decode may hold at its peak: a small multiple of the input, plus
/// a fixed allowance (serde's and our buffers).
fn memory_bound(input: usize) -> usize {
    16 * input + (1 << 20)
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// `PROPTEST_CASES`, else `n`.
fn cases(n: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n)
}

// ---- the message parser ---------------------------------------------------------------

/// A forge name as the parser may be given it: the usual shapes, and odd ones
/// (empty, blank, with regex or path characters).
fn forge_part() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9._-]{1,12}",
        1 => Just(String::new()),
        1 => Just(" ".to_string()),
        1 => ".{0,8}",
    ]
}

/// Pieces that make messages near the patterns the parser looks for.
fn fragment(owner: String, name: String, host: String) -> impl Strategy<Value = Vec<u8>> {
    let pieces: Vec<Vec<u8>> = [
        "#",
        "(#",
        ")",
        " ",
        "\n",
        "\r\n",
        ":",
        "/",
        "Fixes ",
        "closes",
        "RESOLVED",
        "fix:",
        "Merge pull request #",
        "Auto merge of #",
        "Merge #",
        " from ",
        "/issues/",
        "/pull/",
        "https://",
        "0",
        "1",
        "9",
        "42",
        "2147483647",
        "2147483648",
        "99999999999",
        "\u{ff}",
        "é",
        "_",
        "x",
        "prefix",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        format!("{owner}/{name}#").into_bytes(),
        format!("https://{host}/{owner}/{name}/issues/").into_bytes(),
        format!("https://{host}/{owner}/{name}/pull/").into_bytes(),
    ])
    .collect();
    prop_oneof![
        8 => proptest::sample::select(pieces),
        1 => proptest::collection::vec(any::<u8>(), 1..6),
    ]
}

fn parser_input() -> impl Strategy<Value = (String, String, String, Vec<u8>)> {
    (forge_part(), forge_part(), forge_part()).prop_flat_map(|(host, owner, name)| {
        let message = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..4096),
            proptest::collection::vec(fragment(owner.clone(), name.clone(), host.clone()), 0..400)
                .prop_map(|parts| parts.concat()),
        ];
        (Just(host), Just(owner), Just(name), message)
    })
}

/// Whether the decimal `n` stands in `hay` right after `#` or a `/issues/`
/// or `/pull/` path, and is not followed by another digit.
fn stands_after_marker(hay: &[u8], n: u32) -> bool {
    let digits = n.to_string();
    let d = digits.as_bytes();
    (0..hay.len()).any(|i| {
        hay[i..].starts_with(d)
            && hay.get(i + d.len()).is_none_or(|b| !b.is_ascii_digit())
            && (hay[..i].ends_with(b"#")
                || hay[..i].ends_with(b"/issues/")
                || hay[..i].ends_with(b"/pull/"))
    })
}

proptest! {
    #![proptest_config(config(cases(512)))]

    /// Any forge names, any message up to 4 KiB: every number is in range,
    /// stands in the message after `#` or an issue/PR path, appears once,
    /// and the subject-line patterns take theirs from the first line.
    #[test]
    fn parser_output_is_always_sound((host, owner, name, message) in parser_input()) {
        let forge = ForgeRef { host: &host, owner: &owner, name: &name };
        let mut out: Vec<Found> = Vec::new();
        refs_in_message(&message, &forge, &mut out);
        let subject = message.split(|b| *b == b'\n').next().unwrap_or(&[]);
        let mut seen = std::collections::BTreeSet::new();
        for f in &out {
            prop_assert!(f.number >= 1 && u64::from(f.number) <= MAX_NUMBER, "{f:?}");
            prop_assert!(seen.insert(f.number), "#{} twice: {out:?}", f.number);
            prop_assert!(stands_after_marker(&message, f.number), "{f:?} not in the message");
            if f.pattern.is_pr() {
                prop_assert!(stands_after_marker(subject, f.number), "{f:?} not in the subject");
            }
        }
    }
}

proptest! {
    #![proptest_config(config(cases(16)))]

    /// Large messages (up to 1 MiB of the pieces above, repeated) parse
    /// without hanging; no more refs than bytes. 16 cases. (Linear time is
    /// the parser's design; its speed is for the benchmarks.)
    #[test]
    fn large_messages_parse_without_hanging(
        (host, owner, name, seed) in parser_input(),
        repeat in 1usize..64,
    ) {
        let mut message = Vec::new();
        while message.len() < 1 << 20 && !seed.is_empty() {
            for _ in 0..repeat {
                message.extend_from_slice(&seed);
            }
            message.push(b' ');
        }
        let forge = ForgeRef { host: &host, owner: &owner, name: &name };
        let (found, _) = measure(|| {
            let mut out = Vec::new();
            refs_in_message(&message, &forge, &mut out);
            out.len()
        });
        prop_assert!(found <= message.len());
    }
}

/// The worst shapes, each 1 MiB: every byte a candidate for a pattern.
/// They parse without hanging, in bounded memory, finding at most two refs.
#[test]
fn adversarial_megabyte_messages_parse_without_hanging() {
    let forge = ForgeRef {
        host: "github.com",
        owner: "acme",
        name: "widget",
    };
    for unit in [
        "#",
        "fixes #",
        "fixes #1",
        "(#1) ",
        "(#",
        "acme/widget#",
        "fixes acme/widget#9 ",
        "https://github.com/acme/widget/issues/",
        "/issues/",
        "Merge #1 #2 ",
        "fixes                                 ",
        "9",
    ] {
        let mut message = unit.repeat((1 << 20) / unit.len()).into_bytes();
        message.insert(0, b'\n');
        let (n, bytes) = measure(|| {
            let mut out = Vec::new();
            refs_in_message(&message, &forge, &mut out);
            out.len()
        });
        assert!(
            bytes <= memory_bound(message.len()),
            "{unit:?}: {bytes} bytes"
        );
        assert!(n <= 2, "{unit:?}: {n} refs");
    }
}

// ---- the decoder ---------------------------------------------------------------------------

/// JSON of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What a decoded item must hold: number, kind, title, body, open, labels,
/// author, created_at, updated_at, url.
type Fields = (
    u32,
    Kind,
    String,
    Option<String>,
    bool,
    Vec<String>,
    String,
    String,
    String,
    String,
);

fn fields(i: &Item) -> Fields {
    (
        i.number,
        i.kind.clone(),
        i.title.clone(),
        i.body.clone(),
        i.open,
        i.labels.clone(),
        i.author.clone(),
        i.created_at.clone(),
        i.updated_at.clone(),
        i.url.clone(),
    )
}

/// A well-formed issue or PR as GitHub sends it, with what it must decode to.
fn good_issue() -> impl Strategy<Value = (Value, Fields)> {
    (
        1u32..=i32::MAX as u32,
        ".{0,40}",
        proptest::option::of(".{0,80}"),
        any::<bool>(),
        proptest::collection::vec("[a-z ]{1,10}", 0..4),
        proptest::option::of("[a-z0-9-]{1,20}"),
        0u8..4,
    )
        .prop_map(|(number, title, body, open, labels, author, pr)| {
            let at = "2024-05-01T10:00:00Z".to_string();
            let url = format!("https://github.com/acme/widget/issues/{number}");
            let mut v = json!({
                "number": number,
                "title": title,
                "body": body,
                "state": if open { "open" } else { "closed" },
                "labels": labels.iter().map(|l| json!({"name": l, "color": "fff"})).collect::<Vec<_>>(),
                "user": author.as_ref().map(|a| json!({"login": a, "id": 1})),
                "created_at": at,
                "updated_at": at,
                "html_url": url,
                "comments": 3,
                "reactions": {"+1": 1},
            });
            let kind = match pr {
                0 => Kind::Issue,
                1 => {
                    v["pull_request"] = json!({"url": "x", "merged_at": null});
                    Kind::Pr { merged_at: MergedAt::Known(None) }
                }
                2 => {
                    v["pull_request"] = json!({"url": "x", "merged_at": at});
                    Kind::Pr { merged_at: MergedAt::Known(Some(at.clone())) }
                }
                _ => {
                    v["pull_request"] = json!({"url": "x"});
                    Kind::Pr { merged_at: MergedAt::Unknown }
                }
            };
            // An empty body is stored as none, as patina shows it; labels
            // in name order, once each; a deleted account as `ghost`.
            let body = body.filter(|b| !b.is_empty());
            let mut labels = labels;
            labels.sort();
            labels.dedup();
            let author = author.unwrap_or_else(|| "ghost".to_string());
            (v, (number, kind, title, body, open, labels, author, at.clone(), at, url))
        })
}

/// Every decoder on `bytes`: no panic, memory bounded; what is accepted is
/// in range.
fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (results, peak) = measure(|| {
        (
            Item::from_github(bytes),
            Item::list_from_github(bytes),
            merged_at_from_pull(bytes),
        )
    });
    prop_assert!(
        peak <= memory_bound(bytes.len()),
        "{peak} bytes for {} of input",
        bytes.len()
    );
    let (one, list, _) = results;
    for item in one.iter().chain(list.iter().flatten()) {
        prop_assert!(item.number >= 1 && u64::from(item.number) <= MAX_NUMBER);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(cases(512)))]

    #[test]
    fn decoders_survive_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_all(&bytes)?;
    }

    #[test]
    fn decoders_survive_any_json(v in any_json()) {
        decode_all(&serde_json::to_vec(&v).unwrap())?;
        decode_all(&serde_json::to_vec(&json!([v])).unwrap())?;
    }

    /// A good issue decodes to exactly its fields, alone and in a list.
    #[test]
    fn a_good_issue_decodes_to_its_fields((v, want) in good_issue()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        prop_assert_eq!(Item::from_github(&bytes).map(|i| fields(&i)), Ok(want.clone()));
        let page = serde_json::to_vec(&json!([v, v])).unwrap();
        let got = Item::list_from_github(&page).map(|l| l.iter().map(fields).collect::<Vec<_>>());
        prop_assert_eq!(got, Ok(vec![want.clone(), want]));
    }

    /// One field of a good issue replaced by anything: no panic, and when it
    /// still decodes, every other field is as it was.
    #[test]
    fn a_damaged_issue_never_decodes_to_something_else(
        (v, want) in good_issue(),
        field in proptest::sample::select(vec![
            "number", "title", "body", "state", "labels", "user", "created_at",
            "updated_at", "html_url", "pull_request", "comments",
        ]),
        replacement in any_json(),
    ) {
        let mut damaged = v.clone();
        damaged[field] = replacement;
        let bytes = serde_json::to_vec(&damaged).unwrap();
        decode_all(&bytes)?;
        if let Ok(got) = Item::from_github(&bytes) {
            let keep = |f: &str| f != field;
            if keep("number") { prop_assert_eq!(got.number, want.0); }
            if keep("title") { prop_assert_eq!(&got.title, &want.2); }
            if keep("state") { prop_assert_eq!(got.open, want.4); }
            if keep("html_url") { prop_assert_eq!(&got.url, &want.9); }
            if keep("created_at") { prop_assert_eq!(&got.created_at, &want.7); }
            if keep("updated_at") { prop_assert_eq!(&got.updated_at, &want.8); }
            if keep("pull_request") { prop_assert_eq!(got.is_pr(), matches!(want.1, Kind::Pr { .. })); }
        }
    }

    /// `number` written every way JSON allows: accepted only as an integer
    /// in 1..=2^31-1, never truncated, rounded or wrapped.
    #[test]
    fn only_an_in_range_integer_is_a_number(
        number in prop_oneof![
            "-?(0|[1-9][0-9]{0,24})",
            "-?[0-9]{1,5}\\.[0-9]{1,5}",
            "-?[1-9][0-9]{0,3}[eE][+-]?[0-9]{1,4}",
        ],
    ) {
        let body = format!(
            r#"{{"number":{number},"title":"t","state":"open","created_at":"c","updated_at":"u","html_url":"h"}}"#
        );
        let got = Item::from_github(body.as_bytes());
        let exact: Option<u32> = number.parse::<u32>().ok().filter(|n| (1..=i32::MAX as u32).contains(n));
        match exact {
            Some(n) => prop_assert_eq!(got.map(|i| i.number), Ok(n)),
            None => prop_assert!(got.is_err(), "{number} was taken as {:?}", got.map(|i| i.number)),
        }
    }
}

proptest! {
    #![proptest_config(config(cases(64)))]

    /// Arrays and objects nested up to 20,000 deep, alone or inside a good
    /// issue at any field: no stack overflow, memory bounded, and refused
    /// where the decoder reads (alone, or in a field it uses; a field it
    /// skips may hold anything). 64 cases.
    #[test]
    fn deep_nesting_is_refused(
        (v, _) in good_issue(),
        depth in 1usize..20_000,
        objects in any::<bool>(),
        field in prop_oneof![
            proptest::sample::select(vec!["number", "title", "body", "state", "labels", "user", "pull_request", "html_url"]).prop_map(str::to_string),
            "x_[a-z_]{1,10}",
        ],
    ) {
        let (open, close) = if objects { ("{\"a\":", "}") } else { ("[", "]") };
        let core = if objects { "1" } else { "" };
        let nest = format!("{}{core}{}", open.repeat(depth), close.repeat(depth));
        decode_all(nest.as_bytes())?;
        let mut v = v;
        v.as_object_mut().unwrap().remove(&field);
        let mut text = serde_json::to_string(&v).unwrap();
        text.pop();
        text.push_str(&format!(",\"{field}\":{nest}}}"));
        decode_all(text.as_bytes())?;
        if depth > 200 {
            prop_assert!(Item::from_github(nest.as_bytes()).is_err());
            // `pull_request` is an object whose unknown keys are skipped.
            let skipped = field.starts_with("x_") || (objects && field == "pull_request");
            if !skipped {
                prop_assert!(Item::from_github(text.as_bytes()).is_err(), "accepted {depth} deep in {field}");
            }
        }
    }
}

#[test]
fn a_large_page_decodes_in_bounded_memory() {
    // 100 issues with 64 KiB bodies: about GitHub's largest page.
    let issue = |n: u32| {
        json!({"number": n, "title": "t", "body": "b".repeat(65_536), "state": "open",
               "created_at": "c", "updated_at": "u", "html_url": "h", "labels": [], "user": null})
    };
    let page = serde_json::to_vec(&(1..=100).map(issue).collect::<Vec<_>>()).unwrap();
    let (items, peak) = measure(|| Item::list_from_github(&page));
    assert_eq!(items.map(|i| i.len()), Ok(100));
    assert!(
        peak <= 3 * page.len(),
        "{peak} bytes held for a {}-byte page",
        page.len()
    );
}

// ---- answers: classification, Link -------------------------------------------------------

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
        "-?[0-9]{1,30}(\\.[0-9]{1,3})?([eE][0-9]{1,3})?",
        "[ -~]{0,40}",
    ]
}

fn reply(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Reply {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            map.append(n, v);
        }
    }
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        headers: map,
        body,
    }
}

fn answer_headers(realistic: bool) -> impl Strategy<Value = Vec<(String, String)>> {
    let names = proptest::sample::select(vec![
        "retry-after",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-limit",
        "location",
        "link",
        "etag",
    ]);
    let value = if realistic {
        // Times and counts a server could mean (up to the year 36812), and
        // anything that is not such a number.
        header_value()
            .prop_filter("a number a server could mean", |v| {
                v.trim().parse::<u64>().is_err_and(|_| true)
                    || v.trim().parse::<u64>().is_ok_and(|n| n < 1 << 40)
            })
            .boxed()
    } else {
        header_value().boxed()
    };
    proptest::collection::vec((names.prop_map(str::to_string), value), 0..6)
}

fn answer_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        ".{0,60}".prop_map(|m| serde_json::to_vec(&json!({"message": m})).unwrap()),
        Just(br#"{"message":"You have exceeded a secondary rate limit"}"#.to_vec()),
    ]
}

fn kind() -> impl Strategy<Value = ForgeKind> {
    proptest::sample::select(vec![
        ForgeKind::Github,
        ForgeKind::GithubEnterprise,
        ForgeKind::Gitea,
    ])
}

fn check_answer(r: &Reply, kind: ForgeKind) -> Result<(), TestCaseError> {
    let now = SystemTime::now();
    let answer = classify(r, now, kind);
    match (&answer, r.status.as_u16()) {
        (Answer::Ok, s) => prop_assert!((200..300).contains(&s)),
        (Answer::NotFound, s) => prop_assert_eq!(s, 404),
        (Answer::Gone, s) => prop_assert_eq!(s, 410),
        (Answer::NotModified, s) => prop_assert_eq!(s, 304),
        (Answer::Moved(_), s) => prop_assert!([301, 302, 307, 308].contains(&s)),
        (Answer::Limited(_) | Answer::Denied(_), s) => prop_assert!([401, 403, 429].contains(&s)),
        (Answer::Transient(_), _) => {}
        // Made only when no connection was: never from an answer.
        (Answer::Unreachable(_), s) => prop_assert!(false, "a {} answer taken as unreachable", s),
    }
    // A limit never asks for a wait in the past.
    if let Answer::Limited(Limit::Primary { reset }) = answer {
        prop_assert!(reset >= UNIX_EPOCH);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(cases(1024)))]

    /// Any status, the headers that matter with values a server could mean,
    /// any body: classified without a panic, consistently with the status.
    #[test]
    fn classify_never_panics_on_realistic_headers(
        status in 100u16..600,
        headers in answer_headers(true),
        body in answer_body(),
        kind in kind(),
    ) {
        check_answer(&reply(status, headers, body), kind)?;
    }

    #[test]
    fn next_link_takes_only_a_next_url(header in prop_oneof![
        "[ -~]{0,200}",
        proptest::collection::vec(
            ("(https?|ftp|file)://[a-z0-9.:@/?&=_-]{0,40}", "(next|prev|last|first|\"next\"|NEXT)"),
            0..5,
        ).prop_map(|parts| parts.iter().map(|(u, r)| format!("<{u}>; rel={r}")).collect::<Vec<_>>().join(", ")),
    ]) {
        if let Some(url) = next_link(&header) {
            prop_assert!(header.to_ascii_lowercase().contains("next"), "{header:?}");
            prop_assert!(header.contains(&format!("<{}", url.scheme())), "{header:?} → {url}");
        }
    }

    /// The API base: whatever is given, an accepted one is https (or plain
    /// http to a loopback address), without credentials, query or fragment.
    #[test]
    fn an_accepted_api_base_is_safe(
        kind in kind(),
        host in "[a-z0-9.-]{0,20}",
        given in proptest::option::of(prop_oneof![
            "[ -~]{0,60}",
            "(https?|ftp|file|HTTP)://([a-z]{1,5}(:[a-z]{1,5})?@)?(127\\.0\\.0\\.[0-9]{1,3}|localhost|\\[::1\\]|[a-z.]{1,20})(:[0-9]{1,5})?(/[a-z/]{0,10})?(\\?[a-z=]{0,5})?(#[a-z]{0,5})?",
        ]),
    ) {
        if let Ok(url) = api_base(&host, given.as_deref(), kind) {
            let loopback = matches!(url.host_str(), Some("127.0.0.1") | Some("localhost") | Some("[::1]"))
                || url.host_str().is_some_and(|h| h.starts_with("127."));
            prop_assert!(url.scheme() == "https" || (url.scheme() == "http" && loopback), "{url}");
            prop_assert!(url.username().is_empty() && url.password().is_none(), "{url}");
            prop_assert!(url.query().is_none() && url.fragment().is_none(), "{url}");
            prop_assert!(url.path().ends_with('/'), "{url}");
        }
    }
}

proptest! {
    #![proptest_config(config(cases(1024)))]

    /// The same with any value in the rate-limit headers (u64::MAX seconds
    /// and the like).
    #[test]
        fn classify_never_panics_on_any_header_values(
        status in prop_oneof![Just(403u16), Just(429u16), 100u16..600],
        headers in answer_headers(false),
        body in answer_body(),
        kind in kind(),
    ) {
        let mut headers = headers;
        headers.push(("x-ratelimit-remaining".into(), "0".into()));
        check_answer(&reply(status, headers, body), kind)?;
    }
}

// ---- names and remote URLs --------------------------------------------------------------

fn allowed_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name != "."
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn hostile_name() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,12}",
        "[A-Za-z0-9._/\\\\ \\n\\t\\x00%-]{0,12}",
        Just("..".to_string()),
        Just(".".to_string()),
        (95usize..106).prop_map(|n| "x".repeat(n)),
    ]
}

proptest! {
    #![proptest_config(config(cases(2048)))]

    #[test]
    fn check_name_accepts_exactly_the_safe_names(name in hostile_name()) {
        prop_assert_eq!(check_name(&name).is_ok(), allowed_name(&name), "{:?}", name);
    }

    #[test]
    fn a_parsed_forge_name_is_two_safe_names(value in prop_oneof![
        hostile_name(),
        (hostile_name(), hostile_name()).prop_map(|(a, b)| format!("{a}/{b}")),
    ]) {
        if let Ok(parsed) = ForgeName::parse(&value) {
            prop_assert!(allowed_name(&parsed.owner) && allowed_name(&parsed.name), "{value:?}");
            prop_assert_eq!(parsed.to_string(), value);
        }
    }

    /// Any URL-ish string as `origin`: an accepted one names two safe parts
    /// and a host that is a DNS name; a refusal never shows the credentials.
    #[test]
    fn a_remote_url_yields_only_safe_names(
        scheme in proptest::sample::select(vec!["https://", "ssh://", "git://", "git@", "HTTPS://", "ftp://", "", "file://"]),
        secret in "[A-Za-z0-9]{12,20}",
        with_secret in any::<bool>(),
        host in prop_oneof!["[a-z0-9.-]{0,20}", ".{0,10}", Just("github.com".to_string())],
        port in proptest::option::of(0u32..70_000),
        owner in hostile_name(),
        name in hostile_name(),
        suffix in proptest::sample::select(vec!["", ".git", "/", ".git/", "?x=1", "#f", "/x"]),
    ) {
        let auth = if with_secret { format!("user:{secret}@") } else { String::new() };
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let url = if scheme == "git@" {
            format!("git@{host}:{owner}/{name}{suffix}")
        } else {
            format!("{scheme}{auth}{host}{port}/{owner}/{name}{suffix}")
        };
        match parse_remote_url(&url) {
            Ok(forge) => {
                prop_assert!(allowed_name(&forge.repo.owner) && allowed_name(&forge.repo.name), "{url:?}");
                prop_assert!(forge.host.len() <= 253, "{url:?}");
                prop_assert!(
                    forge.host.split('.').all(|l| (1..=63).contains(&l.len())
                        && !l.starts_with('-') && !l.ends_with('-')
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')),
                    "{url:?} gave host {:?}", forge.host
                );
            }
            Err(message) => {
                // Credentials exist only in the `scheme://user:secret@host` form.
                let credentials = with_secret && scheme.contains("://");
                prop_assert!(!credentials || !message.contains(&secret), "{message}");
            }
        }
    }
}
