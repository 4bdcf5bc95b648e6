#!/usr/bin/env python3
"""Resolve benchmark: patina-forge draining a backlog against a fake GitHub.

    python3 bench/resolve.py                          # dense, sparse, quick, GraphQL
    python3 bench/resolve.py --api rest               # the same with REST (~6 min)
    python3 bench/resolve.py --only quick             # the 50 ms pacing check only
    python3 bench/resolve.py --dense-items 2000 --sparse-items 2000 --sparse-refs 1000

Scenarios, each against its own fake-forge (examples/fake-forge.rs) with a
large announced rate limit (--rate-limit, default 1,000,000/h, so that the
ledger's spreading of the budget, 0.72 s a request at GitHub's 5,000/h, does
not hide the pacing under test):
  dense   backlog 1..17488 from online discovery (its one request learns the
          newest number), drained with `--limit 100000` at the DEFAULT pacing
          (no --delay: 750 ms between requests). Target: GraphQL <= 200
          requests and under 3 minutes; REST <= 0.02 requests/ref, under 3 min.
  sparse  8,845 numbers in 1..17385 (seeded PRNG), mentioned by the commits of
          a generated repository; offline discovery, so the backlog is exactly
          those; drained at the default pacing. Target: GraphQL <= 150
          requests; REST <= 1 request/ref.
  quick   dense again with --delay 50ms: wall time follows the delay.

The drain runs with `--api graphql` (default: batches of up to 100 numbers,
with comments, approvals and linked issues) or `--api rest` (--api here).

Requests are counted three ways: the binary's `Requests: N`, the fake's log
(one line per request: `ms status path`) and the fake's exit summary (total,
counted against the rate limit, by status); GraphQL points twice (the binary's
`(GraphQL: P points spent)` and the fake's `graphql:` exit line). After each
drain the db is checked against the fake's data (same rules as fake-forge's
fill()), the discussion included: forge_comments, comment counts, approvals,
linked issues and the comments of each PR's event; with REST there is none.
Output: a Markdown block for BENCHMARKS.md on stdout, progress on stderr.
"""

import argparse
import json
import os
import random
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from common import capture, loadavg, log, machine

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
FORGE = "acme/widget"
SPEC_DELAY = 0.75  # the spec's pacing, and the binary's default --delay
TOKEN = "patina-bench-fake-token"  # the fake demands it; no real token is ever read
TARGET_DENSE_RPR = 0.02
TARGET_DENSE_WALL = 180.0  # "under 3 minutes"
TARGET_SPARSE_RPR = 1.0
TARGET_GRAPHQL_DENSE_REQUESTS = 200  # the GraphQL issue: dense <= 200 requests, < 3 min
TARGET_GRAPHQL_SPARSE_REQUESTS = 150  # … and sparse <= 150
GRAPHQL_FIRST_BATCH, GRAPHQL_MAX_BATCH = 50, 100  # src/sync.rs BATCH_START, MAX_BATCH
COMMENTS_KEPT = 20  # src/forge/graphql.rs COMMENTS: first comments asked per item
DEFAULT_EPOCH = 1_577_836_800  # fakeforge: item n is created at this + n × 600 s
QUICK_RANGE = (0.05, 0.72)  # seconds per request at --delay 50ms (0.72: 5000/h spread)
GAP_SLACK = 0.010  # arrival jitter allowed below k × delay in the fake's log (s)
PACE_SPAN = 10  # spacings in a row whose shortest span is checked


def thousands(n):
    return f"{n:,}"


def fmt_dur(s):
    if s is None:
        return "n/a"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {s % 60:04.1f} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def parse_delay(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"a delay like 50ms or 1s, not {text!r}")
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


# --------------------------------------------------------------------------
# the fake's data, mirrored from examples/fake-forge.rs fill()
# --------------------------------------------------------------------------
def multiple(n, every):
    return every > 0 and n % every == 0


def fake_kind(n, args):
    """'deleted' (410), 'missing' (404), 'pr' or 'issue', as fake-forge decides."""
    if multiple(n, args.deleted_every):
        return "deleted"
    if multiple(n, args.missing_every):
        return "missing"
    return "pr" if multiple(n, args.pr_every) else "issue"


class FakeData:
    def __init__(self, items, args):
        self.items = items
        self.kind = {n: fake_kind(n, args) for n in range(1, items + 1)}

    def numbers(self, kinds, within=None):
        nums = within if within is not None else self.kind.keys()
        return {n for n in nums if self.kind.get(n, "missing") in kinds}

    def newest(self):
        return max(self.numbers(("pr", "issue")), default=0)


def iso(secs):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))


