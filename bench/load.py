"""Load benchmark (issue 6): a synthetic community through the embedded default stack, every figure from one run.

    .venv/bin/python bench/load.py [--posts 60000] [--members 20000] [--clients 50] [--seed 7] [--out DIR]
    (defaults: a few minutes on an idle 2-core machine; --help lists every knob)

1. Community: threads built from the demo community's and the training corpus's texts (openers from posts that
   start a thread, replies from posts written as replies), members with Zipf-distributed activity (a few very
   active, many quiet, a handful of brand staff), thread sizes from a mix of two geometric-like distributions
   (mostly short, some long), each reply answering an earlier post of its thread (the opener, the post just
   before, or any earlier one), created_at spread over `--days` with log-normal gaps between replies. Sent in
   chronological order. Deterministic for a given `--seed`.
2. The classifier's in-process rate on the posts of the sustained phase (a spawned process pinned to one core,
   the default backend, batches of 500 as the consumer fetches them, parent content and title as ingest
   attaches them).
3. The embedded default stack (Tansu + SQLite + the three services, `devstack.stack.Stack`) in a temp dir:
   a. the broker alone, before the services start: produce then consume `--broker-records` records of real
      post-event bytes on a scratch topic with the services' producer settings; then the services start and one
      batch goes through the whole pipeline untimed (every consumer has joined its group);
   b. burst: `--burst-posts` sent over HTTP as fast as ingest accepts them (ingest posts/s), then until they
      are all visible in recognition (end to end with an unbounded backlog, like pipeline_throughput.py);
   c. sustained: `--posts` sent with at most `--window` posts accepted but not yet stored in recognition
      (flow control from recognition's stored counter), so ingest never runs ahead of what the pipeline
      sustains; end to end = posts / (first request -> last post visible);
   d. reads while ingesting: posts paced at `--mixed-rate` (default: the 1,500 posts/s target, or 80% of the
      sustained rate when that is lower) while `--clients` clients (a process of their own) read recognition's
      endpoints round-robin, paced at `--read-rate` requests/s each for `--read-seconds`, then closed loop for
      `--closed-seconds` (the throughput ceiling; its latency is mostly the clients queueing on themselves);
   e. resident memory (VmRSS, VmHWM) of every process of each service and the broker at the end.
   Latency accepted -> visible, two ways: probes (one random post per batch; the client notes when the batch's
   202 arrived and polls GET /v1/posts/{id} every `--probe-interval` s until 200) and recognition's
   `anchor_pipeline_latency_seconds` histogram (ingest's `ingested_at` to the start of recognition's write,
   every post, bucket resolution) over the phase. A sample of stored posts gives the stages (ingested ->
   classified -> stored) from the posts' own timestamps.
4. Writes `<out>/load.json` and `<out>/load.md` (default bench/results/).
"""

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import platform
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpload
import httpx
import recognition_load  # bench/, this script's folder, is on sys.path
from prometheus_client.parser import text_string_to_metric_families

from devstack import demo, processes
from devstack.stack import Stack
from shared import app

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"end_to_end_posts_per_s": 1500.0, "pipeline_ratio": 0.5, "reads_p99_ms": 50.0}
SOURCES = ["app", "app", "club", "forum"]
ZONE = timezone(timedelta(hours=8))  # the community's local time, as in the demo
ZIPF = 0.9  # the member of activity rank r writes in proportion to 1 / r^ZIPF


# ---------------------------------------------------------------------------------------------------- community

