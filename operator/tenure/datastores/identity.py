"""Which rows a DataStore reaches: the identity of the database behind a connection, read from the server itself.

Two DataStores reach the same rows when their connections land in the same
database of the same cluster, whatever their URIs say (another Secret, a host
alias, a pooler in front, another user). The identity is read from the server:
the cluster's ``system_identifier`` (unique per ``initdb``, kept by streaming
replicas, so a replica of the same cluster counts as the same rows) and the
database's oid. ``pg_control_system()`` may be refused to a role without
``pg_monitor``; then the server's data directory-independent facts that remain
are used instead (its address and port as it sees them, and the database's oid
and name), which still tell apart every database of one server.
"""

from __future__ import annotations

from typing import Any

import psycopg

Identity = str
"""An opaque text: equal for two connections exactly when they reach the same database."""


async def identity(conn: psycopg.AsyncConnection[Any]) -> Identity:
    """The identity of the database this connection reaches (see the module's docstring)."""
    async with conn.cursor() as cursor:
        await cursor.execute("SELECT oid::text, datname FROM pg_database WHERE datname = current_database()")
        row = await cursor.fetchone()
        assert row is not None
        oid, name = str(row[0]), str(row[1])
        try:
            async with conn.transaction():
                await cursor.execute("SELECT system_identifier::text FROM pg_control_system()")
                system = await cursor.fetchone()
        except psycopg.errors.InsufficientPrivilege:
            system = None
        if system is not None:
            return f"cluster:{system[0]}/db:{oid}"
        await cursor.execute("SELECT coalesce(host(inet_server_addr()), 'local'), current_setting('port')")
        server = await cursor.fetchone()
        assert server is not None
        return f"server:{server[0]}:{server[1]}/db:{oid}:{name}"
