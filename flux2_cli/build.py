"""The request builder: the one road from what was asked to the neutral request.

Every request (``gen``, each batch entry, ``--dry-run``) is built here, and only here, from its
sources in precedence, highest first: the explicit layers a command passes (``gen``'s flags; for
a batch entry its own keys, then the command-line flags, which are the entries' defaults), then
the config file's chosen profile, then its top level, then flux2's defaults (the provider's own
defaults are the provider's: a value no layer sets is not sent).

Each value remembers its source, so that every message names it: ``--ratio``,
``prompts.jsonl line 3: ratio``, ``config key safety (profile work)``. Values are checked once,
by the rules of :data:`flux2_cli.request.OPTIONS`, then against the provider's Capabilities.

A config value (a default, not asked for in this run) for an option the chosen provider does not
take at all (``safety``, ``format``, ``seed`` …) is not sent and is reported once as a notice:
``config set safety 3`` is for the providers that have a safety setting. The same option given
on the command line or in a manifest is an error (exit 2): nothing that was asked for is
silently dropped.

The output intent (where a task's images go: ``-o``, ``--name``, what the task was submitted
with, config ``output_dir`` and ``name``) is settled here too, by :func:`output_intent`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux2_cli.errors import UsageError
from flux2_cli.request import OPTIONS, REQUEST_DEFAULTS, GenerationRequest, Invalid

if TYPE_CHECKING:
    from flux2_cli.config import Settings
    from flux2_cli.providers.base import Provider

FLAG = "flag"
ENTRY = "entry"
ENV = "env"
CONFIG = "config"
SIZE_BY_RATIO = ("ratio", "res")
SIZE_BY_PIXELS = ("width", "height")
MAX_PROVIDER_RETRIES = len(OPTIONS)


@dataclass(frozen=True)
class Layer:
    """One source of request values and how to name each of its keys in a message.

    ``kind`` is ``flag`` (``--ratio``), ``entry`` (``where`` = ``m.jsonl line 3``: ``m.jsonl
    line 3: ratio``), ``env`` (``where`` = the variable) or ``config`` (``where`` = ``profile
    work`` or empty: ``config key ratio (profile work)``). ``labels`` overrides single names
    (``gen -`` names its prompt ``PROMPT (stdin)``).
    """

    kind: str
    values: Mapping[str, Any]
    where: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    def label(self, key: str) -> str:
        """Where ``key``'s value came from, in the words a message uses."""
        if key in self.labels:
            return self.labels[key]
        if self.kind == FLAG:
            return "/".join(
                OPTIONS[part].flag if part in OPTIONS else "--" + part.replace("_", "-")
                for part in key.split("/")
            )
        if self.kind == ENTRY:
            return f"{self.where}: {key}"
        if self.kind == CONFIG:
            return f"config key {key}" + (f" ({self.where})" if self.where else "")
        return self.where

    @property
    def asked(self) -> bool:
        """True for what this run asked for (flags, a manifest entry); False for defaults."""
        return self.kind in (FLAG, ENTRY)

    def given(self, key: str) -> bool:
        """True when this layer sets ``key`` (None and empty lists set nothing)."""
        value = self.values.get(key)
        return value is not None and value != () and value != []


class RequestError(UsageError):
    """The request cannot be built: every problem found, each naming its source (exit 2)."""

    def __init__(self, problems: Sequence[str], hints: list[str] | None = None) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:\n" + "\n".join(
                f"  {problem}" for problem in self.problems
            )
        super().__init__(message, hints=hints)


@dataclass(frozen=True)
class Built:
    """A validated request, where each of its values came from, and notices for people."""

    request: GenerationRequest
    sources: Mapping[str, str]
    notices: tuple[str, ...] = ()


def config_layers(settings: Settings) -> list[Layer]:
    """The config file's request options as layers: the chosen profile's, then the top level's."""
    return [
        Layer(CONFIG, values, f"profile {profile}" if profile else "")
        for profile, values in settings.request_defaults
    ]


