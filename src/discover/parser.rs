//! Finds the pull-request and issue numbers that a commit message refers to.
//!
//! Pull requests are recognised only in the subject line, in the shapes that merge tools and
//! squash merges write there. Issues are recognised anywhere in the message, but only behind a
//! GitHub closing keyword: a bare `#N` in prose is too often a list item, a colour or a ref to
//! another tracker to be worth storing.
//!
//! Everything works on bytes, because commit messages need not be UTF-8 and one bad message
//! must not stop a walk over a whole history. The scan is driven by `memchr`/`memmem`, so a
//! message without `#`, `/issues/` or `/pull/` costs only those scans and allocates nothing.

use std::collections::HashSet;
use std::sync::LazyLock;

use memchr::memmem;

/// The forge repository a message is read against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForgeRef<'a> {
    /// The host a closing URL must name (any case).
    pub host: &'a str,
    /// The owner an `OWNER/REPO#N` or URL ref must name (any case).
    pub owner: &'a str,
    /// The repository an `OWNER/REPO#N` or URL ref must name (any case).
    pub name: &'a str,
}

/// Which rule found a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// `subject (#N)`, as written by squash merges.
    PrSuffix,
    /// `Merge pull request #N from …`, GitHub's merge commit.
    MergePr,
    /// `Auto merge of #N …`, homu / bors.
    Homu,
    /// `Merge #N #M …`, bors-ng.
    BorsNg,
    /// `Fixes #N`.
    Closes,
    /// `Fixes OWNER/REPO#N`.
    ClosesRepo,
    /// `Fixes https://HOST/OWNER/REPO/issues/N` (or `/pull/N`).
    ClosesUrl,
}

impl Pattern {
    /// Stored in the database as a hint; stable strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrSuffix => "pr-suffix",
            Self::MergePr => "merge-pr",
            Self::Homu => "homu",
            Self::BorsNg => "bors-ng",
            Self::Closes => "closes",
            Self::ClosesRepo => "closes-repo",
            Self::ClosesUrl => "closes-url",
        }
    }

    /// True for the four subject-line PR patterns.
    pub fn is_pr(self) -> bool {
        matches!(
            self,
            Self::PrSuffix | Self::MergePr | Self::Homu | Self::BorsNg
        )
    }
}

/// One number found in a message and the rule that found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// 1 to 2³¹−1, without leading zeros.
    pub number: u32,
    /// Tells a PR from an issue, and is kept as a hint.
    pub pattern: Pattern,
}

/// Appends the refs in `message` to `out` (does not clear it). Each number at most once per
/// message: the first pattern that found it wins, subject-line PR patterns first, then the
/// closing refs in message order.
///
/// Within the subject, the PR patterns are reported left to right: a leading merge pattern
/// (`Merge pull request #N`, `Auto merge of #N`, `Merge #N …`) before the trailing `(#N)`
/// groups.
pub fn refs_in_message(message: &[u8], forge: &ForgeRef<'_>, out: &mut Vec<Found>) {
    let mut sink = Sink::new(out);
    pr_refs_in_subject(subject(message), &mut sink);
    closing_refs(message, forge, &mut sink);
}

/// Forges keep issue numbers in a signed 32-bit integer; anything larger is not a ref.
const MAX_NUMBER: u32 = i32::MAX.unsigned_abs();

/// Digits in `MAX_NUMBER`: a longer run without a leading zero is out of range, so no digit
/// run is ever read past this, which keeps a megabyte of digits cheap.
const MAX_DIGITS: usize = 10;

/// GitHub's closing keywords. None is a suffix of another, so at most one can end at a given
/// position, and trying them all is a handful of short comparisons.
const KEYWORDS: [&[u8]; 9] = [
    b"close",
    b"closes",
    b"closed",
    b"fix",
    b"fixes",
    b"fixed",
    b"resolve",
    b"resolves",
    b"resolved",
];

const ISSUES_PATH: &[u8] = b"/issues/";
const PULL_PATH: &[u8] = b"/pull/";

// Building a `Finder` picks a search strategy for the needle; doing that once rather than per
// message matters over hundreds of thousands of commits.
static ISSUES_FINDER: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(ISSUES_PATH));
static PULL_FINDER: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(PULL_PATH));

/// Collects this message's refs into `out`, keeping each number once.
///
/// Messages almost always yield zero to three refs, for which scanning what this message has
/// added so far is cheapest and allocates nothing. Past `SCAN_LIMIT` refs a set takes over, so
/// a pathological message with a hundred thousand refs stays linear.
struct Sink<'o> {
    out: &'o mut Vec<Found>,
    start: usize,
    seen: Option<HashSet<u32>>,
}

const SCAN_LIMIT: usize = 16;

impl<'o> Sink<'o> {
    fn new(out: &'o mut Vec<Found>) -> Self {
        let start = out.len();
        Self {
            out,
            start,
            seen: None,
        }
    }

