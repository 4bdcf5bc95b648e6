#!/usr/bin/env python3
"""Generate a synthetic git history for the patina-forge discovery benchmark.

    gen-repo.py OUT [COMMITS] [SEED]          # new repository, 300000 commits by default
    gen-repo.py --append K OUT [SEED]         # K more commits on top of HEAD
    gen-repo.py OUT --append                  # 100 more commits, seed 2
    gen-repo.py --verify OUT                  # check planted.json with a reference miner

The whole history is streamed into one `git fast-import` (no per-commit git
invocation), then packed the way a real clone is (`git repack -adf` plus a
commit-graph), because a loose or fast-import-packed repository would make
every walker look slower or faster than it is in practice.

Shape: a first-parent main line with squash-style commits, topic branches merged
back GitHub-style, homu-style and bors-ng-style (a few bors batches are octopus
merges), and two unrelated root histories merged in. Topic branches fork from a
main-line commit some way back and are dated between the fork point and the
main-line tip they join, i.e. OLDER than that tip: a walk that stops at the
first commit older than the last recorded tip misses them.

Messages mix every ref pattern patina-forge mines with near misses that it must
not mine. True refs (as src/discover/parser.rs reads them):
  subject line only   trailing `(#N)` groups: `fix: parser (#123)`, `x (#12) (#34)`;
                      `Merge pull request #N from user/branch`;
                      `Auto merge of #N - user:branch, r=reviewer` (homu);
                      `Merge #N #M` (bors-ng; batches are octopus merges)
  anywhere            behind a closing keyword (fix/fixes/fixed, close/closes/closed,
                      resolve/resolves/resolved, any case, optional colon):
                      `#N`, `acme/widget#N`, `https://github.com/acme/widget/issues/N`
                      or `.../pull/N`
Near misses: a keyword inside a word (`prefixes #3`), `(#N)` not ending the
subject, `#0`, `#2147483648`, `(# 12)`, no keyword (`see #5`, a bare
`acme/widget#N` or URL), another repository (`other/repo#4`, `acme/widgets#4`,
`notacme/widget#4`), `#` not followed by a number. True refs use numbers in [TRUE_MIN, NEAR_BIG); near misses use
numbers outside it, so any false positive shows up as an extra number in the db.
OUT/planted.json lists every true ref number planted (what the db must hold for
the forge repo) plus shape statistics. Same seed, same history, same hashes.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time

FORGE = "acme/widget"
TRUE_MIN = 100  # true ref numbers are >= TRUE_MIN ...
NEAR_BIG = 1_000_000  # ... and < NEAR_BIG; near misses use 1..99 or >= NEAR_BIG
EPOCH = 1_325_376_000  # 2012-01-01: main line starts here
P_REF = 0.17  # share of ordinary commits with a true ref (~30% overall with merges)
P_NEAR = 0.10  # share of ordinary commits with only a near miss
P_BOTH = 0.03  # share that carry a true ref AND a near miss

# --------------------------------------------------------------------------
# vocabulary: enough variety that messages look like a real project's log
# --------------------------------------------------------------------------
TYPES = ["fix", "feat", "chore", "docs", "refactor", "perf", "test", "build", "ci", "style"]
SCOPES = ["parser", "cli", "db", "walker", "config", "forge", "http", "cache", "index",
          "store", "auth", "api", "ui", "log", "sync", "deps", "release", "core", "net", "fs"]
VERBS = ["handle", "avoid", "support", "remove", "add", "rework", "simplify", "document",
         "speed up", "guard against", "reject", "accept", "cache", "stream", "split",
         "rename", "deprecate", "validate", "retry", "clean up", "bump", "inline", "test"]
OBJECTS = ["empty input", "trailing newlines", "unicode paths", "large packs", "shallow clones",
           "merge commits", "the config loader", "timeouts", "rate limits", "stale locks",
           "duplicate entries", "missing tags", "octopus merges", "detached HEAD",
           "symlinked worktrees", "non-UTF-8 messages", "the retry loop", "CRLF line endings",
           "concurrent writers", "the progress bar", "error messages", "the schema migration",
           "long subjects", "annotated tags", "the token store", "submodule paths"]
QUALIFIERS = ["", "", "", " on Windows", " in CI", " when offline", " for bare repos",
              " during shutdown", " under load", " with an empty db", " after rebase",
              " in the fast path", " (again)", " for real this time", " behind a proxy"]
WORDS = ("the a an this that it we now when if so but and or not only also still then "
         "before after while because without with into from over under between across "
         "parser walker commit message tree blob pack index cache lock file path config "
         "value entry table row column query token request response header buffer limit "
         "error warning panic retry timeout deadline budget thread worker queue channel "
         "read write flush sync open close create delete update insert select scan "
         "fast slow small large empty full stale fresh broken fixed missing extra "
         "returns checks makes keeps drops takes gives moves skips walks loads stores "
         "user maintainer reviewer release version branch tag remote upstream origin "
         "should could would must may never always sometimes already again instead "
         "memory allocation copy borrow lifetime iterator closure trait struct enum "
         "test fixture benchmark profile flamegraph regression baseline target").split()
NAMES = ["Ada Lovelace", "Grace Hopper", "Linus Torvalds", "Junio Hamano", "José Valim",
         "Zoë Keating", "Ken Thompson", "Barbara Liskov", "Niklaus Wirth", "Edsger Dijkstra",
         "Margaret Hamilton", "Dennis Ritchie", "Frances Allen", "Donald Knuth", "Radia Perlman",
         "Sebastian Thiel", "Alex Crichton", "Carol Nichols", "Niko Matsakis", "Mara Bos",
         "Björn Stroustrup", "Anders Hejlsberg", "Yukihiro Matsumoto", "Guido van Rossum",
         "Łukasz Langa", "Ana Hobden", "Jane Lusby", "Ashley Williams", "Steve Klabnik",
         "Without Boats", "Manish Goregaokar", "Esteban Küber", "Oli Scherer", "Ralf Jung"]
HANDLES = ["ada", "ghopper", "torvalds", "gitster", "josevalim", "zoe", "ken", "bliskov",
           "nwirth", "ewd", "mhamilton", "dmr", "fallen", "dek", "radia", "byron", "alexcrichton",
           "carols10cents", "nikomatsakis", "m-ou-se", "bjarne", "ahejlsberg", "matz", "gvanrossum",
           "ambv", "hoverbear", "yaahc", "ashleygwilliams", "steveklabnik", "withoutboats",
           "manishearth", "estebank", "oli-obk", "RalfJung", "bors", "homu"]
BRANCH_WORDS = ["fix", "feature", "topic", "wip", "perf", "docs", "refactor", "bugfix", "hotfix"]
KEYWORDS = ["Fixes", "fixes", "Fix", "fix", "Fixed", "fixed", "FIXES", "Closes", "closes",
            "Close", "close", "Closed", "closed", "Resolves", "resolves", "Resolve", "resolve",
            "Resolved", "resolved"]
# words that END with a closing keyword: not a keyword (word boundary required)
KEYWORD_SUFFIXED = ["prefixes", "suffixes", "affixes", "infixes", "discloses", "encloses",
                    "unresolved", "unfixed", "postfixes", "recloses"]
OTHER_REPOS = ["other/repo", "rust-lang/rust", "acme/widgets", "acme/widget-legacy",
               "notacme/widget", "GitoxideLabs/gitoxide"]


def pick_number_near(rng):
    """A number for a near miss: outside [TRUE_MIN, NEAR_BIG) so a false positive
    is visible as an extra row."""
    if rng.random() < 0.7:
        return rng.randint(1, TRUE_MIN - 1)
    return rng.randint(NEAR_BIG, 9_999_999)


class Messages:
    """Builds commit messages and records which ref numbers were planted."""

    def __init__(self, rng, next_number=TRUE_MIN, planted=None):
        self.rng = rng
        self.next_number = next_number
        self.planted = planted if planted is not None else set()
        self.with_ref = 0
        self.with_near = 0
        # A pool of body lines: assembling every line word by word for 300k
        # commits would dominate generation time; sampling a pool is as realistic.
        self.body_pool = [self._body_line() for _ in range(8192)]

    # ---- numbers -------------------------------------------------------
    def new_number(self):
        """A fresh issue/PR number; numbers grow over time like on a forge."""
        self.next_number += self.rng.randint(1, 3)
        assert self.next_number < NEAR_BIG, "ran out of true ref numbers"
        return self.next_number

    def any_number(self):
        """Mostly a recent number, sometimes an old one (refs to old issues)."""
        rng = self.rng
        if rng.random() < 0.6 or self.next_number <= TRUE_MIN + 10:
            return self.new_number()
        lo = TRUE_MIN if rng.random() < 0.2 else max(TRUE_MIN, self.next_number - 2000)
        return rng.randint(lo, self.next_number)

    def plant(self, n):
        self.planted.add(n)
        return n

    # ---- plain text ----------------------------------------------------
    def _body_line(self):
        rng = self.rng
        words = rng.choices(WORDS, k=rng.randint(5, 12))
        line = " ".join(words)
        return line[0].upper() + line[1:] + rng.choice([".", ".", ",", ":", ""])

    def subject(self):
        rng = self.rng
        s = f"{rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(QUALIFIERS)}"
        r = rng.random()
        if r < 0.55:
            return f"{rng.choice(TYPES)}({rng.choice(SCOPES)}): {s}"
        if r < 0.75:
            return f"{rng.choice(SCOPES)}: {s}"
        return s[0].upper() + s[1:]

    def body(self):
        """0-5 body lines mostly; a few long bodies (changelogs, squash lists)."""
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            return []
        if r < 0.97:
            return rng.sample(self.body_pool, rng.randint(1, 5))
        lines = rng.sample(self.body_pool, rng.randint(3, 8)) + [""]
        lines += ["* " + l for l in rng.sample(self.body_pool, rng.randint(10, 60))]
        return lines

    def trailers(self):
        rng = self.rng
        out = []
        if rng.random() < 0.15:
            out.append(f"Signed-off-by: {self.person()}")
        if rng.random() < 0.05:
            out.append(f"Co-authored-by: {self.person()}")
        if rng.random() < 0.03:
            out.append(f"Reviewed-by: {self.person()}")
        return out

    def person(self):
        i = self.rng.randrange(len(NAMES))
        return f"{NAMES[i]} <{HANDLES[i]}@example.com>"

    def handle(self):
        return self.rng.choice(HANDLES[:-2])

    def branch(self):
        rng = self.rng
        return f"{rng.choice(BRANCH_WORDS)}/{rng.choice(SCOPES)}-{rng.randint(1, 999)}"

    # ---- ref snippets ---------------------------------------------------
    def true_anywhere(self):
        """A body line (or part of one) with a true ref: a closing keyword, then
        `#N`, `OWNER/NAME#N` or a URL to the forge repo's issue or pull request.
        (A bare `OWNER/NAME#N` or URL without a keyword is a near miss.)"""
        rng = self.rng
        n = self.plant(self.any_number())
        kw = rng.choice(KEYWORDS)
        colon = ":" if rng.random() < 0.15 else ""
        tail = rng.choice(["", "", "", ".", ","])
        r = rng.random()
        if r < 0.35:
            return f"{kw}{colon} #{n}{tail}"
        if r < 0.5:
            return f"This {kw.lower()} #{n} by {rng.choice(self.body_pool).lower()}"
        if r < 0.6:
            return f"{kw} #{n} and {rng.choice(KEYWORDS).lower()} #{self.plant(self.any_number())}"
        if r < 0.8:
            return rng.choice([f"{kw}{colon} {FORGE}#{n}{tail}",
                               f"This {kw.lower()} {FORGE}#{n} upstream{tail}"])
        kind = "issues" if rng.random() < 0.5 else "pull"
        url = f"https://github.com/{FORGE}/{kind}/{n}"
        return rng.choice([f"{kw}{colon} {url}", f"{kw} {url}{tail}",
                           f"This {kw.lower()} {url} as discussed."])

    def true_subject_suffix(self):
        """' (#N)' or several groups ' (#N) (#M)' ending the subject (squash/backport)."""
        groups = 1 if self.rng.random() < 0.85 else self.rng.randint(2, 3)
        return "".join(f" (#{self.plant(self.any_number())})" for _ in range(groups))

    def near_miss(self, where):
        """Text that resembles a ref but must not be mined.

        where='subject' returns a whole replacement subject suffix,
        where='body' returns a body line."""
        rng = self.rng
        m = pick_number_near(rng)
        if where == "subject":
            return rng.choice([
                f" (#{m}) trailing",            # PR group not at the end of the subject
                f" (# {m})",                    # space after '#'
                " (#0)",                        # zero is not a ref
                " (#2147483648)",              # overflows i32
                f" (#{m}) and more",
            ])
        kw = rng.choice(KEYWORDS)
        return rng.choice([
            f"This {rng.choice(KEYWORD_SUFFIXED)} #{m} in the table",   # keyword inside a word
            f"see #{m}",                                                # no keyword
            f"Related to #{m}, cf. #{pick_number_near(rng)}",
            f"{kw} #0",
            f"{kw} #2147483648",
            f"{kw} # {m}",
            f"{kw} {rng.choice(OTHER_REPOS)}#{m}",                     # another repository
            f"Upstream: {rng.choice(OTHER_REPOS)}#{m}",
            f"https://github.com/{rng.choice(OTHER_REPOS)}/issues/{m}",
            f"{kw} https://github.com/{rng.choice(OTHER_REPOS)}/pull/{m}",
            f"https://github.com/{FORGE}/commit/{rng.getrandbits(160):040x}",
            f"Follow-up to {FORGE}#{m}.",                                # no keyword
            f"See also {FORGE}#{m} for context",
            f"See https://github.com/{FORGE}/issues/{m}",
            f"Discussed in https://github.com/{FORGE}/pull/{m} and elsewhere.",
            f"Colour #{m} is the new default; use `#[derive(Debug)]`",
        ])

    # ---- whole messages ------------------------------------------------
    def ordinary(self, force_ref=False):
        """A regular commit (main-line squash commit or topic-branch commit)."""
        rng = self.rng
        subject = self.subject()
        body = self.body()
        r = 0.0 if force_ref else rng.random()
        has_ref = r < P_REF
        has_near = (P_REF <= r < P_REF + P_NEAR) or (has_ref and rng.random() < P_BOTH / P_REF)
        extra = []
        if has_ref:
            self.with_ref += 1
            if rng.random() < 0.45:
                subject += self.true_subject_suffix()
            else:
                extra.append(self.true_anywhere())
            if rng.random() < 0.1:
                extra.append(self.true_anywhere())
        if has_near:
            self.with_near += 1
            if not has_ref and rng.random() < 0.3:
                subject += self.near_miss("subject")
            else:
                extra.append(self.near_miss("body"))
        return self.assemble(subject, body, extra)

    def assemble(self, subject, body, extra, trailers=True):
        rng = self.rng
        lines = list(body)
        for e in extra:  # refs go at the end (usual) or somewhere in the body
            if lines and rng.random() < 0.4:
                lines.insert(rng.randrange(len(lines) + 1), e)
            else:
                lines.append(e)
        tr = self.trailers() if trailers else []
        msg = subject + "\n"
        if lines:
            msg += "\n" + "\n".join(lines) + "\n"
        if tr:
            msg += "\n" + "\n".join(tr) + "\n"
        return msg

    def merge_github(self):
        n = self.plant(self.new_number())
        self.with_ref += 1
        title = self.subject()
        body = self.rng.sample(self.body_pool, self.rng.randint(0, 3))
        return self.assemble(f"Merge pull request #{n} from {self.handle()}/{self.branch()}",
                             [title] + body, [], trailers=False)

    def merge_homu(self):
        n = self.plant(self.new_number())
        self.with_ref += 1
        rng = self.rng
        subject = f"Auto merge of #{n} - {self.handle()}:{self.branch()}, r={self.handle()}"
        return self.assemble(subject, [self.subject(), ""] + self.body(), [], trailers=False)

    def merge_bors(self, count=1):
        """bors-ng: 'Merge #88' or, for a batch (octopus), 'Merge #88 #89 #90'."""
        nums = [self.plant(self.new_number()) for _ in range(count)]
        self.with_ref += 1
        lines = []
        for n in nums:
            lines += [f"{n}: {self.subject()} r={self.handle()} a={self.handle()}", ""]
            lines += self.rng.sample(self.body_pool, self.rng.randint(0, 2)) + [""]
        lines.append(f"Co-authored-by: {self.person()}")
        return self.assemble("Merge " + " ".join(f"#{n}" for n in nums), lines, [],
                             trailers=False)

    def merge_plain(self):
        rng = self.rng
        return rng.choice([f"Merge branch '{self.branch()}'\n",
                           "Merge remote-tracking branch 'origin/main'\n",
                           f"Merge branch 'release-{rng.randint(0, 3)}.{rng.randint(0, 40)}'\n"])


# --------------------------------------------------------------------------
# fast-import stream
# --------------------------------------------------------------------------
class Stream:
    """Writes fast-import commands; every commit goes to refs/heads/main with an
    explicit `from`, so one ref suffices and the last commit written is HEAD."""

    def __init__(self, out, rng, msgs, serial=0):
        self.out = out
        self.serial = serial  # file content counter: unique blobs across appends
        self.rng = rng
        self.msgs = msgs
        self.mark = 0
        self.count = 0
        self.merges = 0
        self.octopus = 0
        self.roots = 0  # unrelated histories merged in
        self.buf = []
        self.buf_len = 0

    def _emit(self, data):
        self.buf.append(data)
        self.buf_len += len(data)
        if self.buf_len > 1 << 20:
            self.flush()

    def flush(self):
        self.out.write(b"".join(self.buf))
        self.buf = []
        self.buf_len = 0

    def commit(self, msg, date, parents):
        """Emit one commit; parents are marks (int) or hex object names (str)."""
        self.mark += 1
        self.count += 1
        if len(parents) > 1:
            self.merges += 1
            if len(parents) > 2:
                self.octopus += 1
        who = self.msgs.person()
        tz = self.rng.choice(["+0000", "+0100", "+0200", "-0500", "-0800", "+0530", "+0900"])
        m = msg.encode()
        # One small file whose content changes: a real tree and blob per commit,
        # so the pack interleaves commits with other objects as a real one does.
        content = f"{self.serial + self.mark}\n".encode()
        ps = [f":{p}" if isinstance(p, int) else p for p in parents]
        head = f"commit refs/heads/main\nmark :{self.mark}\n" \
               f"author {who} {date} {tz}\ncommitter {who} {date} {tz}\ndata {len(m)}\n"
        tail = ""
        if ps:
            tail += f"from {ps[0]}\n" + "".join(f"merge {p}\n" for p in ps[1:])
        tail += f"deleteall\nM 100644 inline CHANGES\ndata {len(content)}\n"
        self._emit(head.encode() + m + b"\n" + tail.encode() + content + b"\n")
        return self.mark

    def reset_main(self):
        """Forget the current branch so the next commit without parents is a root."""
        self._emit(b"reset refs/heads/main\n\n")


def geometric(rng, mean, cap):
    n = 1
    while n < cap and rng.random() > 1.0 / mean:
        n += 1
    return n


def side_history(st, msgs, rng, length, start, step):
    """A linear unrelated history (its own root); returns (tip mark, tip date)."""
    st.reset_main()
    tip, date = None, start
    for _ in range(length):
        date += rng.randint(step // 4, step)
        tip = st.commit(msgs.ordinary(), date, [tip] if tip else [])
    return tip, date


def generate(st, msgs, rng, total):
    """Main loop: the main line grows by direct commits and merged topic branches."""
    main_marks, main_dates = [], []  # first-parent history, for fork points

    def push_main(mark, date):
        main_marks.append(mark)
        main_dates.append(date)

    date = EPOCH
    push_main(st.commit(msgs.ordinary(), date, []), date)
    roots_at = [total // 3, (2 * total) // 3]  # where the unrelated histories merge in
    root_sizes = [max(3, total // 100), max(3, total // 300)]
    octo_every = max(400, total // 30)  # a few octopus merges (bors batches)
    next_octo = octo_every

    while st.count < total:
        remaining = total - st.count
        if roots_at and st.count >= roots_at[0] and remaining > root_sizes[0] + 1:
            roots_at.pop(0)
            size = root_sizes.pop(0)
            # an older, unrelated project imported wholesale (legacy repo, vendored lib)
            start = EPOCH - 4 * 365 * 86400 + rng.randint(0, 2 * 365 * 86400)
            tip, _ = side_history(st, msgs, rng, size, start, 3600)
            date = main_dates[-1] + rng.randint(60, 3600)
            subj = ("Merge branch 'legacy-import'\n" if st.roots == 0 else
                    f"Merge commit '{rng.getrandbits(160):040x}' as 'vendor/libfoo'\n")
            push_main(st.commit(subj, date, [main_marks[-1], tip]), date)
            st.roots += 1
            continue

        octopus = st.count >= next_octo and remaining > 12
        if not octopus and (rng.random() < 0.6 or remaining < 3):
            date = main_dates[-1] + rng.randint(60, 2400)
            push_main(st.commit(msgs.ordinary(), date, [main_marks[-1]]), date)
            continue

        # topic branch(es): fork some way back, commits dated before the current tip
        n_topics = rng.randint(2, 4) if octopus else 1
        tips = []
        budget = remaining - 1
        for _ in range(n_topics):
            size = min(geometric(rng, 2.5, 12), max(1, budget - (n_topics - len(tips) - 1)))
            budget -= size
            r = rng.random()
            back = rng.randint(1, 30) if r < 0.8 else rng.randint(31, 300) if r < 0.95 \
                else rng.randint(301, 3000)
            fork = max(0, len(main_marks) - 1 - back)
            fork_date, tip_date = main_dates[fork], main_dates[-1]
            parent = main_marks[fork]
            span = tip_date - fork_date
            for j in range(size):
                d = fork_date + (span * (j + 1)) // (size + 1)  # strictly older than tip
                parent = st.commit(msgs.ordinary(), d, [parent])
            tips.append(parent)
        date = main_dates[-1] + rng.randint(60, 900)
        if octopus:
            next_octo += octo_every
            msg = msgs.merge_bors(len(tips))
        else:
            r = rng.random()
            msg = (msgs.merge_github() if r < 0.55 else msgs.merge_homu() if r < 0.75
                   else msgs.merge_bors() if r < 0.9 else msgs.merge_plain())
        push_main(st.commit(msg, date, [main_marks[-1]] + tips), date)


def append(st, msgs, rng, repo, k):
    """K commits on top of HEAD: direct commits with refs, and one merge of a
    5-commit branch forked ~50 first-parent commits back and dated OLDER than
    the old tip (the case that breaks date-cutoff incremental walks)."""
    log = git(repo, "log", "--first-parent", "-n", "51", "--format=%H %ct").split()
    shas, dates = log[0::2], [int(x) for x in log[1::2]]
    tip, tip_date = shas[0], dates[0]
    fork, fork_date = shas[-1], dates[-1]
    topic = min(5, max(1, k - 2))
    direct = k - topic - 1
    date = tip_date
    for _ in range(direct // 2):
        date += rng.randint(60, 2400)
        tip = st.commit(msgs.ordinary(force_ref=rng.random() < 0.3), date, [tip])
    parent = fork
    span = tip_date - fork_date
    for j in range(topic):
        d = fork_date + (span * (j + 1)) // (topic + 1)
        parent = st.commit(msgs.ordinary(force_ref=True), d, [parent])
    date += rng.randint(60, 900)
    tip = st.commit(msgs.merge_github(), date, [tip, parent])
    for _ in range(direct - direct // 2):
        date += rng.randint(60, 2400)
        tip = st.commit(msgs.ordinary(force_ref=rng.random() < 0.3), date, [tip])


# --------------------------------------------------------------------------
# reference miner (--verify): the spec as regexes, to check the generator
# itself; it is slow and simple on purpose and is not what patina-forge does
# --------------------------------------------------------------------------
OWNER_NAME = re.escape(FORGE)
NUM = r"([1-9]\d*)"  # no leading zero
KW = r"(?<![A-Za-z0-9_])(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?\s+"
SUBJECT_RES = [
    re.compile(r"((?:\s*\(#[1-9]\d*\))+)\s*$"),                # fix: x (#12) (#34)
    re.compile(r"^Merge pull request #" + NUM + r"(?: |$)"),     # GitHub merge button
    re.compile(r"^Auto merge of #" + NUM + r"(?: |$)"),          # homu
    re.compile(r"^Merge ((?:#[1-9]\d*(?: |$))+)"),              # bors-ng
]
ANYWHERE_RES = [  # only behind a closing keyword
    re.compile(KW + r"(?:" + OWNER_NAME + r")?#" + NUM + r"(?![A-Za-z0-9_])", re.I),
    re.compile(KW + r"https?://github\.com/" + OWNER_NAME + r"/(?:issues|pull)/" + NUM
               + r"(?![A-Za-z0-9_])", re.I),
]


def reference_refs(message):
    """Ref numbers in one commit message, per the patterns in the module doc
    (the same reading as src/discover/parser.rs, written independently)."""
    found = []
    subject = message.split("\n", 1)[0]
    for rx in SUBJECT_RES:
        m = rx.search(subject)
        if m:
            found += re.findall(r"\d+", m.group(1))
    for rx in ANYWHERE_RES:
        found += rx.findall(message)
    return {int(n) for n in found if 0 < int(n) < 2**31}


def verify(repo):
    """Mine the repository with the reference miner; compare with planted.json."""
    with open(os.path.join(repo, "planted.json")) as f:
        planted = set(json.load(f)["refs"])
    log = subprocess.run(["git", "-C", repo, "log", "-z", "--format=%B", "HEAD"], check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    mined = set()
    for msg in log.split("\0"):
        mined |= reference_refs(msg.lstrip("\n"))
    missing, extra = sorted(planted - mined), sorted(mined - planted)
    print(f"{repo}: reference miner found {len(mined)} refs, planted {len(planted)}; "
          f"missing {missing[:10]}, extra {extra[:10]}", file=sys.stderr)
    return not missing and not extra


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------
def git(repo, *args, capture=True):
    r = subprocess.run(["git", "-C", repo, *args], check=True,
                       stdout=subprocess.PIPE if capture else None, text=True)
    return r.stdout.strip() if capture else None


def run_fast_import(repo, fill):
    """Run one `git fast-import` and let fill(stream_file) write the commands."""
    p = subprocess.Popen(["git", "-C", repo, "fast-import", "--quiet", "--done"],
                         stdin=subprocess.PIPE)
    try:
        fill(p.stdin)
        p.stdin.write(b"done\n")
        p.stdin.close()
    except BrokenPipeError:
        pass
    if p.wait() != 0:
        sys.exit(f"git fast-import failed (exit {p.returncode})")


def timed(label, fn, *a):
    t = time.perf_counter()
    out = fn(*a)
    print(f"  {label}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return out


def pack(repo, mode):
    """Leave the repository packed like a real clone: one pack, commit-graph."""
    if mode == "aggressive":
        git(repo, "gc", "--aggressive", "--prune=now", "--quiet", capture=False)
    elif mode == "repack":
        git(repo, "repack", "-adf", "-q", capture=False)
        git(repo, "prune-packed", capture=False)
        git(repo, "pack-refs", "--all", capture=False)
    if mode != "none":
        git(repo, "commit-graph", "write", "--reachable", capture=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="repository directory (created; must not exist unless --append)")
    ap.add_argument("commits", nargs="?", type=int, help="default 300000; with --append: SEED")
    ap.add_argument("seed", nargs="?", type=int, default=1, help="default 1")
    ap.add_argument("--append", type=int, metavar="K", nargs="?", const=100,
                    help="append K commits (default 100) to an existing generated repository: "
                         "`--append K OUT [SEED]` or `OUT --append` (SEED defaults to 2)")
    ap.add_argument("--pack", choices=["repack", "aggressive", "none"], default="repack",
                    help="how to pack after importing (default: repack -adf + commit-graph); "
                         "--append never repacks: fetched commits sit in their own pack")
    ap.add_argument("--verify", action="store_true",
                    help="only check an existing repository's planted.json against a "
                         "reference miner (exit 1 on a difference)")
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    if a.verify:
        sys.exit(0 if verify(out) else 1)
    sidecar = os.path.join(out, "planted.json")
    t0 = time.perf_counter()

    holder = {}
    if a.append is not None:
        # the only positional after OUT is the seed; 2 differs from the base's default
        seed = a.commits if a.commits is not None else 2
        with open(sidecar) as f:
            meta = json.load(f)
        rng = random.Random(f"append:{seed}")
        msgs = Messages(rng, meta["next_number"], set(meta["refs"]))

        def fill(f):
            st = holder["st"] = Stream(f, rng, msgs, serial=meta["commits"])
            append(st, msgs, rng, out, a.append)
            st.flush()
        run_fast_import(out, fill)
        st = holder["st"]
        git(out, "reset", "--hard", "-q", capture=False)
        meta["appended"] = meta.get("appended", []) + [{"commits": st.count, "seed": seed}]
        meta["commits"] += st.count
        meta["merges"] += st.merges
        meta["with_ref"] += msgs.with_ref
        meta["with_near_miss"] += msgs.with_near
    else:
        if os.path.exists(out):
            sys.exit(f"{out} exists; remove it first")
        rng = random.Random(f"base:{a.seed}")
        msgs = Messages(rng)
        subprocess.run(["git", "init", "-q", "-b", "main", out], check=True)
        # no auto-gc: the packing below is deliberate and must not be redone behind our back
        git(out, "config", "gc.auto", "0", capture=False)

        def fill(f):
            st = holder["st"] = Stream(f, rng, msgs)
            generate(st, msgs, rng, a.commits if a.commits is not None else 300_000)
            st.flush()
        timed("fast-import", run_fast_import, out, fill)
        st = holder["st"]
        git(out, "reset", "--hard", "-q", capture=False)
        timed(f"pack ({a.pack})", pack, out, a.pack)
        meta = {"forge": FORGE, "seed": a.seed, "commits": st.count, "merges": st.merges,
                "octopus": st.octopus, "roots": 1 + st.roots, "with_ref": msgs.with_ref,
                "with_near_miss": msgs.with_near}
        with open(os.path.join(out, ".git", "info", "exclude"), "a") as f:
            f.write("planted.json\n")  # keep `git status` clean

    meta["head"] = git(out, "rev-parse", "HEAD")
    meta["next_number"] = msgs.next_number
    meta["planted_refs"] = len(msgs.planted)
    meta["refs"] = sorted(msgs.planted)
    with open(sidecar, "w") as f:
        json.dump(meta, f)
    print(f"{out}: {meta['commits']} commits ({meta['merges']} merges), "
          f"{meta['planted_refs']} planted refs, {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
