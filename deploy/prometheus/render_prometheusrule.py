"""Renders deploy/k8s/base/monitoring/prometheusrule.yaml from deploy/prometheus/rules/anchor.rules.yml.

The Prometheus Operator's PrometheusRule carries the rule file's groups unchanged as its `spec`: the groups are
copied as text (comments and block scalars kept) and indented under `spec:`, so the two never drift apart.

    python deploy/prometheus/render_prometheusrule.py           # writes the file
    python deploy/prometheus/render_prometheusrule.py --check   # exit 1 when the committed file is out of date
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "anchor.rules.yml"
TARGET = ROOT / "deploy" / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules/anchor.rules.yml by deploy/prometheus/render_prometheusrule.py; do not edit.
# Alerts, meaning and runbook: docs/observability.md.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: anchor
  labels:
    app.kubernetes.io/name: anchor
    app.kubernetes.io/part-of: anchor
    app.kubernetes.io/component: monitoring
    role: alert-rules
spec:
"""


def render(rules_text: str) -> str:
    lines = rules_text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    except StopIteration:
        raise ValueError("the rule file has no top-level `groups:`") from None
    body = ["  " + line if line.strip() else "" for line in lines[start:]]
    while body and not body[-1]:
        body.pop()
    return HEADER + "\n".join(body) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare with the committed file")
    args = parser.parse_args(argv)
    rendered = render(RULES.read_text(encoding="utf-8"))
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != rendered:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run {Path(__file__).relative_to(ROOT)}",
                  file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(rendered, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