def build_request(provider: Provider, layers: Sequence[Layer]) -> Built:
    """The validated neutral request from ``layers`` (highest first) for ``provider``.

    Raises RequestError listing every problem, each prefixed with its source.
    """
    layers = _settle_size(list(layers))
    problems: list[str] = []
    hints: list[str] = []
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    origin: dict[str, Layer] = {}
    for name, option in OPTIONS.items():
        layer = next((layer for layer in layers if layer.given(name)), None)
        if layer is None:
            continue
        try:
            values[name] = option.check(layer.values[name])
        except Invalid as exc:
            problems.append(f"{layer.label(name)}: {exc}.")
            hints.extend(_config_hints(name, layer))
            continue
        sources[name] = layer.label(name)
        origin[name] = layer
    if not any(layer.given("prompt") for layer in layers):
        problems.append("no prompt given.")
    problems.extend(_pair_problems(layers))
    if problems:
        raise RequestError(problems, hints)
    if provider.capabilities.size_optional and not any(
        key in values for key in (*SIZE_BY_RATIO, *SIZE_BY_PIXELS)
    ):
        # No layer asked for a size (flag, entry or config): the model chooses it (BFL).
        values["default_size"] = True
    for name, default in REQUEST_DEFAULTS.items():
        values.setdefault(name, default)
    request = GenerationRequest(**values)
    entry = next((layer.where for layer in layers if layer.kind == ENTRY), "")
    try:
        request, notices = _provider_check(provider, request, sources, origin)
    except RequestError:
        raise
    except UsageError as exc:
        # A rule of the provider's own that names no option: say at least which entry.
        raise RequestError(
            [f"{entry}: {exc.message}" if entry else exc.message], exc.hints
        ) from None
    notices.extend(_param_overrides(provider, request, sources))
    return Built(request=request, sources=sources, notices=tuple(notices))


def _param_overrides(
    provider: Provider, request: GenerationRequest, sources: Mapping[str, str]
) -> list[str]:
    """A warning for each ``--param`` key that replaces a field flux2 itself sends.

    ``--param`` is the way to send what flux2 has no option for; replacing ``prompt`` or
    ``aspect_ratio`` with it is allowed (the provider gets what was asked) but never silent:
    the sidecar, the ledger and ``--dry-run`` would otherwise disagree with what was sent.
    """
    if not request.params:
        return []
    bare = provider.build_create(dataclasses.replace(request, params={})).json or {}
    # Top-level keys, and those of a nested parameter object (vtrix sends {"params": {...}}).
    ours = set(bare) | {key for value in bare.values() if isinstance(value, dict) for key in value}
    where = sources.get("params", "--param")
    return [
        f"warning: {where} {key}=… replaces the {key!r} flux2 sets from its own options; "
        "the --param value is sent."
        for key in sorted(set(request.params) & ours)
    ]


def _settle_size(layers: list[Layer]) -> list[Layer]:
    """Ratio/res and width/height are two ways to size an image: the higher layer's way wins
    (a config ratio never fights ``--width``); both in one layer is a problem (reported later)."""

    def first(keys: Iterable[str]) -> int | None:
        return next(
            (i for i, layer in enumerate(layers) if any(layer.given(k) for k in keys)), None
        )

    by_ratio, by_pixels = first(SIZE_BY_RATIO), first(SIZE_BY_PIXELS)
    if by_ratio is None or by_pixels is None or by_ratio == by_pixels:
        return layers
    drop = SIZE_BY_RATIO if by_pixels < by_ratio else SIZE_BY_PIXELS
    return [
        dataclasses.replace(layer, values={k: v for k, v in layer.values.items() if k not in drop})
        for layer in layers
    ]


def _pair_problems(layers: Sequence[Layer]) -> list[str]:
    problems: list[str] = []
    for layer in layers:
        ratio = [k for k in SIZE_BY_RATIO if layer.given(k)]
        pixels = [k for k in SIZE_BY_PIXELS if layer.given(k)]
        if ratio and pixels:
            problems.append(
                f"{layer.label(pixels[0])}: give width/height or ratio/res, not both "
                f"({layer.label(ratio[0])} is given too)."
            )
        elif len(pixels) == 1:
            other = "height" if pixels[0] == "width" else "width"
            problems.append(
                f"{layer.label(pixels[0])}: width and height go together; "
                f"{layer.label(other)} is missing."
            )
    return problems


