"""The trained default model: artifact integrity, determinism of training, and the backend contract."""

import hashlib
from pathlib import Path

import pytest

from classifier import backends, model, training
from classifier.backends import Item
from shared.labels import COMPONENTS, CONDITIONS, LABELS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hybrid() -> model.HybridBackend:
    return backends.load("hybrid")  # type: ignore[return-value]


def test_committed_artifact_was_trained_on_the_committed_corpus() -> None:
    artifact = model.load()
    paths = sorted((ROOT / "corpus").glob("*.jsonl"))
    assert artifact.meta["corpus_digest"] == training.corpus_digest(paths), "retrain: make train"
    assert artifact.meta["corpus_digest"] in artifact.version


def test_training_is_deterministic(tmp_path: Path) -> None:
    examples = training.load_corpus(sorted((ROOT / "corpus").glob("*.jsonl")))[::12]
    lexicon = training.load_lexicon()
    digests = []
    for run in range(2):
        artifact = training.train(examples, [], training.Config(folds=3), lexicon, "test", log=lambda *_: None)
        path = tmp_path / f"run{run}.npz"
        model.save(artifact, path)
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    reloaded = model.HybridBackend(model.load(tmp_path / "run0.npz"))
    assert reloaded.classify([Item("车机又卡死了")])[0].model_version == "test"


@pytest.mark.parametrize("name", sorted(backends.BACKENDS))
def test_every_backend_answers_the_same_contract(name: str) -> None:
    backend = backends.load(name)
    results = backend.classify([
        Item("下雨天洗完车,左前门把手缝里全是水,冬天还冻住打不开,真的服了", None, "门把手进水"),
        Item("谢谢大佬!按你说的长按三秒,搞定了🙏", "长按方向盘左边那个键三秒就能关自动启停"),
        Item("今天天气不错"),
    ])
    assert len(results) == 3
    for result in results:
        assert list(result.scores) == list(LABELS)
        assert all(0.0 <= v <= 1.0 for v in result.scores.values())
        # Four decimals, as they are shown (and serialized): not a float32's seventeen-digit double.
        assert all(round(v, 4) == v for v in result.scores.values()), result.scores
        assert set(result.labels) <= set(LABELS)
        assert result.component is None or result.component in COMPONENTS
        assert set(result.conditions) <= set(CONDITIONS)
        assert {e.label for e in result.evidence} <= set(result.labels)
        assert result.model_version
    flaw, thanks, _ = results
    assert flaw.component == "body"
    assert "defect_complaint" in flaw.labels or "defect_report" in flaw.labels
    assert "gratitude" in thanks.labels and "hostility" not in thanks.labels


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown classifier backend"):
        backends.load("gpt-9")


@pytest.mark.parametrize("content", ["\u0001", "\u200b\u200b", "   ", "😂", "?", "\x7f\x01\x02"])
def test_posts_that_normalize_to_almost_nothing_still_classify(hybrid: model.HybridBackend, content: str) -> None:
    # schemathesis found a 500 here: a row with no hashed features broke the normalization.
    results = hybrid.classify([Item("车机又卡了"), Item(content), Item(content, content, content)])
    assert len(results) == 3
    assert all(0.0 <= v <= 1.0 for r in results for v in r.scores.values())


def test_a_post_classifies_the_same_alone_and_in_a_batch(hybrid: model.HybridBackend) -> None:
    # The batch hashes all its posts' character n-grams in one pass; no n-gram may leak across posts.
    examples = training.load_corpus(sorted((ROOT / "corpus").glob("*.jsonl")))[::40]
    items = [Item(e.content, e.parent, e.title) for e in examples] + [Item(""), Item("卡"), Item("又卡")]
    batched = hybrid.classify(items)
    assert len(items) > 200
    assert batched == [hybrid.classify([item])[0] for item in items]