def fake_discussion(n, args):
    """(comments [(author, body, created_at)], approvals, linked issues) of a
    served item as fake-forge's pr()/issue() generate it; approvals and linked
    are None for an issue. author None is a deleted account."""
    def after(minutes):
        return iso(DEFAULT_EPOCH + n * 600 + minutes * 60)

    def or_ghost(login):
        return None if n % 7 == 0 else login

    def issue_at(k):
        return k >= 1 and fake_kind(k, args) == "issue"

    if fake_kind(n, args) == "pr":
        comments = [(or_ghost(f"reviewer{n % 5}"), f"Comment 1 on #{n} — looks right.", after(1)),
                    ("octocat", f"Comment 2 on #{n}: thanks.", after(2))]
        approvals, linked = 0, []
        state = (n // max(args.pr_every, 1)) % 4
        if state in (0, 2):  # merged
            approvals = 2 if n % 2 == 0 else 1
            if n % 2 == 0 and issue_at(n - 2):
                linked.append(n - 2)
            if issue_at(n - 1):
                linked.append(n - 1)
        elif state == 1 and issue_at(n - 1):  # open
            linked.append(n - 1)
        return comments, approvals, sorted(linked)
    if n % 25 == 0:
        comments = [(or_ghost(f"user{k % 4}") if k == 1 else f"user{k % 4}",
                     f"Comment {k} on #{n}.", after(k)) for k in range(1, 24)]
    elif n % 5 == 0:
        comments = [(or_ghost("user1"), f"Comment 1 on #{n}.", after(1))]
    else:
        comments = []
    return comments, None, None


def flatten(comments):
    """patina's PR event `comments`: one `author: body` line each, ghost for
    a deleted account (src/store/writer.rs comments_text)."""
    return "\n".join(f"{a or 'ghost'}: {b}" for a, b, _ in comments)


# --------------------------------------------------------------------------
# the fake server
# --------------------------------------------------------------------------
class Fake:
    """fake-forge in a child process: URL from its first stdout line, stopped by
    closing its stdin (then it prints its summary on stderr)."""

    def __init__(self, binary, items, args, log_path, err_path):
        self.log_path, self.err_path = log_path, err_path
        argv = [binary, "--repo", FORGE, "--items", str(items),
                "--pr-every", str(args.pr_every), "--missing-every", str(args.missing_every),
                "--deleted-every", str(args.deleted_every), "--rate-limit", str(args.rate_limit),
                "--graphql-limit", str(args.graphql_limit), "--token", TOKEN, "--log", log_path]
        self.argv = argv
        self.err = open(err_path, "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"fake-forge did not start: {self.summary_line()!r}")

    def stop(self):
        """Closes stdin, waits for the summary; kills this child (by its PID)
        only when it does not exit within 30 s."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(f"fake-forge (pid {self.proc.pid}) did not exit; killing it")
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.err.close()

    def summary_line(self):
        try:
            with open(self.err_path, errors="replace") as f:
                lines = [l.strip() for l in f if l.startswith("fake-forge:")]
            return lines[-1] if lines else ""
        except OSError:
            return ""

    def graphql_summary(self):
        """(queries, points, caveat or "") from the `fake-forge: graphql:` exit
        line, or None."""
        try:
            with open(self.err_path, errors="replace") as f:
                for line in f:
                    m = re.match(r"fake-forge: graphql: (\d+) queries, (\d+) points spent"
                                 r"(?: \((.*)\))?$", line.strip())
                    if m:
                        return int(m.group(1)), int(m.group(2)), m.group(3) or ""
        except OSError:
            pass
        return None

    def summary(self):
        """(total, counted, {status: n}) from the exit summary, or None."""
        m = re.match(r"fake-forge: (\d+) requests, (\d+) counted; by status: (.*)",
                     self.summary_line())
        if not m:
            return None
        by = {}
        for part in m.group(3).split(","):
            if ":" in part:
                s, n = part.split(":")
                by[int(s)] = int(n)
        return int(m.group(1)), int(m.group(2)), by

    def requests(self):
        """[(ms, status, path)] from the request log."""
        out = []
        with open(self.log_path, errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 2)
                if len(parts) == 3:
                    out.append((int(parts[0]), int(parts[1]), parts[2]))
        return out


def classify(path):
    p = path.split("?", 1)[0]
    if p == "/graphql":  # the log has no method; the fake serves only POST there
        return "GraphQL batch"
    if "?" in path and p.endswith("/issues"):
        return "listing page"
    if re.search(r"/issues/\d+$", p):
        return "single issue GET"
    if re.search(r"/pulls/\d+$", p):
        return "PR GET (merged?)"
    if re.fullmatch(r"/repos/[^/]+/[^/]+|/repositories/\d+", p):
        return "repository GET"
    if p == "/rate_limit":
        return "rate_limit"
    return "other"


# --------------------------------------------------------------------------
# repositories
# --------------------------------------------------------------------------
def git(*args, cwd=None, **kw):
    return subprocess.run(["git", *args], cwd=cwd, check=True, **kw)


def fi_data(text):
    """A git fast-import `data` block."""
    return f"data {len(text.encode())}\n{text}\n"


def make_empty_repo(path):
    """One commit that mentions nothing: the dense backlog is discovery's range."""
    if capture("git", "-C", path, "rev-parse", "HEAD"):
        return
    shutil.rmtree(path, ignore_errors=True)
    git("init", "-q", "-b", "main", path)
    who = "Bench <bench@example.com> 1600000000 +0000"
    stream = (f"commit refs/heads/main\nmark :1\nauthor {who}\ncommitter {who}\n"
              f"{fi_data('Initial commit')}M 644 inline README\n{fi_data('widget')}\n")
    git("fast-import", "--quiet", cwd=path, input=stream.encode())
    git("reset", "-q", "--hard", "main", cwd=path)


def sparse_numbers(seed, refs, top):
    """`refs` distinct numbers in 1..top, always including top (so the spread
    is exactly 1..top), chosen by a seeded PRNG."""
    rng = random.Random(seed)
    chosen = set(rng.sample(range(1, top), refs - 1))
    chosen.add(top)
    return sorted(chosen)


def make_sparse_repo(path, numbers, seed):
    """A linear main line whose commits mention exactly `numbers`, one each:
    squash subjects `fix: … (#N)`, real merges `Merge pull request #N from
    user/topic` (with their one-commit topic branch), and `Fixes #N` in a body.
    One git fast-import; no other digits after a `#` anywhere."""
    meta_path = os.path.join(path, "numbers.json")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        if meta["numbers"] == numbers and meta["head"] == capture("git", "-C", path,
                                                                   "rev-parse", "HEAD"):
            log(f"reusing {path}")
            return meta["shapes"]
    except (OSError, ValueError, KeyError):
        pass
    shutil.rmtree(path, ignore_errors=True)
    git("init", "-q", "-b", "main", path)
    rng = random.Random(seed * 7919 + 1)
    words = ["parser", "cache", "docs", "ci", "logging", "config", "retry", "cli", "tests",
             "build", "render", "index", "auth", "sync", "layout", "errors"]
    order = numbers[:]
    order.sort()  # mentioned roughly in number order, as a project's history is
    chunks, mark, t = [], 0, 1_600_000_000
    shapes = {"squash": 0, "merge": 0, "fixes": 0}

    def commit(message, parents, line):
        nonlocal mark, t
        mark += 1
        t += 600
        who = f"Bench <bench@example.com> {t} +0000"
        chunks.append(f"commit refs/heads/main\nmark :{mark}\nauthor {who}\ncommitter {who}\n")
        chunks.append(fi_data(message))
        if parents:
            chunks.append(f"from :{parents[0]}\n")
            for p in parents[1:]:
                chunks.append(f"merge :{p}\n")
        chunks.append(f"M 644 inline CHANGES\n{fi_data(line)}\n")
        return mark

    tip = commit("Initial commit", [], "start")
    for n in order:
        w = rng.choice(words)
        r = rng.random()
        if r < 0.40:
            tip = commit(f"fix: {w} edge case (#{n})", [tip], f"squash {w}")
            shapes["squash"] += 1
        elif r < 0.85:
            side = commit(f"{w}: handle the empty case\n\nAlso tidy the {w} tests.",
                          [tip], f"topic {w}")
            tip = commit(f"Merge pull request #{n} from user/{w}-topic\n\nImprove {w}",
                         [tip, side], f"merge {w}")
            shapes["merge"] += 1
        else:
            tip = commit(f"{w}: guard against a missing value\n\nFixes #{n}.", [tip],
                         f"fixes {w}")
            shapes["fixes"] += 1
    git("fast-import", "--quiet", cwd=path, input="".join(chunks).encode())
    git("reset", "-q", "--hard", "main", cwd=path)
    head = capture("git", "-C", path, "rev-parse", "HEAD")
    with open(meta_path, "w") as f:
        json.dump({"numbers": numbers, "head": head, "shapes": shapes}, f)
    # numbers.json sits in the worktree untracked; discovery reads commits only
    return shapes


# --------------------------------------------------------------------------
# running patina-forge
# --------------------------------------------------------------------------
class Forge:
    """patina-forge runs with a scrubbed environment: a fresh PATINA_HOME per
    scenario (so no pace ledger leaks between runs), a throw-away HOME, and the
    fake's token in GITHUB_TOKEN (so `gh auth token` is never consulted)."""

    def __init__(self, binary, work, name):
        self.binary = binary
        self.home = tempfile.mkdtemp(prefix=f"{name}-home-", dir=work)
        self.patina_home = os.path.join(self.home, "patina")
        os.makedirs(self.patina_home)
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
                    "PATINA_HOME": self.patina_home, "GITHUB_TOKEN": TOKEN, "LC_ALL": "C",
                    "GIT_CONFIG_NOSYSTEM": "1"}

    def run(self, argv, out_path, err_path):
        """(wall seconds, exit code, stdout text)."""
        with open(out_path, "w") as out, open(err_path, "w") as err:
            t = time.perf_counter()
            code = subprocess.run([self.binary, *argv], env=self.env, stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=err).returncode
            wall = time.perf_counter() - t
        with open(out_path, errors="replace") as f:
            return wall, code, f.read()


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-n:])
    except OSError:
        return ""


