"""Connections to DataStores: the URI is read from its Secret for each job and held only in memory."""

from __future__ import annotations

import base64
from typing import Any

import psycopg

from tenure.api import DataStoreSpec
from tenure.datastores import operations, postgres
from tenure.effects.kube import Kube, status_of


class Unavailable(Exception):
    """The store cannot be used now; the message is safe to show (no URI)."""


class Connections:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def uri(self, spec: DataStoreSpec) -> str:
        ref = spec.postgres.connection_secret_ref
        where = f"Secret {ref.namespace}/{ref.name}"
        try:
            secret = await self.kube.core.read_namespaced_secret(ref.name, ref.namespace)
        except Exception as error:
            if status_of(error) in (403, 404):
                raise Unavailable(f"{where} cannot be read ({status_of(error)})") from error
            raise
        encoded = (secret.data or {}).get(ref.key)
        if not encoded:
            raise Unavailable(f"{where} has no key {ref.key!r}")
        try:
            return base64.b64decode(encoded, validate=True).decode()
        except ValueError as error:  # binascii.Error and UnicodeDecodeError are ValueErrors
            raise Unavailable(f"{where} key {ref.key!r} is not UTF-8 text") from error

    async def connect(self, spec: DataStoreSpec) -> Any:
        """An open connection with the store's session limits; raises :class:`Unavailable` with a safe reason."""
        uri = await self.uri(spec)
        ref = spec.postgres.connection_secret_ref
        try:
            return await postgres.connect(uri, operations.session_of(spec))
        except psycopg.ProgrammingError as error:  # its text quotes the connection string
            raise Unavailable(
                f"Secret {ref.namespace}/{ref.name} key {ref.key!r} is not a PostgreSQL connection URI"
            ) from error
        except Exception as error:
            raise Unavailable(postgres.describe_error(error)) from error
