"""The garbage collector's pauses are measured per generation, and what exists at start-up is frozen out of them."""

import gc

from prometheus_client import REGISTRY

from shared import gc_pauses


def _sample(name: str, generation: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": "gc-test", "generation": generation}) or 0.0


def test_a_full_collection_is_recorded_as_a_generation_2_pause() -> None:
    gc_pauses.watch("gc-test")
    gc_pauses.watch("gc-test")  # a second call adds no second callback
    count, total = _sample("anchor_gc_pause_seconds_count", "2"), _sample("anchor_gc_pause_seconds_sum", "2")
    gc.collect()
    assert _sample("anchor_gc_pause_seconds_count", "2") == count + 1
    assert _sample("anchor_gc_pause_seconds_sum", "2") > total
    gc.collect(0)
    assert _sample("anchor_gc_pause_seconds_count", "0") >= 1


def test_settle_freezes_what_is_alive_so_full_collections_skip_it() -> None:
    survivors = [[i] for i in range(10_000)]  # tracked containers, alive across the freeze
    try:
        gc_pauses.settle()
        frozen = gc.get_freeze_count()
        assert frozen >= len(survivors)
        gc.collect()
        assert gc.get_freeze_count() == frozen  # a full collection leaves the permanent generation alone
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
