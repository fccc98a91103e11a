"""The trained hybrid model: per-label logistic heads over `features`, Platt-calibrated, with per-label
thresholds chosen by cross-validation, plus a component head. Serving needs only numpy and scipy.

The artifact is one `.npz` file: sparse weight rows, the dense block, calibration, thresholds, the
component head, the emotion lexicon and a JSON metadata record (version, training data digest, metrics).
"""

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifier import backends, features
from classifier.features import Featurized, Lexicon
from shared.events import Classification, EvidenceSpan
from shared.labels import COMPONENTS, FLAW_LABELS, LABELS

DEFAULT_PATH = Path(__file__).resolve().parent / "models" / "hybrid.npz"


@dataclass
class Artifact:
    version: str
    weights1: np.ndarray  # stage 1: (N_FEATURES, 16)
    bias1: np.ndarray
    gates: np.ndarray  # (16,) a stage-1 probability at or above its gate decides the label (>1: never)
    weights: np.ndarray  # stage 2: (N_FEATURES + 16, 16), the extra rows read stage-1 probabilities
    bias: np.ndarray  # (16,)
    platt: np.ndarray  # (16, 2): calibrated = sigmoid(a * z + b)
    thresholds: np.ndarray  # (16,)
    component_weights: np.ndarray  # (N_FEATURES, len(COMPONENTS))
    component_bias: np.ndarray
    lexicon: Lexicon
    meta: dict[str, Any] = field(default_factory=dict)


def _sparse_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(np.any(np.abs(matrix) > 1e-7, axis=1)).astype(np.int32)
    return rows, matrix[rows].astype(np.float16)


