"""Output: human / JSON / quiet rendering; results on stdout, everything for people on stderr.

Commands never print: they call one ``Output``. Rich is imported only when something is drawn
(a spinner, a progress bar, a table), so start-up stays fast.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from typing import IO, TYPE_CHECKING, Any

from flux2_cli.env import NO_COLOR, is_ci, is_github_actions
from flux2_cli.redact import Secrets, scrub_all

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), and the bidi
# overrides: a server's text must not move the cursor, erase lines, set the window title,
# write the clipboard (OSC 52) or reorder what is shown.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# What json.dumps(ensure_ascii=False) leaves raw: DEL, C1 controls, bidi overrides, and the
# line separators that some JSON readers (JavaScript before ES2019) take as line ends.
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
SIMULATED_NOTE = "simulated; nothing charged"  # what the sandbox's costs are
ERROR_LABEL = "error:"
ERROR_STYLE = "\x1b[1;31m"  # bold red, as gh, httpie and cargo colour it
RESET_STYLE = "\x1b[0m"


def neutralise(text: str) -> str:
    """``text`` safe for a terminal: control characters shown as escapes (``\\x1b``), inert."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def json_text(data: Any, *, indent: int | None = None) -> str:
    """JSON for stdout: every control character escaped, C1 and bidi controls included."""
    separators = None if indent else (",", ":")
    text = json.dumps(data, indent=indent, ensure_ascii=False, separators=separators)
    return _JSON_RAW.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def format_credits(credits: float) -> str:
    """Credits as people read them: ``5``, ``4.5``, ``0.25`` (at most two decimals, no ``.0``)."""
    return f"{_half_up(credits, '0.01'):f}".rstrip("0").rstrip(".")


def format_usd(usd: float) -> str:
    """Dollars rounded half up to the cent (``$0.045`` is ``$0.05``), ``< $0.01`` below that."""
    cents = _half_up(usd, "0.01")
    if usd > 0 and cents == 0:
        return "< $0.01"
    return f"${cents:.2f}"


def format_cost(credits: float | None, usd: float | None, *, simulated: bool = False) -> str:
    """One way to show a cost everywhere: ``4.5 credits ≈ $0.05``; the sandbox says so."""
    parts = []
    if credits is not None:
        parts.append(f"{format_credits(credits)} credits")
    if usd is not None:
        parts.append(("≈ " if parts else "") + format_usd(usd))
    text = " ".join(parts) or "cost not published"
    return f"{text} ({SIMULATED_NOTE})" if simulated else text


def _half_up(value: float, step: str) -> Decimal:
    # Through str(): 0.045 stays 0.045 (its binary double is a hair under, and rounds down).
    return Decimal(str(value)).quantize(Decimal(step), rounding=ROUND_HALF_UP)


