"""The baseline for bench/scale.py: a kopf operator that watches what Tenure watches and does nothing.

Same Python, same kopf, same watched resources (tenants, retention policies,
legal holds, namespaces, persistent volumes), every event handled by a no-op.
"""

from __future__ import annotations

from typing import Any

import kopf

GROUP, VERSION = "retention.tenure.dev", "v1alpha1"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.peering.standalone = True
    settings.posting.enabled = False


@kopf.on.event(GROUP, VERSION, "tenants")
@kopf.on.event(GROUP, VERSION, "retentionpolicies")
@kopf.on.event(GROUP, VERSION, "legalholds")
@kopf.on.event("", "v1", "namespaces")
@kopf.on.event("", "v1", "persistentvolumes")
def noop(**_: Any) -> None:
    pass
