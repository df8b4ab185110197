"""``hpcbox judge``: judge a file locally, list languages, build the runtime."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from hpcbox.cli.output import RichReporter, console, err_console, print_error_detail, print_json
from hpcbox.core.errors import HpcboxError, InvalidInputError
from hpcbox.core.progress import Reporter, format_elapsed
from hpcbox.core.settings import Settings
from hpcbox.core.units import parse_memory
from hpcbox.judge.model import JudgeResult, Limits, Submission, TestCase

if TYPE_CHECKING:
    from hpcbox.judge.service import JudgeService

__all__ = ["judge_app"]

judge_app = typer.Typer(
    help="Judge untrusted code in sandboxes (see docs/judge.md).", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _service(pool_size: int = 0, progress: Reporter | None = None) -> JudgeService:
    # Imported here so that `hpcbox --help` stays instant.
    from hpcbox.judge.service import JudgeService

    return JudgeService(
        Settings.from_env(), pool_size=pool_size, progress=progress or RichReporter()
    )


class _LoggedReporter:
    """A Reporter that shows what ``shown`` shows and writes every line, the tools'
    raw output included, to ``log``."""

    def __init__(self, shown: Reporter, log: IO[str]) -> None:
        self._shown = shown
        self._log = log

    def _write(self, line: str) -> None:
        self._log.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        self._log.flush()

    def __call__(self, message: str) -> None:
        self._write(message)
        self._shown(message)

    @contextlib.contextmanager
    def step(self, title: str, *, waiting_for: str = "") -> Iterator[None]:
        self._write(f"step: {title}" + (f" (waiting for {waiting_for})" if waiting_for else ""))
        started = time.monotonic()
        try:
            with self._shown.step(title, waiting_for=waiting_for):
                yield
        except BaseException:
            self._write(f"failed: {title} after {format_elapsed(time.monotonic() - started)}")
            raise
        self._write(f"done: {title} in {format_elapsed(time.monotonic() - started)}")

    def waiting(self, what: str) -> None:
        self._write(f"waiting for {what}")
        self._shown.waiting(what)

    def output(self, line: str) -> None:
        self._write(line)
        self._shown.output(line)


def _read(path: Path | None, field: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}", field=field) from exc


def _result_json(result: JudgeResult) -> dict[str, object]:
    data = result.model_dump(mode="json")
    # bytes fields: text for people and scripts alike (undecodable bytes replaced).
    data["compile_output"] = result.compile_output.decode(errors="replace")
    for test, raw in zip(data["tests"], result.tests, strict=True):
        test["stdout"] = raw.stdout.decode(errors="replace")
        test["stderr"] = raw.stderr.decode(errors="replace")
    return data


@judge_app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="Source file to judge.")],
    lang: Annotated[str, typer.Option("--lang", help="Language key (hpcbox judge languages).")],
    stdin: Annotated[Path | None, typer.Option("--stdin", help="File given as stdin.")] = None,
    expected: Annotated[
        Path | None, typer.Option("--expected", help="Expected stdout (Judge0's comparison).")
    ] = None,
    time_limit: Annotated[
        float, typer.Option("--time-limit", help="CPU time limit in seconds.")
    ] = 5.0,
    memory_limit: Annotated[
        str, typer.Option("--memory-limit", help="Memory limit, e.g. 256M (bare number: MiB).")
    ] = "128000K",
    as_json: JsonOpt = False,
) -> None:
    """Compile (if needed) and run FILE in a fresh sandbox; exit 0 only if accepted."""
    try:
        memory = parse_memory(memory_limit)
    except ValueError as exc:
        raise InvalidInputError(str(exc), field="--memory-limit") from exc
    if not time_limit > 0:
        raise InvalidInputError("must be a number of seconds above 0", field="--time-limit")
    source = _read(file, "FILE") or b""
    limits = Limits(
        cpu_time_s=time_limit, wall_time_s=max(10.0, 2 * time_limit), memory_bytes=memory
    )
    test = TestCase(
        stdin=_read(stdin, "--stdin") or b"", expected_output=_read(expected, "--expected")
    )
    service = _service()
    try:
        result = service(Submission(language=lang, source=source, tests=(test,), limits=limits))
    finally:
        service.close()
    if as_json:
        print_json(_result_json(result))
    else:
        if result.compile_output:
            console.print(escape(result.compile_output.decode(errors="replace")), end="")
        for t in result.tests:
            console.print(escape(t.stdout.decode(errors="replace")), end="", highlight=False)
            err_console.print(escape(t.stderr.decode(errors="replace")), end="", highlight=False)
            console.print(
                f"verdict: {t.verdict.value}  cpu {t.cpu_time_s:.3f} s  wall {t.wall_time_s:.3f} s"
                f"  memory {t.peak_memory_bytes // 1024} KiB"
                + (f"  ({escape(t.message)})" if t.message else "")
            )
        if not result.tests:
            console.print(f"verdict: {result.verdict.value}  {escape(result.message)}")
    raise typer.Exit(0 if result.verdict.value == "accepted" else 1)


@judge_app.command("languages")
def languages(as_json: JsonOpt = False) -> None:
    """List the languages installed and working (each is checked once)."""
    service = _service(pool_size=0)
    try:
        langs = service.languages()
    finally:
        service.close()
    if as_json:
        print_json(
            [
                {
                    "key": lg.key,
                    "name": lg.name,
                    "judge0_id": lg.judge0_id,
                    "source_file": lg.source_file,
                }
                for lg in langs
            ]
        )
        return
    for lg in langs:
        judge0 = "" if lg.judge0_id is None else str(lg.judge0_id)
        console.print(f"{lg.key:<12} {judge0:>4}  {escape(lg.name)}", highlight=False)


@judge_app.command("setup")
def setup(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show debootstrap's raw output too.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Build the judge's runtime and check every language (else done on first use).

    As root, the runtime goes to /var/cache/hpcbox/judge (HPCBOX_JUDGE_CACHE: another
    directory); the first build takes a few minutes, later runs seconds. Every line,
    debootstrap's included, goes to $HPCBOX_HOME/logs/judge-setup.log; a failure
    names it. Exits 1 unless every language works.
    """
    settings = Settings.from_env()
    log_path = settings.home / "logs" / "judge-setup.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"--- hpcbox judge setup, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        reporter = _LoggedReporter(RichReporter(verbose=verbose), log)
        service = _service(pool_size=0, progress=reporter)
        try:
            langs = service.languages()
            rootfs = service.rootfs
        except HpcboxError as exc:
            reporter(f"judge setup failed: {exc}")
            print_error_detail(exc)
            err_console.print(f"full output: {escape(str(log_path))}", highlight=False)
            raise
        finally:
            service.close()
    took = time.monotonic() - started
    working = {lg.key for lg in langs}
    broken = sorted(set(service.language_keys()) - working)
    if as_json:
        print_json(
            {
                "rootfs": str(rootfs),
                "languages": sorted(working),
                "not_working": broken,
                "seconds": round(took, 1),
                "log": str(log_path),
            }
        )
    else:
        console.print(f"judge runtime: {escape(str(rootfs))}", highlight=False)
        for lg in langs:
            console.print(f"  [green]ok[/] {lg.key:<12} {escape(lg.name)}", highlight=False)
        for key in broken:
            console.print(f"  [red]not working[/] {key}", highlight=False)
        console.print(f"ready in {format_elapsed(took)}", highlight=False)
    if broken:
        err_console.print(
            f"error: languages not working: {', '.join(broken)} (see {escape(str(log_path))})",
            highlight=False,
        )
        raise typer.Exit(1)
