"""docker-compose.yml and its configuration in deploy/compose/: validated by Debian's docker-compose, read
structurally, and its scripts run for real (the topic init against a stub kafka-topics.sh, the database init
against the test PostgreSQL cluster). No Docker engine runs here, so no container is started.

Tools missing locally skip their test; with CI set they fail it (CI installs them: apt-get install docker-compose
prometheus)."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from classifier.config import ClassifierSettings
from devstack import postgres
from ingest.config import IngestSettings
from recognition.config import RecognitionSettings
from shared.topics import TOPICS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
TOPIC_SCRIPT = ROOT / "deploy" / "compose" / "kafka" / "create-topics.sh"
DB_SCRIPT = ROOT / "deploy" / "compose" / "postgres" / "create-databases.sh"
PROMETHEUS = ROOT / "deploy" / "compose" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "compose" / "grafana" / "provisioning"

SETTINGS: dict[str, type[BaseModel]] = {
    "ingest": IngestSettings, "classifier": ClassifierSettings, "recognition": RecognitionSettings}
ONE_SHOT = {"kafka-init"}
SECRETS = ("POSTGRES_PASSWORD", "ANCHOR_AUTH_TOKENS", "GRAFANA_ADMIN_PASSWORD")
DUMMY = {"POSTGRES_PASSWORD": "compose-test-pw",
         "ANCHOR_AUTH_TOKENS": json.dumps([{"name": "ops", "scopes": ["read"], "sha256": "ab" * 32}]),
         "GRAFANA_ADMIN_PASSWORD": "compose-test-admin"}


def require_tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: CI must install it (apt-get install {package})")
        pytest.skip(f"{name} not installed (apt-get install {package})")
    return found


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}; `$$` is a literal `$`."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    value = re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value.replace("$$", "\0"))
    return value.replace("\0", "$")


def environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: interpolate(str(value), env) for key, value in raw.items()}


# -- docker-compose itself ----------------------------------------------------------------------------------------


def run_compose(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    binary = require_tool("docker-compose", "docker-compose")
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("COMPOSE_")}
    # An empty --env-file: a developer's .env must not answer for the variables under test.
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "empty.env").write_text("")
        return subprocess.run([binary, "-f", str(COMPOSE), "--project-directory", str(ROOT),
                               "--env-file", str(Path(tmp) / "empty.env"), *args],
                              env={**clean, **env}, capture_output=True, text=True, timeout=120)


def test_docker_compose_accepts_the_file() -> None:
    result = run_compose(DUMMY, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_docker_compose_resolves_the_secrets_from_the_environment() -> None:
    result = run_compose(DUMMY, "config")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert resolved["postgres"]["environment"]["POSTGRES_PASSWORD"] == DUMMY["POSTGRES_PASSWORD"]
    for name, prefix in (("ingest", "INGEST"), ("classifier", "CLASSIFIER"), ("recognition", "RECOGNITION")):
        assert json.loads(resolved[name]["environment"][f"{prefix}_AUTH__TOKENS"]) == json.loads(
            DUMMY["ANCHOR_AUTH_TOKENS"])


@pytest.mark.parametrize("missing", SECRETS)
def test_docker_compose_refuses_to_run_without_each_secret(missing: str) -> None:
    env = {k: v for k, v in DUMMY.items() if k != missing}
    result = run_compose(env, "config", "-q")
    assert result.returncode != 0
    assert missing in result.stderr


# -- structure ----------------------------------------------------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "kafka-init", "postgres", "ingest", "classifier", "recognition", "prometheus",
            "grafana"} <= set(services)
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", f"{name} is one-shot: it must not be restarted"
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") == "unless-stopped", name


def test_every_dependency_waits_for_a_condition(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must be a mapping with conditions"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            expected = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert spec == {"condition": expected}, f"{name} -> {target}: {spec}"
    for name in SETTINGS:
        assert "kafka-init" in services[name]["depends_on"], f"{name} must start after the topics exist"
    for name in ("ingest", "recognition"):
        assert "postgres" in services[name]["depends_on"]
    assert "kafka" in services["kafka-init"]["depends_on"]


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and re.search(r"\d", tag) and tag != "latest", f"{name}: {image} is not pinned"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka-init"]["image"] == services["kafka"]["image"], "kafka-topics.sh of the same version"
    assert services["postgres"]["image"].startswith("postgres:15.")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_no_literal_secrets_in_the_file(services: dict[str, dict[str, Any]]) -> None:
    text = COMPOSE.read_text()
    assert not re.search(r"PASSWORD=(?!\"?\$)", text), "a literal password assignment"
    assert not re.search(r"\b[0-9a-f]{64}\b", text), "a token digest belongs in ANCHOR_AUTH_TOKENS, not here"
    assert '"token"' not in text and "'token'" not in text
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKENS|SECRET", key):
                assert re.fullmatch(r"\$\{(\w+):\?[^}]+\}", str(value)), f"{name}.{key} must come from ${{VAR:?}}"
            if key.endswith("DATABASE__URL"):
                assert not re.search(r"//[^/@]+:[^/@]+@", str(value)), f"{name}.{key} carries a password"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_service_environment_is_what_the_service_reads(services: dict[str, dict[str, Any]], name: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    service = services[name]
    prefix = name.upper() + "_"
    env = environment(service, DUMMY)
    model = SETTINGS[name]
    default_port = model().http.port  # type: ignore[attr-defined]
    for key in env:
        if not key.startswith(prefix):
            assert key == "PGPASSWORD", f"{name}: {key} is read by nothing"
            continue
        node: Any = model
        for part in key[len(prefix):].lower().split("__"):
            fields = node.model_fields
            assert part in fields, f"{name}: {key} names no setting"
            node = fields[part].annotation
    # The settings the service builds from exactly this environment.
    for key in list(os.environ):
        if key.startswith(prefix):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = model()
    assert settings.kafka.bootstrap_servers == "kafka:9092"  # type: ignore[attr-defined]
    assert settings.kafka.create_topics is False  # type: ignore[attr-defined]
    assert settings.http.host == "0.0.0.0"  # type: ignore[attr-defined]
    assert settings.http.port == default_port  # type: ignore[attr-defined]
    assert [t.name for t in settings.auth.tokens] == ["ops"]  # type: ignore[attr-defined]
    build = service["build"]
    assert build["dockerfile"] == "deploy/docker/Dockerfile" and build["context"] == "."
    assert build["args"] == {"SERVICE": name, "PORT": str(settings.http.port)}  # type: ignore[attr-defined]
    check = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{settings.http.port}/healthz" in check  # type: ignore[attr-defined]
    if name == "classifier":
        assert "PGPASSWORD" not in env, "the classifier has no database"
        return
    assert settings.database.url == f"postgresql://anchor@postgres:5432/{name}"  # type: ignore[attr-defined]
    assert env["PGPASSWORD"] == DUMMY["POSTGRES_PASSWORD"]
    assert services["postgres"]["environment"]["POSTGRES_USER"] == "anchor"


def test_kafka_is_a_single_kraft_node_without_auto_created_topics(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["kafka"], DUMMY)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "zookeeper" not in json.dumps(services["kafka"]).lower()
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in services["kafka"]["volumes"])


def test_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"


# -- Kafka topic init ---------------------------------------------------------------------------------------------

STUB = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    tool = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    state_path = os.environ["STUB_STATE"]
    state = json.load(open(state_path)) if os.path.exists(state_path) else {{}}
    with open(os.environ["STUB_LOG"], "a") as log:
        log.write(json.dumps([tool, *args]) + "\\n")
    def arg(flag):
        return args[args.index(flag) + 1]
    if tool == "kafka-topics.sh" and "--create" in args:
        topic = arg("--topic")
        if topic in state and "--if-not-exists" not in args:
            sys.exit("topic exists")
        state.setdefault(topic, int(arg("--partitions")))
    elif tool == "kafka-topics.sh" and "--describe" in args:
        topic = arg("--topic")
        print(f"Topic: {{topic}}\\tTopicId: x\\tPartitionCount: {{state[topic]}}\\tReplicationFactor: 1\\tConfigs: ")
        print(f"\\tTopic: {{topic}}\\tPartition: 0\\tLeader: 1")
    json.dump(state, open(state_path, "w"))
    """)