    fn push(&mut self, number: u32, pattern: Pattern) {
        let is_new = match &mut self.seen {
            Some(seen) => seen.insert(number),
            None => !self.out[self.start..].iter().any(|f| f.number == number),
        };
        if !is_new {
            return;
        }
        self.out.push(Found { number, pattern });
        if self.seen.is_none() && self.out.len() - self.start > SCAN_LIMIT {
            self.seen = Some(self.out[self.start..].iter().map(|f| f.number).collect());
        }
    }
}

/// The first line, without its line ending or trailing blanks, which tools and editors add
/// inconsistently and which must not hide a trailing `(#N)`.
fn subject(message: &[u8]) -> &[u8] {
    let line = memchr::memchr(b'\n', message).map_or(message, |end| &message[..end]);
    line.trim_ascii_end()
}

fn pr_refs_in_subject(subject: &[u8], sink: &mut Sink<'_>) {
    if let Some(rest) = subject.strip_prefix(b"Merge pull request #") {
        if let Some(number) = number_then_space_or_end(rest) {
            sink.push(number, Pattern::MergePr);
        }
    } else if let Some(rest) = subject.strip_prefix(b"Auto merge of #") {
        if let Some(number) = number_then_space_or_end(rest) {
            sink.push(number, Pattern::Homu);
        }
    } else if subject.starts_with(b"Merge #") {
        bors_ng(&subject[b"Merge ".len()..], sink);
    }
    pr_suffix(subject, sink);
}

/// `#N #M …` after bors-ng's `Merge `: the batch is the leading run of `#N` tokens; whatever
/// follows (`into main`, a summary) ends it.
fn bors_ng(tokens: &[u8], sink: &mut Sink<'_>) {
    for token in tokens.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
        let Some(number) = token.strip_prefix(b"#").and_then(whole_number) else {
            break;
        };
        sink.push(number, Pattern::BorsNg);
    }
}

/// The `(#N)` groups that end the subject, reported left to right.
///
/// The run is found walking backwards from the end, then read forwards, so the groups come
/// out in subject order without collecting them first. A group whose number is invalid
/// (`(#0)`, `(#007)`) is not a group, so it ends the run like any other text.
fn pr_suffix(subject: &[u8], sink: &mut Sink<'_>) {
    let mut run_start = subject.len();
    while let Some(group_start) = group_ending_at(&subject[..run_start]) {
        run_start = subject[..group_start].trim_ascii_end().len();
    }

    let mut rest = &subject[run_start..];
    loop {
        rest = rest.trim_ascii_start();
        let Some(body) = rest.strip_prefix(b"(#") else {
            break;
        };
        let Some((number, len)) = leading_number(body) else {
            break;
        };
        let Some(after) = body[len..].strip_prefix(b")") else {
            break;
        };
        sink.push(number, Pattern::PrSuffix);
        rest = after;
    }
}

