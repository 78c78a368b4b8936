"""The CLI and the kubectl plugin against the real control plane and a real PostgreSQL: status, describe, holds,
and the read-only purge plan with row counts per DataStore, table and data class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.conftest import Objects
from tests.e2e.test_datastores import NAMESPACE, ready, secret  # noqa: F401  (secret is a fixture)
from tests.e2e.test_dry_run import content
from tests.support.kube import KUBECTL, REPO, Kubectl, eventually
from tests.support.litellm import create_account, spend_log

pytestmark = pytest.mark.usefixtures("operator")
SPEND_LOGS = "public.LiteLLM_SpendLogs"


def tenure(kubeconfig: Path, *args: str) -> str:
    env = {**os.environ, "COLUMNS": "250"}
    env.pop("KUBECONFIG", None)  # only --kubeconfig says where the cluster is
    done = subprocess.run(
        [sys.executable, "-m", "tenure", *args, f"--kubeconfig={kubeconfig}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def plugin(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``kubectl tenure ...``: kubectl finds kubectl-tenure on PATH, as with krew or pip install."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "COLUMNS": "250"}
    env.pop("KUBECONFIG", None)
    return subprocess.run(
        [str(KUBECTL), "tenure", *args, f"--kubeconfig={kubeconfig}"], env=env, capture_output=True, text=True
    )


@pytest.fixture
def accounts(
    kubectl: Kubectl,
    objects: Objects,
    secret: str,  # noqa: F811  (the fixture imported above)
    litellm_db: str,
    unique: str,
) -> dict[str, Any]:
    """Three tenants in one DataStore (in dry run, so the operator's sweep leaves the rows for the plan to count):
    one closed (purge due in a day), one active with class windows, one closed and held."""
    now = datetime.now(UTC)
    store = f"ds-{unique}"
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        found = {name: create_account(conn, name) for name in ("closing", "active", "held")}
        for account in found.values():
            for age in (1, 10, 40):
                spend_log(conn, account, now - timedelta(days=age))
    spec = {"connectionSecretRef": {"namespace": NAMESPACE, "name": secret}, "preset": "litellm"}
    objects.create("DataStore", store, {"postgres": spec, "sweepInterval": "1h", "dryRun": True})
    ready(kubectl, store)
    windows = {"expiredDataRetention": "1d", "dataClassRetention": {"prompts": "7d", "usage": "30d"}}
    objects.create("RetentionPolicy", f"p-{unique}", windows)
    for name, account in found.items():
        body: dict[str, Any] = {"retentionPolicy": f"p-{unique}", "dataKeys": {store: [account.organization]}}
        if name == "closing":
            body["namespaces"] = [f"ns-{unique}"]
        objects.create("Tenant", f"{name}-{unique}", body)
    objects.create("LegalHold", f"h-{unique}", {"tenants": [f"held-{unique}"], "reason": "case 13"})
    eventually(lambda: kubectl.get("namespace", f"ns-{unique}"), what="the closing tenant's namespace")
    for name in ("closing", "held"):
        eventually(lambda n=name: (kubectl.get("tenant", f"{n}-{unique}") or {}).get("status"), what="a status")
        kubectl.patch("tenant", f"{name}-{unique}", {"spec": {"state": "Closed"}})
        eventually(
            lambda n=name: (kubectl.get("tenant", f"{n}-{unique}") or {})["status"].get("phase") == "Expired",
            what=f"{name} to expire",
        )
    return {"store": store, "accounts": found, "db": litellm_db}


def test_plan_lists_what_would_be_deleted_by_a_date_with_row_counts_and_changes_nothing(
    kubeconfig: Path, accounts: dict[str, Any], unique: str
) -> None:
    store, before = accounts["store"], content(accounts["db"])
    until = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    names = [f"{n}-{unique}" for n in ("closing", "active", "held")]
    items = json.loads(tenure(kubeconfig, "plan", "--until", until, "-o", "json", *names))
    by = {(i["tenant"], i["why"], i.get("table"), i.get("dataClass")): i for i in items}
    closing = f"closing-{unique}"
    purged = [i for i in items if i["tenant"] == closing]
    assert {"tenant": closing, "why": "purge", "what": f"namespace ns-{unique}"} == {
        k: v for k, v in purged[0].items() if k in ("tenant", "why", "what")
    }
    assert by[closing, "purge", SPEND_LOGS, "usage"]["rows"] == 3
    assert by[closing, "purge", "public.LiteLLM_VerificationToken", "account"]["rows"] == 4
    assert all(i["datastore"] == store and i["estimate"] is False for i in purged[1:])
    assert purged[0]["when"] > datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # due in a day, not now
    active = f"active-{unique}"
    assert by[active, "retention", SPEND_LOGS, "usage"]["rows"] == 1  # older than 30 days at --until
    assert by[active, "redaction", SPEND_LOGS, "prompts"]["rows"] == 2  # prompts older than 7 days
    assert "dry run" in by[active, "retention", SPEND_LOGS, "usage"]["note"]
    assert [(i["why"], i["what"], i["note"]) for i in items if i["tenant"] == f"held-{unique}"] == [
        ("kept", "everything", f"legal hold h-{unique}")
    ]
    today = {(i["tenant"], i["why"]) for i in json.loads(tenure(kubeconfig, "plan", "-o", "json", *names))}
    assert (closing, "purge") not in today and (active, "retention") in today  # by now: only the sweep
    table = tenure(kubeconfig, "plan", "--until", until, *names)
    assert f"namespace ns-{unique}" in table and f"3 rows of {SPEND_LOGS} in DataStore {store}" in table
    assert yaml.safe_load(tenure(kubeconfig, "plan", "--until", until, "-o", "yaml", *names)) == items
    assert content(accounts["db"]) == before  # read-only


def test_kubectl_plugin_status_describe_holds_with_kubeconfig_context_and_json(
    kubeconfig: Path, accounts: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    # A kubeconfig whose current context is broken: only --context picks the working one.
    config = yaml.safe_load(kubeconfig.read_text())
    working = config["contexts"][0]["name"]
    config["contexts"].append({"name": "broken", "context": {"cluster": "nowhere", "user": "nobody"}})
    config["current-context"] = "broken"
    broken = tmp_path / "kubeconfig"
    broken.write_text(yaml.safe_dump(config))
    assert plugin(broken, "status").returncode != 0
    listed = plugin(broken, "status", "--context", working, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows[f"closing-{unique}"]["phase"] == "Expired" and rows[f"active-{unique}"]["phase"] == "Active"
    assert rows[f"held-{unique}"]["legalHolds"] == [f"h-{unique}"]
    described = plugin(broken, "describe", f"closing-{unique}", "--context", working, "-o", "json")
    assert described.returncode == 0, described.stderr
    detail = json.loads(described.stdout)
    assert detail["tenant"]["metadata"]["name"] == f"closing-{unique}"
    assert "Expired" in [event["reason"] for event in detail["events"]]
    table = plugin(broken, "describe", f"closing-{unique}", "--context", working)
    assert "Recent Events" in table.stdout and "Expired" in table.stdout
    holds = json.loads(plugin(broken, "holds", "--context", working, "-o", "json").stdout)
    assert {"name": f"h-{unique}", "tenants": [f"held-{unique}"], "reason": "case 13"}.items() <= next(
        h for h in holds if h["name"] == f"h-{unique}"
    ).items()
    missing = plugin(broken, "describe", f"nobody-{unique}", "--context", working)
    assert missing.returncode != 0 and f"no Tenant named 'nobody-{unique}'" in missing.stderr


def test_the_plugin_is_installed_as_an_executable() -> None:
    assert (Path(sys.executable).parent / "kubectl-tenure").exists(), REPO / "pyproject.toml"
