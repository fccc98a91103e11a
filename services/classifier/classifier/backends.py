"""The model behind the classifier, chosen by configuration.

Every backend answers the same `Classification` for the same input shape, so a brand can plug in a
fine-tuned transformer or an LLM endpoint by registering a factory here, without touching the pipeline.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from classifier import rules
from shared.events import Classification, EvidenceSpan
from shared.labels import FLAW_LABELS, LABELS

DEFAULT_THRESHOLD = 0.5
# The model reads at most this many characters of a post (head and tail): what a post does is said early
# or at its end, and the bound keeps a batch of 1000 maximal posts from taking minutes.
HEAD_CHARS, TAIL_CHARS = 2500, 500


def clip(text: str | None) -> str | None:
    if text is None or len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return f"{text[:HEAD_CHARS]}\n{text[-TAIL_CHARS:]}"


@dataclass(frozen=True, slots=True)
class Item:
    content: str
    parent_content: str | None = None
    title: str | None = None


class Backend(Protocol):
    version: str

    def classify(self, items: Sequence[Item]) -> list[Classification]: ...


class RulesBackend:
    """Transparent lexicon-and-pattern layer: offline, fast, and every label comes with its evidence."""

    version = "rules-0.1"

    def __init__(self, thresholds: dict[str, float] | None = None) -> None:
        self.thresholds = {label: DEFAULT_THRESHOLD for label in LABELS} | (thresholds or {})

    def classify(self, items: Sequence[Item]) -> list[Classification]:
        return [self._one(item) for item in items]

    def _one(self, item: Item) -> Classification:
        result = rules.analyze(clip(item.content) or "", clip(item.parent_content), item.title)
        labels = [label for label in LABELS if result.scores[label] >= self.thresholds[label]]
        flaw = any(label in FLAW_LABELS for label in labels)
        return Classification(
            labels=labels,  # type: ignore[arg-type]
            scores={label: round(result.scores[label], 4) for label in LABELS},  # type: ignore[misc]
            component=result.component if flaw else None,  # type: ignore[arg-type]
            conditions=result.conditions if flaw else [],  # type: ignore[arg-type]
            evidence=[EvidenceSpan(label=e.label, text=e.text) for e in result.evidence if e.label in labels],  # type: ignore[arg-type]
            model_version=self.version,
        )


def _hybrid(options: dict[str, str]) -> Backend:
    from classifier import model

    path = Path(options["path"]) if "path" in options else model.DEFAULT_PATH
    return model.HybridBackend(model.load(path))


BACKENDS: dict[str, Callable[[dict[str, str]], Backend]] = {
    "hybrid": _hybrid,
    "rules": lambda options: RulesBackend(),
}


def load(name: str, options: dict[str, str] | None = None) -> Backend:
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown classifier backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
    return factory(options or {})
