"""Output: human / JSON / quiet rendering; results on stdout, everything for people on stderr.

Commands never print: they call one ``Output``. Rich is imported only when something is drawn
(a spinner, a progress bar, a table), so start-up stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from flux2_cli.env import NO_COLOR, is_ci
from flux2_cli.redact import scrub_all

if TYPE_CHECKING:
    from rich.console import Console


class Output:
    """Where every line of flux2 goes, by mode: human (default), ``--json``, ``--quiet``."""

    def __init__(
        self,
        *,
        json_mode: bool = False,
        quiet: bool = False,
        verbose: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        live: bool | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self._stdout = stdout
        self._stderr = stderr
        self._live = live
        self.stdout_closed = False
        self._console: Console | None = None

    # streams are looked up late so that test runners that swap sys.stdout are honoured
    @property
    def out(self) -> IO[str]:
        """The results stream."""
        return self._stdout or sys.stdout

    @property
    def err(self) -> IO[str]:
        """The stream for people."""
        return self._stderr or sys.stderr

    @property
    def live(self) -> bool:
        """Spinners and bars only on a terminal, and never in CI."""
        if self._live is not None:
            return self._live
        try:
            tty = self.err.isatty()
        except (AttributeError, ValueError):
            tty = False
        return tty and not is_ci() and not self.quiet

    @property
    def color(self) -> bool:
        """Colour unless ``NO_COLOR`` is set or stderr is not a terminal."""
        return self.live and not os.environ.get(NO_COLOR)

    def console(self) -> Console:
        """A Rich console on stderr (created on first use)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                file=self.err, no_color=not self.color, highlight=False, soft_wrap=True
            )
        return self._console

    # -- stdout ---------------------------------------------------------------------------
    def result(self, line: str) -> None:
        """One result line on stdout (a path, a URL, a task id); nothing in JSON mode."""
        if self.json_mode:
            return
        self._write_out(line + "\n")

    def document(self, data: Any) -> None:
        """The one JSON document of ``--json`` on stdout."""
        self._write_out(json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def json_line(self, data: Any) -> None:
        """One compact JSON line (batch's JSON Lines)."""
        self._write_out(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")

    def table(
        self, title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """A table of results on stdout (human mode only)."""
        if self.json_mode:
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, show_edge=False, header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*["" if cell is None else str(cell) for cell in row])
        try:
            tty = self.out.isatty()
        except (AttributeError, ValueError):
            tty = False
        console = Console(
            file=self.out,
            no_color=not tty or bool(os.environ.get(NO_COLOR)),
            width=None if tty else 400,
            highlight=False,
        )
        try:
            console.print(table)
        except BrokenPipeError:
            self._stdout_gone()

    def _write_out(self, text: str) -> None:
        if self.stdout_closed:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:
            self._stdout_gone()

    def _stdout_gone(self) -> None:
        # `flux2 gen … | head -1`: the reader left. Keep working (downloads complete) quietly.
        self.stdout_closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.out.fileno())
        except (OSError, ValueError, AttributeError):
            pass

    # -- stderr ---------------------------------------------------------------------------
    def info(self, text: str) -> None:
        """A line for people; silent with ``--quiet``."""
        if not self.quiet:
            self._write_err(text)

    def warn(self, text: str) -> None:
        """A warning for people; silent with ``--quiet``."""
        if not self.quiet:
            self._write_err(f"warning: {text}")

    def error(self, text: str, hints: Sequence[str] = ()) -> None:
        """An error and its hints; always shown."""
        self._write_err(f"error: {text}")
        for hint in hints:
            self._write_err(hint if hint.startswith(" ") else f"  {hint}")

    def command(self, line: str) -> None:
        """A CI workflow command (``::error …``) on stderr as is, even with ``--quiet``."""
        self._write_err(line)

    def debug(self, text: str) -> None:
        """A ``--verbose`` line (already redacted by the caller, scrubbed again here)."""
        if self.verbose:
            self._write_err(text)

    def _write_err(self, text: str) -> None:
        try:
            self.err.write(scrub_all(text) + "\n")
            self.err.flush()
        except (BrokenPipeError, ValueError):
            pass

    # -- live status ----------------------------------------------------------------------
    @contextmanager
    def status(self, label: str) -> Iterator[Callable[[str], None]]:
        """A spinner with elapsed time on a terminal; plain lines per status change elsewhere.

        Yields ``update(status_text)``.
        """
        started = time.monotonic()
        last: list[str] = []

        if self.quiet or (self.json_mode and not self.live):
            yield lambda text: None
            return

        if not self.live:

            def plain(text: str) -> None:
                if not last or last[-1] != text:
                    last.append(text)
                    self._write_err(f"{label}: {text} ({time.monotonic() - started:.0f}s)")

            yield plain
            return

        from rich.status import Status
        from rich.text import Text

        current = ["submitting"]

        class Elapsed:
            """Rendered on every spinner frame, so the elapsed time ticks between updates."""

            def __rich__(self) -> Text:
                seconds = time.monotonic() - started
                return Text.assemble(f"{label}: {current[0]} ", (f"{seconds:.0f}s", "dim"))

        with Status(Elapsed(), console=self.console(), spinner="dots"):

            def fancy(text: str) -> None:
                current[0] = text

            yield fancy

    @contextmanager
    def progress(self, label: str, total: int) -> Iterator[Callable[..., None]]:
        """One overall progress bar (batch); plain lines when not on a terminal.

        Yields ``advance(done=…, failed=…, running=…, credits=…, line=None)``.
        """
        if self.quiet:
            yield lambda **_: None
            return
        if not self.live:

            def plain(*, line: str | None = None, **_: Any) -> None:
                if line:
                    self._write_err(line)

            yield plain
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console(),
            transient=False,
        ) as bar:
            task_id = bar.add_task(label, total=total, detail="")

            def fancy(
                *,
                done: int = 0,
                failed: int = 0,
                running: int = 0,
                credits: float = 0.0,
                line: str | None = None,
            ) -> None:
                detail = f"done {done} · failed {failed} · running {running} · {credits:g} credits"
                bar.update(task_id, completed=done + failed, detail=detail)

            yield fancy
