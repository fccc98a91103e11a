"""schemathesis against each running service's own OpenAPI, with every check it has.

`--checks all` includes: no 5xx; only documented statuses, content types and headers; response bodies match their
schemas; schema-violating requests are refused and schema-valid ones accepted; a missing Authorization header is a
401 and the token is not ignored (`ignored_auth`); 405 for undocumented methods with an exact `Allow` header; and the
stateful checks (`use_after_free`, `ensure_resource_availability`, `object_level_authorization`), which act where the
schema has links and pass trivially where it has none. None is excluded. The few answers JSON Schema cannot describe
(time bounds relative to now, since-after-until) are let through one by one in `schemathesis_hooks.py`, with the
reason for each.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import Stack

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("service", ["ingest", "classifier", "recognition"])
def test_schemathesis_with_every_check_finds_nothing(stack: Stack, service: str, tmp_path: Path) -> None:
    if service == "classifier" and stack.database_urls:
        pytest.skip("the classifier has no database: the SQLite stack covers it")
    st = Path(sys.executable).with_name("schemathesis")
    url = stack.url(service)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [str(st), "run", f"{url}/openapi.json", "--url", url, "--checks", "all",
         "--header", f"Authorization: Bearer {stack.token}",
         # 25 examples per operation and phase keep each service to about 15 s on 2 cores.
         "--max-examples", "25", "--seed", "20261121", "--phases", "examples,coverage,fuzzing,stateful",
         "--request-timeout", "20", "--workers", "1", "--no-color", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert re.search(r"\b(\d+) generated, \1 passed", result.stdout), result.stdout[-3000:]
