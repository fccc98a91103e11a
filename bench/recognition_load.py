"""Recognition's read endpoints under load: 1,000,000 posts by 50,000 members, 20 concurrent clients.

    .venv/bin/python bench/recognition_load.py --db sqlite      [--posts 1000000 --members 50000]
    .venv/bin/python bench/recognition_load.py --db postgresql  (needs PostgreSQL's server binaries)
    add --data /some/dir to keep the loaded database there and reuse it on the next run

1. Generates a synthetic year of community history (threads of questions and answers, flaw research with
   framing and venting, conflict and mediation, social chatter, reactions; activity is Zipf-distributed, so
   a few members carry the community) and writes it through recognition's own write path
   (`repository.store_posts`, the code the consumer runs), in batches of 2,000.
2. Starts a Tansu broker and the recognition service on that database, waits for its first community snapshot.
3. Runs `--clients` concurrent clients for `--seconds`, each picking endpoints round-robin with random members,
   and reports p50/p99 per endpoint (client-side, including HTTP). Writes bench/results/recognition_<db>.json.
"""

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpload
import httpx

from devstack import postgres, processes
from recognition import models, repository
from recognition.config import AlertSettings
from shared import db
from shared.events import ClassifiedPostEvent, ReactionEvent

RESULTS = Path(__file__).resolve().parent / "results"
ZONE = ZoneInfo("Asia/Shanghai")
COMPONENTS = ["infotainment", "body", "interior", "hvac", "powertrain", "battery_charging", "chassis", "adas",
              "electrical", "app"]
FLAW_TITLES = ["车机卡顿死机", "门把手进水", "后排异响", "空调异味", "低速顿挫", "冬天续航打折", "刹车发软", "幽灵刹车",
               "CarPlay断连", "数字钥匙失灵", "小电瓶亏电", "风噪大"]


def _event(post_id: str, thread: str, author: str, at: datetime, labels: list[str], *, reply_to: str | None,
           title: str | None, component: str | None = None, official: bool = False) -> ClassifiedPostEvent:
    return ClassifiedPostEvent.model_validate({
        "post_id": post_id, "thread_id": thread, "author_id": author, "content": "这是一条用于压测的帖子内容,车友们好",
        "created_at": at, "reply_to_post_id": reply_to, "title": title, "source": "app",
        "author": {"display_name": author, "is_official": official}, "event_id": post_id, "ingested_at": at,
        "classification": {"labels": labels, "scores": {label: 0.9 for label in labels}, "component": component,
                           "conditions": ["cold"] if component == "battery_charging" else [],
                           "evidence": [{"label": label, "text": "压测"} for label in labels],
                           "model_version": "bench"}})


