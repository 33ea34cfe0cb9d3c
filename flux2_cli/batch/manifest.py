"""Batch manifests: JSON Lines, CSV and plain text, checked line by line before anything runs."""

from __future__ import annotations

import csv
import difflib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux2_cli.errors import (
    UsageError,
)

if TYPE_CHECKING:
    pass

MAX_LINE_BYTES = 1_000_000
BOM = b"\xef\xbb\xbf"
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
CSV_SUFFIXES = frozenset({".csv"})

STRING_KEYS = (
    "prompt",
    "ratio",
    "res",
    "mode",
    "format",
    "callback_url",
    "model",
    "name",
    "output",
)
INT_KEYS = ("seed", "width", "height", "safety")
LIST_KEYS = ("refs", "params")
ALIASES = {"ref": "refs", "param": "params"}
KNOWN_KEYS = (*STRING_KEYS, *INT_KEYS, *LIST_KEYS, *ALIASES)


class ManifestError(UsageError):
    """The manifest cannot be used (exit 2); the message names the line."""


@dataclass(frozen=True)
class ManifestEntry:
    """One entry as read: its 1-based number, the line it starts on, canonical values."""

    number: int
    line: int
    values: dict[str, Any]


def manifest_kind(path: Path) -> str | None:
    """``jsonl``, ``csv`` or ``text`` from the extension; None when the content must decide."""
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in (".txt", ".text"):
        return "text"
    return None


