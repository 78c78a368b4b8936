"""The API server's answers as types, decided once here at the effects boundary.

kubernetes_asyncio raises ``ApiException`` for an error answer only when it
parses the response; with ``_preload_content=False`` (used to skip building
client models Tenure never reads) it returns the raw response whatever its
status, so a 404 or a refused precondition looked like success. Every call
in ``effects`` goes through :func:`checked` (raw responses) or :func:`typed`
(parsed ones), and the rest of the code asks ``except Gone`` /
``except Conflict`` instead of comparing status codes.

Modelled on kopf's ``_cogs/clients/errors.py``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, TypeVar

from kubernetes_asyncio.client.exceptions import ApiException

T = TypeVar("T")


class ApiError(Exception):
    """The API server refused a request; ``status`` is the HTTP status, ``message`` its own words."""

    def __init__(self, status: int, reason: str, message: str, causes: tuple[str, ...] = ()) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.causes = causes
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")


class Gone(ApiError):
    """404: the object does not exist (any more)."""


class Conflict(ApiError):
    """409: a precondition (uid, resourceVersion) no longer holds, or the object already exists."""

    @property
    def already_exists(self) -> bool:
        return self.reason == "AlreadyExists"


class Forbidden(ApiError):
    """403: RBAC or an admission policy refused the request."""


class Expired(ApiError):
    """410: the resourceVersion a watch asked to continue from is too old; list again."""


class Invalid(ApiError):
    """422: the object was refused by the schema (``causes`` name the fields)."""


class Throttled(ApiError):
    """429: the API server asks us to come back later."""


class ServerError(ApiError):
    """5xx: the API server (or something behind it) failed; the request may be retried."""


_TYPES: dict[int, type[ApiError]] = {
    403: Forbidden,
    404: Gone,
    409: Conflict,
    410: Expired,
    422: Invalid,
    429: Throttled,
}


def from_answer(status: int, reason: str, body: bytes | str | None) -> ApiError:
    """The typed error for an error answer, with the message and field causes of its Status body."""
    message, kind = "", reason
    causes: tuple[str, ...] = ()
    try:
        parsed: Any = json.loads(body or b"{}")
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or "")
        kind = str(parsed.get("reason") or reason or "")
        details = parsed.get("details") or {}
        causes = tuple(
            f"{cause.get('field', '')}: {cause.get('message', '')}".strip(": ")
            for cause in (details.get("causes") or [] if isinstance(details, dict) else [])
            if isinstance(cause, dict)
        )
    cls = _TYPES.get(status, ServerError if status >= 500 else ApiError)
    return cls(status, kind, message, causes)


def translate(error: ApiException) -> ApiError:
    return from_answer(int(error.status or 0), str(error.reason or ""), error.body)


async def typed(call: Awaitable[T]) -> T:
    """Await a parsed (``_preload_content=True``) call; its error answers raise typed."""
    try:
        return await call
    except ApiException as error:
        raise translate(error) from None


async def checked(call: Awaitable[Any]) -> dict[str, Any]:
    """Await a raw (``_preload_content=False``) call; returns its JSON body, raises typed on an error answer."""
    try:
        response = await call
    except ApiException as error:  # raised before any answer (e.g. a request it could not build)
        raise translate(error) from None
    async with response:
        body = await response.read()
        if not 200 <= response.status <= 299:
            raise from_answer(response.status, str(response.reason or ""), body)
    parsed: dict[str, Any] = json.loads(body) if body else {}
    return parsed


def status_of(error: BaseException) -> int | None:
    """The HTTP status of a failed API call, or None for transport errors."""
    if isinstance(error, ApiError):
        return error.status
    return error.status if isinstance(error, ApiException) else None
