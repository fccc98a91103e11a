"""The rule layer's search prefilter: it may skip a vocabulary only when that vocabulary cannot match."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier import heads, rules, training
from classifier.normalize import normalize

ROOT = Path(__file__).resolve().parents[2]
# Every regex the rule layer looks up in its head index.
_REGEXES: list[re.Pattern[str]] = []
for _group, _ in rules._PROBES:
    _REGEXES += [*_group.regexes, *((_group.emoji,) if _group.emoji else ())]
_REGEXES += [*rules._AD_RES, *rules._PART_RES, *rules._USAGE_RES]
_REGEXES += [r for _, _, regexes in rules._COMPONENT_GROUPS for r in regexes]
_REGEXES += [r for _, regexes in rules._CONDITION_RES for r in regexes]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("异响|漏水", {"异响", "漏水"}),
        ("(?<![a-z])abs(?![a-z])", {"ab"}),  # lookarounds consume nothing
        ("(?:又|老是|动不动就?)卡", {"又卡", "老是", "动不"}),
        ("第[一二]次", {"第一", "第二"}),
        ("好?卡", {"好卡", "卡"}),  # an optional first character: either can begin the match
        ("!{2,}|\\?!", {"!", "?!"}),  # a repeat is followed no further than its first character
        ("^\\+1|^加一", {"+1", "加一"}),
    ],
)
def test_every_match_contains_one_of_the_heads(pattern: str, expected: set[str]) -> None:
    assert heads.heads(re.compile(pattern)) == expected


@pytest.mark.parametrize("pattern", ["卡?", ".卡", "[^不]卡", "\\w+卡", "(?i)bug", "(?=卡)"])
def test_a_regex_that_can_begin_anywhere_has_no_heads(pattern: str) -> None:
    assert heads.heads(re.compile(pattern)) is None


def test_a_digit_class_stands_for_every_decimal_digit() -> None:
    found = heads.heads(re.compile("\\d+次"))
    assert found is not None and {"1", "٣", "３"} <= found  # ASCII, Arabic-Indic and full-width digits


def test_every_rule_vocabulary_has_heads() -> None:
    # A vocabulary without heads is searched in every post; this keeps one from slipping in unnoticed.
    assert [r.pattern[:60] for r in _REGEXES if heads.heads(r) is None] == []


def _assert_sound(text: str) -> None:
    can = rules._HEADS.candidates(text)
    for regex in _REGEXES:
        if regex.search(text) is not None:
            assert rules._HEADS.id(regex) in can, (regex.pattern[:60], text)


def test_no_vocabulary_that_matches_a_corpus_post_is_skipped() -> None:
    examples = training.load_corpus(sorted((ROOT / "corpus").glob("*.jsonl")))
    texts = {normalize(e.content) for e in examples[::3]} | {normalize(e.parent) for e in examples[::7] if e.parent}
    for text in texts:
        _assert_sound(text)


# Characters the vocabularies begin with, next to any other character: texts dense in near-misses.
_ALPHABET = sorted({c for regex in _REGEXES for head in heads.heads(regex) or () for c in head})


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(_ALPHABET) | st.characters(), max_size=40))
def test_no_vocabulary_that_matches_a_generated_text_is_skipped(text: str) -> None:
    _assert_sound(text)


def test_the_prefilter_changes_no_rule_result(monkeypatch: pytest.MonkeyPatch) -> None:
    examples = training.load_corpus(sorted((ROOT / "corpus").glob("*.jsonl")))[::5]
    rules.clear_caches()
    filtered = [rules.analyze(e.content, e.parent, e.title) for e in examples]
    every = frozenset(rules._HEADS.ids.values())
    monkeypatch.setattr(rules._HEADS, "candidates", lambda text: every)
    rules.clear_caches()
    try:
        unfiltered = [rules.analyze(e.content, e.parent, e.title) for e in examples]
    finally:
        rules.clear_caches()
    assert len(filtered) > 1000
    assert filtered == unfiltered
