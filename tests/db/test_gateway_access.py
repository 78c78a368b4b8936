"""Blocking inaccessible tenants at the LiteLLM gateway, on LiteLLM's real schema, and unblocking exactly."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tenure.api import TenantStatus
from tenure.datastores import access
from tenure.lifecycle import trust
from tenure.lifecycle.datastores import GatewayCheck
from tenure.runtime.gateway import Gateway
from tenure.runtime.store import Claim, Stores
from tests.db.test_engine import LITELLM, run
from tests.support.litellm import Account, create_account

KEY = b"s" * 32
NAMES = ("acme", "globex", "forged", "unreadable")


def project(conn: psycopg.Connection[Any], team: str, blocked: bool = False) -> str:
    name = f"project-{uuid.uuid4().hex[:8]}"
    conn.execute(
        'INSERT INTO "LiteLLM_ProjectTable" (project_id, team_id, blocked, created_by, updated_by) '
        "VALUES (%s, %s, %s, 'test', 'test')",
        [name, team, blocked],
    )
    return name


def token(conn: psycopg.Connection[Any], team: str | None, organization: str | None) -> str:
    value = uuid.uuid4().hex + uuid.uuid4().hex
    conn.execute(
        'INSERT INTO "LiteLLM_VerificationToken" (token, team_id, organization_id) VALUES (%s, %s, %s)',
        [value, team, organization],
    )
    return value


def flags(conn: psycopg.Connection[Any]) -> dict[str, tuple[bool | None, bool]]:
    """Every team, key and project: (blocked, carries Tenure's record)."""
    rows: dict[str, tuple[bool | None, bool]] = {}
    for table in access.TABLES:
        for row, blocked, recorded in conn.execute(
            f'SELECT {table.id}, blocked, metadata ? %s FROM "{table.name}"', [access.RECORD]
        ):
            rows[row] = (blocked, recorded)
    return rows


def now(uri: str) -> dict[str, tuple[bool | None, bool]]:
    with psycopg.connect(uri, autocommit=True) as conn:
        return flags(conn)


EARLIER = datetime.now(UTC) - timedelta(minutes=1)
"""When the tenants of these tests last became inaccessible: before any record they write."""


def tenant(
    name: str, keys: tuple[str, ...], state: access.Access, closed_at: datetime | None = EARLIER
) -> access.Tenant:
    return access.Tenant(name, f"{name}-uid", keys, state, closed_at)


def check(uri: str, *tenants: access.Tenant) -> tuple[access.Unblocked, access.Blocked]:
    """One check of the store, as the operator's gateway runs it."""
    return run(uri, lambda c: access.apply(c, KEY, LITELLM, tenants))


def as_litellm_does(
    conn: psycopg.Connection[Any], table: str, id_column: str, row: str, change: str, *params: Any
) -> None:
    """A write through LiteLLM's API: Prisma sets ``updated_at`` (``@updatedAt``) along with the change."""
    conn.execute(
        f"UPDATE \"{table}\" SET {change}, updated_at = clock_timestamp() AT TIME ZONE 'UTC' WHERE {id_column} = %s",
        [*params, row],
    )


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
    suspended = tenant("acme", (acme.organization,), "inaccessible")
    active = tenant("globex", (globex.organization,), "accessible")

    _, blocked = check(litellm_db, suspended, active)

    after = now(litellm_db)
    acme_rows = {*acme.teams, *acme.tokens, acme_project}
    assert {row: after[row] for row in acme_rows} == {
        row: (True, row != admin_blocked) for row in acme_rows
    }  # all blocked; the admin's block is not Tenure's
    assert {row: after[row] for row in after if row not in acme_rows} == {
        row: before[row] for row in before if row not in acme_rows
    }
    assert blocked.rows == {"LiteLLM_TeamTable": 2, "LiteLLM_VerificationToken": 3, "LiteLLM_ProjectTable": 1}
    assert after[globex_project] == (False, False)
    # Idempotent: a second pass changes nothing.
    assert check(litellm_db, suspended, active)[1].rows == {}

    # A key created while inaccessible is blocked on the next pass.
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        late = token(conn, acme.teams[1], None)
    assert check(litellm_db, suspended, active)[1].rows == {"LiteLLM_VerificationToken": 1}

    unblocked, blocked = check(litellm_db, tenant("acme", (acme.organization,), "accessible"), active)

    # Every flag as it was (a key's NULL stays NULL, a team's false false), the admin's block kept, globex untouched.
    assert now(litellm_db) == {**before, late: (None, False)}
    assert (unblocked.rows, unblocked.untrusted, unblocked.stale, blocked.rows) == (
        {"LiteLLM_TeamTable": 2, "LiteLLM_VerificationToken": 4, "LiteLLM_ProjectTable": 1},
        [],
        [],
        {},
    )


def test_a_forged_or_copied_record_unblocks_nothing(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme", teams=1, keys_per_team=4)
        first, second, third, fourth = acme.tokens
    check(litellm_db, tenant("acme", (acme.organization,), "inaccessible"))
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        # second's record replaced by first's (copied, updated_at kept), the team's by a made-up one.
        conn.execute(
            """UPDATE "LiteLLM_VerificationToken" AS t SET metadata = jsonb_build_object('tenure_blocked',
            (SELECT metadata->'tenure_blocked' FROM "LiteLLM_VerificationToken" WHERE token = %s)) WHERE token = %s""",
            [first, second],
        )
        conn.execute(
            """UPDATE "LiteLLM_TeamTable" SET metadata = jsonb_set(metadata, '{tenure_blocked,seal}', '"0000"')
            WHERE team_id = %s""",
            [acme.teams[0]],
        )
        # Malformed: no prior flag and a seal that is not even ASCII; a bare string.
        conn.execute(
            """UPDATE "LiteLLM_VerificationToken" SET metadata = jsonb_set(metadata #- '{tenure_blocked,prior}',
            '{tenure_blocked,seal}', '"\u00e9"') WHERE token = %s""",
            [third],
        )
        conn.execute(
            """UPDATE "LiteLLM_VerificationToken" SET metadata = '{"tenure_blocked": "null:0000"}' WHERE token = %s""",
            [fourth],
        )
    # A tenant reopened that claims none of the rows unblocks nothing.
    assert check(litellm_db, tenant("other", ("org-other",), "accessible"))[0].rows == {}

    unblocked, _ = check(litellm_db, tenant("acme", (acme.organization,), "accessible"))

    rows = now(litellm_db)
    assert {row: rows[row] for row in (first, second, third, fourth, acme.teams[0])} == {
        first: (None, False),
        **{row: (True, True) for row in (second, third, fourth, acme.teams[0])},
    }
    assert (unblocked.rows, sorted(unblocked.untrusted)) == (
        {"LiteLLM_VerificationToken": 1},
        sorted(
            [
                f"LiteLLM_TeamTable/{acme.teams[0]}",
                *(f"LiteLLM_VerificationToken/{row}" for row in (second, third, fourth)),
            ]
        ),
    )


def test_a_row_shared_with_a_tenant_not_inaccessible_stays_open_until_every_claimant_is(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme", teams=1, keys_per_team=1)
        globex = create_account(conn, "globex", teams=1, keys_per_team=1)
        # A key of acme's team issued under globex's organization; a team of globex's organization that acme claims
        # by its id, with a key and a project.
        shared_key = token(conn, acme.teams[0], globex.organization)
        shared_team = f"team-shared-{uuid.uuid4().hex[:8]}"
        conn.execute(
            'INSERT INTO "LiteLLM_TeamTable" (team_id, organization_id) VALUES (%s, %s)',
            [shared_team, globex.organization],
        )
        shared_team_key = token(conn, shared_team, globex.organization)
        shared_project = project(conn, shared_team)
        before = flags(conn)
    shared = {shared_key, shared_team, shared_team_key, shared_project}
    acme_only = {*acme.teams, *acme.tokens}
    acme_keys = (acme.organization, shared_team)

    # acme suspended, globex Active: only what acme alone claims is blocked.
    _, blocked = check(
        litellm_db, tenant("acme", acme_keys, "inaccessible"), tenant("globex", (globex.organization,), "accessible")
    )
    rows = now(litellm_db)
    assert {row: rows[row] for row in shared | acme_only} == {
        **{row: before[row] for row in shared},
        **{row: (True, True) for row in acme_only},
    }
    assert blocked.shared == {("acme", "globex"): 4}

    # Both inaccessible: the shared rows too.
    check(
        litellm_db, tenant("acme", acme_keys, "inaccessible"), tenant("globex", (globex.organization,), "inaccessible")
    )
    rows = now(litellm_db)
    assert {row: rows[row] for row in shared} == {row: (True, True) for row in shared}

    # globex reopens, acme stays suspended: the shared rows open again (their record names acme), acme's stay closed.
    check(litellm_db, tenant("acme", acme_keys, "inaccessible"), tenant("globex", (globex.organization,), "accessible"))
    rows = now(litellm_db)
    assert {row: rows[row] for row in shared | acme_only | set(globex.teams) | set(globex.tokens)} == {
        **{row: before[row] for row in shared | set(globex.teams) | set(globex.tokens)},
        **{row: (True, True) for row in acme_only},
    }

    # A tenant whose Tenant cannot be read keeps what it shares open as well.
    _, blocked = check(
        litellm_db, tenant("acme", acme_keys, "inaccessible"), tenant("globex", (globex.organization,), "unknown")
    )
    assert {row: now(litellm_db)[row] for row in shared} == {row: before[row] for row in shared}
    assert blocked.shared == {("acme", "globex"): 4}


def test_a_claim_appearing_later_leaves_blocked_for_a_person_what_tenure_blocked_for_a_suspended_tenant(
    litellm_db: str,
) -> None:
    """Issue 24: an Active tenant's admin who adds a suspended tenant's team to its own dataKeys must not open it
    (before, such a claim appearing later unblocked the team and its keys while their tenant was suspended)."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme", teams=2, keys_per_team=1)
        before = flags(conn)
    check(litellm_db, tenant("acme", (acme.organization,), "inaccessible"))
    # globex, Active, now claims acme's second team (its dataKeys edited).
    unblocked, _ = check(
        litellm_db,
        tenant("acme", (acme.organization,), "inaccessible"),
        tenant("globex", (acme.teams[1],), "accessible"),
    )
    rows = now(litellm_db)
    second = {acme.teams[1], *(t for t, team in acme.tokens.items() if team == acme.teams[1])}
    first = {acme.teams[0], *(t for t, team in acme.tokens.items() if team == acme.teams[0])}
    assert {row: rows[row] for row in first | second} == {row: (True, True) for row in first | second}
    assert unblocked.rows == {}
    assert sorted(row.split("/")[1] for row, _, _ in unblocked.moved) == sorted(second)
    assert {(owner, claimants) for _, owner, claimants in unblocked.moved} == {("acme", ("globex",))}
    # Once acme reopens, everything Tenure blocked opens exactly.
    check(
        litellm_db,
        tenant("acme", (acme.organization,), "accessible"),
        tenant("globex", (acme.teams[1],), "accessible"),
    )
    assert {row: now(litellm_db)[row] for row in first | second} == {row: before[row] for row in first | second}


def test_keys_changed_while_blocked_still_unblock_everything_on_reopening(litellm_db: str) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme")
        acme_project = project(conn, acme.teams[1])
        before = flags(conn)
    check(litellm_db, tenant("acme", (acme.organization,), "inaccessible"))
    assert all(now(litellm_db)[row] == (True, True) for row in {*acme.teams, *acme.tokens, acme_project})

    # Reopened with other keys (its dataKeys edited meanwhile): one of its teams only, then none in this store.
    for keys in ((acme.teams[0],), ("org-acme-renamed",)):
        unblocked, _ = check(litellm_db, tenant("acme", keys, "accessible"))
        assert now(litellm_db) == before
        assert unblocked.stale == [] and unblocked.untrusted == []
        check(litellm_db, tenant("acme", (acme.organization,), "inaccessible"))  # suspended again for the next round


def test_litellms_own_writes_while_blocked_do_not_keep_a_row_blocked(litellm_db: str) -> None:
    """Requests LiteLLM's key cache still let through have their spend written after the block, budgets are reset on
    schedule: each such write moves updated_at, and none may keep a reopened tenant's key blocked."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme", teams=2, keys_per_team=2)
        before = flags(conn)
    closed_at = datetime.now(UTC)
    check(litellm_db, tenant("acme", (acme.organization,), "inaccessible", closed_at))
    spent, reset = list(acme.tokens)[:2]
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        as_litellm_does(conn, "LiteLLM_VerificationToken", "token", spent, "spend = spend + 0.25")
        as_litellm_does(conn, "LiteLLM_VerificationToken", "token", reset, "spend = 0")
        as_litellm_does(conn, "LiteLLM_TeamTable", "team_id", acme.teams[1], "spend = spend + 1")

    unblocked, _ = check(litellm_db, tenant("acme", (acme.organization,), "accessible", closed_at))

    assert now(litellm_db) == before
    assert (unblocked.rows, unblocked.stale, unblocked.untrusted) == (
        {"LiteLLM_TeamTable": 2, "LiteLLM_VerificationToken": 4},
        [],
        [],
    )


def test_a_record_replayed_from_an_earlier_suspension_unblocks_nothing(litellm_db: str) -> None:
    """A user of the tenant saved a key's record during a suspension an hour ago and puts it back (/key/update) on
    the key after an admin blocked it: at the next reopening Tenure must not unblock what the admin blocked."""
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme", teams=1, keys_per_team=2)
    key, other = list(acme.tokens)
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat(timespec="microseconds")
    earlier = access.record(KEY, "LiteLLM_VerificationToken", key, "acme-uid", None, hour_ago)  # Tenure's, then
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        as_litellm_does(conn, "LiteLLM_VerificationToken", "token", key, "blocked = true")  # an admin
        as_litellm_does(
            conn,
            "LiteLLM_VerificationToken",
            "token",
            key,
            "metadata = metadata || jsonb_build_object(%s::text, %s::jsonb)",
            access.RECORD,
            Jsonb(earlier),
        )
    assert now(litellm_db)[key] == (True, True)
    closed_at = datetime.now(UTC)  # suspended now
    check(litellm_db, tenant("acme", (acme.organization,), "inaccessible", closed_at))
    assert now(litellm_db)[other] == (True, True)

    unblocked, _ = check(litellm_db, tenant("acme", (acme.organization,), "accessible", closed_at))

    rows = now(litellm_db)
    assert (rows[key], rows[other]) == ((True, True), (None, False))  # the admin's block holds; the rest reopens
    assert unblocked.stale == [f"LiteLLM_VerificationToken/{key}"]


class Listed:
    """The API server's list of Tenants, as the operator's Claims.listed() returns it."""

    def __init__(self, *claims: Claim) -> None:
        self.claims = list(claims)
        self.calls = 0

    async def listed(self) -> list[Claim]:
        self.calls += 1
        return self.claims


def put(stores: Stores, name: str, state: str, keys: list[str], status: TenantStatus) -> None:
    """A Tenant as the watch delivers it, its status sealed by Tenure."""
    stores.tenants.put(
        {
            "metadata": {"name": name, "uid": f"{name}-uid", "resourceVersion": str(uuid.uuid4())},
            "spec": {"state": state, "dataKeys": {"litellm": keys}},
            "status": trust.sealed(KEY, name, f"{name}-uid", status).to_api(),
        }
    )


def test_a_row_recorded_for_a_reopened_tenant_that_only_suspended_tenants_claim_now_stays_blocked(
    litellm_db: str,
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme", teams=2, keys_per_team=1)
    first = {acme.teams[0], *(t for t, team in acme.tokens.items() if team == acme.teams[0])}
    second = {acme.teams[1], *(t for t, team in acme.tokens.items() if team == acme.teams[1])}
    # globex (suspended too) claims acme's first team: those rows are blocked, their record names acme.
    check(
        litellm_db,
        tenant("acme", (acme.organization,), "inaccessible"),
        tenant("globex", (acme.teams[0],), "inaccessible"),
    )
    assert all(now(litellm_db)[row] == (True, True) for row in first | second)

    # acme reopens with keys that no longer cover the first team; globex is still suspended. Those rows are not even
    # unblocked for a moment (a dry run would leave them open: it does not block again).
    unblocked, _ = check(
        litellm_db,
        tenant("acme", ("org-acme-renamed",), "accessible"),
        tenant("globex", (acme.teams[0],), "inaccessible"),
    )

    assert unblocked.rows == {"LiteLLM_TeamTable": 1, "LiteLLM_VerificationToken": 1}
    rows = now(litellm_db)
    assert {row: rows[row] for row in first} == {row: (True, True) for row in first}  # globex's: still closed
    assert {row: rows[row][1] for row in second} == {row: False for row in second}  # acme's alone: open again


def test_the_first_checks_after_a_start_wait_for_unseen_tenants_and_a_dry_run_still_reopens(
    litellm_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        acme = create_account(conn, "acme", teams=1, keys_per_team=2)
        globex = create_account(conn, "globex", teams=1, keys_per_team=1)
        shared = token(conn, acme.teams[0], globex.organization)  # acme's team, under globex's organization
        admin_blocked = next(iter(acme.tokens))
        hour_ago = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat(timespec="microseconds")
        saved = access.record(KEY, "LiteLLM_VerificationToken", admin_blocked, "acme-uid", None, hour_ago)
        as_litellm_does(conn, "LiteLLM_VerificationToken", "token", admin_blocked, "blocked = true")
        as_litellm_does(
            conn,
            "LiteLLM_VerificationToken",
            "token",
            admin_blocked,
            "metadata = metadata || jsonb_build_object(%s::text, %s::jsonb)",
            access.RECORD,
            Jsonb(saved),
        )  # a record saved from an earlier suspension, put back on a key an admin blocked since
        before = flags(conn)
    stores = Stores(KEY)
    closing = TenantStatus(phase="Suspended", suspended_at=EARLIER, access_closed_at=EARLIER)
    put(stores, "acme", "Suspended", [acme.organization], closing)
    # globex is Active: the API server lists it, the watch has not delivered it yet (the operator just started).
    listed = Listed(
        Claim("acme", "Suspended", {"litellm": (acme.organization,)}),
        Claim("globex", "Active", {"litellm": (globex.organization,)}),
    )
    gateway = Gateway(stores, listed)  # type: ignore[arg-type]

    first = run(litellm_db, lambda conn: gateway.check(conn, "litellm", LITELLM))

    rows = now(litellm_db)
    assert rows[shared] == before[shared]  # shared with a tenant whose state is not known yet: left open
    assert first == GatewayCheck(blocking=True, inaccessible=1, shared=1, left=0)  # the DataStore's condition
    assert all(rows[row] == (True, True) for row in (*acme.teams, *acme.tokens))
    put(stores, "globex", "Active", [globex.organization], TenantStatus(phase="Active"))
    for _ in range(2):
        run(litellm_db, lambda conn: gateway.check(conn, "litellm", LITELLM))
    assert now(litellm_db)[shared] == before[shared]
    assert listed.calls == 2  # listed until the watch had delivered every tenant once, then never again

    # acme reopens while the store is in dry run: nothing is blocked, but what Tenure blocked is unblocked, all but
    # the admin's key, whose record predates acme's last closing (sealed in its status).
    put(stores, "acme", "Active", [acme.organization], TenantStatus(phase="Active", access_closed_at=EARLIER))
    with caplog.at_level(logging.WARNING, logger="tenure.runtime.gateway"):
        dry = run(litellm_db, lambda conn: gateway.check(conn, "litellm", LITELLM, blocking=False))

    assert now(litellm_db) == before
    assert dry == GatewayCheck(blocking=False, inaccessible=0, shared=0, left=1)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        # from the first check: the tenant the watch had not delivered yet counts as one not inaccessible
        "DataStore litellm: 1 rows of inaccessible tenant acme left unblocked at the gateway: tenant globex, which is "
        "not inaccessible, claims them too",
        "DataStore litellm: left blocked for a person, their record is older than its tenant's last closing (put "
        f"back from an earlier suspension?): LiteLLM_VerificationToken/{admin_blocked}",
    ]


def test_the_operators_check_reads_each_tenants_state_and_reports_what_it_leaves_once(
    litellm_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(litellm_db, autocommit=True) as conn:
        accounts = {name: create_account(conn, name, teams=1, keys_per_team=1) for name in NAMES}
        # A key of acme's team under the organization of a tenant whose Tenant cannot be read.
        shared = token(conn, accounts["acme"].teams[0], accounts["unreadable"].organization)
        before = flags(conn)
    stores = Stores(KEY)
    suspended = trust.sealed(KEY, "acme", "acme-uid", TenantStatus(phase="Suspended"))
    statuses = {
        "acme": ("Suspended", suspended.to_api()),  # trusted, inaccessible
        "globex": ("Active", {"phase": "Active"}),  # accessible
        # A Purged status Tenure did not seal, under a Suspended spec: what spec asks counts.
        "forged": ("Suspended", {"phase": "Purged", "purgedAt": "2026-11-01T00:00:00Z"}),
        "unreadable": ("Bogus", {"phase": "Active"}),  # unknown: keeps what it shares open, opens nothing
    }
    for name, (state, status) in statuses.items():
        stores.tenants.put(
            {
                "metadata": {"name": name, "uid": f"{name}-uid", "resourceVersion": "1"},
                "spec": {"state": state, "dataKeys": {"litellm": [accounts[name].organization]}},
                "status": status,
            }
        )
    gateway = Gateway(stores, Listed())  # type: ignore[arg-type]

    async def twice(conn: psycopg.AsyncConnection[Any]) -> None:
        await gateway.check(conn, "litellm", LITELLM)
        await gateway.check(conn, "litellm", LITELLM)

    with caplog.at_level(logging.INFO, logger="tenure.runtime.gateway"):
        run(litellm_db, twice)

    rows = now(litellm_db)
    closed = {row for name in ("acme", "forged") for row in (*accounts[name].teams, *accounts[name].tokens)}
    assert rows == {**before, **{row: (True, True) for row in closed}}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "DataStore litellm: 1 rows of inaccessible tenant acme left unblocked at the gateway: tenant unreadable, "
        "which is not inaccessible, claims them too"
    ]
    assert shared in before
