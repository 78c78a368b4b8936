"""Monitoring on the real control plane: metric values after real transitions, structured logs, and a real
Prometheus server loading the shipped alert rules and scraping the running operator."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import LOGS, Objects, Operator, free_port
from tests.support.kube import REPO, Kubectl, eventually
from tests.support.prometheus import prometheus_binary

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
BLOCK = "tenure.test/block"


def scrape(operator: Operator) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).read().decode()
    found = {}
    for line in body.splitlines():
        if (sample := _SAMPLE.match(line)) is not None:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', sample["labels"] or ""))
            found[sample["name"], labels] = float(sample["value"])
    return found


def metric(operator: Operator, name: str, **labels: str) -> float | None:
    return scrape(operator).get((name, frozenset(labels.items())))


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def held_tenant(kubectl: Kubectl, objects: Objects, unique: str) -> str:
    """A tenant closed with a window of seconds and named by a LegalHold."""
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "6s"})
    held = f"held-{unique}"
    objects.create("Tenant", held, {"retentionPolicy": f"p-{unique}"})
    objects.create("LegalHold", f"h-{unique}", {"tenants": [held], "reason": "litigation"})
    close(kubectl, held)
    return held


def stuck_tenant(kubectl: Kubectl, objects: Objects, unique: str) -> str:
    """A tenant closed with a window of seconds whose namespace cannot finish terminating (a foreign finalizer)."""
    stuck = f"stuck-{unique}"
    objects.create("Tenant", stuck, {"retentionPolicy": f"p-{unique}", "namespaces": [f"ns-{unique}"]})
    eventually(lambda: kubectl.get("namespace", f"ns-{unique}"), what="the tenant's namespace")
    kubectl.patch("namespace", f"ns-{unique}", {"metadata": {"finalizers": [BLOCK]}})
    close(kubectl, stuck)
    return stuck


def release(kubectl: Kubectl, unique: str) -> None:
    """Let the stuck tenant's namespace go (the purge then finishes)."""
    if kubectl.get("namespace", f"ns-{unique}") is not None:
        kubectl.patch("namespace", f"ns-{unique}", {"metadata": {"finalizers": None}})


def close(kubectl: Kubectl, name: str) -> None:
    eventually(lambda: (kubectl.get("tenant", name) or {}).get("status", {}).get("phase"), what=f"{name} decided")
    kubectl.patch("tenant", name, {"spec": {"state": "Closed"}})


def test_metrics_follow_real_transitions(kubectl: Kubectl, objects: Objects, operator: Operator, unique: str) -> None:
    before = {cause: metric(operator, "tenure_purges_overdue", cause=cause) or 0 for cause in ("legal_hold", "purging")}
    held = held_tenant(kubectl, objects, unique)
    try:
        stuck = stuck_tenant(kubectl, objects, unique)
        expired = eventually(
            lambda: (t := kubectl.get("tenant", held)) and t["status"].get("phase") == "Expired" and t,
            what="the held tenant to expire",
        )
        deadline = epoch(expired["status"]["purgeAfter"])
        assert (
            eventually(
                lambda: metric(
                    operator, "tenure_tenant_deadline_timestamp_seconds", tenant=held, deadline="purge_after"
                ),
                what="the held tenant's deadline series",
            )
            == deadline
        )
        # Past the deadline: the held tenant is overdue for a legal hold, the other one is purging.
        eventually(
            lambda: metric(operator, "tenure_purges_overdue", cause="legal_hold") == before["legal_hold"] + 1,
            timeout=40,
            what="one more tenant overdue under a legal hold",
        )
        eventually(
            lambda: metric(operator, "tenure_purges_overdue", cause="purging") == before["purging"] + 1,
            timeout=40,
            what="one more tenant overdue while purging",
        )
        assert (kubectl.get("tenant", held) or {})["status"]["phase"] == "Expired"  # never purged under the hold
        assert metric(operator, "tenure_purge_age_seconds", tenant=held) is None
        started = epoch((kubectl.get("tenant", stuck) or {})["status"]["purgeStartedAt"])
        assert metric(operator, "tenure_purge_last_progress_timestamp_seconds", tenant=stuck) == started
        # purgeStartedAt is rounded up to a whole second, so the age reads 0 for up to a second after the start.
        eventually(
            lambda: (metric(operator, "tenure_purge_age_seconds", tenant=stuck) or 0) > 0,
            timeout=5,
            what="the purge's age to pass its rounded-up start",
        )
        first = metric(operator, "tenure_purge_age_seconds", tenant=stuck)
        assert first is not None and abs(first - (time.time() - started)) < 1
        time.sleep(1.5)
        assert (metric(operator, "tenure_purge_age_seconds", tenant=stuck) or 0) >= first + 1
        assert (metric(operator, "tenure_tenants_held") or 0) >= 1
    finally:
        release(kubectl, unique)
    eventually(
        lambda: (kubectl.get("tenant", stuck) or {}).get("status", {}).get("phase") == "Purged",
        timeout=60,
        what="the purge to finish once the namespace can go",
    )
    eventually(
        lambda: (
            metric(operator, "tenure_purge_age_seconds", tenant=stuck) is None
            and metric(operator, "tenure_purges_overdue", cause="purging") == before["purging"]
            and metric(operator, "tenure_tenant_deadline_timestamp_seconds", tenant=stuck, deadline="purge_after")
            is None
        ),
        what="the purged tenant's series to go",
    )
    logged = [json.loads(line) for line in operator.log.read_text().splitlines() if line.startswith("{")]
    about = [record for record in logged if record.get("tenant") == stuck]
    assert any(f"ns-{unique}" in record["message"] for record in about), about[-5:]


