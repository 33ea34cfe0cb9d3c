"""Batch manifests: JSON Lines, JSON arrays, CSV/TSV and plain text, read in one pass.

Every problem of the file is reported at once (up to :data:`MAX_PROBLEMS`), each by line and by
the manifest's own key (``m.jsonl line 3: ratio``). This module reads the shape of an entry
(keys, lists, CSV cells); the values of request options are checked by the request builder
(flux2_cli.build), which names the same line and key. A line of JSON or CSV syntax never becomes
a prompt, and every relative path in a manifest (``refs``, ``output``) is taken from the
manifest's folder.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux2_cli.errors import UsageError
from flux2_cli.request import OPTIONS, is_url

MAX_LINE_BYTES = 1_000_000
MAX_PROBLEMS = 20
BOM = b"\xef\xbb\xbf"
STDIN = "-"
KINDS = ("jsonl", "json", "csv", "tsv", "text")
KIND_ALIASES = {"txt": "text", "ndjson": "jsonl"}
SUFFIX_KINDS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "text",
    ".text": "text",
}
DELIMITERS = {"csv": ",", "tsv": "\t"}

# The manifest's own keys: every request option, plus where and how to save.
ENTRY_KEYS = ("name", "output", "from")  # from: an earlier request (relative to the manifest)
COUNT_KEY = "n"  # N images of the entry, as N tasks
MAX_COUNT = 100
LIST_KEYS = ("refs", "params")
ALIASES = {"ref": "refs", "param": "params"}
KNOWN_KEYS = (*OPTIONS, *ENTRY_KEYS, COUNT_KEY, *ALIASES)


class ManifestError(UsageError):
    """The manifest cannot be used (exit 2): every problem found, each naming its line."""

    def __init__(self, problems: list[str] | str, hints: list[str] | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        shown = self.problems[:MAX_PROBLEMS]
        if len(shown) == 1:
            message = shown[0]
        else:
            message = f"{len(self.problems)} problems in the manifest:\n" + "\n".join(
                f"  {problem}" for problem in shown
            )
            if len(self.problems) > len(shown):
                message += f"\n  … and {len(self.problems) - len(shown)} more"
        super().__init__(message, hints=hints)


@dataclass(frozen=True)
class ManifestEntry:
    """One entry as read: its 1-based number, the line it starts on, its values by key."""

    number: int
    line: int
    values: dict[str, Any]


class Problems:
    """Problems gathered while reading and planning a manifest, each with its line.

    One object serves the reader and the planner, so that a file's shape errors and its
    values' errors come out together, in line order.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._items: list[tuple[int, str]] = []
        self.hints: list[str] = []

    @property
    def items(self) -> list[str]:
        """Every problem so far, in line order (problems of the whole file first)."""
        return [text for _, text in sorted(self._items, key=lambda item: item[0])]

    def add(self, line: int | None, message: str, hints: list[str] | None = None) -> None:
        """Record one problem (``line`` None: the whole file)."""
        where = f"{self.source} line {line}" if line is not None else self.source
        self._items.append((line or 0, f"{where}: {message}"))
        self._hint(hints or ())

    def extend(self, line: int, problems: list[str], hints: list[str]) -> None:
        """Record problems of line ``line`` that already name it (from the request builder)."""
        self._items.extend((line, problem) for problem in problems)
        self._hint(hints)

    def _hint(self, hints: Iterable[str]) -> None:
        self.hints.extend(hint for hint in hints if hint not in self.hints)

    def __len__(self) -> int:
        return len(self._items)

    def raise_if_any(self) -> None:
        """ManifestError with everything gathered, if anything was."""
        if self._items:
            raise ManifestError(self.items, self.hints)


def manifest_kind(path: Path) -> str | None:
    """The format its extension names; None when the content must decide."""
    return SUFFIX_KINDS.get(path.suffix.lower())


