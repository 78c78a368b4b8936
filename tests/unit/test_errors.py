"""The effects boundary turns every error answer into a type, also for raw (_preload_content=False) calls."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tenure.effects.errors import Conflict, Forbidden, Gone, Invalid, ServerError, checked, from_answer


class RawResponse:
    """What kubernetes_asyncio returns with _preload_content=False: an aiohttp response, whatever its status."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.reason = "reason"
        self._body = json.dumps(body).encode()
        self.released = False

    async def read(self) -> bytes:
        return self._body

    async def __aenter__(self) -> RawResponse:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.released = True


async def answer(status: int, body: dict[str, Any]) -> RawResponse:
    return RawResponse(status, body)


def status_body(code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"kind": "Status", "code": code, "reason": reason, "message": message, "details": {"causes": causes or []}}


@pytest.mark.parametrize(
    ("code", "reason", "kind"),
    [(404, "NotFound", Gone), (409, "Conflict", Conflict), (403, "Forbidden", Forbidden), (503, "", ServerError)],
)
def test_a_raw_error_answer_raises_its_type(code: int, reason: str, kind: type[Exception]) -> None:
    with pytest.raises(kind) as raised:
        asyncio.run(checked(answer(code, status_body(code, reason, f"refused with {code}"))))
    assert f"refused with {code}" in str(raised.value)


def test_a_raw_success_returns_the_body() -> None:
    assert asyncio.run(checked(answer(200, {"kind": "PersistentVolume"}))) == {"kind": "PersistentVolume"}


def test_already_exists_is_a_conflict_that_says_so() -> None:
    error = from_answer(409, "Conflict", json.dumps(status_body(409, "AlreadyExists", "exists")))
    assert isinstance(error, Conflict) and error.already_exists
    refused = from_answer(409, "Conflict", json.dumps(status_body(409, "Conflict", "uid")))
    assert isinstance(refused, Conflict) and not refused.already_exists


def test_invalid_names_the_fields() -> None:
    body = status_body(
        422, "Invalid", "bad", [{"field": "status.windows.suspensionGracePeriod", "message": "too long"}]
    )
    error = from_answer(422, "Unprocessable Entity", json.dumps(body))
    assert isinstance(error, Invalid)
    assert error.causes == ("status.windows.suspensionGracePeriod: too long",)
