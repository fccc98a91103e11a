"""Out-of-fold macro-F1 of the classifier's stage 2 at several regularization strengths, on the training split only.

    .venv/bin/python bench/stage2_c_sweep.py 8 16 32 64 128

Runs stage 1 once (C=128, class-weighted, COLD for hostility, as `make train` does) with the same grouped 5-fold
split, then for each C fits stage 2 out of fold, calibrates, picks each label's threshold out of fold and prints
the per-label F1 and their mean, and finally the mean if each label took its own best C. The held-out split is
never read. About 6 minutes for stage 1 plus 1 minute per C on one core.
"""

import sys
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, hstack, vstack
from sklearn.model_selection import GroupKFold

from classifier import cli, features, training
from shared.labels import LABELS

ROOT = Path(__file__).resolve().parents[1]


def main(cs: list[float]) -> None:
    config = training.Config()
    train_set, _ = training.split(training.load_corpus(cli._paths(ROOT)))
    cold = training.load_cold(ROOT.parent / "shared" / "datasets" / "cold" / "train.csv")
    lexicon = training.load_lexicon()
    x = features.matrix(training.featurize_all(train_set, lexicon))
    cold_x = features.matrix(training.featurize_all(
        [training.Example(f"cold-{i}", "cold", t, None, None, frozenset()) for i, (t, _) in enumerate(cold)], lexicon))
    cold_y = np.array([label for _, label in cold])
    folds = list(GroupKFold(n_splits=config.folds).split(x, groups=np.array([e.family for e in train_set])))
    targets = np.array([[label in e.labels for label in LABELS] for e in train_set], dtype=np.int64)
    n = len(train_set)
    oof1 = np.zeros((n, len(LABELS)))
    for j, label in enumerate(LABELS):
        y = targets[:, j]
        for fit_rows, val_rows in folds:
            if label == "hostility":
                xs = vstack([x[fit_rows], cold_x], format="csr")
                ys = np.concatenate([y[fit_rows], cold_y])
                ws = np.concatenate([np.ones(len(fit_rows)), np.full(len(cold_y), config.cold_weight)])
            else:
                xs, ys, ws = x[fit_rows], y[fit_rows], None
            oof1[val_rows, j] = training._fit(xs, ys, ws, config.c1 or config.c, config.balanced
                                              ).decision_function(x[val_rows])
    x2 = hstack([x, csr_matrix(training._sig(oof1).astype(np.float32))], format="csr")
    results: dict[float, list[float]] = {}
    for c in cs:
        f1s = []
        for j in range(len(LABELS)):
            y = targets[:, j]
            oof = np.zeros(n)
            for fit_rows, val_rows in folds:
                oof[val_rows] = training._fit(x2[fit_rows], y[fit_rows], None, c, config.balanced
                                              ).decision_function(x2[val_rows])
            a, b = training._platt(oof, y)
            p = training._sig(a * oof + b)
            decided = p >= training.best_threshold(p, y)
            tp = float(np.sum(decided & (y == 1)))
            f1s.append(2 * tp / (decided.sum() + y.sum()))
        results[c] = f1s
        print(f"C={c:g} out-of-fold macro-F1 {np.mean(f1s):.4f}  "
              + " ".join(f"{label}={f:.3f}" for label, f in zip(LABELS, f1s, strict=True)), flush=True)
    best = [max(results, key=lambda c, j=j: results[c][j]) for j in range(len(LABELS))]
    print("each label at its best C:", f"{np.mean([results[best[j]][j] for j in range(len(LABELS))]):.4f}",
          "(optimistic: chosen on the same folds)")


if __name__ == "__main__":
    main([float(a) for a in sys.argv[1:]] or [8.0, 32.0, 128.0])
