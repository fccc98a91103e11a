"""Replays the bundled demo community through the public ingest API, then waits until recognition shows it."""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass(frozen=True, slots=True)
class Replay:
    posts: int
    reactions: int
    accepted: int
    duplicates: int
    visible: int
    seconds: float


def _send(client: httpx.Client, url: str, field: str, items: list[dict[str, Any]], batch: int) -> tuple[int, int]:
    accepted = duplicates = 0
    for start in range(0, len(items), batch):
        response = client.post(url, json={field: items[start:start + batch]})
        response.raise_for_status()
        body = response.json()
        accepted += body["accepted"]
        duplicates += body["duplicates"]
    return accepted, duplicates


def wait_visible(client: httpx.Client, recognition_url: str, post_ids: list[str], *, timeout: float) -> int:
    """Polls recognition until every post is served (or the timeout). Returns how many are visible."""
    pending = list(post_ids)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if client.get(f"{recognition_url}/v1/posts/{pid}").status_code != 200]
        if pending:
            time.sleep(0.2)
    return len(post_ids) - len(pending)


def replay(*, ingest_url: str, recognition_url: str, token: str, demo_dir: Path = DEMO_DIR,
           batch: int = 100, timeout: float = 120.0) -> Replay:
    posts = sorted(load_jsonl(demo_dir / "posts.jsonl"), key=lambda p: p["created_at"])
    reactions = sorted(load_jsonl(demo_dir / "reactions.jsonl"), key=lambda r: r["created_at"])
    started = time.monotonic()
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        accepted, duplicates = _send(client, f"{ingest_url}/v1/posts", "posts", posts, batch)
        r_accepted, r_duplicates = _send(client, f"{ingest_url}/v1/reactions", "reactions", reactions, batch)
        visible = wait_visible(client, recognition_url, [p["post_id"] for p in posts], timeout=timeout)
    return Replay(len(posts), len(reactions), accepted + r_accepted, duplicates + r_duplicates, visible,
                  time.monotonic() - started)


def busiest_member(demo_dir: Path = DEMO_DIR) -> str:
    counts: dict[str, int] = {}
    for post in load_jsonl(demo_dir / "posts.jsonl"):
        if not (post.get("author") or {}).get("is_official"):
            counts[post["author_id"]] = counts.get(post["author_id"], 0) + 1
    return max(counts, key=lambda member: counts[member])


# A moment in the demo's history when its stories are visible: the unthanked night-shift helper accused of
# bias (d-u002) is at high risk while the thanked mentor (d-u001) is not, and the brake thread is being
# talked into a quirk.
STORY_AS_OF = "2026-04-20T23:00:00+08:00"


def story_paths(as_of: str) -> list[tuple[str, str]]:
    """(what it shows, path) for the recognition views worth a look on the demo."""
    return [
        ("burnout risk, accused helper", f"/v1/members/d-u002/burnout-risk?as_of={as_of}"),
        ("burnout risk, thanked mentor", f"/v1/members/d-u001/burnout-risk?as_of={as_of}"),
        ("members at elevated risk or above", f"/v1/burnout-risk?level=elevated&as_of={as_of}"),
        ("thank-you draft", f"/v1/members/d-u002/thank-you?as_of={as_of}"),
        ("newcomer mentor nominations", "/v1/recognition/nominations?award=newcomer_mentor"
                                        "&since=2026-03-01T00:00:00%2B08:00&until=2026-05-31T00:00:00%2B08:00"),
        ("flaw topics framed as quirks", f"/v1/defect-topics?consensus=quirk&as_of={as_of}"),
        ("community health (30 days)", f"/v1/community/health?as_of={as_of}"),
    ]