def text_pools() -> tuple[list[tuple[str, str | None]], list[str], list[str]]:
    """(opener content and title, reply contents, thread titles) from the demo community and the corpus."""
    openers: list[tuple[str, str | None]] = []
    replies: list[str] = []
    titles: list[str] = []
    for post in demo.load_jsonl(demo.DEMO_DIR / "posts.jsonl"):
        if post.get("reply_to_post_id"):
            replies.append(post["content"])
        else:
            openers.append((post["content"], post.get("title")))
        if post.get("title"):
            titles.append(post["title"])
    for path in sorted((ROOT / "corpus").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line being edited: the corpus is read as it is
            content = (row.get("content") or "").strip()
            if not content:
                continue
            if row.get("parent_content"):
                replies.append(content)
            else:
                openers.append((content, row.get("title") or None))
            if row.get("title"):
                titles.append(row["title"])
    return openers, replies, sorted(set(titles))


def _quantiles(values: list[float], qs: Iterable[float]) -> dict[str, float | None]:
    s = sorted(values)
    return {f"p{round(q * 100)}": (s[min(len(s) - 1, int(q * len(s)))] if s else None) for q in qs}


@dataclass
class Community:
    posts: list[dict[str, Any]]  # chronological
    parent_content: dict[str, str]  # post_id -> content of the post it answers
    stats: dict[str, Any]


def build_community(total: int, members: int, *, seed: int, days: float, staff: int = 5) -> Community:
    rng = random.Random(seed)
    openers, replies, titles = text_pools()
    end = datetime.now(ZONE).replace(microsecond=0) - timedelta(minutes=2)
    start = end - timedelta(days=days)
    ids = [f"m{i}" for i in range(members)]
    # Zipf-like activity: a few members write a large share, most write a handful of posts or none.
    cum, acc = [], 0.0
    for r in range(members):
        acc += 1.0 / (r + 1) ** ZIPF
        cum.append(acc)
    staff_ids = [f"staff{j}" for j in range(staff)]
    authors = {m: {"display_name": f"车友{m[1:]}", "is_official": False} for m in ids}
    authors |= {s: {"display_name": f"官方客服{s[5:]}", "is_official": True} for s in staff_ids}

    def member() -> str:
        if staff and rng.random() < 0.02:
            return rng.choice(staff_ids)
        return ids[min(members - 1, bisect_left(cum, rng.random() * acc))]

    posts: list[dict[str, Any]] = []
    parent_content: dict[str, str] = {}
    sizes: list[int] = []
    depths: list[int] = []
    t = n = 0
    while n < total:
        t += 1
        thread = f"t{t}"
        # Mostly short threads (mean ~5), some long discussions (mean ~40), capped at 300.
        size = 1 + int(rng.expovariate(1 / 4) if rng.random() < 0.85 else rng.expovariate(1 / 40))
        size = min(size, 300, total - n)
        content, title = rng.choice(openers)
        title = title or rng.choice(titles)
        at = start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))
        source = rng.choice(SOURCES)
        first = f"p{n}"
        thread_posts = [{"post_id": first, "thread_id": thread, "author_id": member(), "content": content,
                         "created_at": at.isoformat(), "reply_to_post_id": None, "title": title, "source": source}]
        depth = {first: 0}
        for _ in range(1, size):
            at += timedelta(seconds=round(60 * rng.lognormvariate(2.7, 1.2)))  # median ~15 min, tail of hours
            if at > end:
                break
            earlier = thread_posts
            x = rng.random()
            parent = earlier[0] if x < 0.45 else earlier[-1] if x < 0.8 else rng.choice(earlier)
            post_id = f"p{n + len(thread_posts)}"
            thread_posts.append({"post_id": post_id, "thread_id": thread, "author_id": member(),
                                 "content": rng.choice(replies), "created_at": at.isoformat(),
                                 "reply_to_post_id": parent["post_id"], "title": title, "source": source})
            parent_content[post_id] = parent["content"]
            depth[post_id] = depth[parent["post_id"]] + 1
        n += len(thread_posts)
        sizes.append(len(thread_posts))
        depths.extend(depth.values())
        posts.extend(thread_posts)
    for p in posts:
        p["author"] = authors[p["author_id"]]
    posts.sort(key=lambda p: (p["created_at"], int(p["post_id"][1:])))
    per_member = Counter(p["author_id"] for p in posts if not p["author"]["is_official"])
    counts = sorted(per_member.values(), reverse=True)
    community_posts = sum(counts)

    def top_share(k: int) -> float:
        return round(sum(counts[:max(1, k)]) / community_posts, 3)

    stats = {
        "posts": len(posts), "threads": len(sizes), "members_posting": len(counts), "members_configured": members,
        "staff_posts": len(posts) - community_posts,
        "busiest_member_share": top_share(1), "top_1pct_share": top_share(len(counts) // 100),
        "top_10pct_share": top_share(len(counts) // 10),
        "members_with_at_most_3_posts_share": round(sum(c <= 3 for c in counts) / len(counts), 3),
        "posts_per_member": {"max": counts[0], **_quantiles([float(c) for c in counts], (0.5, 0.9, 0.99))},
        "thread_size": {"mean": round(len(posts) / len(sizes), 1), "max": max(sizes),
                        **_quantiles([float(s) for s in sizes], (0.5, 0.9, 0.99))},
        "reply_depth": {"max": max(depths), **_quantiles([float(d) for d in depths], (0.5, 0.9, 0.99))},
        "replies_share": round(len(parent_content) / len(posts), 3),
        "created_at": {"first": posts[0]["created_at"], "last": posts[-1]["created_at"]},
        "distinct_texts": len({p["content"] for p in posts}),
        "mean_chars": round(sum(len(p["content"]) for p in posts) / len(posts), 1),
    }
    return Community(posts, parent_content, stats)


@dataclass
class Batch:
    body: bytes
    posts: int
    probe: str  # one post of the batch whose visibility is timed


def batches(posts: list[dict[str, Any]], size: int, rng: random.Random) -> list[Batch]:
    out = []
    for i in range(0, len(posts), size):
        chunk = posts[i:i + size]
        out.append(Batch(json.dumps({"posts": chunk}, ensure_ascii=False).encode(), len(chunk),
                         rng.choice(chunk)["post_id"]))
    return out


# ---------------------------------------------------------------------------------------- classifier in process

def _classifier_rate(items: list[tuple[str, str | None, str | None]], batch: int) -> dict[str, Any]:
    """Runs in a spawned process: pinned to one core, BLAS single-threaded, the default backend."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from classifier import backends, config
    from classifier.backends import Item

    model = config.ClassifierSettings().model  # what the service loads: the default unless CLASSIFIER_MODEL__*
    name = model.backend
    backend = backends.load(name, model.options)
    work = [Item(c, p, t) for c, p, t in items]
    backend.classify(work[:200])  # warm up
    started = time.perf_counter()
    for i in range(0, len(work), batch):
        backend.classify(work[i:i + batch])
    seconds = time.perf_counter() - started
    return {"backend": name, "model_version": backend.version, "posts": len(work), "batch": batch,
            "seconds": round(seconds, 2), "posts_per_s": round(len(work) / seconds, 1), "cores": 1}


def classifier_in_process(community: Community, posts: list[dict[str, Any]], n: int, batch: int) -> dict[str, Any]:
    items = [(p["content"], community.parent_content.get(p["post_id"]), p.get("title")) for p in posts[:n]]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_classifier_rate, (items, batch))


# ------------------------------------------------------------------------------------------------------- broker

def event_values(community: Community, posts: list[dict[str, Any]], n: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of real post events (as ingest publishes them, parent attached) for a sample of posts."""
    from shared.events import ParentRef, PostEvent, new_envelope

    by_id = {p["post_id"]: p for p in community.posts}
    out = []
    for p in posts[:n]:
        parent = by_id.get(p["reply_to_post_id"] or "")
        ref = ParentRef(post_id=parent["post_id"], author_id=parent["author_id"], content=parent["content"]) \
            if parent else None
        event = PostEvent.model_validate({**p, **new_envelope(), "parent": ref})
        out.append((p["thread_id"].encode(), event.model_dump_json().encode()))
    return out


async def broker_rate(bootstrap: str, records: list[tuple[bytes, bytes]], total: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    from shared import kafka, topics
    from shared.settings import KafkaSettings

    topic = "bench.load.scratch"
    await kafka.ensure_topics(bootstrap, [topics.TopicSpec(topic, 6, 3600 * 1000)])
    producer = kafka.make_producer(KafkaSettings(bootstrap_servers=bootstrap), client_id="bench-load")
    await producer.start()
    size = 0
    try:
        started = time.perf_counter()
        pending = []
        for i in range(total):
            key, value = records[i % len(records)]
            size += len(value)
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        produce_s = time.perf_counter() - started
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        started = time.perf_counter()
        got = 0
        while got < total:
            batch = await consumer.getmany(timeout_ms=500)
            got += sum(len(v) for v in batch.values())
            if time.perf_counter() - started > 300:
                raise RuntimeError(f"consumed {got} of {total} scratch records in 300 s")
        consume_s = time.perf_counter() - started
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])  # its records would otherwise stay in the broker's memory
        deleted = True
    except Exception:
        deleted = False
    finally:
        await admin.close()
    mb = size / 1e6
    return {"records": total, "mean_record_bytes": round(size / total), "partitions": 6,
            "producer": "the services' settings (acks=all, linger_ms=5)",
            "produce_records_per_s": round(total / produce_s), "produce_mb_per_s": round(mb / produce_s, 1),
            "consume_records_per_s": round(total / consume_s), "consume_mb_per_s": round(mb / consume_s, 1),
            "scratch_topic_deleted": deleted}


# ------------------------------------------------------------------------------------------------ /proc, metrics

def _ppids() -> dict[int, int]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                out[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                continue
    return out


def tree(pid: int) -> list[int]:
    """The process and its descendants (recognition's snapshot worker, say)."""
    ppids = _ppids()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(c for c, pp in ppids.items() if pp == p)
    return out


def cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict[str, Any]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")}
    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return {"pid": pid, "cmd": cmd[:120], "rss_mb": round(int(fields.get("VmRSS", 0)) / 1024, 1),
            "peak_rss_mb": round(int(fields.get("VmHWM", 0)) / 1024, 1)}


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def metric_delta(before: dict, after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    def total(samples: dict) -> float:  # type: ignore[type-arg]
        return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)
    return total(after) - total(before)


def long_pauses(before: dict, after: dict, service: str, over_s: float = 0.05) -> dict[str, Any]:  # type: ignore[type-arg]
    """The garbage collector's pauses between two scrapes: how many, how many of them over `over_s`, and the upper
    bound of the slowest one's bucket."""
    buckets = bucket_increase(before, after, "anchor_gc_pause_seconds", service=service)
    count = buckets.get(float("inf"), 0.0)
    longest = min((le for le, v in buckets.items() if v >= count), default=None) if count else None
    return {"collections": int(count), f"over_{round(over_s * 1000)}_ms": int(count - buckets.get(over_s, count)),
            "longest_ms_at_most": None if longest is None or longest == float("inf") else round(1000 * longest, 1)}


def bucket_increase(before: dict, after: dict, name: str, **labels: str) -> dict[float, float]:  # type: ignore[type-arg]
    """A Prometheus histogram's cumulative bucket counts gained between two scrapes, by upper bound, summed over
    the series whose labels include `labels`."""
    buckets: dict[float, float] = {}
    for samples, sign in ((after, 1), (before, -1)):
        for (n, ls), v in samples.items():
            d = dict(ls)
            if n == f"{name}_bucket" and all(d.get(k) == x for k, x in labels.items()):
                le = float(d["le"])
                buckets[le] = buckets.get(le, 0.0) + sign * v
    return buckets


def histogram_quantiles(before: dict, after: dict, name: str, qs: Iterable[float],  # type: ignore[type-arg]
                        **labels: str) -> dict[str, Any]:
    """Quantiles of a Prometheus histogram's increase between two scrapes (linear within a bucket, like
    histogram_quantile); a quantile in the +Inf bucket is reported as the highest finite bound."""
    buckets = bucket_increase(before, after, name, **labels)
    bounds = sorted(buckets)
    count = buckets.get(float("inf"), 0.0)
    out: dict[str, Any] = {"count": int(count)}
    for q in qs:
        key = f"p{round(q * 100)}_ms"
        if count <= 0:
            out[key] = None
            continue
        rank, lower, below = q * count, 0.0, 0.0
        for le in bounds:
            if buckets[le] >= rank:
                if le == float("inf"):
                    out[key] = round(1000 * lower, 1)
                else:
                    share = (rank - below) / (buckets[le] - below) if buckets[le] > below else 1.0
                    out[key] = round(1000 * (lower + (le - lower) * share), 1)
                break
            lower, below = le, buckets[le]
    return out


STORED = re.compile(r'^anchor_recognition_records_stored_total\{kind="post"\} ([0-9.e+]+)$', re.M)


# ------------------------------------------------------------------------------------------------------- driver

@dataclass
class Phase:
    name: str
    posts: int
    first_send: float = 0.0
    last_accepted: float = 0.0
    visible_at: float = 0.0
    accepted: int = 0
    duplicates: int = 0
    retries: int = 0
    rate_limited: int = 0
    probes: list[float] = field(default_factory=list)


class Driver:
    """Sends batches to ingest and watches recognition's stored-post counter (and probe posts) from one event
    loop; batches are encoded before the clock starts, so the client's own CPU use stays small."""

    def __init__(self, stack: Stack, *, monitor_interval: float, probe_interval: float) -> None:
        self.stack = stack
        self.monitor_interval = monitor_interval
        self.probe_interval = probe_interval
        self.reserved = 0  # posts sent or being sent
        self.visible = 0  # posts stored in recognition (its counter; incremented after the commit)
        self.samples: list[tuple[float, int]] = []
        self.changed = asyncio.Event()
        self.probed = asyncio.Event()  # replaced and set whenever a probe was seen
        self.pending: dict[str, tuple[float, Phase]] = {}
        self.client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> "Driver":
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.client = httpx.AsyncClient(headers={"Authorization": f"Bearer {self.stack.token}"}, timeout=120,
                                        limits=limits)
        self._tasks = [asyncio.create_task(self._monitor()), asyncio.create_task(self._prober())]
        await self._scrape()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        assert self.client is not None
        await self.client.aclose()

    async def _scrape(self) -> None:
        assert self.client is not None
        text = (await self.client.get(f"{self.stack.url('recognition')}/metrics")).text
        m = STORED.search(text)
        value = int(float(m.group(1))) if m else 0
        self.samples.append((time.perf_counter(), value))
        if value != self.visible:
            self.visible = value
            event, self.changed = self.changed, asyncio.Event()
            event.set()

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(self.monitor_interval)
            try:
                await self._scrape()
            except httpx.HTTPError:
                continue

    async def _prober(self) -> None:
        assert self.client is not None
        base = self.stack.url("recognition")
        while True:
            await asyncio.sleep(self.probe_interval)
            ids = list(self.pending)
            if not ids:
                continue
            answers = await asyncio.gather(*(self.client.get(f"{base}/v1/posts/{i}") for i in ids),
                                           return_exceptions=True)
            now = time.perf_counter()
            for post_id, answer in zip(ids, answers, strict=True):
                if isinstance(answer, httpx.Response) and answer.status_code == 200:
                    accepted, phase = self.pending.pop(post_id)
                    phase.probes.append(now - accepted)
                    event, self.probed = self.probed, asyncio.Event()
                    event.set()

    async def _post(self, phase: Phase, batch: Batch) -> None:
        assert self.client is not None
        url = f"{self.stack.url('ingest')}/v1/posts"
        last = ""
        for _ in range(20):  # a re-sent batch is harmless: ingest de-duplicates on post_id
            try:
                r = await self.client.post(url, content=batch.body, headers={"Content-Type": "application/json"})
            except httpx.TransportError as exc:
                phase.retries += 1
                last = repr(exc)
                await asyncio.sleep(0.5)
                continue
            if r.status_code == 202:
                body = r.json()
                phase.accepted += body["accepted"]
                phase.duplicates += body["duplicates"]
                return
            last = f"{r.status_code} {r.text[:300]}"
            if r.status_code == 429:
                phase.rate_limited += 1
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
            elif r.status_code >= 500:
                phase.retries += 1
                await asyncio.sleep(0.5)
            else:
                raise RuntimeError(f"ingest answered {last}")
        raise RuntimeError(f"ingest kept refusing a batch: {last}")

    async def send(self, phase: Phase, work: list[Batch], *, senders: int, window: int | None = None,
                   rate: float | None = None, probe: bool = False, stop: Callable[[], bool] | None = None) -> None:
        """Sends `work` from `senders` concurrent clients. `window`: at most that many posts sent and not yet
        visible in recognition. `rate`: posts per second on a fixed schedule. `stop`: checked before each batch."""
        queue = iter(enumerate(work))
        cum = [0]
        for b in work:
            cum.append(cum[-1] + b.posts)
        t0 = time.perf_counter()
        phase.first_send = t0

        async def sender() -> None:
            while stop is None or not stop():  # a batch taken is always sent: the sent posts are a prefix
                k, batch = next(queue, (-1, None))
                if batch is None:
                    return
                if rate:
                    delay = t0 + cum[k] / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                while window is not None and self.reserved + batch.posts - self.visible > window:
                    try:
                        await asyncio.wait_for(self.changed.wait(), timeout=120)
                    except TimeoutError:
                        raise RuntimeError(f"{phase.name}: recognition stored nothing for 120 s "
                                           f"({self.visible} of {self.reserved} posts visible)") from None
                self.reserved += batch.posts
                await self._post(phase, batch)
                now = time.perf_counter()
                phase.last_accepted = max(phase.last_accepted, now)
                if probe:
                    self.pending[batch.probe] = (now, phase)

        await asyncio.gather(*(sender() for _ in range(senders)))

    async def drain(self, phase: Phase, *, limit_s: float) -> None:
        """Waits until recognition has stored every post sent so far (and every probe has been seen)."""
        deadline = time.perf_counter() + limit_s
        while self.visible < self.reserved:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{phase.name}: {self.visible} of {self.reserved} posts visible after {limit_s} s")
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=max(0.1, deadline - time.perf_counter()))
            except TimeoutError:
                continue
        phase.visible_at = next(t for t, v in self.samples if v >= self.reserved)
        while any(p is phase for _, p in self.pending.values()) and time.perf_counter() < deadline:
            try:
                await asyncio.wait_for(self.probed.wait(), timeout=1.0)
            except TimeoutError:
                continue

    def steady_rate(self, base: int, n: int) -> float | None:
        """Posts/s stored between 10% and 90% of the phase's posts (leaves out the ramp and the tail)."""
        lo, hi = base + 0.1 * n, base + 0.9 * n
        t_lo = next((t for t, v in self.samples if v >= lo), None)
        t_hi = next((t for t, v in self.samples if v >= hi), None)
        return round(0.8 * n / (t_hi - t_lo), 1) if t_lo is not None and t_hi is not None and t_hi > t_lo else None


async def stages(stack: Stack, post_ids: list[str]) -> dict[str, Any]:
    """The stages of stored posts from their own timestamps: ingested -> classified -> stored (server clocks)."""
    got: list[dict[str, Any]] = []
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {stack.token}"}, timeout=30) as client:
        sem = asyncio.Semaphore(8)

        async def one(post_id: str) -> None:
            async with sem:
                r = await client.get(f"{stack.url('recognition')}/v1/posts/{post_id}")
                if r.status_code == 200:
                    got.append(r.json())

        await asyncio.gather(*(one(i) for i in post_ids))

    def ms(a: str | None, b: str | None) -> float | None:
        if not a or not b:
            return None
        return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() * 1000

    out: dict[str, Any] = {"sample": len(got)}
    for name, a, b in (("ingested_to_classified", "ingested_at", "classified_at"),
                       ("classified_to_stored", "classified_at", "stored_at"),
                       ("ingested_to_stored", "ingested_at", "stored_at")):
        values = [v for v in (ms(p.get(a), p.get(b)) for p in got) if v is not None]
        out[name] = {k + "_ms": (round(v, 1) if v is not None else None)
                     for k, v in _quantiles(values, (0.5, 0.99)).items()}
    out["model_versions"] = sorted({p["classification"]["model_version"] for p in got})
    return out


# ------------------------------------------------------------------------------------------------------ readers

def _readers(config: dict[str, Any], results: Any) -> None:
    """Runs in a process of its own (its own GIL and event loop), so the timing is not skewed by the senders. Puts
    ("mode", name) as each mode starts and ("mode", None) at the end, so the parent scrapes the services' metrics
    over exactly the paced reads, then ("result", reads)."""
    reads = asyncio.run(_read_load(**config, mark=lambda mode: results.put(("mode", mode))))
    results.put(("result", reads))


async def _read_load(base: str, token: str, members: list[str], top: list[str], post_ids: list[str],
                     clients: int, rate: float, seconds: float, closed_seconds: float, seed: int,
                     mark: Callable[[str | None], None] = lambda _: None) -> dict[str, Any]:
    rng = random.Random(seed)

    def who() -> str:  # half the busiest members (the expensive reads), half anyone who has posted
        return rng.choice(top) if rng.random() < 0.5 else rng.choice(members)

    endpoints = recognition_load.read_paths(rng, member=who, post=lambda: rng.choice(post_ids))
    out: dict[str, Any] = {}
    for mode, duration, pace in (("paced", seconds, rate), ("closed_loop", closed_seconds, 0.0)):
        if duration > 0:
            mark(mode)
            out[mode] = await _read_mode(base, token, endpoints, clients=clients, pace=pace, duration=duration)
    mark(None)
    return out


async def _read_mode(base: str, token: str, endpoints: list[tuple[str, Callable[[], str]]], *, clients: int,
                     pace: float, duration: float) -> dict[str, Any]:
    """`clients` readers for `duration` s, each on a keep-alive connection of its own (`httpload`: httpx cost 3 ms
    of CPU a request, enough to make the load generator's own queueing part of what it measured): each sends
    `pace` requests/s on a fixed schedule (0: closed loop, the next request as soon as the last is answered),
    cycling through the endpoints."""
    latencies: dict[str, list[float]] = {name: [] for name, _ in endpoints}
    statuses: dict[str, Counter[str]] = {name: Counter() for name, _ in endpoints}
    retried: Counter[str] = Counter()
    t0 = time.perf_counter()
    deadline = t0 + duration

    async def worker(k: int) -> None:
        i = k  # client k starts at endpoint k: every endpoint is being read at any moment
        start = t0 + (k / (pace * clients) if pace else 0.0)
        sent = 0
        conn = httpload.Connection(base, {"Authorization": f"Bearer {token}"})
        try:
            while time.perf_counter() < deadline:
                if pace:
                    due = start + sent / pace
                    if due > time.perf_counter():
                        await asyncio.sleep(due - time.perf_counter())
                    if time.perf_counter() >= deadline:
                        return
                name, path = endpoints[i % len(endpoints)]
                i, sent = i + 1, sent + 1
                began, before = time.perf_counter(), conn.retried
                try:
                    status, _ = await conn.get(path())
                    statuses[name][str(status)] += 1
                except (OSError, TimeoutError) as exc:
                    statuses[name][type(exc).__name__] += 1
                finally:
                    # A kept-alive connection found closed and the request sent again: answered, but shown.
                    retried[name] += conn.retried - before
                latencies[name].append(time.perf_counter() - began)
        finally:
            await conn.close()

    # This process's own loop lag: when the shared cores starve the load generator, its answers are read late and
    # every latency it measures grows by that much, which is none of the service's doing.
    lags: list[float] = []
    watcher = asyncio.create_task(app.watch_loop(lags.append))
    await asyncio.gather(*(worker(k) for k in range(clients)))
    watcher.cancel()
    elapsed = time.perf_counter() - t0

    def ms(values: list[float]) -> dict[str, float | None]:
        return {k + "_ms": (round(1000 * v, 1) if v is not None else None)
                for k, v in _quantiles(values, (0.5, 0.99)).items()}

    table: dict[str, Any] = {}
    every: list[float] = []
    for name, values in latencies.items():
        every += values
        table[name] = {"requests": len(values), **ms(values),
                       "errors": sum(n for s, n in statuses[name].items() if s not in ("200", "404")),
                       "not_found": statuses[name].get("404", 0),
                       "statuses": dict(statuses[name]), "retried": retried[name]}
    overall = {"requests": len(every), "requests_per_s": round(len(every) / elapsed, 1), **ms(every),
               "errors": sum(t["errors"] for t in table.values())}
    return {"clients": clients, "seconds": round(elapsed, 1), "requests_per_s_per_client": pace or None,
            "offered_requests_per_s": pace * clients or None, "overall": overall, "endpoints": table,
            "client_loop_lag": {"wake_ups": len(lags), **ms(lags),
                                "max_ms": round(1000 * max(lags), 1) if lags else None}}


# ------------------------------------------------------------------------------------------------------- report

def machine() -> dict[str, Any]:
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kb = 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": os.cpu_count(), "usable_cores": usable, "cpu": model or platform.processor(),
            "memory_gb": round(mem_kb / 1024 / 1024, 1), "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _pct(share: float | None) -> float | None:
    return None if share is None else 100 * share


def _fmt(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float | int):
        text = f"{value:,.{digits}f}"
        return f"{text} {unit}".strip()
    return str(value)


def markdown(r: dict[str, Any]) -> str:
    m, t, c = r["machine"], r["targets"], r["community"]
    lines = [
        "# Load benchmark (issue 6)", "",
        f"- date: {r['measured_at']}",
        f"- machine: {m['cores']} cores ({m['usable_cores']} usable), {m['cpu']}, {m['memory_gb']} GB, "
        f"Python {m['python']}",
        f"- load average at start / end: {', '.join(map(str, m['load_average_at_start']))} / "
        f"{', '.join(map(str, m['load_average_at_end']))}",
        f"- command: `{r['command']}`",
        f"- revision: {r['revision']}; classifier: {r['classifier_in_process']['model_version']}",
        "- stack: embedded default (Tansu in memory, SQLite, the three services), started by `devstack.stack.Stack`",
        "",
    ]
    if r.get("warnings"):
        lines += [*(f"**Warning:** {w}" for w in r["warnings"]), ""]
    lines += [
        "## Against the targets", "",
        "| figure | measured | target | result |", "|---|---|---|---|",
        f"| end to end, sustained (accepted → visible in recognition) | "
        f"{_fmt(t['end_to_end_posts_per_s']['measured'], 'posts/s')} | ≥ {t['end_to_end_posts_per_s']['target']:,.0f}"
        f" posts/s | {t['end_to_end_posts_per_s']['result']} |",
        f"| pipeline / classifier in process | {_fmt(_pct(t['pipeline_ratio']['measured']))}% "
        f"({_fmt(r['sustained']['end_to_end_posts_per_s'])} / "
        f"{_fmt(r['classifier_in_process']['posts_per_s'])} posts/s) | ≥ {100 * t['pipeline_ratio']['target']:.0f}% "
        f"| {t['pipeline_ratio']['result']} |",
        f"| recognition reads p99, {r['config']['clients']} clients while ingesting | "
        f"{_fmt(t['reads_p99_ms']['measured'], 'ms', 1)} | ≤ {t['reads_p99_ms']['target']:.0f} ms | "
        f"{t['reads_p99_ms']['result']} |",
        "",
        "## All figures", "",
        "| figure | value | how |", "|---|---|---|",
    ]
    b, cl, bu, su, mx = r["broker"], r["classifier_in_process"], r["burst"], r["sustained"], r["mixed"]
    lines += [
        f"| broker produce | {_fmt(b['produce_records_per_s'], 'records/s')} ({b['produce_mb_per_s']} MB/s) | "
        f"{b['records']:,} records of {b['mean_record_bytes']} bytes (real post events), aiokafka, "
        f"{b['partitions']} partitions, {b['producer']} |",
        f"| broker consume | {_fmt(b['consume_records_per_s'], 'records/s')} ({b['consume_mb_per_s']} MB/s) | "
        "the same records, one consumer from the earliest offset |",
        f"| classifier in process | {_fmt(cl['posts_per_s'], 'posts/s')} | {cl['posts']:,} posts of the sustained "
        f"phase, batches of {cl['batch']}, one process pinned to one core |",
        f"| ingest over HTTP | {_fmt(bu['ingest_posts_per_s'], 'posts/s')} | {bu['posts']:,} posts, batches of "
        f"{r['config']['batch']} from {r['config']['senders']} concurrent clients, first request → last 202 |",
        f"| end to end, burst (unbounded backlog) | {_fmt(bu['end_to_end_posts_per_s'], 'posts/s')} | the same posts, "
        "first request → last visible |",
        f"| end to end, sustained | {_fmt(su['end_to_end_posts_per_s'], 'posts/s')} (steady "
        f"{_fmt(su['steady_posts_per_s'], 'posts/s')}) | {su['posts']:,} posts, at most {r['config']['window']:,} "
        "accepted and not yet visible; steady: between 10% and 90% of them visible |",
        f"| latency at saturation, probes p50 / p99 | {_fmt(su['latency_probes']['p50_ms'], 'ms')} / "
        f"{_fmt(su['latency_probes']['p99_ms'], 'ms')} | {su['latency_probes']['count']} probes (202 received → "
        "GET /v1/posts/{id} answers 200); mostly the window's queue |",
        f"| latency at saturation, recognition histogram p50 / p99 | "
        f"{_fmt(su['latency_histogram']['p50_ms'], 'ms')} / {_fmt(su['latency_histogram']['p99_ms'], 'ms')} | "
        "`anchor_pipeline_latency_seconds` over the phase: ingested_at → recognition's write |",
        f"| ingest while reading | {_fmt(mx['paced_at_posts_per_s'], 'posts/s')} paced, "
        f"{_fmt(mx['end_to_end_posts_per_s'], 'posts/s')} end to end | {mx['posts']:,} posts during the reads |",
        f"| latency while reading, probes p50 / p99 | {_fmt(mx['latency_probes']['p50_ms'], 'ms')} / "
        f"{_fmt(mx['latency_probes']['p99_ms'], 'ms')} | {mx['latency_probes']['count']} probes; posts paced, so "
        "below saturation unless the reads slow the pipeline under the pace |",
        f"| latency while reading, histogram p50 / p99 | {_fmt(mx['latency_histogram']['p50_ms'], 'ms')} / "
        f"{_fmt(mx['latency_histogram']['p99_ms'], 'ms')} | |",
    ]
    closed = r["reads_while_ingesting"].get("closed_loop")
    if closed:
        o = closed["overall"]
        lines.append(f"| reads, closed loop while ingesting | {_fmt(o['requests_per_s'], 'requests/s')}, p50 "
                     f"{_fmt(o['p50_ms'], 'ms', 1)}, p99 {_fmt(o['p99_ms'], 'ms', 1)} | {closed['clients']} clients, "
                     "each sends its next request when the last is answered |")
    lines += ["", "## Reads while ingesting (client side, including HTTP)", ""]
    for mode, data in r["reads_while_ingesting"].items():
        pace = f"{data['requests_per_s_per_client']:g} requests/s each" if data["requests_per_s_per_client"] \
            else "closed loop"
        offered = f" (offered {data['offered_requests_per_s']:g})" if data.get("offered_requests_per_s") else ""
        lines += [f"{mode.replace('_', ' ')}: {data['clients']} clients, {pace}, {data['seconds']} s, "
                  f"{data['overall']['requests_per_s']} requests/s answered{offered}; a client whose answer "
                  "comes later than its next turn sends at once", "",
                  "| endpoint | requests | p50 ms | p99 ms | errors | 404 | sent again |",
                  "|---|---|---|---|---|---|---|"]
        for name, e in [*data["endpoints"].items(), ("**all**", data["overall"])]:
            lines.append(f"| {name} | {e['requests']:,} | {_fmt(e['p50_ms'], '', 1)} | {_fmt(e['p99_ms'], '', 1)} | "
                         f"{e['errors']} | {e.get('not_found', '')} | {e.get('retried', '')} |")
        lag = data.get("client_loop_lag")
        if lag and lag["wake_ups"]:
            lines += ["", f"The readers' own event-loop lag (a 0.1 s timer, {lag['wake_ups']} wake-ups): p50 "
                      f"{_fmt(lag['p50_ms'], 'ms', 1)}, p99 {_fmt(lag['p99_ms'], 'ms', 1)}, max "
                      f"{_fmt(lag['max_ms'], 'ms', 1)}. The load generator shares the two cores; each of its "
                      "latencies includes up to this much of its own waiting."]
        lines.append("")
    lines += ["Server side (recognition's `anchor_http_request_duration_seconds` over the paced reads; the post "
              "route includes the latency probes):", "", "| route | requests | p50 ms | p99 ms |", "|---|---|---|---|"]
    for route, q in r["mixed"]["server_side"].items():
        lines.append(f"| `{route}` | {q['count']:,} | {_fmt(q['p50_ms'], '', 1)} | {_fmt(q['p99_ms'], '', 1)} |")
    if r["mixed"].get("event_loop_lag"):
        lines += ["", "Event-loop lag over the paced reads (`anchor_event_loop_lag_seconds`: how late each service's "
                  "loop woke a 0.1 s timer; a request waits about this long before its handler, and its server-side "
                  "timer, start):", "", "| service | wake-ups | p50 ms | p99 ms |", "|---|---|---|---|"]
        for name, q in r["mixed"]["event_loop_lag"].items():
            lines.append(f"| {name} | {q['count']:,} | {_fmt(q['p50_ms'], '', 1)} | {_fmt(q['p99_ms'], '', 1)} |")
    if r["mixed"].get("gc_pauses"):
        lines += ["", "Garbage-collector pauses in each service's serving process over the paced reads "
                  "(`anchor_gc_pause_seconds`; a pause holds the interpreter, so every request in flight waits):", "",
                  "| service | collections | over 50 ms | slowest at most |", "|---|---|---|---|"]
        for name, g in r["mixed"]["gc_pauses"].items():
            lines.append(f"| {name} | {g['collections']:,} | {g['over_50_ms']} | "
                         f"{_fmt(g['longest_ms_at_most'], 'ms', 1)} |")
    lines += ["", "## Where the time goes", "",
              "Stages from the posts' own timestamps (a sample of stored posts):", "",
              "| phase | sample | ingested → classified p50 / p99 ms | classified → stored p50 / p99 ms |",
              "|---|---|---|---|"]
    for name in ("sustained", "mixed"):
        s = r[name]["stages"]
        lines.append(f"| {name} | {s['sample']} | {_fmt(s['ingested_to_classified']['p50_ms'])} / "
                     f"{_fmt(s['ingested_to_classified']['p99_ms'])} | {_fmt(s['classified_to_stored']['p50_ms'])} / "
                     f"{_fmt(s['classified_to_stored']['p99_ms'])} |")
    procs = list(r["sustained"]["cpu_seconds"])
    lines += ["", "CPU seconds per process tree, per phase (wall seconds in brackets; 2 cores give 2 CPU s per s):", "",
              "| phase | " + " | ".join(procs) + " |", "|---|" + "---|" * len(procs)]
    for name in ("burst", "sustained", "mixed"):
        cpu = r[name]["cpu_seconds"]
        lines.append(f"| {name} ({r[name]['wall_seconds']} s) | " + " | ".join(f"{cpu[p]:.1f}" for p in procs) + " |")
    su_m = r["sustained"]["service_metrics"]
    lines += ["", f"In the sustained phase the classifier spent {su_m['classifier_model_seconds']} s in the model "
              f"({_fmt(su_m['classifier_model_posts_per_s'], 'posts/s')} while in it) and "
              f"{su_m['classifier_batch_seconds']} s in its consumer batches; recognition "
              f"{su_m['recognition_batch_seconds']} s in its consumer batches.", "",
              "## Resident memory at the end", "",
              "| service | RSS MB | peak RSS MB | with its children: RSS MB | peak RSS MB | processes |",
              "|---|---|---|---|---|---|"]
    pm, ts = c["posts_per_member"], c["thread_size"]
    for name, mem in r["memory"].items():
        main_proc = mem["processes"][0]
        lines.append(f"| {name} | {main_proc['rss_mb']} | {main_proc['peak_rss_mb']} | {mem['rss_mb']} | "
                     f"{mem['peak_rss_mb']} | {len(mem['processes'])} |")
    lines += ["", "From `/proc/<pid>/status` (VmRSS, VmHWM) at the end of the run; children are recognition's "
              "snapshot worker, its multiprocessing helper, its writer and its reader processes (their peaks are "
              "summed, so the sum's peak is an upper bound).", "",
              "## Community", "",
              f"{c['posts']:,} posts in {c['threads']:,} threads by {c['members_posting']:,} members "
              f"(+ {c['staff_posts']:,} staff posts); {c['distinct_texts']:,} distinct texts, mean {c['mean_chars']} "
              f"characters; created {c['created_at']['first']} … {c['created_at']['last']}.", "",
              "| skew | value |", "|---|---|",
              f"| busiest member's share of posts | {100 * c['busiest_member_share']:.1f}% |",
              f"| top 1% / top 10% of members | {100 * c['top_1pct_share']:.0f}% / {100 * c['top_10pct_share']:.0f}% |",
              f"| members with at most 3 posts | {100 * c['members_with_at_most_3_posts_share']:.0f}% |",
              f"| posts per member p50 / p90 / p99 / max | {pm['p50']:.0f} / {pm['p90']:.0f} / {pm['p99']:.0f} / "
              f"{pm['max']} |",
              f"| thread size mean / p50 / p90 / p99 / max | {ts['mean']} / {ts['p50']:.0f} / {ts['p90']:.0f} / "
              f"{ts['p99']:.0f} / {ts['max']} |",
              f"| reply depth p50 / p90 / max | {c['reply_depth']['p50']:.0f} / {c['reply_depth']['p90']:.0f} / "
              f"{c['reply_depth']['max']} |", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------- main

def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _verdict(measured: float | None, target: float, higher_is_better: bool) -> str:
    if measured is None:
        return "n/a"
    ok = measured >= target if higher_is_better else measured <= target
    return "pass" if ok else "fail"


def _probe_stats(values: list[float]) -> dict[str, Any]:
    q = _quantiles(values, (0.5, 0.99))
    return {"count": len(values), **{k + "_ms": (round(1000 * v) if v is not None else None) for k, v in q.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=60_000, help="posts in the sustained phase")
    parser.add_argument("--burst-posts", type=int, default=None,
                        help="posts in the ingest burst (default: a quarter of --posts, at most 15,000)")
    parser.add_argument("--members", type=int, default=20_000, help="members who may post (most post little)")
    parser.add_argument("--days", type=float, default=60.0, help="history the community's created_at spans")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=500, help="posts per POST /v1/posts")
    parser.add_argument("--senders", type=int, default=4, help="concurrent ingest clients")
    parser.add_argument("--window", type=int, default=4000,
                        help="sustained phase: most posts accepted and not yet visible in recognition")
    parser.add_argument("--clients", type=int, default=50, help="concurrent recognition readers")
    parser.add_argument("--read-rate", type=float, default=2.0, help="requests/s per reader in the paced reads")
    parser.add_argument("--read-seconds", type=float, default=30.0)
    parser.add_argument("--closed-seconds", type=float, default=10.0, help="closed-loop reads after the paced ones")
    parser.add_argument("--mixed-rate", type=float, default=None,
                        help="posts/s while reading (default: 1,500, or 80%% of the sustained rate if lower)")
    parser.add_argument("--classifier-posts", type=int, default=5_000)
    parser.add_argument("--broker-records", type=int, default=50_000)
    parser.add_argument("--probe-interval", type=float, default=0.1)
    parser.add_argument("--monitor-interval", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=900.0, help="per phase, for the pipeline to catch up")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where load.json and load.md are written")
    args = parser.parse_args()
    burst_n = args.burst_posts if args.burst_posts is not None else min(15_000, max(500, args.posts // 4))
    mixed_cap = args.mixed_rate or TARGETS["end_to_end_posts_per_s"]
    mixed_pool = int(mixed_cap * (args.read_seconds + args.closed_seconds + 15))
    command = " ".join([".venv/bin/python", "bench/load.py", *map(shlex.quote, sys.argv[1:])])
    info = machine()
    started_at = datetime.now(UTC)

    total = args.batch + burst_n + args.posts + mixed_pool
    print(f"building the community: {total:,} posts, {args.members:,} members ...", flush=True)
    community = build_community(total, args.members, seed=args.seed, days=args.days)
    cuts = [0, args.batch, args.batch + burst_n, args.batch + burst_n + args.posts, total]
    warm_posts, burst_posts, sustained_posts, mixed_posts = (community.posts[a:b] for a, b in itertools.pairwise(cuts))
    rng = random.Random(args.seed + 1)
    warm_b, burst_b, sustained_b, mixed_b = (batches(p, args.batch, rng)
                                             for p in (warm_posts, burst_posts, sustained_posts, mixed_posts))
    print(json.dumps(community.stats, ensure_ascii=False), flush=True)

    print(f"classifier in process on {min(args.classifier_posts, len(sustained_posts)):,} posts ...", flush=True)
    classifier = classifier_in_process(community, sustained_posts, args.classifier_posts, 500)
    print(json.dumps(classifier), flush=True)
    records = event_values(community, sustained_posts, 2000)

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="anchor-load-") as tmp:
        stack = Stack(data_dir=Path(tmp), token=os.urandom(12).hex(),
                      ports={n: processes.free_port() for n in ("broker", "ingest", "classifier", "recognition")})
        stack.check_ports()
        try:
            stack.start_broker()
            print(f"broker: {args.broker_records:,} records ...", flush=True)
            broker = asyncio.run(broker_rate(stack.bootstrap, records, args.broker_records))
            print(json.dumps(broker), flush=True)
            for name in processes.SERVICES:
                stack.start_service(name)
            pids = {name: child.proc.pid for name, child in stack.children.items() if child.proc is not None}
            work = {"warm_up": (warm_posts, warm_b), "burst": (burst_posts, burst_b),
                    "sustained": (sustained_posts, sustained_b), "mixed": (mixed_posts, mixed_b)}
            result = asyncio.run(pipeline(stack, pids, args, work))
        except BaseException:
            for name in ("broker", *processes.SERVICES):
                log = Path(tmp) / "logs" / f"{name}.log"
                if log.exists():
                    print(f"--- {name} log (last lines) ---\n{_tail(log)}", file=sys.stderr)
            raise
        finally:
            stack.stop()

    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    e2e = result["sustained"]["end_to_end_posts_per_s"]
    ratio = round(e2e / classifier["posts_per_s"], 3) if classifier["posts_per_s"] else None
    p99 = result["reads_while_ingesting"].get("paced", {}).get("overall", {}).get("p99_ms")
    report = {
        "measured_at": started_at.isoformat(timespec="seconds"), "command": command, "machine": info,
        "revision": git_revision(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()} | {"burst_posts": burst_n},
        "targets": {
            "end_to_end_posts_per_s": {"measured": e2e, "target": TARGETS["end_to_end_posts_per_s"],
                                       "result": _verdict(e2e, TARGETS["end_to_end_posts_per_s"], True)},
            "pipeline_ratio": {"measured": ratio, "target": TARGETS["pipeline_ratio"],
                               "result": _verdict(ratio, TARGETS["pipeline_ratio"], True)},
            "reads_p99_ms": {"measured": p99, "target": TARGETS["reads_p99_ms"],
                             "result": _verdict(p99, TARGETS["reads_p99_ms"], False)},
        },
        "community": community.stats, "classifier_in_process": classifier, "broker": broker, **result,
    }
    warnings = []
    if max(info["load_average_at_start"][0], info["load_average_at_end"][0]) > 0.5 * (info["usable_cores"] or 1):
        warnings.append(f"the machine was not idle (load average {info['load_average_at_start'][0]} at the start, "
                        f"{info['load_average_at_end'][0]} at the end, {info['usable_cores']} cores): the figures are "
                        "not representative.")
    versions = result["sustained"]["stages"]["model_versions"]
    if versions and classifier["model_version"] not in versions:
        warnings.append(f"the service classified with {versions}, the in-process rate is of "
                        f"{classifier['model_version']}.")
    if result["mixed"]["ingestion_ended_early_s"] > 0:
        warnings.append(f"the posts for the reads phase ran out {result['mixed']['ingestion_ended_early_s']} s "
                        "before the reads ended (raise --mixed-rate's pool via --read-seconds, or lower --mixed-rate).")
    report["warnings"] = warnings
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (args.out / "load.md").write_text(markdown(report) + "\n")
    print(markdown(report))
    print(f"\nwritten: {args.out / 'load.json'}, {args.out / 'load.md'}")


async def pipeline(stack: Stack, pids: dict[str, int], args: argparse.Namespace,
                   work: dict[str, tuple[list[dict[str, Any]], list[Batch]]]) -> dict[str, Any]:
    """The phases against the running stack: burst, sustained, reads while ingesting, then memory."""
    (warm_posts, warm_b), (burst_posts, burst_b), (sustained_posts, sustained_b), (mixed_posts, mixed_b) = (
        work["warm_up"], work["burst"], work["sustained"], work["mixed"])

    async def scrape_all() -> dict[str, dict]:  # type: ignore[type-arg]
        async with httpx.AsyncClient(timeout=30) as client:
            texts = await asyncio.gather(*(client.get(f"{stack.url(n)}/metrics") for n in processes.SERVICES))
        return {n: metric_samples(t.text) for n, t in zip(processes.SERVICES, texts, strict=True)}

    def cpu() -> dict[str, float]:
        out = {name: sum(cpu_seconds(p) for p in tree(pid)) for name, pid in pids.items()}
        times = os.times()
        out["bench (this client)"] = times.user + times.system
        return out

    def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: round(after[k] - before.get(k, 0.0), 1) for k in after}

    result: dict[str, Any] = {}
    async with Driver(stack, monitor_interval=args.monitor_interval, probe_interval=args.probe_interval) as drv:
        # Warm-up, not timed: one batch through the whole pipeline, so every consumer has joined its group.
        await drv.send(Phase("warm_up", len(warm_posts)), warm_b, senders=1)
        await drv.drain(Phase("warm_up", len(warm_posts)), limit_s=args.timeout)

        # b. burst: as fast as ingest accepts.
        n = sum(b.posts for b in burst_b)
        print(f"burst: {n:,} posts ...", flush=True)
        phase = Phase("burst", n)
        cpu0, t0 = cpu(), time.perf_counter()
        await drv.send(phase, burst_b, senders=args.senders)
        await drv.drain(phase, limit_s=args.timeout)
        result["burst"] = {
            "posts": n, "accepted": phase.accepted, "duplicates": phase.duplicates, "retries": phase.retries,
            "rate_limited": phase.rate_limited,
            "ingest_seconds": round(phase.last_accepted - phase.first_send, 2),
            "ingest_posts_per_s": round(n / (phase.last_accepted - phase.first_send), 1),
            "end_to_end_seconds": round(phase.visible_at - phase.first_send, 2),
            "end_to_end_posts_per_s": round(n / (phase.visible_at - phase.first_send), 1),
            "wall_seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": cpu_delta(cpu0, cpu())}
        print(json.dumps(result["burst"]), flush=True)

        # c. sustained: flow-controlled by the window.
        n = sum(b.posts for b in sustained_b)
        print(f"sustained: {n:,} posts, window {args.window:,} ...", flush=True)
        phase = Phase("sustained", n)
        base = drv.visible
        metrics0, cpu0, t0 = await scrape_all(), cpu(), time.perf_counter()
        await drv.send(phase, sustained_b, senders=args.senders, window=args.window, probe=True)
        await drv.drain(phase, limit_s=args.timeout)
        metrics1, cpu1 = await scrape_all(), cpu()
        rec, cls = (metrics0["recognition"], metrics1["recognition"]), (metrics0["classifier"], metrics1["classifier"])
        model_s = metric_delta(*cls, "anchor_classifier_batch_seconds_sum", path="stream")
        model_posts = metric_delta(*cls, "anchor_classifier_posts_total", path="stream")
        result["sustained"] = {
            "posts": n, "accepted": phase.accepted, "duplicates": phase.duplicates, "retries": phase.retries,
            "rate_limited": phase.rate_limited, "window": args.window,
            "end_to_end_seconds": round(phase.visible_at - phase.first_send, 2),
            "end_to_end_posts_per_s": round(n / (phase.visible_at - phase.first_send), 1),
            "steady_posts_per_s": drv.steady_rate(base, n),
            "latency_probes": _probe_stats(phase.probes),
            "latency_histogram": histogram_quantiles(*rec, "anchor_pipeline_latency_seconds", (0.5, 0.99)),
            "service_metrics": {
                "classifier_model_seconds": round(model_s, 1),
                "classifier_model_posts_per_s": round(model_posts / model_s, 1) if model_s else None,
                "classifier_batch_seconds": round(metric_delta(
                    *cls, "anchor_consumer_batch_duration_seconds_sum", service="classifier"), 1),
                "recognition_batch_seconds": round(metric_delta(
                    *rec, "anchor_consumer_batch_duration_seconds_sum", service="recognition"), 1)},
            "wall_seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": cpu_delta(cpu0, cpu1)}
        result["sustained"]["stages"] = await stages(
            stack, [p["post_id"] for p in random.Random(3).sample(sustained_posts, min(500, n))])
        print(json.dumps(result["sustained"]), flush=True)

        # d. reads while ingesting, paced below saturation.
        sustained_rate = result["sustained"]["end_to_end_posts_per_s"]
        rate = args.mixed_rate or min(TARGETS["end_to_end_posts_per_s"], 0.8 * sustained_rate)
        seen = Counter(p["author_id"] for p in warm_posts + burst_posts + sustained_posts
                       if not p["author"]["is_official"])
        config = {"base": stack.url("recognition"), "token": stack.token, "members": sorted(seen),
                  "top": [m for m, _ in seen.most_common(100)],
                  "post_ids": [p["post_id"] for p in sustained_posts], "clients": args.clients,
                  "rate": args.read_rate, "seconds": args.read_seconds, "closed_seconds": args.closed_seconds,
                  "seed": args.seed}
        print(f"reads while ingesting: {args.clients} clients, {args.read_rate:g} requests/s each for "
              f"{args.read_seconds:g} s, then closed loop for {args.closed_seconds:g} s; posts at {rate:,.0f}/s ...",
              flush=True)
        phase = Phase("mixed", 0)
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        readers = ctx.Process(target=_readers, args=(config, queue), daemon=True)
        metrics0, cpu0, t0 = await scrape_all(), cpu(), time.perf_counter()
        reads_done = asyncio.Event()
        sending = asyncio.create_task(drv.send(phase, mixed_b, senders=args.senders, window=args.window, rate=rate,
                                               probe=True, stop=reads_done.is_set))
        sending_ended: list[float] = []
        sending.add_done_callback(lambda _: sending_ended.append(time.perf_counter()))
        await asyncio.sleep(1.0)  # ingestion under way before the first read
        readers.start()
        wait_s = args.read_seconds + args.closed_seconds + 120
        # The services' histograms are read over the paced reads alone: not the readers' start-up, and not the
        # closed loop, which saturates recognition on purpose.
        metrics_reads0 = metrics_reads1 = None
        while True:
            kind, value = await asyncio.to_thread(queue.get, True, wait_s)
            if kind == "result":
                reads = value
                break
            if value == "paced":
                metrics_reads0 = await scrape_all()
            elif metrics_reads0 is not None and metrics_reads1 is None:
                metrics_reads1 = await scrape_all()
        reads_ended = time.perf_counter()
        reads_done.set()
        ended_early = round(max(0.0, reads_ended - sending_ended[0]), 1) if sending_ended else 0.0
        if metrics_reads0 is None or metrics_reads1 is None:  # --read-seconds 0: no paced reads to speak of
            metrics_reads0 = metrics_reads1 = await scrape_all()
        await sending
        readers.join(10)
        phase.posts = phase.accepted + phase.duplicates
        await drv.drain(phase, limit_s=args.timeout)
        metrics1, cpu1 = await scrape_all(), cpu()
        sent_ids = [p["post_id"] for p in mixed_posts][:phase.posts]
        routes = sorted({dict(ls).get("route", "") for (name, ls) in metrics_reads1["recognition"]
                         if name == "anchor_http_request_duration_seconds_bucket"
                         and dict(ls).get("route", "").startswith("/v1/")})
        result["mixed"] = {
            "posts": phase.posts, "paced_at_posts_per_s": round(rate, 1), "retries": phase.retries,
            "rate_limited": phase.rate_limited,
            "end_to_end_posts_per_s": round(phase.posts / (phase.visible_at - phase.first_send), 1)
            if phase.posts else None,
            "ingestion_ended_early_s": ended_early,
            "latency_probes": _probe_stats(phase.probes),
            "latency_histogram": histogram_quantiles(metrics0["recognition"], metrics1["recognition"],
                                                     "anchor_pipeline_latency_seconds", (0.5, 0.99)),
            "server_side": {route: histogram_quantiles(metrics_reads0["recognition"], metrics_reads1["recognition"],
                                                       "anchor_http_request_duration_seconds", (0.5, 0.99),
                                                       method="GET", route=route) for route in routes},
            "event_loop_lag": {name: histogram_quantiles(metrics_reads0[name], metrics_reads1[name],
                                                         "anchor_event_loop_lag_seconds", (0.5, 0.99), service=name)
                               for name in processes.SERVICES},
            "gc_pauses": {name: long_pauses(metrics_reads0[name], metrics_reads1[name], name)
                          for name in processes.SERVICES},
            "wall_seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": cpu_delta(cpu0, cpu1)}
        result["mixed"]["stages"] = await stages(
            stack, random.Random(4).sample(sent_ids, min(500, len(sent_ids))))
        result["reads_while_ingesting"] = reads
        print(json.dumps(reads["paced"]["overall"] if "paced" in reads else reads), flush=True)

    # e. resident memory of every process (and its children) at the end.
    memory_out = {}
    for name, pid in pids.items():
        procs = [memory(p) for p in tree(pid)]
        memory_out[name] = {"processes": procs, "rss_mb": round(sum(p["rss_mb"] for p in procs), 1),
                            "peak_rss_mb": round(sum(p["peak_rss_mb"] for p in procs), 1)}
    result["memory"] = memory_out
    return result


if __name__ == "__main__":
    main()
