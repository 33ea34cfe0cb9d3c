"""The installed flux2 in a pseudo-terminal: what a person at a terminal sees.

Each test runs ``flux2`` with its stdin, stdout and stderr on one pty (as in a real terminal),
on the embedded sandbox (no latency), reads everything it writes, and checks the exit code.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX"),
]

FLUX2 = Path(sys.executable).parent / "flux2"
RUN_TIMEOUT = 60.0
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Seen:
    """What the terminal showed (raw, with escape sequences) and the exit code."""

    raw: str
    code: int

    @property
    def text(self) -> str:
        """The screen text without colour and cursor sequences."""
        return ANSI.sub("", self.raw).replace("\r\n", "\n")


def in_terminal(
    *args: str,
    cwd: Path,
    typed: bytes = b"",
    env: dict[str, str] | None = None,
    after: bytes = b"",
) -> Seen:
    """Run ``flux2 ARGS`` on a pty; ``typed`` is written once the process starts (or once it
    has shown ``after``, e.g. a hidden prompt, so the terminal's echo is already off)."""
    if not FLUX2.exists():
        pytest.skip(f"the flux2 command is not installed at {FLUX2}")
    master, slave = pty.openpty()
    environment = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **(env or {})}
    process = subprocess.Popen(
        [str(FLUX2), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=environment,
        close_fds=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        if typed and not after:
            os.write(master, typed)
            typed = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the last writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
                if typed and after in b"".join(chunks):
                    time.sleep(0.2)  # the prompt is written just before echo goes off
                    os.write(master, typed)
                    typed = b""
            elif process.poll() is not None:
                break
        code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(master)
    return Seen(b"".join(chunks).decode("utf-8", errors="replace"), code)


def test_gen_o_dash_on_a_terminal_is_refused_and_writes_no_bytes(tmp_path: Path) -> None:
    seen = in_terminal("gen", "a red fox", "--sandbox", "-o", "-", cwd=tmp_path)
    assert seen.code == 2
    assert "error: -o - would write the image's bytes to your terminal." in seen.text
    assert "-o - > image.png" in seen.text
    assert "PNG" not in seen.text and "\x89" not in seen.raw
    assert "Submitted" not in seen.text  # refused before anything was sent


def test_a_finished_gen_ends_with_one_check_line(tmp_path: Path) -> None:
    seen = in_terminal("gen", "a red fox", "--sandbox", "-o", "out/", cwd=tmp_path)
    assert seen.code == 0, seen.text
    last = seen.text.strip().splitlines()[-1]
    match = re.fullmatch(
        r"✓ (a-red-fox-\S+\.png) · 1440×1440 PNG · \d+ KB · 5 credits ≈ \$0\.05 "
        r"\(simulated; nothing charged\) · \d+\.\d s",
        last,
    )
    assert match, last
    assert (tmp_path / "out" / match.group(1)).is_file()
    assert "Submitted task " in seen.text and "(sandbox: apiinone, flux-2)" in seen.text


def test_error_label_is_red_on_a_terminal_and_plain_with_no_color(tmp_path: Path) -> None:
    coloured = in_terminal("gen", "a red fox", "--provider", "nope", cwd=tmp_path)
    assert coloured.code == 2
    assert "\x1b[1;31merror:\x1b[0m " in coloured.raw
    plain = in_terminal(
        "gen", "a red fox", "--provider", "nope", cwd=tmp_path, env={"NO_COLOR": "1"}
    )
    assert plain.code == 2
    assert "error: " in plain.raw and "\x1b[1;31m" not in plain.raw


def test_gen_dash_on_a_terminal_says_how_to_end_the_prompt(tmp_path: Path) -> None:
    # The typed line, then Ctrl-D (EOF at the start of a line) as a person would.
    seen = in_terminal("gen", "-", "--sandbox", "--no-wait", cwd=tmp_path, typed=b"a red fox\n\x04")
    assert seen.code == 0, seen.text
    assert "reading the prompt from stdin; end with Ctrl-D" in seen.text
    assert "check on it: flux2 status " in seen.text and " --wait" in seen.text


def test_the_key_prompt_is_hidden_and_the_readme_quotes_it(tmp_path: Path) -> None:
    prompt = "api_key (typing is hidden; Enter to finish):"
    seen = in_terminal(
        "config",
        "set",
        "api_key",
        "-",
        cwd=tmp_path,
        typed=b"sk-typed-1234567\n",
        after=prompt.encode(),
    )
    assert seen.code == 0, seen.text
    assert prompt in seen.text
    assert "sk-typed-1234567" not in seen.text  # not echoed
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert f'asks "{prompt}"' in readme


def test_the_readme_first_command_saves_into_an_ignored_folder() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    first = next(line for line in readme.splitlines() if ".venv/bin/flux2 gen" in line)
    assert first.rstrip().endswith("-o out/"), first
    assert "out/" in (root / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_no_check_line_and_no_colour_under_ci_or_no_color(tmp_path: Path) -> None:
    under_ci = in_terminal(
        "gen", "a red fox", "--sandbox", "-o", "out/", cwd=tmp_path, env={"CI": "true"}
    )
    assert under_ci.code == 0, under_ci.text
    assert "✓" not in under_ci.text  # CI logs get plain status lines, no closing flourish
    plain = in_terminal(
        "gen", "a red fox", "--sandbox", "-o", "out/", cwd=tmp_path, env={"NO_COLOR": "1"}
    )
    assert plain.code == 0, plain.text
    assert "\n✓ " in plain.text.replace("\r", "") and "\x1b[32m" not in plain.raw