def save(artifact: Artifact, path: Path) -> None:
    w1_rows, w1_vals = _sparse_rows(artifact.weights1)
    w_rows, w_vals = _sparse_rows(artifact.weights)
    c_rows, c_vals = _sparse_rows(artifact.component_weights)
    lexicon = {c: sorted(words) for c, words in artifact.lexicon.categories.items()}
    meta = artifact.meta | {"version": artifact.version, "hash_bits": features.HASH_BITS,
                            "dense": list(features.DENSE_NAMES), "labels": list(LABELS),
                            "components": list(COMPONENTS)}
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, w1_rows=w1_rows, w1_vals=w1_vals, bias1=artifact.bias1.astype(np.float32),
        gates=artifact.gates.astype(np.float32), w_rows=w_rows, w_vals=w_vals, bias=artifact.bias.astype(np.float32),
        platt=artifact.platt.astype(np.float32), thresholds=artifact.thresholds.astype(np.float32),
        c_rows=c_rows, c_vals=c_vals, c_bias=artifact.component_bias.astype(np.float32),
        lexicon=np.frombuffer(json.dumps(lexicon, ensure_ascii=False, sort_keys=True).encode(), dtype=np.uint8),
        meta=np.frombuffer(json.dumps(meta, ensure_ascii=False, sort_keys=True).encode(), dtype=np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def load(path: Path = DEFAULT_PATH) -> Artifact:
    with np.load(path) as data:
        meta = json.loads(data["meta"].tobytes())
        if meta["hash_bits"] != features.HASH_BITS or meta["dense"] != list(features.DENSE_NAMES):
            raise ValueError(f"{path} was trained with other features; retrain it")
        if meta["labels"] != list(LABELS) or meta["components"] != list(COMPONENTS):
            raise ValueError(f"{path} was trained for other labels or components")
        weights1 = np.zeros((features.N_FEATURES, len(LABELS)), dtype=np.float32)
        weights1[data["w1_rows"]] = data["w1_vals"]
        weights = np.zeros((features.N_FEATURES + len(LABELS), len(LABELS)), dtype=np.float32)
        weights[data["w_rows"]] = data["w_vals"]
        component = np.zeros((features.N_FEATURES, len(COMPONENTS)), dtype=np.float32)
        component[data["c_rows"]] = data["c_vals"]
        lexicon = json.loads(data["lexicon"].tobytes())
        return Artifact(
            version=meta["version"], weights1=weights1, bias1=data["bias1"], gates=data["gates"],
            weights=weights, bias=data["bias"], platt=data["platt"],
            thresholds=data["thresholds"], component_weights=component, component_bias=data["c_bias"],
            lexicon=Lexicon({c: frozenset(words) for c, words in lexicon.items()}), meta=meta)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def choose_component(rule_component: str | None, logits: np.ndarray) -> str:
    # The rules name a part when the post names it; the model's head covers posts that only imply it.
    if rule_component not in (None, "other"):
        return rule_component  # type: ignore[return-value]
    return COMPONENTS[int(np.argmax(logits))]


_FLAW = np.array([label in FLAW_LABELS for label in LABELS])


class HybridBackend:
    """Rule layer + statistical model: the rules' scores are features of the model and give the evidence."""

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.version = artifact.version

    def featurize(self, content: str, parent: str | None, title: str | None) -> Featurized:
        return features.featurize(content, parent, title, self.artifact.lexicon)

    def scores(self, feats: list[Featurized]) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated label probabilities (n, 16) and component logits (n, components).

        A label whose stage-1 probability passes its gate scores at least its threshold, placed above it
        as far as the stage-1 probability is above the gate, so `score >= threshold` stays the decision.
        """
        a = self.artifact
        sparse, dense = features.parts(feats)
        h = features.HASH_SIZE
        # Same as multiplying the stacked matrix, without building it.
        p1 = _sigmoid(sparse @ a.weights1[:h] + dense @ a.weights1[h:] + a.bias1)
        n = features.N_FEATURES
        z = sparse @ a.weights[:h] + dense @ a.weights[h:n] + p1 @ a.weights[n:] + a.bias
        probs = _sigmoid(a.platt[:, 0] * z + a.platt[:, 1])
        gated = p1 >= a.gates
        if gated.any():
            span = np.maximum(1.0 - a.gates, 1e-6)
            lifted = a.thresholds + (1.0 - a.thresholds) * (p1 - a.gates) / span
            probs = np.where(gated, np.maximum(probs, lifted), probs)
        for i, f in enumerate(feats):
            for label in f.rule.vetoes:
                j = LABELS.index(label)
                # Clearly below its threshold, so `score >= threshold` stays the decision and the score, shown
                # at four decimals, never reads as equal to the threshold.
                probs[i, j] = min(probs[i, j], f.rule.scores[label], max(a.thresholds[j] - 1e-4, 0.0))
        return probs, sparse @ a.component_weights[:h] + dense @ a.component_weights[h:] + a.component_bias

    def classify(self, items: Any) -> list[Classification]:
        feats = features.featurize_many(
            [(backends.clip(i.content) or "", backends.clip(i.parent_content), i.title) for i in items],
            self.artifact.lexicon)
        if not feats:
            return []
        probs, comp = self.scores(feats)
        decided = probs >= self.artifact.thresholds
        # Rounded in double precision: a float32 0.9493 read back as a double is 0.9492999911308289, and the
        # API would show (and every consumer parse and store) all seventeen digits.
        rounded = np.round(probs.astype(np.float64), 4).tolist()
        return [self._result(f, rounded[i], decided[i], comp[i]) for i, f in enumerate(feats)]

    def _result(self, f: Featurized, probs: list[float], decided: np.ndarray, comp: np.ndarray) -> Classification:
        labels = [label for label, on in zip(LABELS, decided, strict=True) if on]
        flaw = bool((decided & _FLAW).any())
        component = choose_component(f.rule.component, comp) if flaw else None
        return Classification(
            labels=labels,  # type: ignore[arg-type]
            scores=dict(zip(LABELS, probs, strict=True)),  # type: ignore[arg-type]
            component=component,  # type: ignore[arg-type]
            conditions=list(f.rule.conditions) if flaw else [],  # type: ignore[arg-type]
            evidence=self._evidence(f, labels),
            model_version=self.version)

    def _evidence(self, f: Featurized, labels: list[str]) -> list[EvidenceSpan]:
        spans: list[EvidenceSpan] = []
        by_rule: dict[str, list[str]] = {}
        for e in f.rule.evidence:
            by_rule.setdefault(e.label, []).append(e.text)
        for label in labels:
            texts = by_rule.get(label) or self._heaviest_words(f, LABELS.index(label))
            seen: set[str] = set()
            for text in texts:
                if text and text not in seen:
                    seen.add(text)
                    spans.append(EvidenceSpan(label=label, text=text))  # type: ignore[arg-type]
        return spans

    def _heaviest_words(self, f: Featurized, column: int, top: int = 3) -> list[str]:
        # The words of this post that push this label up the most, when no rule quotes the post for it.
        if not f.words:
            return []
        weights = self.artifact.weights[f.word_indices, column]
        order = np.argsort(-weights)
        return [f.words[i] for i in order[:top] if weights[i] > 0 and len(f.words[i].strip()) > 1]