/// If `text` ends with a valid `(#N)`, where that group starts.
fn group_ending_at(text: &[u8]) -> Option<usize> {
    let inner = text.strip_suffix(b")")?;
    let digits = inner
        .iter()
        .rev()
        .take(MAX_DIGITS + 1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    let (head, number) = inner.split_at(inner.len() - digits);
    whole_number(number)?;
    Some(head.strip_suffix(b"(#")?.len())
}

/// Closing refs anywhere in the message, in message order.
///
/// Each candidate is found by its anchor (`#`, `/issues/`, `/pull/`) and confirmed by looking
/// backwards from it; the three anchor streams are merged by position so the refs come out in
/// the order they are written.
fn closing_refs(message: &[u8], forge: &ForgeRef<'_>, sink: &mut Sink<'_>) {
    // An empty or blank part would make the `OWNER/REPO` forms match text that names no
    // repository, and a blank one would also break the linear-time argument in
    // `closing_keyword_before`. No real forge name contains whitespace.
    let usable = |part: &str| !part.is_empty() && !part.bytes().any(|b| b.is_ascii_whitespace());
    let repo_form = usable(forge.owner) && usable(forge.name);
    let url_form = repo_form && usable(forge.host);

    let mut hashes = memchr::memchr_iter(b'#', message).peekable();
    let mut issues = ISSUES_FINDER.find_iter(message).peekable();
    let mut pulls = PULL_FINDER.find_iter(message).peekable();
    loop {
        let next_hash = hashes.peek().copied().unwrap_or(usize::MAX);
        let next_issues = issues.peek().copied().unwrap_or(usize::MAX);
        let next_pull = pulls.peek().copied().unwrap_or(usize::MAX);
        let at = next_hash.min(next_issues).min(next_pull);
        if at == usize::MAX {
            break;
        }
        let found = if at == next_hash {
            hashes.next();
            hash_ref(message, at, forge, repo_form)
        } else if at == next_issues {
            issues.next();
            url_ref(message, at, ISSUES_PATH.len(), forge, url_form)
        } else {
            pulls.next();
            url_ref(message, at, PULL_PATH.len(), forge, url_form)
        };
        if let Some((number, pattern)) = found {
            sink.push(number, pattern);
        }
    }
}

/// A closing ref whose `#` is at `hash`: `KEYWORD #N` or `KEYWORD OWNER/REPO#N`.
fn hash_ref(
    message: &[u8],
    hash: usize,
    forge: &ForgeRef<'_>,
    repo_form: bool,
) -> Option<(u32, Pattern)> {
    // The number is the cheaper test and rules out most `#`s in ordinary text.
    let number = number_at(message, hash + 1)?;
    let (target, pattern) = match message[..hash].last() {
        Some(b) if !b.is_ascii_whitespace() => {
            if !repo_form {
                return None;
            }
            (
                owner_repo_before(message, hash, forge)?,
                Pattern::ClosesRepo,
            )
        }
        _ => (hash, Pattern::Closes),
    };
    closing_keyword_before(message, target).then_some((number, pattern))
}

/// A closing ref whose `/issues/` or `/pull/` path segment starts at `path`.
fn url_ref(
    message: &[u8],
    path: usize,
    path_len: usize,
    forge: &ForgeRef<'_>,
    url_form: bool,
) -> Option<(u32, Pattern)> {
    if !url_form {
        return None;
    }
    let number = number_at(message, path + path_len)?;
    let target = url_start_before(message, path, forge)?;
    closing_keyword_before(message, target).then_some((number, Pattern::ClosesUrl))
}

/// Where `OWNER/REPO` starts, if it ends exactly at `end`.
fn owner_repo_before(message: &[u8], end: usize, forge: &ForgeRef<'_>) -> Option<usize> {
    let at = suffix_start(message, end, forge.name.as_bytes())?;
    let at = suffix_start(message, at, b"/")?;
    suffix_start(message, at, forge.owner.as_bytes())
}

/// Where `http(s)://HOST/OWNER/REPO` starts, if it ends exactly at `end`.
fn url_start_before(message: &[u8], end: usize, forge: &ForgeRef<'_>) -> Option<usize> {
    let at = owner_repo_before(message, end, forge)?;
    let at = suffix_start(message, at, b"/")?;
    let at = suffix_start(message, at, forge.host.as_bytes())?;
    let at = suffix_start(message, at, b"://")?;
    suffix_start(message, at, b"https").or_else(|| suffix_start(message, at, b"http"))
}

/// Where `pattern` starts if `message[..end]` ends with it, ignoring ASCII case.
fn suffix_start(message: &[u8], end: usize, pattern: &[u8]) -> Option<usize> {
    let start = end.checked_sub(pattern.len())?;
    message[start..end]
        .eq_ignore_ascii_case(pattern)
        .then_some(start)
}

/// Whether a ref target starting at `target` is introduced by `KEYWORD[:] ` (at least one
/// whitespace byte, which may be a newline).
///
/// The whitespace skip has no cap and stays linear over the whole message: a target always
/// starts with a non-whitespace byte (`#`, `h` of the scheme, or the first byte of an owner,
/// which `closing_refs` guarantees is not blank), so the maximal whitespace run before one
/// target cannot reach back past another. Each run is thus walked for the few targets that
/// start right after it, never for all the targets further on.
fn closing_keyword_before(message: &[u8], target: usize) -> bool {
    let before = &message[..target];
    let trimmed = before.trim_ascii_end();
    if trimmed.len() == before.len() {
        return false;
    }
    let head = trimmed.strip_suffix(b":").unwrap_or(trimmed);
    KEYWORDS.iter().any(|keyword| ends_with_word(head, keyword))
}

/// Whether `text` ends with `word` (ASCII-case-insensitively) and `word` is not the tail of a
/// longer word, so `prefixes` does not read as `fixes`.
fn ends_with_word(text: &[u8], word: &[u8]) -> bool {
    let Some(start) = text.len().checked_sub(word.len()) else {
        return false;
    };
    text[start..].eq_ignore_ascii_case(word) && text[..start].last().is_none_or(|&b| !is_word(b))
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A number starting at `start` that ends at a word boundary, so `#12abc` is not ref 12.
fn number_at(message: &[u8], start: usize) -> Option<u32> {
    let digits = message.get(start..)?;
    let (number, len) = leading_number(digits)?;
    digits
        .get(len)
        .is_none_or(|&b| !is_word(b))
        .then_some(number)
}

/// The merge patterns require a space or the end after the number: that is how the tools
/// write it, and it keeps `#12a` or `#12:` from counting.
fn number_then_space_or_end(text: &[u8]) -> Option<u32> {
    let (number, len) = leading_number(text)?;
    matches!(text.get(len), None | Some(b' ')).then_some(number)
}

/// `text` is exactly one valid number.
fn whole_number(text: &[u8]) -> Option<u32> {
    leading_number(text).and_then(|(number, len)| (len == text.len()).then_some(number))
}

/// The valid number at the start of `text` and its length in bytes.
///
/// Valid means no leading zero (a zero-padded `#007` is not how forges write refs) and in
/// `1..=MAX_NUMBER`. At most `MAX_DIGITS + 1` bytes are read.
fn leading_number(text: &[u8]) -> Option<(u32, usize)> {
    let len = text
        .iter()
        .take(MAX_DIGITS + 1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if len == 0 || len > MAX_DIGITS || text[0] == b'0' {
        return None;
    }
    let value = text[..len]
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    u32::try_from(value)
        .ok()
        .filter(|&n| n <= MAX_NUMBER)
        .map(|n| (n, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Pattern::{BorsNg, Closes, ClosesRepo, ClosesUrl, Homu, MergePr, PrSuffix};
    use proptest::prelude::*;

    const FORGE: ForgeRef<'static> = ForgeRef {
        host: "github.com",
        owner: "octo-org",
        name: "widget",
    };

    fn refs(message: &[u8]) -> Vec<(u32, Pattern)> {
        let mut out = Vec::new();
        refs_in_message(message, &FORGE, &mut out);
        out.iter().map(|f| (f.number, f.pattern)).collect()
    }

    fn numbers(message: &[u8]) -> Vec<u32> {
        refs(message).into_iter().map(|(n, _)| n).collect()
    }

    /// A message and the refs it must yield, in order.
    type Case<'a> = (&'a [u8], &'a [(u32, Pattern)]);

    #[track_caller]
    fn check(cases: &[Case<'_>]) {
        for &(message, expected) in cases {
            assert_eq!(
                refs(message),
                expected,
                "message: {:?}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn pr_suffix() {
        check(&[
            (b"fix: x (#12)", &[(12, PrSuffix)]),
            (b"x (#12) (#34)", &[(12, PrSuffix), (34, PrSuffix)]),
            (b"x (#12)(#34)", &[(12, PrSuffix), (34, PrSuffix)]),
            (b"x (#12)\t  (#34)", &[(12, PrSuffix), (34, PrSuffix)]),
            (b"x (#12)  \t", &[(12, PrSuffix)]),
            (b"x (#12)\r", &[(12, PrSuffix)]),
            (b"x (#12) \r\n\r\nbody\r\n", &[(12, PrSuffix)]),
            (b"x (#12)\n\nbody", &[(12, PrSuffix)]),
            (b"(#12)", &[(12, PrSuffix)]),
            (b"x(#12)", &[(12, PrSuffix)]),
            (b"x (#1)", &[(1, PrSuffix)]),
            (b"x (#2147483647)", &[(2_147_483_647, PrSuffix)]),
            (b"x (#12) (#12)", &[(12, PrSuffix)]),
        ]);
    }

    #[test]
    fn pr_suffix_near_misses() {
        check(&[
            (b"(#12) x", &[]),
            (b"x (#12) y", &[]),
            (b"x (# 12)", &[]),
            (b"x (#12 )", &[]),
            (b"x (#12a)", &[]),
            (b"x (#a12)", &[]),
            (b"x #12", &[]),
            (b"x (12)", &[]),
            (b"x #(12)", &[]),
            (b"x ((#12))", &[]),
            (b"x (#)", &[]),
            (b"x (#0)", &[]),
            (b"x (#007)", &[]),
            (b"x (#2147483648)", &[]),
            (b"x (#99999999999999999999)", &[]),
            // Only the subject line counts.
            (b"subject\n\nbody (#12)", &[]),
            (b"subject\r\nx (#12)", &[]),
        ]);
    }

    #[test]
    fn pr_suffix_invalid_group_ends_the_run() {
        check(&[
            (b"x (#12) (#0)", &[]),
            (b"x (#0) (#12)", &[(12, PrSuffix)]),
            (b"x (#12) (#12a) (#34)", &[(34, PrSuffix)]),
        ]);
    }

    #[test]
    fn merge_pull_request() {
        check(&[
            (
                b"Merge pull request #42 from octo-org/feature",
                &[(42, MergePr)],
            ),
            (b"Merge pull request #42", &[(42, MergePr)]),
            (b"Merge pull request #42 \r\n\r\nTitle", &[(42, MergePr)]),
            (b"Merge pull request #42from x", &[]),
            (b"Merge pull request #42: x", &[]),
            (b"Merge pull request #42\tfrom x", &[]),
            (b"Merge pull request #042 from x", &[]),
            (b"Merge pull request #0 from x", &[]),
            (b"Merge pull request # 42 from x", &[]),
            (b"merge pull request #42 from x", &[]),
            (b" Merge pull request #42 from x", &[]),
            (b"Revert \"Merge pull request #42 from x\"", &[]),
        ]);
    }

    #[test]
    fn homu() {
        check(&[
            (
                b"Auto merge of #1234 - user:branch, r=someone",
                &[(1234, Homu)],
            ),
            (b"Auto merge of #1234", &[(1234, Homu)]),
            (b"Auto merge of #12x - y", &[]),
            (b"Auto merge of #12, #13", &[]),
            (b"auto merge of #12", &[]),
            (b"Auto merge of 12", &[]),
        ]);
    }

    #[test]
    fn bors_ng() {
        check(&[
            (b"Merge #12", &[(12, BorsNg)]),
            (
                b"Merge #12 #34 #56",
                &[(12, BorsNg), (34, BorsNg), (56, BorsNg)],
            ),
            (b"Merge #12  #34", &[(12, BorsNg), (34, BorsNg)]),
            (b"Merge #12 into main", &[(12, BorsNg)]),
            (b"Merge #12 into #34", &[(12, BorsNg)]),
            (
                b"Merge #12 #34\n\n12: Fix a thing",
                &[(12, BorsNg), (34, BorsNg)],
            ),
            (b"Merge #12 #12", &[(12, BorsNg)]),
            (b"Merge #12 #0 #34", &[(12, BorsNg)]),
            (b"Merge #12, #34", &[]),
            (b"Merge #12a", &[]),
            (b"Merge #", &[]),
            (b"Merge branch 'x'", &[]),
            (b"Merge branch 'fix-12' into main", &[]),
            (b"Merge  #12", &[]),
            (b"merge #12", &[]),
        ]);
    }

    #[test]
    fn subject_patterns_combine() {
        check(&[
            (b"Merge #12 (#34)", &[(12, BorsNg), (34, PrSuffix)]),
            (b"Merge pull request #5 from a/b (#5)", &[(5, MergePr)]),
            (
                b"Merge pull request #5 from a/b (#6)",
                &[(5, MergePr), (6, PrSuffix)],
            ),
        ]);
    }

    #[test]
    fn closing_keywords_in_any_case() {
        for keyword in KEYWORDS {
            let lower = String::from_utf8(keyword.to_vec()).unwrap();
            let mut title = lower.clone();
            title[..1].make_ascii_uppercase();
            for word in [lower.clone(), lower.to_ascii_uppercase(), title] {
                let message = format!("subject\n\n{word} #3");
                assert_eq!(refs(message.as_bytes()), [(3, Closes)], "{message:?}");
            }
        }
    }

    #[test]
    fn closes() {
        check(&[
            (b"Fixes #3", &[(3, Closes)]),
            (b"fix crash, fixes #3", &[(3, Closes)]),
            (b"subject\n\nfixes #3", &[(3, Closes)]),
            (b"subject\n\n(fixes #3)", &[(3, Closes)]),
            (b"subject\n\n-fixes #3", &[(3, Closes)]),
            (b"subject\n\n#fixes #3", &[(3, Closes)]),
            (b"Fixes: #9", &[(9, Closes)]),
            (b"Closes:  #9", &[(9, Closes)]),
            (b"Fixes\t#9", &[(9, Closes)]),
            (b"Fixes:\t#9", &[(9, Closes)]),
            (b"Fixes\n#9", &[(9, Closes)]),
            (b"Fixes \t \r\n  #9", &[(9, Closes)]),
            (b"Fixes #9.", &[(9, Closes)]),
            (b"Fixes #9,", &[(9, Closes)]),
            (b"Fixes #9)", &[(9, Closes)]),
            (b"Fixes #9#10", &[(9, Closes)]),
            (b"Fixes #9\xc3\xa9", &[(9, Closes)]),
            (b"fixes fixes #3", &[(3, Closes)]),
            (b"Fixes #1", &[(1, Closes)]),
            (b"Fixes #2147483647", &[(2_147_483_647, Closes)]),
        ]);
    }

    #[test]
    fn closes_near_misses() {
        check(&[
            (b"x\n\nprefixes #3", &[]),
            (b"x\n\nsuffixed #3", &[]),
            (b"x\n\nfixes_ #3", &[]),
            (b"x\n\n_fixes #3", &[]),
            (b"x\n\n2fixes #3", &[]),
            (b"x\n\nfixesx #3", &[]),
            (b"Fixes#9", &[]),
            (b"Fixes:#9", &[]),
            (b"Fixes : #9", &[]),
            (b"Fixes:: #9", &[]),
            (b"Fixes # 9", &[]),
            (b"Fixes #9abc", &[]),
            (b"Fixes #9_", &[]),
            (b"Fixes issue #9", &[]),
            (b"Fixes #", &[]),
            (b"Fixes #0", &[]),
            (b"Fixes #007", &[]),
            (b"Fixes #2147483648", &[]),
            (b"Fixes #99999999999999999999", &[]),
            (b"subject\n\nSee #4 for details.", &[]),
            (b"subject\n\n#4", &[]),
            (b"subject\n\n- #4: flaky test", &[]),
            (b"Fixes", &[]),
            (b"#", &[]),
            (b"", &[]),
        ]);
    }

    #[test]
    fn each_closing_ref_needs_its_own_keyword() {
        check(&[
            (b"Fixes #1, #2", &[(1, Closes)]),
            (b"Fixes #1 #2", &[(1, Closes)]),
            (b"Fixes #1 and fixes #2", &[(1, Closes), (2, Closes)]),
            (
                b"Fixes #1, closes #2, resolves #3",
                &[(1, Closes), (2, Closes), (3, Closes)],
            ),
            (b"x\n\nCloses #2\nFixes #1\n", &[(2, Closes), (1, Closes)]),
            (b"x\n\nFixes #1\nFixes #1\n", &[(1, Closes)]),
        ]);
    }

    #[test]
    fn closes_repo() {
        check(&[
            (b"Fixes octo-org/widget#5", &[(5, ClosesRepo)]),
            (b"Fixes: octo-org/widget#5.", &[(5, ClosesRepo)]),
            (b"Fixes Octo-Org/WIDGET#5", &[(5, ClosesRepo)]),
            (b"Fixes other/widget#5", &[]),
            (b"Fixes octo-org/other#5", &[]),
            (b"Fixes octo-org/widget2#5", &[]),
            (b"Fixes xocto-org/widget#5", &[]),
            (b"Fixes my-octo-org/widget#5", &[]),
            (b"Fixes octo-org/widget #5", &[]),
            (b"Fixes octo-org/widget#5x", &[]),
            (b"Fixes octo-org#5", &[]),
            (b"Fixes widget#5", &[]),
        ]);
    }

    #[test]
    fn closes_url() {
        check(&[
            (
                b"Fixes https://github.com/octo-org/widget/issues/7",
                &[(7, ClosesUrl)],
            ),
            (
                b"Fixes https://github.com/octo-org/widget/pull/7",
                &[(7, ClosesUrl)],
            ),
            (
                b"Fixes http://github.com/octo-org/widget/issues/7",
                &[(7, ClosesUrl)],
            ),
            (
                b"Fixes HTTPS://GitHub.COM/Octo-Org/Widget/issues/7",
                &[(7, ClosesUrl)],
            ),
            (
                b"Fixes https://github.com/octo-org/widget/issues/7/",
                &[(7, ClosesUrl)],
            ),
            (
                b"Fixes https://github.com/octo-org/widget/issues/7#issuecomment-123",
                &[(7, ClosesUrl)],
            ),
            (
                b"(Fixes https://github.com/octo-org/widget/issues/7)",
                &[(7, ClosesUrl)],
            ),
            (
                b"Fixes https://github.com/octo-org/widget/issues/7.",
                &[(7, ClosesUrl)],
            ),
            (
                b"Resolves:\nhttps://github.com/octo-org/widget/pull/7/files",
                &[(7, ClosesUrl)],
            ),
        ]);
    }

    #[test]
    fn closes_url_near_misses() {
        check(&[
            (b"Fixes https://github.com/other/widget/issues/7", &[]),
            (b"Fixes https://github.com/octo-org/other/issues/7", &[]),
            (b"Fixes https://gitlab.com/octo-org/widget/issues/7", &[]),
            (
                b"Fixes https://example.github.com/octo-org/widget/issues/7",
                &[],
            ),
            (b"Fixes https://github.com/x/octo-org/widget/issues/7", &[]),
            (b"Fixes github.com/octo-org/widget/issues/7", &[]),
            (b"Fixes ftp://github.com/octo-org/widget/issues/7", &[]),
            (b"Fixes <https://github.com/octo-org/widget/issues/7>", &[]),
            (b"Fixes https://github.com/octo-org/widget/issues/7abc", &[]),
            (b"Fixes https://github.com/octo-org/widget/issues/007", &[]),
            (b"Fixes https://github.com/octo-org/widget/issues/", &[]),
            (b"Fixes https://github.com/octo-org/widget/issues/x/7", &[]),
            (b"Fixes https://github.com/octo-org/widget/pulls/7", &[]),
            (
                b"Fixes https://github.com/octo-org/widget/blob/main/issues/7",
                &[],
            ),
            (b"See https://github.com/octo-org/widget/issues/7", &[]),
            (b"Fixeshttps://github.com/octo-org/widget/issues/7", &[]),
        ]);
    }

    #[test]
    fn closing_refs_keep_message_order_and_dedup() {
        check(&[
            (
                b"x\n\nFixes https://github.com/octo-org/widget/issues/4 and closes #3",
                &[(4, ClosesUrl), (3, Closes)],
            ),
            (
                b"x\n\nFixes #3\nCloses https://github.com/octo-org/widget/issues/3",
                &[(3, Closes)],
            ),
            (
                b"x\n\nFixes octo-org/widget#3, fixes #3, fixes #4",
                &[(3, ClosesRepo), (4, Closes)],
            ),
            (
                b"x\n\nFixes https://github.com/octo-org/widget/pull/2 fixes #1 \
                  fixes https://github.com/octo-org/widget/issues/3",
                &[(2, ClosesUrl), (1, Closes), (3, ClosesUrl)],
            ),
        ]);
    }

    #[test]
    fn pr_patterns_win_over_closing_refs() {
        check(&[
            (b"Fixes #12 (#12)", &[(12, PrSuffix)]),
            (
                b"Fix it (#12)\n\nFixes #12\nFixes #13",
                &[(12, PrSuffix), (13, Closes)],
            ),
            (
                b"Merge pull request #7 from a/b\n\nFixes #7",
                &[(7, MergePr)],
            ),
            (b"Fixes #3 (#4)", &[(4, PrSuffix), (3, Closes)]),
        ]);
    }

    #[test]
    fn crlf_messages() {
        check(&[(
            b"subject (#1)\r\n\r\nFixes #2\r\nCloses: #3\r\n",
            &[(1, PrSuffix), (2, Closes), (3, Closes)],
        )]);
    }

    #[test]
    fn invalid_utf8_around_refs() {
        check(&[
            (
                b"\xff\xfe (#8)\n\n\xffFixes #9\xfe",
                &[(8, PrSuffix), (9, Closes)],
            ),
            (b"\xc3(fixes\xa0#9)", &[]),
            (b"\x80 closes #9\x80\x80", &[(9, Closes)]),
            (b"Merge #5 \xff", &[(5, BorsNg)]),
        ]);
    }

    #[test]
    fn unusable_forge_parts_disable_the_repo_forms() {
        let forge = ForgeRef {
            host: "",
            owner: "",
            name: "",
        };
        let mut out = Vec::new();
        refs_in_message(
            b"Fixes /#1 Fixes https:////issues/2 fixes #3",
            &forge,
            &mut out,
        );
        assert_eq!(
            out,
            [Found {
                number: 3,
                pattern: Closes
            }]
        );
    }

    #[test]
    fn appends_without_clearing_and_dedups_only_within_a_message() {
        let earlier = Found {
            number: 1,
            pattern: Homu,
        };
        let mut out = vec![earlier];
        refs_in_message(b"x (#1)\n\nFixes #1", &FORGE, &mut out);
        assert_eq!(
            out,
            [
                earlier,
                Found {
                    number: 1,
                    pattern: PrSuffix
                }
            ]
        );
    }

    #[test]
    fn pattern_strings_and_kinds() {
        let all = [
            PrSuffix, MergePr, Homu, BorsNg, Closes, ClosesRepo, ClosesUrl,
        ];
        let strings: Vec<_> = all.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            strings,
            [
                "pr-suffix",
                "merge-pr",
                "homu",
                "bors-ng",
                "closes",
                "closes-repo",
                "closes-url"
            ]
        );
        let pr: Vec<_> = all.iter().map(|p| p.is_pr()).collect();
        assert_eq!(pr, [true, true, true, true, false, false, false]);
    }

    #[test]
    fn ten_megabyte_message() {
        let mut message = b"subject\n\n".to_vec();
        message.extend(b"some words of a long body, no refs here\n".repeat(256 * 1024));
        assert!(message.len() >= 10 << 20);
        message.extend(b"Fixes #5");
        assert_eq!(refs(&message), [(5, Closes)]);
    }

    #[test]
    fn adversarial_messages() {
        const MB: usize = 1 << 20;
        assert!(refs(&b"fixes ".repeat(MB / 6)).is_empty());
        let mut fixes = b"fixes ".repeat(MB / 6);
        fixes.extend(b"#7");
        assert_eq!(refs(&fixes), [(7, Closes)]);
        assert_eq!(refs(&b"(#1)".repeat(MB / 4)), [(1, PrSuffix)]);
        assert_eq!(refs(&b"(#1) ".repeat(MB / 5)), [(1, PrSuffix)]);
        assert!(refs(&b"#".repeat(MB)).is_empty());
        assert!(refs(&b"1".repeat(MB)).is_empty());
        let mut digits = b"Fixes #".to_vec();
        digits.extend(b"1".repeat(MB));
        assert!(refs(&digits).is_empty());
        let mut group = b"x (#".to_vec();
        group.extend(b"1".repeat(MB));
        group.push(b')');
        assert!(refs(&group).is_empty());
        let mut spaced = b"Fixes".to_vec();
        spaced.extend(b" ".repeat(MB));
        spaced.extend(b"#3");
        assert_eq!(refs(&spaced), [(3, Closes)]);
        let mut spaces_then_hashes = b"Fixes".to_vec();
        spaces_then_hashes.extend(b" ".repeat(MB));
        spaces_then_hashes.extend(b"#3".repeat(MB / 2));
        assert_eq!(refs(&spaces_then_hashes), [(3, Closes)]);
        assert!(refs(&b"Merge #1 ".repeat(MB / 9)).len() == 1);
        assert!(refs(&b"/issues/1 /pull/1 ".repeat(MB / 18)).is_empty());
        let url = b"fixes https://github.com/octo-org/widget/issues/1 ";
        assert_eq!(refs(&url.repeat(MB / url.len())), [(1, ClosesUrl)]);
    }

    #[test]
    fn many_distinct_refs_are_all_kept_once() {
        let count = 100_000;
        let mut message = b"x ".to_vec();
        for n in 1..=count {
            message.extend(format!("(#{n})").as_bytes());
        }
        message.extend(b"\n\n");
        for n in (1..=count).rev() {
            message.extend(format!("fixes #{n} ").as_bytes());
        }
        message.extend(format!("fixes #{} ", count + 1).as_bytes());
        let found = refs(&message);
        assert_eq!(found.len(), count as usize + 1);
        assert!(
            found[..count as usize]
                .iter()
                .zip(1..)
                .all(|(&(n, p), want)| n == want && p == PrSuffix)
        );
        assert_eq!(found[count as usize], (count + 1, Closes));
    }

    fn safe_word() -> impl Strategy<Value = String> {
        "[a-z]{1,10}".prop_filter("no closing keyword", |w| {
            !KEYWORDS
                .iter()
                .any(|k| k.eq_ignore_ascii_case(w.as_bytes()))
        })
    }

    fn fragment() -> impl Strategy<Value = Vec<u8>> {
        let pieces: Vec<&'static [u8]> = vec![
            b"#",
            b"#",
            b"#",
            b"(",
            b")",
            b" ",
            b" ",
            b"\t",
            b"\n",
            b"\r",
            b":",
            b"/",
            b"_",
            b"0",
            b"1",
            b"7",
            b"9",
            b"12",
            b"2147483647",
            b"2147483648",
            b"fixes",
            b"Closes",
            b"resolved",
            b"pre",
            b"Merge ",
            b"Merge pull request ",
            b"Auto merge of ",
            b"octo-org/widget",
            b"https://github.com/octo-org/widget",
            b"/issues/",
            b"/pull/",
            b"\xff",
            b"x",
        ];
        prop_oneof![
            6 => proptest::sample::select(pieces).prop_map(<[u8]>::to_vec),
            1 => proptest::collection::vec(any::<u8>(), 1..4),
        ]
    }

    fn alphabet_message() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(fragment(), 0..64).prop_map(|parts| parts.concat())
    }

    fn any_message() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            alphabet_message(),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_and_numbers_are_in_range(message in any_message()) {
            let mut out = Vec::new();
            refs_in_message(&message, &FORGE, &mut out);
            for found in &out {
                prop_assert!((1..=2_147_483_647).contains(&found.number));
            }
            let mut numbers: Vec<_> = out.iter().map(|f| f.number).collect();
            numbers.sort_unstable();
            numbers.dedup();
            prop_assert_eq!(numbers.len(), out.len());
        }

        #[test]
        fn result_depends_only_on_message_and_forge(
            message in any_message(),
            earlier in proptest::collection::vec((1u32..100, 0usize..7), 1..5),
        ) {
            let all = [PrSuffix, MergePr, Homu, BorsNg, Closes, ClosesRepo, ClosesUrl];
            let earlier: Vec<_> = earlier
                .into_iter()
                .map(|(number, p)| Found { number, pattern: all[p] })
                .collect();

            let mut fresh = Vec::new();
            refs_in_message(&message, &FORGE, &mut fresh);
            let mut again = Vec::new();
            refs_in_message(&message, &FORGE, &mut again);
            prop_assert_eq!(&fresh, &again);

            let mut appended = earlier.clone();
            refs_in_message(&message, &FORGE, &mut appended);
            prop_assert_eq!(&appended[..earlier.len()], &earlier[..]);
            prop_assert_eq!(&appended[earlier.len()..], &fresh[..]);
        }

        #[test]
        fn squash_subject_yields_its_pr(
            words in proptest::collection::vec(safe_word(), 1..8),
            number in 1u32..=2_147_483_647,
        ) {
            let message = format!("{} (#{number})", words.join(" "));
            prop_assert_eq!(numbers(message.as_bytes()), [number]);
            prop_assert_eq!(refs(message.as_bytes()), [(number, PrSuffix)]);
        }

        #[test]
        fn body_closing_ref_yields_its_issue(
            words in proptest::collection::vec(safe_word(), 1..8),
            number in 1u32..=2_147_483_647,
        ) {
            let message = format!("{}\n\nFixes #{number}", words.join(" "));
            prop_assert_eq!(refs(message.as_bytes()), [(number, Closes)]);
        }
    }
}
