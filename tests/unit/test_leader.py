"""Leader election's pure parts: a standby's passes wait at the gate, and the timing rules."""

from __future__ import annotations

import asyncio

import pytest

from tenure.runtime.leader import Leadership, Timing


def test_a_standby_pass_waits_until_this_replica_leads() -> None:
    async def scenario() -> list[str]:
        done: list[str] = []

        async def reconcile(name: str) -> float | None:
            done.append(name)
            return None

        leadership = Leadership()
        waiting = asyncio.create_task(leadership.gate(reconcile)("acme"))
        await asyncio.sleep(0.05)
        assert done == []
        leadership.lead()
        await asyncio.wait_for(waiting, 1)
        return done

    assert asyncio.run(scenario()) == ["acme"]


@pytest.mark.parametrize(("lease", "renew", "retry"), [(10, 10, 1), (15, 10, 10), (15, 20, 1), (15, 10, 0)])
def test_timing_refuses_a_renew_deadline_not_shorter_than_the_lease(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError, match="lease duration > renew deadline > retry period"):
        Timing(lease, renew, retry)


def test_default_timing_leaves_a_leader_time_to_stop() -> None:
    timing = Timing()
    assert timing.lease_duration - timing.renew_deadline >= 2 * timing.retry_period
