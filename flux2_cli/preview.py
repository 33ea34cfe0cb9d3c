"""``--open`` and ``--preview``: saved images in the system viewer, or drawn in the terminal.

Imported only when one of them is asked for. Both act only for a person at a terminal: when
stderr is not a terminal or ``CI`` is set they do nothing but say so once.

``--preview`` draws on stderr (stdout carries results only), picking the best the terminal
speaks: iTerm2's inline images (OSC 1337; iTerm2 and WezTerm, known by ``TERM_PROGRAM`` /
``LC_TERMINAL``), else what textual-image finds by asking the terminal (sixel, the kitty
graphics protocol), else coloured half-blocks. textual-image writes its queries and images to
``sys.__stdout__`` and reads answers from ``sys.__stdin__``; while it works both are pointed at
the terminal stderr is on, so stdout (``flux2 gen x --preview | xargs …``) never sees a byte of
them, and a prompt read from a stdin pipe does not matter.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from flux2_cli.env import NO_COLOR, is_ci

if TYPE_CHECKING:
    from flux2_cli.output import Output

PREVIEW_MAX_ROWS = 20
PREVIEW_MAX_COLUMNS = 80
ITERM2_PROGRAMS = frozenset({"iTerm.app", "WezTerm"})
OPENERS = {"darwin": "open"}  # elsewhere on POSIX: xdg-open; on Windows: os.startfile
DEFAULT_OPENER = "xdg-open"


def terminal_problem(output: Output, env: Mapping[str, str] | None = None) -> str | None:
    """Why nothing may be shown (stderr not a terminal, ``CI`` set), or None."""
    if is_ci(env):
        return "CI is set"
    try:
        tty = output.err.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        return "stderr is not a terminal"
    return None


def blocked(
    output: Output, *, open_viewer: bool, preview: bool, env: Mapping[str, str] | None = None
) -> bool:
    """True (after one notice) when there is no terminal to show anything on."""
    if not (open_viewer or preview):
        return True
    problem = terminal_problem(output, env)
    if problem is None:
        return False
    asked = " and ".join(
        flag for flag, wanted in (("--open", open_viewer), ("--preview", preview)) if wanted
    )
    output.info(f"{asked}: nothing shown ({problem}).")
    return True


def show(
    output: Output,
    *,
    open_targets: Sequence[str] = (),
    preview_paths: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> None:
    """Open ``open_targets`` (files or URLs) and draw ``preview_paths`` (files).

    Call :func:`blocked` first. Neither ever fails the command: the images are saved; a viewer
    or a terminal that cannot show them is a notice.
    """
    for target in open_targets:
        open_in_viewer(output, target)
    if preview_paths and not output.quiet:
        draw(output, preview_paths, env)


# -- the system viewer ------------------------------------------------------------------------


def viewer_command(path: str, platform: str = sys.platform) -> list[str]:
    """The command that opens ``path`` (a file or URL) in the desktop's default viewer."""
    return [OPENERS.get(platform, DEFAULT_OPENER), path]


def open_in_viewer(output: Output, path: str) -> None:
    """Hand ``path`` to the system viewer without waiting for it (a viewer may stay open)."""
    if os.name == "nt":  # pragma: no cover - Windows only
        try:
            os.startfile(path)  # type: ignore[attr-defined,unused-ignore]
        except OSError as exc:
            output.warn(f"--open: could not open {path}: {exc.strerror or exc}")
        return
    command = viewer_command(path)
    program = shutil.which(command[0])
    if program is None:
        output.warn(f"--open: no system viewer found ({command[0]} is not on PATH).")
        return
    try:
        subprocess.Popen(
            [program, *command[1:]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in this terminal must not close the viewer
        )
    except OSError as exc:
        output.warn(f"--open: could not run {command[0]}: {exc.strerror or exc}")


# -- drawing in the terminal ------------------------------------------------------------------


def protocol(env: Mapping[str, str] | None = None) -> str | None:
    """``iterm2`` where the terminal says it is iTerm2 or WezTerm; None: ask textual-image."""
    environ = os.environ if env is None else env
    if environ.get("TERM_PROGRAM") in ITERM2_PROGRAMS or environ.get("LC_TERMINAL") == "iTerm2":
        return "iterm2"
    return None


def draw(output: Output, paths: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """Draw each image on stderr, with its path above it."""
    environ = os.environ if env is None else env
    err = output.err
    rows, columns = _box(output)
    if protocol(environ) == "iterm2":
        for path in paths:
            output.info(path)
            _draw_iterm2(err, path, rows)
        return
    try:
        with _terminal_on(err):
            from textual_image.renderable import HalfcellImage, Image
    except Exception as exc:  # a terminal that answers the queries oddly must not fail a run
        output.warn(f"--preview: this terminal cannot be drawn on ({type(exc).__name__}).")
        return
    if Image is HalfcellImage and environ.get(NO_COLOR):
        output.info("--preview: nothing drawn (NO_COLOR is set and this terminal shows no images).")
        return
    console = output.console()
    for path in paths:
        output.info(path)
        try:
            with _terminal_on(err):
                console.print(Image(path, width="auto", height="auto"), width=columns, height=rows)
        except Exception as exc:  # an image the library cannot draw is a notice, not a failure
            output.warn(f"--preview: could not draw {path} ({type(exc).__name__}: {exc}).")


def _box(output: Output) -> tuple[int, int]:
    """Rows and columns an image may take: the terminal's, capped so output stays readable."""
    try:
        size = os.get_terminal_size(output.err.fileno())
        rows, columns = size.lines, size.columns
    except (OSError, ValueError, AttributeError):
        rows, columns = PREVIEW_MAX_ROWS, PREVIEW_MAX_COLUMNS
    return max(4, min(PREVIEW_MAX_ROWS, rows - 4)), max(8, min(PREVIEW_MAX_COLUMNS, columns))


def _draw_iterm2(err: IO[str], path: str, rows: int) -> None:
    """iTerm2's inline image (OSC 1337), which WezTerm speaks too."""
    data = Path(path).read_bytes()
    name = base64.b64encode(Path(path).name.encode()).decode()
    payload = base64.b64encode(data).decode()
    err.write(
        f"\x1b]1337;File=name={name};size={len(data)};height={rows};preserveAspectRatio=1;"
        f"inline=1:{payload}\x07\n"
    )
    err.flush()


@contextmanager
def _terminal_on(err: IO[str]) -> Iterator[None]:
    """Point ``sys.__stdout__``/``sys.__stdin__`` at the terminal stderr is on, for textual-image.

    Its answers are read from that same terminal device (opened by name), so a stdin pipe or
    another controlling terminal is never read.
    """
    saved_out: Any = sys.__stdout__
    saved_in: Any = sys.__stdin__
    reader: IO[str] | None = None
    try:
        reader = open(os.ttyname(err.fileno()))  # noqa: SIM115 - closed below
    except (OSError, ValueError, AttributeError):
        reader = None
    try:
        setattr(sys, "__stdout__", err)  # noqa: B010 - the attribute is typed Final
        setattr(sys, "__stdin__", reader)  # noqa: B010
        yield
    finally:
        setattr(sys, "__stdout__", saved_out)  # noqa: B010
        setattr(sys, "__stdin__", saved_in)  # noqa: B010
        if reader is not None:
            reader.close()
