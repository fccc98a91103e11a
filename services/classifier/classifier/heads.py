"""What every match of a regex contains: a prefilter that skips searches which cannot succeed.

The rule layer runs about ninety vocabulary searches per post and most of them find nothing. Each
vocabulary's "heads" are one- and two-character strings, read off the parsed pattern, such that every
match contains one of them. Usually a head is where the match begins. After an optional repeat it may
start inside the match instead: `a*b` has heads `b` and `ab`, and its match `aab` begins `aa`. So a
head says whether a regex can match a text, not where. All the heads go into one table; a post's
characters and character pairs, looked up there, name the few vocabularies that can match at all. A
vocabulary without heads (one that can start with any character, or match the empty string) is always
searched. Skipping a search changes no result: a regex none of whose heads occurs in the text has no
match in it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

__all__ = ["HeadIndex", "heads"]

# More heads than this and the table costs more memory than the skipped searches save.
_MAX_HEADS = 4096
# A class wider than this is followed no further than its first character.
_MAX_CLASS_FOR_PAIRS = 64


@functools.cache
def _decimal_digits() -> tuple[str, ...]:
    # `\d` in a str pattern is every Unicode decimal digit, not only 0-9.
    return tuple(chr(c) for c in range(0x110000) if chr(c).isdecimal())


def _class_chars(items: list[tuple[object, object]]) -> list[str] | None:
    chars: list[str] = []
    for kind, value in items:
        if kind is sre.LITERAL:
            chars.append(chr(value))  # type: ignore[arg-type]
        elif kind is sre.RANGE and value[1] - value[0] < _MAX_HEADS:  # type: ignore[index]
            chars.extend(chr(c) for c in range(value[0], value[1] + 1))  # type: ignore[index]
        elif kind is sre.CATEGORY and value is sre.CATEGORY_DIGIT:
            chars.extend(_decimal_digits())
        else:
            return None  # negated, or a category such as \w or \s: any character
    return chars


def _prefixes(items: list[tuple[object, object]], k: int) -> set[str]:
    """Strings of at most k characters, one of which occurs in every match of `items` ("" stands for any).

    It begins the match unless an optional repeat comes first: then it begins the repeat's last round or
    what follows the repeat."""
    if k == 0 or not items:
        return {""}
    op, av = items[0]
    rest = items[1:]
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return _prefixes(rest, k)  # anchors and lookarounds consume nothing
    if op is sre.LITERAL:
        return {chr(av) + p for p in _prefixes(rest, k - 1)}  # type: ignore[arg-type]
    if op is sre.IN:
        chars = _class_chars(av)  # type: ignore[arg-type]
        if chars is None:
            return {""}
        tails = _prefixes(rest, k - 1) if len(chars) <= _MAX_CLASS_FOR_PAIRS else {""}
        return {c + p for c in chars for p in tails}
    if op is sre.SUBPATTERN:
        _, add_flags, del_flags, sub = av  # type: ignore[misc]
        if add_flags or del_flags:
            return {""}  # (?i) and friends: matching is no longer by exact character
        return _prefixes(list(sub) + rest, k)
    if op is sre.BRANCH:
        out: set[str] = set()
        for alternative in av[1]:  # type: ignore[index]
            out |= _prefixes(list(alternative) + rest, k)
        return out
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        low, _, sub = av  # type: ignore[misc]
        if low == 0:
            return _prefixes(rest, k) | _prefixes(list(sub) + rest, k)
        return _prefixes(list(sub), 1)
    return {""}  # any character, a back-reference, an atomic group...


def heads(regex: re.Pattern[str]) -> frozenset[str] | None:
    """One- or two-character strings one of which occurs in every match of `regex`; None if unknown."""
    if regex.flags & (re.IGNORECASE | re.VERBOSE):
        return None
    found = _prefixes(list(sre_parse.parse(regex.pattern)), 2)
    if "" in found or len(found) > _MAX_HEADS:
        return None
    return frozenset(found)


class HeadIndex:
    """Numbers a set of regexes and tells, for a text, the numbers of those that can match it."""

    def __init__(self, regexes: Iterable[re.Pattern[str]]) -> None:
        self.ids: dict[int, int] = {}  # id(regex) -> number; patterns hash by their bytecode, slowly
        always: set[int] = set()
        by_head: dict[str, set[int]] = {}
        for regex in regexes:
            if id(regex) in self.ids:
                continue
            rid = self.ids[id(regex)] = len(self.ids)
            found = heads(regex)
            if found is None:
                always.add(rid)
                continue
            for head in found:
                by_head.setdefault(head, set()).add(rid)
        self._always = frozenset(always)
        self._by_head = {head: frozenset(rids) for head, rids in by_head.items()}

    def id(self, regex: re.Pattern[str]) -> int:
        return self.ids[id(regex)]

    def candidates(self, text: str) -> frozenset[int]:
        grams = set(text)
        grams.update(map(str.__add__, text, text[1:]))
        return self._always.union(*filter(None, map(self._by_head.get, grams)))