def read_manifest(path: Path) -> list[ManifestEntry]:
    """Read and check a whole manifest; ManifestError (exit 2) names the file and line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise ManifestError(f"{path} is a folder, not a manifest.") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    return parse_manifest(data, kind=manifest_kind(path), source=path.name)


def parse_manifest(
    data: bytes, *, kind: str | None = None, source: str = "manifest"
) -> list[ManifestEntry]:
    """Entries of a JSON Lines, CSV or plain-text manifest (``kind`` None: sniff the content)."""
    lines = _decode_lines(data, source)
    chosen = kind or sniff_kind(lines)
    if chosen == "jsonl":
        entries = _parse_jsonl(lines, source)
    elif chosen == "csv":
        entries = _parse_csv(lines, source)
    else:
        entries = _parse_text(lines, source)
    if not entries:
        raise ManifestError(f"{source}: holds no entries.")
    return entries


def sniff_kind(lines: list[str]) -> str:
    """Guess the format from the first non-blank line."""
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.startswith("{"):
        return "jsonl"
    try:
        header = next(csv.reader([first]))
    except csv.Error:
        return "text"
    names = [_canonical(cell) for cell in header]
    if "prompt" in names and all(name in KNOWN_KEYS for name in names):
        return "csv"
    return "text"


def line_error(
    source: str, line: int, message: str, hints: list[str] | None = None
) -> ManifestError:
    """A ManifestError naming the file and the line."""
    return ManifestError(f"{source}: line {line}: {message}", hints=hints)


def _decode_lines(data: bytes, source: str) -> list[str]:
    if data.startswith(BOM):
        data = data[len(BOM) :]
    lines: list[str] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise line_error(
                source,
                number,
                f"the line is {len(raw):,} bytes, over the {MAX_LINE_BYTES:,}-byte limit.",
            )
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise line_error(
                source, number, f"not valid UTF-8 (byte {exc.start + 1} of the line)."
            ) from None
    return lines


def _canonical(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _unknown_key(source: str, line: int, key: str, what: str = "key") -> ManifestError:
    close = difflib.get_close_matches(_canonical(key), KNOWN_KEYS, n=1, cutoff=0.6)
    suggestion = f"; did you mean {close[0]!r}?" if close else ""
    return line_error(
        source,
        line,
        f"unknown {what} {key!r}{suggestion}",
        hints=["Keys: " + " ".join(sorted(KNOWN_KEYS))],
    )


def _parse_jsonl(lines: list[str], source: str) -> list[ManifestEntry]:
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
            raise line_error(source, number, f"not valid JSON ({detail}{where}).") from None
        if isinstance(value, str):
            value = {"prompt": value}
        if not isinstance(value, dict):
            raise line_error(source, number, "expected a JSON object (or a string prompt).")
        entries.append(
            ManifestEntry(len(entries) + 1, number, _normalise(value, source, number, False))
        )
    return entries


def _parse_text(lines: list[str], source: str) -> list[ManifestEntry]:
    entries: list[ManifestEntry] = []
    for number, text in enumerate(lines, start=1):
        prompt = text.strip()
        if not prompt or prompt.startswith("#"):
            continue
        entries.append(ManifestEntry(len(entries) + 1, number, {"prompt": prompt}))
    return entries


def _parse_csv(lines: list[str], source: str) -> list[ManifestEntry]:
    start = next((index for index, line in enumerate(lines) if line.strip()), None)
    if start is None:
        return []
    reader = csv.reader(io.StringIO("\n".join(lines[start:])))
    header_line = start + 1
    try:
        header = next(reader)
    except csv.Error as exc:
        raise line_error(source, header_line, f"cannot read the CSV header ({exc}).") from None
    names: list[str] = []
    for cell in header:
        name = _canonical(cell)
        if name not in KNOWN_KEYS:
            raise _unknown_key(source, header_line, cell.strip(), "column")
        if ALIASES.get(name, name) in (ALIASES.get(other, other) for other in names):
            raise line_error(source, header_line, f"column {cell.strip()!r} given twice.")
        names.append(name)
    if "prompt" not in names:
        raise line_error(source, header_line, "the header has no 'prompt' column.")
    entries: list[ManifestEntry] = []
    consumed = reader.line_num
    while True:
        first_line = start + consumed + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise line_error(source, first_line, f"cannot read the CSV row ({exc}).") from None
        consumed = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(names):
            raise line_error(
                source, first_line, f"{len(row)} cells, but the header names {len(names)}."
            )
        raw = {name: cell for name, cell in zip(names, row, strict=False) if cell.strip()}
        entries.append(
            ManifestEntry(len(entries) + 1, first_line, _normalise(raw, source, first_line, True))
        )
    return entries


def _normalise(raw: dict[str, Any], source: str, line: int, from_csv: bool) -> dict[str, Any]:
    """Canonical keys and typed values; ManifestError for unknown keys and wrong types."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = _canonical(str(key))
        if name not in KNOWN_KEYS:
            raise _unknown_key(source, line, str(key))
        name = ALIASES.get(name, name)
        if value is None:
            continue
        if name in STRING_KEYS:
            if not isinstance(value, str):
                raise line_error(
                    source, line, f"{name!r} must be a string, not {json.dumps(value)}."
                )
            values[name] = value.strip() if name != "prompt" else value
        elif name in INT_KEYS:
            values[name] = _as_int(name, value, source, line)
        elif name == "refs":
            values["refs"] = values.get("refs", ()) + _as_refs(value, source, line, from_csv)
        else:
            values["params"] = values.get("params", ()) + _as_params(value, source, line)
    if "prompt" not in values:
        raise line_error(source, line, "no 'prompt'.")
    return values


def _as_int(name: str, value: Any, source: str, line: int) -> int:
    if isinstance(value, bool):
        raise line_error(source, line, f"{name!r} must be an integer, not {json.dumps(value)}.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise line_error(source, line, f"{name!r} must be an integer, not {json.dumps(value)}.")


def _as_refs(value: Any, source: str, line: int, from_csv: bool) -> tuple[str, ...]:
    if isinstance(value, str):
        # A CSV cell holds several references separated by spaces or '|'.
        parts = value.replace("|", " ").split() if from_csv else [value.strip()]
        return tuple(part for part in parts if part)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise line_error(source, line, "'refs' must be a list of URLs or paths.")


def _as_params(value: Any, source: str, line: int) -> tuple[str, ...]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                raise line_error(source, line, "'params' is not a valid JSON object.") from None
        else:
            return tuple(part.strip() for part in text.split(";") if part.strip())
    if isinstance(value, dict):
        return tuple(f"{key}={json.dumps(item)}" for key, item in value.items())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise line_error(source, line, "'params' must be an object (or a list of KEY=VALUE).")
