"""The ``hpcbox`` command line: a thin typer shell over :class:`hpcbox.jobs.engine.JobEngine`.

Errors are mapped once, in :func:`main`: every :class:`HpcboxError` prints one
line on stderr and exits with the error's ``exit_code`` (2 for bad input, 1 for
an unknown id or a refused operation).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from hpcbox import __version__
from hpcbox.cli.cluster import cluster_app, images_app
from hpcbox.cli.judge import judge_app
from hpcbox.cli.output import console, err_console, job_detail, job_table, print_json
from hpcbox.cli.target import target_app
from hpcbox.core.errors import HpcboxError, InvalidInputError
from hpcbox.core.extras import require as require_extra
from hpcbox.core.network import check_listen_address
from hpcbox.core.settings import Settings, reveal
from hpcbox.jobs.model.job import Job
from hpcbox.jobs.model.spec import parse_job_spec
from hpcbox.jobs.model.states import JobState

__all__ = ["app", "main"]

app = typer.Typer(
    name="hpcbox",
    help="HPC in a box: batch jobs, clusters and sandboxes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
job_app = typer.Typer(help="Submit, watch, cancel and rerun batch jobs.", no_args_is_help=True)
app.add_typer(job_app, name="job")
app.add_typer(cluster_app, name="cluster")
app.add_typer(images_app, name="images")
app.add_typer(target_app, name="target")
app.add_typer(judge_app, name="judge")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hpcbox {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """HPC in a box."""


def _engine() -> Any:
    # Imported here so that `hpcbox --version` and `--help` stay instant.
    from hpcbox.jobs.engine import JobEngine

    engine = JobEngine(Settings.from_env(), scheduling="agent")
    # Any job command may be the first after a scheduler died (even by SIGKILL):
    # make sure someone re-attaches to running jobs and starts queued ones.
    engine.ensure_scheduled()
    return engine


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"expected KEY=VALUE, got {pair!r}", field="--env")
        env[key] = value
    return env


def _emit(job: Job, as_json: bool, line: str) -> None:
    """A command's result: the job's JSON for scripts, else one line for people."""
    if as_json:
        print_json(job.to_json())
    else:
        typer.echo(line)


def _read_script(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}", field="SCRIPT") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path} is not UTF-8 text", field="SCRIPT") from exc


def _job_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidInputError(f"job ids are numbers, got {text!r}", field="ID") from None
    if value < 1:
        raise InvalidInputError(f"job ids are positive, got {text!r}", field="ID")
    return value


def _states(values: list[str]) -> set[JobState] | None:
    chosen: set[JobState] = set()
    for value in values:
        for item in value.split(","):
            try:
                chosen.add(JobState(item.strip().upper()))
            except ValueError:
                names = ", ".join(s.value for s in JobState)
                raise InvalidInputError(
                    f"unknown state {item!r}; one of {names}", field="--state"
                ) from None
    return chosen or None


@job_app.command("submit")
def job_submit(
    script: Annotated[str, typer.Argument(help="Batch script file, or - for stdin.")],
    name: Annotated[str | None, typer.Option("--name", "-J", help="Job name.")] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", "-c", help="CPUs per task.")] = None,
    ntasks: Annotated[int | None, typer.Option("--ntasks", "-n", help="Tasks.")] = None,
    mem: Annotated[str | None, typer.Option("--mem", help="Memory, e.g. 512M, 2G.")] = None,
    time_limit: Annotated[
        str | None, typer.Option("--time", "-t", help="Time limit: 90, 10m, 1:30:00, 2-00:00:00.")
    ] = None,
    partition: Annotated[str | None, typer.Option("--partition", "-p")] = None,
    workdir: Annotated[
        str | None, typer.Option("--workdir", "-D", help="Working directory (default: here).")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE, repeatable.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the job ends.")] = False,
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", "--target", help="Submit to this target (default: local)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue a batch script; print its job id (or its JSON with --json)."""
    resources: dict[str, Any] = {}
    if cpus is not None:
        resources["cpus_per_task"] = cpus
    if ntasks is not None:
        resources["ntasks"] = ntasks
    if mem is not None:
        resources["memory"] = mem
    if time_limit is not None:
        resources["time_limit"] = time_limit
    if partition is not None:
        resources["partition"] = partition
    spec = parse_job_spec(
        {
            "name": name or (Path(script).name if script != "-" else None),
            "script": _read_script(script),
            "resources": resources,
            # Local jobs start where you submit from, as with SLURM; on a target the
            # default is your home there (this machine's directory may not exist).
            "workdir": str(Path(workdir).absolute())
            if workdir
            else (None if cluster else os.getcwd()),
            "env": _parse_env(env or []),
        }
    )
    engine = _engine()
    job = engine.submit(spec, target=cluster)
    if wait:
        job = engine.wait(job.id)
    _emit(job, as_json, str(job.id) if not wait else f"{job.id} {job.state.value}")
    if wait and job.state is not JobState.COMPLETED:
        raise typer.Exit(1)


