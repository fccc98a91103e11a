"""Prints the third-party dependencies of the given pyproject.toml files, one per line.

The image build installs these (pinned by constraints.txt) before any source is copied, so the dependency layer
stays cached while only code changes. Anchor's own packages (`anchor-*`) are left out: they are installed from
source afterwards. Optional extras such as the classifier's `[train]` (scikit-learn) are never included.
"""

import re
import sys
import tomllib

OWN = re.compile(r"^anchor-", re.IGNORECASE)


def requirements(paths: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for path in paths:
        with open(path, "rb") as f:
            project = tomllib.load(f)["project"]
        for requirement in project.get("dependencies", []):
            if not OWN.match(requirement.strip()):
                seen.setdefault(requirement.strip(), None)
    return list(seen)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: requirements_from_pyproject.py PYPROJECT.toml...")
    print("\n".join(requirements(sys.argv[1:])))
