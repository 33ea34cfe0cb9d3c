"""Batch planning: each entry's request, fingerprint and output; stable shards."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux2_cli.atomic import file_sha256
from flux2_cli.batch.manifest import ManifestEntry, ManifestError, Problems
from flux2_cli.build import (
    ENTRY,
    Layer,
    RequestError,
    build_request,
    check_path_length,
    config_layers,
)
from flux2_cli.errors import UsageError
from flux2_cli.jobs import variants
from flux2_cli.request import GenerationRequest, is_url
from flux2_cli.task import Cost

KEY_SLUG_CHARS = 40
KEY_HASH_CHARS = 8
PREFLIGHT_SHOWN = 20
PATH_KEYS = ("refs", "output")

if TYPE_CHECKING:
    from flux2_cli.context import Context
    from flux2_cli.providers.base import Provider


@dataclass(frozen=True)
class PlannedEntry:
    """One validated entry: its request, fingerprint, lock key, output and price."""

    number: int
    line: int
    key: str
    name: str | None
    request: GenerationRequest
    provider: str
    model: str
    fingerprint: str
    output: str
    name_template: str
    estimate: Cost | None

    @property
    def label(self) -> str:
        """How people see the entry: its name or number, and its line."""
        return f"{self.key} (line {self.line})"


def plan_entries(
    ctx: Context,
    provider: Provider,
    manifest: Path,
    entries: Iterable[ManifestEntry],
    flags: Layer | None = None,
    problems: Problems | None = None,
) -> list[PlannedEntry]:
    """Build every entry's request through the one road (its own keys, then the command-line
    ``flags``, then the config); every problem of every entry is reported at once, with those
    the manifest reader gathered in ``problems``."""
    from flux2_cli.download import validate_template

    settings = ctx.settings
    planned: list[PlannedEntry] = []
    seen_fingerprints: dict[str, int] = {}
    seen_keys: dict[str, int] = {}
    if settings.output_dir == "-":
        raise UsageError("-o - (image bytes on stdout) does not go with batch; give a folder.")
    default_output = _as_folder(settings.output_dir)
    check_path_length(default_output, "-o")
    source = "stdin" if str(manifest) == "-" else manifest.name
    base = Path.cwd() if str(manifest) == "-" else manifest.parent  # relative paths' origin
    problems = problems if problems is not None else Problems(source)
    notices: list[str] = []
    defaults = [flags] if flags is not None else []
    defaults += config_layers(settings)
    for entry in entries:
        values = entry.values
        where = f"{source} line {entry.line}"
        name = values.get("name") or None
        template = name or settings.name
        try:
            validate_template(template)
        except UsageError as exc:
            problems.add(entry.line, f"name: {exc.message}", exc.hints)
        layers = [Layer(ENTRY, values, where)]
        if values.get("from"):
            origin = _origin_layer(ctx, str(values["from"]), base, where)
            if isinstance(origin, UsageError):
                problems.add(entry.line, origin.message, origin.hints)
                continue
            layers.append(origin)
        try:
            built = build_request(provider, [*layers, *defaults])
        except RequestError as exc:
            problems.extend(entry.line, exc.problems, exc.hints)
            continue
        notices.extend(notice for notice in built.notices if notice not in notices)
        missing = _unreadable_refs(built.request)
        if missing:
            for problem in missing:
                problems.add(entry.line, problem)
            continue
        output = values.get("output")
        if output == "-":
            problems.add(entry.line, "output: cannot be - in a batch; give a path.")
            continue
        if output:
            try:
                check_path_length(output, "output:")
            except UsageError as exc:
                problems.add(entry.line, exc.message)
                continue
        count = int(values.get("n") or 1)
        named = name is not None and "{" not in name
        base_key = name if named and name is not None else content_key(values, base)
        if not named and base_key in seen_keys:
            # Identical unnamed lines are distinct entries, each with its own stable key.
            copy = 2
            while f"{base_key}-{copy}" in seen_keys:
                copy += 1
            base_key = f"{base_key}-{copy}"
        if count > 1 and "{n}" not in template and "{" not in template:
            template += "-{n}"  # a fixed name: N images need N names
        for number, request in enumerate(variants(built.request, count), start=1):
            model = provider.model_for(request)
            fingerprint = request_fingerprint(request, provider.capabilities.id, model)
            # Identical entries are distinct images: each repeat gets its own fingerprint.
            repeat = seen_fingerprints.get(fingerprint, 0) + 1
            seen_fingerprints[fingerprint] = repeat
            if repeat > 1:
                fingerprint = hashlib.sha256(f"{fingerprint}#{repeat}".encode()).hexdigest()
            key = base_key if count == 1 else f"{base_key}-{number}"
            if key in seen_keys:
                problems.add(entry.line, f"name {key!r} is already used on line {seen_keys[key]}.")
                break
            seen_keys[key] = entry.line
            planned.append(
                PlannedEntry(
                    number=entry.number,
                    line=entry.line,
                    key=key,
                    name=name,
                    request=request,
                    provider=provider.capabilities.id,
                    model=model,
                    fingerprint=fingerprint,
                    output=output if output else default_output,
                    name_template=template.replace("{n}", str(number)) if count > 1 else template,
                    estimate=provider.estimate_cost(request),
                )
            )
    problems.raise_if_any()
    for notice in notices:
        ctx.output.info(notice)
    return planned


def _origin_layer(ctx: Context, ref: str, base: Path, where: str) -> Layer | UsageError:
    """An entry's ``from``: the earlier request as a layer below the entry's own keys.

    The run's provider stays the run's: ``from`` brings the request's fields, not its provider.
    """
    from flux2_cli.origin import as_layer, load_origin

    if ref.strip().lower() == "last":
        # A manifest is run again and again; "last" would name another task each time.
        return UsageError(
            "from: 'last' names a different task on every run; give a task id or a file."
        )
    try:
        origin = load_origin(ref, lookup=ctx.ledger().resolve, base=base, flag="from")
    except UsageError as exc:
        return exc
    return as_layer(origin, f"{where}: from {origin.label}")


def content_key(values: Mapping[str, Any], base: Path | None = None) -> str:
    """An unnamed entry's lock key: a slug of its prompt and a hash of its own values.

    Only what the manifest line says counts (not the command-line defaults, not the line
    number): inserting or reordering lines, or changing ``--ratio``, keeps every key. Paths
    under the manifest's folder (``base``) count as written relative to it, so the key is the
    same in every checkout.
    """
    own = {
        name: _portable(value, base) if name in PATH_KEYS else value
        for name, value in values.items()
        if name != "name"
    }
    canonical = json.dumps(own, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:KEY_HASH_CHARS]
    words = re.findall(r"[a-z0-9]+", str(values.get("prompt", "")).lower())
    slug = ""
    for word in words:
        if len(slug) + len(word) + 1 > KEY_SLUG_CHARS:
            break
        slug = f"{slug}-{word}" if slug else word
    return f"{slug}-{digest}" if slug else digest


def _portable(value: Any, base: Path | None) -> Any:
    """A path inside ``base`` as relative to it (POSIX); anything else as is."""
    if isinstance(value, (tuple, list)):
        return [_portable(item, base) for item in value]
    if base is None or not isinstance(value, str) or "://" in value:
        return value
    try:
        relative = Path(os.path.abspath(value)).relative_to(base.resolve()).as_posix()
    except ValueError:
        return value
    return relative + "/" if value.endswith(("/", os.sep)) else relative


def _unreadable_refs(request: GenerationRequest) -> list[str]:
    """Local references that cannot be sent, found before the first POST of the run."""
    from flux2_cli.refs import read_ref_file

    found: list[str] = []
    for ref in request.refs:
        if is_url(ref):
            continue
        try:
            read_ref_file(ref)
        except UsageError as exc:
            found.append("refs: " + exc.message.removeprefix("--ref "))
    return found


def request_fingerprint(request: GenerationRequest, provider: str, model: str) -> str:
    """The request's fingerprint; a local reference counts by its bytes, not its path.

    Relative references are made absolute from the manifest's folder, which differs from one
    checkout (a CI runner) to the next: the path would change the fingerprint, the bytes do not.
    """
    if not any(not is_url(ref) for ref in request.refs):
        return request.fingerprint(provider, model)
    refs = tuple(
        ref if is_url(ref) else "file:" + (file_sha256(Path(ref).expanduser()) or "missing")
        for ref in request.refs
    )
    return dataclasses.replace(request, refs=refs).fingerprint(provider, model)


def preflight(planned: list[PlannedEntry], source: str, *, create: bool) -> None:
    """Before the first POST: every output folder exists (or is created) and is writable.

    (Local references were read when the entries were planned.) One ManifestError lists every
    folder that cannot work; a dry run (``create`` False) creates nothing.
    """
    problems: list[str] = []
    folders: dict[Path, int] = {}
    for entry in planned:
        folders.setdefault(output_folder(entry.output), entry.line)
    for folder, line in folders.items():
        problem = _folder_problem(folder, create=create)
        if problem is not None:
            problems.append(f"line {line}: {problem}")
    if not problems:
        return
    shown = problems[:PREFLIGHT_SHOWN]
    more = len(problems) - len(shown)
    text = "; ".join(shown) + (f" (and {more} more)" if more else "")
    raise ManifestError(f"{source}: {text} Nothing was sent.")


def output_folder(output: str) -> Path:
    """The folder an entry's images go to (an ``output`` without a final / is a file path)."""
    path = Path(output).expanduser()
    if output.endswith(("/", os.sep)) or path.is_dir():
        return path
    return path.parent