@job_app.command("list")
def job_list(
    state: Annotated[
        list[str] | None, typer.Option("--state", "-s", help="Only these states (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 100,
    before: Annotated[
        int | None, typer.Option("--before", help="Only jobs with a smaller id (next page).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first, a page at a time."""
    jobs = _engine().list_jobs(states=_states(state or []), limit=limit, before=before)
    if as_json:
        print_json([job.to_json() for job in jobs])
    elif jobs:
        console.print(job_table(jobs))
    else:
        err_console.print("no jobs")


@job_app.command("show")
def job_show(id: Annotated[str, typer.Argument(help="Job id.")], as_json: JsonOpt = False) -> None:
    """Show one job, with its attempts."""
    job = _engine().get(_job_id(id))
    if as_json:
        print_json(job.to_json())
    else:
        console.print(job_detail(job))


@job_app.command("logs")
def job_logs(
    id: Annotated[str, typer.Argument(help="Job id.")],
    stderr: Annotated[bool, typer.Option("--stderr", help="Show stderr, not stdout.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
    ] = False,
    attempt: Annotated[int | None, typer.Option("--attempt", help="An earlier attempt.")] = None,
    offset: Annotated[int, typer.Option("--offset", help="Start at this byte.")] = 0,
) -> None:
    """Print a job's output (readable while it runs)."""
    engine = _engine()
    job_id = _job_id(id)
    stream = "stderr" if stderr else "stdout"
    out = sys.stdout.buffer
    while True:
        chunk = engine.logs(job_id, stream=stream, offset=offset, attempt=attempt)
        if chunk.data:
            out.write(chunk.data)
            out.flush()
        offset = chunk.next_offset
        if chunk.eof or (not follow and not chunk.data):
            return
        if not chunk.data:
            time.sleep(0.2)


@job_app.command("cancel")
def job_cancel(
    id: Annotated[str, typer.Argument(help="Job id.")], as_json: JsonOpt = False
) -> None:
    """Cancel a queued or running job (its whole process tree)."""
    job = _engine().cancel(_job_id(id))
    _emit(job, as_json, f"{job.id} {job.state.value}")


@job_app.command("rerun")
def job_rerun(
    id: Annotated[str, typer.Argument(help="Job id.")],
    script: Annotated[
        str | None, typer.Option("--script", help="Run this edited script instead.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a finished job again as a new attempt (history is kept)."""
    text = _read_script(script) if script else None
    job = _engine().rerun(_job_id(id), script=text)
    _emit(job, as_json, f"{job.id} attempt {job.current.number} {job.state.value}")


@job_app.command("wait")
def job_wait(
    id: Annotated[str, typer.Argument(help="Job id.")],
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Give up after this many seconds.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait for a job to end; exit 0 only when it COMPLETED."""
    job = _engine().wait(_job_id(id), timeout=timeout)
    _emit(job, as_json, f"{job.id} {job.state.value}")
    if job.state is not JobState.COMPLETED:
        raise typer.Exit(1)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
) -> None:
    """Run the REST API (and the local scheduler) until interrupted."""
    import uvicorn

    check_listen_address(host, reveal(Settings.from_env().api.token))
    # By import path, so that this shell does not import the API shell.
    uvicorn.run(
        "hpcbox.api.server:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
    )


@app.command("worker")
def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", help="Judging threads.")
    ] = None,
) -> None:
    """Run a Celery worker that judges submissions (needs HPCBOX_BROKER_URL)."""
    if Settings.from_env().judge.broker_url is None:
        raise InvalidInputError(
            "set HPCBOX_BROKER_URL (redis://HOST:6379/0 or amqp://...) to the broker "
            "`hpcbox serve` uses",
            field="HPCBOX_BROKER_URL",
        )
    require_extra("worker", "hpcbox worker")
    argv = [sys.executable, "-m", "hpcbox.worker"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    # By module name, so that this shell does not import the worker shell.
    os.execv(sys.executable, argv)  # noqa: S606 - a fixed argv, no user strings


@app.command("operator")
def operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Namespace to watch (repeatable)."),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Watch every namespace.")
    ] = False,
    liveness: Annotated[
        str | None,
        typer.Option("--liveness", help="Liveness endpoint, e.g. http://0.0.0.0:8080/healthz."),
    ] = None,
    log_image: Annotated[
        str | None, typer.Option("--log-image", help="Image of the Pods that print job output.")
    ] = None,
) -> None:
    """Run the SlurmJob Kubernetes operator (kopf) until interrupted."""
    if bool(namespace) == all_namespaces:
        raise InvalidInputError(
            "give --namespace NS (repeatable) or --all-namespaces", field="--namespace"
        )
    require_extra("operator", "hpcbox operator")
    argv = [sys.executable, "-m", "hpcbox.operator"]
    argv += (
        ["--all-namespaces"] if all_namespaces else [f"--namespace={ns}" for ns in namespace or []]
    )
    if liveness:
        argv.append(f"--liveness={liveness}")
    if log_image:
        argv.append(f"--log-image={log_image}")
    # By module name, so that this shell does not import the operator shell.
    os.execv(sys.executable, argv)  # noqa: S606 - argv list, never a shell line


@app.command("doctor")
def doctor(
    as_json: JsonOpt = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Exit 1 also when a SLURM cluster on containers (the main job) cannot run.",
        ),
    ] = False,
    containers: Annotated[
        bool,
        typer.Option(
            "--containers/--no-containers",
            help="Run the container checks (a few seconds: two real containers).",
        ),
    ] = True,
) -> None:
    """Check for real what each pillar needs on this machine, with the fix for each "no".

    Exits 1 when something local jobs need is missing; with --strict, also when
    something a SLURM cluster on containers needs is missing.
    """
    from hpcbox.cli.doctor import exit_status, run_checks

    checks = run_checks(Settings.from_env(), containers=containers)
    if as_json:
        print_json([check.to_json() for check in checks])
    else:
        for check in checks:
            mark = "[green]ok[/]" if check.ok else "[red]no[/]"
            pillars = ",".join(check.pillars) + (", optional" if check.optional else "")
            console.print(
                f"{mark}  [bold]{escape(check.name)}[/] [dim]({escape(pillars)})[/]: "
                f"{escape(check.detail)}",
                highlight=False,
                soft_wrap=True,
            )
            if not check.ok and check.fix:
                console.print(
                    f"    [yellow]fix: {escape(check.fix)}[/]", highlight=False, soft_wrap=True
                )
        missing = [check.name for check in checks if check.main_job and not check.ok]
        verdict = (
            "[green]ready[/]"
            if not missing
            else "[red]not ready[/] (" + escape(", ".join(missing)) + ")"
        )
        console.print(
            f"a SLURM cluster on containers with MPI: {verdict}", highlight=False, soft_wrap=True
        )
    code = exit_status(checks, strict=strict)
    if code:
        raise typer.Exit(code)


@app.command("agent", hidden=True)
def agent() -> None:
    """Schedule local jobs in the foreground until idle (normally started for you)."""
    from hpcbox.jobs.backends.local.agent import run_agent

    raise typer.Exit(run_agent(Settings.from_env()))


def main() -> None:
    """Entry point: run the app, mapping errors to one line and an exit code.

    hpcbox's own errors exit with their ``exit_code`` (2 for bad input); usage
    errors found by the command-line parser exit 2 as well, with its message.
    """
    try:
        code = app(standalone_mode=False)
    except HpcboxError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _fail("aborted", 130)
    except typer.TyperException as exc:  # the parser's usage errors
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":
            # `hpcbox` or `hpcbox job` alone: the help, not an error.
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                typer.echo(ctx.get_help())
            sys.exit(0)
        _fail(message, int(getattr(exc, "exit_code", 2)))
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    # One line, whatever the message holds (a hostile job name, say).
    flat = escape(message.replace("\r", "\\r").replace("\n", "\\n"))
    err_console.print(f"[red]error:[/] {flat}", soft_wrap=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