def summary_numbers(text):
    """The drain's closing lines: Resolved/Failed/Pending/Requests as ints."""
    out = {}
    for key in ("Resolved", "Failed", "Pending", "Requests"):
        m = re.search(rf"^{key}: ([\d,]+)", text, re.M)
        out[key.lower()] = int(m.group(1).replace(",", "")) if m else None
    m = re.search(r"^Requests: [\d,]+ \(GraphQL: ([\d,]+) points? spent\)", text, re.M)
    out["points"] = int(m.group(1).replace(",", "")) if m else None
    m = re.search(r"^Resolved: [\d,]+ \(([\d,]+) issues?, ([\d,]+) PRs?\)", text, re.M)
    out["issues"], out["prs"] = ((int(m.group(1).replace(",", "")),
                                  int(m.group(2).replace(",", ""))) if m else (None, None))
    return out


def db_state(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        refs = {n: (resolved, error) for n, resolved, error in con.execute(
            "SELECT ref_number, resolved, error FROM forge_refs WHERE repo=?", (FORGE,))}
        issues = {r[0] for r in con.execute("SELECT number FROM forge_issues")}
        prs = {r[0] for r in con.execute("SELECT number FROM forge_prs")}
        return refs, issues, prs
    finally:
        con.close()


def check_discussion(db, data, args, graphql):
    """The discussion in the db against what the fake generated, for every
    item row: the first COMMENTS_KEPT comments in forge_comments (id, position,
    author, body, created_at), the comment count, a PR's approvals and linked
    issues, and the `comments`/`approvals`/`linked_issues` of the PR's event
    (forge_prs.event_seq, event_type 'forge.pr'). With REST there is none to
    find: no comment rows, counts NULL, approvals 0, no links, empty comments.
    Returns (problems, stats). Comments and counts live in patina-forge's store
    beside the db (`<stem>-forge.db`), the events in the db itself."""
    store = os.path.splitext(db)[0] + "-forge.db"
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    con.execute("ATTACH DATABASE ? AS patina", (f"file:{db}?mode=ro",))
    try:
        stored = {}
        for n, pos, cid, author, body, created in con.execute(
                "SELECT number, position, id, author, body, created_at FROM forge_comments "
                "ORDER BY number, position"):
            stored.setdefault(n, []).append((pos, cid, author, body, created))
        counts = dict(con.execute("SELECT number, comment_count FROM forge_issues"))
        prs = {n: (appr, linked, seq) for n, appr, linked, seq in con.execute(
            "SELECT number, approvals, linked_issues, event_seq FROM forge_prs")}
        counts.update({n: c for n, c in con.execute(
            "SELECT number, comment_count FROM forge_prs")})
        events = {seq: (etype, data_) for seq, etype, data_ in con.execute(
            "SELECT seq, event_type, data FROM patina.eventlog WHERE event_type = 'forge.pr'")}
    finally:
        con.close()

    bad = {}  # what differs -> [numbers]

    def wrong(what, n):
        bad.setdefault(what, []).append(n)

    st = {"comment_rows": sum(len(v) for v in stored.values()), "items_with_comments": 0,
          "want_comment_rows": 0, "want_items_with_comments": 0, "capped": 0,
          "approvals": 0, "prs_approved": 0, "linked": 0, "prs_linked": 0,
          "pr_events_with_comments": 0, "prs_with_comments": 0, "items": len(counts)}
    for n in sorted(set(stored) - set(counts)):
        wrong("comment rows for a number with no item row", n)
    for n in sorted(counts):
        comments, approvals, linked = fake_discussion(n, args)
        want = comments[:COMMENTS_KEPT] if graphql else []
        got = stored.get(n, [])
        st["want_comment_rows"] += len(want)
        st["want_items_with_comments"] += bool(want)
        st["items_with_comments"] += bool(got)
        st["capped"] += graphql and len(comments) > COMMENTS_KEPT
        # A deleted account is stored as `ghost`, as GitHub's REST API names it.
        if [(a, b, c) for _, _, a, b, c in got] != [(a or "ghost", b, c) for a, b, c in want]:
            wrong("comments (author, body, created_at)", n)
        elif any(pos != k or not re.fullmatch(rf"IC_\d+_{n}_{k + 1}", cid)
                 for k, (pos, cid, *_rest) in enumerate(got)):
            wrong("comment ids or positions", n)
        if counts[n] != (len(comments) if graphql else None):
            wrong("comment_count", n)
        if n not in prs:
            continue
        appr, linked_text, seq = prs[n]
        want_appr = approvals if graphql else 0
        want_linked = linked if graphql else []
        try:
            got_linked = json.loads(linked_text) if linked_text is not None else None
        except ValueError:
            got_linked = linked_text
        if appr != want_appr:
            wrong("forge_prs.approvals", n)
        if got_linked != want_linked:
            wrong("forge_prs.linked_issues", n)
        st["approvals"] += appr or 0
        st["prs_approved"] += bool(appr)
        st["linked"] += len(got_linked) if isinstance(got_linked, list) else 0
        st["prs_linked"] += bool(got_linked)
        st["prs_with_comments"] += bool(want)
        ev = events.get(seq)
        if ev is None:
            wrong("PR event (forge_prs.event_seq → a 'forge.pr' row)", n)
            continue
        try:
            ev_data = json.loads(ev[1])
        except ValueError:
            wrong("PR event data (not JSON)", n)
            continue
        st["pr_events_with_comments"] += bool(ev_data.get("comments"))
        if (ev_data.get("comments") != flatten(want) or ev_data.get("approvals") != want_appr
                or ev_data.get("linked_issues") != want_linked):
            wrong("PR event comments / approvals / linked_issues", n)
    problems = [f"discussion: {len(ns)} item(s) with wrong {what}, e.g. {ns[:5]}"
                for what, ns in bad.items()]
    return problems, st


# --------------------------------------------------------------------------
# one scenario
# --------------------------------------------------------------------------
class Result:
    def __init__(self, key, title):
        self.key, self.title = key, title
        self.problems = []
        self.m = {}  # measurements by name


def run_scenario(key, title, *rest):
    """run_scenario_in, with a failure to start anything reported as a
    problem of the scenario instead of a traceback."""
    try:
        return run_scenario_in(key, title, *rest)
    except (OSError, RuntimeError, subprocess.SubprocessError, sqlite3.Error) as e:
        res = Result(key, title)
        res.problems.append(f"{type(e).__name__}: {e}")
        log(f"{key}: {e}")
        return res


def run_scenario_in(key, title, args, work, repo, items, offline, delay, expected_backlog):
    """Discovery (against its own fake), then the timed drain against a fresh
    fake with the same data; returns a Result."""
    res = Result(key, title)
    data = FakeData(items, args)
    d = os.path.join(work, key)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    db = os.path.join(d, "patina.db")
    forge = Forge(args.bin_copy, d, key)
    base = ["-C", repo, "--forge", FORGE, "--db", db]
    res.m["delay"] = delay

    # discovery: the backlog
    fake = Fake(args.fake_copy, items, args, os.path.join(d, "discover-fake.log"),
                os.path.join(d, "discover-fake.err"))
    try:
        disc = base + (["--offline"] if offline else ["--api-url", fake.url])
        wall, code, out = forge.run(disc, os.path.join(d, "discover.out"),
                                    os.path.join(d, "discover.err"))
    finally:
        fake.stop()
    res.m["discovery_wall"] = wall
    res.m["discovery_requests"] = len(fake.requests())
    log(f"{key}: discovery ({'offline' if offline else 'online'}) in {wall:.2f} s, "
        f"{res.m['discovery_requests']} request(s): {' / '.join(out.strip().splitlines())}")
    if code != 0:
        res.problems.append(f"discovery exited {code}: {tail(os.path.join(d, 'discover.err'))}")
        return res
    refs, _, _ = db_state(db)
    backlog = set(refs)
    res.m["backlog"] = len(backlog)
    if backlog != expected_backlog:
        missing, extra = sorted(expected_backlog - backlog), sorted(backlog - expected_backlog)
        res.problems.append(f"backlog after discovery: {len(missing)} expected refs missing "
                            f"(e.g. {missing[:5]}), {len(extra)} unexpected (e.g. {extra[:5]})")
    if any(r[0] is not None for r in refs.values()):
        res.problems.append("refs already resolved right after discovery")

    live_in = data.numbers(("issue", "pr"), backlog)
    gaps_in = backlog - live_in
    res.m["fake_missing"] = len(data.numbers(("missing",)))
    res.m["fake_deleted"] = len(data.numbers(("deleted",)))
    res.m["backlog_missing"] = len(data.numbers(("missing",), backlog))
    res.m["backlog_deleted"] = len(data.numbers(("deleted",), backlog))
    res.m["backlog_out_of_range"] = len({n for n in backlog if n > items})
    res.m["baseline"] = len(backlog) * SPEC_DELAY

    # the drain, timed, against a fresh fake with the same data
    fake = Fake(args.fake_copy, items, args, os.path.join(d, "resolve-fake.log"),
                os.path.join(d, "resolve-fake.err"))
    pacing = [] if delay == SPEC_DELAY else ["--delay", f"{round(delay * 1000)}ms"]
    api = ["--api", args.api]
    argv = base + ["--api-url", fake.url, "--limit", "100000"] + api + pacing
    res.m["shown"] = shlex.join(["patina-forge", "-C", "REPO", "--forge", FORGE, "--db", "DB",
                                 "--api-url", "URL", "--limit", "100000"] + api + pacing)
    graphql = args.api == "graphql"
    res.m["graphql"] = graphql
    if graphql:  # the first batch of 50, then 100 a request
        res.m["min_batches"] = (0 if not backlog else
                                1 + -(-max(len(backlog) - GRAPHQL_FIRST_BATCH, 0)
                                      // GRAPHQL_MAX_BATCH))
        estimate = res.m["min_batches"] * delay
    else:
        estimate = (max(backlog, default=0) / 100 + len(gaps_in)) * delay
    log(f"{key}: draining {thousands(len(backlog))} refs at {delay * 1000:.0f} ms pacing "
        f"(roughly {fmt_dur(estimate)}) ...")
    try:
        wall, code, out = forge.run(argv, os.path.join(d, "resolve.out"),
                                    os.path.join(d, "resolve.err"))
    finally:
        fake.stop()
    log(f"{key}: drain done in {wall:.1f} s: {' / '.join(out.strip().splitlines())}")
    log(f"{key}: {fake.summary_line()}")
    res.m["wall"] = wall
    if code != 0:
        res.problems.append(f"the drain exited {code}: {tail(os.path.join(d, 'resolve.err'))}")
    s = summary_numbers(out)
    res.m.update({f"bin_{k}": v for k, v in s.items()})
    if s["requests"] is None:
        res.problems.append("no `Requests: N` line in the drain's output")
    if graphql and s["points"] is None:
        res.problems.append("no `(GraphQL: P points spent)` in the drain's output")
    if not graphql and s["points"] is not None:
        res.problems.append(f"--api rest, yet the drain reports {s['points']} GraphQL points")

    # the fake's view
    reqs = fake.requests()
    res.m["log_requests"] = len(reqs)
    kinds = {}
    for _, _, path in reqs:
        k = classify(path)
        kinds[k] = kinds.get(k, 0) + 1
    res.m["breakdown"] = kinds
    statuses = {}
    for _, status, _ in reqs:
        statuses[status] = statuses.get(status, 0) + 1
    res.m["log_statuses"] = statuses
    summ = fake.summary()
    if summ is None:
        res.problems.append(f"no summary from fake-forge: {tail(fake.err_path)}")
        res.m["fake_total"] = res.m["counted"] = None
    else:
        res.m["fake_total"], res.m["counted"], by = summ
        if summ[0] != len(reqs) or by != statuses:
            res.problems.append(f"fake-forge's summary ({summ[0]}, {by}) disagrees with its "
                                f"log ({len(reqs)}, {statuses})")
    if s["requests"] is not None and s["requests"] != len(reqs):
        res.problems.append(f"the binary says {s['requests']} requests, the fake logged "
                            f"{len(reqs)}")
    gsum = fake.graphql_summary()
    res.m["gql_queries"], res.m["fake_points"], res.m["points_caveat"] = gsum or (None, None, "")
    res.m["gql_logged"] = kinds.get("GraphQL batch", 0)
    if gsum is None:
        res.problems.append(f"no `fake-forge: graphql:` line from fake-forge: {tail(fake.err_path)}")
    else:
        if gsum[0] != res.m["gql_logged"]:
            res.problems.append(f"fake-forge counted {gsum[0]} GraphQL queries, its log has "
                                f"{res.m['gql_logged']} /graphql lines")
        if graphql and s["points"] is not None and s["points"] != gsum[1]:
            res.problems.append(f"the binary spent {s['points']} GraphQL points, the fake "
                                f"charged {gsum[1]}" + (f" ({gsum[2]})" if gsum[2] else ""))
        if not graphql and gsum[0]:
            res.problems.append(f"--api rest, yet the fake got {gsum[0]} GraphQL queries")
    # Pacing from the fake's side. One arrival a few ms late (a slow connect, a
    # late thread on a busy machine) shortens the gap after it by as much, so
    # single gaps are shown but the check is on any PACE_SPAN spacings in a row.
    at = [r[0] / 1000 for r in reqs]
    gaps = [b - a for a, b in zip(at, at[1:])]
    res.m["gap_min"] = min(gaps) if gaps else None
    res.m["gap_median"] = statistics.median(gaps) if gaps else None
    res.m["gaps_short"] = sum(g < delay - GAP_SLACK for g in gaps)
    for k in (2, PACE_SPAN):
        spans = [b - a for a, b in zip(at, at[k:])]
        res.m[f"span{k}_min"] = min(spans) if spans else None
    res.m["requests"] = s["requests"] if s["requests"] is not None else len(reqs)
    res.m["rpr"] = res.m["requests"] / len(backlog) if backlog else None

    # status and db
    st_wall, st_code, st_out = forge.run(base + ["--status", "--json"],
                                         os.path.join(d, "status.json"),
                                         os.path.join(d, "status.err"))
    try:
        status = json.loads(st_out)
    except ValueError:
        status = {}
        res.problems.append(f"--status --json did not print JSON (exit {st_code}): "
                            f"{st_out[:200]!r}")
    res.m["status"] = status
    if status and status.get("pending") != 0:
        res.problems.append(f"--status --json says pending {status.get('pending')}")
    refs, issues, prs = db_state(db)
    res.m["rows_total"] = len(issues) + len(prs)
    rows_in = (issues | prs) & backlog
    res.m["rows_in_backlog"] = len(rows_in)
    res.m["rows_extra"] = len((issues | prs) - backlog)
    res.m["refs_after"] = len(refs)
    res.m["refs_extra"] = len(set(refs) - backlog)
    res.m["live_in_backlog"] = len(live_in)
    want_issues = data.numbers(("issue",), backlog)
    want_prs = data.numbers(("pr",), backlog)
    if issues & backlog != want_issues or prs & backlog != want_prs:
        res.problems.append(
            f"rows for backlog numbers: {len(issues & backlog)} issues / {len(prs & backlog)} "
            f"PRs, the fake serves {len(want_issues)} / {len(want_prs)} of them "
            f"(missing e.g. {sorted((want_issues | want_prs) - rows_in)[:5]}, wrong table e.g. "
            f"{sorted((issues & want_prs) | (prs & want_issues))[:5]})")
    disc_problems, res.m["disc"] = check_discussion(db, data, args, graphql)
    res.problems += disc_problems
    stray = ((issues | prs) - backlog) - data.numbers(("issue", "pr"))
    if stray:
        res.problems.append(f"rows for numbers the fake does not serve: {sorted(stray)[:5]}")
    unresolved = [n for n in backlog if refs.get(n, (None, None))[0] is None]
    wrong_fail = [n for n in backlog if (refs.get(n, (None, None))[1] is not None) != (n in gaps_in)]
    if unresolved:
        res.problems.append(f"{len(unresolved)} backlog refs unsettled, e.g. {sorted(unresolved)[:5]}")
    if wrong_fail:
        res.problems.append(f"{len(wrong_fail)} backlog refs with the wrong outcome "
                            f"(failed ≠ 404/410 on the fake), e.g. {sorted(wrong_fail)[:5]}")
    if s["resolved"] is not None and s["resolved"] != len(live_in):
        res.problems.append(f"the binary resolved {s['resolved']}, the fake serves "
                            f"{len(live_in)} of the backlog")
    if s["failed"] is not None and s["failed"] != len(gaps_in):
        res.problems.append(f"the binary failed {s['failed']}, the backlog has "
                            f"{len(gaps_in)} gaps on the fake")
    return res


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def ok(flag):
    return "✅" if flag else "❌"


def fmt_span(s):
    return "n/a" if s is None else f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def pacing_ok(m):
    """No PACE_SPAN spacings in a row shorter than that many delays, less the
    jitter allowance: one request let out early costs a whole delay there, while
    one late arrival costs only its own lateness (vacuous for shorter runs).
    The 2-spacing minimum is shown but not judged: under load, the fake's
    arrival times jitter by more than GAP_SLACK."""
    span = m[f"span{PACE_SPAN}_min"]
    return span is None or span >= PACE_SPAN * m["delay"] - GAP_SLACK


def report_scenario(res, target_rows):
    m = res.m
    print(f"#### {res.title}\n")
    if "shown" in m:
        print(f"`{m['shown']}`\n")
    if "status" not in m or not m.get("backlog"):
        print("Not measured: " + ("; ".join(res.problems) or "empty backlog") + "\n")
        return [f"{res.key}: not measured"]
    bd = m["breakdown"]
    bd_text = ", ".join(f"{v} {k}" for k, v in sorted(bd.items(), key=lambda kv: -kv[1]))
    st = m["status"]
    rows = [
        ("refs in the backlog", thousands(m["backlog"]),
         f"{thousands(m['backlog_missing'])} missing (404) + {thousands(m['backlog_deleted'])} "
         f"deleted (410) on the fake", "", ""),
        ("refs resolved", thousands(m["bin_resolved"] or 0),
         f"{thousands(m['bin_issues'] or 0)} issues, {thousands(m['bin_prs'] or 0)} PRs", "", ""),
        ("failed (404/410)", thousands(m["bin_failed"] or 0), "", "", ""),
        ("requests (binary's `Requests:`)", thousands(m["bin_requests"] or 0), "", "", ""),
        ("requests (fake's log / summary)",
         f"{thousands(m['log_requests'])} / {thousands(m['fake_total'] or 0)}", bd_text, "", ""),
        ("counted requests (fake)", thousands(m["counted"] or 0),
         "REST requests charged to the core budget + GraphQL queries charged points", "", ""),
    ]
    if m["graphql"]:
        batches = m["gql_logged"]
        rows += [
            ("GraphQL batches", thousands(batches),
             f"fewest possible: {thousands(m['min_batches'])} (a first batch of "
             f"{GRAPHQL_FIRST_BATCH}, then {GRAPHQL_MAX_BATCH} a request); "
             f"{m['backlog'] / batches:.1f} refs a batch on average" if batches else "", "", ""),
            ("GraphQL points spent (binary / fake)",
             f"{thousands(m['bin_points'] or 0)} / {thousands(m['fake_points'] or 0)}",
             "the binary sums `rateLimit.cost`; the fake: limit − remaining at exit"
             + (f" ({m['points_caveat']})" if m["points_caveat"] else "")
             + (f"; {m['fake_points'] / batches:.2f} a batch" if batches and m["fake_points"]
                else ""), "", ""),
        ]
    rows += target_rows(m)
    rows += [
        ("spec baseline (refs × 750 ms)", fmt_dur(m["baseline"]),
         f"{m['baseline'] / m['wall']:.0f}× the measured wall time" if m["wall"] else "", "", ""),
        ("gap between requests (fake's log)",
         f"min {m['gap_min'] * 1000:.0f} ms, median {m['gap_median'] * 1000:.0f} ms"
         if m["gap_min"] is not None else "n/a",
         f"{m['gaps_short']} single gap{'' if m['gaps_short'] == 1 else 's'} more than "
         f"{GAP_SLACK * 1000:.0f} ms below the delay (arrival jitter); shortest 2 spacings "
         f"{fmt_span(m['span2_min'])}, shortest {PACE_SPAN} {fmt_span(m[f'span{PACE_SPAN}_min'])}",
         f"any {PACE_SPAN} spacings ≥ {fmt_span(PACE_SPAN * m['delay'])}", ok(pacing_ok(m))),
        ("after: `--status --json`",
         f"pending {st.get('pending')}, resolved {thousands(st.get('resolved', 0))}, "
         f"failed {thousands(st.get('failed', 0))}, total {thousands(st.get('total', 0))}", "",
         "pending 0", ok(st.get("pending") == 0)),
        ("after: rows in forge_issues + forge_prs", thousands(m["rows_total"]),
         f"{thousands(m['rows_in_backlog'])} for backlog numbers"
         + (f", {thousands(m['rows_extra'])} more listed along the way" if m["rows_extra"] else ""),
         f"{thousands(m['live_in_backlog'])} served within the backlog",
         ok(m["rows_in_backlog"] == m["live_in_backlog"])),
    ]
    dsc = m.get("disc")
    if dsc is not None:
        disc_ok = not any(p.startswith("discussion:") for p in res.problems)
        if m["graphql"]:
            rows += [
                ("after: comments (forge_comments)", thousands(dsc["comment_rows"]),
                 f"on {thousands(dsc['items_with_comments'])} items; {dsc['capped']} items have "
                 f"more than {COMMENTS_KEPT} (the first {COMMENTS_KEPT} kept, comment_count "
                 f"all); ids, positions, authors (deleted account = ghost), bodies, times",
                 f"the fake's: {thousands(dsc['want_comment_rows'])} on "
                 f"{thousands(dsc['want_items_with_comments'])} items", ok(disc_ok)),
                ("after: approvals, linked issues (forge_prs)",
                 f"{thousands(dsc['approvals'])} / {thousands(dsc['linked'])}",
                 f"{thousands(dsc['prs_approved'])} PRs approved, {thousands(dsc['prs_linked'])} "
                 f"PRs closing an issue", "the fake's, PR by PR", ok(disc_ok)),
                ("after: PR events ('forge.pr') with comments",
                 f"{thousands(dsc['pr_events_with_comments'])}",
                 "each PR's event: `comments` (`author: body` lines, ghost for a deleted "
                 "account), `approvals`, `linked_issues`",
                 f"{thousands(dsc['prs_with_comments'])} PRs have comments; all exact",
                 ok(disc_ok and dsc["pr_events_with_comments"] == dsc["prs_with_comments"])),
            ]
        else:
            rows += [
                ("after: discussion", f"{thousands(dsc['comment_rows'])} comments, "
                 f"{thousands(dsc['approvals'])} approvals, {thousands(dsc['linked'])} links",
                 "REST does not carry comments, approvals or linked issues; PR events have "
                 "empty `comments`", "none (REST)", ok(disc_ok)),
            ]
    print("| measure | value | detail | target | met |")
    print("| --- | ---: | --- | --- | :---: |")
    missed = []
    for name, value, detail, target, met in rows:
        print(f"| {name} | {value} | {detail} | {target} | {met} |")
        if met == "❌":
            missed.append(f"{res.key}: {name}")
    print()
    if m["rows_extra"] or m["refs_extra"]:
        print(f"The listing pages also returned {thousands(m['rows_extra'])} items outside the "
              f"backlog; patina-forge stored them and added {thousands(m['refs_extra'])} rows to "
              f"forge_refs for them (settled), so `--status` counts "
              f"{thousands(st.get('total', 0))} refs after the drain, not the backlog's "
              f"{thousands(m['backlog'])}. The row check above is on backlog numbers; every "
              f"extra row is an item the fake serves.\n")
    return missed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "patina-forge"),
                    help="patina-forge binary (default target/release/patina-forge)")
    ap.add_argument("--fake", default=os.path.join(ROOT, "target", "release", "examples",
                                                   "fake-forge"),
                    help="fake-forge binary (default target/release/examples/fake-forge)")
    ap.add_argument("--work", default=os.path.join(BENCH, "work", "resolve"),
                    help="repositories, dbs and logs (default bench/work/resolve)")
    ap.add_argument("--only", default="dense,sparse,quick",
                    help="comma-separated scenarios (default dense,sparse,quick)")
    ap.add_argument("--seed", type=int, default=1, help="sparse numbers' seed (default 1)")
    ap.add_argument("--dense-items", type=int, default=17_488, help="default 17488")
    ap.add_argument("--sparse-items", type=int, default=17_385, help="default 17385")
    ap.add_argument("--sparse-refs", type=int, default=8_845, help="default 8845")
    ap.add_argument("--pr-every", type=int, default=3, help="fake-forge's (default 3)")
    ap.add_argument("--missing-every", type=int, default=500, help="404s (default 500)")
    ap.add_argument("--deleted-every", type=int, default=700, help="410s (default 700)")
    ap.add_argument("--rate-limit", type=int, default=1_000_000,
                    help="the fake's announced hourly budget (default 1000000)")
    ap.add_argument("--graphql-limit", type=int, default=None,
                    help="the fake's hourly GraphQL points (default: the same as --rate-limit)")
    ap.add_argument("--api", choices=("graphql", "rest"), default="graphql",
                    help="the drains' --api (default graphql)")
    ap.add_argument("--quick-delay", type=parse_delay, default=0.05,
                    help="--delay of the quick scenario (default 50ms)")
    ap.add_argument("--strict", action="store_true",
                    help="also exit 3 when a performance target is missed")
    args = ap.parse_args()
    if args.graphql_limit is None:
        args.graphql_limit = args.rate_limit
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in ("dense", "sparse", "quick")]
    if bad:
        ap.error(f"unknown scenario(s): {', '.join(bad)}")
    if args.sparse_refs > args.sparse_items:
        ap.error("--sparse-refs must not exceed --sparse-items")

    load_before = loadavg()
    if load_before != "?" and float(load_before) > 0.5:
        log(f"warning: load average {load_before}; timings will be noisy")
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    for name, path in (("patina-forge", args.bin), ("fake-forge", args.fake)):
        if not os.access(path, os.X_OK):
            log(f"{path} not found: cargo build --release && "
                f"cargo build --release --example fake-forge")
            sys.exit(1)
    # private copies: a concurrent `cargo build` must not swap them mid-run
    args.bin_copy = os.path.join(work, "patina-forge")
    args.fake_copy = os.path.join(work, "fake-forge")
    shutil.copy2(args.bin, args.bin_copy)
    shutil.copy2(args.fake, args.fake_copy)
    ver = capture(args.bin_copy, "--version") or "patina-forge (no --version)"
    commit = capture("git", "-C", ROOT, "rev-parse", "--short", "HEAD")
    dirty = capture("git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no")
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(args.bin)))
    binary_note = ver + (f" (crate HEAD {commit}{', uncommitted changes' if dirty else ''}, "
                         f"binary built {built})" if commit else "")

    results, missed = [], []
    t_all = time.perf_counter()
    dense_repo = os.path.join(work, "repo-dense")
    if "dense" in only or "quick" in only:
        make_empty_repo(dense_repo)
    dense_backlog = set(range(1, FakeData(args.dense_items, args).newest() + 1))
    if "dense" in only:
        results.append(run_scenario(
            "dense", f"Dense: 1..{thousands(args.dense_items)} from discovery's range, "
            f"default pacing", args, work, dense_repo, args.dense_items, False, SPEC_DELAY,
            dense_backlog))
    sparse_shapes = None
    if "sparse" in only:
        numbers = sparse_numbers(args.seed, args.sparse_refs, args.sparse_items)
        sparse_repo = os.path.join(work, f"repo-sparse-{args.sparse_refs}-{args.sparse_items}"
                                         f"-s{args.seed}")
        t = time.perf_counter()
        sparse_shapes = make_sparse_repo(sparse_repo, numbers, args.seed)
        log(f"sparse repository ready in {time.perf_counter() - t:.1f} s: {sparse_shapes}")
        results.append(run_scenario(
            "sparse", f"Sparse: {thousands(args.sparse_refs)} commit refs in "
            f"1..{thousands(args.sparse_items)}, default pacing", args, work, sparse_repo,
            args.sparse_items, True, SPEC_DELAY, set(numbers)))
    if "quick" in only:
        results.append(run_scenario(
            "quick", f"Quick pacing check: dense with --delay "
            f"{args.quick_delay * 1000:.0f}ms", args, work, dense_repo, args.dense_items, False,
            args.quick_delay, dense_backlog))
    total_secs = time.perf_counter() - t_all

    # ---------------------------------------------------------------- report
    cmd = shlex.join(["python3", os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)]
                     + sys.argv[1:])
    gitv = (capture("git", "--version") or "git ?").replace("git version ", "git ")
    rustv = capture("rustc", "--version") or "rustc ?"
    api_name = "GraphQL" if args.api == "graphql" else "REST"
    print(f"### Resolve benchmark, {api_name} ({time.strftime('%Y-%m-%d')})\n")
    print(f"- Command (from the crate root): `{cmd}`")
    print(f"- Machine: {machine()}; load average {load_before} before, {loadavg()} after")
    print(f"- Tools: {gitv}, {rustv}, {binary_note}")
    print(f"- Fake: `examples/fake-forge.rs` on 127.0.0.1, `--pr-every {args.pr_every} "
          f"--missing-every {args.missing_every} --deleted-every {args.deleted_every} "
          f"--rate-limit {args.rate_limit} --graphql-limit {args.graphql_limit}` (the large "
          f"budget keeps the ledger's spreading of it at {3600 / args.rate_limit * 1000:.1f} ms "
          f"a request; GitHub's 5,000/h would impose 720 ms by itself), no latency, a new "
          f"connection per request; the generated discussion (comments, reviews, linked "
          f"issues) as documented in its header")
    for r in results:
        if "fake_missing" in r.m:
            items = args.sparse_items if r.key == "sparse" else args.dense_items
            print(f"- {r.key}: the fake holds 1..{thousands(items)} with "
                  f"{r.m['fake_missing']} missing (404) and {r.m['fake_deleted']} deleted (410) "
                  f"numbers; discovery: {r.m['discovery_requests']} request(s), "
                  f"{r.m['discovery_wall']:.2f} s")
    if sparse_shapes:
        print(f"- Sparse repository: {sum(sparse_shapes.values()) + 1 + sparse_shapes['merge']} "
              f"commits via `git fast-import`, one ref each: {sparse_shapes['squash']} "
              f"`fix: … (#N)`, {sparse_shapes['merge']} `Merge pull request #N from …` (real "
              f"merges), {sparse_shapes['fixes']} `Fixes #N` in a body; numbers from "
              f"`random.Random({args.seed})`; discovered with `--offline`")
    print(f"- Each drain: `--limit 100000 --api {args.api}`, fresh db and `PATINA_HOME` (own "
          f"pace ledger), "
          f"GITHUB_TOKEN set to the fake's dummy token; wall time from `time.perf_counter()` "
          f"around the process; whole benchmark {fmt_dur(total_secs)}\n")

    def dense_targets(m):
        if m["graphql"]:
            return [("requests", thousands(m["requests"]), "", f"≤ {TARGET_GRAPHQL_DENSE_REQUESTS}",
                     ok(m["requests"] <= TARGET_GRAPHQL_DENSE_REQUESTS)),
                    ("requests per ref", f"{m['rpr']:.4f}", "", "", ""),
                    ("wall time", fmt_dur(m["wall"]), per_spacing(m), "< 3 min",
                     ok(m["wall"] < TARGET_DENSE_WALL))]
        return [("requests per ref", f"{m['rpr']:.4f}", "", f"≤ {TARGET_DENSE_RPR}",
                 ok(m["rpr"] is not None and m["rpr"] <= TARGET_DENSE_RPR)),
                ("wall time", fmt_dur(m["wall"]),
                 per_spacing(m),
                 "< 3 min", ok(m["wall"] < TARGET_DENSE_WALL))]

    def sparse_targets(m):
        if m["graphql"]:
            return [("requests", thousands(m["requests"]), "",
                     f"≤ {TARGET_GRAPHQL_SPARSE_REQUESTS}",
                     ok(m["requests"] <= TARGET_GRAPHQL_SPARSE_REQUESTS)),
                    ("requests per ref", f"{m['rpr']:.4f}", "", "", ""),
                    ("wall time", fmt_dur(m["wall"]), per_spacing(m), "", "")]
        return [("requests per ref", f"{m['rpr']:.4f}", "patina's own code: up to 2",
                 f"≤ {TARGET_SPARSE_RPR:g}",
                 ok(m["rpr"] is not None and m["rpr"] <= TARGET_SPARSE_RPR)),
                ("wall time", fmt_dur(m["wall"]),
                 per_spacing(m), "", "")]

    def per_spacing(m):
        # n requests need n - 1 spacings: the ledger's floor is (n - 1) × delay
        return (f"{m['wall'] / max(m['requests'] - 1, 1):.3f} s per spacing "
                f"(wall / (requests − 1))")

    def quick_targets(m):
        spacings = max(m["requests"] - 1, 1)
        per = m["wall"] / spacings
        return [("requests per ref", f"{m['rpr']:.4f}", "", "", ""),
                ("wall time", fmt_dur(m["wall"]),
                 f"{per:.3f} s per spacing (wall / (requests − 1)); floor "
                 f"{spacings * m['delay']:.2f} s",
                 f"{QUICK_RANGE[0]:g}–{QUICK_RANGE[1]:g} s per spacing",
                 ok(QUICK_RANGE[0] - 0.001 <= per <= QUICK_RANGE[1]))]

    targets = {"dense": dense_targets, "sparse": sparse_targets, "quick": quick_targets}
    problems = []
    for r in results:
        missed += report_scenario(r, targets[r.key])
        problems += [f"{r.key}: {p}" for p in r.problems]
    if problems:
        print("**Correctness: FAILED**\n")
        for p in problems:
            print(f"- {p}")
    else:
        print("Correctness: every drain exited 0 and left pending 0; every backlog ref that the "
              "fake serves has its row in the right table (issue or PR) and every 404/410 "
              "is failed; the three request counts agree"
              + ("; the binary's GraphQL points equal the fake's; every item's comments, "
                 "comment count, approvals, linked issues and PR event are exactly what the "
                 "fake generated." if args.api == "graphql" else
                 "; no GraphQL query was sent, and the db holds no comments, approvals or "
                 "linked issues (REST does not carry them)."))
    if problems:
        log(f"FAILED: {len(problems)} problem(s), see above")
        sys.exit(1)
    if args.strict and missed:
        log(f"targets missed: {', '.join(missed)}")
        sys.exit(3)


if __name__ == "__main__":
    main()
