"""CLI calls racing on one fresh SQLite home (real processes, real SQLite): the
switch to WAL and the migrations happen once, and no call is told the database is
locked (two `hpcbox job submit` started together on a new home used to fail so)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

HPCBOX = str(Path(sys.executable).with_name("hpcbox"))


@pytest.mark.parametrize("round_", range(2))
def test_cli_calls_racing_on_a_fresh_home_all_succeed(tmp_path: Path, round_: int) -> None:
    home = tmp_path / f"home-{round_}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCBOX_")}
    env["HPCBOX_HOME"] = str(home)
    script = tmp_path / "job.sh"
    script.write_text("true\n")
    calls = [[HPCBOX, "job", "submit", "--cpus", "1", str(script)]] * 3 + [
        [HPCBOX, "job", "list", "--json"]
    ]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for argv in calls
    ]
    errors = []
    for proc in procs:
        assert proc.stderr is not None
        with proc.stderr:
            errors.append(proc.stderr.read().decode())
        proc.wait(timeout=60)
    assert [proc.returncode for proc in procs] == [0] * len(procs), errors
    with sqlite3.connect(home / "hpcbox.db") as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert con.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


def test_opening_the_store_again_keeps_this_process_connections_working(
    tmp_path: Path,
) -> None:
    """A second open_engine in a process whose first engine holds a connection must
    not drop that connection's locks (closing any other descriptor of the file
    would): else another process, closing the database as if last, removes the WAL
    and its shared memory under it, and what this process writes next is lost to
    every other process (in CI: "disk I/O error" in the cluster tests)."""
    from sqlalchemy import text

    from hpcbox.core.settings import Settings
    from hpcbox.infra.db import open_engine

    settings = Settings(home=tmp_path / "home")
    first = open_engine(settings)
    with first.begin() as conn:  # the pool keeps this connection open afterwards
        conn.execute(text("CREATE TABLE probe (x INTEGER)"))
    open_engine(settings)
    db = str(settings.home / "hpcbox.db")
    count = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "print(c.execute('SELECT count(*) FROM probe').fetchone()[0])\n"
        "c.close()\n"
    )

    def count_elsewhere() -> int:
        out = subprocess.run(
            [sys.executable, "-c", count, db], check=True, timeout=60, capture_output=True
        )
        return int(out.stdout)

    assert count_elsewhere() == 0
    with first.begin() as conn:
        conn.execute(text("INSERT INTO probe VALUES (1)"))
    assert count_elsewhere() == 1
    first.dispose()
