"""`tenure export`: an Active tenant's rows out of a real PostgreSQL and back into an empty LiteLLM schema."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.conftest import Objects
from tests.e2e.test_datastores import claiming, purging_store, secret
from tests.e2e.test_lifecycle import phase_of, suspend
from tests.e2e.test_receipts import tenure
from tests.support.kube import Kubectl
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
