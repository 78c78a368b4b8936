"""When `tenure export` may run: Active by a status Tenure sealed, and a spec that agrees."""

from __future__ import annotations

from typing import Any

import pytest

from tenure.api import TenantStatus
from tenure.export import refusal
from tenure.lifecycle import trust

KEY = b"k" * 32


def tenant(status: dict[str, Any], spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": "acme", "uid": "u1", **meta}, "spec": spec or {}, "status": status}


def sealed(status: dict[str, Any], key: bytes = KEY, uid: str = "u1") -> dict[str, Any]:
    return trust.sealed(key, "acme", uid, TenantStatus.model_validate(status)).to_api()


ACTIVE = {"phase": "Active", "observedGeneration": 1}


def test_a_sealed_active_status_with_an_active_spec_is_exported() -> None:
    assert refusal(tenant(sealed(ACTIVE)), KEY) is None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (tenant({"phase": "Active"}), "Tenure did not seal it"),  # the break-glass group's phase: Active, no seal
        (tenant({**sealed(ACTIVE), "seal": "v1:" + "0" * 64}), "Tenure did not seal it"),
        (tenant(sealed(ACTIVE, key=b"x" * 32)), "Tenure did not seal it"),  # another cluster's key
        (tenant(sealed(ACTIVE, uid="u0")), "Tenure did not seal it"),  # copied from an earlier object
        (tenant(sealed(ACTIVE), {"state": "Suspended", "suspensionReason": "NonPayment"}), "spec.state Suspended"),
        (tenant(sealed(ACTIVE), {"state": "Closed"}), "spec.state Closed"),
        (tenant(sealed(ACTIVE), deletionTimestamp="2026-01-01T00:00:00Z"), "is being deleted"),
        (tenant(sealed({"phase": "Suspended", "suspendedAt": "2026-01-01T00:00:00Z"})), "is Suspended"),
        (tenant({}), "is not yet Active"),
    ],
)
def test_export_is_refused(body: dict[str, Any], why: str) -> None:
    refused = refusal(body, KEY)
    assert refused is not None and why in refused
