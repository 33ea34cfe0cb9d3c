"""Batch planning: each entry's request, fingerprint and output; stable shards."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flux2_cli.atomic import file_sha256
from flux2_cli.batch.manifest import ManifestEntry, Problems
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
    problems = problems if problems is not None else Problems(source)
    notices: list[str] = []
    defaults = [flags] if flags is not None else []
    defaults += config_layers(settings)
    base = Path.cwd() if str(manifest) == "-" else manifest.parent
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
        base_key = name if name and "{" not in name else f"#{entry.number}"
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
    from flux2_cli.origin import load_origin

    if ref.strip().lower() == "last":
        # A manifest is run again and again; "last" would name another task each time.
        return UsageError(
            "from: 'last' names a different task on every run; give a task id or a file."
        )
    try:
        origin = load_origin(ref, lookup=ctx.ledger().resolve, base=base, flag="from")
    except UsageError as exc:
        return exc
    return Layer(ENTRY, dict(origin.request), f"{where}: from {origin.label}")


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
    """The request's fingerprint, with the bytes of local reference files mixed in."""
    fingerprint = request.fingerprint(provider, model)
    local = [ref for ref in request.refs if not is_url(ref)]
    if not local:
        return fingerprint
    digest = hashlib.sha256(fingerprint.encode())
    for ref in local:
        digest.update(b"\0" + (file_sha256(Path(ref).expanduser()) or "missing").encode())
    return digest.hexdigest()


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


def _shard_token(entry: PlannedEntry) -> tuple[str, str]:
    # The fingerprint depends only on the request (repeats are told apart), not on the line.
    return entry.fingerprint, entry.key
