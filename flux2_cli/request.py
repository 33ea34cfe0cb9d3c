"""GenerationRequest: the neutral request every provider translates, its validation and sizes."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flux2_cli.errors import UsageError

PROMPT_MIN_CHARS = 3
PROMPT_MAX_CHARS = 5000
MAX_REFERENCES = 8
RATIOS: tuple[str, ...] = ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3")
RESOLUTIONS: tuple[str, ...] = ("1K", "2K")
MODES: tuple[str, ...] = ("pro", "flex")
FORMATS: tuple[str, ...] = ("png", "jpeg", "webp")
DEFAULT_RATIO = "1:1"
DEFAULT_RES = "1K"
DEFAULT_MODE = "pro"
MAX_DIMENSION = 16384

# The APIMart table: how --ratio/--res become pixels, for every dialect that takes pixels.
SIZE_TABLE: dict[tuple[str, str], tuple[int, int]] = {
    ("1:1", "1K"): (1440, 1440),
    ("1:1", "2K"): (1536, 1536),
    ("4:3", "1K"): (1664, 1248),
    ("4:3", "2K"): (1824, 1368),
    ("3:4", "1K"): (1248, 1664),
    ("3:4", "2K"): (1368, 1824),
    ("16:9", "1K"): (1920, 1080),
    ("16:9", "2K"): (2048, 1152),
    ("9:16", "1K"): (1080, 1920),
    ("9:16", "2K"): (1152, 2048),
    ("3:2", "1K"): (1728, 1152),
    ("3:2", "2K"): (1872, 1248),
    ("2:3", "1K"): (1152, 1728),
    ("2:3", "2K"): (1248, 1872),
}

_FORMAT_ALIASES = {"jpg": "jpeg"}
_URL_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


@dataclass(frozen=True)
class GenerationRequest:
    """What the user asked for, independent of any provider's wire format.

    ``ratio``/``res``/``mode`` always hold a value (defaults filled in by the caller);
    ``width``/``height``, when given, replace ratio/res for the image size.
    """

    prompt: str
    ratio: str = DEFAULT_RATIO
    res: str = DEFAULT_RES
    mode: str = DEFAULT_MODE
    refs: tuple[str, ...] = ()
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    safety: int | None = None
    callback_url: str | None = None
    webhook_secret: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    # False: --no-upsample (generate from the prompt as written); None: the provider's default.
    upsample: bool | None = None
    # True: nobody asked for a size (no --width/--height, no --ratio/--res from a flag or the
    # config), and the provider lets the model choose it: ratio/res are then not sent.
    default_size: bool = False

    @property
    def has_explicit_size(self) -> bool:
        """True when width/height were given instead of ratio/res."""
        return self.width is not None and self.height is not None

    def pixel_size(self, multiple: int = 1) -> tuple[int, int]:
        """Width and height in pixels, snapped to ``multiple`` when derived from ratio/res."""
        if self.width is not None and self.height is not None:
            return self.width, self.height
        width, height = SIZE_TABLE[(self.ratio, self.res)]
        return snap(width, multiple), snap(height, multiple)

    def to_json(self) -> dict[str, Any]:
        """The ``request`` object of the JSON contract: the four basics, then what was set."""
        data: dict[str, Any] = {
            "prompt": self.prompt,
            # No size was sent when the model chose it (default_size): none is recorded.
            "ratio": None if self.default_size else self.ratio,
            "res": None if self.default_size else self.res,
            "mode": self.mode,
        }
        optional: dict[str, Any] = {
            "refs": list(self.refs) if self.refs else None,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "safety": self.safety,
            "callback_url": self.callback_url,
            "params": dict(self.params) if self.params else None,
            "model": self.model,
            "upsample": self.upsample,
            "default_size": True if self.default_size else None,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationRequest:
        """Rebuild a request from :meth:`to_json` output (as stored in the ledger)."""
        return cls(
            prompt=str(data.get("prompt", "")),
            ratio=str(data.get("ratio") or DEFAULT_RATIO),
            res=str(data.get("res") or DEFAULT_RES),
            mode=str(data.get("mode") or DEFAULT_MODE),
            refs=tuple(data.get("refs") or ()),
            seed=data.get("seed"),
            width=data.get("width"),
            height=data.get("height"),
            format=data.get("format"),
            safety=data.get("safety"),
            callback_url=data.get("callback_url"),
            params=dict(data.get("params") or {}),
            model=data.get("model"),
            upsample=data.get("upsample") if isinstance(data.get("upsample"), bool) else None,
            default_size=data.get("default_size") is True,
        )

    def fingerprint(self, provider: str, model: str) -> str:
        """A stable hash of everything that decides the result (for batch resume and locks)."""
        import hashlib  # lazily: request.py is imported on every start, for the option help

        payload = {"provider": provider, "model": model, **self.to_json()}
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def snap(value: int, multiple: int) -> int:
    """Round to the nearest multiple, halves rounding up (1080 -> 1088 for 32 and for 16)."""
    if multiple <= 1:
        return value
    return math.floor(value / multiple + 0.5) * multiple


class Invalid(ValueError):
    """A value an option does not take; the text says why and never names where it came from
    (the request builder puts the source in front: ``--ratio``, ``m.jsonl line 3: ratio``)."""


@dataclass(frozen=True)
class RequestOption:
    """One request option: its field (also its manifest and config key), flag and check.

    A new request option is one row of :data:`OPTIONS` (and a field of GenerationRequest):
    the builder, the manifest reader and ``config set`` all read this table.
    """

    name: str
    flag: str
    check: Callable[[Any], Any]
    configurable: bool = False


def _choice(value: Any, choices: tuple[str, ...], canonical: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{value!r} is not one of {', '.join(choices)}")
    if canonical not in choices:
        raise Invalid(f"{value!r} is not supported; choose one of {', '.join(choices)}")
    return canonical


def check_prompt(value: Any) -> str:
    """The prompt, stripped: at least 3 characters, not blank, no NUL or control bytes.

    The maximum is each provider's (``Capabilities.prompt_max``: 5,000 for API in One, none
    documented for BFL), checked with the provider's rules.
    """
    if not isinstance(value, str):
        raise Invalid(f"expected text, not {value!r}")
    if "\x00" in value:
        raise Invalid("contains a NUL character")
    bad = next((index for index, ch in enumerate(value) if "\ud800" <= ch <= "\udfff"), None)
    if bad is not None:
        # What the OS hands Python for bytes of argv that are not UTF-8 (surrogateescape).
        raise Invalid(f"is not valid UTF-8 (at character {bad + 1}); save it as UTF-8")
    stripped = value.strip()
    if not stripped:
        raise Invalid("the prompt is empty")
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in stripped):
        raise Invalid("contains control characters")
    if len(stripped) < PROMPT_MIN_CHARS:
        raise Invalid(f"the prompt is too short: at least {PROMPT_MIN_CHARS} characters")
    return stripped


def check_ratio(value: Any) -> str:
    """One of the seven ratios."""
    return _choice(value, RATIOS, value.strip() if isinstance(value, str) else "")


def check_res(value: Any) -> str:
    """``1K`` or ``2K`` (any case)."""
    return _choice(value, RESOLUTIONS, value.strip().upper() if isinstance(value, str) else "")


def check_mode(value: Any) -> str:
    """``pro`` or ``flex`` (any case)."""
    return _choice(value, MODES, value.strip().lower() if isinstance(value, str) else "")


def check_format(value: Any) -> str:
    """``png``, ``jpeg`` (or ``jpg``) or ``webp``."""
    text = value.strip().lower() if isinstance(value, str) else ""
    return _choice(value, FORMATS, _FORMAT_ALIASES.get(text, text))


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise Invalid(f"{value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise Invalid(f"{value!r} is not an integer")


def check_seed(value: Any) -> int:
    """A non-negative 63-bit integer."""
    number = _integer(value)
    if not 0 <= number <= 2**63 - 1:
        raise Invalid(f"{number} must be a non-negative integer")
    return number


def check_side(value: Any) -> int:
    """A width or height: 1 to 16,384 pixels (the provider's size rule comes later)."""
    number = _integer(value)
    if not 1 <= number <= MAX_DIMENSION:
        raise Invalid(f"{number} is out of range (1 to {MAX_DIMENSION})")
    return number


def check_safety(value: Any) -> int:
    """An integer (its range is the provider's)."""
    return _integer(value)


def check_url(value: Any) -> str:
    """An absolute http(s) URL."""
    if not isinstance(value, str) or not is_url(value.strip()):
        raise Invalid(f"{value!r} is not an http(s) URL")
    return value.strip()


def check_upsample(value: Any) -> bool:
    """``false`` (generate from the prompt as written: ``--no-upsample``) or ``true``."""
    if not isinstance(value, bool):
        raise Invalid(f"{value!r} is not true or false")
    return value


def check_model(value: Any) -> str:
    """A non-empty model id."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("the model id is empty")
    return value.strip()


def check_refs(value: Any) -> tuple[str, ...]:
    """At most eight references (URLs or paths)."""
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise Invalid("expected a list of URLs or paths")
    refs = tuple(item.strip() for item in items if item.strip())
    if len(refs) > MAX_REFERENCES:
        raise Invalid(f"{len(refs)} references given; at most {MAX_REFERENCES}")
    return refs


def check_params(value: Any) -> dict[str, Any]:
    """``KEY=VALUE`` texts (or a mapping) as a dict; values parsed as JSON; no nulls."""
    if isinstance(value, Mapping):
        pairs = [(str(key), item) for key, item in value.items()]
    elif isinstance(value, (list, tuple)):
        pairs = [_param_pair(text) for text in value]
    else:
        raise Invalid("expected KEY=VALUE pairs")
    params: dict[str, Any] = {}
    for key, item in pairs:
        if _holds_null(item):
            # No provider is sent explicit nulls (wire-contracts.md; BFL answers 500 to some).
            raise Invalid(f"{key}: null values are not sent; leave the key out")
        params[key] = item
    return params


def _param_pair(text: Any) -> tuple[str, Any]:
    if not isinstance(text, str):
        raise Invalid(f"{text!r} is not KEY=VALUE")
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise Invalid(f"{text!r} is not KEY=VALUE")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


OPTIONS: dict[str, RequestOption] = {
    option.name: option
    for option in (
        RequestOption("prompt", "PROMPT", check_prompt),
        RequestOption("model", "--model", check_model, configurable=True),
        RequestOption("mode", "--mode", check_mode, configurable=True),
        RequestOption("ratio", "--ratio", check_ratio, configurable=True),
        RequestOption("res", "--res", check_res, configurable=True),
        RequestOption("format", "--format", check_format, configurable=True),
        RequestOption("safety", "--safety", check_safety, configurable=True),
        RequestOption("refs", "--ref", check_refs),
        RequestOption("seed", "--seed", check_seed),
        RequestOption("width", "--width", check_side),
        RequestOption("height", "--height", check_side),
        RequestOption("callback_url", "--callback-url", check_url),
        RequestOption("params", "--param", check_params),
        RequestOption("upsample", "--no-upsample", check_upsample),
    )
}
# The request options a config file (or a profile) may set, in the order `config` shows them.
CONFIG_KEYS: tuple[str, ...] = tuple(name for name, opt in OPTIONS.items() if opt.configurable)
# Where a value no source gave comes from: flux2's own defaults (the provider's come later).
REQUEST_DEFAULTS: dict[str, Any] = {
    "ratio": DEFAULT_RATIO,
    "res": DEFAULT_RES,
    "mode": DEFAULT_MODE,
}


def _as_usage(flag: str, check: Callable[[Any], Any], value: Any) -> Any:
    try:
        return check(value)
    except Invalid as exc:
        raise UsageError(f"{flag}: {exc}.") from None


def normalise_ratio(value: str) -> str:
    """Canonical ratio or a UsageError listing the seven."""
    return str(_as_usage("--ratio", check_ratio, value))


def normalise_res(value: str) -> str:
    """Canonical upper-case resolution (``2k`` -> ``2K``) or a UsageError."""
    return str(_as_usage("--res", check_res, value))


def normalise_mode(value: str) -> str:
    """Canonical mode or a UsageError."""
    return str(_as_usage("--mode", check_mode, value))


def normalise_format(value: str) -> str:
    """Canonical output format (``jpg`` -> ``jpeg``) or a UsageError."""
    return str(_as_usage("--format", check_format, value))


def validate_prompt(prompt: str, max_chars: int | None = None) -> str:
    """The prompt, checked: at least 3 characters, not blank, no NUL or control bytes; at
    most ``max_chars`` when given (the maximum is otherwise the provider's)."""
    text = str(_as_usage("The prompt", check_prompt, prompt))
    if max_chars is not None and len(text) > max_chars:
        raise UsageError(f"The prompt is too long: {len(text)} characters, at most {max_chars}.")
    return text


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from ``--param``: the value parsed as JSON, else kept as a string."""
    try:
        return _param_pair(text)
    except Invalid as exc:
        raise UsageError(f"--param: {exc}.") from None


def is_url(text: str) -> bool:
    """True for an absolute http(s) URL."""
    return bool(_URL_RE.match(text))


def _holds_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_holds_null(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_null(item) for item in value)
    return False


def validate_request(request: GenerationRequest) -> GenerationRequest:
    """A request built in code (not from flags), checked field by field as the builder does;
    the builder (flux2_cli.build) is the road for what a user typed."""
    if (request.width is None) != (request.height is None):
        raise UsageError("--width and --height go together.")
    changes: dict[str, Any] = {}
    for name, option in OPTIONS.items():
        value = getattr(request, name)
        if value is None or (name in ("refs", "params") and not value):
            continue
        changes[name] = _as_usage(option.flag, option.check, value)
    return dataclasses.replace(request, **changes)
