"""Status is always writable on a real control plane: a message longer than the CRD allows is capped, not refused."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import Objects
from tests.e2e.test_datastores import claiming, purging_store, secret, store_state
from tests.support.kube import Kubectl
from tests.support.litellm import create_account

pytestmark = pytest.mark.usefixtures("operator")
__all__ = ["secret"]  # the fixture, used by name


def test_a_store_purge_message_longer_than_the_crd_allows_is_still_written(
    kubectl: Kubectl, objects: Objects, secret: str, litellm_db: str, unique: str
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme")
    store = purging_store(kubectl, objects, secret, unique)
    # 30 tenants with long names claim the closing tenant's rows: the message naming them (20 of them, each with the
    # shared key) is longer than the 1,024 characters status.purge.stores[].message allows.
    for i in range(30):
        claiming(objects, f"other-{i:02}-{unique}-" + "x" * 30, unique, store, acme.organization)
    closing = f"closing-{unique}"
    claiming(objects, closing, unique, store, acme.organization)
    kubectl.patch("tenant", closing, {"spec": {"state": "Closed"}})

    waiting = store_state(kubectl, closing, "Waiting")
    assert waiting["message"].startswith("nothing deleted")
    assert len(waiting["message"]) == 1024 and waiting["message"].endswith(" more characters)")