def check_kind(text: str) -> str:
    """``--format`` for a manifest: jsonl, json, csv, tsv or txt; else a UsageError."""
    kind = text.strip().lower()
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise UsageError(f"--format {text!r}: a manifest is jsonl, json, csv, tsv or txt.")
    return kind


def read_manifest(
    path: Path, kind: str | None = None, problems: Problems | None = None
) -> list[ManifestEntry]:
    """Read and check a whole manifest (``-``: standard input, which needs ``kind``).

    With ``problems``, what is wrong is gathered there (for the planner to report along with
    the values' problems) and the good entries are returned; else ManifestError is raised.
    """
    if str(path) == STDIN:
        if kind is None:
            raise UsageError(
                "batch - reads the manifest from stdin; say its format with "
                "--format jsonl|json|csv|tsv|txt."
            )
        data = sys.stdin.buffer.read()
        return parse_manifest(data, kind=kind, source="stdin", base=Path.cwd(), problems=problems)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise ManifestError(f"{path} is a folder, not a manifest.") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    return parse_manifest(
        data,
        kind=kind or manifest_kind(path),
        source=path.name,
        base=path.parent,
        problems=problems,
    )


def parse_manifest(
    data: bytes,
    *,
    kind: str | None = None,
    source: str = "manifest",
    base: Path | None = None,
    problems: Problems | None = None,
) -> list[ManifestEntry]:
    """Entries of a manifest (``kind`` None: sniff the content); relative paths from ``base``.

    Raises ManifestError with every problem, unless ``problems`` is given to gather them.
    """
    gather = problems is not None
    problems = problems if problems is not None else Problems(source)
    before = len(problems)
    lines = _decode_lines(data, problems)
    chosen = kind or sniff_kind(lines)
    if chosen == "json" and sniff_kind(lines) == "jsonl":
        chosen = "jsonl"  # a .json file of one object a line is JSON Lines
    if chosen == "jsonl":
        entries = _parse_jsonl(lines, problems)
    elif chosen == "json":
        entries = _parse_json_array(lines, problems)
    elif chosen in DELIMITERS:
        entries = _parse_csv(lines, problems, DELIMITERS[chosen])
    else:
        entries = _parse_text(lines, problems)
    if not entries and len(problems) == before:
        problems.add(None, "holds no entries.")
    if not gather:
        problems.raise_if_any()
    if base is not None:
        entries = [_with_paths(entry, base) for entry in entries]
    return entries


def sniff_kind(lines: list[str]) -> str:
    """Guess the format from the first non-blank line."""
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.startswith("["):
        return "json"
    if first.startswith("{"):
        return "jsonl"
    for kind, delimiter in DELIMITERS.items():
        if _is_header(first, delimiter):
            return kind
    return "text"


def _is_header(line: str, delimiter: str) -> bool:
    try:
        header = next(csv.reader([line], delimiter=delimiter))
    except (csv.Error, StopIteration):
        return False
    names = [_canonical(cell) for cell in header]
    return "prompt" in names and all(name in KNOWN_KEYS for name in names)


def line_error(
    source: str, line: int, message: str, hints: list[str] | None = None
) -> ManifestError:
    """A ManifestError naming the file and the line."""
    return ManifestError(f"{source} line {line}: {message}", hints=hints)


def _with_paths(entry: ManifestEntry, base: Path) -> ManifestEntry:
    """Relative ``refs`` and ``output`` taken from the manifest's folder."""
    values = dict(entry.values)
    refs = values.get("refs")
    if isinstance(refs, tuple):
        values["refs"] = tuple(ref if is_url(ref) else _from(base, ref) for ref in refs)
    output = values.get("output")
    if isinstance(output, str) and output and output != STDIN:
        values["output"] = _from(base, output, keep_slash=True)
    return ManifestEntry(entry.number, entry.line, values)


def _from(base: Path, text: str, *, keep_slash: bool = False) -> str:
    path = Path(text).expanduser()
    if path.is_absolute():
        return str(path)
    joined = str(base / path)
    if keep_slash and text.endswith(("/", os.sep)):
        joined += "/"
    return joined