def _provider_check(
    provider: Provider,
    request: GenerationRequest,
    sources: dict[str, str],
    origin: Mapping[str, Layer],
) -> tuple[GenerationRequest, list[str]]:
    """The provider's own rules; a config default it does not take at all is dropped once."""
    from flux2_cli.providers.base import OptionRefused

    notices: list[str] = []
    for _ in range(MAX_PROVIDER_RETRIES):
        try:
            provider.validate(request)
        except OptionRefused as exc:
            fields = exc.field.split("/")
            layer = origin.get(fields[0])
            if exc.not_taken and layer is not None and not layer.asked:
                shown = ", ".join(f"{sources[f]} = {getattr(request, f)!r}" for f in fields)
                notices.append(f"{shown} does not apply to provider {exc.provider}; not sent.")
                cleared: dict[str, Any] = {f: None for f in fields}
                request = dataclasses.replace(request, **cleared)
                for f in fields:
                    sources.pop(f, None)
                continue
            label = layer.label(exc.field) if layer is not None else exc.field
            hints = _config_hints(fields[0], layer) if layer is not None else []
            why = _in_keys(exc.why) if layer is not None and layer.kind != FLAG else exc.why
            raise RequestError([f"{label}: {why} (provider {exc.provider})."], hints) from None
        return request, notices
    raise AssertionError("the provider kept refusing dropped options")  # pragma: no cover


def _in_keys(text: str) -> str:
    """A provider's reason with its flags as the keys a manifest or config uses
    (``--param seed=N`` -> ``params seed=N``): a manifest's errors name its own keys."""
    for option in OPTIONS.values():
        if option.flag.startswith("--"):
            text = re.sub(rf"{re.escape(option.flag)}(?![\w-])", option.name, text)
    return text


def _config_hints(key: str, layer: Layer) -> list[str]:
    if layer.kind != CONFIG:
        return []
    profile = layer.where.removeprefix("profile ")
    scope = f" --profile {profile}" if layer.where else ""
    return [f"Change it with: flux2 config set {key} VALUE{scope} (or config unset {key}{scope})."]


# --------------------------------------------------------------------------- the output intent

OUTPUT_INTENT = "output_intent"  # Task.extra key: where a task's images go, kept in the ledger
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_SEPARATORS = tuple(sep for sep in ("/", os.sep, os.altsep) if sep)
SHOWN_PATH_CHARS = 60
DEFAULT_NAME_MAX = 255
DEFAULT_PATH_MAX = 4096


@dataclass(frozen=True)
class OutputIntent:
    """Where a task's images go: ``output`` as DownloadOptions takes it (a folder ending in
    ``/``, a file path, or ``-``) and the file name template."""

    output: str
    name: str
    # Where ``output`` came from, for messages: -o, config key output_dir, or the task's kept -o.
    source: str = field(default="-o", compare=False)

    def to_json(self) -> dict[str, str]:
        """The form kept in the ledger (``Task.extra['output_intent']``): absolute paths, so a
        later ``flux2 download`` from another folder saves in the same place."""
        if self.output == "-":
            return {"name": self.name}
        folder = self.output.endswith(_SEPARATORS)
        absolute = os.path.abspath(os.path.expanduser(self.output))
        return {"output": absolute + ("/" if folder else ""), "name": self.name}


