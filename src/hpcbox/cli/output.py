"""How the CLI prints: JSON for scripts, rich tables for people, one-line errors,
and the progress of long steps (:class:`RichReporter`)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from hpcbox.core.errors import HpcboxError
from hpcbox.core.progress import format_elapsed
from hpcbox.core.units import format_duration, format_memory
from hpcbox.jobs.model.job import Job

__all__ = [
    "RichReporter",
    "console",
    "err_console",
    "job_detail",
    "job_table",
    "print_error_detail",
    "print_json",
]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_STATE_STYLE = {
    "COMPLETED": "green",
    "RUNNING": "cyan",
    "PENDING": "yellow",
    "NEW": "yellow",
    "CANCELLED": "magenta",
}


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, never wrapped or coloured."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def _clip(text: str, width: int = 40) -> str:
    flat = text.replace("\n", "\\n")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def job_table(jobs: list[Job]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("ID", "NAME", "STATE", "REASON", "TARGET", "SUBMITTED", "EXIT"):
        table.add_column(column)
    for job in jobs:
        cur = job.current
        state = cur.state.value
        table.add_row(
            str(job.id),
            _clip(job.name),
            f"[{_STATE_STYLE.get(state, 'red')}]{state}[/]",
            _clip(cur.reason or "", 30),
            job.target,
            cur.submitted_at.strftime("%Y-%m-%d %H:%M:%S"),
            "" if cur.exit_code is None else str(cur.exit_code),
        )
    return table


def job_detail(job: Job) -> Table:
    cur = job.current
    res = cur.spec.resources
    rows: list[tuple[str, str]] = [
        ("id", str(job.id)),
        ("name", _clip(job.name, 80)),
        ("state", cur.state.value),
        ("native state", cur.native_state or ""),
        ("reason", cur.reason or ""),
        ("backend / target", f"{job.backend} / {job.target}"),
        ("native id", cur.native_id or ""),
        ("attempt", f"{cur.number} of {len(job.attempts)}"),
        ("cpus", str(res.cpus)),
        ("memory", format_memory(res.memory) if res.memory else "unlimited"),
        ("time limit", format_duration(res.time_limit) if res.time_limit else "unlimited"),
        ("exit code", "" if cur.exit_code is None else str(cur.exit_code)),
        ("signal", "" if cur.signal is None else str(cur.signal)),
        ("cpu time", "" if cur.cpu_time is None else f"{cur.cpu_time:.3f} s"),
        ("peak memory", "" if cur.peak_memory is None else format_memory(cur.peak_memory)),
        ("submitted", str(cur.submitted_at)),
        ("started", str(cur.started_at or "")),
        ("finished", str(cur.finished_at or "")),
        ("run dir", cur.run_dir or ""),
    ]
    table = Table(box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


class RichReporter:
    """A :class:`~hpcbox.core.progress.Reporter` on stderr, for long steps.

    On a terminal each running step is a live line: a spinner, the step, its
    elapsed time and what it waits for now; when it ends, one line says how it
    went and how long it took. Elsewhere (a log, a pipe) the same events are
    plain lines. Raw tool output is shown (dimmed) only with ``verbose``.
    Also a plain ``progress(line)`` callable, for code that takes one.
    """

    def __init__(self, out: Console | None = None, *, verbose: bool = False) -> None:
        self._console = out or err_console
        self._verbose = verbose
        self._progress: Progress | None = None
        self._tasks: list[TaskID] = []

    def __call__(self, message: str) -> None:
        self._console.print(f"[cyan]>[/] {escape(message)}", highlight=False, soft_wrap=True)

    @contextlib.contextmanager
    def step(self, title: str, *, waiting_for: str = "") -> Iterator[None]:
        started = time.monotonic()
        task: TaskID | None = None
        if self._console.is_terminal:
            task = self._start(title, waiting_for)
        else:
            self(f"{title}: waiting for {waiting_for}" if waiting_for else title)
        try:
            yield
        except BaseException:
            self._finish(task)
            took = format_elapsed(time.monotonic() - started)
            self._console.print(
                f"[red]✗[/] {escape(title)}: failed after {took}", highlight=False, soft_wrap=True
            )
            raise
        self._finish(task)
        took = format_elapsed(time.monotonic() - started)
        self._console.print(
            f"[green]✓[/] {escape(title)}: done in {took}", highlight=False, soft_wrap=True
        )

    def waiting(self, what: str) -> None:
        if self._progress is not None and self._tasks:
            self._progress.update(self._tasks[-1], waiting=what)
        elif not self._console.is_terminal and not self._verbose:
            # (Verbose output shows the raw line this came from already.)
            self._console.print(f"    {escape(what)}", highlight=False, soft_wrap=True)

    def output(self, line: str) -> None:
        if self._verbose:
            self._console.print(line, style="dim", markup=False, highlight=False, soft_wrap=True)

    def _start(self, title: str, waiting_for: str) -> TaskID:
        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),
                TimeElapsedColumn(),
                TextColumn(
                    "{task.fields[waiting]}",
                    style="dim",
                    markup=False,
                    table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
                ),
                console=self._console,
                transient=True,
                expand=True,
            )
            self._progress.start()
        task = self._progress.add_task(title, total=None, waiting=waiting_for)
        self._tasks.append(task)
        return task

    def _finish(self, task: TaskID | None) -> None:
        progress = self._progress
        if progress is None or task is None:
            return
        progress.remove_task(task)
        if task in self._tasks:
            self._tasks.remove(task)
        if not self._tasks:
            progress.stop()
            self._progress = None


def print_error_detail(exc: HpcboxError, out: Console | None = None) -> None:
    """Show the lines after an error's first (a tool's last output) dimmed, and keep
    only the first line in the error, for the one-line message the CLI ends with."""
    first, _, rest = exc.message.partition("\n")
    if rest.strip():
        (out or err_console).print(rest, style="dim", markup=False, highlight=False)
        exc.message = first
