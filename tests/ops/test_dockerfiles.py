"""The service image definition (deploy/docker/Dockerfile) and the build context (.dockerignore), checked statically:
no Docker engine runs here, so the build's own commands are replayed where they can be (the dependency list, the
health check) and the rest is read from the parsed Dockerfile."""

import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
REQUIREMENTS_SCRIPT = ROOT / "deploy" / "docker" / "requirements_from_pyproject.py"
SERVICES = ("ingest", "classifier", "recognition")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc1|clang|build-essential|make|cmake|rustc|cargo|python3?-dev|libc6-dev)\b")


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages: continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede the first FROM, got {keyword}"
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, args))
    return global_args, stages


def resolve(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), value)


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE)


@pytest.fixture(scope="module")
def final(dockerfile: tuple[dict[str, str], list[Stage]]) -> Stage:
    return dockerfile[1][-1]


@pytest.fixture(scope="module")
def builder(dockerfile: tuple[dict[str, str], list[Stage]]) -> Stage:
    stages = dockerfile[1]
    copied_from = {re.search(r"--from=(\S+)", c.args).group(1)  # type: ignore[union-attr]
                   for c in stages[-1].all("COPY") if "--from=" in c.args}
    assert len(copied_from) == 1, f"the final stage should copy from one build stage, got {copied_from}"
    (name,) = copied_from
    return next(s for s in stages if s.name == name)


