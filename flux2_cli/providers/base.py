"""The Provider protocol, HttpCall and Capabilities: what every translator provides.

A provider is a pure translator: it turns a GenerationRequest into an ``HttpCall`` and a JSON
answer into a ``Task``. It does no I/O; the client sends the calls and the jobs module drives
the sequence. ``BaseProvider`` supplies the tolerant defaults of wire-contracts.md so that a
dialect only writes what is its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from flux2_cli.errors import ApiError, BadRequestError, UnexpectedResponseError, UsageError
from flux2_cli.providers import parsing
from flux2_cli.request import (
    MODES,
    PROMPT_MAX_CHARS,
    PROMPT_MIN_CHARS,
    RATIOS,
    RESOLUTIONS,
    GenerationRequest,
    is_url,
)
from flux2_cli.task import Cost, ImageResult, Task, TaskError, TaskStatus, merge_images, utc_now

BALANCE_FIELDS = ("credits", "balance", "remaining_credits")
# A URL scheme ("ftp:", "s3:", "data:"); one letter is a Windows drive ("C:\\img.png").
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
# What makes a --ref look like a file: a folder separator, or a file extension at the end.
_PATH_RE = re.compile(r"[/\\]|^~|\.[A-Za-z0-9]{2,5}$")


def ref_kind(ref: str) -> str:
    """``"path"`` when a non-http(s) ``--ref`` reads as a file path; else why it is neither.

    ``ftp://…`` is a URL of a scheme no provider fetches, and ``"not a url"`` is neither a
    URL nor a path: calling either a "local path" would send the user looking for a file.
    """
    scheme = _SCHEME_RE.match(ref)
    if scheme:
        return f"a {scheme.group(1).lower()}: URL; only http(s) URLs are fetched by providers"
    if ref.strip() and _PATH_RE.search(ref.strip()):
        return "path"
    return "neither an http(s) URL nor a path to an image file"


@dataclass(frozen=True)
class HttpCall:
    """One HTTP request a provider wants sent. ``url`` is a path (joined to the base URL) or
    an absolute URL; ``paid`` marks the create call, which must never be blindly retried."""

    method: str
    url: str
    json: dict[str, Any] | None = None
    params: dict[str, str] | None = None
    paid: bool = False
    authenticated: bool = True
    # Extra request headers (APIMart's Idempotency-Key, its response version).
    headers: dict[str, str] | None = None
    # A paid call carrying an idempotency key the provider honours: the server replays a
    # duplicate instead of billing it, so the client may send it again when the answer is
    # lost (timeouts, 5xx, a dropped connection), as it does for a GET.
    idempotent: bool = False
    # Statuses whose body is an answer, not an error (BFL's 422 carrying a task body).
    answer_statuses: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Balance:
    """An account balance as a provider reported it: credits, and US dollars where known."""

    provider: str
    credits: float
    usd: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The object ``flux2 credits --json`` prints."""
        return {"provider": self.provider, "credits": self.credits, "usd": self.usd}


@dataclass(frozen=True)
class SizeRule:
    """The provider's rule for explicit ``--width``/``--height``."""

    multiple: int
    min_side: int = 64
    max_pixels: int | None = None

    def describe(self) -> str:
        """The rule in words, for errors and ``flux2 providers``."""
        text = f"a multiple of {self.multiple}, at least {self.min_side}"
        if self.max_pixels:
            text += f", at most {_pixels(self.max_pixels)} in all"
        return text

    def violation(self, width: int, height: int) -> str | None:
        """Why width×height breaks the rule, or None."""
        for flag, value in (("--width", width), ("--height", height)):
            if value < self.min_side or value % self.multiple:
                return f"{flag} {value} must be {self.describe()}"
        if self.max_pixels and width * height > self.max_pixels:
            return f"{width}×{height} is over {_pixels(self.max_pixels)}"
        return None


@dataclass(frozen=True)
class ModelSpec:
    """One model a provider serves: what it takes and what it costs (``flux2 providers``).

    ``None`` for ``max_refs``/``formats`` means the provider-wide value. ``upsample_param``
    names the body field that turns prompt rewriting off (``--no-upsample``), if any.
    """

    id: str
    note: str = ""
    max_refs: int | None = None
    formats: tuple[str, ...] | None = None
    first_mp_cents: float | None = None
    mp_cents: float | None = None
    price: str = ""
    upsample_param: str | None = None

    def to_json(self, caps: Capabilities) -> dict[str, Any]:
        """The model's entry in ``flux2 providers --json``."""
        return {
            "id": self.id,
            "note": self.note or None,
            "max_refs": self.max_refs if self.max_refs is not None else caps.max_refs,
            "formats": list(self.formats if self.formats is not None else caps.formats),
            "price_first_mp_cents": self.first_mp_cents,
            "price_per_mp_cents": self.mp_cents,
            "price": self.price or None,
            "no_upsample": self.upsample_param is not None,
        }


