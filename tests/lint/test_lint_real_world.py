"""Recall on mistakes found in public code (``fixtures/corpus``, see ``real_world.py``).

Every rule finds at least 90% of the marked mistakes, and nothing unmarked is reported in the
corpus (its snippets hold the right code around the mistakes too).
"""

from __future__ import annotations

import pytest
from real_world import CORPUS, measure  # tests/lint is on the path (pytest prepend mode)


@pytest.fixture(scope="module")
def tally():
    return measure()


PATTERN_RULES = ["LMX101", "LMX102", "LMX103", "LMX104", "LMX105", "LMX106", "LMX107", "LMX201",
                 "LMX202"]  # fmt: skip


def test_the_corpus_covers_every_rule_that_has_a_pattern(tally):
    assert sorted(tally.expected) == PATTERN_RULES
    assert sum(tally.expected.values()) >= 40
    sources = [p for p in CORPUS.rglob("*") if p.suffix in (".py", ".ipynb")]
    assert all("http" in p.read_text()[:400] for p in sources)  # each snippet cites its source


@pytest.mark.parametrize("code", PATTERN_RULES)
def test_recall_per_rule_is_at_least_90_percent(tally, code):
    assert tally.recall(code) >= 0.9, tally.missed


def test_nothing_unmarked_is_reported(tally):
    assert tally.unexpected == []
