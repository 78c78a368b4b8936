"""Sessions on a DataStore's database: the limits every Tenure session sets, and errors as people may see them.

Split from :mod:`.postgres` (which re-exports these): a connection is in
autocommit, dates in UTC, bounded by the store's limits; an error is shown by
its class and the server's message, never the connection URI or its password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True)
class Session:
    """Limits every Tenure session sets, so a stuck statement or lock never holds the database (seconds)."""

    statement_timeout: float = 60.0
    lock_timeout: float = 5.0
    idle_in_transaction_session_timeout: float = 60.0
    application_name: str = "tenure"


async def connect(uri: str, session: Session = Session()) -> psycopg.AsyncConnection[Any]:
    """A connection in autocommit (each statement its own transaction), dates in UTC, bounded by ``session``.

    Parallel query is off for Tenure's sessions: background deletion must not
    take every core of a database that is serving live traffic. Plans are
    always custom: with the keys as constants PostgreSQL hashes ``= ANY`` key
    arrays, which a generic plan (after five executions) would scan row by row.
    """
    limits = " ".join(
        f"-c {name}={int(seconds * 1000)}"
        for name, seconds in (
            ("statement_timeout", session.statement_timeout),
            ("lock_timeout", session.lock_timeout),
            ("idle_in_transaction_session_timeout", session.idle_in_transaction_session_timeout),
        )
    )
    conn = await psycopg.AsyncConnection.connect(
        uri,
        autocommit=True,
        connect_timeout=10,
        application_name=session.application_name,
        options="-c TimeZone=UTC -c max_parallel_workers_per_gather=0 -c plan_cache_mode=force_custom_plan " + limits,
    )
    return conn


def bindable(value: str) -> bool:
    """Whether a key can be bound as PostgreSQL text at all: a NUL, or text that is not UTF-8 (a lone surrogate),
    makes the whole statement fail (DataError), and no row can hold such a key, so leaving it out is exact."""
    if "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


AUTHENTICATION = ("28P01", "28000")
"""SQLSTATEs of a refused login: invalid_password, invalid_authorization_specification."""


TIMED_OUT = (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable)
"""``statement_timeout`` and ``lock_timeout``: not an outage."""


def describe_error(error: BaseException) -> str:
    """An error as people may see it, with the server's message: never the connection URI or its password."""
    if not isinstance(error, psycopg.Error):
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    message = error.diag.message_primary  # the server's; client-side text may quote the connection string
    named = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if isinstance(error, psycopg.OperationalError) and not isinstance(error, TIMED_OUT):
        if error.sqlstate in AUTHENTICATION or _refused_login(error):
            return (
                "authentication failed: the server refused the user or password of the Secret's URI"
                f" ({type(error).__name__})"
            )
        return f"database unreachable ({named})"
    return named


_LOGIN_REFUSED = re.compile(
    r"FATAL: +(password authentication failed|role \"[^\"]*\" does not exist|no pg_hba\.conf entry)"
)


def _refused_login(error: psycopg.Error) -> bool:
    """A connection error whose server message (libpq's text, which never quotes the password) refuses the login:
    connection errors carry no SQLSTATE."""
    return bool(_LOGIN_REFUSED.search(str(error)))
