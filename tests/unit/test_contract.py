"""The schema package says exactly what the public contract (../shared/spec) says."""

import re
from pathlib import Path

import pytest

from shared import labels, topics

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec"


@pytest.fixture(scope="module")
def labels_md() -> str:
    path = SPEC / "labels.md"
    if not path.exists():
        pytest.skip("../shared/spec is not beside this checkout")
    return path.read_text(encoding="utf-8")


def test_the_16_labels_in_the_guide_order(labels_md: str) -> None:
    in_tables = re.findall(r"^\| `([a-z_]+)` \|", labels_md, flags=re.MULTILINE)
    assert tuple(in_tables) == labels.LABELS


def test_components_and_conditions(labels_md: str) -> None:
    section_d = labels_md.split("## D.")[1].split("## E.")[0]
    components_part, conditions_part = section_d.split("`conditions`")
    assert (*re.findall(r"`([a-z_]+)` \(", components_part), "other") == labels.COMPONENTS
    assert tuple(re.findall(r"`([a-z_]+)`", conditions_part.split("any of:")[1])) == labels.CONDITIONS


def test_topic_names() -> None:
    api_md = SPEC / "api.md"
    if not api_md.exists():
        pytest.skip("../shared/spec is not beside this checkout")
    names = set(re.findall(r"`(koc\.[a-z.]+\.v1)`", api_md.read_text(encoding="utf-8")))
    assert names == {topics.POSTS, topics.REACTIONS, topics.CLASSIFIED, topics.ALERTS, topics.DEADLETTER}
    assert names <= {spec.name for spec in topics.TOPICS}
