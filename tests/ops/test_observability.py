"""Alert rules, their unit tests, the Grafana dashboards and the PrometheusRule, checked against promtool and
against what the services really export on /metrics."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devstack.stack import Stack
from tests.helpers import eventually, post, uid, visible

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "anchor.rules.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"
DOC = ROOT / "docs" / "observability.md"
SERVICES = ("ingest", "classifier", "recognition")

# Every label an expression may group by or a legend may show: aggregates only, never a member, post or topic id.
AGGREGATE_LABELS = {"service", "topic", "partition", "dependency", "method", "route", "status", "le", "path", "kind",
                    "outcome", "label", "level", "consensus", "flag", "figure", "job", "instance"}
IDENTIFYING = re.compile(r"(member|author|post|topic|thread|reaction)_?id|display_?name", re.IGNORECASE)
# Series Prometheus makes itself; every other name must be exported by a service.
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
                "bool", "inf", "nan"}
GRAFANA_RANGES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install promtool: apt-get install prometheus")
        pytest.skip("promtool not installed (apt-get install -y prometheus)")
    return path


def run_promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], input=stdin, capture_output=True, text=True, timeout=120, cwd=ROOT)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in DASHBOARDS}


def panel_targets() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [(name, panel, target) for name, board in dashboards().items() for panel in board["panels"]
            for target in panel.get("targets", [])]


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_RANGES.items():
        expr = expr.replace(variable, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: strings, label matchers, ranges, grouping clauses, offsets, function
    names and keywords removed."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?\w+", " ", s)
    names = {m.group(1) for m in re.finditer(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", s)}
    return {n for n in names if n.lower() not in PROMQL_WORDS}


def grouping_labels(expr: str) -> set[str]:
    """Label names an expression groups, joins or matches on."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    found = {m.group(1) for block in re.findall(r"\{([^}]*)\}", expr)
             for m in re.finditer(r"(\w+)\s*(?:=~|!~|!=|=)", block)}
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        found |= {label.strip() for label in m.group(1).split(",") if label.strip()}
    return found


def doc_anchors() -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


# ---------------------------------------------------------------------------------------------- rules


def test_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    assert RULE_TESTS
    result = run_promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_for_severity_summary_description_and_runbook() -> None:
    rules = alert_rules()
    assert rules and all("alert" in r for r in rules), "only alerting rules are expected in the file"
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    anchors = doc_anchors()
    for rule in rules:
        name = rule["alert"]
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name
        doc, _, anchor = annotations["runbook_url"].partition("#")
        assert doc == "docs/observability.md" and anchor == name.lower(), name
        assert anchor in anchors, f"docs/observability.md has no heading for {name}"


