"""hpcbox's version: one literal, read by the build (pyproject) and re-exported by
``hpcbox``; importing it pulls in nothing else."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