def generate(posts: int, members: int, seed: int = 7):  # type: ignore[no-untyped-def]
    """Yields batches of (posts, reactions) over the year before now."""
    rng = random.Random(seed)
    now = datetime.now(UTC) - timedelta(minutes=5)
    start = now - timedelta(days=365)
    weights = [1.0 / (i + 1) ** 0.9 for i in range(members)]
    ids = [f"m{i}" for i in range(members)]
    staff = set(ids[-50:])
    n, batch, reactions, t = 0, [], [], 0
    while n < posts:
        t += 1
        thread = f"t{t}"
        at = start + timedelta(seconds=rng.uniform(0, 365 * 86400 - 3 * 86400))
        kind = rng.random()
        opener = rng.choices(ids, weights)[0]
        size = min(posts - n, max(2, int(rng.expovariate(1 / 9))))
        if kind < 0.3:
            title, labels_open, comp = "新手求助", ["newcomer_question"], None
            replies = [["newcomer_answer"], ["newcomer_answer", "welcome"], ["gratitude"], [], ["newcomer_answer"]]
        elif kind < 0.75:
            comp = rng.choice(COMPONENTS)
            title, labels_open = rng.choice(FLAW_TITLES), ["defect_report", "defect_complaint"]
            replies = [["defect_report"], ["defect_hypothesis"], ["defect_workaround"], ["quirk_framing"],
                       ["defect_framing", "venting"], ["empathy"], ["redirect_official"], ["gratitude"],
                       ["hostility"], ["bias_accusation", "hostility"], ["mediation"], []]
        else:
            title, labels_open, comp = "周末约跑", [], None
            replies = [[], [], ["welcome"], ["venting"], []]
        first = f"{thread}-0"
        batch.append(_event(first, thread, opener, at, labels_open, reply_to=None, title=title, component=comp))
        authors = {first: opener}
        previous = [first]
        for k in range(1, size):
            at += timedelta(minutes=rng.expovariate(1 / 90))
            author = rng.choices(ids, weights)[0]
            parent = rng.choice(previous)
            labels = rng.choice(replies)
            post_id = f"{thread}-{k}"
            batch.append(_event(post_id, thread, author, at, labels, reply_to=parent, title=title,
                                component=comp if any(label.startswith(("defect", "quirk")) for label in labels)
                                else None, official=author in staff))
            authors[post_id] = author
            previous.append(post_id)
            if rng.random() < 0.3:
                reactions.append(ReactionEvent.model_validate({
                    "reaction_id": f"r-{post_id}", "post_id": post_id, "from_author_id": rng.choices(ids, weights)[0],
                    "kind": rng.choice(["like", "like", "thanks", "helpful", "accepted_answer"]),
                    "created_at": at + timedelta(minutes=5), "event_id": f"r-{post_id}", "ingested_at": at}))
        n += size
        if len(batch) >= 2000:
            yield batch, reactions
            batch, reactions = [], []
    if batch:
        yield batch, reactions


def load(url: str, posts: int, members: int) -> dict[str, float]:
    engine = db.make_engine(url, pool_size=2)
    db.create_schema(engine, models.SQLModel.metadata)
    started, written = time.perf_counter(), 0
    for batch, reactions in generate(posts, members):
        with db.unit_of_work(engine) as session:
            now = datetime.now(UTC)
            repository.store_posts(session, batch, now=now, zone=ZONE)
            repository.store_reactions(session, reactions, now=now)
        written += len(batch)
        if written % 100000 < 2000:
            print(f"  {written:>9,} posts written ({time.perf_counter() - started:.0f}s)", flush=True)
    engine.dispose()
    return {"posts": written, "load_seconds": round(time.perf_counter() - started, 1)}


AWARDS = ["community_contribution", "newcomer_mentor", "peacemaker", "research_pioneer"]


def read_paths(rng: random.Random, *, member: Callable[[], str], post: Callable[[], str]
               ) -> list[tuple[str, Callable[[], str]]]:
    """Every recognition read endpoint, as (name, path maker); also used by bench/load.py."""
    return [
        ("member", lambda: f"/v1/members/{member()}"),
        ("burnout_risk", lambda: f"/v1/members/{member()}/burnout-risk"),
        ("burnout_list", lambda: "/v1/burnout-risk?level=elevated&limit=50"),
        ("nominations", lambda: f"/v1/recognition/nominations?award={rng.choice(AWARDS)}"),
        ("thank_you", lambda: f"/v1/members/{member()}/thank-you"),
        ("defect_topics", lambda: "/v1/defect-topics?limit=100"),
        ("community_health", lambda: "/v1/community/health"),
        ("post", lambda: f"/v1/posts/{post()}"),
    ]


