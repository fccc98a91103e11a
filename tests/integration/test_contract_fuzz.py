"""schemathesis against each running service's own OpenAPI: no 5xx, no status the schema does not document."""

import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import Stack


@pytest.mark.parametrize("service", ["ingest", "classifier", "recognition"])
def test_schemathesis_finds_no_server_error_and_no_undocumented_status(stack: Stack, service: str,
                                                                       tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("schemathesis")
    url = stack.url(service)
    result = subprocess.run(
        [str(st), "run", f"{url}/openapi.json", "--url", url,
         "--checks", "not_a_server_error,status_code_conformance",
         "--header", f"Authorization: Bearer {stack.token}",
         "--max-examples", "25", "--seed", "20261121", "--phases", "examples,coverage,fuzzing",
         "--request-timeout", "20", "--workers", "1", "--no-color", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout, result.stdout[-3000:]