def test_multi_stage_with_a_slim_python_311_runtime(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    global_args, stages = dockerfile
    assert len(stages) >= 2
    bases = [resolve(s.base, global_args) for s in stages]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", bases[-1]), bases[-1]
    # The venv's interpreter path must exist in the runtime: both stages start from the same Python image.
    assert bases[0] == bases[-1]


def test_final_stage_runs_as_a_fixed_non_root_uid(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the final stage has no USER"
    user = users[-1].args.split(":")[0]
    assert user.isdigit() and int(user) >= 1000, f"USER should be a fixed numeric non-root uid, got {user!r}"
    created = " ".join(r.args for r in final.all("RUN"))
    assert f"--uid {user}" in created, "the uid in USER should be the one useradd creates"


def test_final_stage_has_no_build_tools(final: Stage) -> None:
    for run in final.all("RUN"):
        assert not BUILD_TOOLS.search(run.args), run.args
        assert "pip install" not in run.args, "the runtime gets the built venv, it installs nothing"
    assert not any("apt-get install" in r.args for r in final.all("RUN"))


def test_final_stage_gets_only_the_virtualenv_from_the_builder(final: Stage, builder: Stage) -> None:
    copies = final.all("COPY")
    assert copies and all("--from=" in c.args for c in copies), "the runtime copies no source from the context"
    assert any(c.args.split()[-2:] == ["/opt/venv", "/opt/venv"] for c in copies)
    assert any("python -m venv /opt/venv" in r.args for r in builder.all("RUN"))


def test_dependencies_are_installed_before_the_source_is_copied(builder: Stage) -> None:
    steps = builder.instructions
    install_deps = next(i for i, s in enumerate(steps) if s.keyword == "RUN" and "-r requirements.txt" in s.args)
    assert "-c constraints.txt" in steps[install_deps].args, "dependencies are installed with the project's pins"
    early = [src for s in steps[:install_deps] if s.keyword == "COPY" for src in shlex.split(s.args)[:-1]]
    assert "constraints.txt" in early and "shared/pyproject.toml" in early
    for source in early:
        assert source in ("constraints.txt", "deploy/docker/requirements_from_pyproject.py") or \
            source.endswith("/pyproject.toml"), f"source copied before the dependency layer: {source}"
    later_copies = [s.args for s in steps[install_deps:] if s.keyword == "COPY"]
    assert any(c.startswith("shared/ ") for c in later_copies), "the shared package is copied after the deps"
    assert any(c.startswith("services/${SERVICE}/ ") for c in later_copies)
    own_install = next(s.args for s in steps[install_deps + 1:] if s.keyword == "RUN" and "pip install" in s.args)
    assert "--no-deps" in own_install and "-e " not in own_install, "own packages: no deps, not editable"


def test_no_training_extra_in_the_image(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    commands = " ".join(i.args for stage in dockerfile[1] for i in stage.instructions)
    assert "[train]" not in commands and "scikit-learn" not in commands and "cnsenti" not in commands
    classifier = subprocess.run(
        [sys.executable, str(REQUIREMENTS_SCRIPT), str(ROOT / "shared/pyproject.toml"),
         str(ROOT / "services/classifier/pyproject.toml")],
        check=True, capture_output=True, text=True).stdout.splitlines()
    assert {"numpy", "scipy", "rjieba", "fastapi", "aiokafka", "psycopg[binary]"} <= set(classifier)
    assert not [r for r in classifier if r.startswith(("scikit-learn", "anchor-"))], classifier
    ingest = subprocess.run(
        [sys.executable, str(REQUIREMENTS_SCRIPT), str(ROOT / "shared/pyproject.toml"),
         str(ROOT / "services/ingest/pyproject.toml")], check=True, capture_output=True, text=True).stdout.splitlines()
    assert "numpy" not in ingest and "fastapi" in ingest


def test_every_dependency_is_pinned_by_constraints() -> None:
    pins = {line.split("==")[0].strip().lower() for line in (ROOT / "constraints.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    for service in SERVICES:
        out = subprocess.run(
            [sys.executable, str(REQUIREMENTS_SCRIPT), str(ROOT / "shared/pyproject.toml"),
             str(ROOT / f"services/{service}/pyproject.toml")], check=True, capture_output=True, text=True).stdout
        for requirement in out.splitlines():  # one per line, as the image's requirements.txt reads them
            name = re.split(r"[\[<>=!~; ]", requirement)[0].lower()
            assert name in pins, f"{service}: {name} is not pinned in constraints.txt"


def test_service_and_port_arguments_match_the_services(builder: Stage) -> None:
    from classifier.config import ClassifierSettings
    from ingest.config import IngestSettings
    from recognition.config import RecognitionSettings

    ports = {"ingest": IngestSettings().http.port, "classifier": ClassifierSettings().http.port,
             "recognition": RecognitionSettings().http.port}
    check = next(r.args for r in builder.all("RUN") if "case" in r.args)
    allowed = set(re.findall(r"(\w+):(\d+)", check.split(")")[0]))
    assert allowed == {(name, str(port)) for name, port in ports.items()}


def test_exposes_the_port_and_starts_the_service(final: Stage, builder: Stage) -> None:
    assert [e.args for e in final.all("EXPOSE")] == ["${PORT}"]
    entrypoint = json.loads(final.all("ENTRYPOINT")[-1].args)
    assert entrypoint == ["anchor-service"]
    assert any('ln -s "anchor-${SERVICE}" /opt/venv/bin/anchor-service' in r.args for r in builder.all("RUN"))
    env = " ".join(e.args for e in final.all("ENV"))
    for prefix in ("INGEST", "CLASSIFIER", "RECOGNITION"):
        assert f"{prefix}_HTTP__HOST=0.0.0.0" in env
    # The console scripts the symlink points at exist.
    for service in SERVICES:
        text = (ROOT / f"services/{service}/pyproject.toml").read_text()
        assert f'anchor-{service} = "{service}.main:run"' in text


def test_classifier_image_gets_its_model(builder: Stage) -> None:
    text = (ROOT / "services/classifier/pyproject.toml").read_text()
    assert re.search(r'classifier = \["models/\*\.npz"\]', text), "the model must be package data"
    assert (ROOT / "services/classifier/classifier/models/hybrid.npz").stat().st_size > 0
    assert any("models/hybrid.npz" in r.args for r in builder.all("RUN")), "the build checks the model is in"
    assert not ignored("services/classifier/classifier/models/hybrid.npz")


# -- health check -------------------------------------------------------------------------------------------------


def healthcheck_code(final: Stage) -> str:
    (check,) = final.all("HEALTHCHECK")
    argv = json.loads(check.args[check.args.index("CMD") + 3:].strip())
    assert argv[:2] == ["python", "-c"], "the health check runs Python, no curl or wget in the image"
    return argv[2]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def run_check(code: str, env: dict[str, str]) -> int:
    return subprocess.run([sys.executable, "-c", code], env={"PATH": os.environ.get("PATH", ""), **env},
                          capture_output=True, timeout=20).returncode


def test_healthcheck_calls_healthz_on_the_configured_port(final: Stage, health_server: tuple[int, type]) -> None:
    code = healthcheck_code(final)
    assert "/healthz" in code and "urllib" in code
    port, handler = health_server
    # The image's default port, then a <PREFIX>_HTTP__PORT override that wins over it.
    assert run_check(code, {"ANCHOR_SERVICE": "recognition", "ANCHOR_PORT": str(port)}) == 0
    assert run_check(code, {"ANCHOR_SERVICE": "recognition", "ANCHOR_PORT": "1",
                            "RECOGNITION_HTTP__PORT": str(port)}) == 0
    assert run_check(code, {"ANCHOR_SERVICE": "ingest", "ANCHOR_PORT": "1", "RECOGNITION_HTTP__PORT": str(port)}) != 0
    handler.status = 503
    assert run_check(code, {"ANCHOR_SERVICE": "recognition", "ANCHOR_PORT": str(port)}) != 0


def test_healthcheck_env_is_set_in_the_image(final: Stage) -> None:
    env = " ".join(e.args for e in final.all("ENV"))
    assert "ANCHOR_SERVICE=${SERVICE}" in env and "ANCHOR_PORT=${PORT}" in env


# -- build context ------------------------------------------------------------------------------------------------


def dockerignore_rules() -> list[tuple[bool, str]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, line.lstrip("!").strip("/")))
    return rules


def _matches(pattern: str, path: str) -> bool:
    """Docker's matching, closely enough: the pattern matches the path or one of its parent directories; `**`
    matches any number of directories."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i:end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    parts = path.split("/")
    return any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1))


def ignored(path: str) -> bool:
    result = False
    for negated, pattern in dockerignore_rules():
        if _matches(pattern, path):
            result = not negated
    return result


def test_dockerignore_matcher_understands_the_patterns() -> None:
    assert _matches("**/__pycache__", "shared/shared/__pycache__/x.pyc")
    assert _matches("tests", "tests/ops/test_compose.py")
    assert not _matches("tests", "shared/tests.py")
    assert _matches("**/*.py[cod]", "a/b/x.pyc") and _matches("**/*.py[cod]", "x.pyo")
    assert not _matches("**/*.py[cod]", "a/b/x.py") and not _matches("*.md", "docs/x.md")


@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".git/HEAD", "data/ingest.db", "tests/conftest.py", "bench/classifier_speed.py",
    "corpus/part_a_flaws.jsonl", ".pytest_cache/v/x", "shared/shared/__pycache__/db.cpython-311.pyc",
    "services/ingest/anchor_ingest.egg-info/PKG-INFO", ".ruff_cache/x", ".env", "deploy/k8s/base/ingest.yaml",
])
def test_dockerignore_keeps_out_what_runtime_does_not_need(path: str) -> None:
    assert ignored(path), path


def test_dockerignore_keeps_everything_the_build_copies(builder: Stage) -> None:
    needed = []
    for copy in builder.all("COPY"):
        for source in shlex.split(copy.args)[:-1]:
            for service in SERVICES:
                needed.append(source.replace("${SERVICE}", service).rstrip("/"))
    assert needed
    for source in needed:
        assert (ROOT / source).exists(), source
        assert not ignored(source), f"{source} is copied by the Dockerfile but excluded by .dockerignore"
        if (ROOT / source).is_dir():
            tracked = [p for p in (ROOT / source).rglob("*.py") if "__pycache__" not in p.parts
                       and not any(part.endswith(".egg-info") for part in p.parts)]
            assert tracked
            for file in tracked:
                relative = file.relative_to(ROOT).as_posix()
                assert not ignored(relative), relative
