"""Blocking an inaccessible tenant at the LiteLLM gateway, on LiteLLM's real schema, and unblocking exactly."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from tenure.datastores import access
from tests.db.test_engine import run
from tests.support.litellm import Account, create_account

KEY = b"s" * 32


def project(conn: psycopg.Connection[Any], team: str, blocked: bool = False) -> str:
    name = f"project-{uuid.uuid4().hex[:8]}"
    conn.execute(
        'INSERT INTO "LiteLLM_ProjectTable" (project_id, team_id, blocked, created_by, updated_by) '
        "VALUES (%s, %s, %s, 'test', 'test')",
        [name, team, blocked],
    )
    return name


def flags(conn: psycopg.Connection[Any]) -> dict[str, tuple[bool | None, bool]]:
    """Every team, key and project: (blocked, carries Tenure's record)."""
    rows: dict[str, tuple[bool | None, bool]] = {}
    for table in access.TABLES:
        for row, blocked, recorded in conn.execute(
            f'SELECT {table.id}, blocked, metadata ? %s FROM "{table.name}"', [access.RECORD]
        ):
            rows[row] = (blocked, recorded)
    return rows


def test_block_then_unblock_restores_every_flag_and_touches_no_other_tenant(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme: Account = create_account(conn, "acme")
        globex = create_account(conn, "globex")
        admin_blocked = next(iter(acme.tokens))
        conn.execute('UPDATE "LiteLLM_VerificationToken" SET blocked = true WHERE token = %s', [admin_blocked])
        acme_project = project(conn, acme.teams[0])
        globex_project = project(conn, globex.teams[0])
        before = flags(conn)
    assert before[admin_blocked] == (True, False)

    changed = run(litellm_db, lambda c: access.block(c, KEY, "acme-uid", (acme.organization,)))

    with psycopg.connect(litellm_db, autocommit=True) as conn:
        after = flags(conn)
    acme_rows = {*acme.teams, *acme.tokens, acme_project}
    assert {row: after[row] for row in acme_rows} == {
        row: (True, row != admin_blocked) for row in acme_rows
    }  # all blocked; the admin's block is not Tenure's
    assert {row: after[row] for row in after if row not in acme_rows} == {
        row: before[row] for row in before if row not in acme_rows
    }
    assert changed.rows == {
        "LiteLLM_TeamTable": 2,
        "LiteLLM_VerificationToken": 3,
        "LiteLLM_ProjectTable": 1,
    }
    assert after[globex_project] == (False, False)
    # Idempotent: a second pass changes nothing.
    assert run(litellm_db, lambda c: access.block(c, KEY, "acme-uid", (acme.organization,))).total == 0

    # A key created while inaccessible is blocked on the next pass.
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        late = uuid.uuid4().hex
        conn.execute('INSERT INTO "LiteLLM_VerificationToken" (token, team_id) VALUES (%s, %s)', [late, acme.teams[1]])
    assert run(litellm_db, lambda c: access.block(c, KEY, "acme-uid", (acme.organization,))).rows == {
        "LiteLLM_VerificationToken": 1
    }

    unblocked, untrusted = run(litellm_db, lambda c: access.unblock(c, KEY, "acme-uid", (acme.organization,)))

    with psycopg.connect(litellm_db, autocommit=True) as conn:
        restored = flags(conn)
    assert untrusted == 0 and unblocked.total == 7
    # Every flag as it was (a key's NULL stays NULL, a team's false false), the admin's block kept, globex untouched.
    assert restored == {**before, late: (None, False)}


def test_a_forged_or_copied_record_unblocks_nothing(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme", teams=1, keys_per_team=2)
        first, second = acme.tokens
    run(litellm_db, lambda c: access.block(c, KEY, "acme-uid", (acme.organization,)))
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        # second's record replaced by first's (copied), the team's by a made-up one.
        seal = access.record(KEY, "LiteLLM_VerificationToken", first, "acme-uid", None)
        conn.execute(
            """UPDATE "LiteLLM_VerificationToken" SET metadata = jsonb_build_object('tenure_blocked', %s::text)
            WHERE token = %s""",
            [seal, second],
        )
        conn.execute(
            """UPDATE "LiteLLM_TeamTable" SET metadata = '{"tenure_blocked": "0000"}' WHERE team_id = %s""",
            [acme.teams[0]],
        )
    # Another tenant's uid does not verify either.
    assert run(litellm_db, lambda c: access.unblock(c, KEY, "other-uid", (acme.organization,)))[0].total == 0
    unblocked, untrusted = run(litellm_db, lambda c: access.unblock(c, KEY, "acme-uid", (acme.organization,)))
    assert (unblocked.rows, untrusted) == ({"LiteLLM_VerificationToken": 1}, 2)
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        now = flags(conn)
    assert (now[first], now[second], now[acme.teams[0]]) == ((None, False), (True, True), (True, True))
