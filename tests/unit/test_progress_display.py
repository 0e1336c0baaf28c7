"""The command line's progress display: bars with counts and ETA on an interactive terminal, nothing at all
otherwise (logs, pipes and tests see only the result lines)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tow_http.progress import ProgressDisplay


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, force_interactive=True, width=120, color_system=None), out


def test_on_a_terminal_each_stage_shows_its_counts_and_an_eta():
    console, out = terminal()
    with ProgressDisplay(console) as progress:
        assert progress.shown
        progress("checking the file", 0, 2_000_000, "bytes")
        progress("checking the file", 2_000_000, 2_000_000, "bytes")
        for done in (0, 1_500, 3_000):
            progress("importing", done, 3_000, "items")
        progress("restoring the database", 0, None, "")
    shown = out.getvalue()
    assert "checking the file" in shown and "2.0 MB/2.0 MB" in shown
    assert "importing" in shown and "3,000/3,000 items" in shown
    assert "ETA" in shown and "restoring the database" in shown


def test_a_stage_that_failed_is_left_as_it_was():
    console, out = terminal()
    with pytest.raises(RuntimeError), ProgressDisplay(console) as progress:
        progress("writing", 12, None, "items")
        raise RuntimeError("disk full")
    assert "12/? items" in out.getvalue().splitlines()[-2]


def test_not_on_a_terminal_nothing_is_printed(capsys):
    with ProgressDisplay() as progress:  # stderr is pytest's capture here: not a terminal
        assert not progress.shown
        for done in range(0, 101, 10):
            progress("re-embedding", done, 100, "records")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")
