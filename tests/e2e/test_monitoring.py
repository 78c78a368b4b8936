"""Monitoring on the real control plane: metric values after real transitions, structured logs, and a real
Prometheus server loading the shipped alert rules and scraping the running operator."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import datetime

from tests.conftest import Objects, Operator
from tests.support.kube import Kubectl, eventually

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


def closing_tenants(kubectl: Kubectl, objects: Objects, unique: str) -> tuple[str, str]:
    """Two tenants closed with a window of seconds: one held, one whose namespace cannot finish terminating."""
    held, stuck = f"held-{unique}", f"stuck-{unique}"
    objects.create("RetentionPolicy", f"p-{unique}", {"expiredDataRetention": "6s"})
    objects.create("Tenant", held, {"retentionPolicy": f"p-{unique}"})
    objects.create("Tenant", stuck, {"retentionPolicy": f"p-{unique}", "namespaces": [f"ns-{unique}"]})
    objects.create("LegalHold", f"h-{unique}", {"tenants": [held], "reason": "litigation"})
    eventually(lambda: kubectl.get("namespace", f"ns-{unique}"), what="the tenant's namespace")
    kubectl.patch("namespace", f"ns-{unique}", {"metadata": {"finalizers": [BLOCK]}})
    for name in (held, stuck):
        eventually(lambda n=name: (kubectl.get("tenant", n) or {}).get("status", {}).get("phase"), what="a phase")
        kubectl.patch("tenant", name, {"spec": {"state": "Closed"}})
    return held, stuck


def release(kubectl: Kubectl, unique: str) -> None:
    kubectl.patch("namespace", f"ns-{unique}", {"metadata": {"finalizers": None}})


def test_metrics_follow_real_transitions(kubectl: Kubectl, objects: Objects, operator: Operator, unique: str) -> None:
    before = {cause: metric(operator, "tenure_purges_overdue", cause=cause) or 0 for cause in ("legal_hold", "purging")}
    held, stuck = closing_tenants(kubectl, objects, unique)
    try:
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
        first = metric(operator, "tenure_purge_age_seconds", tenant=stuck)
        started = epoch((kubectl.get("tenant", stuck) or {})["status"]["purgeStartedAt"])
        assert metric(operator, "tenure_purge_last_progress_timestamp_seconds", tenant=stuck) == started
        assert first is not None and first >= 0
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
