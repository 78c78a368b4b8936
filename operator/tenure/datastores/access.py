"""LiteLLM gateway access of inaccessible tenants: their teams, virtual keys and projects ``blocked``.

LiteLLM's proxy checks ``blocked`` on the virtual key (``LiteLLM_VerificationToken``)
of every request, and on the key's team (``LiteLLM_TeamTable``) and project
(``LiteLLM_ProjectTable``); a blocked one is refused (401/403).

Whose rows: a row's claimants are the tenants whose keys in the store cover
it, resolved as a purge resolves them (``operations.key_owners``: a team is
claimed by whoever claims it or its organization, a key by whoever claims its
team or organization, a project by whoever claims its team). A row is blocked
only when every one of its claimants is inaccessible. A row an inaccessible
tenant shares with a tenant that is not (Active, or whose Tenant cannot be
read) stays unblocked and is reported with that tenant's name, as a purge
keeps a row shared with another tenant.

What Tenure blocked is recorded on the row itself, in LiteLLM's own ``metadata``
JSON, as ``tenure_blocked``: the flag the row had (``null`` or ``false``), the
uid of the tenant it was blocked for, when (the database's clock), and an HMAC
over those, the table and the row's id, keyed by Tenure's seal key. A row
already blocked (by an admin) gets no record and is never unblocked by Tenure.

Every check looks at every blocked row carrying a record (the three tables are
small): one whose recorded tenant is accessible again, or that an accessible
tenant claims (a claim may appear later), is unblocked unless every tenant
claiming it now is still inaccessible. Tenant uid in the record, not the
tenant's current keys, finds it, so keys changed meanwhile leave nothing blocked.
It gets back exactly its recorded flag, and the record goes, only when the seal
verifies and the record is not older than the tenant's last closing
(``status.accessClosedAt``, sealed, kept after reopening; less :data:`CLOCK_SKEW`
between the operator's and the database's clocks). Anyone who may edit a key's
metadata through LiteLLM (``/key/update``) could otherwise put back a record
saved from an earlier suspension on a key an admin has blocked since, and have
Tenure unblock it at the next reopening. Such a row, and one whose seal does not
verify (made up, copied from another row or tenant), stays blocked with its
record for a person to decide. LiteLLM's own writes while a row is blocked
(spend of requests its cache still let through, budget resets) change nothing.

A row Tenure blocked for a tenant that is still inaccessible stays blocked
even when another tenant, accessible, now claims it through one of its columns
(the key was moved into another team or organization while its tenant was
suspended): a key's claim is decided by every tenant claiming it through any
column, and the one it was blocked for still must be kept out. It is reported
(``Unblocked.moved``) for a person to decide.

Known limit: an admin who blocks a row Tenure has already blocked changes no
column Tenure can tell from LiteLLM's own writes, so reopening unblocks it;
block it again after reopening.

Blocking and unblocking each run in one transaction, rows locked ``FOR UPDATE`` in id order;
both are idempotent.

End users (``LiteLLM_EndUserTable``) are not touched: no column attributes an
end user to a team or organization (any tenant's end users may share an id),
and their ``blocked`` flag is enforced only by an enterprise callback. Every
request of an end user goes through one of the tenant's keys, which are blocked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg import sql

from tenure.api import DataStoreSpec

from . import litellm, operations

RECORD = "tenure_blocked"
CLOCK_SKEW = timedelta(minutes=5)
"""How far the database's clock (a record's time) may be behind the operator's (``accessClosedAt``)."""


@dataclass(frozen=True)
class Table:
    name: str
    id: str
    key_columns: tuple[tuple[str, str], ...]
    """(column, key kind), as the purge maps the table."""


def _table(name: str, id_column: str) -> Table:
    return Table(name, id_column, next(t.key_columns for t in litellm.TARGETS if t.table == name))


TABLES = (
    _table("LiteLLM_TeamTable", "team_id"),
    _table("LiteLLM_VerificationToken", "token"),
    _table("LiteLLM_ProjectTable", "project_id"),
)