class Prometheus:
    """A real Prometheus server (Debian's prometheus package) on loopback, scraping the operator every second."""

    def __init__(self, directory: Path, target: int, rules: Path) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {"job_name": "tenure-metrics", "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}
            ],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = LOGS / "prometheus.log"
        LOGS.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    prometheus_binary("prometheus"),
                    f"--config.file={directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=log,
            )
        eventually(self.ready, timeout=60, what=f"Prometheus to be ready (see {self.log})")

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}; see {self.log}")
        try:
            return bool(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2).status == 200)
        except OSError:
            return False

    def api(self, path: str, **query: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(query)}"
        answer = json.loads(urllib.request.urlopen(url, timeout=5).read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def value(self, expr: str) -> float | None:
        result = self.api("query", query=expr)["result"]
        return float(result[0]["value"][1]) if result else None

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [alert for alert in self.api("alerts")["alerts"] if alert["labels"]["alertname"] == name]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def shipped_rules(directory: Path, pending: str) -> Path:
    """The PrometheusRule's groups as a rules file, every ``for`` shortened to ``pending`` (a test waits seconds)."""
    rule = yaml.safe_load((REPO / "manifests/monitoring/prometheusrule.yaml").read_text())
    for group in rule["spec"]["groups"]:
        for each in group["rules"]:
            if "for" in each:
                each["for"] = pending
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path


def test_prometheus_fires_purge_overdue_for_an_unheld_tenant_past_its_deadline_and_not_for_a_held_one(
    kubectl: Kubectl, objects: Objects, operator: Operator, unique: str, tmp_path: Path
) -> None:
    prometheus = Prometheus(tmp_path, operator.metrics_port, shipped_rules(tmp_path, "2s"))
    try:
        eventually(lambda: prometheus.value('up{job="tenure-metrics"}') == 1, what="the operator to be scraped")
        assert prometheus.alerts("PurgeOverdue") == []
        held = held_tenant(kubectl, objects, unique)
        eventually(
            lambda: (prometheus.value('tenure_purges_overdue{cause="legal_hold"}') or 0) >= 1,
            timeout=40,
            what="Prometheus to see a tenant overdue under a legal hold",
        )
        time.sleep(5)  # several evaluations past the shortened `for`
        assert prometheus.alerts("PurgeOverdue") == []
        assert (kubectl.get("tenant", held) or {})["status"]["phase"] == "Expired"
        try:
            stuck_tenant(kubectl, objects, unique)
            firing = eventually(
                lambda: [a for a in prometheus.alerts("PurgeOverdue") if a["state"] == "firing"],
                timeout=60,
                what="PurgeOverdue to fire",
            )
            assert [alert["labels"]["cause"] for alert in firing] == ["purging"]
            assert firing[0]["annotations"]["summary"] == "1 tenant(s) kept past their purge deadline (purging)"
            assert firing[0]["annotations"]["runbook_url"] == "docs/observability.md#purgeoverdue"
        finally:
            release(kubectl, unique)
        eventually(lambda: prometheus.alerts("PurgeOverdue") == [], timeout=60, what="PurgeOverdue to resolve")
    finally:
        prometheus.stop()


def test_the_monitoring_component_renders_on_the_deploy_base(kubectl: Kubectl, tmp_path: Path) -> None:
    overlay = REPO / ".cache" / f"monitoring-overlay-{tmp_path.name}"
    overlay.mkdir(parents=True, exist_ok=True)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": ["../../manifests/deploy"], "components": ["../../manifests/monitoring"]})
    )
    try:
        rendered = list(yaml.safe_load_all(kubectl.run("kustomize", str(overlay)).stdout))
    finally:
        shutil.rmtree(overlay)
    by_kind = {(obj["kind"], obj["metadata"]["name"]): obj for obj in rendered}
    service = by_kind["Service", "tenure-metrics"]
    monitor = by_kind["ServiceMonitor", "tenure"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    rules = by_kind["PrometheusRule", "tenure"]["spec"]["groups"][0]["rules"]
    assert [rule["alert"] for rule in rules] == [
        "PurgeOverdue", "PurgeStalled", "DataStoreUnavailable", "SweepNotRunning", "OperatorDown"
    ]  # fmt: skip
    dashboard = by_kind["ConfigMap", "tenure-grafana-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["tenure.json"])["uid"] == "tenure"
    assert ("Deployment", "tenure") in by_kind  # the base is still all there