def _decode_lines(data: bytes, problems: Problems) -> list[str]:
    if data.startswith(BOM):
        data = data[len(BOM) :]
    lines: list[str] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if len(raw) > MAX_LINE_BYTES:
            problems.add(
                number, f"the line is {len(raw):,} bytes, over the {MAX_LINE_BYTES:,}-byte limit."
            )
            lines.append("")
            continue
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problems.add(number, f"not valid UTF-8 (byte {exc.start + 1} of the line).")
            lines.append("")
    return lines


def _canonical(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _unknown_key(problems: Problems, line: int, key: str, what: str = "key") -> None:
    close = difflib.get_close_matches(_canonical(key), KNOWN_KEYS, n=1, cutoff=0.6)
    suggestion = f"; did you mean {close[0]!r}?" if close else "."
    problems.add(
        line,
        f"unknown {what} {key!r}{suggestion}",
        hints=["Keys: " + " ".join(sorted(KNOWN_KEYS))],
    )


def _entry(entries: list[ManifestEntry], line: int, values: dict[str, Any] | None) -> None:
    if values is not None:
        entries.append(ManifestEntry(len(entries) + 1, line, values))


def _object_entry(value: Any, problems: Problems, line: int) -> dict[str, Any] | None:
    if isinstance(value, str):
        value = {"prompt": value}
    if not isinstance(value, dict):
        problems.add(line, "expected a JSON object (or a string prompt).")
        return None
    return _normalise(value, problems, line, from_csv=False)


def _parse_jsonl(lines: list[str], problems: Problems) -> list[ManifestEntry]:
    entries: list[ManifestEntry] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            detail = getattr(exc, "msg", str(exc))
            column = getattr(exc, "colno", None)
            where = f" at column {column}" if column else ""
            problems.add(number, f"not valid JSON ({detail}{where}).")
            continue
        _entry(entries, number, _object_entry(value, problems, number))
    return entries


def _parse_json_array(lines: list[str], problems: Problems) -> list[ManifestEntry]:
    """A ``.json`` file holding one array of entries; each keeps the line it starts on."""
    text = "\n".join(lines)
    decoder = json.JSONDecoder()
    start = len(text) - len(text.lstrip())
    if not text[start:].startswith("["):
        problems.add(1, 'expected a JSON array of entries ([{"prompt": …}, …]).')
        return []
    entries: list[ManifestEntry] = []
    index = start + 1
    while True:
        index = _skip(text, index)
        if index < len(text) and text[index] == "]":
            if _skip(text, index + 1) < len(text):
                problems.add(_line_of(text, index + 1), "text after the closing ].")
            return entries
        line = _line_of(text, index)
        try:
            value, index = decoder.raw_decode(text, index)
        except ValueError as exc:
            detail = getattr(exc, "msg", str(exc))
            problems.add(_line_of(text, getattr(exc, "pos", index)), f"not valid JSON ({detail}).")
            return entries
        _entry(entries, line, _object_entry(value, problems, line))
        index = _skip(text, index)
        if index < len(text) and text[index] == ",":
            index += 1
        elif index >= len(text) or text[index] != "]":
            problems.add(_line_of(text, index), "expected , or ] between entries.")
            return entries


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _parse_text(lines: list[str], problems: Problems) -> list[ManifestEntry]:
    entries: list[ManifestEntry] = []
    for number, text in enumerate(lines, start=1):
        prompt = text.strip()
        if not prompt or prompt.startswith("#"):
            continue
        if _looks_like_json(prompt):
            problems.add(
                number,
                "this line is JSON, not a prompt; name the file .jsonl (or .json for an "
                "array), or pass --format jsonl.",
            )
            continue
        if any(_is_header(prompt, delimiter) for delimiter in (*DELIMITERS.values(), ";", "|")):
            problems.add(
                number,
                "this line is a CSV header, not a prompt; name the file .csv or .tsv, or pass "
                "--format csv.",
            )
            continue
        entries.append(ManifestEntry(len(entries) + 1, number, {"prompt": prompt}))
    return entries


def _looks_like_json(text: str) -> bool:
    if not text.startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _parse_csv(lines: list[str], problems: Problems, delimiter: str) -> list[ManifestEntry]:
    start = next((index for index, line in enumerate(lines) if line.strip()), None)
    if start is None:
        return []
    reader = csv.reader(io.StringIO("\n".join(lines[start:])), delimiter=delimiter)
    header_line = start + 1
    try:
        header = next(reader)
    except csv.Error as exc:
        problems.add(header_line, f"cannot read the header ({exc}).")
        return []
    names: list[str] = []
    before = len(problems)
    for cell in header:
        name = _canonical(cell)
        if name not in KNOWN_KEYS:
            _unknown_key(problems, header_line, cell.strip(), "column")
        elif ALIASES.get(name, name) in (ALIASES.get(other, other) for other in names):
            problems.add(header_line, f"column {cell.strip()!r} given twice.")
        names.append(name)
    if "prompt" not in names:
        problems.add(header_line, "the header has no 'prompt' column.")
    if len(problems) > before:
        return []
    entries: list[ManifestEntry] = []
    consumed = reader.line_num
    while True:
        first_line = start + consumed + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.add(first_line, f"cannot read the row ({exc}).")
            break
        consumed = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(names):
            problems.add(first_line, f"{len(row)} cells, but the header names {len(names)}.")
            continue
        raw = {name: cell for name, cell in zip(names, row, strict=False) if cell.strip()}
        _entry(entries, first_line, _normalise(raw, problems, first_line, from_csv=True))
    return entries


def _normalise(
    raw: dict[str, Any], problems: Problems, line: int, *, from_csv: bool
) -> dict[str, Any] | None:
    """Canonical keys; lists and CSV cells split. The values' rules are the builder's."""
    values: dict[str, Any] = {}
    before = len(problems)
    for key, value in raw.items():
        name = _canonical(str(key))
        if name not in KNOWN_KEYS:
            _unknown_key(problems, line, str(key))
            continue
        name = ALIASES.get(name, name)
        if value is None:
            continue
        if name in ENTRY_KEYS:
            if not isinstance(value, str):
                problems.add(line, f"{name}: must be a string, not {json.dumps(value)}.")
                continue
            values[name] = value.strip()
        elif name == "refs":
            refs = _as_refs(value, from_csv)
            if refs is None:
                problems.add(line, "refs: must be a list of URLs or paths.")
                continue
            values["refs"] = values.get("refs", ()) + refs
        elif name == COUNT_KEY:
            count = _as_count(value)
            if count is None:
                problems.add(line, f"n: must be a whole number from 1 to {MAX_COUNT}.")
                continue
            values[COUNT_KEY] = count
        elif name == "params":
            params = _as_params(value)
            if isinstance(params, str):
                problems.add(line, f"params: {params}.")
                continue
            values["params"] = values.get("params", ()) + params
        else:
            values[name] = value
    if "prompt" not in values and "from" not in values and len(problems) == before:
        problems.add(line, "no 'prompt' (nor 'from').")
    return values if len(problems) == before else None


def _as_count(value: Any) -> int | None:
    """``n``: an integer (a CSV cell's digits too) from 1 to MAX_COUNT."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        return None
    return value


def _as_refs(value: Any, from_csv: bool) -> tuple[str, ...] | None:
    if isinstance(value, str):
        # A CSV cell holds several references separated by spaces or '|'.
        parts = value.replace("|", " ").split() if from_csv else [value.strip()]
        return tuple(part for part in parts if part)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    return None


def _as_params(value: Any) -> tuple[str, ...] | str:
    """KEY=VALUE texts, or what is wrong (a string)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                return "not a valid JSON object"
        else:
            return tuple(part.strip() for part in text.split(";") if part.strip())
    if isinstance(value, dict):
        return tuple(f"{key}={json.dumps(item)}" for key, item in value.items())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return "must be an object (or a list of KEY=VALUE)"