def _pixels(count: int) -> str:
    # "4 MP" printed as count / 1e6 gives "4.1943 MP" for 2048×2048: say the exact count.
    return f"{count:,} pixels"


@dataclass(frozen=True)
class Capabilities:
    """What one provider takes: used by validation and by ``flux2 providers``."""

    id: str
    name: str
    base_url: str
    env_var: str
    docs_url: str
    models: Mapping[str, str]
    extra_models: tuple[str, ...] = ()
    modes: tuple[str, ...] = MODES
    ratios: tuple[str, ...] = RATIOS
    resolutions: tuple[str, ...] = RESOLUTIONS
    size_rule: SizeRule | None = None
    max_refs: int = 8
    inline_refs: bool = False
    formats: tuple[str, ...] = ()
    default_format: str = "png"
    safety_range: tuple[int, int] | None = None
    takes_seed: bool = False
    takes_callback: bool = False
    takes_webhook_secret: bool = False
    url_lifetime: timedelta = timedelta(hours=24)
    prices: str = "undocumented"
    regions: Mapping[str, str] = field(default_factory=dict)
    requires_key: bool = True
    auth_header: str = "Authorization: Bearer"
    # Every model served, with its own limits and price (empty: nothing per model is known).
    model_specs: tuple[ModelSpec, ...] = ()
    # Prompt length in characters (after stripping); None: no documented maximum.
    prompt_min: int = PROMPT_MIN_CHARS
    prompt_max: int | None = PROMPT_MAX_CHARS
    # True: width/height may be left out (the model chooses); sent only when asked for.
    size_optional: bool = False
    # True: the create call carries an idempotency key that the provider replays.
    idempotent_create: bool = False
    # Seconds of a task's life during which "not found" may be transient (polled on).
    not_found_grace_s: float = 0.0

    def spec_for(self, model: str) -> ModelSpec | None:
        """The ModelSpec of ``model``, or None when the provider lists nothing for it."""
        for spec in self.model_specs:
            if spec.id == model:
                return spec
        return None

    def known_models(self) -> list[str]:
        """Every model id this provider lists, mode models first."""
        return list(
            dict.fromkeys(
                [*self.models.values(), *self.extra_models, *(s.id for s in self.model_specs)]
            )
        )

    def to_json(self) -> dict[str, Any]:
        """The object ``flux2 providers --json`` prints."""
        return {
            "id": self.id,
            "name": self.name,
            "base_url": self.base_url,
            "regions": dict(self.regions),
            "env_var": self.env_var,
            "auth_header": self.auth_header,
            "models": dict(self.models),
            "extra_models": list(self.extra_models),
            "modes": list(self.modes),
            "ratios": list(self.ratios),
            "resolutions": list(self.resolutions),
            "size_rule": self.size_rule.describe() if self.size_rule else None,
            "max_refs": self.max_refs,
            "local_refs": self.inline_refs,
            "formats": list(self.formats),
            "safety_range": list(self.safety_range) if self.safety_range else None,
            "seed": self.takes_seed,
            "callback_url": self.takes_callback,
            "url_lifetime_seconds": int(self.url_lifetime.total_seconds()),
            "prices": self.prices,
            "requires_key": self.requires_key,
            "docs": self.docs_url,
            "model_details": [spec.to_json(self) for spec in self.model_specs],
            "prompt_chars": [self.prompt_min, self.prompt_max],
            "size_optional": self.size_optional,
            "no_upsample": any(spec.upsample_param for spec in self.model_specs),
            "idempotent_create": self.idempotent_create,
        }


