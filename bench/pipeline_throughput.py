"""End-to-end throughput on the embedded default: posts/s from `POST /v1/posts` to visible in recognition.

    .venv/bin/python bench/pipeline_throughput.py [--posts 20000] [--batch 500] [--senders 4]

Starts its own stack (Tansu + SQLite + the three services on free ports), sends synthetic posts built from
the demo texts, and polls recognition until every post is counted. Writes bench/results/pipeline_throughput.json.
"""

import argparse
import json
import platform
import secrets
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from devstack import demo, processes
from devstack.stack import Stack

RESULTS = Path(__file__).resolve().parent / "results"


def build_posts(n: int, authors: list[str], run: str) -> list[dict]:
    texts = [p["content"] for p in demo.load_jsonl(demo.DEMO_DIR / "posts.jsonl")]
    start = datetime(2026, 4, 1, tzinfo=UTC)
    posts = []
    for i in range(n):
        thread = f"{run}-t{i // 8}"
        posts.append({"post_id": f"{run}-p{i}", "thread_id": thread, "author_id": authors[i % len(authors)],
                      "content": texts[i % len(texts)], "created_at": (start + timedelta(seconds=i)).isoformat(),
                      "reply_to_post_id": f"{run}-p{i - 1}" if i % 8 else None, "title": "bench"})
    return posts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--senders", type=int, default=4)
    args = parser.parse_args()

    run = secrets.token_hex(3)
    authors = [f"{run}-u{i}" for i in range(50)]
    posts = build_posts(args.posts, authors, run)
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(data_dir=Path(tmp), token=secrets.token_urlsafe(16),
                      ports={n: processes.free_port() for n in ("broker", "ingest", "classifier", "recognition")})
        stack.start()
        try:
            headers = {"Authorization": f"Bearer {stack.token}"}
            batches = [posts[i:i + args.batch] for i in range(0, len(posts), args.batch)]
            lock = threading.Lock()
            accepted_at: list[float] = []

            def sender(mine: list[list[dict]]) -> None:
                with httpx.Client(headers=headers, timeout=60) as c:
                    for b in mine:
                        r = c.post(f"{stack.url('ingest')}/v1/posts", json={"posts": b})
                        r.raise_for_status()
                        with lock:
                            accepted_at.append(time.perf_counter())

            t0 = time.perf_counter()
            threads = [threading.Thread(target=sender, args=(batches[k::args.senders],)) for k in range(args.senders)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            t_ingested = time.perf_counter()
            with httpx.Client(headers=headers, timeout=30) as c:
                while True:
                    total = sum(c.get(f"{stack.url('recognition')}/v1/members/{a}").json().get("posts", 0)
                                for a in authors)
                    if total >= len(posts):
                        break
                    time.sleep(0.05)
            t_visible = time.perf_counter()
        finally:
            stack.stop()
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()}".strip(),
        "posts": len(posts), "batch": args.batch, "senders": args.senders,
        "ingest_seconds": round(t_ingested - t0, 2),
        "ingest_posts_per_s": round(len(posts) / (t_ingested - t0), 1),
        "end_to_end_seconds": round(t_visible - t0, 2),
        "end_to_end_posts_per_s": round(len(posts) / (t_visible - t0), 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pipeline_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