# A line that GitHub Actions would take as a workflow command: "::" after optional blanks.
_WORKFLOW_COMMAND = re.compile(r"(^|[\r\n])([ \t]*::)")


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
        if quiet and verbose:
            from flux2_cli.errors import UsageError

            # As curl: one cannot ask for nothing but errors and for every request at once.
            raise UsageError("--quiet and --verbose contradict each other; give one of them.")
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self._stdout = stdout
        self._stderr = stderr
        self._live = live
        self.stdout_closed = False
        self._console: Console | None = None
        # The keys of this command: scrubbed from every line for people (belt and braces;
        # server text is scrubbed where it enters, in the client).
        self.secrets = Secrets()

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
        return _isatty(self.err) and not is_ci() and not self.quiet

    @property
    def color(self) -> bool:
        """Colour unless ``NO_COLOR`` is set or stderr is not a terminal."""
        return self.live and not os.environ.get(NO_COLOR)

    @property
    def error_color(self) -> bool:
        """``error:`` in colour when stderr is a terminal and ``NO_COLOR`` is unset (even -q)."""
        return _isatty(self.err) and not os.environ.get(NO_COLOR)

    @property
    def stdout_is_terminal(self) -> bool:
        """True when stdout is a terminal (image bytes must not go there)."""
        return _isatty(self.out)

    @property
    def stdin_is_terminal(self) -> bool:
        """True when stdin is a terminal (someone has to type, then Ctrl-D)."""
        return _isatty(sys.stdin)

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
        self._write_out(json_text(data, indent=2) + "\n", raw=True)

    def json_line(self, data: Any) -> None:
        """One compact JSON line (batch's JSON Lines)."""
        self._write_out(json_text(data) + "\n", raw=True)

    def _write_out(self, text: str, *, raw: bool = False) -> None:
        if self.stdout_closed:
            return
        # Results come from server answers already scrubbed; this catches what other text
        # (an error message quoting a URL, in batch's JSON lines) might still carry.
        text = self.secrets.scrub(text)
        try:
            self.out.write(text if raw else neutralise(text))
            self.out.flush()
        except BrokenPipeError:
            self._stdout_gone()
        except OSError as exc:
            # Not a reader that left (a full disk behind a redirect, a file-size limit): say
            # so, and stop writing there; files already saved stay where they are.
            from flux2_cli.errors import DownloadError

            self.stdout_closed = True
            raise DownloadError(
                f"cannot write to stdout: {exc.strerror or exc}",
                hints=["Files already saved are kept; see `flux2 history` for the tasks."],
            ) from None

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
        """An error and its hints; always shown. ``error:`` is red where colour is allowed."""
        label = f"{ERROR_STYLE}{ERROR_LABEL}{RESET_STYLE}" if self.error_color else ERROR_LABEL
        self._write_err(f"{ERROR_LABEL} {text}", label=(ERROR_LABEL, label))
        for hint in hints:
            self._write_err(hint if hint.startswith(" ") else f"  {hint}")

    def success(self, text: str) -> None:
        """The closing ``✓`` line of a finished command, on a terminal only (not -q, not CI)."""
        if self.live:
            mark = "\x1b[32m✓\x1b[0m" if self.color else "✓"
            self._write_err(f"✓ {text}", label=("✓", mark))

    def command(self, line: str) -> None:
        """A CI workflow command (``::error …``) on stderr as is, even with ``--quiet``."""
        self._write_err(line, command=True)

    def debug(self, text: str) -> None:
        """A ``--verbose`` line (already redacted by the caller, scrubbed again here)."""
        if self.verbose:
            self._write_err(text)

    def _write_err(
        self, text: str, *, label: tuple[str, str] | None = None, command: bool = False
    ) -> None:
        text = scrub_all(text, self.secrets)
        if not command and is_github_actions():
            # The Actions runner reads workflow commands on stderr too: a server's text that
            # puts "::" at the start of a line must not become one (::add-mask::, ::error::).
            text = _WORKFLOW_COMMAND.sub(r"\1> \2", text)
        # Neutralised after scrubbing and before the one escape sequence flux2 adds itself.
        line = neutralise(text)
        if label is not None:
            line = line.replace(label[0], label[1], 1)
        try:
            self.err.write(line + "\n")
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
        label = neutralise(label)

        if self.quiet or (self.json_mode and not self.live):
            yield lambda text: None
            return

        if not self.live:

            def plain(text: str) -> None:
                text = neutralise(text)
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
                current[0] = neutralise(scrub_all(text, self.secrets))

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
                spent = format_credits(credits)
                detail = f"done {done} · failed {failed} · running {running} · {spent} credits"
                bar.update(task_id, completed=done + failed, detail=detail)

            yield fancy


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# -- status and history rendering (flux2 status / history) ------------------------------------


def relative_time(moment: datetime, now: datetime) -> str:
    """``in 23 h``, ``in 5 min``, ``3 d ago``: a person's sense of when, rounded down."""
    seconds = (moment - now).total_seconds()
    ahead = seconds >= 0
    span = abs(seconds)
    if span < 60:
        amount = f"{int(span)} s"
    elif span < 3600:
        amount = f"{int(span // 60)} min"
    elif span < 2 * 86400:
        amount = f"{int(span // 3600)} h"
    else:
        amount = f"{int(span // 86400)} d"
    return f"in {amount}" if ahead else f"{amount} ago"


