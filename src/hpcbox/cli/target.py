"""``hpcbox target``: SLURM clusters reached over SSH, as targets for jobs."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from hpcbox.cli.output import console, print_json
from hpcbox.core.settings import Settings

__all__ = ["target_app"]

target_app = typer.Typer(help="SLURM clusters reached over SSH.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _service() -> Any:
    from hpcbox.infra.db import open_engine
    from hpcbox.jobs.target_store import TargetStore
    from hpcbox.jobs.targets import TargetService

    return TargetService(TargetStore(open_engine(Settings.from_env())))


@target_app.command("add")
def add(
    name: str,
    url: Annotated[str, typer.Argument(help="ssh://USER@HOST[:PORT]")],
    key: Annotated[str | None, typer.Option("--key", help="Private key file.")] = None,
    known_hosts: Annotated[
        str | None, typer.Option("--known-hosts", help="known_hosts file to verify with.")
    ] = None,
    host_key: Annotated[
        str | None, typer.Option("--host-key", help="Expected host key line (pins it).")
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            "--rate-limit",
            help="SLURM commands per second hpcbox may send (0: no limit; default: "
            "HPCBOX_SLURM_RATE_LIMIT, 2).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a target. Passwords are never stored (HPCBOX_SSH_PASSWORD at run time)."""
    target = _service().add(
        name, url, key_path=key, known_hosts=known_hosts, host_key=host_key, rate_limit=rate_limit
    )
    if as_json:
        print_json(target.to_json())
    else:
        console.print(f"target {target.name} -> {target.url}")


@target_app.command("list")
def list_targets(as_json: JsonOpt = False) -> None:
    """List targets."""
    targets = _service().list_targets()
    if as_json:
        print_json([t.to_json() for t in targets])
        return
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "URL", "KEY", "CLUSTER"):
        table.add_column(column)
    for t in targets:
        table.add_row(t.name, t.url, t.key_path or "(agent)", t.cluster or "")
    console.print(table)


@target_app.command("check")
def check(name: str, as_json: JsonOpt = False) -> None:
    """Connect; find sbatch, squeue, sacct and scancel; see whether accounting answers."""
    from hpcbox.infra.db import open_engine
    from hpcbox.jobs.backends.slurm.watcher import RemoteJobs
    from hpcbox.jobs.store import JobStore
    from hpcbox.jobs.target_store import TargetStore

    engine = open_engine(Settings.from_env())
    remote = RemoteJobs(JobStore(engine), TargetStore(engine))
    try:
        report = remote.check(name)
    finally:
        remote.close()
    if as_json:
        print_json(report)
    else:
        console.print(f"target {name}: reachable, home {report['home']}")
        for tool, path in report["commands"].items():
            console.print(f"  {tool}: {path or '[red]not found[/]'}")
        accounting = report["accounting"]
        console.print(f"  accounting: {'yes' if accounting else 'no'}")
    if not report["ok"]:
        raise typer.Exit(1)


@target_app.command("remove")
def remove(name: str) -> None:
    """Forget a target (jobs already submitted keep their history)."""
    _service().remove(name)
    console.print(f"target {name} removed")
