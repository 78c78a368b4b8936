"""The ``tenure`` command: run the operator, see where tenants stand, render the CRDs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import kopf
import typer

app = typer.Typer(help="Tenure: tenant data-retention for Kubernetes.", no_args_is_help=True)


@app.command()
def run(
    namespace: Annotated[
        str, typer.Option(envvar="TENURE_NAMESPACE", help="The operator's own namespace (always protected).")
    ] = "tenure-system",
    workers: Annotated[int, typer.Option(envvar="TENURE_WORKERS", min=1, help="Tenants reconciled at once.")] = 64,
    relist_seconds: Annotated[
        float,
        typer.Option(
            envvar="TENURE_RELIST_SECONDS",
            min=10,
            help="Seconds between re-lists of policies, holds, DataStores, namespaces, volumes.",
        ),
    ] = 300.0,
    access_sweep_seconds: Annotated[
        float,
        typer.Option(
            envvar="TENURE_ACCESS_SWEEP_SECONDS",
            min=1,
            help="Seconds between sweeps of an inaccessible tenant's namespaces (workloads scaled up or created "
            "meanwhile are stopped, new RoleBindings removed).",
        ),
    ] = 60.0,
    access_pod_grace_seconds: Annotated[
        int,
        typer.Option(
            envvar="TENURE_ACCESS_POD_GRACE_SECONDS",
            min=0,
            help="The longest grace period (seconds) of a pod deleted for inaccessibility; one still there past it "
            "is deleted again with grace 0.",
        ),
    ] = 30,
    liveness_port: Annotated[int, typer.Option(envvar="TENURE_LIVENESS_PORT")] = 8080,
    metrics_port: Annotated[int, typer.Option(envvar="TENURE_METRICS_PORT")] = 9090,
    protected_namespaces: Annotated[
        str,
        typer.Option(
            envvar="TENURE_PROTECTED_NAMESPACES",
            help="Comma-separated namespaces no tenant may own or have deleted, besides default, every kube-* one "
            "and the operator's own.",
        ),
    ] = "",
    log_format: Annotated[str, typer.Option(envvar="TENURE_LOG_FORMAT", help="json or plain.")] = "json",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            envvar="TENURE_DRY_RUN",
            help="Run the lifecycle and report it in status and Events, but delete, scale, block and redact nothing.",
        ),
    ] = False,
    per_tenant_metrics: Annotated[
        bool,
        typer.Option(
            envvar="TENURE_PER_TENANT_METRICS",
            help="Export each tenant's pending deadline (one series per Suspended, Expired or Purging tenant).",
        ),
    ] = True,
    leader_election: Annotated[
        bool,
        typer.Option(
            envvar="TENURE_LEADER_ELECTION", help="Run several replicas, one acting (a Lease in --namespace)."
        ),
    ] = False,
    lease_duration: Annotated[float, typer.Option(envvar="TENURE_LEASE_DURATION", help="Seconds.")] = 15.0,
    renew_deadline: Annotated[float, typer.Option(envvar="TENURE_RENEW_DEADLINE", help="Seconds.")] = 10.0,
    retry_period: Annotated[float, typer.Option(envvar="TENURE_RETRY_PERIOD", help="Seconds.")] = 1.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the operator against the cluster of the current KUBECONFIG (or in-cluster), cluster-wide."""
    from tenure.runtime.config import Config, namespace_list
    from tenure.runtime.handlers import run as run_operator
    from tenure.runtime.leader import Timing
    from tenure.runtime.logfields import Fields

    try:
        election = Timing(lease_duration, renew_deadline, retry_period) if leader_election else None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None

    kopf.configure(log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN, verbose=verbose)
    for handler in logging.getLogger().handlers:
        handler.addFilter(Fields())  # tenant, datastore, legalhold as fields of JSON records
    logging.getLogger("tenure").setLevel(logging.DEBUG if verbose else logging.INFO)
    # kopf logs every handler call; with thousands of tenants that drowns what matters.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if verbose else logging.WARNING)
    # At DEBUG the client logs every response body, and one of them is the DataStore's connection Secret.
    logging.getLogger("kubernetes_asyncio").setLevel(logging.INFO)
    run_operator(
        Config(
            namespace=namespace,
            workers=workers,
            relist_seconds=relist_seconds,
            access_sweep_seconds=access_sweep_seconds,
            access_pod_grace_seconds=access_pod_grace_seconds,
            liveness_port=liveness_port,
            metrics_port=metrics_port,
            protected_namespaces=namespace_list(protected_namespaces),
            leader_election=election,
            per_tenant_metrics=per_tenant_metrics,
            dry_run=dry_run,
        )
    )