@runtime_checkable
class Provider(Protocol):
    """A pure translator between the neutral request and one API's wire format."""

    capabilities: Capabilities

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry the key."""
        ...

    def model_for(self, request: GenerationRequest) -> str:
        """The model id the request will use."""
        ...

    def validate(self, request: GenerationRequest) -> None:
        """Refuse (UsageError) anything this provider does not take."""
        ...

    def build_create(self, request: GenerationRequest) -> HttpCall:
        """The paid create call."""
        ...

    def parse_create(self, body: Any, request: GenerationRequest, base_url: str) -> Task:
        """The task a create answer describes."""
        ...

    def build_poll(self, task: Task) -> HttpCall:
        """The status look-up for a task."""
        ...

    def parse_poll(self, body: Any, task: Task) -> Task:
        """The task as a status answer describes it."""
        ...

    def error_for(self, status_code: int, body: Any, text: str) -> ApiError:
        """The ApiError an HTTP error answer means."""
        ...

    def estimate_cost(self, request: GenerationRequest) -> Cost | None:
        """The expected cost from the price table, when one is published."""
        ...

    def build_balance(self) -> HttpCall | None:
        """The balance look-up, or None when the provider documents no endpoint for it."""
        ...

    def parse_balance(self, body: Any) -> Balance:
        """The balance a balance answer describes."""
        ...

    def with_idempotency_key(self, call: HttpCall, key: str) -> HttpCall:
        """The create call carrying ``key`` where the provider honours one (else unchanged)."""
        ...

    def create_not_found(self, request: GenerationRequest, call: HttpCall) -> ApiError:
        """What a 404 on the create call means (an unknown model or endpoint, exit 2)."""
        ...


class BaseProvider:
    """Tolerant defaults shared by the dialects; subclasses set ``capabilities`` and paths."""

    capabilities: Capabilities
    create_path: str = ""
    poll_path: str = ""  # with {id}
    image_url_paths: tuple[str, ...] = ()
    status_words: Mapping[str, TaskStatus] = parsing.DEFAULT_STATUS_WORDS
    balance_path: str | None = None  # a documented balance endpoint, if the API has one
    usd_per_credit: float | None = None

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """``Authorization: Bearer KEY`` unless a dialect says otherwise."""
        return {"Authorization": f"Bearer {api_key}"}

    def model_for(self, request: GenerationRequest) -> str:
        """``--model`` if given, else the provider's model for the mode."""
        return request.model or self.capabilities.models[request.mode]

    def validate(self, request: GenerationRequest) -> None:
        """Apply the capability checks shared by every provider."""
        validate_against(request, self.capabilities, model=self.model_for(request))

    def build_create(self, request: GenerationRequest) -> HttpCall:  # pragma: no cover
        """The paid create call (each dialect writes its own)."""
        raise NotImplementedError

    def parse_create(self, body: Any, request: GenerationRequest, base_url: str) -> Task:
        """Unwrap, find the id and whatever status or result came back at once."""
        data = parsing.unwrap_envelope(body)
        task_id = parsing.find_task_id(data)
        if not task_id:
            raise UnexpectedResponseError(
                f"unexpected response: no task id in {parsing.excerpt(body)}"
            )
        task = Task(
            task_id=task_id,
            provider=self.capabilities.id,
            model=self.model_for(request),
            status=TaskStatus.QUEUED,
            created_at=utc_now(),
            request=request.to_json(),
            base_url=base_url,
        )
        if isinstance(data, dict):
            return self._apply_answer(data, task, first=True)
        return task

    def build_poll(self, task: Task) -> HttpCall:
        """``GET`` the documented status path (or the poll URL the create answer gave)."""
        if task.poll_url:
            return HttpCall("GET", task.poll_url)
        return HttpCall("GET", self.poll_path.format(id=task.task_id))

    def parse_poll(self, body: Any, task: Task) -> Task:
        """Read status, images, cost, error and times from a status answer."""
        data = parsing.unwrap_envelope(body)
        if not isinstance(data, dict):
            raise UnexpectedResponseError(
                f"unexpected response: not a task object: {parsing.excerpt(body)}"
            )
        return self._apply_answer(data, task, first=False)

    def _apply_answer(self, data: dict[str, Any], task: Task, *, first: bool) -> Task:
        raw = parsing.find_status(data)
        status = parsing.map_status(raw, self.status_words)
        unknown = None
        if status is None:
            # An unknown word keeps the task polling; jobs names it if the deadline passes.
            unknown = raw
            status = task.status if raw is None else TaskStatus.RUNNING
        urls = parsing.find_image_urls(data, self.image_url_paths)
        images = task.images
        if urls:
            images = merge_images(task.images, tuple(ImageResult(url=url) for url in urls))
        if status is TaskStatus.SUCCEEDED and not urls and not task.images:
            # Some answers say "completed" a moment before the URLs are filled in.
            status = TaskStatus.RUNNING
        error = task.error
        if status is TaskStatus.FAILED:
            code, message = parsing.find_error(data)
            error = TaskError(code=code or raw, message=message or f"the task ended as {raw!r}")
        return task.evolve(
            status=status,
            raw_status=raw if raw is not None else task.raw_status,
            unknown_status=unknown,
            images=images,
            error=error,
            created_at=parsing.find_time(data, ("created_at", "created")) or task.created_at,
            expires_at=self.expiry_for(data, task),
            cost=self.cost_from(data) or task.cost,
        )

    def expiry_for(self, data: dict[str, Any], task: Task) -> Any:
        """The documented expiry if the answer has one, else issue time + URL lifetime."""
        stated = parsing.find_expiry(data)
        if stated is not None:
            return stated
        if task.expires_at is not None:
            return task.expires_at
        if parsing.find_image_urls(data, self.image_url_paths):
            return utc_now() + self.capabilities.url_lifetime
        return None

    def cost_from(self, data: dict[str, Any]) -> Cost | None:
        """A cost the API reported, if any (dialects override)."""
        return None

    def error_for(self, status_code: int, body: Any, text: str) -> ApiError:
        """The status-code ladder with the server's own message."""
        return parsing.api_error(self.capabilities, status_code, body, text)

    def with_idempotency_key(self, call: HttpCall, key: str) -> HttpCall:
        """Unchanged: only providers that document an idempotency key take one."""
        return call

    def create_not_found(self, request: GenerationRequest, call: HttpCall) -> ApiError:
        """What a 404 on the create call means: the endpoint is not there (not a lost task)."""
        return BadRequestError(
            f"{self.capabilities.id}: {call.method} {call.url} answered 404: no such endpoint "
            f"(model {self.model_for(request)!r}).",
            status_code=404,
            hints=["Check --base-url and --model."],
        )

    def estimate_cost(self, request: GenerationRequest) -> Cost | None:
        """No published price by default."""
        return None

    def build_balance(self) -> HttpCall | None:
        """``GET`` the documented balance path; None when there is none."""
        if self.balance_path is None:
            return None
        return HttpCall("GET", self.balance_path)

    def parse_balance(self, body: Any) -> Balance:
        """``credits`` (or ``balance``) from the answer, in or out of a ``data`` envelope."""
        data = parsing.unwrap_envelope(body)
        found = None
        if isinstance(data, dict):
            for name in BALANCE_FIELDS:
                found = parsing.amount(data.get(name))
                if found is not None:
                    break
        if found is None:
            raise UnexpectedResponseError(
                f"unexpected response: no balance in {parsing.excerpt(body)}"
            )
        usd = None if self.usd_per_credit is None else round(found * self.usd_per_credit, 6)
        return Balance(provider=self.capabilities.id, credits=found, usd=usd)


