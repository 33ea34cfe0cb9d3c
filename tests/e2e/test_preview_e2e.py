"""``--preview`` and ``--open`` as a person sees them: flux2 in a pseudo-terminal.

Each test runs the installed ``flux2`` with stderr on a pseudo-terminal (the test plays the
terminal, answering its queries when told to) and stdout on a pipe, against the embedded sandbox.
``--open`` runs a fake ``xdg-open`` (``open`` on macOS) placed first on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import FLUX2_BIN, RUN_TIMEOUT

pytestmark = pytest.mark.skipif(os.name == "nt", reason="pseudo-terminals are POSIX")

HALF_BLOCK = "▀".encode()
SIXEL_START = b"\x1bP"
ITERM2_START = b"\x1b]1337;File="
DA1_QUERY = b"\x1b[c"
DA1_WITH_SIXEL = b"\x1b[?62;4;22c"
KITTY_QUERY = re.compile(rb"\x1b_Gi=(\d+),[^;]*a=q")
KITTY_IMAGE = re.compile(rb"\x1b_Gi=\d+,m=\d,f=100")
COLOUR = re.compile(rb"\x1b\[(?:3[0-7]|9[0-7]|38;[25];)[0-9;]*m")


@dataclass
class TerminalRun:
    """What a run shows: the terminal's bytes (stderr) and the results on stdout."""

    code: int
    stdout: str
    screen: bytes


def run_in_terminal(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    answer_da1: bool = False,
    answer_kitty: bool = False,
) -> TerminalRun:
    """Run flux2 with stderr on a pty of 40×100 cells; answer the sixel query (DA1) or the
    kitty graphics query as such a terminal would, if told to."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    if not FLUX2_BIN.exists():
        pytest.skip(f"the flux2 command is not installed at {FLUX2_BIN}")
    environment = {**os.environ, "TERM": "xterm-256color", **(env or {})}
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 1000, 800))
    process = subprocess.Popen(
        [str(FLUX2_BIN), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=tmp_path,
        env=environment,
        start_new_session=True,
    )
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal (EIO on Linux)
                break
            if not chunk:
                break
            if answer_da1 and DA1_QUERY in chunk:
                os.write(master, DA1_WITH_SIXEL)
            if answer_kitty and KITTY_QUERY.search(chunk):
                match = KITTY_QUERY.search(chunk)
                assert match is not None
                os.write(master, b"\x1b_Gi=" + match.group(1) + b";OK\x1b\\")
            screen += chunk
        assert process.stdout is not None
        stdout = process.stdout.read().decode()
        code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return TerminalRun(code=code, stdout=stdout, screen=screen)


def gen_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["gen", "a red fox", "--provider", "sandbox", "-o", f"{tmp_path / 'out'}/", *extra]


def test_preview_draws_half_blocks_on_a_plain_terminal(tmp_path: Path) -> None:
    run = run_in_terminal(tmp_path, *gen_args(tmp_path, "--preview"))
    assert run.code == 0, run.screen[-800:]
    saved = run.stdout.strip()
    assert Path(saved).is_file()
    assert run.stdout == saved + "\n"  # stdout: the path only, no picture bytes
    assert run.screen.count(HALF_BLOCK) >= 100
    assert COLOUR.search(run.screen)  # coloured (16, 256 or 24-bit, as the terminal says)
    assert saved.encode() in run.screen  # the path is written above the picture


def test_preview_uses_sixel_where_the_terminal_says_it_has_it(tmp_path: Path) -> None:
    run = run_in_terminal(tmp_path, *gen_args(tmp_path, "--preview"), answer_da1=True)
    assert run.code == 0, run.screen[-800:]
    assert SIXEL_START in run.screen
    assert HALF_BLOCK not in run.screen


def test_preview_uses_the_kitty_protocol_where_the_terminal_answers_its_query(
    tmp_path: Path,
) -> None:
    run = run_in_terminal(tmp_path, *gen_args(tmp_path, "--preview"), answer_kitty=True)
    assert run.code == 0, run.screen[-800:]
    assert KITTY_IMAGE.search(run.screen)  # the PNG sent in kitty graphics protocol chunks
    assert HALF_BLOCK not in run.screen and SIXEL_START not in run.screen


def test_preview_uses_iterm2_inline_images_in_iterm2(tmp_path: Path) -> None:
    run = run_in_terminal(
        tmp_path, *gen_args(tmp_path, "--preview"), env={"TERM_PROGRAM": "iTerm.app"}
    )
    assert run.code == 0, run.screen[-800:]
    assert ITERM2_START in run.screen
    assert b"inline=1:iVBORw0KGgo" in run.screen  # the PNG itself, base64


def test_config_preview_makes_it_the_default_and_no_preview_turns_it_off(tmp_path: Path) -> None:
    config = tmp_path / "preview.toml"
    config.write_text("preview = true\n")
    env = {"FLUX2_CONFIG": str(config)}
    assert HALF_BLOCK in run_in_terminal(tmp_path, *gen_args(tmp_path), env=env).screen
    off = run_in_terminal(tmp_path, *gen_args(tmp_path, "--no-preview"), env=env)
    assert off.code == 0
    assert HALF_BLOCK not in off.screen


def test_no_color_draws_no_half_blocks_and_says_why(tmp_path: Path) -> None:
    run = run_in_terminal(tmp_path, *gen_args(tmp_path, "--preview"), env={"NO_COLOR": "1"})
    assert run.code == 0
    assert HALF_BLOCK not in run.screen
    assert b"NO_COLOR is set" in run.screen


def test_under_ci_nothing_is_drawn_or_opened_and_one_notice_says_so(tmp_path: Path) -> None:
    viewer_log = install_fake_viewer(tmp_path)
    run = run_in_terminal(
        tmp_path,
        *gen_args(tmp_path, "--preview", "--open"),
        env={"CI": "true", "PATH": fake_path(tmp_path)},
    )
    assert run.code == 0
    assert HALF_BLOCK not in run.screen
    assert run.screen.count(b"nothing shown (CI is set)") == 1
    assert not viewer_log.exists()


def test_without_a_terminal_one_notice_and_exit_0(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(FLUX2_BIN), *gen_args(tmp_path, "--preview", "--open")],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert "--open and --preview: nothing shown (stderr is not a terminal)." in result.stderr
    assert "▀" not in result.stderr + result.stdout


def install_fake_viewer(tmp_path: Path) -> Path:
    """A fake system viewer first on PATH that writes its arguments to a file."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    log = tmp_path / "viewer.log"
    name = "open" if sys.platform == "darwin" else "xdg-open"
    script = folder / name
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> "{log}"\n')
    script.chmod(0o755)
    return log


