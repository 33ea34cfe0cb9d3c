"""preview.py on its own: when it may show anything, which viewer and protocol, the notices."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flux2_cli import preview
from flux2_cli.output import Output
from tests.helpers import png_bytes


class FakeTerminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_terminal_and_no_ci_is_the_only_case_that_shows() -> None:
    tty = Output(stderr=FakeTerminal())
    assert preview.terminal_problem(tty, env={}) is None
    assert preview.terminal_problem(tty, env={"CI": "true"}) == "CI is set"
    assert preview.terminal_problem(tty, env={"CI": "false"}) is None
    pipe = Output(stderr=io.StringIO())
    assert preview.terminal_problem(pipe, env={}) == "stderr is not a terminal"


def test_blocked_says_so_once_naming_what_was_asked() -> None:
    err = io.StringIO()
    output = Output(stderr=err)
    assert preview.blocked(output, open_viewer=False, preview=True, env={})
    assert err.getvalue() == "--preview: nothing shown (stderr is not a terminal).\n"
    ci = FakeTerminal()
    assert preview.blocked(Output(stderr=ci), open_viewer=True, preview=True, env={"CI": "1"})
    assert ci.getvalue() == "--open and --preview: nothing shown (CI is set).\n"
    shown = FakeTerminal()
    assert not preview.blocked(Output(stderr=shown), open_viewer=True, preview=False, env={})
    assert shown.getvalue() == ""


@pytest.mark.parametrize(
    ("platform", "program"), [("darwin", "open"), ("linux", "xdg-open"), ("freebsd14", "xdg-open")]
)
def test_the_viewer_command_per_platform(platform: str, program: str) -> None:
    assert preview.viewer_command("/tmp/a b.png", platform) == [program, "/tmp/a b.png"]


def test_a_missing_viewer_is_a_warning_not_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preview.shutil, "which", lambda name: None)
    err = io.StringIO()
    preview.open_in_viewer(Output(stderr=err), "x.png")
    assert "no system viewer found" in err.getvalue()


def test_the_viewer_runs_detached_with_no_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], dict[str, Any]]] = []
    monkeypatch.setattr(preview.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(preview.sys, "platform", "linux")
    monkeypatch.setattr(preview.subprocess, "Popen", lambda args, **kw: calls.append((args, kw)))
    preview.open_in_viewer(Output(stderr=io.StringIO()), "out/fox.png")
    assert calls[0][0] == ["/usr/bin/xdg-open", "out/fox.png"]
    assert calls[0][1]["start_new_session"] is True
    assert calls[0][1]["stdout"] is subprocess.DEVNULL


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TERM_PROGRAM": "iTerm.app"}, "iterm2"),
        ({"LC_TERMINAL": "iTerm2"}, "iterm2"),
        ({"TERM_PROGRAM": "WezTerm"}, "iterm2"),
        ({"TERM": "xterm-kitty"}, None),  # textual-image asks the terminal itself
        ({}, None),
    ],
)
def test_iterm2_is_known_by_its_environment(env: dict[str, str], expected: str | None) -> None:
    assert preview.protocol(env) == expected


def test_iterm2_inline_image_carries_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fox.png"
    data = png_bytes(8, 6)
    path.write_bytes(data)
    err = FakeTerminal()
    preview.draw(Output(stderr=err), [str(path)], env={"TERM_PROGRAM": "iTerm.app"})
    import base64

    text = err.getvalue()
    assert text.startswith(f"{path}\n\x1b]1337;File=name=")
    assert f"size={len(data)};" in text
    assert f"inline=1:{base64.b64encode(data).decode()}\x07" in text


def test_quiet_draws_nothing(tmp_path: Path) -> None:
    path = tmp_path / "fox.png"
    path.write_bytes(png_bytes())
    err = FakeTerminal()
    preview.show(
        Output(stderr=err, quiet=True),
        preview_paths=[str(path)],
        env={"TERM_PROGRAM": "iTerm.app"},
    )
    assert err.getvalue() == ""


def test_terminal_streams_are_restored(tmp_path: Path) -> None:
    import sys

    before = (sys.__stdout__, sys.__stdin__)
    with preview._terminal_on(FakeTerminal()):
        assert sys.__stdout__ is not before[0]
    assert (sys.__stdout__, sys.__stdin__) == before