Access = Literal["inaccessible", "accessible", "unknown"]
"""``unknown``: the Tenant cannot be read; its rows are neither blocked nor unblocked for it."""


@dataclass(frozen=True)
class Tenant:
    """A tenant not yet purged: its keys in the store and whether it must be kept out."""

    name: str
    uid: str
    keys: tuple[str, ...]
    access: Access
    closed_at: datetime | None = None
    """When it last became inaccessible (its sealed ``status.accessClosedAt``); None: not known, no bound."""


def _stamp(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="microseconds")


def record(
    key: bytes,
    table: str,
    row: str,
    tenant_uid: str,
    prior: bool | None,
    at: str,
    claimants: Sequence[str] | None = None,
) -> dict[str, Any]:
    """What Tenure writes on a row it blocks: the flag it had (``null`` or ``false``), for whom, when (UTC, the
    database's clock), every tenant (uid) claiming it then, and a seal over these and the row's identity.

    ``claimants`` tells a key moved to another tenant since from one shared all along; a record written before
    it existed has none, and counts as blocked for its tenant alone.
    """
    parts = [table, row, tenant_uid, json.dumps(prior), at]
    if claimants is not None:
        parts.append("\x01".join(claimants))
    message = "\x00".join(parts).encode()
    seal = hmac.new(hashlib.sha256(b"tenure-gateway:" + key).digest(), message, hashlib.sha256).hexdigest()[:40]
    written: dict[str, Any] = {"prior": prior, "tenant": tenant_uid, "at": at, "seal": seal}
    if claimants is not None:
        written["claimants"] = list(claimants)
    return written


def _verified(key: bytes, table: str, row: str, found: Any) -> dict[str, Any] | None:
    """The record, when it is one Tenure wrote on this row."""
    if not isinstance(found, dict) or "prior" not in found or found["prior"] not in (None, False):
        return None
    tenant, at, seal = found.get("tenant"), found.get("at"), found.get("seal")
    if not isinstance(tenant, str) or not isinstance(at, str) or not isinstance(seal, str):
        return None
    claimants = found.get("claimants")
    if claimants is not None and (not isinstance(claimants, list) or not all(isinstance(c, str) for c in claimants)):
        return None
    expected = record(key, table, row, tenant, found["prior"], at, claimants)["seal"]
    return found if hmac.compare_digest(seal.encode(), expected.encode()) else None


def _bound(recorded: datetime | None, accessible: set[str], found: Claims) -> datetime | None:
    """The closing a record must not predate: its tenant's last closing, else (that tenant gone, or its closing not
    known) the latest closing of an accessible tenant claiming the row; None when none is known."""
    if recorded is not None:
        return recorded
    known = [at for name in accessible if (at := found.tenants[name].closed_at) is not None]
    return max(known, default=None)


def _before(at: str, closed_at: datetime | None) -> bool:
    """Whether a record written at ``at`` predates the closing it would be undone for; with no closing known it
    cannot be told from a record saved from an earlier suspension, and counts as one."""
    if closed_at is None:
        return True
    try:
        written = datetime.fromisoformat(at).replace(tzinfo=UTC)
    except ValueError:
        return True
    return written < closed_at - CLOCK_SKEW


def _moved(
    verified: dict[str, Any], claiming: set[str], closed_uids: dict[str, str], found: Claims
) -> tuple[str, tuple[str, ...]] | None:
    """(the inaccessible tenant, the accessible ones claiming it now) when a blocked row must stay blocked: blocked
    for tenants one of which is still inaccessible, and no tenant claiming it now that is accessible claimed it
    when it was blocked (it moved to them: a key put into another tenant's team). None: it may be unblocked."""
    then = set(verified.get("claimants") or (verified["tenant"],))
    still = sorted(closed_uids[uid] for uid in then if uid in closed_uids)
    if not still or any(found.tenants[name].uid in then for name in claiming):
        return None
    return still[0], tuple(sorted(claiming))


