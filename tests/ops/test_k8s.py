"""The Kubernetes manifests in deploy/k8s: rendered, schema-validated, checked for the properties the deployment
relies on, and scanned by checkov.

- Rendering: `kustomize build` (or `kubectl kustomize`) of the base and of overlays/production. Without either
  binary, the YAML files each kustomization.yaml lists are loaded as they are (the overlay's patches are then not
  applied; the base files and the overlay's own files are still checked).
- Schemas: `kubernetes-validate --strict` on every built-in resource (the rendered base and overlay, and the
  example Secrets), for the oldest and the newest Kubernetes version below. Its bundled schemas have no CRDs, so
  the KEDA, Strimzi and Prometheus Operator resources are checked structurally here instead (apiVersion, kind and
  the fields each operator requires).
- checkov with deploy/checkov/config.yaml: no failed check; every skipped check is justified in
  deploy/k8s/ACCEPTED_FINDINGS.md.

Tools missing locally skip their test; with CI set they fail it (CI installs them).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared import topics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}
EXAMPLES = K8S / "examples"
CHECKOV_CONFIG = ROOT / "deploy" / "checkov" / "config.yaml"
ACCEPTED = K8S / "ACCEPTED_FINDINGS.md"
NAMESPACE = "anchor"
# The oldest Kubernetes the manifests target (docs/deploy-kubernetes.md) and the newest kubernetes-validate knows.
KUBE_VERSIONS = ("1.32.0", "1.37.0")

SERVICES = {"ingest": 8001, "classifier": 8002, "recognition": 8003}
HAS_DATABASE = {"ingest": True, "classifier": False, "recognition": True}
CONSUMERS = {  # service: (consumer group, topics it reads), as in services/*/*/app.py
    "classifier": ("anchor-classifier", {topics.POSTS}),
    "recognition": ("anchor-recognition", {topics.CLASSIFIED, topics.REACTIONS}),
}
SERVICE_NAMES = {f"anchor-{name}" for name in SERVICES}
KAFKA_POD = {"strimzi.io/cluster": "anchor", "strimzi.io/kind": "Kafka", "strimzi.io/name": "anchor-kafka",
             "strimzi.io/broker-role": "true", "strimzi.io/pool-name": "broker"}
POSTGRES_POD = {"app.kubernetes.io/name": "postgresql"}

BUILTIN_GROUPS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}
CUSTOM_KINDS = {
    "keda.sh/v1alpha1": {"ScaledObject"},
    "kafka.strimzi.io/v1": {"Kafka", "KafkaNodePool", "KafkaTopic"},
    "monitoring.coreos.com/v1": {"ServiceMonitor", "PrometheusRule"},
}

Doc = dict[str, Any]


def _tool_missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: CI must install it")
    pytest.skip(f"{what} is not installed")


def _executable(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in (Path(sys.executable).parent, ROOT / ".venv" / "bin", ROOT / ".venv-checkov" / "bin"):
        if (folder / name).is_file():
            return str(folder / name)
    return None


# --- rendering -------------------------------------------------------------------------------------------------

def _kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def _load(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _raw(folder: Path) -> list[Doc]:
    """The resources a kustomization lists, loaded as they are (folders are followed; patches are not applied)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        docs += _raw(path) if path.is_dir() else _load(path.read_text(encoding="utf-8"))
    return docs


RENDERED_BY = _kustomize()


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    out = {}
    for name, folder in OVERLAYS.items():
        if RENDERED_BY is None:
            out[name] = _raw(folder)
        else:
            result = subprocess.run([*RENDERED_BY, str(folder)], capture_output=True, text=True, timeout=120,
                                    check=False)
            assert result.returncode == 0, f"{' '.join(RENDERED_BY)} {folder} failed:\n{result.stderr}"
            out[name] = _load(result.stdout)
    return out


@pytest.fixture(params=list(OVERLAYS))
def docs(request: pytest.FixtureRequest, rendered: dict[str, list[Doc]]) -> list[Doc]:
    return rendered[request.param]