async def hammer(base: str | list[str], token: str, members: int, clients: int, seconds: float,
                 rate: float = 0.0) -> dict[str, dict[str, float]]:
    """Closed loop when `rate` is 0 (each client sends its next request as soon as the last one is answered);
    otherwise each client sends `rate` requests per second on a fixed schedule (a dashboard or an app backend
    with pacing), so latency shows service time and queueing rather than the clients' own saturation. Given
    several bases (replicas), client k reads from base k modulo their number, as a load balancer keeping each
    connection on one replica would."""
    bases = [base] if isinstance(base, str) else base
    rng = random.Random(11)
    active = [f"m{i}" for i in range(min(members - 50, 5000))]  # people someone would look up
    endpoints = read_paths(rng, member=lambda: rng.choice(active), post=lambda: f"t{rng.randint(1, 50000)}-0")
    latencies: dict[str, list[float]] = {name: [] for name, _ in endpoints}
    errors: dict[str, int] = {name: 0 for name, _ in endpoints}
    retried: dict[str, int] = {name: 0 for name, _ in endpoints}  # sent again on a fresh connection (answered)
    deadline = time.monotonic() + seconds

    async def worker(offset: int) -> None:
        # One keep-alive connection per client, as a dashboard or an app backend would hold.
        conn = httpload.Connection(bases[offset % len(bases)], {"Authorization": f"Bearer {token}"})
        i = offset
        start = time.monotonic() + offset / max(rate * clients, 1.0) if rate else 0.0
        try:
            while time.monotonic() < deadline:
                if rate:
                    due = start + (i - offset) / rate
                    if due > time.monotonic():
                        await asyncio.sleep(due - time.monotonic())
                name, path = endpoints[i % len(endpoints)]
                i += 1
                t0 = time.perf_counter()
                before = conn.retried
                try:
                    status, _ = await conn.get(path())
                except (OSError, TimeoutError):
                    # A dropped connection is an error to report, not the end of the run.
                    errors[name] += 1
                    continue
                finally:
                    retried[name] += conn.retried - before
                latencies[name].append(time.perf_counter() - t0)
                if status not in (200, 404):
                    errors[name] += 1
        finally:
            await conn.close()

    await asyncio.gather(*(worker(k) for k in range(clients)))
    out = {}
    for name, values in latencies.items():
        values.sort()
        out[name] = {"requests": len(values), "errors": errors[name], "retried": retried[name],
                     "p50_ms": round(1000 * values[len(values) // 2], 1) if values else None,
                     "p99_ms": round(1000 * values[min(len(values) - 1, int(0.99 * len(values)))], 1) if values
                     else None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="requests per second per client (0: closed loop, as fast as answers come back)")
    parser.add_argument("--closed-seconds", type=float, default=None,
                        help="length of the closed-loop phase (default: --seconds; 0 skips it)")
    parser.add_argument("--refresh-seconds", type=float, default=None,
                        help="the service's community snapshot period (RECOGNITION_ALERTS__REFRESH_SECONDS; "
                             "default: the service's own, 30 s)")
    parser.add_argument("--log", type=Path, default=None, help="keep the service's log here (default: discarded)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="recognition processes on the same database and broker, the clients spread over them")
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON result (default: bench/results/recognition_<db>.json)")
    parser.add_argument("--data", type=Path, default=None,
                        help="keep the loaded database in this folder and reuse it on the next run with the same "
                             "--db/--posts/--members (the load is most of the run's time)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = args.data or Path(tmp)
        store.mkdir(parents=True, exist_ok=True)
        marker = store / f"loaded-{args.db}-{args.posts}-{args.members}.json"
        reuse = args.data is not None and marker.exists()
        cluster = None
        if args.db == "postgresql":
            bindir = postgres.binaries()
            if bindir is None:
                raise SystemExit("PostgreSQL server binaries are not installed")
            if args.data:
                (store / "pg").mkdir(exist_ok=True)
                cluster = postgres.Cluster(bindir, root=store / "pg")
            else:
                cluster = postgres.Cluster(bindir)
            if reuse:
                cluster.start_server()
                url = cluster.url("bench_1")
            else:
                cluster.start()
                url = cluster.create_database("bench")
        else:
            url = f"sqlite:///{store / f'recognition-{args.posts}-{args.members}.db'}"
        try:
            if reuse:
                loaded = json.loads(marker.read_text())
                print(f"reusing the {args.db} database loaded at {loaded['loaded_at']}", flush=True)
            else:
                print(f"writing {args.posts:,} posts by {args.members:,} members into {args.db} ...", flush=True)
                loaded = load(url, args.posts, args.members) | {"loaded_at": datetime.now(UTC).isoformat()}
                if args.data:
                    marker.write_text(json.dumps(loaded))
            token = secrets.token_urlsafe(16)
            broker_port = processes.free_port()
            broker = processes.broker(broker_port, Path(tmp) / "broker.log")
            broker.start()
            processes.wait_for_port(broker_port, timeout=30, proc=broker.proc)
            services, bases = [], []
            for k in range(args.replicas):
                port = processes.free_port()
                log_path = args.log or Path(tmp) / "recognition.log"
                services.append(processes.service(
                    "recognition", port=port, bootstrap=f"127.0.0.1:{broker_port}",
                    tokens=[{"name": "bench", "token": token, "scopes": ["read", "wellbeing"]}], database_url=url,
                    log_path=log_path.with_name(f"{log_path.stem}-{k}{log_path.suffix}") if k else log_path,
                    extra_env={"RECOGNITION_DATABASE__POOL_SIZE": "20", "RECOGNITION_LOG_LEVEL": "WARNING",
                               **({"RECOGNITION_ALERTS__REFRESH_SECONDS": f"{args.refresh_seconds:g}"}
                                  if args.refresh_seconds else {})}))
                services[-1].start()
                bases.append(f"http://127.0.0.1:{port}")
            base = bases[0]
            try:
                t0 = time.perf_counter()
                for service, each in zip(services, bases, strict=True):
                    processes.wait_for_port(int(each.rsplit(":", 1)[1]), timeout=60, proc=service.proc)
                    while True:  # the first community snapshot
                        metrics = httpx.get(f"{each}/metrics").text
                        line = next((x for x in metrics.splitlines()
                                     if x.startswith("anchor_recognition_snapshot_timestamp_seconds ")), "")
                        if line and float(line.split()[1]) > 0:
                            break
                        if time.perf_counter() - t0 > 1800:
                            raise SystemExit("no snapshot after 30 minutes")
                        time.sleep(1)
                snapshot_s = time.perf_counter() - t0
                closed_s = args.seconds if args.closed_seconds is None else args.closed_seconds
                print(f"first snapshot after {snapshot_s:.0f}s; {args.clients} clients, closed loop for "
                      f"{closed_s:.0f}s, then paced for {args.seconds:.0f}s ...", flush=True)
                result = asyncio.run(hammer(bases, token, args.members, args.clients, closed_s)) if closed_s else {}
                paced = asyncio.run(hammer(bases, token, args.members, args.clients, args.seconds,
                                           rate=args.rate or 10))
                snap_line = [x for x in httpx.get(f"{base}/metrics").text.splitlines()
                             if x.startswith("anchor_recognition_snapshot_seconds_")]
            finally:
                for service in services:
                    service.stop()
                broker.stop()
        finally:
            if cluster is not None and args.data:
                cluster.stop_server()  # the data stays for the next run
            elif cluster is not None:
                cluster.stop()
    report = {"database": args.db, "members": args.members, **loaded, "clients": args.clients,
              "replicas": args.replicas,
              "seconds": args.seconds, "closed_loop_seconds": closed_s,
              "snapshot_refresh_seconds": args.refresh_seconds or AlertSettings().refresh_seconds,
              "first_snapshot_wait_s": round(snapshot_s, 1), "closed_loop": result,
              "paced": {"requests_per_second_per_client": args.rate or 10, "endpoints": paced},
              "snapshot_metrics": snap_line, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    RESULTS.mkdir(exist_ok=True)
    (args.out or RESULTS / f"recognition_{args.db}.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for title, table in (("closed loop", result), (f"paced, {args.rate or 10:g} requests/s per client", paced)):
        print(f"{title}: {args.clients} clients")
        print(f"{'endpoint':<18} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
        for name, m in table.items():
            print(f"{name:<18} {m['requests']:>8} {m['p50_ms']!s:>8} {m['p99_ms']!s:>8} {m['errors']:>6}")


if __name__ == "__main__":
    main()