@dataclass(frozen=True)
class Claims:
    """Every tenant not yet purged, and who claims each key (as a purge resolves them)."""

    tenants: dict[str, Tenant]
    owners: operations.Owners

    def names(self, access: Access) -> set[str]:
        return {name for name, tenant in self.tenants.items() if tenant.access == access}

    def of(self, table: Table, values: Sequence[Any]) -> set[str]:
        """The tenants claiming a row, from its key columns' values (in ``table.key_columns`` order)."""
        found: set[str] = set()
        for (_, kind), value in zip(table.key_columns, values, strict=True):
            found |= self.owners.get(kind, {}).get(value, set())
        return found

    def rows_of(self, table: Table, tenants: Collection[str]) -> tuple[sql.Composable, dict[str, Any]] | None:
        """A condition selecting rows one of the tenants claims (None: none can be)."""
        conditions, params = [], {}
        for i, (column, kind) in enumerate(table.key_columns):
            values = [value for value, owners in self.owners.get(kind, {}).items() if not owners.isdisjoint(tenants)]
            if values:
                conditions.append(sql.SQL("{} = ANY({})").format(sql.Identifier(column), sql.Placeholder(f"k{i}")))
                params[f"k{i}"] = values
        return (sql.SQL(" OR ").join(conditions), params) if conditions else None


async def claims(conn: psycopg.AsyncConnection[Any], spec: DataStoreSpec, tenants: Sequence[Tenant]) -> Claims:
    owners = await operations.key_owners(conn, spec, {tenant.name: tenant.keys for tenant in tenants})
    return Claims({tenant.name: tenant for tenant in tenants}, owners)


def _columns(table: Table) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(column) for column, _ in table.key_columns)