def run_topic_script(tmp_path: Path, existing: dict[str, int] | None = None) -> tuple[int, list[list[str]], str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("kafka-topics.sh", "kafka-configs.sh"):
        path = bindir / tool
        path.write_text(STUB.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    state, log = tmp_path / "state.json", tmp_path / "calls.log"
    if existing:
        state.write_text(json.dumps(existing))
    result = subprocess.run(["sh", str(TOPIC_SCRIPT)], capture_output=True, text=True, timeout=60, env={
        "PATH": os.environ["PATH"], "KAFKA_BIN": str(bindir), "KAFKA_BOOTSTRAP": "kafka:9092",
        "STUB_STATE": str(state), "STUB_LOG": str(log)})
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result.returncode, calls, result.stderr


def test_topic_init_creates_exactly_the_topics_of_shared_topics(tmp_path: Path) -> None:
    code, calls, stderr = run_topic_script(tmp_path)
    assert code == 0, stderr
    created = {}
    for call in calls:
        tool, args = call[0], call[1:]
        assert "--bootstrap-server" in args and args[args.index("--bootstrap-server") + 1] == "kafka:9092"
        if tool == "kafka-topics.sh" and "--create" in args:
            topic = args[args.index("--topic") + 1]
            configs = [args[i + 1] for i, a in enumerate(args) if a == "--config"]
            assert args[args.index("--replication-factor") + 1] == "1"
            created[topic] = (int(args[args.index("--partitions") + 1]), configs)
    assert created == {t.name: (t.partitions, [f"retention.ms={t.retention_ms}"]) for t in TOPICS}
    # Retention is also applied to topics that already existed.
    altered = {c[c.index("--entity-name") + 1]: c[c.index("--add-config") + 1] for c in calls
               if c[0] == "kafka-configs.sh"}
    assert altered == {t.name: f"retention.ms={t.retention_ms}" for t in TOPICS}


def test_topic_init_is_rerunnable_and_fails_on_a_partition_mismatch(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    layout = {t.name: t.partitions for t in TOPICS}
    code, _, stderr = run_topic_script(first, existing=layout)
    assert code == 0, stderr
    wrong = {**layout, TOPICS[0].name: TOPICS[0].partitions - 1}
    code, _, stderr = run_topic_script(second, existing=wrong)
    assert code != 0
    assert f"topic {TOPICS[0].name} has {TOPICS[0].partitions - 1} partitions" in stderr


def test_kafka_init_runs_the_script_from_the_mount(services: dict[str, dict[str, Any]]) -> None:
    init = services["kafka-init"]
    (mount,) = [v for v in init["volumes"] if v.startswith("./deploy/compose/kafka/create-topics.sh:")]
    target = mount.split(":")[1]
    assert init["entrypoint"] == ["/bin/sh", target]
    assert environment(init, DUMMY)["KAFKA_BOOTSTRAP"] == "kafka:9092"


# -- PostgreSQL init ----------------------------------------------------------------------------------------------


def test_postgres_init_script_is_mounted_into_the_init_folder(services: dict[str, dict[str, Any]]) -> None:
    mounts = services["postgres"]["volumes"]
    assert "./deploy/compose/postgres/create-databases.sh:/docker-entrypoint-initdb.d/10-create-databases.sh:ro" \
        in mounts
    assert any(v.startswith("postgres-data:/var/lib/postgresql/data") for v in mounts), "a named volume"
    assert DB_SCRIPT.stat().st_mode & stat.S_IXUSR, "executable, so the image runs it rather than sourcing it"


def test_postgres_init_creates_both_databases(pg_cluster: postgres.Cluster | None) -> None:
    if pg_cluster is None:
        pytest.skip("PostgreSQL binaries not installed")
    psql = str(pg_cluster.bindir / "psql")
    env = {"PATH": f"{pg_cluster.bindir}:{os.environ['PATH']}", "PGHOST": "127.0.0.1",
           "PGPORT": str(pg_cluster.port), "POSTGRES_USER": "postgres", "POSTGRES_DB": "postgres"}

    def databases() -> set[str]:
        out = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(pg_cluster.port), "-U", "postgres", "-Atc",
                              "SELECT datname FROM pg_database"], check=True, capture_output=True, text=True)
        return set(out.stdout.split())

    assert not {"ingest", "recognition"} & databases(), "the shared test cluster must not have them yet"
    try:
        for _ in range(2):  # the second run finds both and changes nothing
            result = subprocess.run(["sh", str(DB_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            assert {"ingest", "recognition"} <= databases()
    finally:
        for db in ("ingest", "recognition"):
            subprocess.run([psql, "-h", "127.0.0.1", "-p", str(pg_cluster.port), "-U", "postgres", "-c",
                            f"DROP DATABASE IF EXISTS {db}"], capture_output=True)


# -- Prometheus and Grafana ---------------------------------------------------------------------------------------


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of the bind mounts."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", []) if v.startswith("./")}


def test_prometheus_scrapes_every_service_and_loads_the_rules(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, model in SETTINGS.items():
        job = jobs[f"anchor-{name}"]
        (sd,) = job["dns_sd_configs"]
        assert sd["names"] == [name] and sd["port"] == model().http.port  # type: ignore[attr-defined]
        assert job.get("metrics_path", "/metrics") == "/metrics"
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    binds = mounts(services["prometheus"])
    assert binds["/etc/prometheus/prometheus.yml"] == "./deploy/compose/prometheus.yml"
    rules_dir = ROOT / binds["/etc/prometheus/rules"]
    assert sorted(rules_dir.glob("*.yml")), f"no rule file matches {rules_dir}/*.yml"


def test_promtool_accepts_the_config_with_the_rules(tmp_path: Path, services: dict[str, dict[str, Any]]) -> None:
    promtool = require_tool("promtool", "prometheus")
    rules_dir = ROOT / mounts(services["prometheus"])["/etc/prometheus/rules"]
    config = PROMETHEUS.read_text().replace("/etc/prometheus/rules/", f"{rules_dir}/")
    (tmp_path / "prometheus.yml").write_text(config)
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: [1-9]\d* rule files found", result.stdout), result.stdout


def test_grafana_provisions_the_datasource_the_dashboards_use(services: dict[str, dict[str, Any]]) -> None:
    binds = mounts(services["grafana"])
    assert binds["/etc/grafana/provisioning"] == "./deploy/compose/grafana/provisioning"
    (source,) = yaml.safe_load((GRAFANA / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((GRAFANA / "dashboards" / "anchor.yml").read_text())["providers"]
    path = provider["options"]["path"]
    dashboards = ROOT / binds[path]
    files = sorted(dashboards.glob("*.json"))
    assert files, f"no dashboard JSON in {dashboards}"
    used: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ds = node.get("datasource")
            if isinstance(ds, dict) and ds.get("type") == "prometheus" and not str(ds.get("uid", "")).startswith("$"):
                used.add(ds["uid"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for file in files:
        walk(json.loads(file.read_text()))
    assert used <= {source["uid"]}, f"dashboards use data source uids {used}, provisioned: {source['uid']}"
