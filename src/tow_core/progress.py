"""Progress of long work (an import, an export, a backup, a migration of vectors) for whoever watches it.

The work reports; the caller decides what to show (the command line draws a bar on a terminal, nothing
otherwise). ``stage`` names the step in hand ("writing acme.json"), ``unit`` what is counted ("items",
"records", "bytes"); ``total`` is None while it is not known (the display then shows activity only).
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, stage: str, done: int, total: int | None, unit: str) -> None: ...


def no_progress(stage: str, done: int, total: int | None, unit: str) -> None:
    """For callers no one watches."""
