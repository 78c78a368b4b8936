"""`tenure export`: an Active tenant's rows out of a real PostgreSQL and back into an empty LiteLLM schema."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tenure.export import manifest_path
from tests.conftest import BREAK_GLASS, Objects, Operator
from tests.e2e.test_datastores import claiming, datastore, purging_store, secret
from tests.e2e.test_lifecycle import phase_of, suspend
from tests.e2e.test_receipts import tenure
from tests.support.kube import Kubectl, eventually
from tests.support.litellm import create_account, spend_log
from tests.support.postgres import Postgres

pytestmark = pytest.mark.usefixtures("operator")
__all__ = ["secret"]  # the fixture, used by name


def test_an_active_tenants_export_round_trips_and_a_suspended_ones_is_refused(
    kubectl: Kubectl,
    kubeconfig: Path,
    objects: Objects,
    secret: str,
    litellm_db: str,
    litellm_template: str,
    postgres: Postgres,
    unique: str,
    tmp_path: Path,
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme, globex = create_account(conn, "acme"), create_account(conn, "globex")
        for account in (acme, globex):
            for day in range(30):
                spend_log(conn, account, datetime.now(UTC) - timedelta(days=day))
        request = spend_log(conn, acme, datetime.now(UTC), with_organization=False)  # found through its team only
        awkward = json.dumps([{"role": "user", "content": 'two\nlines, a \\ backslash, "quotes", é, \t'}])
        conn.execute('UPDATE "LiteLLM_SpendLogs" SET messages = %s WHERE request_id = %s', [awkward, request])
    store = purging_store(kubectl, objects, secret, unique)
    tenant = f"t-{unique}"
    claiming(objects, tenant, unique, store, acme.organization)
    phase_of(kubectl, tenant, "Active")

    output = tmp_path / "acme.jsonl.gz"
    result = tenure(kubeconfig, "export", tenant, "--store", store, "-o", str(output))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "acme.jsonl.gz.manifest.json").read_text())
    with gzip.open(output, "rt", encoding="utf-8") as file:
        lines = list(file)
    texts: defaultdict[str, list[str]] = defaultdict(list)  # per table, each row as PostgreSQL wrote it
    for line in lines:
        table = json.loads(line)["table"]
        texts[table].append(line.removeprefix('{"table":' + json.dumps(table) + ',"row":').removesuffix("}\n"))

    # The manifest matches the file: counts and digests per table, in file order.
    assert {t["table"]: t["rows"] for t in manifest["tables"] if t["rows"]} == {t: len(r) for t, r in texts.items()}
    for entry in manifest["tables"]:
        assert (
            entry["sha256"] == hashlib.sha256("".join(f"{row}\n" for row in texts[entry["table"]]).encode()).hexdigest()
        )
    assert manifest["fileSha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    # ... and the database: every spend log of acme's organization or teams, none of globex's.
    with psycopg.connect(litellm_db) as conn:
        logs = conn.execute(
            'SELECT row_to_json(t)::text FROM "LiteLLM_SpendLogs" t WHERE organization_id = %s OR team_id = ANY(%s)',
            [acme.organization, acme.teams],
        ).fetchall()
    assert sorted(text for (text,) in logs) == sorted(texts["public.LiteLLM_SpendLogs"])
    assert len(logs) == 31
    assert len(texts["public.LiteLLM_VerificationToken"]) == len(acme.tokens)
    assert len(texts["public.LiteLLM_TeamTable"]) == len(acme.teams)
    assert not any(globex.organization in row for rows in texts.values() for row in rows)

    # Round trip: loaded in file order into an empty LiteLLM schema (its foreign keys checked on each insert),
    # every table holds exactly the exported rows. Budgets and users are no tenant's (the preset never deletes or
    # exports them): the destination has its own, copied here first.
    copy = f"copy_{unique}"
    with psycopg.connect(postgres.uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{litellm_template}"')
    with psycopg.connect(litellm_db) as source, psycopg.connect(postgres.database_uri(copy)) as conn:
        for shared in ("LiteLLM_BudgetTable", "LiteLLM_UserTable"):
            for (row,) in source.execute(f'SELECT row_to_json(t)::text FROM "{shared}" t').fetchall():
                conn.execute(f'INSERT INTO "{shared}" SELECT * FROM json_populate_record(NULL::"{shared}", %s)', [row])
        for line in lines:
            exported = json.loads(line)
            schema, table = exported["table"].split(".", 1)
            conn.execute(
                f'INSERT INTO "{schema}"."{table}" SELECT * FROM json_populate_record(NULL::"{schema}"."{table}", %s)',
                [json.dumps(exported["row"])],
            )
        for name, rows in texts.items():
            schema, table = name.split(".", 1)
            back = conn.execute(f'SELECT row_to_json(t)::text FROM "{schema}"."{table}" t').fetchall()
            assert sorted(text for (text,) in back) == sorted(rows), name

    # Suspended: not accessible, not even for export.
    suspend(kubectl, tenant)
    phase_of(kubectl, tenant, "Suspended")
    refused = tenure(kubeconfig, "export", tenant, "--store", store, "-o", str(tmp_path / "suspended.jsonl.gz"))
    assert refused.returncode == 1
    assert f"tenant {tenant} is Suspended: only an Active account's data may be exported" in refused.stderr
    assert not (tmp_path / "suspended.jsonl.gz").exists()


def _export(kubeconfig: Path, tenant: str, store: str, output: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return tenure(kubeconfig, "export", tenant, "--store", store, "-o", str(output), *flags)


def _exported(output: Path) -> dict[str, list[dict[str, Any]]]:
    tables: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    with gzip.open(output, "rt", encoding="utf-8") as file:
        for line in file:
            parsed = json.loads(line)
            tables[parsed["table"]].append(parsed["row"])
    return tables


@pytest.mark.parametrize("through", ["the same DataStore", "a second DataStore on the same database"])
def test_rows_another_tenant_claims_are_left_out_and_named(
    kubectl: Kubectl,
    kubeconfig: Path,
    objects: Objects,
    secret: str,
    litellm_db: str,
    unique: str,
    tmp_path: Path,
    through: str,
) -> None:
    """A claims org-a; B claims team-x inside it (through A's store, or another store reaching the same rows)."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme", teams=2)
        for team in acme.teams:
            token = next(t for t, owner in acme.tokens.items() if owner == team)
            for day in range(3):
                spend_log(conn, acme, datetime.now(UTC) - timedelta(days=day), token=token)
    shared_team = acme.teams[1]
    store = purging_store(kubectl, objects, secret, unique)
    tenant, other = f"a-{unique}", f"b-{unique}"
    claiming(objects, tenant, unique, store, acme.organization)
    if through == "the same DataStore":
        claiming(objects, other, unique, store, shared_team)
    else:  # its own Secret, the same database: only the server can tell it reaches the same rows
        alias = f"alias-{unique}"
        uri = litellm_db.replace("127.0.0.1", "localhost") if "127.0.0.1" in litellm_db else litellm_db
        kubectl.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": alias, "namespace": "tenure-system"},
                "data": {"uri": base64.b64encode(uri.encode()).decode()},
            }
        )
        second = f"ds2-{unique}"
        datastore(objects, second, alias)
        objects.create(
            "Tenant", other, {"retentionPolicy": f"p-{unique}", "dataKeys": {second: [shared_team], store: []}}
        )
    phase_of(kubectl, tenant, "Active")
    phase_of(kubectl, other, "Active")

    output = tmp_path / "a.jsonl.gz"
    result = _export(kubeconfig, tenant, store, output)
    assert result.returncode == 0, result.stderr
    tables = _exported(output)
    manifest = json.loads(manifest_path(output).read_text())
    # A's own team, its keys and logs are there; nothing of B's team is.
    assert [row["team_id"] for row in tables["public.LiteLLM_TeamTable"]] == [acme.teams[0]]
    assert {row["team_id"] for row in tables["public.LiteLLM_SpendLogs"]} == {acme.teams[0]}
    assert len(tables["public.LiteLLM_SpendLogs"]) == 3
    assert not any(shared_team in json.dumps(row) for rows in tables.values() for row in rows)
    assert [row["organization_id"] for row in tables["public.LiteLLM_OrganizationTable"]] == [acme.organization]
    # The manifest names what was left out, per table, and whose it is.
    left = {entry["table"]: (entry["rows"], entry["tenants"]) for entry in manifest["leftOut"]}
    assert left["public.LiteLLM_TeamTable"] == (1, [other])
    assert left["public.LiteLLM_SpendLogs"] == (3, [other])
    assert left["public.LiteLLM_VerificationToken"] == (2, [other])
    assert f"also claimed by {other}" in result.stderr
    if through != "the same DataStore":
        assert sorted(manifest["sameDatabase"]) == sorted([store, f"ds2-{unique}"])
        kubectl.run("delete", "secret", f"alias-{unique}", "-n", "tenure-system", "--ignore-not-found")


