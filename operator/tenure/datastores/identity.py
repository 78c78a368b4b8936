"""Which rows a DataStore reaches: the identity of the database behind a connection, read from the server itself.

Two DataStores reach the same rows when their connections land in the same
database of the same cluster, whatever their URIs say (another Secret, a host
alias, a pooler in front, another user). The identity is read from the server:
the cluster's ``system_identifier`` (unique per ``initdb``, kept by streaming
replicas, so a replica of the same cluster counts as the same rows) and the
database's oid.

When the server does not say (``pg_control_system()`` refused to the role, as
managed databases may do, or a PostgreSQL-compatible engine without it), the
identity is unknown (None), and callers count such a store as reaching every
database: an address and port as the server sees them would tell apart two
connections to the same rows (a Unix socket, IPv4 and IPv6, two interfaces),
and telling apart what is the same is the unsafe direction (one tenant's purge
through one store would not see the claims made through the other).
"""

from __future__ import annotations

from typing import Any

import psycopg

Identity = str
"""An opaque text: equal for two connections exactly when they reach the same database."""


async def identity(conn: psycopg.AsyncConnection[Any]) -> Identity | None:
    """The identity of the database this connection reaches; None when the server does not say (see above)."""
    try:
        async with conn.transaction(), conn.cursor() as cursor:
            await cursor.execute(
                "SELECT c.system_identifier::text, d.oid::text FROM pg_control_system() c, pg_database d "
                "WHERE d.datname = current_database()"
            )
            row = await cursor.fetchone()
    except psycopg.Error as error:
        if isinstance(error, psycopg.OperationalError):
            raise  # the connection itself failed: the caller's own error handling says so
        return None
    if row is None:
        return None
    return f"cluster:{row[0]}/db:{row[1]}"