def idempotency_key(fingerprint: str, attempt: int | str) -> str:
    """A key for one deliberate submission: the same request and attempt give the same key, so
    a POST whose answer was lost is sent again as a replay, never as a second paid task."""
    import hashlib  # lazily, as request.py does

    digest = hashlib.sha256(f"{fingerprint}:{attempt}".encode()).hexdigest()
    return f"flux2-{digest[:40]}"


def reference_key(index: int) -> str:
    """``input_image`` for the first reference, ``input_image_2`` … ``_8`` after it."""
    return "input_image" if index == 0 else f"input_image_{index + 1}"


def flux_params(request: GenerationRequest, *, multiple: int) -> dict[str, Any]:
    """BFL's own parameter names, as BFL and Vtrix (which serves BFL's models) both take them.

    Width and height from ratio/res (snapped to ``multiple``) or as given, unless the request
    leaves the size to the model (``default_size``, where the provider allows it); the rest
    only when set, so no null is ever sent. ``--param`` values are the caller's to add.
    """
    params: dict[str, Any] = {"prompt": request.prompt}
    if not request.default_size:
        params["width"], params["height"] = request.pixel_size(multiple)
    for index, ref in enumerate(request.refs):
        params[reference_key(index)] = ref
    optional: dict[str, Any] = {
        "seed": request.seed,
        "safety_tolerance": request.safety,
        "output_format": request.format,
        "webhook_url": request.callback_url,
        "webhook_secret": request.webhook_secret,
    }
    params.update({key: value for key, value in optional.items() if value is not None})
    return params