def test_every_alert_is_tested_firing_and_silent() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        suite = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert suite["rule_files"] == ["../rules/anchor.rules.yml"], path
        for case in suite["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                (fires if expected else silent).add(check["alertname"])
                for alert in expected:
                    assert alert.get("exp_labels") and alert.get("exp_annotations"), (path, check["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - fires == set(), "alerts without a test case where they fire"
    assert names - silent == set(), "alerts without a test case where they stay silent"
    assert (fires | silent) - names == set(), "tests of alerts that do not exist"


def test_rules_carry_aggregate_labels_only() -> None:
    for rule in alert_rules():
        assert grouping_labels(rule["expr"]) <= AGGREGATE_LABELS, rule["alert"]
        texts = [rule["expr"], *map(str, rule.get("labels", {}).keys()), *map(str, rule.get("labels", {}).values())]
        assert not any(IDENTIFYING.search(t) for t in texts), rule["alert"]
        # Annotations may only show aggregate labels.
        for text in rule["annotations"].values():
            assert set(re.findall(r"\$labels\.(\w+)", text)) <= AGGREGATE_LABELS, rule["alert"]


def test_prometheusrule_equals_its_rendering() -> None:
    sys.path.insert(0, str(PROMETHEUS))
    try:
        import render_prometheusrule
    finally:
        sys.path.remove(str(PROMETHEUS))
    committed = PROMETHEUS_RULE.read_text(encoding="utf-8")
    assert committed == render_prometheusrule.render(RULES.read_text(encoding="utf-8")), (
        "run python deploy/prometheus/render_prometheusrule.py")
    resource = yaml.safe_load(committed)
    assert resource["apiVersion"] == "monitoring.coreos.com/v1" and resource["kind"] == "PrometheusRule"
    assert resource["spec"]["groups"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]


# ---------------------------------------------------------------------------------------------- dashboards


def test_dashboards_are_well_formed() -> None:
    boards = dashboards()
    assert set(boards) == {"anchor-pipeline.json", "anchor-community.json", "anchor-wellbeing.json"}
    uids = [board["uid"] for board in boards.values()]
    assert len(uids) == len(set(uids))
    for name, board in boards.items():
        assert board["uid"] == name.removesuffix(".json") and board["title"], name
        assert board["schemaVersion"] >= 39, name
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for variable in board.get("templating", {}).get("list", []):
            assert not IDENTIFYING.search(json.dumps(variable)), f"{name}: variable {variable.get('name')}"
        for panel in board["panels"]:
            where = f"{name} panel {panel['id']} {panel.get('title')!r}"
            assert panel.get("type") != "row" or not panel.get("targets"), where
            if panel.get("type") == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, where
            targets = panel.get("targets")
            assert targets, f"{where}: no targets"
            refs = [t["refId"] for t in targets]
            assert len(refs) == len(set(refs)), where
            for target in targets:
                assert target.get("expr", "").strip(), where
                assert target.get("datasource", {}).get("uid") == "prometheus", where
                assert grouping_labels(target["expr"]) <= AGGREGATE_LABELS, where
                shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
                assert shown <= AGGREGATE_LABELS, where
                assert not IDENTIFYING.search(target["expr"] + target.get("legendFormat", "")), where


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel query, as a recording rule (Grafana's range variables replaced)."""
    rules = [{"record": f"anchor:dashboard_check:{i}", "expr": grafana_to_promql(target["expr"])}
             for i, (_, _, target) in enumerate(panel_targets())]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_metric_name_parser() -> None:
    expr = ('sum by (le, route) (rate(anchor_x_bucket{route!~"/a|/b", status="5xx"}[$__rate_interval])) / '
            'ignoring(label) group_left max(anchor_y offset 1h) > bool 0 unless time() - up or vector(0)')
    assert metric_names(expr) == {"anchor_x_bucket", "anchor_y", "up"}


# ---------------------------------------------------------------------------------------------- real /metrics


@pytest.fixture(scope="module")
def exposition(stack: Stack) -> dict[str, str]:
    """Each service's /metrics after a little traffic: a question and its answer through the whole pipeline, a
    classification on request, readiness probes, and a community snapshot."""
    with httpx.Client(headers={"Authorization": f"Bearer {stack.token}"}, timeout=30) as client:
        thread, asker, helper = uid("t"), uid("u"), uid("u")
        question = post(uid("p"), thread_id=thread, author_id=asker, content="新手求问,雨刮器怎么调灵敏度?")
        answer = post(uid("p"), thread_id=thread, author_id=helper, reply_to=question["post_id"],
                      content="在中控屏设置-灯光与雨刮里面可以调,别担心,很简单", created_at="2026-03-01T20:20:00+08:00")
        assert client.post(f"{stack.url('ingest')}/v1/posts", json={"posts": [question, answer]}).status_code == 202
        recognition = stack.url("recognition")
        eventually(lambda: visible(client, recognition, answer["post_id"]))
        response = client.post(f"{stack.url('classifier')}/v1/classify", json={"content": "刹车有异响正常吗"})
        assert response.status_code == 200
        for service in SERVICES:
            assert client.get(f"{stack.url(service)}/readyz").status_code == 200

        def snapshot_taken() -> bool:
            text = httpx.get(f"{recognition}/metrics", timeout=10).text
            m = re.search(r"^anchor_recognition_snapshot_timestamp_seconds (\S+)$", text, re.MULTILINE)
            return bool(m and float(m.group(1)) > 0)

        eventually(snapshot_taken)
        eventually(lambda: "anchor_consumer_lag{" in httpx.get(f"{stack.url('classifier')}/metrics").text)
        return {service: httpx.get(f"{stack.url(service)}/metrics", timeout=10).text for service in SERVICES}


def exported_names(text: str) -> set[str]:
    """Series names a scrape of this exposition yields, from its `# TYPE` lines."""
    names: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split()
        if kind == "counter":
            base = name.removesuffix("_total")
            names |= {f"{base}_total", f"{base}_created"}
        elif kind == "histogram":
            names |= {name + suffix for suffix in ("_bucket", "_sum", "_count", "_created")}
        elif kind == "summary":
            names |= {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
        else:
            names.add(name)
    return names


def sample_labels(text: str) -> dict[str, set[str]]:
    """Label names seen on each series name's samples."""
    seen: dict[str, set[str]] = {}
    # Label values may hold braces (route templates such as /v1/posts/{post_id}): match quoted values whole.
    for m in re.finditer(r'^([a-zA-Z_:][\w:]*)(?:\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\})? ', text, re.MULTILINE):
        labels = seen.setdefault(m.group(1), set())
        labels |= set(re.findall(r"(\w+)=\"", m.group(2) or ""))
    return seen


@pytest.mark.parametrize("service", SERVICES)
def test_metrics_pass_promtool_lint(exposition: dict[str, str], service: str) -> None:
    result = run_promtool("check", "metrics", stdin=exposition[service])
    assert result.returncode == 0, f"{service} /metrics: {result.stdout}{result.stderr}"


def test_rules_and_dashboards_use_exported_metrics(exposition: dict[str, str]) -> None:
    exported = set().union(*(exported_names(text) for text in exposition.values())) | PROMETHEUS_OWN
    assert {"anchor_http_requests_total", "anchor_pipeline_latency_seconds_bucket",
            "anchor_recognition_members_by_risk_level"} <= exported
    used: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"rule {rule['alert']}")
    for board, panel, target in panel_targets():
        for name in metric_names(target["expr"]):
            used.setdefault(name, set()).add(f"{board} panel {panel['title']!r}")
    assert len(used) >= 20
    missing = {name: sorted(where) for name, where in used.items() if name not in exported}
    assert not missing, f"not exported by any service: {missing}"


def test_selectors_use_labels_the_metrics_have(exposition: dict[str, str]) -> None:
    """Label names in `metric{...}` selectors exist on that metric's samples (job and instance come from the scrape)."""
    labels: dict[str, set[str]] = {}
    for text in exposition.values():
        for name, found in sample_labels(text).items():
            labels.setdefault(name, set()).update(found)
    exprs = [r["expr"] for r in alert_rules()] + [t["expr"] for _, _, t in panel_targets()]
    checked = 0
    for expr in exprs:
        expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
        for m in re.finditer(r"([a-zA-Z_:][\w:]*)\{([^}]*)\}", expr):
            name, used = m.group(1), set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", m.group(2)))
            if name in PROMETHEUS_OWN or name not in labels:
                continue  # no samples without traffic of that kind (e.g. dead letters); the name test covers it
            assert used - {"job", "instance"} <= labels[name], f"{name}: {used - labels[name]} in {expr!r}"
            checked += 1
    assert checked >= 20
