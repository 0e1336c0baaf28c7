"""The command line's one progress display (SPEC §12): a bar with counts, elapsed time and ETA on stderr.

Drawn with rich (already installed with Litestar's command line, and kept up by its authors) only when
stderr is an interactive terminal, as rich decides it (``TTY_COMPATIBLE``/``TTY_INTERACTIVE`` override
that); otherwise it prints nothing at all, so logs, pipes and tests see only the command's result lines
on stdout. Each stage (``tow_core.progress.Progress``) gets its own line; a stage ends when the next
begins, or when the display closes.
"""

from __future__ import annotations

from types import TracebackType

from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Counts(ProgressColumn):
    """``1,234/5,000 records`` (sizes for bytes); ``?`` while the total is not known."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "")
        if not unit:
            return Text("")
        if unit == "bytes":
            done = filesize.decimal(int(task.completed))
            total = "?" if task.total is None else filesize.decimal(int(task.total))
            return Text(f"{done}/{total}")
        total = "?" if task.total is None else f"{int(task.total):,}"
        return Text(f"{int(task.completed):,}/{total} {unit}")


class ProgressDisplay:
    """A ``tow_core.progress.Progress`` that draws; use as a context manager around the work."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.shown = self.console.is_interactive
        self._bars = Progress(
            SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"), BarColumn(), _Counts(),
            TextColumn("[progress.percentage]{task.percentage:>3.0f}%"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=self.console, disable=not self.shown,
        )
        self._stages: dict[str, TaskID] = {}
        self._current: TaskID | None = None

    def __enter__(self) -> ProgressDisplay:
        self._bars.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self._finish_current()
        self._bars.stop()

    def __call__(self, stage: str, done: int, total: int | None, unit: str) -> None:
        task = self._stages.get(stage)
        if task is None:
            self._finish_current()
            task = self._stages[stage] = self._bars.add_task(stage, total=total, unit=unit)
            self._current = task
        self._bars.update(task, completed=done, total=total)

    def _finish_current(self) -> None:
        if self._current is not None:
            task = self._bars.tasks[self._current]
            total = max(task.completed, 1) if task.total is None else task.total  # an unknown total: done now
            self._bars.update(self._current, total=total, completed=total)
            self._current = None