def fake_path(tmp_path: Path) -> str:
    return f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"


def wait_for_file(path: Path, timeout: float = 15.0) -> str:
    """The viewer runs detached: wait (bounded) for what it wrote."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.05)
    pytest.fail(f"the fake viewer wrote nothing to {path} in {timeout:g} s")


def test_open_hands_each_saved_image_to_the_system_viewer(tmp_path: Path) -> None:
    viewer_log = install_fake_viewer(tmp_path)
    run = run_in_terminal(
        tmp_path, *gen_args(tmp_path, "--open"), env={"PATH": fake_path(tmp_path)}
    )
    assert run.code == 0, run.screen[-800:]
    assert wait_for_file(viewer_log) == run.stdout  # the same absolute path(s), one a line


def test_download_and_status_wait_preview(tmp_path: Path) -> None:
    made = subprocess.run(
        [str(FLUX2_BIN), "gen", "a blue heron", "--provider", "sandbox", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    task_id = made.stdout.strip()
    assert made.returncode == 0 and task_id, made.stderr
    status = run_in_terminal(tmp_path, "status", task_id, "--wait", "--preview")
    assert status.code == 0, status.screen[-800:]
    assert HALF_BLOCK in status.screen
    assert not list(tmp_path.glob("*.png"))  # the status preview saved nothing
    download = run_in_terminal(
        tmp_path, "download", task_id, "-o", f"{tmp_path / 'dl'}/", "--preview"
    )
    assert download.code == 0, download.screen[-800:]
    assert HALF_BLOCK in download.screen
    assert Path(download.stdout.strip()).parent == tmp_path / "dl"


def test_status_wait_open_hands_over_a_local_copy(tmp_path: Path) -> None:
    """A task not downloaded yet is opened from a local copy (an image URL may need a key-less
    fetch a viewer cannot make, and the embedded sandbox's URLs exist only inside flux2)."""
    made = subprocess.run(
        [str(FLUX2_BIN), "gen", "a blue heron", "--provider", "sandbox", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    task_id = made.stdout.strip()
    viewer_log = install_fake_viewer(tmp_path)
    run = run_in_terminal(
        tmp_path, "status", task_id, "--wait", "--open", env={"PATH": fake_path(tmp_path)}
    )
    assert run.code == 0, run.screen[-800:]
    opened = Path(wait_for_file(viewer_log).strip())
    assert opened.is_file() and opened.suffix == ".png"
    assert opened.parent.name.startswith("flux2-view-")
    shutil.rmtree(opened.parent)
