"""Apply round 3's relabels (round3.csv) to the corpus files.

    .venv/bin/python corpus/relabels/apply_round3.py            # rewrite corpus/*.jsonl
    .venv/bin/python corpus/relabels/apply_round3.py --check    # only verify the CSV against the corpus

Each CSV row names a post, its labels before and after, and the CONVENTIONS.md rule that decided the
change. A row applies only if the post still carries the "old" labels (so the script refuses to run twice or
on a corpus that moved on). A post that gains its first flaw label (section A) takes its component and
conditions from the rule layer; a post that loses its last one loses them, as in rounds 1 and 2.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

from classifier import rules
from shared.labels import FLAW_LABELS, LABELS

ROOT = Path(__file__).resolve().parents[2]
CSV = Path(__file__).resolve().parent / "round3.csv"


def ordered(labels: set[str]) -> list[str]:
    return [label for label in LABELS if label in labels]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    with CSV.open(encoding="utf-8", newline="") as handle:
        changes = {row["post_id"]: row for row in csv.DictReader(handle)}
    seen: set[str] = set()
    problems = 0
    for path in sorted((ROOT / "corpus").glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        out = []
        for line in lines:
            row = json.loads(line) if line.strip() else None
            change = changes.get(row["id"]) if row else None
            if change is None:
                out.append(line)
                continue
            seen.add(row["id"])
            old = set(change["old_labels"].split()) if change["old_labels"] else set()
            new = set(change["new_labels"].split()) if change["new_labels"] else set()
            if set(row["labels"]) != old:
                print(f"{row['id']}: labels {sorted(row['labels'])} are not the CSV's old labels {sorted(old)}")
                problems += 1
                out.append(line)
                continue
            keep = [label for label in row["labels"] if label in new]
            row["labels"] = keep + [label for label in ordered(new) if label not in keep]
            had_flaw, has_flaw = bool(old & set(FLAW_LABELS)), bool(new & set(FLAW_LABELS))
            if has_flaw and not had_flaw:
                result = rules.analyze(row["content"], row.get("parent_content"), row.get("title"))
                texts = [result.text] + [rules.normalize(t) for t in (row.get("title"), row.get("parent_content")) if t]
                row["component"] = rules._component(texts)
                row["conditions"] = rules._conditions(result.text)
            elif had_flaw and not has_flaw:
                row["component"], row["conditions"] = None, []
            out.append(json.dumps(row, ensure_ascii=False))
        if not args.check:
            path.write_text("\n".join(out) + "\n", encoding="utf-8")
    missing = set(changes) - seen
    for post_id in sorted(missing):
        print(f"{post_id}: not in the corpus")
    problems += len(missing)
    print(f"{len(changes)} relabels, {problems} problems" + (" (checked only)" if args.check else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