Kubeconfig = Annotated[
    str | None, typer.Option("--kubeconfig", help="The kubeconfig file (default: $KUBECONFIG, ~/.kube/config).")
]
Context = Annotated[str | None, typer.Option("--context", help="The kubeconfig context (default: the current one).")]
OutputFormat = Annotated[str, typer.Option("--output", "-o", help="table, json or yaml.")]


def _reading(kubeconfig: str | None, context: str | None, output: str) -> tuple[Any, Any, Any]:
    """The console, the cluster to read and the output format of a read-only command."""
    from rich.console import Console

    from tenure.inspect import Cluster

    if output not in ("table", "json", "yaml"):
        raise typer.BadParameter(f"{output!r}: use table, json or yaml", param_hint="--output")
    return Console(), Cluster(kubeconfig, context), output


def status(kubeconfig: Kubeconfig = None, context: Context = None, output: OutputFormat = "table") -> None:
    """Every tenant: phase, next deadline, legal holds, purge progress."""
    from tenure.inspect import status as show

    show(*_reading(kubeconfig, context, output))


def describe(
    tenant: Annotated[str, typer.Argument(help="The Tenant's name.")],
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    output: OutputFormat = "table",
) -> None:
    """One tenant (read by name): timeline, conditions, purge progress and its recent Events."""
    from tenure.inspect import describe as show

    console, cluster, shown = _reading(kubeconfig, context, output)
    show(console, cluster, tenant, shown)


def holds(kubeconfig: Kubeconfig = None, context: Context = None, output: OutputFormat = "table") -> None:
    """Every LegalHold: the tenants it names and why."""
    from tenure.inspect import holds as show

    show(*_reading(kubeconfig, context, output))


def plan(
    tenants: Annotated[list[str] | None, typer.Argument(help="Tenants to plan for (default: every tenant).")] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="An ISO date or date-time, UTC unless stated (default: now).")
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    output: OutputFormat = "table",
) -> None:
    """What would be deleted by --until and why: namespaces, volumes, and rows per DataStore, table and data class
    (a purge, active-data retention, redaction); read-only. Row counts come from the databases; "~" marks the
    planner's estimate where counting took longer than 10 seconds."""
    from datetime import UTC, datetime

    from tenure.plan import parse_until, show

    console, cluster, shown = _reading(kubeconfig, context, output)
    now = datetime.now(UTC)
    try:
        moment = parse_until(until, now)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--until") from None
    show(console, cluster, moment, list(tenants or []), now, shown)


plugin = typer.Typer(
    name="kubectl tenure",
    help="kubectl tenure: where Tenure's tenants stand, and what it will delete (read-only).",
    no_args_is_help=True,
)
"""The kubectl plugin (the kubectl-tenure executable on PATH): ``kubectl tenure status|describe|plan|holds``."""
for command in (status, describe, plan, holds):
    app.command()(command)
    plugin.command()(command)


receipts = typer.Typer(help="PurgeReceipts: the signed, chained proof of each deletion (docs/records.md).")
app.add_typer(receipts, name="receipts")
_NAMESPACE = typer.Option(envvar="TENURE_NAMESPACE", help="Where ConfigMap tenure-receipt-keys is.")