def test_export_is_refused_for_a_forged_status_and_a_spec_the_status_has_not_caught_up_with(
    kubectl: Kubectl,
    kubeconfig: Path,
    objects: Objects,
    secret: str,
    litellm_db: str,
    unique: str,
    tmp_path: Path,
    operator: Operator,
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme")
        spend_log(conn, acme, datetime.now(UTC))
    store = purging_store(kubectl, objects, secret, unique)
    tenant = f"f-{unique}"
    claiming(objects, tenant, unique, store, acme.organization)
    phase_of(kubectl, tenant, "Active")
    output = tmp_path / "f.jsonl.gz"
    operator.stop()  # nothing corrects the status or catches up with the spec meanwhile
    try:
        # The spec says Suspended; the operator has not written it yet, so the status still says Active.
        suspend(kubectl, tenant)
        refused = _export(kubeconfig, tenant, store, output)
        assert refused.returncode == 1
        assert f"tenant {tenant} has spec.state Suspended (its status has not caught up yet)" in refused.stderr
        assert not output.exists() and not manifest_path(output).exists()
        # Active again in spec, and a status the break-glass group wrote, saying Active: not Tenure's seal.
        kubectl.patch("tenant", tenant, {"spec": {"state": "Active", "suspensionReason": None}})
        forged = {"status": {"phase": "Active", "seal": None, "conditions": None}}
        kubectl.run(
            "patch", "tenant", tenant, "--subresource=status", "--type=merge", "-p", json.dumps(forged), *BREAK_GLASS
        )
        forged_seal = {"status": {"phase": "Active", "seal": "v1:" + "0" * 64}}
        for patch in (None, forged_seal):
            if patch:
                kubectl.run(
                    "patch",
                    "tenant",
                    tenant,
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    json.dumps(patch),
                    *BREAK_GLASS,
                )
            refused = _export(kubeconfig, tenant, store, output)
            assert refused.returncode == 1, refused.stderr
            assert f"tenant {tenant}'s status says Active, but Tenure did not seal it" in refused.stderr
            assert not output.exists() and not manifest_path(output).exists()
    finally:
        operator.start()
    # Once Tenure has sealed the status again, the export runs.
    eventually(lambda: _export(kubeconfig, tenant, store, output).returncode == 0 or None, timeout=30, what="export")
    assert output.exists() and manifest_path(output).exists()


def test_an_existing_file_is_kept_without_force_and_replaced_with_it(
    kubectl: Kubectl, kubeconfig: Path, objects: Objects, secret: str, litellm_db: str, unique: str, tmp_path: Path
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme")
        spend_log(conn, acme, datetime.now(UTC))
    store = purging_store(kubectl, objects, secret, unique)
    tenant = f"e-{unique}"
    claiming(objects, tenant, unique, store, acme.organization)
    phase_of(kubectl, tenant, "Active")
    output = tmp_path / "e.jsonl.gz"
    output.write_bytes(b"yesterday's export")
    refused = _export(kubeconfig, tenant, store, output)
    assert refused.returncode == 1
    assert f"{output} exists: give --force to replace it" in refused.stderr
    assert output.read_bytes() == b"yesterday's export" and not manifest_path(output).exists()
    assert _export(kubeconfig, tenant, store, output, "--force").returncode == 0
    manifest = json.loads(manifest_path(output).read_text())
    assert manifest["fileSha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    assert len(_exported(output)["public.LiteLLM_SpendLogs"]) == 1
    # A manifest alone is an existing export too.
    output.unlink()
    assert _export(kubeconfig, tenant, store, output).returncode == 1 and not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.jsonl.gz.manifest.json"]


def _waiting_on_lock(uri: str) -> bool:
    with psycopg.connect(uri) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tenure' AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


@pytest.mark.parametrize("interruption", ["SIGINT", "suspended meanwhile"])
def test_an_interrupted_or_overtaken_export_leaves_no_file(
    kubectl: Kubectl,
    kubeconfig: Path,
    objects: Objects,
    secret: str,
    litellm_db: str,
    unique: str,
    tmp_path: Path,
    interruption: str,
) -> None:
    """Spend logs are locked by another session: the export has written the tables before them and waits."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme")
        for day in range(20):
            spend_log(conn, acme, datetime.now(UTC) - timedelta(days=day))
    store = purging_store(kubectl, objects, secret, unique, session={"lockTimeout": "60s"})
    tenant = f"i-{unique}"
    claiming(objects, tenant, unique, store, acme.organization)
    phase_of(kubectl, tenant, "Active")
    output = tmp_path / "i.jsonl.gz"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    with psycopg.connect(litellm_db) as locker:
        locker.execute('LOCK TABLE "LiteLLM_SpendLogs" IN ACCESS EXCLUSIVE MODE')
        process = subprocess.Popen(
            [sys.executable, "-m", "tenure", "export", tenant, "--store", store, "-o", str(output)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        eventually(lambda: _waiting_on_lock(litellm_db) or None, timeout=30, what="export waiting on the lock")
        partial = [p.name for p in tmp_path.iterdir()]
        assert partial and all(name.endswith(".partial") for name in partial), partial  # written so far, hidden
        if interruption == "SIGINT":
            process.send_signal(signal.SIGINT)
        else:
            suspend(kubectl, tenant)
            phase_of(kubectl, tenant, "Suspended")
        locker.rollback()
    _, stderr = process.communicate(timeout=60)
    if interruption == "SIGINT":
        assert process.returncode == 130, stderr
        assert f"export interrupted: nothing was written to {output}" in stderr
    else:
        assert process.returncode == 1, stderr
        assert f"tenant {tenant} is Suspended" in stderr
    assert list(tmp_path.iterdir()) == []