def _folder_problem(folder: Path, *, create: bool) -> str | None:
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            return f"the output {folder} is a file, not a folder."
        except OSError as exc:
            return f"the output folder {folder} cannot be created ({exc.strerror or exc})."
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # a dry run: created on the real run, below this one
    if not existing.is_dir():
        return f"the output {existing} is a file, not a folder."
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the output folder {existing} is not writable."
    return None


def _as_folder(output: str) -> str:
    if output in ("", "."):
        return "."
    return output if output.endswith(("/", os.sep)) else output + "/"


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``K/N`` (1 ≤ K ≤ N), or ``auto`` read from the CI's variables; else a UsageError."""
    if text.strip().lower() == "auto":
        return auto_shard(os.environ if env is None else env)
    part, sep, whole = text.partition("/")
    try:
        k, n = int(part), int(whole)
    except ValueError:
        k = n = 0
    if not sep or n < 1 or not 1 <= k <= n:
        raise UsageError(f"--shard {text!r}: expected K/N with 1 ≤ K ≤ N, such as 2/4, or auto.")
    return k, n


def auto_shard(env: Mapping[str, str]) -> tuple[int, int]:
    """``--shard auto``: the first CI whose index and total variables are both set."""
    from flux2_cli.env import SHARD_VARIABLES

    for index_var, total_var, first in SHARD_VARIABLES:
        index_text, total_text = env.get(index_var, "").strip(), env.get(total_var, "").strip()
        if not index_text and not total_text:
            continue
        if not index_text or not total_text:
            missing = total_var if index_text else index_var
            present = index_var if index_text else total_var
            raise UsageError(
                f"--shard auto: {present} is set but {missing} is not; set both, "
                "or give --shard K/N."
            )
        try:
            index, total = int(index_text), int(total_text)
        except ValueError:
            index = total = -1
        k = index - first + 1
        if total < 1 or not 1 <= k <= total:
            raise UsageError(
                f"--shard auto: {index_var}={index_text!r} and {total_var}={total_text!r} "
                f"do not make a shard ({index_var} counts from {first})."
            )
        return k, total
    names = ", ".join(f"{index_var}/{total_var}" for index_var, total_var, _ in SHARD_VARIABLES)
    raise UsageError(
        f"--shard auto: none of the CI's shard variables is set ({names}).",
        hints=["Give --shard K/N, or run it in a parallel CI job."],
    )


def select_shard(planned: list[PlannedEntry], k: int, n: int) -> list[PlannedEntry]:
    """Shard ``k`` of ``n``: an even, stable share, in manifest order.

    Entries are ordered by a hash of what they are (never their line), and that order is cut
    into ``n`` runs whose sizes differ by at most one. Reordering the manifest changes nothing;
    an added or removed entry moves at most ``n - 1`` others across a cut.
    """
    ordered = sorted(planned, key=_shard_token)
    count = len(ordered)
    chosen = {id(entry) for entry in ordered[(k - 1) * count // n : k * count // n]}
    return [entry for entry in planned if id(entry) in chosen]


def _shard_token(entry: PlannedEntry) -> str:
    # The key (a name, or the entry's own values) is unique and independent of the line and of
    # the command-line defaults; hashed, so shares mix names and prompts evenly.
    return hashlib.sha256(entry.key.encode("utf-8")).hexdigest()
