#!/usr/bin/env python3
"""Benchmark a ``jupyter`` cluster: an ASCII Mandelbrot spread over ipyparallel engines
with ``map_sync``, on 1, 2 and 4 engines, against the serial version in the same run.

The picture: real axis from -2.0 to 1.0 over ``width`` columns; imaginary axis
centred on 0, of height (1.0 - -2.0) * (height / width) * 2, over ``height``
rows. For each point c, walk the characters of `` .,-:;i+hM$*#0 `` in order
starting from z = c: stop at the first character for which |z| > 2, else set
z = z*z + c and go on; the point's character is the one where the walk stopped
(the last one if z never escapes).

Rows are split into tasks (``--tasks-per-engine`` per engine, rows dealt out
round-robin so that every task gets a share of the costly middle rows) and
spread with ``view.map_sync``. The serial version renders the same rows in one
process on the front end; every parallel picture is checked equal to it.
Each figure is the best of ``--repeat`` runs.

The cluster (``jbench``: one engine per worker, 4 workers, each limited to one
CPU) is brought up here and taken down at the end. Needs podman (or Docker).

Usage: .venv/bin/python bench/jupyter.py [--sizes 160x80 320x160 640x320 1280x640]
       [--repeat 3] [--json] [--plot docs/jupyter-mandelbrot.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

CHARS = " .,-:;i+hM$*#0 "
ENGINE_COUNTS = (1, 2, 4)


def render_rows(task: tuple[int, int, tuple[int, ...]], chars: str = CHARS) -> list[str]:
    """The picture's rows ``task[2]`` of a ``task[0]`` x ``task[1]`` image.

    Self-contained (no module globals), so ipyparallel can ship it to engines.
    """
    width, height, rows = task
    span_x = 1.0 - -2.0
    span_y = span_x * (height / width) * 2
    out = []
    for row in rows:
        y = -span_y / 2 + span_y * row / height
        line = []
        for col in range(width):
            c = complex(-2.0 + span_x * col / width, y)
            z = c
            stop = chars[-1]  # z never escaped
            for candidate in chars:
                if abs(z) > 2:
                    stop = candidate
                    break
                z = z * z + c
            line.append(stop)
        out.append("".join(line))
    return out


def serial(width: int, height: int) -> list[str]:
    return render_rows((width, height, tuple(range(height))))


def tasks(width: int, height: int, count: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """``count`` tasks dealing the rows out round-robin."""
    return [(width, height, tuple(range(i, height, count))) for i in range(count)]


def assemble(
    height: int, parts: list[list[str]], work: list[tuple[int, int, tuple[int, ...]]]
) -> list[str]:
    picture = [""] * height
    for (_, _, rows), lines in zip(work, parts, strict=True):
        for row, line in zip(rows, lines, strict=True):
            picture[row] = line
    return picture


def inside(
    sizes: list[tuple[int, int]], repeat: int, tasks_per_engine: int, client: str
) -> dict[str, Any]:
    """Run on the front end: the serial and parallel timings, as JSON-able data."""
    import ipyparallel

    rc = ipyparallel.Client(client, timeout=60)
    engines = sorted(rc.ids)
    results: list[dict[str, Any]] = []
    for width, height in sizes:
        reference = serial(width, height)
        best_serial = min(_timed(lambda w=width, h=height: serial(w, h)) for _ in range(repeat))
        entry: dict[str, Any] = {
            "width": width,
            "height": height,
            "serial_s": best_serial,
            "parallel": [],
        }
        for count in ENGINE_COUNTS:
            if count > len(engines):
                continue
            view = rc[engines[:count]]
            work = tasks(width, height, count * tasks_per_engine)
            picture = assemble(height, view.map_sync(render_rows, work), work)
            if picture != reference:
                raise SystemExit(f"{width}x{height} on {count} engines differs from serial")
            best = min(
                _timed(lambda v=view, w=work: v.map_sync(render_rows, w)) for _ in range(repeat)
            )
            entry["parallel"].append(
                {
                    "engines": count,
                    "seconds": best,
                    "speedup": best_serial / best,
                    "efficiency": best_serial / best / count,
                }
            )
        results.append(entry)
    rc.close()
    return {"engines_available": len(engines), "results": results, "sample": serial(80, 40)}


def _timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _sizes(values: list[str]) -> list[tuple[int, int]]:
    out = []
    for value in values:
        width, _, height = value.partition("x")
        out.append((int(width), int(height)))
    return out


def host(args: argparse.Namespace) -> dict[str, Any]:
    """Bring the cluster up, run :func:`inside` on its front end, take it down."""
    import os

    from hpcbox.clusters.jupyter import HUB_PYTHON
    from hpcbox.clusters.manager import ClusterManager
    from hpcbox.clusters.render.jupyter import CLIENT_FILE
    from hpcbox.clusters.spec import parse_cluster_spec
    from hpcbox.clusters.store import ClusterStore
    from hpcbox.core.settings import Settings
    from hpcbox.infra.db import open_engine
    from hpcbox.infra.runtimes import FileEntry

    settings = Settings.from_env()
    ca = "/etc/ssl/certs/ca-certificates.crt"
    manager = ClusterManager(
        settings,
        store=ClusterStore(open_engine(settings)),
        progress=lambda m: print(f"> {m}", file=sys.stderr),
        host_ca=ca if os.path.isfile(ca) else None,
    )
    spec = parse_cluster_spec(
        {"name": "jbench", "kind": "jupyter", "workers": {"count": max(ENGINE_COUNTS), "cpus": 1}}
    )
    if any(r.name == spec.name for r in manager.list_clusters()):
        manager.down(spec.name, purge=True)
    started = time.monotonic()
    manager.up(spec)
    up_s = time.monotonic() - started
    try:
        manager.runtime().put_files(
            "hpcbox-jbench-hub", [FileEntry("/tmp/bench_jupyter.py", Path(__file__).read_bytes())]
        )
        argv = [HUB_PYTHON, "/tmp/bench_jupyter.py", "--inside", "--client", CLIENT_FILE]
        argv += ["--repeat", str(args.repeat), "--tasks-per-engine", str(args.tasks_per_engine)]
        argv += ["--sizes", *args.sizes]
        result = manager.exec(spec.name, argv, user="ipyparallel")
        if result.exit_code != 0:
            raise SystemExit(result.stderr.decode(errors="replace"))
        data: dict[str, Any] = json.loads(result.stdout.decode().splitlines()[-1])
    finally:
        manager.down(spec.name, purge=True)
    data["cluster_up_s"] = up_s
    data["host_cpus"] = os.cpu_count()
    return data


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for entry in data["results"]:
        label = f"{entry['width']}x{entry['height']}"
        counts = [p["engines"] for p in entry["parallel"]]
        left.plot(counts, [p["speedup"] for p in entry["parallel"]], marker="o", label=label)
        right.plot(counts, [p["efficiency"] for p in entry["parallel"]], marker="o", label=label)
    left.plot(ENGINE_COUNTS, ENGINE_COUNTS, linestyle=":", color="grey", label="ideal")
    left.axhline(data["host_cpus"], linestyle="--", color="red", label="host CPUs")
    left.set(xlabel="engines", ylabel="speedup vs serial", xticks=ENGINE_COUNTS)
    right.set(xlabel="engines", ylabel="efficiency (speedup / engines)", xticks=ENGINE_COUNTS)
    right.set_ylim(0, 1.1)
    left.legend(fontsize="small")
    fig.suptitle(f"ASCII Mandelbrot with ipyparallel map_sync ({data['host_cpus']}-CPU host)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def table(data: dict[str, Any]) -> str:
    lines = [
        "| image | serial | engines | parallel | speedup | efficiency |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for entry in data["results"]:
        for p in entry["parallel"]:
            lines.append(
                f"| {entry['width']}x{entry['height']} | {entry['serial_s']:.3f} s "
                f"| {p['engines']} | {p['seconds']:.3f} s | {p['speedup']:.2f} "
                f"| {p['efficiency']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["160x80", "320x160", "640x320", "1280x640"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tasks-per-engine", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        sizes = _sizes(args.sizes)
        print(json.dumps(inside(sizes, args.repeat, args.tasks_per_engine, args.client)))
        return
    data = host(args)
    if args.plot is not None:
        plot(data, args.plot)
    if args.json:
        print(json.dumps(data, indent=2))
        return
    print("\n".join(data["sample"]))
    print(f"cluster up: {data['cluster_up_s']:.1f} s; host CPUs: {data['host_cpus']}")
    print(table(data))


if __name__ == "__main__":
    main()
