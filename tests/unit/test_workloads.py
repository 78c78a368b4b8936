"""Stopping workloads decided purely: what stops, what is recorded on the object and what comes back."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from tenure.lifecycle.workloads import ASKED_ANNOTATION, Workload, asked_record, recorded, restore, stop

KEY = b"k" * 32


def deployment(replicas: int, **changes: object) -> Workload:
    return replace(Workload("Deployment", "ns", "web", "uid-1", replicas), **changes)  # type: ignore[arg-type]


@given(replicas=st.integers(min_value=1, max_value=10_000))
def test_stopping_records_the_asked_replicas_and_restoring_gives_them_back(replicas: int) -> None:
    running = deployment(replicas)
    patch = stop(KEY, running)
    assert patch is not None and patch["spec"] == {"replicas": 0}
    stopped = deployment(0, asked=patch["metadata"]["annotations"][ASKED_ANNOTATION])
    assert stop(KEY, stopped) is None  # idempotent
    assert recorded(KEY, stopped) == replicas
    back = restore(KEY, stopped)
    assert back is not None and not back.forged
    assert back.patch == {"metadata": {"annotations": {ASKED_ANNOTATION: None}}, "spec": {"replicas": replicas}}


@given(asked=st.integers(min_value=0, max_value=100), forged=st.integers(min_value=0, max_value=1_000_000))
def test_a_forged_record_never_scales_anything_up(asked: int, forged: int) -> None:
    record = stop(KEY, deployment(asked + 1))
    assert record is not None
    genuine = record["metadata"]["annotations"][ASKED_ANNOTATION]
    mac = genuine.rpartition(":")[2]
    for annotation in (
        f"replicas={forged}:{mac}",  # another value under the genuine seal
        genuine.replace(mac, "0" * len(mac)),  # a made-up seal
        f"replicas={forged}",  # no seal
    ):
        if annotation == genuine:
            continue
        result = restore(KEY, deployment(0, asked=annotation))
        assert result is not None and result.forged and "spec" not in result.patch
    # The genuine record copied onto another object (another uid) does not verify there either.
    copied = restore(KEY, deployment(0, asked=genuine, uid="uid-2"))
    assert copied is not None and copied.forged and "spec" not in copied.patch
    # Nor under another key (a new seal key).
    assert recorded(b"x" * 32, deployment(0, asked=genuine)) is None


def test_scaled_up_while_inaccessible_is_recorded_anew_and_a_later_change_wins() -> None:
    first = stop(KEY, deployment(3))
    assert first is not None
    scaled_up = deployment(5, asked=first["metadata"]["annotations"][ASKED_ANNOTATION])
    again = stop(KEY, scaled_up)
    assert again is not None and again["spec"] == {"replicas": 0}
    assert recorded(KEY, deployment(0, asked=again["metadata"]["annotations"][ASKED_ANNOTATION])) == 5
    # Changed by a person after reopening (before the restore reached it): theirs stays, the record goes.
    changed = restore(KEY, deployment(2, asked=again["metadata"]["annotations"][ASKED_ANNOTATION]))
    assert changed is not None and changed.patch == {"metadata": {"annotations": {ASKED_ANNOTATION: None}}}


def test_cronjob_suspended_before_stays_suspended_and_controlled_or_finished_are_left() -> None:
    suspended_before = Workload("CronJob", "ns", "nightly", "uid-c", True)
    assert stop(KEY, suspended_before) is None
    assert restore(KEY, suspended_before) is None
    running = Workload("CronJob", "ns", "hourly", "uid-h", False)
    patch = stop(KEY, running)
    assert patch is not None and patch["spec"] == {"suspend": True}
    back = restore(KEY, replace(running, value=True, asked=patch["metadata"]["annotations"][ASKED_ANNOTATION]))
    assert back is not None and back.patch["spec"] == {"suspend": False}
    assert stop(KEY, Workload("ReplicaSet", "ns", "web-1", "uid-r", 3, controlled=True)) is None
    # A Deployment's record copied by its controller onto its ReplicaSet is neither restored nor called forged.
    copied = Workload(
        "ReplicaSet", "ns", "web-1", "uid-r", 0, asked=asked_record(KEY, deployment(3), 3), controlled=True
    )
    assert restore(KEY, copied) is None
    assert stop(KEY, Workload("Job", "ns", "once", "uid-j", False, finished=True)) is None
    # A replicas record does not restore a suspend flag.
    replicas = stop(KEY, deployment(1))
    assert replicas is not None
    assert recorded(KEY, Workload("Deployment", "ns", "web", "uid-1", 0, asked="suspend=false:" + "0" * 40)) is None
