"""A first contact that informs: no third-party warnings on the commands a new user
types first, and the optional parts name the extra that brings them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

FIRST_COMMANDS = [
    ["--version"],
    ["--help"],
    ["job", "list", "--json"],
    ["target", "list", "--json"],
    ["cluster", "list", "--json"],
    ["cluster", "render", "--help"],
    ["judge", "--help"],
]


@pytest.mark.parametrize("argv", FIRST_COMMANDS, ids=" ".join)
def test_no_warning_reaches_the_user(argv: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPCBOX_", "PYTHONWARN"))}
    env["HPCBOX_HOME"] = str(tmp_path / "home")
    # Python's default filters, as a user's shell has them: UserWarning subclasses
    # such as CryptographyDeprecationWarning are shown, DeprecationWarning in
    # third-party modules is not.
    proc = subprocess.run(
        [sys.executable, "-m", "hpcbox.cli.main", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    assert "Warning" not in proc.stdout, proc.stdout