@receipts.command("verify")
def receipts_verify(
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="`kubectl get purgereceipts -o json` output, not the cluster.")
    ] = None,
    keys: Annotated[
        Path | None, typer.Option(help="`kubectl -n tenure-system get configmap tenure-receipt-keys -o json` output.")
    ] = None,
    namespace: Annotated[str, _NAMESPACE] = "tenure-system",
) -> None:
    """Check every digest, signature and link; exit 1 naming the first receipt edited, removed or reordered."""
    from rich.console import Console

    from tenure.records import check, load_keys, load_receipts

    if check(Console(soft_wrap=True), load_receipts(file), load_keys(keys, namespace)):
        raise typer.Exit(1)


@receipts.command("show")
def receipts_show(
    tenant: Annotated[str, typer.Argument(help="The (long gone) Tenant's name.")],
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read receipts from this file.")] = None,
    keys: Annotated[
        Path | None, typer.Option(help="`kubectl -n tenure-system get configmap tenure-receipt-keys -o json` output.")
    ] = None,
    namespace: Annotated[str, _NAMESPACE] = "tenure-system",
) -> None:
    """A tenant's receipt(s), for people (table) or programs (json), each verified: one whose digest or signature
    does not hold is marked NOT verified (json: "verified": false and why), and the command exits 1."""
    import json

    from rich.console import Console

    from tenure.records import load_keys, load_receipts, of_tenant, show, unverified

    console = Console()
    found = of_tenant(load_receipts(file), tenant)
    if not found:
        console.print(f"no PurgeReceipt names tenant {tenant}")
        raise typer.Exit(1)
    try:
        published = load_keys(keys, namespace) if keys or file is None else None
    except Exception as error:  # shown, and every receipt is then marked as not verified
        console.print(f"cannot read the published keys: {error}")
        published = None
    problems = [unverified(receipt, published) for receipt in found]
    for receipt, problem in zip(found, problems, strict=True):
        if output == "json":
            print(
                json.dumps(
                    {**receipt, "verified": problem is None, **({"problem": problem} if problem else {})}, indent=2
                )
            )
        else:
            show(console, receipt, problem)
            if problem:
                console.print(
                    f"[red]NOT VERIFIED[/red]: PurgeReceipt {receipt['metadata']['name']} {problem}", soft_wrap=True
                )
    if any(problems):
        raise typer.Exit(1)


@app.command("export")
def export_tenant(
    tenant: Annotated[str, typer.Argument(help="The Active Tenant's name.")],
    store: Annotated[str, typer.Option("--store", help="The DataStore to export from.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The gzip JSON Lines file to write.")],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE and FILE.manifest.json if they exist.")] = False,
    namespace: Annotated[
        str, typer.Option(envvar="TENURE_NAMESPACE", help="The operator's namespace (Secret tenure-status-seal).")
    ] = "tenure-system",
) -> None:
    """An Active tenant's rows in a DataStore, as gzip JSON Lines and FILE.manifest.json; rows another tenant
    also claims are left out and named in the manifest. Both files appear only once complete."""
    import asyncio

    from rich.console import Console
    from rich.progress import Progress

    from tenure.export import Refused, columns, export, manifest_path

    console = Console(stderr=True, soft_wrap=True)
    done: list[bool] = []
    try:
        with Progress(*columns(), console=console, transient=True) as progress:
            manifest = asyncio.run(
                export(tenant, store, output, progress, force, namespace, published=lambda: done.append(True))
            )
    except Refused as error:
        console.print(f"export refused: {error}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        if done:  # the interruption came after both files were complete and in place
            console.print(f"export interrupted after it was complete: {output}, {manifest_path(output)}")
        else:
            console.print(f"export interrupted: nothing was written to {output}")
        raise typer.Exit(130) from None
    left = "".join(
        f"\n  left out {entry['rows']:,} rows of {entry['table']}: also claimed by {', '.join(entry['tenants'])}"
        for entry in manifest["leftOut"]
    )
    console.print(
        f"{manifest['rows']:,} rows from {len(manifest['tables'])} tables in {manifest['seconds']}s: "
        f"{output}, {manifest_path(output)}{left}"
    )


@app.command()
def crds(
    directory: Annotated[Path, typer.Argument(help="Where to write the CRD files.")] = Path("crds"),
) -> None:
    """Render the CRDs from the API models."""
    from tenure.api.crd import main

    main(str(directory))
