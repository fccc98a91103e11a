"""`anchor-dev run`: the README's first command. Starts everything, replays the demo, prints where to look.

Environment: ANCHOR_API_TOKEN (dev token with all scopes; generated when unset), ANCHOR_DEMO=0 (skip the
demo), ANCHOR_DATA_DIR (data folder, default ./data), ANCHOR_KAFKA_PORT / ANCHOR_INGEST_PORT /
ANCHOR_CLASSIFIER_PORT / ANCHOR_RECOGNITION_PORT (default 9092 / 8001 / 8002 / 8003).
"""

import argparse
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from devstack import demo
from devstack.processes import StackError
from devstack.stack import DEFAULT_PORTS, Stack


class _Stop(Exception):
    pass


def _on_signal(signum: int, _: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _ports() -> dict[str, int]:
    env = {"broker": "ANCHOR_KAFKA_PORT", "ingest": "ANCHOR_INGEST_PORT", "classifier": "ANCHOR_CLASSIFIER_PORT",
           "recognition": "ANCHOR_RECOGNITION_PORT"}
    return {name: int(os.environ.get(var, DEFAULT_PORTS[name])) for name, var in env.items()}


def say(text: str = "") -> None:
    print(text, flush=True)


def run() -> int:
    token = os.environ.get("ANCHOR_API_TOKEN") or secrets.token_urlsafe(24)
    generated = "ANCHOR_API_TOKEN" not in os.environ or not os.environ["ANCHOR_API_TOKEN"]
    data_dir = Path(os.environ.get("ANCHOR_DATA_DIR", "data")).resolve()
    stack = Stack(data_dir=data_dir, token=token, ports=_ports())
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        say(f"Anchor: starting the Tansu broker and the three services (data and logs in {data_dir}) ...")
        stack.start()
        say("All services ready.")
        if os.environ.get("ANCHOR_DEMO", "1") != "0":
            say("Replaying the demo community through POST /v1/posts and /v1/reactions ...")
            result = demo.replay(ingest_url=stack.url("ingest"), recognition_url=stack.url("recognition"), token=token)
            say(f"  {result.posts} posts and {result.reactions} reactions sent: {result.accepted} accepted, "
                f"{result.duplicates} duplicates (already in {data_dir}); {result.visible}/{result.posts} posts "
                f"visible in recognition after {result.seconds:.1f}s")
        _print_guide(stack, token, generated)
        while True:
            for child in stack.children.values():
                if not child.alive():
                    raise StackError(f"{child.name} stopped unexpectedly; see {child.log_path}")
            time.sleep(0.5)
    except _Stop as stop:
        say(f"\n{stop}: stopping services ...")
        return 0
    except StackError as exc:
        say(f"anchor: {exc}")
        return 1
    finally:
        stack.stop()
        say("Stopped.")


def _print_guide(stack: Stack, token: str, generated: bool) -> None:
    member = demo.busiest_member() if (demo.DEMO_DIR / "posts.jsonl").exists() else "d-u001"
    auth = f'-H "Authorization: Bearer {token}"'
    say("")
    say("Anchor is running on the embedded default (Tansu in memory + SQLite):")
    for name in ("ingest", "classifier", "recognition"):
        say(f"  {name:<12} {stack.url(name)}   docs: {stack.url(name)}/docs   metrics: {stack.url(name)}/metrics")
    say(f"  kafka        {stack.bootstrap}")
    say(f"  token        {token}" + ("   (generated; set ANCHOR_API_TOKEN to choose it)" if generated else ""))
    say("")
    say("Try:")
    rec = stack.url("recognition")
    say(f"  curl -s {auth} {rec}/v1/members/{member}")
    say(f"  curl -s {auth} {rec}/v1/posts/d-p0002")
    example = '{"content": "谢谢大佬,按你说的重启车机就好了", "parent_content": "车机卡死的话长按音量键十秒重启"}'
    say(f"  curl -s {auth} -H 'Content-Type: application/json' {stack.url('classifier')}/v1/classify -d '{example}'")
    say("")
    say(f"The demo community as of {demo.STORY_AS_OF} (its history is March-May 2026; times need URL-encoding of +):")
    at = demo.STORY_AS_OF.replace("+", "%2B")
    for what, path in demo.story_paths(at):
        say(f"  {what:<34} curl -s {auth} '{rec}{path}'")
    say("")
    say("Ctrl-C (or SIGTERM) stops everything.")


def main() -> None:
    parser = argparse.ArgumentParser(prog="anchor-dev", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run"])
    parser.parse_args()
    sys.exit(run())


if __name__ == "__main__":
    main()
