"""make bench-scale: Tenure at 10,000 tenants, side by side with a no-op kopf operator.

Runs on its own throwaway control plane (.cache/bench-cluster) and reports:
RSS after settling (Tenure vs the no-op, same run), RSS and API writes over
an idle window longer than two re-list periods with tenants in every phase,
time to settle after a restart (and the writes it made), the lateness of
1,000 deadlines falling in the same second, and a leader takeover: two
replicas with leader election, the leader SIGKILLed, the time until the
standby acts, writes its first status and fires deadlines that fell due
while no replica acted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config, watch

from tenure.api import TenantStatus
from tenure.lifecycle.trust import UNSEALED, sealed

REPO = Path(__file__).resolve().parents[1]
CLUSTER_DIR = REPO / ".cache" / "bench-cluster"
KUBECONFIG = CLUSTER_DIR / "kubeconfig"
KUBECTL = REPO / ".cache" / "bin" / "kubectl"
OUT = REPO / "bench" / "out"
GROUP, VERSION = "retention.tenure.dev", "v1alpha1"
BIN = Path(sys.executable).parent
RELIST_SECONDS = 30
"""Tenure's --relist-seconds in this benchmark (default 300), so the idle window spans several re-lists."""
IDLE_SECONDS = 75
"""The idle window: longer than two re-list periods."""
POLICIES = {
    "bench": {"suspensionGracePeriod": "1h", "expiredDataRetention": "1h"},
    "bench-days": {"suspensionGracePeriod": "7d", "expiredDataRetention": "30d"},
    "bench-now": {"suspensionGracePeriod": "1h", "expiredDataRetention": "1s"},
    "bench-takeover": {"suspensionGracePeriod": "10s", "expiredDataRetention": "30d"},
}
TAKEOVER_TENANTS = 100
"""Tenants suspended (10 s grace) right before the leader is killed: their deadlines fall due while no one acts."""
EVENT_QUIET_SECONDS = 15
"""Before the idle window: no Event written for this long (the first start's Events have all been posted)."""


def spec_of(index: int, tenants: int) -> dict[str, Any]:
    """Tenants in every phase: the first half Active (the burst arms some of them), then Suspended and Expired
    with deadlines days away, then Closed ones purged right away (Purging, then Purged)."""
    share = index * 6 // tenants
    if share < 3:
        return {"retentionPolicy": "bench"}
    if share == 3:
        return {"retentionPolicy": "bench-days", "state": "Suspended", "suspensionReason": "NonPayment"}
    if share == 4:
        return {"retentionPolicy": "bench-days", "state": "Closed"}
    return {"retentionPolicy": "bench-now", "state": "Closed"}


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def kubectl(*args: str) -> str:
    return subprocess.run(
        [str(KUBECTL), f"--kubeconfig={KUBECONFIG}", *args], check=True, capture_output=True, text=True
    ).stdout


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def apiserver_writes(detail: bool = False) -> dict[str, float]:
    """Mutating requests the API server has served, by resource (with ``detail``: resource/subresource verb), from
    its own /metrics."""
    totals: dict[str, float] = {}
    pattern = re.compile(r"^apiserver_request_total\{(.*)\} ([0-9.e+]+)$")
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        match = pattern.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.get("verb") in ("POST", "PUT", "PATCH", "DELETE", "APPLY"):
            resource = labels.get("resource", "")
            if detail:
                resource = f"{resource}/{labels['subresource']} " if labels.get("subresource") else f"{resource} "
                resource += labels["verb"]
            totals[resource] = totals.get(resource, 0) + float(match.group(2))
    return totals


def delta(before: dict[str, float], after: dict[str, float], resources: tuple[str, ...]) -> int:
    return int(sum(after.get(r, 0) - before.get(r, 0) for r in resources))


