"""The demo's LiteLLM database: started by `make dev`, stopped when it ends.

Starts a throwaway PostgreSQL, builds LiteLLM's real schema from its own
migrations, gives each sample tenant an organization (org-<tenant>) with two
teams, virtual keys and a year of spend logs, then points a DataStore at it.
Every 10 seconds it prints each organization's rows, so the purges and the
retention sweep can be watched.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.litellm import Account, create_account, spend_log  # noqa: E402
from tests.support.postgres import Postgres, create_litellm_database  # noqa: E402

TENANTS = ("acme", "globex", "initech", "umbrella")
KUBECTL = str(REPO / ".cache" / "bin" / "kubectl")


def seed(uri: str) -> dict[str, Account]:
    accounts = {}
    with psycopg.connect(uri, autocommit=True) as conn:
        for tenant in TENANTS:
            # The sample tenants name their organization org-<tenant> in spec.dataKeys.
            account = create_account(conn, tenant, organization=f"org-{tenant}")
            for day in range(0, 365, 3):
                spend_log(conn, account, datetime.now(UTC) - timedelta(days=day))
            accounts[tenant] = account
    return accounts


def apply(*objects: dict[str, Any]) -> None:
    subprocess.run(
        [KUBECTL, "apply", "-f", "-"], input=yaml.safe_dump_all(objects), text=True, check=True, capture_output=True
    )


def report(uri: str) -> str:
    with psycopg.connect(uri) as conn:
        counts = conn.execute(
            'SELECT t, (SELECT count(*) FROM "LiteLLM_SpendLogs" s WHERE s.organization_id = t), '
            '(SELECT count(*) FROM "LiteLLM_SpendLogs" s WHERE s.organization_id = t AND s.messages IS NULL) '
            "FROM unnest(%s::text[]) t",
            [[f"org-{tenant}" for tenant in TENANTS]],
        ).fetchall()
    return "  ".join(f"{org}: {rows} rows ({cleared} prompts cleared)" for org, rows, cleared in counts)


def main() -> None:
    server = Postgres().start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uri = create_litellm_database(server, "litellm")
        seed(uri)
        apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "tenure-system", "labels": {"retention.tenure.dev/protected": "true"}},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "litellm-demo", "namespace": "tenure-system"},
                "data": {"uri": base64.b64encode(uri.encode()).decode()},
            },
            {
                "apiVersion": "retention.tenure.dev/v1alpha1",
                "kind": "DataStore",
                "metadata": {"name": "litellm"},
                "spec": {
                    "postgres": {
                        "connectionSecretRef": {"namespace": "tenure-system", "name": "litellm-demo"},
                        "preset": "litellm",
                    },
                    "sweepInterval": "1m",
                },
            },
        )
        print(f"database: LiteLLM schema at 127.0.0.1:{server.port}; DataStore litellm created", flush=True)
        while True:
            print(f"database: {report(uri)}", flush=True)
            time.sleep(10)
    finally:
        # A DataStore whose database is gone would hold every later purge in this cluster (safely) forever.
        subprocess.run([KUBECTL, "delete", "datastore", "litellm", "--ignore-not-found", "--wait=false"], check=False)
        subprocess.run([KUBECTL, "delete", "secret", "litellm-demo", "-n", "tenure-system", "--ignore-not-found"],
                       check=False)  # fmt: skip
        server.stop()


if __name__ == "__main__":
    main()