class LiveLines:
    """Several tasks waited on at once: one Rich live display on a terminal, else one plain
    line per status change. ``update(key, text, final=…)`` sets a task's line; a final one
    stops its clock."""

    def __init__(self, output: Output, keys: Sequence[str]) -> None:
        self._output = output
        self._keys = list(keys)
        self._text = dict.fromkeys(self._keys, "waiting")
        self._ended: dict[str, float] = {}
        self._started = time.monotonic()
        self._live: Any = None

    def __enter__(self) -> LiveLines:
        output = self._output
        if output.live and not output.quiet:
            from rich.live import Live

            # Live redraws this object 4 times a second, so the clocks tick between polls.
            self._live = Live(self, console=output.console(), refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(None, None, None)

    def update(self, key: str, text: str, *, final: bool = False) -> None:
        """A new status for one task: redrawn live, or printed when it changed."""
        text = neutralise(scrub_all(text, self._output.secrets))
        if final and key not in self._ended:
            self._ended[key] = time.monotonic()
        if self._text.get(key) == text:
            return
        self._text[key] = text
        if self._live is not None:
            self._live.refresh()
        elif not self._output.quiet and not (self._output.json_mode and not self._output.live):
            self._output.info(f"task {key}: {text} ({self._elapsed(key):.0f}s)")

    def _elapsed(self, key: str) -> float:
        return self._ended.get(key, time.monotonic()) - self._started

    def __rich__(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 1))
        for key in self._keys:
            elapsed = Text(f"{self._elapsed(key):.0f}s", "dim")
            grid.add_row(Text(f"task {key}:"), Text(self._text[key]), elapsed)
        return grid


def tab_separated(rows: Sequence[Sequence[Any]]) -> str:
    """Plain rows for pipes: cells joined by tabs, tabs and newlines inside a cell as spaces."""
    lines = []
    for row in rows:
        cells = ("" if cell is None else str(cell) for cell in row)
        lines.append("\t".join(_one_line(cell) for cell in cells))
    return "".join(line + "\n" for line in lines)


def _inert(cell: str) -> str:
    """A cell safe to draw: whitespace runs as one space, control and bidi characters as
    visible escapes, so text from a server (or a prompt) cannot move the cursor or recolour."""
    text = _one_line(cell)
    if text.isprintable():  # the usual case, and cheap: 70,000 cells for 10,000 rows
        return text
    return "".join(
        char
        if char.isprintable()
        else f"\\x{ord(char):02x}"
        if ord(char) < 0x100
        else f"\\u{ord(char):04x}"
        for char in text
    )


def _one_line(cell: str) -> str:
    if "\t" in cell or "\n" in cell or "\r" in cell:
        return " ".join(cell.split())
    return cell


def status_lines(task: Any, now: datetime | None = None) -> list[str]:
    """``flux2 status`` for people: id, status, expiry as "expires in 23 h", saved paths, URLs
    (until they expire) and the error. ``task`` is a :class:`flux2_cli.task.Task`."""
    from flux2_cli.jobs import as_seen_now
    from flux2_cli.task import format_time, utc_now

    now = now or utc_now()
    task = as_seen_now(task, now)
    line = f"{task.task_id}  {task.status.value}"
    if task.raw_status and task.raw_status.lower() != task.status.value:
        line += f" ({task.raw_status})"
    if task.expires_at:
        verb = "expires" if task.expires_at > now else "expired"
        line += f"  {verb} {relative_time(task.expires_at, now)} ({format_time(task.expires_at)})"
    if getattr(task, "sandbox", False):
        line += f"  (sandbox; {SIMULATED_NOTE})"
    lines = [line]
    for image in task.images:
        if image.path and image.path != "-":
            lines.append(f"  saved: {image.path}")
    if task.status.value != "expired":
        lines.extend(f"  {image.url}" for image in task.images)
    if task.error:
        code = f"[{task.error.code}] " if task.error.code else ""
        lines.append(f"  error: {code}{task.error.message}")
    return lines