class OptionRefused(UsageError):
    """A request option this provider does not take, or not with that value.

    ``field`` is the GenerationRequest field (``ratio``, ``width/height``); ``not_taken`` says
    the provider takes no value at all for it, so a config default for it can be skipped. The
    message names the flag; the request builder renames it after the value's real source.
    """

    def __init__(self, field: str, why: str, provider: str, *, not_taken: bool = False) -> None:
        flags = "/".join(_FLAGS.get(part, "--" + part) for part in field.split("/"))
        super().__init__(f"{flags}: {why} (provider {provider}).")
        self.field = field
        self.why = why
        self.provider = provider
        self.not_taken = not_taken


_FLAGS = {
    "prompt": "PROMPT",
    "refs": "--ref",
    "params": "--param",
    "callback_url": "--callback-url",
    "upsample": "--no-upsample",
}


def validate_against(
    request: GenerationRequest, caps: Capabilities, *, model: str | None = None
) -> None:
    """Refuse, naming the provider and the option, whatever ``caps`` (and ``model``'s own
    limits, when the provider lists them) does not take."""
    name = caps.id
    spec = caps.spec_for(model) if model else None

    def refuse(option: str, why: str, *, not_taken: bool = False) -> OptionRefused:
        return OptionRefused(option, why, name, not_taken=not_taken)

    length = len(request.prompt.strip())
    if length < caps.prompt_min:
        raise refuse(
            "prompt", f"the prompt is too short: {length} characters, at least {caps.prompt_min}"
        )
    if caps.prompt_max is not None and length > caps.prompt_max:
        raise refuse(
            "prompt", f"the prompt is too long: {length} characters, at most {caps.prompt_max}"
        )

    if request.mode not in caps.modes:
        raise refuse("mode", f"{request.mode!r} is not offered; choose {', '.join(caps.modes)}")
    if request.has_explicit_size:
        if caps.size_rule is None:
            raise refuse(
                "width/height",
                "not taken; this provider sizes images by --ratio and --res only",
                not_taken=True,
            )
        assert request.width is not None and request.height is not None
        problem = caps.size_rule.violation(request.width, request.height)
        if problem:
            raise refuse("width/height", problem)
    else:
        if request.ratio not in caps.ratios:
            raise refuse("ratio", f"{request.ratio!r} is not offered")
        if request.res not in caps.resolutions:
            raise refuse("res", f"{request.res!r} is not offered")
    max_refs = spec.max_refs if spec and spec.max_refs is not None else caps.max_refs
    if len(request.refs) > max_refs:
        whose = f"model {spec.id} takes" if spec and spec.max_refs is not None else "takes"
        raise refuse("refs", f"{len(request.refs)} given; {whose} at most {max_refs} references")
    for ref in request.refs:
        if is_url(ref):
            continue
        kind = ref_kind(ref)
        if kind != "path":
            raise UsageError(f"--ref {ref!r}: {kind}.")
        if not caps.inline_refs:
            raise refuse(
                "refs",
                f"{ref!r} is a local path, but this provider only takes public http(s) URLs",
            )
    if request.seed is not None and not caps.takes_seed:
        raise refuse("seed", "not documented; send it anyway with --param seed=N", not_taken=True)
    if request.format is not None:
        formats = spec.formats if spec and spec.formats is not None else caps.formats
        if not formats:
            raise refuse("format", "not taken; the provider chooses the format", not_taken=True)
        if request.format not in formats:
            whose = f" by model {spec.id}" if spec and spec.formats is not None else ""
            raise refuse(
                "format", f"{request.format!r} not offered{whose}; choose {'/'.join(formats)}"
            )
    if request.safety is not None:
        if caps.safety_range is None:
            raise refuse("safety", "not taken", not_taken=True)
        low, high = caps.safety_range
        if not low <= request.safety <= high:
            raise refuse("safety", f"{request.safety} is outside {low}–{high}")
    if request.callback_url is not None and not caps.takes_callback:
        raise refuse("callback_url", "webhooks are not documented", not_taken=True)
    if request.webhook_secret is not None and not caps.takes_webhook_secret:
        raise UsageError(f"webhook secret: not taken (provider {name}).")
    if request.upsample is False and not (spec and spec.upsample_param):
        what = f"model {model}" if model else "this provider"
        raise refuse(
            "upsample",
            f"{what} documents no switch for prompt upsampling, so flux2 cannot turn it off",
        )


def require_callback_for_secret(request: GenerationRequest, provider_id: str) -> None:
    """A webhook secret without ``--callback-url`` would be sent for nothing: refuse it."""
    if request.webhook_secret is not None and request.callback_url is None:
        raise UsageError(
            f"webhook secret: given without --callback-url, so there is nothing to sign "
            f"(provider {provider_id})."
        )