def _kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _is_builtin(doc: Doc) -> bool:
    return doc["apiVersion"] in BUILTIN_GROUPS


# --- label selectors -------------------------------------------------------------------------------------------

def _selects(selector: Doc | None, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector matches a pod with these labels (an empty selector matches all)."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _names_admitted(selector: Doc | None) -> set[str] | None:
    """The app.kubernetes.io/name values a pod selector is limited to, or None when it is not limited by name."""
    selector = selector or {}
    names: set[str] | None = None
    if "app.kubernetes.io/name" in (selector.get("matchLabels") or {}):
        names = {selector["matchLabels"]["app.kubernetes.io/name"]}
    for expr in selector.get("matchExpressions") or []:
        if expr["key"] == "app.kubernetes.io/name" and expr["operator"] == "In":
            values = set(expr.get("values") or [])
            names = values if names is None else names & values
    return names


def _rule_covers(rule: Doc, port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") in (port, None) for p in ports)


def _admitting_peers(policies: list[Doc], pod: dict[str, str], port: int) -> Iterator[Doc | None]:
    """Every peer the namespace's policies admit to `port` of a pod with these labels; None stands for "anyone"."""
    for policy in policies:
        spec = policy["spec"]
        if "Ingress" not in spec.get("policyTypes", ["Ingress"]) or not _selects(spec.get("podSelector"), pod):
            continue
        for rule in spec.get("ingress") or []:
            if not _rule_covers(rule, port):
                continue
            peers = rule.get("from")
            if not peers:
                yield None
            else:
                yield from peers


# --- tests -----------------------------------------------------------------------------------------------------

def test_every_resource_is_well_formed(docs: list[Doc]) -> None:
    assert docs
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        assert doc["metadata"].get("name"), doc
        known = doc["apiVersion"] in BUILTIN_GROUPS or doc["kind"] in CUSTOM_KINDS.get(doc["apiVersion"], set())
        assert known, f"unexpected {doc['apiVersion']} {doc['kind']}: no schema check covers it"
        if doc["kind"] != "Namespace" and (RENDERED_BY or doc["metadata"].get("namespace")):
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']} {doc['metadata']['name']}"
        assert doc["kind"] != "Secret", "Secrets stay out of the applied manifests (see deploy/k8s/examples)"


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_kubernetes_validate_strict(rendered: dict[str, list[Doc]], version: str, tmp_path: Path) -> None:
    tool = _executable("kubernetes-validate")
    if tool is None:
        _tool_missing("kubernetes-validate (pip install kubernetes-validate)")
    sets = {name: [d for d in docs if _is_builtin(d)] for name, docs in rendered.items()}
    sets["examples"] = [d for path in sorted(EXAMPLES.glob("*.yaml")) for d in _load(path.read_text(encoding="utf-8"))]
    for name, builtin in sets.items():
        assert builtin, name
        target = tmp_path / f"{name}.yaml"
        target.write_text(yaml.safe_dump_all(builtin, sort_keys=False), encoding="utf-8")
        result = subprocess.run([tool, "--strict", "-k", version, str(target)], capture_output=True, text=True,
                                timeout=300, check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{name} against {version}:\n{output}"
        # A resource whose apiVersion the version does not know only gets a warning: require a pass for each.
        for doc in builtin:
            ident = f"{doc['kind'].lower()}/{doc['metadata']['name']}"
            assert f"passed for resource {ident} " in output, f"{name}: {ident} not validated against {version}:\n" \
                                                              f"{output}"


def test_custom_resources_have_the_fields_their_operators_require(docs: list[Doc]) -> None:
    """kubernetes-validate has no CRD schemas: the shape of the KEDA, Strimzi and Prometheus Operator resources is
    checked here (Strimzi v1 API: KRaft only, node pools, no ZooKeeper; KEDA metadata values are strings)."""
    deployments = {d["metadata"]["name"] for d in _kind(docs, "Deployment")}
    clusters = {d["metadata"]["name"] for d in _kind(docs, "Kafka")}
    assert clusters == {"anchor"}
    for doc in docs:
        kind, spec = doc["kind"], doc.get("spec") or {}
        where = f"{kind} {doc['metadata']['name']}"
        if kind == "ScaledObject":
            assert spec["scaleTargetRef"]["name"] in deployments, where
            assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], where
            assert spec["triggers"], where
            for trigger in spec["triggers"]:
                assert isinstance(trigger["type"], str) and isinstance(trigger["metadata"], dict), where
                assert all(isinstance(v, str) for v in trigger["metadata"].values()), f"{where}: strings only"
                if trigger["type"] == "kafka":
                    meta = trigger["metadata"]
                    assert {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} <= meta.keys(), where
                    assert int(meta["lagThreshold"]) > 0, where
                    assert meta.get("allowIdleConsumers", "false") == "false", where
                    assert meta["bootstrapServers"] == "anchor-kafka-bootstrap.anchor.svc:9092", where
        elif kind == "Kafka":
            assert "zookeeper" not in spec and "replicas" not in spec["kafka"] and "storage" not in spec["kafka"], \
                f"{where}: KRaft with node pools (replicas and storage belong to the KafkaNodePools)"
            listeners = spec["kafka"]["listeners"]
            assert listeners and all({"name", "port", "type", "tls"} <= lis.keys() for lis in listeners), where
            assert any(lis["port"] == 9092 and lis["type"] == "internal" for lis in listeners), where
            assert all(lis.get("networkPolicyPeers") for lis in listeners), \
                f"{where}: Strimzi's own listener NetworkPolicy would admit every pod without networkPolicyPeers"
            assert spec["kafka"]["config"]["auto.create.topics.enable"] is False, where
            assert "topicOperator" in spec["entityOperator"], where
        elif kind == "KafkaNodePool":
            assert doc["metadata"]["labels"]["strimzi.io/cluster"] in clusters, where
            assert isinstance(spec["replicas"], int) and spec["replicas"] >= 1, where
            assert spec["roles"] and set(spec["roles"]) <= {"controller", "broker"}, where
            assert spec["storage"]["type"] in {"jbod", "persistent-claim", "ephemeral"}, where
        elif kind == "KafkaTopic":
            assert doc["metadata"]["labels"]["strimzi.io/cluster"] in clusters, where
            assert isinstance(spec["partitions"], int) and isinstance(spec["replicas"], int), where
            assert isinstance(spec["config"]["retention.ms"], int), where
        elif kind == "ServiceMonitor":
            assert spec["selector"], where
            for endpoint in spec["endpoints"]:
                assert endpoint["port"] == "http" and endpoint["path"] == "/metrics", where
                # The metrics' own `service` label (which the alert rules use) must win over the target's.
                assert endpoint.get("honorLabels") is True, where
        elif kind == "PrometheusRule":
            assert spec["groups"], where
            for group in spec["groups"]:
                assert group["name"] and group["rules"], where
                for rule in group["rules"]:
                    assert ("alert" in rule) != ("record" in rule) and rule["expr"], f"{where}: {rule}"
    pools = _kind(docs, "KafkaNodePool")
    for role in ("controller", "broker"):
        assert sum(p["spec"]["replicas"] for p in pools if role in p["spec"]["roles"]) >= 3, f"3 {role}s at least"


def _env(docs: list[Doc], container: Doc) -> dict[str, Any]:
    """The container's environment: ConfigMap values (envFrom) then its own env entries (value or valueFrom)."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        env.update(_one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return env


@pytest.mark.parametrize("service", list(SERVICES))
def test_deployment_is_probed_limited_and_hardened(docs: list[Doc], service: str) -> None:
    name, port, prefix = f"anchor-{service}", SERVICES[service], service.upper()
    deployment = _one(docs, "Deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(deployment["spec"]["selector"], labels)
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == name
    assert _one(docs, "ServiceAccount", name)["automountServiceAccountToken"] is False
    pod_sc = pod["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and isinstance(pod_sc["runAsUser"], int) and pod_sc["runAsUser"] >= 10000
    assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    assert re.fullmatch(rf"(.+/)?anchor/{service}(:[\w.-]+|@sha256:[0-9a-f]{{64}})", container["image"]), \
        container["image"]
    assert not container["image"].endswith(":latest")
    assert {"name": "http", "containerPort": port, "protocol": "TCP"} in container["ports"]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"]["path"] == path, probe
        assert container[probe]["httpGet"]["port"] in ("http", port), probe
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][bound].keys(), bound
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == pod_sc["runAsUser"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged", False) is False
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    # A read-only root filesystem needs a writable /tmp.
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume

    env = _env(docs, container)
    assert env[f"{prefix}_HTTP__HOST"] == "0.0.0.0"
    assert int(env[f"{prefix}_HTTP__PORT"]) == port
    assert env[f"{prefix}_KAFKA__CREATE_TOPICS"] == "false"
    assert env[f"{prefix}_KAFKA__BOOTSTRAP_SERVERS"] == "anchor-kafka-bootstrap.anchor.svc:9092"
    assert env[f"{prefix}_AUTH__TOKENS"]["secretKeyRef"] == {"name": "anchor-api-tokens", "key": "tokens"}
    if HAS_DATABASE[service]:
        assert env[f"{prefix}_DATABASE__URL"]["secretKeyRef"] == {"name": f"anchor-{service}-database", "key": "url"}
    else:
        assert f"{prefix}_DATABASE__URL" not in env
    if service in CONSUMERS:
        assert env[f"{prefix}_KAFKA__GROUP_ID"] == CONSUMERS[service][0]
    assert not [k for k, v in env.items() if isinstance(v, str) and re.search(r"TOKEN|PASSWORD|DATABASE__URL", k)], \
        "secret settings come from Secrets, never from plain values"

    service_doc = _one(docs, "Service", name)
    assert _selects({"matchLabels": service_doc["spec"]["selector"]}, labels)
    assert {"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"} in service_doc["spec"]["ports"]
    assert _selects(_one(docs, "PodDisruptionBudget", name)["spec"]["selector"], labels)
    monitor = _one(docs, "ServiceMonitor", name)
    assert _selects(monitor["spec"]["selector"], service_doc["metadata"]["labels"])


def _min_replicas(docs: list[Doc], deployment: str) -> int:
    for hpa in _kind(docs, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == deployment:
            return hpa["spec"]["minReplicas"]
    for scaled in _kind(docs, "ScaledObject"):
        if scaled["spec"]["scaleTargetRef"]["name"] == deployment:
            return scaled["spec"]["minReplicaCount"]
    return _one(docs, "Deployment", deployment)["spec"].get("replicas", 1)


def test_autoscaling_is_bounded_by_partitions(docs: list[Doc]) -> None:
    partitions = {t.name: t.partitions for t in topics.TOPICS}
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in _kind(docs, "ScaledObject")}
    assert set(scaled) == {f"anchor-{s}" for s in CONSUMERS}
    for service, (group, consumed) in CONSUMERS.items():
        spec = scaled[f"anchor-{service}"]["spec"]
        kafka_triggers = [t["metadata"] for t in spec["triggers"] if t["type"] == "kafka"]
        assert {t["topic"] for t in kafka_triggers} == consumed, service
        assert {t["consumerGroup"] for t in kafka_triggers} == {group}, service
        # Consumers beyond the partition count of a topic they read sit idle.
        bound = min(partitions[topic] for topic in consumed)
        assert spec["maxReplicaCount"] <= bound, f"{service}: {spec['maxReplicaCount']} > {bound} partitions"
    hpas = {d["spec"]["scaleTargetRef"]["name"]: d for d in _kind(docs, "HorizontalPodAutoscaler")}
    assert set(hpas) == {"anchor-ingest"}, "KEDA owns the consumers' HPAs; only ingest has a plain HPA"
    ingest = hpas["anchor-ingest"]["spec"]
    assert ingest["scaleTargetRef"]["kind"] == "Deployment"
    assert ingest["minReplicas"] >= 2 and ingest["maxReplicas"] >= ingest["minReplicas"]
    assert [m["resource"]["name"] for m in ingest["metrics"]] == ["cpu"]
    for deployment in _kind(docs, "Deployment"):
        # The autoscalers own the replica count; a fixed one would be reset on every apply.
        assert "replicas" not in deployment["spec"], deployment["metadata"]["name"]
    for pdb in _kind(docs, "PodDisruptionBudget"):
        target = pdb["metadata"]["name"]
        if "minAvailable" in pdb["spec"]:
            assert pdb["spec"]["minAvailable"] < _min_replicas(docs, target), f"{target}: drains would block"
        else:
            assert pdb["spec"]["maxUnavailable"] >= 1, target


def test_kafka_topics_match_shared_topics(docs: list[Doc]) -> None:
    declared = {}
    for doc in _kind(docs, "KafkaTopic"):
        name = doc["spec"].get("topicName", doc["metadata"]["name"])
        declared[name] = (doc["spec"]["partitions"], doc["spec"]["config"]["retention.ms"])
        brokers = sum(p["spec"]["replicas"] for p in _kind(docs, "KafkaNodePool") if "broker" in p["spec"]["roles"])
        assert doc["spec"]["config"].get("min.insync.replicas", 1) < doc["spec"]["replicas"] <= brokers, name
    assert declared == {t.name: (t.partitions, t.retention_ms) for t in topics.TOPICS}


def test_network_policies_restrict_ingress(docs: list[Doc]) -> None:
    policies = _kind(docs, "NetworkPolicy")
    # Default deny: a policy selecting every pod, for ingress, with no rule.
    assert any(p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"]
               and not p["spec"].get("ingress") for p in policies)
    for service, port in SERVICES.items():
        pod = {"app.kubernetes.io/name": f"anchor-{service}"}
        peers = list(_admitting_peers(policies, pod, port))
        assert None in peers, f"{service}: its API must be reachable from outside the namespace"
        assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in peers, \
            f"{service}: Prometheus (namespace monitoring) must reach /metrics"
        assert not list(_admitting_peers(policies, pod, 9999)), f"{service}: only its HTTP port is open"

    def only(pod: dict[str, str], port: int, allowed: set[str], extra: list[Doc]) -> None:
        peers = list(_admitting_peers(policies, pod, port))
        assert peers, f"nothing admitted to {pod} on {port}: the services could not connect"
        for peer in peers:
            assert peer is not None and "ipBlock" not in peer, f"{pod}:{port} open to anyone: {peer}"
            if peer in extra:
                continue
            assert "namespaceSelector" not in peer, f"{pod}:{port}: other namespaces admitted: {peer}"
            names = _names_admitted(peer.get("podSelector"))
            assert names is not None and names <= allowed, f"{pod}:{port} admits {peer}"

    keda = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "keda-operator"}}}
    kafka_itself = {"podSelector": {"matchLabels": {"strimzi.io/cluster": "anchor"}}}  # CLI tools in a broker pod
    only(KAFKA_POD, 9092, SERVICE_NAMES, [keda, kafka_itself])
    only(POSTGRES_POD, 5432, {"anchor-ingest", "anchor-recognition", "postgresql"}, [])
    for service in SERVICES:  # Every service can reach Kafka; only those with a database reach PostgreSQL.
        pod = {"app.kubernetes.io/name": f"anchor-{service}"}
        assert any(p and _selects(p.get("podSelector"), pod) and "namespaceSelector" not in p
                   for p in _admitting_peers(policies, KAFKA_POD, 9092)), service
        reaches_db = any(p and _selects(p.get("podSelector"), pod) and "namespaceSelector" not in p
                         for p in _admitting_peers(policies, POSTGRES_POD, 5432))
        assert reaches_db == HAS_DATABASE[service], service
    # Strimzi's own per-listener policy uses the listener's networkPolicyPeers: the same peers.
    kafka = _one(docs, "Kafka", "anchor")
    for listener in kafka["spec"]["kafka"]["listeners"]:
        for peer in listener["networkPolicyPeers"]:
            names = _names_admitted(peer.get("podSelector"))
            assert peer in (keda, kafka_itself) or ("namespaceSelector" not in peer and names
                                                    and names <= SERVICE_NAMES), peer


def test_production_overlay_is_larger_spread_and_pinned(rendered: dict[str, list[Doc]]) -> None:
    base, production = rendered["base"], rendered["production"]
    if RENDERED_BY is None:
        pytest.skip("the overlay's patches are applied only by kustomize (kubectl kustomize)")
    for service in SERVICES:
        name = f"anchor-{service}"
        assert _min_replicas(production, name) >= 2 and _min_replicas(production, name) >= _min_replicas(base, name)
        pdb = _one(production, "PodDisruptionBudget", name)["spec"]
        assert "minAvailable" in pdb and "maxUnavailable" not in pdb, name
        pod = _one(production, "Deployment", name)["spec"]["template"]["spec"]
        keys = {c["topologyKey"] for c in pod.get("topologySpreadConstraints", [])}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, name
        (container,) = pod["containers"]
        assert re.search(r":\d+\.\d+\.\d+$|@sha256:[0-9a-f]{64}$", container["image"]), container["image"]
        base_pod = _one(base, "Deployment", name)["spec"]["template"]["spec"]
        assert container["resources"] != base_pod["containers"][0]["resources"], f"{name}: production resources"
    broker = _one(production, "KafkaNodePool", "broker")
    assert broker["spec"]["resources"] != _one(base, "KafkaNodePool", "broker")["spec"]["resources"]
    assert _one(production, "Kafka", "anchor")["spec"]["kafka"]["rack"]["topologyKey"] == "topology.kubernetes.io/zone"


def _skipped_checks() -> list[str]:
    return list(yaml.safe_load(CHECKOV_CONFIG.read_text(encoding="utf-8")).get("skip-check") or [])


def test_every_accepted_finding_is_justified() -> None:
    """Each check skipped in deploy/checkov/config.yaml has its section in ACCEPTED_FINDINGS.md, and vice versa."""
    text = ACCEPTED.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (CKV2?_[A-Z0-9_]+)\b[^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    skipped = _skipped_checks()
    assert len(skipped) == len(set(skipped))
    assert set(skipped) == set(sections), "deploy/checkov/config.yaml skip-check and ACCEPTED_FINDINGS.md differ"
    for check, body in sections.items():
        for part in ("Resources:", "Why it is accepted:", "Lift it when:"):
            assert part in body, f"{check}: missing '{part}'"
        assert len(body.split()) >= 40, f"{check}: the justification is too thin"


def test_checkov_finds_nothing_unjustified() -> None:
    tool = _executable("checkov")
    if tool is None:
        _tool_missing("checkov (pip install checkov, in its own virtualenv: its pins clash with the project's)")
    result = subprocess.run([tool, "--config-file", str(CHECKOV_CONFIG), "--output", "json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode in (0, 1), f"checkov failed to run:\n{result.stderr[-4000:]}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed, scanned = [], 0
    for report in reports:
        assert report.get("check_type", "kubernetes") == "kubernetes", report.get("check_type")
        summary = report["summary"]
        assert summary["parsing_errors"] == 0, summary
        scanned += summary["resource_count"]
        failed += [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
                   for c in report.get("results", {}).get("failed_checks", [])]
    assert scanned >= 30, f"checkov scanned only {scanned} resources"
    assert not failed, "checkov findings not fixed nor accepted in deploy/k8s/ACCEPTED_FINDINGS.md:\n" + \
        "\n".join(failed)
    assert result.returncode == 0