@dataclass
class Blocked:
    rows: dict[str, int] = field(default_factory=dict)
    """Rows blocked, per table."""
    shared: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(inaccessible tenant, tenant that is not) → rows both claim, left unblocked."""


async def block(conn: psycopg.AsyncConnection[Any], key: bytes, found: Claims) -> Blocked:
    """Block, recording each, every row not blocked yet whose claimants are all inaccessible; idempotent."""
    inaccessible = found.names("inaccessible")
    result = Blocked()
    if not inaccessible:
        return result
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute("SELECT now() AT TIME ZONE 'UTC'")
        now = await cur.fetchone()
        at = _stamp(now[0] if now else None)
        for table in TABLES:
            selected = found.rows_of(table, inaccessible)
            if selected is None:
                continue
            where, params = selected
            await cur.execute(
                sql.SQL(
                    "SELECT {id}, blocked, {columns} FROM {table} WHERE ({where}) AND blocked IS NOT TRUE "
                    "ORDER BY {id} FOR UPDATE"
                ).format(
                    id=sql.Identifier(table.id), columns=_columns(table), table=sql.Identifier(table.name), where=where
                ),
                params,
            )
            rows, records = [], []
            for row, prior, *values in await cur.fetchall():
                claimants = found.of(table, values)
                if claimants <= inaccessible:
                    rows.append(row)
                    uid = found.tenants[min(claimants)].uid
                    then = sorted(found.tenants[name].uid for name in claimants)
                    records.append(json.dumps(record(key, table.name, row, uid, prior, at, then)))
                else:
                    result.shared.update(
                        (closed, other) for closed in claimants & inaccessible for other in claimants - inaccessible
                    )
            if not rows:
                continue
            await cur.execute(
                sql.SQL(
                    "UPDATE {table} AS t SET blocked = true, "
                    "metadata = coalesce(t.metadata, '{{}}'::jsonb) || jsonb_build_object({record}, r.record::jsonb) "
                    "FROM unnest(%(rows)s::text[], %(records)s::text[]) AS r(id, record) WHERE t.{id} = r.id"
                ).format(
                    table=sql.Identifier(table.name),
                    id=sql.Identifier(table.id),
                    record=sql.Literal(RECORD),
                ),
                {"rows": rows, "records": records},
            )
            result.rows[table.name] = cur.rowcount
    return result


@dataclass
class Unblocked:
    rows: dict[str, int] = field(default_factory=dict)
    """Rows unblocked, per table."""
    untrusted: list[str] = field(default_factory=list)
    """``table/id`` of rows left blocked: their record does not verify."""
    stale: list[str] = field(default_factory=list)
    """``table/id`` of rows left blocked: their record is older than its tenant's last closing (put back from an
    earlier suspension)."""
    moved: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    """(``table/id``, the tenant it was blocked for, the accessible tenants claiming it now) of rows left blocked:
    blocked for a tenant that is still inaccessible, now claimed by others too (a key moved to another team)."""


async def unblock(conn: psycopg.AsyncConnection[Any], key: bytes, found: Claims) -> Unblocked:
    """Unblock the rows Tenure blocked for a tenant accessible again, or that an accessible tenant claims, unless
    every tenant claiming them is still inaccessible; each gets back its recorded flag. Rows whose record does not
    verify, or that is older than its tenant's last closing, stay blocked with their record. Idempotent."""
    accessible, inaccessible = found.names("accessible"), found.names("inaccessible")
    uids = {found.tenants[name].uid for name in accessible}
    closed_uids = {found.tenants[name].uid: name for name in inaccessible if found.tenants[name].uid}
    closed_at = {tenant.uid: tenant.closed_at for tenant in found.tenants.values() if tenant.uid}
    result = Unblocked()
    if not accessible:
        return result
    async with conn.transaction(), conn.cursor() as cur:
        for table in TABLES:
            await cur.execute(
                sql.SQL(
                    "SELECT {id}, metadata->{record}, {columns} FROM {table} "
                    "WHERE blocked IS TRUE AND metadata ? {record} ORDER BY {id} FOR UPDATE"
                ).format(
                    id=sql.Identifier(table.id),
                    record=sql.Literal(RECORD),
                    columns=_columns(table),
                    table=sql.Identifier(table.name),
                ),
            )
            rows, priors = [], []
            for row, raw, *values in await cur.fetchall():
                claimants = found.of(table, values)
                recorded_for = raw.get("tenant") if isinstance(raw, dict) else None
                ours = claimants & accessible or (isinstance(recorded_for, str) and recorded_for in uids)
                if not ours or (claimants and claimants <= inaccessible):
                    continue
                verified = _verified(key, table.name, row, raw)
                if verified is None:
                    result.untrusted.append(f"{table.name}/{row}")
                elif moved := _moved(verified, claimants & accessible, closed_uids, found):
                    result.moved.append((f"{table.name}/{row}", *moved))
                elif _before(verified["at"], _bound(closed_at.get(verified["tenant"]), claimants & accessible, found)):
                    result.stale.append(f"{table.name}/{row}")
                else:
                    rows.append(row)
                    priors.append(verified["prior"])
            if not rows:
                continue
            await cur.execute(
                sql.SQL(
                    "UPDATE {table} AS t SET blocked = r.prior, metadata = t.metadata - {record} "
                    "FROM unnest(%(rows)s::text[], %(priors)s::boolean[]) AS r(id, prior) WHERE t.{id} = r.id"
                ).format(table=sql.Identifier(table.name), id=sql.Identifier(table.id), record=sql.Literal(RECORD)),
                {"rows": rows, "priors": priors},
            )
            result.rows[table.name] = cur.rowcount
    return result


async def apply(
    conn: psycopg.AsyncConnection[Any],
    key: bytes,
    spec: DataStoreSpec,
    tenants: Sequence[Tenant],
    blocking: bool = True,
) -> tuple[Unblocked, Blocked]:
    """Unblock what must be open again, then (unless ``blocking`` is off) block what must be closed, from one view
    of who claims what."""
    found = await claims(conn, spec, tenants)
    unblocked = await unblock(conn, key, found)
    return unblocked, await block(conn, key, found) if blocking else Blocked()