def changed(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    return {key: int(after[key] - before.get(key, 0)) for key in sorted(after) if after[key] != before.get(key, 0)}


async def wait_events_posted(limit: float = 1800.0) -> tuple[float, int]:
    """Seconds until the API server saw no Event written for EVENT_QUIET_SECONDS, and the Events written meanwhile."""
    started = time.monotonic()
    first = last = apiserver_writes().get("events", 0)
    since = time.monotonic()
    while time.monotonic() - since < EVENT_QUIET_SECONDS:
        if time.monotonic() - started > limit:
            raise TimeoutError("Events still being written")
        await asyncio.sleep(1)
        now = apiserver_writes().get("events", 0)
        if now != last:
            last, since = now, time.monotonic()
    return since - started, int(last - first)


def scrape(port: int) -> dict[str, float]:
    import urllib.request

    values: dict[str, float] = {}
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


class Process:
    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        self.log = (OUT / f"{name}.log").open("wb")
        self.process = subprocess.Popen(args, env={**os.environ, **env}, stdout=self.log, stderr=self.log)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def start_noop() -> Process:
    return Process(
        "noop",
        [str(BIN / "kopf"), "run", "--all-namespaces", "--standalone", str(REPO / "bench/noop_operator.py")],
        {"KUBECONFIG": str(KUBECONFIG)},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_tenure(metrics_port: int, *args: str, name: str = "tenure") -> Process:
    return Process(
        name,
        [
            str(BIN / "tenure"),
            "run",
            f"--metrics-port={metrics_port}",
            f"--liveness-port={free_port()}",  # port 0 would mean kopf's default, 80
            f"--relist-seconds={RELIST_SECONDS}",
            *args,
        ],
        {"KUBECONFIG": str(KUBECONFIG)},
    )


async def wait_stable_rss(pid: int, quiet: float = 10.0, limit: float = 300.0) -> float:
    """RSS once it has not grown by more than 1% for `quiet` seconds."""
    started = time.monotonic()
    best, since = rss_mib(pid), time.monotonic()
    while time.monotonic() - started < limit:
        await asyncio.sleep(1)
        now = rss_mib(pid)
        if now > best * 1.01:
            best, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    return rss_mib(pid)


async def wait_settled(port: int, reconciles: int, limit: float = 1800.0) -> float:
    """Seconds until the operator has reconciled `reconciles` times and its queue is empty."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            metrics = scrape(port)
        except OSError:
            metrics = {}
        done = sum(v for k, v in metrics.items() if k.startswith("tenure_reconciles_total{"))
        pending = metrics.get('tenure_pending_reconciles{queue="tenants"}', 1)
        if done >= reconciles and pending == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise TimeoutError("operator did not settle")


def phases(metrics: dict[str, float]) -> dict[str, int]:
    prefix = 'tenure_tenants{phase="'
    return {key[len(prefix) : -2]: int(value) for key, value in metrics.items() if key.startswith(prefix) and value}


async def wait_phases(port: int, tenants: int, limit: float = 600.0) -> None:
    """Until every tenant has reached the phase it rests in (the purged share has finished purging)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        counts = phases(scrape(port))
        if sum(counts.values()) == tenants and not counts.get("Purging"):
            return
        await asyncio.sleep(1)
    raise TimeoutError("tenants did not reach their phases")


def writes_of(metrics: dict[str, float]) -> int:
    return int(sum(v for k, v in metrics.items() if k.startswith("tenure_api_writes_total{")))


async def create_tenants(api: client.CustomObjectsApi, names: list[str], concurrency: int = 48) -> None:
    slots = asyncio.Semaphore(concurrency)

    async def one(index: int, name: str) -> None:
        async with slots:
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Tenant",
                "metadata": {"name": name},
                "spec": spec_of(index, len(names)),
            }
            await api.create_cluster_custom_object(GROUP, VERSION, "tenants", body)

    await asyncio.gather(*(one(i, n) for i, n in enumerate(names)))


async def seal_key(api_client: client.ApiClient) -> bytes:
    """Tenure's status seal key (created by its first start): the burst's statuses must verify, as Tenure's own do."""
    import base64

    secret = await client.CoreV1Api(api_client).read_namespaced_secret("tenure-status-seal", "tenure-system")
    return base64.b64decode(secret.data["key"])


async def arm_burst(api: client.CustomObjectsApi, key: bytes, names: list[str], deadline: datetime) -> None:
    """Put tenants in Suspended with graceEndsAt == deadline, sealed, as a restart would find them."""
    slots = asyncio.Semaphore(48)
    stamp = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
    since = (deadline - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def one(name: str) -> None:
        async with slots:
            patched = await api.patch_cluster_custom_object(
                GROUP, VERSION, "tenants", name,
                {"spec": {"state": "Suspended", "suspensionReason": "NonPayment"}},
                _content_type="application/merge-patch+json",
            )  # fmt: skip
            status: dict[str, Any] = {
                "phase": "Suspended",
                "suspendedAt": since,
                "graceEndsAt": stamp,
                "nextDeadline": stamp,
                "windows": {"suspensionGracePeriod": "1h"},
            }
            meta = patched["metadata"]
            status = sealed(key, name, meta["uid"], TenantStatus.model_validate(status)).to_api()
            # Every other acted-on field of the status Tenure wrote goes (the seal covers exactly these).
            old = {field: None for field in patched.get("status") or {} if field not in (*UNSEALED, *status)}
            status = {**old, **status, "observedGeneration": meta["generation"]}
            await api.patch_cluster_custom_object_status(
                GROUP, VERSION, "tenants", name, {"status": status}, _content_type="application/merge-patch+json"
            )

    await asyncio.gather(*(one(n) for n in names))


async def watch_expiries(
    api: client.CustomObjectsApi, names: set[str], seen: dict[str, float], phase: str = "Expired"
) -> dict[str, dict[str, Any]]:
    """Records in ``seen`` when (time.time()) each named tenant was first seen in ``phase``; returns their statuses."""
    statuses: dict[str, dict[str, Any]] = {}
    while True:  # a watch the API server ends is started again
        stream = watch.Watch()
        async for event in stream.stream(
            api.list_cluster_custom_object, GROUP, VERSION, "tenants", timeout_seconds=600
        ):
            obj = event["object"]
            name = obj["metadata"]["name"]
            if name in names and name not in seen and (obj.get("status") or {}).get("phase") == phase:
                seen[name] = time.time()
                statuses[name] = obj["status"]
                if len(seen) == len(names):
                    return statuses


async def until(probe: Any, interval: float = 0.05, limit: float = 600.0) -> float:
    """time.time() once probe() is true (errors count as false)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            if probe():
                return time.time()
        except OSError:
            pass
        await asyncio.sleep(interval)
    raise TimeoutError(str(probe))


async def takeover(api: client.CustomObjectsApi, names: list[str], tenants: int) -> dict[str, Any]:
    """Two replicas with leader election (the shipped timing: lease 15 s, renew deadline 10 s, retry 1 s). The
    leader is SIGKILLed right after it suspended ``names`` with a 10 s grace, so their deadlines fall due while no
    replica acts. Times are from the kill."""
    results: dict[str, Any] = {"takeover_tenants_due": len(names)}
    ports = (9392, 9393)
    leader = start_tenure(ports[0], "--leader-election", name="tenure-leader")
    await until(lambda: scrape(ports[0]).get("tenure_leader") == 1, interval=0.5)
    await wait_settled(ports[0], tenants)
    standby = start_tenure(ports[1], "--leader-election", name="tenure-standby")
    await until(lambda: scrape(ports[1]).get("tenure_leader") == 0, interval=0.5)
    await wait_stable_rss(standby.pid)  # the standby has listed and watches: its stores are full
    results["leader_rss_mib"] = round(await wait_stable_rss(leader.pid), 1)
    results["standby_rss_mib"] = round(await wait_stable_rss(standby.pid), 1)
    log(f"takeover: leader RSS {results['leader_rss_mib']} MiB, warm standby {results['standby_rss_mib']} MiB")

    expired: dict[str, float] = {}
    watching = asyncio.create_task(watch_expiries(api, set(names), expired))
    slots = asyncio.Semaphore(48)

    async def suspend(name: str) -> None:
        async with slots:
            body = {
                "spec": {"retentionPolicy": "bench-takeover", "state": "Suspended", "suspensionReason": "NonPayment"}
            }
            await api.patch_cluster_custom_object(
                GROUP, VERSION, "tenants", name, body, _content_type="application/merge-patch+json"
            )

    seen: set[str] = set()

    async def suspended() -> bool:
        found = await asyncio.gather(*(api.get_cluster_custom_object(GROUP, VERSION, "tenants", n) for n in names))
        seen.update(t["metadata"]["name"] for t in found if (t.get("status") or {}).get("phase") == "Suspended")
        return len(seen) == len(names)

    await asyncio.gather(*(suspend(n) for n in names))
    log("takeover: suspended the tenants' specs")
    while not await suspended():
        await asyncio.sleep(0.1)
    leader.process.kill()
    killed = time.time()
    leader.process.wait()
    log("takeover: every tenant seen Suspended; leader killed")
    leading = asyncio.create_task(until(lambda: scrape(ports[1]).get("tenure_leader") == 1))
    writing = asyncio.create_task(until(lambda: scrape(ports[1]).get('tenure_api_writes_total{kind="status"}', 0) > 0))
    led, counted = await leading, await writing
    statuses = await asyncio.wait_for(watching, timeout=600)
    # Its counter is polled (a scrape of a busy process takes a while); a due tenant seen Expired is a status write too.
    wrote = min(counted, *expired.values())
    settled = await wait_settled(ports[1], tenants)
    standby.stop()
    due = [datetime.fromisoformat(statuses[n]["graceEndsAt"]).timestamp() for n in names]
    results["takeover_deadlines_due_after_kill_s"] = [round(min(due) - killed, 2), round(max(due) - killed, 2)]
    results["takeover_lead_s"] = round(led - killed, 2)
    results["takeover_first_status_write_s"] = round(wrote - killed, 2)
    fired = sorted(t - killed for t in expired.values())
    results["takeover_fired_before_kill"] = sum(1 for t in fired if t < 0)  # too late: the old leader fired them
    results["takeover_due_fired_first_s"] = round(fired[0], 2)
    results["takeover_due_fired_p50_s"] = round(statistics.median(fired), 2)
    results["takeover_due_fired_last_s"] = round(fired[-1], 2)
    results["takeover_settled_s"] = round(settled, 1)
    log(
        f"takeover: standby led {results['takeover_lead_s']}s after the kill, first status write "
        f"{results['takeover_first_status_write_s']}s, due deadlines fired {results['takeover_due_fired_first_s']}-"
        f"{results['takeover_due_fired_last_s']}s"
    )
    return results


async def status_patch_floor(api: client.CustomObjectsApi, names: list[str]) -> float:
    """Seconds a bare client needs for one minimal status PATCH per tenant (64 at once): the API server's floor."""
    slots = asyncio.Semaphore(64)

    async def one(name: str) -> None:
        async with slots:
            await api.patch_cluster_custom_object_status(
                GROUP, VERSION, "tenants", name, {"status": {"nextDeadline": "2099-01-01T00:00:00Z"}},
                _content_type="application/merge-patch+json",
            )  # fmt: skip

    started = time.monotonic()
    await asyncio.gather(*(one(n) for n in names))
    return time.monotonic() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(tenants: int, burst: int) -> dict[str, Any]:
    results: dict[str, Any] = {"tenants": tenants, "burst": burst}
    subprocess.run([str(REPO / "tests/cluster/cluster.sh"), "down", f"--dir={CLUSTER_DIR}"], check=True)
    subprocess.run([str(REPO / "tests/cluster/cluster.sh"), "up", f"--dir={CLUSTER_DIR}"], check=True)
    kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "-f", str(REPO / "crds"))
    kubectl("apply", "-f", str(REPO / "manifests/deploy/rbac.yaml"))  # the namespace holding the status seal key
    await config.load_kube_config(str(KUBECONFIG))
    async with client.ApiClient() as api_client:
        api_client.configuration.connection_pool_maxsize = 64
        api = client.CustomObjectsApi(api_client)
        for name, spec in POLICIES.items():
            policy = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RetentionPolicy", "metadata": {"name": name},
                      "spec": spec}  # fmt: skip
            await api.create_cluster_custom_object(GROUP, VERSION, "retentionpolicies", policy)
        names = [f"tenant-{i:05d}" for i in range(tenants)]
        started = time.monotonic()
        await create_tenants(api, names)
        log(f"created {tenants} tenants in {time.monotonic() - started:.1f}s")

        noop = start_noop()
        results["noop_rss_mib"] = round(await wait_stable_rss(noop.pid), 1)
        noop.stop()
        log(f"no-op kopf operator RSS {results['noop_rss_mib']} MiB")

        port = 9391
        tenure = start_tenure(port)
        first = await wait_settled(port, tenants)
        results["first_settle_s"] = round(first, 1)
        results["first_settle_writes"] = writes_of(scrape(port))
        results["tenure_rss_mib"] = round(await wait_stable_rss(tenure.pid), 1)
        results["rss_ratio"] = round(results["tenure_rss_mib"] / results["noop_rss_mib"], 2)
        log(f"tenure settled first time in {first:.1f}s; RSS {results['tenure_rss_mib']} MiB")

        await wait_phases(port, tenants)
        results["idle_phases"] = phases(scrape(port))
        # The first start's Events are posted after its status writes (effects/events.py): wait until the API
        # server has seen none for a while, and record what was written meanwhile.
        drain_before = apiserver_writes(detail=True)
        drain, results["events_posted_after_settling"] = await wait_events_posted()
        results["events_drain_s"] = round(drain, 1)
        results["writes_server_while_draining"] = changed(drain_before, apiserver_writes(detail=True))
        log(f"Events drained: {results['events_posted_after_settling']} posted in {drain:.1f}s after settling")
        results["idle_window_s"], results["relist_seconds"] = IDLE_SECONDS, RELIST_SECONDS
        before_detail = apiserver_writes(detail=True)
        before_server, before_tenure = apiserver_writes(), writes_of(scrape(port))
        results["idle_rss_start_mib"] = round(rss_mib(tenure.pid), 1)
        await asyncio.sleep(IDLE_SECONDS)
        results["idle_rss_end_mib"] = round(rss_mib(tenure.pid), 1)
        after_server, after_tenure = apiserver_writes(), writes_of(scrape(port))
        results["idle_writes_server_by_request"] = changed(before_detail, apiserver_writes(detail=True))
        results["idle_rss_growth_pct"] = round(
            100 * (results["idle_rss_end_mib"] / results["idle_rss_start_mib"] - 1), 1
        )
        results["idle_writes_tenure"] = after_tenure - before_tenure
        results["idle_writes_server_tenants_events"] = delta(
            before_server, after_server, ("tenants", "events", "namespaces", "persistentvolumes")
        )
        log(
            f"idle {IDLE_SECONDS}s ({results['idle_phases']}): RSS {results['idle_rss_start_mib']} -> "
            f"{results['idle_rss_end_mib']} MiB, {results['idle_writes_tenure']} writes by tenure"
        )

        tenure.stop()
        before_server = apiserver_writes()
        tenure = start_tenure(port)
        restart = await wait_settled(port, tenants)
        results["restart_settle_s"] = round(restart, 1)
        results["restart_writes_tenure"] = writes_of(scrape(port))
        results["restart_writes_server"] = delta(before_server, apiserver_writes(), ("tenants", "events"))
        results["restart_rss_mib"] = round(await wait_stable_rss(tenure.pid), 1)
        log(f"restart settled in {restart:.1f}s with {results['restart_writes_tenure']} writes")
        tenure.stop()

        # The same baseline again, now that the objects carry status and managedFields as Tenure left them.
        noop = start_noop()
        results["noop_rss_settled_objects_mib"] = round(await wait_stable_rss(noop.pid), 1)
        noop.stop()
        results["restart_rss_ratio"] = round(results["restart_rss_mib"] / results["noop_rss_settled_objects_mib"], 2)
        log(f"no-op on the same settled objects: RSS {results['noop_rss_settled_objects_mib']} MiB")

        # The last Active tenants: a standby that takes over reconciles in the order its watch listed (by name), so
        # these wait behind half of the others, not the luckiest.
        results.update(await takeover(api, names[tenants // 2 - TAKEOVER_TENANTS : tenants // 2], tenants))

        burst_names = names[:burst]
        deadline = (datetime.now(UTC) + timedelta(seconds=75)).replace(microsecond=0)
        await arm_burst(api, await seal_key(api_client), burst_names, deadline)
        tenure = start_tenure(port)
        await wait_settled(port, tenants)
        seen: dict[str, float] = {}
        await asyncio.wait_for(watch_expiries(api, set(burst_names), seen), timeout=300)
        lateness = [t - deadline.timestamp() for t in seen.values()]
        metrics = scrape(port)
        tenure.stop()
        results["floor_1000_status_patches_s"] = round(await status_patch_floor(api, burst_names), 2)
        results["burst_seen_expired"] = len(seen)
        results["burst_lateness_p50_s"] = round(statistics.median(lateness), 3)
        results["burst_lateness_p99_s"] = round(percentile(lateness, 0.99), 3)
        results["burst_lateness_max_s"] = round(max(lateness), 3)
        results["burst_earliest_s"] = round(min(lateness), 3)
        count = metrics.get('tenure_deadline_lateness_seconds_count{queue="tenants"}', 0)
        within = metrics.get('tenure_deadline_lateness_seconds_bucket{le="1.0",queue="tenants"}', 0)
        results["scheduler_pickups"] = int(count)
        results["scheduler_pickups_within_1s"] = int(within)
        log(f"burst: p50 {results['burst_lateness_p50_s']}s p99 {results['burst_lateness_p99_s']}s")
    subprocess.run([str(REPO / "tests/cluster/cluster.sh"), "down", f"--dir={CLUSTER_DIR}"], check=True)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=1_000)
    args = parser.parse_args()
    results = asyncio.run(main(args.tenants, args.burst))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scale.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
