"""Round 3 of the corpus review: the candidate posts for the three boundaries of CONVENTIONS.md.

    .venv/bin/python corpus/relabels/round3_candidates.py --out /tmp/round3_candidates.jsonl

A candidate is a post that carries either side of a boundary, or whose label on a boundary label disagrees
with an out-of-fold model:

- boundary `normal` (rules Q1-Q6): posts labelled `quirk_framing` or `newcomer_answer`;
- boundary `venting` (rules V1-V6): posts labelled `defect_complaint` or `venting`;
- boundary `workaround` (rules W1-W5): posts labelled `defect_workaround`;
- `oof`: any post where a family-grouped 5-fold stage-1 model (the post's family never in its training folds)
  gives >= 0.6 to one of these five labels the post lacks, or <= 0.3 to one it carries.

The whole corpus is read in one piece: the script never computes the held-out split, so the judgement of
a candidate cannot depend on it. Each candidate is then judged by reading it against CONVENTIONS.md; the
model's score only chooses what is read, it decides nothing. The decisions are in round3.csv.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from classifier import features, training

ROOT = Path(__file__).resolve().parents[2]
BOUNDARY_LABELS = ("quirk_framing", "newcomer_answer", "defect_complaint", "venting", "defect_workaround")
SIDES = {"normal": {"quirk_framing", "newcomer_answer"}, "venting": {"defect_complaint", "venting"},
         "workaround": {"defect_workaround"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--c", type=float, default=128.0, help="stage-1 C, as in training.Config.c1")
    args = parser.parse_args()

    rows = [json.loads(line) for path in sorted((ROOT / "corpus").glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    examples = training.load_corpus(sorted((ROOT / "corpus").glob("*.jsonl")))
    x = features.matrix(training.featurize_all(examples, training.load_lexicon()))
    groups = np.array([e.family for e in examples])
    folds = list(GroupKFold(n_splits=5).split(x, groups=groups))
    oof = np.zeros((len(examples), len(BOUNDARY_LABELS)))
    for j, label in enumerate(BOUNDARY_LABELS):
        y = np.array([label in e.labels for e in examples], dtype=np.int64)
        for fit_rows, val_rows in folds:
            clf = LogisticRegression(C=args.c, solver="liblinear", max_iter=1000, random_state=0)
            clf.fit(x[fit_rows], y[fit_rows])
            oof[val_rows, j] = clf.predict_proba(x[val_rows])[:, 1]

    with open(args.out, "w", encoding="utf-8") as out:
        for i, (row, example) in enumerate(zip(rows, examples, strict=True)):
            assert row["id"] == example.id
            reasons = [name for name, side in SIDES.items() if side & example.labels]
            disputes = {label: round(float(oof[i, j]), 3) for j, label in enumerate(BOUNDARY_LABELS)
                        if (label in example.labels and oof[i, j] <= 0.3)
                        or (label not in example.labels and oof[i, j] >= 0.6)}
            if disputes:
                reasons.append("oof")
            if reasons:
                out.write(json.dumps({"id": row["id"], "reasons": reasons, "labels": sorted(example.labels),
                                      "oof_disputes": disputes, "title": row.get("title"),
                                      "parent": row.get("parent_content"), "content": row["content"]},
                                     ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