def print_rows(
    output: Output,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    shrink: Sequence[int] = (),
    shrink_left: Sequence[int] = (),
    droppable: Sequence[int] = (),
) -> None:
    """Result rows on stdout: aligned columns that fit the terminal, else tab-separated.

    On a terminal the columns in ``shrink`` (then ``shrink_left``, cut at their start, as for
    paths) give up width first, with an ellipsis; if that is not enough the ``droppable``
    columns are left out, in that order; the others (ids, times) are never cut or split.
    Piped, every row is printed whole, tab-separated, with no header, so ``cut`` and ``awk``
    see one record a line. Plain string work, no Rich: 10,000 rows stay fast.
    """
    if output.json_mode:
        return
    # Server text made inert first, so that widths are those of what is shown; a tab or a line
    # break inside a cell would split a tab-separated record.
    rows = [[neutralise(cell) for cell in row] for row in rows]
    tty = output.stdout_is_terminal
    if not tty:
        output._write_out(tab_separated(rows))
        return
    import shutil

    rows = [[_inert(cell) for cell in row] for row in rows]
    widths = [len(name) for name in header]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    gap = 2
    room = shutil.get_terminal_size().columns
    excess = sum(widths) + gap * (len(widths) - 1) - room
    for index in (*shrink, *shrink_left):
        if excess <= 0:
            break
        least = max(len(header[index]), MIN_SHRUNK_WIDTH)
        give = min(excess, max(0, widths[index] - least))
        widths[index] -= give
        excess -= give
    kept = list(range(len(header)))
    for index in droppable:
        if excess <= 0:
            break
        kept.remove(index)
        excess -= widths[index] + gap
    if len(kept) < len(header):
        # Leaving a column out can free more room than was missing: give it back to the
        # shortened columns (the last to give up width gets it first), up to their full width.
        full = [len(name) for name in header]
        for row in rows:
            for index, cell in enumerate(row):
                full[index] = max(full[index], len(cell))
        for index in reversed((*shrink, *shrink_left)):
            if excess >= 0:
                break
            if index in kept:
                back = min(-excess, full[index] - widths[index])
                widths[index] += back
                excess += back
        header = [header[index] for index in kept]
        rows = [[row[index] for index in kept] for row in rows]
        shrink = [kept.index(index) for index in shrink if index in kept]
        shrink_left = [kept.index(index) for index in shrink_left if index in kept]
        widths = [widths[index] for index in kept]
    bold = not os.environ.get(NO_COLOR)
    lines = [_aligned(header, widths, gap, (), ())]
    if bold:
        lines[0] = f"\x1b[1m{lines[0]}\x1b[0m"
    lines.extend(_aligned(row, widths, gap, shrink, shrink_left) for row in rows)
    output._write_out("".join(line + "\n" for line in lines), raw=True)


MIN_SHRUNK_WIDTH = 12


def _aligned(
    row: Sequence[str],
    widths: Sequence[int],
    gap: int,
    shrink: Sequence[int],
    shrink_left: Sequence[int],
) -> str:
    cells = []
    last = len(row) - 1
    for index, cell in enumerate(row):
        width = widths[index]
        if len(cell) > width:
            cell = "…" + cell[-(width - 1) :] if index in shrink_left else cell[: width - 1] + "…"
        cells.append(cell if index == last else cell.ljust(width))
    return (" " * gap).join(cells)


def print_records(output: Output, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Rows with long values (``flux2 providers``): on a terminal one block per row, a label
    and its value a line, wrapped at spaces only so URLs and ids are never split; piped,
    tab-separated rows with no header, as :func:`print_rows`."""
    if output.json_mode:
        return
    tty = output.stdout_is_terminal
    if not tty:
        output._write_out(tab_separated(rows))
        return
    import shutil
    import textwrap

    room = shutil.get_terminal_size().columns
    label_width = max(len(name) for name in header[1:])
    indent = " " * (2 + label_width + 2)
    bold = not os.environ.get(NO_COLOR)
    lines: list[str] = []
    for row in [[_inert(cell) for cell in row] for row in rows]:
        title = row[0]
        lines.append(f"\x1b[1m{title}\x1b[0m" if bold else title)
        for name, value in zip(header[1:], row[1:], strict=True):
            wrapped = textwrap.wrap(
                " ".join(value.split()) or "-",
                width=max(room - len(indent), 20),
                break_long_words=False,
                break_on_hyphens=False,
            )
            lines.append(f"  {name.ljust(label_width)}  {wrapped[0]}")
            lines.extend(indent + more for more in wrapped[1:])
        lines.append("")
    output._write_out("".join(line + "\n" for line in lines[:-1]))
