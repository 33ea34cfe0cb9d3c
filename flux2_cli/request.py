"""GenerationRequest: the neutral request every provider translates, its validation and sizes."""

from __future__ import annotations

import json
import math
import re
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


@dataclass(frozen=True)
class RequestFlags:
    """What one ``gen`` call or batch entry asks for beyond the settings (ratio, res, mode,
    format, safety and model come from the settings, where flags and config already met)."""

    prompt: str
    ratio_given: bool = False
    res_given: bool = False
    refs: tuple[str, ...] = ()
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    callback_url: str | None = None
    params: tuple[str, ...] = ()
    upsample: bool | None = None  # False: --no-upsample


def snap(value: int, multiple: int) -> int:
    """Round to the nearest multiple, halves rounding up (1080 -> 1088 for 32 and for 16)."""
    if multiple <= 1:
        return value
    return math.floor(value / multiple + 0.5) * multiple


def normalise_ratio(value: str) -> str:
    """Canonical ratio or a UsageError listing the seven."""
    text = value.strip()
    if text not in RATIOS:
        raise UsageError(f"--ratio {value!r} is not supported; choose one of {', '.join(RATIOS)}.")
    return text


def normalise_res(value: str) -> str:
    """Canonical upper-case resolution (``2k`` -> ``2K``) or a UsageError."""
    text = value.strip().upper()
    if text not in RESOLUTIONS:
        raise UsageError(f"--res {value!r} is not supported; choose 1K or 2K.")
    return text


def normalise_mode(value: str) -> str:
    """Canonical mode or a UsageError."""
    text = value.strip().lower()
    if text not in MODES:
        raise UsageError(f"--mode {value!r} is not supported; choose pro or flex.")
    return text


def normalise_format(value: str) -> str:
    """Canonical output format (``jpg`` -> ``jpeg``) or a UsageError."""
    text = value.strip().lower()
    text = _FORMAT_ALIASES.get(text, text)
    if text not in FORMATS:
        raise UsageError(f"--format {value!r} is not supported; choose png, jpeg or webp.")
    return text


def validate_prompt(prompt: str, max_chars: int | None = None) -> str:
    """The prompt, checked: at least 3 characters, not blank, no NUL or control bytes.

    The maximum is each provider's (``Capabilities.prompt_max``: 5,000 for API in One, none
    documented for BFL), checked with the provider's rules; ``max_chars`` applies one here.
    """
    if "\x00" in prompt:
        raise UsageError("The prompt contains a NUL character.")
    stripped = prompt.strip()
    if not stripped:
        raise UsageError("The prompt is empty.")
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in stripped):
        raise UsageError("The prompt contains control characters.")
    if len(stripped) < PROMPT_MIN_CHARS:
        raise UsageError(f"The prompt is too short: at least {PROMPT_MIN_CHARS} characters.")
    if max_chars is not None and len(stripped) > max_chars:
        raise UsageError(
            f"The prompt is too long: {len(stripped)} characters, at most {max_chars}."
        )
    return stripped


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from ``--param``: the value parsed as JSON, else kept as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"--param {text!r} is not KEY=VALUE.")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


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
    """Checks that hold for every provider; provider rules come from its Capabilities."""
    prompt = validate_prompt(request.prompt)
    ratio = normalise_ratio(request.ratio)
    res = normalise_res(request.res)
    mode = normalise_mode(request.mode)
    fmt = normalise_format(request.format) if request.format is not None else None
    if len(request.refs) > MAX_REFERENCES:
        raise UsageError(f"{len(request.refs)} references given; at most {MAX_REFERENCES} (--ref).")
    if (request.width is None) != (request.height is None):
        raise UsageError("--width and --height go together.")
    for flag, value in (("--width", request.width), ("--height", request.height)):
        if value is not None and not 1 <= value <= MAX_DIMENSION:
            raise UsageError(f"{flag} {value} is out of range (1 to {MAX_DIMENSION}).")
    if request.seed is not None and not 0 <= request.seed <= 2**63 - 1:
        raise UsageError(f"--seed {request.seed} must be a non-negative integer.")
    if request.callback_url is not None and not is_url(request.callback_url):
        raise UsageError(f"--callback-url {request.callback_url!r} is not an http(s) URL.")
    if request.model is not None and not request.model.strip():
        raise UsageError("--model is empty.")
    for key, value in request.params.items():
        if _holds_null(value):
            # No provider is sent explicit nulls (wire-contracts.md; BFL answers 500 to some).
            raise UsageError(f"--param {key}: null values are not sent; leave the key out.")
    return GenerationRequest(
        prompt=prompt,
        ratio=ratio,
        res=res,
        mode=mode,
        refs=request.refs,
        seed=request.seed,
        width=request.width,
        height=request.height,
        format=fmt,
        safety=request.safety,
        callback_url=request.callback_url,
        webhook_secret=request.webhook_secret,
        params=dict(request.params),
        model=request.model.strip() if request.model else None,
        upsample=request.upsample,
        default_size=request.default_size,
    )
