#!/usr/bin/env python3
"""Validate the bundled Anchor demo community (stdlib only, Python 3.11).

Checks posts.jsonl, reactions.jsonl and labels.jsonl in this folder (or in the
folder given as the first argument) against the Post / Reaction shapes of
shared/spec/api.md and the label set of shared/spec/labels.md, plus the
invariants the demo promises (ids, reply chains, time order). Prints counts.
Exit status 0 when everything passes, 1 otherwise.

    python3 demo/check_demo.py [DIR]
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

# --- contract sets, copied from shared/spec/labels.md (v1) -----------------
FLAW_LABELS = {
    "defect_complaint", "defect_report", "defect_hypothesis",
    "defect_workaround", "quirk_framing", "defect_framing",
}
LABOR_LABELS = {"newcomer_answer", "welcome", "empathy", "redirect_official", "mediation"}
SIGNAL_LABELS = {"venting", "hostility", "bias_accusation", "gratitude", "newcomer_question"}
LABELS = FLAW_LABELS | LABOR_LABELS | SIGNAL_LABELS
COMPONENTS = {
    "infotainment", "body", "interior", "hvac", "powertrain", "battery_charging",
    "chassis", "adas", "electrical", "app", "other",
}
CONDITIONS = {"cold", "heat", "rain", "speed", "rough_road", "batch",
              "software_version", "driving_habit"}
# --- api.md ------------------------------------------------------------------
REACTION_KINDS = {"like", "thanks", "helpful", "accepted_answer"}
SOURCES = {"app", "club"}
POST_KEYS = {"post_id", "thread_id", "author_id", "content", "created_at",
             "reply_to_post_id", "title", "source", "author"}
AUTHOR_KEYS = {"display_name", "joined_at", "is_official"}
REACTION_KEYS = {"reaction_id", "post_id", "from_author_id", "kind", "created_at"}
LABEL_KEYS = {"post_id", "labels", "component", "conditions"}

# --- demo conventions --------------------------------------------------------
POST_ID_RE = re.compile(r"^d-p\d{4}$")
THREAD_ID_RE = re.compile(r"^d-t\d{3}$")
MEMBER_ID_RE = re.compile(r"^d-u\d{3}$")
REACTION_ID_RE = re.compile(r"^d-r\d{4}$")
RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
DEMO_FIRST = datetime.fromisoformat("2026-03-01T00:00:00+08:00")
DEMO_LAST = datetime.fromisoformat("2026-06-01T00:00:00+08:00")
SIZE = {"posts": (350, 450), "threads": (40, 55), "reactions": (250, 400)}


class Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, where: str, msg: str) -> None:
        self.errors.append(f"{where}: {msg}")

    def time(self, where: str, field: str, value, demo_window: bool = False):
        if not isinstance(value, str) or not RFC3339_RE.match(value):
            self.err(where, f"{field} is not an RFC 3339 time with offset: {value!r}")
            return None
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as e:
            self.err(where, f"{field} does not parse: {e}")
            return None
        if demo_window:
            if not value.endswith("+08:00"):
                self.err(where, f"{field} should carry the +08:00 offset: {value}")
            if not (DEMO_FIRST <= t < DEMO_LAST):
                self.err(where, f"{field} outside March-May 2026: {value}")
        return t


def read_jsonl(ck: Checker, path: Path) -> list[dict]:
    rows = []
    if not path.exists():
        ck.err(path.name, "file missing")
        return rows
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                ck.err(f"{path.name}:{n}", "blank line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                ck.err(f"{path.name}:{n}", f"invalid JSON: {e}")
                continue
            if not isinstance(obj, dict):
                ck.err(f"{path.name}:{n}", "line is not a JSON object")
                continue
            rows.append(obj)
    return rows


def check_posts(ck: Checker, posts: list[dict]):
    by_id: dict[str, dict] = {}
    times: dict[str, datetime] = {}
    members: dict[str, dict] = {}
    threads: dict[str, list[dict]] = defaultdict(list)
    for i, p in enumerate(posts, 1):
        where = f"posts.jsonl:{i}"
        missing = POST_KEYS - p.keys()
        if missing:
            ck.err(where, f"missing fields {sorted(missing)}")
        extra = p.keys() - POST_KEYS
        if extra:
            ck.err(where, f"unexpected fields {sorted(extra)}")
        pid = p.get("post_id")
        if not isinstance(pid, str) or not POST_ID_RE.match(pid):
            ck.err(where, f"bad post_id {pid!r}")
            continue
        where = f"post {pid}"
        if pid in by_id:
            ck.err(where, "duplicate post_id")
            continue
        by_id[pid] = p
        if not isinstance(p.get("thread_id"), str) or not THREAD_ID_RE.match(p["thread_id"]):
            ck.err(where, f"bad thread_id {p.get('thread_id')!r}")
        if not isinstance(p.get("author_id"), str) or not MEMBER_ID_RE.match(p["author_id"]):
            ck.err(where, f"bad author_id {p.get('author_id')!r}")
        c = p.get("content")
        if not isinstance(c, str) or not (1 <= len(c) <= 20000):
            ck.err(where, "content must be a string of 1 to 20000 characters")
        elif not c.strip():
            ck.err(where, "content is only whitespace")
        t = ck.time(where, "created_at", p.get("created_at"), demo_window=True)
        if t:
            times[pid] = t
        r = p.get("reply_to_post_id")
        if r is not None and not isinstance(r, str):
            ck.err(where, "reply_to_post_id must be a string or null")
        if not isinstance(p.get("title"), str) or not p.get("title", "").strip():
            ck.err(where, "title must be a non-empty string")
        if p.get("source") not in SOURCES:
            ck.err(where, f"source must be one of {sorted(SOURCES)}")
        a = p.get("author")
        if not isinstance(a, dict):
            ck.err(where, "author must be an object")
        else:
            if set(a) != AUTHOR_KEYS:
                ck.err(where, f"author fields must be {sorted(AUTHOR_KEYS)}, got {sorted(a)}")
            if not isinstance(a.get("display_name"), str) or not a.get("display_name"):
                ck.err(where, "author.display_name must be a non-empty string")
            if not isinstance(a.get("is_official"), bool):
                ck.err(where, "author.is_official must be a boolean")
            jt = ck.time(where, "author.joined_at", a.get("joined_at"))
            aid = p.get("author_id")
            if aid in members and members[aid]["author"] != a:
                ck.err(where, f"author object differs from earlier posts of {aid}")
            elif aid not in members:
                members[aid] = {"author": a, "joined": jt, "first": t}
            if t and members[aid]["first"] and t < members[aid]["first"]:
                members[aid]["first"] = t
        threads[p.get("thread_id")].append(p)

    # reply targets and per-thread order
    for tid, ps in threads.items():
        titles = {p.get("title") for p in ps}
        sources = {p.get("source") for p in ps}
        if len(titles) != 1:
            ck.err(f"thread {tid}", "title differs between posts")
        if len(sources) != 1:
            ck.err(f"thread {tid}", "source differs between posts")
        openers = [p for p in ps if p.get("reply_to_post_id") is None]
        if len(openers) != 1 or openers[0] is not ps[0]:
            ck.err(f"thread {tid}", "exactly one opening post (reply_to null) must come first")
        prev = None
        for p in ps:
            pid = p["post_id"]
            t = times.get(pid)
            if prev and t and t < prev:
                ck.err(f"post {pid}", "posts of a thread are not in chronological order")
            prev = t or prev
            r = p.get("reply_to_post_id")
            if r is None:
                continue
            q = by_id.get(r)
            if q is None:
                ck.err(f"post {pid}", f"reply_to_post_id {r} does not exist")
                continue
            if q.get("thread_id") != tid:
                ck.err(f"post {pid}", f"reply target {r} is in another thread")
            if r == pid:
                ck.err(f"post {pid}", "post replies to itself")
            tq = times.get(r)
            if t and tq and not tq < t:
                ck.err(f"post {pid}", f"reply is not later than its target {r}")
    for aid, m in members.items():
        if m["joined"] and m["first"] and not m["joined"] < m["first"]:
            ck.err(f"member {aid}", "joined_at is not before the first post")
    return by_id, times, members, threads


def check_reactions(ck: Checker, reactions: list[dict], by_id, times, members):
    seen = set()
    triples = set()
    kinds = Counter()
    self_reactions = 0
    for i, r in enumerate(reactions, 1):
        where = f"reactions.jsonl:{i}"
        if set(r) != REACTION_KEYS:
            ck.err(where, f"fields must be {sorted(REACTION_KEYS)}, got {sorted(r)}")
        rid = r.get("reaction_id")
        if not isinstance(rid, str) or not REACTION_ID_RE.match(rid):
            ck.err(where, f"bad reaction_id {rid!r}")
        elif rid in seen:
            ck.err(where, f"duplicate reaction_id {rid}")
        seen.add(rid)
        pid = r.get("post_id")
        if pid not in by_id:
            ck.err(where, f"post_id {pid!r} does not exist")
        frm = r.get("from_author_id")
        if frm not in members:
            ck.err(where, f"from_author_id {frm!r} is not a member who posted")
        kind = r.get("kind")
        if kind not in REACTION_KINDS:
            ck.err(where, f"kind {kind!r} not in {sorted(REACTION_KINDS)}")
        kinds[kind] += 1
        t = ck.time(where, "created_at", r.get("created_at"))
        if t and pid in times and not t > times[pid]:
            ck.err(where, f"reaction is not later than post {pid}")
        if pid in by_id and frm == by_id[pid].get("author_id"):
            self_reactions += 1
        key = (pid, frm, kind)
        if key in triples:
            ck.err(where, f"same member gave the same reaction twice: {key}")
        triples.add(key)
    return kinds, self_reactions


def check_labels(ck: Checker, labels: list[dict], by_id):
    seen = set()
    label_counts = Counter()
    comps = Counter()
    conds = Counter()
    unlabeled = 0
    for i, l in enumerate(labels, 1):
        where = f"labels.jsonl:{i}"
        if set(l) != LABEL_KEYS:
            ck.err(where, f"fields must be {sorted(LABEL_KEYS)}, got {sorted(l)}")
        pid = l.get("post_id")
        if pid not in by_id:
            ck.err(where, f"post_id {pid!r} does not exist")
        if pid in seen:
            ck.err(where, f"duplicate annotation for {pid}")
        seen.add(pid)
        labs = l.get("labels")
        if not isinstance(labs, list) or not all(isinstance(x, str) for x in labs):
            ck.err(where, "labels must be a list of strings")
            labs = []
        bad = [x for x in labs if x not in LABELS]
        if bad:
            ck.err(where, f"unknown labels {bad}")
        if len(set(labs)) != len(labs):
            ck.err(where, "repeated label")
        if not labs:
            unlabeled += 1
        label_counts.update(x for x in labs if x in LABELS)
        comp = l.get("component")
        if comp is not None and comp not in COMPONENTS:
            ck.err(where, f"unknown component {comp!r}")
        cs = l.get("conditions")
        if not isinstance(cs, list) or not all(isinstance(x, str) for x in cs):
            ck.err(where, "conditions must be a list of strings")
            cs = []
        badc = [x for x in cs if x not in CONDITIONS]
        if badc:
            ck.err(where, f"unknown conditions {badc}")
        if len(set(cs)) != len(cs):
            ck.err(where, "repeated condition")
        is_flaw = any(x in FLAW_LABELS for x in labs)
        if not is_flaw and (comp is not None or cs):
            ck.err(where, "component/conditions given on a post without a flaw label")
        if is_flaw and comp is None:
            ck.err(where, "flaw post without a component")
        if comp:
            comps[comp] += 1
        conds.update(cs)
    missing = set(by_id) - seen
    if missing:
        ck.err("labels.jsonl", f"{len(missing)} posts have no annotation, e.g. {sorted(missing)[:3]}")
    return label_counts, comps, conds, unlabeled


def main() -> int:
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    ck = Checker()
    posts = read_jsonl(ck, base / "posts.jsonl")
    reactions = read_jsonl(ck, base / "reactions.jsonl")
    labels = read_jsonl(ck, base / "labels.jsonl")

    by_id, times, members, threads = check_posts(ck, posts)
    kinds, self_r = check_reactions(ck, reactions, by_id, times, members)
    label_counts, comps, conds, unlabeled = check_labels(ck, labels, by_id)

    sizes = {"posts": len(posts), "threads": len(threads), "reactions": len(reactions)}
    for k, (lo, hi) in SIZE.items():
        if not lo <= sizes[k] <= hi:
            ck.err("size", f"{k}={sizes[k]} outside the demo range {lo}-{hi}")

    officials = sorted(a for a, m in members.items() if m["author"].get("is_official") is True)
    per_member = Counter(p.get("author_id") for p in posts)
    self_replies = sum(
        1 for p in posts
        if p.get("reply_to_post_id") in by_id
        and by_id[p["reply_to_post_id"]].get("author_id") == p.get("author_id"))
    sources = Counter(p.get("source") for p in posts)

    print(f"posts       {len(posts)}  (app {sources.get('app', 0)}, club {sources.get('club', 0)}; "
          f"{self_replies} self-replies)")
    print(f"threads     {len(threads)}")
    print(f"members     {len(members)}  (official: {', '.join(officials) or 'none'}; "
          f"{sum(1 for n in per_member.values() if n <= 2)} post once or twice)")
    print(f"reactions   {len(reactions)}  " + ", ".join(f"{k} {kinds[k]}" for k in sorted(REACTION_KINDS))
          + f"  ({self_r} self-reactions)")
    share = unlabeled / len(labels) if labels else 0.0
    print(f"labels      {len(labels)} annotated, {unlabeled} without a label ({share:.0%})")
    for group, names in (("A flaw", FLAW_LABELS), ("B labor", LABOR_LABELS), ("C signal", SIGNAL_LABELS)):
        print(f"  {group:9}" + "  ".join(f"{n} {label_counts[n]}" for n in sorted(names)))
    print("  component  " + "  ".join(f"{k} {v}" for k, v in comps.most_common()))
    print("  conditions " + "  ".join(f"{k} {v}" for k, v in conds.most_common()))

    if ck.errors:
        print(f"\nFAILED: {len(ck.errors)} problem(s)")
        for e in ck.errors[:200]:
            print("  - " + e)
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