def output_intent(
    output: str | None,
    name: str | None,
    settings: Settings,
    stored: Mapping[str, Any] | None = None,
) -> OutputIntent:
    """Where images go: ``-o``/``--name`` as given, else what the task was submitted with
    (``stored``), else config ``output_dir`` (always a folder) and ``name``.

    A template in ``-o`` (``-o 'out/{slug}.png'``) is a folder and a name template; a ``/`` in
    ``--name`` (``--name 'heroes/{slug}'``) adds folders under the output folder. Folders are
    created when the first file lands. Template fields in a folder part are refused with a hint.
    """
    stored = stored or {}
    template, label = name, "--name"
    if output is not None and output != "-" and "{" in output:
        if name is not None:
            raise UsageError(
                f"-o {output}: a template in -o and --name {name} both name the file; give one.",
                hints=["E.g. -o out/ --name '{slug}-{seed}'"],
            )
        folder, template = _split_template(output, "-o")
        output, label = folder, "-o"
    if template is None:
        template = stored.get("name")
    if template is None:
        template, label = settings.name, "config key name"
    if template.endswith(_IMAGE_SUFFIXES):
        # The format comes from the image itself: ".png" in a template becomes ".{ext}".
        template = template.rsplit(".", 1)[0] + ".{ext}"
    if any(sep in template for sep in _SEPARATORS):
        if os.path.isabs(template) or template.startswith("~"):
            raise UsageError(
                f"{label} {template}: the name template is relative to the output folder.",
                hints=["Give the folder with -o FOLDER/ and the file name with --name."],
            )
        folder, template = _split_template(template, label)
        base = output if output is not None else stored.get("output")
        if base is None:
            base = _as_folder(settings.output_dir)
        if base == "-" or not _is_folder(base):
            raise UsageError(
                f"{label} with a folder ({folder}) needs -o to name a folder, not the file {base}.",
                hints=["End -o with / to name a folder."],
            )
        output = os.path.join(base, folder) + "/"
    source = "-o"
    if output is None:
        if stored.get("output"):
            output, source = str(stored["output"]), "-o (kept with the task)"
        else:
            output, source = _as_folder(settings.output_dir), "config key output_dir"
    check_path_length(output, source)
    return OutputIntent(output=output, name=template, source=source)


def check_path_length(path: str, flag: str) -> None:
    """UsageError (exit 2) when ``path``, or one of its parts, is longer than the file system
    takes: it could never be written, and the task would be paid for first."""
    if path in ("", "-"):
        return
    if "\x00" in path:
        raise UsageError(f"{flag}: the path contains a NUL character.")
    full = os.path.abspath(os.path.expanduser(path))
    name_max, path_max = _limits(full)
    longest = max(len(part.encode("utf-8", "surrogateescape")) for part in Path(full).parts)
    size = len(full.encode("utf-8", "surrogateescape"))
    if longest <= name_max and size < path_max:
        return
    shown = path if len(path) <= SHOWN_PATH_CHARS else path[:SHOWN_PATH_CHARS] + "…"
    raise UsageError(
        f"{flag} {shown}: the path is longer than the file system allows ({size:,} bytes, at "
        f"most {path_max - 1:,}; its longest part {longest:,} bytes, at most {name_max:,}).",
        hints=["Use a shorter folder or file name."],
    )


def _limits(path: str) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX where ``path`` would be written (its nearest existing folder)."""
    folder = path
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # Windows has no pathconf
        return DEFAULT_NAME_MAX, DEFAULT_PATH_MAX


def _split_template(text: str, flag: str) -> tuple[str, str]:
    """(folder ending in /, file name template) of a path whose last part is a template."""
    head, tail = os.path.split(text.replace(os.sep, "/") if os.sep != "/" else text)
    if "{" in head:
        raise UsageError(
            f"{flag} {text}: template fields go in the file name only, not in a folder.",
            hints=["E.g. -o out/ --name '{slug}-{id8}'"],
        )
    if not tail:
        raise UsageError(f"{flag} {text}: ends with a folder; give a file name template too.")
    return (head + "/" if head else "./"), tail


def _as_folder(path: str) -> str:
    """Config ``output_dir`` is always a folder (``~/images`` is never a file ``images.png``)."""
    if path in ("", "."):
        return "."
    return path if path.endswith(_SEPARATORS) else path + "/"


def _is_folder(path: str) -> bool:
    return path in ("", ".") or path.endswith(_SEPARATORS) or os.path.isdir(path)
