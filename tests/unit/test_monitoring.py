"""The shipped alert rules under promtool, and every metric the rules and the dashboard read is one Tenure exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

from tenure import metrics  # noqa: F401  (registers the process-wide metrics)
from tenure.runtime.metrics_view import MetricsView
from tenure.runtime.store import Stores
from tests.support.kube import REPO
from tests.support.prometheus import prometheus_binary

MONITORING = REPO / "manifests/monitoring"


def rules_file(directory: Path) -> Path:
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path


def test_promtool_checks_and_unit_tests_the_shipped_rules(tmp_path: Path) -> None:
    promtool = prometheus_binary("promtool")
    rules = rules_file(tmp_path)
    shutil.copy(REPO / "tests/monitoring/rules-test.yaml", tmp_path / "rules-test.yaml")
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "rules-test.yaml")], capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def exported() -> set[str]:
    """Every series name Tenure's /metrics can carry."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    families = [*REGISTRY.collect(), *MetricsView(Stores(), lambda tenant, uid: {}).describe()]
    return {f.name + suffix for f in families if f.name.startswith("tenure_") for suffix in suffixes[f.type]}


def test_rules_and_dashboard_read_only_metrics_tenure_exports() -> None:
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    exprs = [each["expr"] for group in rule["spec"]["groups"] for each in group["rules"]]
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\btenure_[a-z_]+", expr)}
    assert used - exported() == set()
    assert {"tenure_purges_overdue", "tenure_tenants", "tenure_sweep_rows_total"} <= used
