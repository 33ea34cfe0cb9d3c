"""Black Forest Labs (api.bfl.ai): the model in the path, ``x-key`` auth, ``polling_url`` polls."""

from __future__ import annotations

import difflib
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flux2_cli.env import PROVIDER_KEY_VARS
from flux2_cli.errors import ApiError, BadRequestError
from flux2_cli.providers import parsing
from flux2_cli.providers.base import (
    BaseProvider,
    Capabilities,
    HttpCall,
    ModelSpec,
    OptionRefused,
    SizeRule,
    flux_params,
    require_callback_for_secret,
)
from flux2_cli.request import GenerationRequest, is_url
from flux2_cli.task import Cost, Task, TaskError, TaskStatus, parse_time, utc_now

PROVIDER_ID = "bfl"
SIZE_MULTIPLE = 16
# "At most 4 MP": BFL's own example of the largest output is 2048×2048 = 4,194,304 pixels, so
# the size cap counts a megapixel as 2^20 pixels (1024×1024). Prices count MP as 10^6 pixels.
MAX_PIXELS = 4 * 1_048_576
PRICE_PIXELS_PER_MP = 1_000_000
# The size BFL's models choose when none is sent (text to image), for the estimate only.
DEFAULT_SIZE = (1024, 1024)
GET_RESULT_PATH = "/v1/get_result"
CREDITS_PATH = "/v1/credits"  # BFL's OpenAPI schema: "Get the user's credits"
TRUSTED_POLL_HOST_SUFFIX = ".bfl.ai"
DEFAULT_PORTS = {"http": 80, "https": 443}
MODEL_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# The signed expiry of a result URL (an Azure SAS ``se=`` parameter on BFL's delivery URLs).
SIGNED_EXPIRY_PARAM = "se"

# Flex's tuning knobs arrive through --param; their documented ranges are checked here.
PARAM_RANGES: dict[str, tuple[float, float]] = {"steps": (1, 50), "guidance": (1.5, 10)}
INTEGER_PARAMS = frozenset({"steps"})

USD_PER_CREDIT = 0.01
FULL_FORMATS = ("jpeg", "png", "webp")
KLEIN_FORMATS = ("jpeg", "png")
KLEIN_MAX_REFS = 4

# The models BFL serves (wire-contracts.md "Updates since the first release"; BFL's OpenAPI
# schema api.bfl.ai/openapi.json and black-forest-labs/skills: skills/bfl-api/references/
# endpoints.md, skills/flux-best-practices/rules/model-selection-guide.md). Prices in cents
# (= credits): the first megapixel, then each further one, inputs at the per-MP rate. pro and
# max rewrite the prompt unless ``disable_pup: true``; flex takes ``prompt_upsampling``.
MODEL_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "flux-2-pro",
        note="fixed snapshot, for reproducibility",
        formats=FULL_FORMATS,
        first_mp_cents=3.0,
        mp_cents=1.5,
        price="3 + 1.5 per extra MP",
        upsample_param="disable_pup",
    ),
    ModelSpec(
        "flux-2-flex",
        note="steps and guidance via --param",
        formats=FULL_FORMATS,
        first_mp_cents=6.0,
        mp_cents=6.0,
        price="6 per MP",
        upsample_param="prompt_upsampling",
    ),
    ModelSpec(
        "flux-2-max",
        formats=FULL_FORMATS,
        first_mp_cents=7.0,
        mp_cents=3.0,
        price="7 + 3 per extra MP",
        upsample_param="disable_pup",
    ),
    ModelSpec(
        "flux-2-klein-4b",
        max_refs=KLEIN_MAX_REFS,
        formats=KLEIN_FORMATS,
        first_mp_cents=1.4,
        mp_cents=0.1,
        price="1.4 + 0.1 per extra MP",
    ),
    ModelSpec(
        "flux-2-klein-9b",
        max_refs=KLEIN_MAX_REFS,
        formats=KLEIN_FORMATS,
        first_mp_cents=1.5,
        mp_cents=0.2,
        price="1.5 + 0.2 per extra MP",
    ),
    ModelSpec(
        "flux-2-pro-preview",
        note="the latest pro; changes without notice (priced as flux-2-pro)",
        formats=FULL_FORMATS,
        first_mp_cents=3.0,
        mp_cents=1.5,
        price="3 + 1.5 per extra MP",
        upsample_param="disable_pup",
    ),
    ModelSpec(
        "flux-2-klein-9b-preview",
        note="the latest klein 9B (priced as flux-2-klein-9b)",
        max_refs=KLEIN_MAX_REFS,
        formats=KLEIN_FORMATS,
        first_mp_cents=1.5,
        mp_cents=0.2,
        price="1.5 + 0.2 per extra MP",
    ),
)
RATES_CENTS: dict[str, tuple[float, float]] = {
    spec.id: (spec.first_mp_cents, spec.mp_cents)
    for spec in MODEL_SPECS
    if spec.first_mp_cents is not None and spec.mp_cents is not None
}
UPSAMPLE_OFF: dict[str, tuple[str, bool]] = {
    "disable_pup": ("disable_pup", True),
    "prompt_upsampling": ("prompt_upsampling", False),
}

STATUS_WORDS: dict[str, TaskStatus] = {
    "pending": TaskStatus.QUEUED,
    "reasoning": TaskStatus.RUNNING,
    "generating": TaskStatus.RUNNING,
    "ready": TaskStatus.SUCCEEDED,
    "error": TaskStatus.FAILED,
    "request moderated": TaskStatus.FAILED,
    "content moderated": TaskStatus.FAILED,
    "task not found": TaskStatus.FAILED,
}
MODERATED_WORDS = frozenset({"request moderated", "content moderated"})
NOT_FOUND_WORD = "task not found"

CAPABILITIES = Capabilities(
    id=PROVIDER_ID,
    name="Black Forest Labs",
    base_url="https://api.bfl.ai",
    env_var=PROVIDER_KEY_VARS[PROVIDER_ID],
    docs_url="https://docs.bfl.ai",
    models={"pro": "flux-2-pro", "flex": "flux-2-flex"},
    extra_models=tuple(spec.id for spec in MODEL_SPECS[2:]),
    size_rule=SizeRule(multiple=SIZE_MULTIPLE, min_side=64, max_pixels=MAX_PIXELS),
    max_refs=8,
    inline_refs=True,  # input_image … _8 take a URL or raw base64: local files are inlined
    formats=FULL_FORMATS,
    default_format="jpeg",
    safety_range=(0, 5),
    takes_seed=True,
    takes_callback=True,
    takes_webhook_secret=True,
    # The fallback when a result URL carries no signed ``se=`` expiry (see expiry_for).
    url_lifetime=timedelta(minutes=10),
    prices=(
        "cents per image (1 credit = $0.01), MP = 10^6 pixels, input images counted at the "
        "per-MP rate: pro 3 + 1.5 per extra MP, flex 6 per MP, max 7 + 3, klein 4B 1.4 + 0.1, "
        "klein 9B 1.5 + 0.2; the cost the API reports at submit is shown"
    ),
    regions={"eu": "https://api.eu.bfl.ai", "us": "https://api.us.bfl.ai"},
    auth_header="x-key",
    model_specs=MODEL_SPECS,
    # "up to 32K tokens" (BFL's guide); the schema sets no maximum length.
    prompt_max=None,
    size_optional=True,
    # "Task not found" right after a submit can be transient (wire-contracts.md, updates).
    not_found_grace_s=30.0,
)


def estimate_credits(
    model: str, width: int, height: int, input_megapixels: float = 0.0
) -> float | None:
    """Credits (cents) for one image by BFL's published formula, or None for other models.

    ``first + (output MP - 1) × rate + input MP × rate`` with MP = 10^6 pixels and at least
    the first megapixel charged (black-forest-labs/skills, model-selection-guide.md).
    """
    rates = RATES_CENTS.get(model)
    if rates is None:
        return None
    first, rate = rates
    output_mp = width * height / PRICE_PIXELS_PER_MP
    credits = first + max(0.0, output_mp - 1.0) * rate + max(0.0, input_megapixels) * rate
    return round(credits, 3)


class BflProvider(BaseProvider):
    """Translator for ``POST /v1/{model}`` and ``GET {polling_url}`` / ``/v1/get_result``."""

    capabilities = CAPABILITIES
    poll_path = GET_RESULT_PATH
    image_url_paths = ("result.sample",)
    status_words = STATUS_WORDS
    balance_path = CREDITS_PATH  # {"credits": N}, in cents like the prices
    usd_per_credit = USD_PER_CREDIT

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """BFL takes the key in ``x-key``, not a bearer token."""
        return {"x-key": api_key}

    def validate(self, request: GenerationRequest) -> None:
        """The shared checks (with the model's own limits), the model as a path segment,
        flex's --param ranges."""
        super().validate(request)
        require_callback_for_secret(request, PROVIDER_ID)
        model = self.model_for(request)
        if not MODEL_SEGMENT_RE.match(model):
            raise OptionRefused(
                "model",
                f"{model!r} is not a model id (letters, digits, '.', '_', '-')",
                PROVIDER_ID,
            )
        for key, (low, high) in PARAM_RANGES.items():
            if key not in request.params:
                continue
            value = request.params[key]
            integral = key in INTEGER_PARAMS
            ok_type = isinstance(value, int) if integral else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok_type or not low <= value <= high:
                kind = "an integer" if integral else "a number"
                raise OptionRefused(
                    "params",
                    f"{key}={value!r} must be {kind} from {low:g} to {high:g}",
                    PROVIDER_ID,
                )
        for flag in ("prompt_upsampling", "disable_pup"):
            value = request.params.get(flag)
            if value is not None and not isinstance(value, bool):
                raise OptionRefused(
                    "params", f"{flag}={value!r} must be true or false", PROVIDER_ID
                )

    def build_create(self, request: GenerationRequest) -> HttpCall:
        """``POST /v1/{model}``; refs must already be URLs or raw base64 (see refs.resolve_refs).

        Width/height only when a size was asked for (BFL's model chooses otherwise);
        ``--no-upsample`` becomes the model's own switch (``disable_pup: true`` for pro and
        max, ``prompt_upsampling: false`` for flex).
        """
        body = flux_params(request, multiple=SIZE_MULTIPLE)
        model = self.model_for(request)
        spec = CAPABILITIES.spec_for(model)
        if request.upsample is False and spec is not None and spec.upsample_param:
            field, value = UPSAMPLE_OFF[spec.upsample_param]
            body[field] = value
        body.update(request.params)
        return HttpCall("POST", f"/v1/{model}", json=body, paid=True)

    def parse_create(self, body: Any, request: GenerationRequest, base_url: str) -> Task:
        """The id, the reported cost, and the ``polling_url`` when it can be trusted."""
        task = super().parse_create(body, request, base_url)
        polling_url = body.get("polling_url") if isinstance(body, dict) else None
        if isinstance(polling_url, str) and trusted_poll_url(polling_url, base_url):
            task = task.evolve(poll_url=polling_url.strip())
        return task

    def build_poll(self, task: Task) -> HttpCall:
        """The returned ``polling_url`` (with ``?id=`` added when it lacks one), else
        ``GET /v1/get_result?id=…`` on the host the task was made on (the client's base URL
        is the task's: regional hosts answer 404 for each other's tasks).

        A 422 whose body is a task (``"status": "Error"``) is read as an answer, not an error.
        """
        accept = frozenset({422})
        if task.poll_url:
            return HttpCall(
                "GET", with_task_id(task.poll_url, task.task_id), answer_statuses=accept
            )
        return HttpCall("GET", GET_RESULT_PATH, params={"id": task.task_id}, answer_statuses=accept)

    def parse_poll(self, body: Any, task: Task) -> Task:
        """The shared reading, plus BFL's ``details`` for moderated and failed tasks.

        A 422 answer without a task body is FastAPI's validation error: raised as such.
        """
        if isinstance(body, dict) and parsing.find_status(body) is None and "detail" in body:
            error = self.error_for(422, body, "")
            raise error if isinstance(error, BadRequestError) else BadRequestError(error.message)
        updated = super().parse_poll(body, task)
        if updated.status is not TaskStatus.FAILED or task.status is TaskStatus.FAILED:
            return updated
        raw = (updated.raw_status or "").strip()
        if raw.lower() == NOT_FOUND_WORD:
            return updated.evolve(
                error=TaskError(code=parsing.NOT_FOUND_CODE, message=f"{raw} (BFL)")
            )
        message = updated.error.message if updated.error else f"the task ended as {raw!r}"
        details = _details_text(body.get("details") if isinstance(body, dict) else None)
        code: str | None
        if raw.lower() in MODERATED_WORDS:
            code = "moderated"
            what = (
                "the prompt or an input image"
                if raw.lower() == "request moderated"
                else ("the generated image")
            )
            message = f"{raw}: {what} was refused by moderation"
        else:
            code = (updated.error.code if updated.error else None) or raw or None
        if details:
            message = f"{message} ({details})"
        return updated.evolve(error=TaskError(code=code, message=message))

    def expiry_for(self, data: dict[str, Any], task: Task) -> datetime | None:
        """The signed ``se=`` expiry of the result URL when it has one (integrators see about
        an hour), else the answer's own, else ten minutes from now."""
        for url in parsing.find_image_urls(data, self.image_url_paths):
            signed = signed_expiry(url)
            if signed is not None:
                return signed
        stated = parsing.find_expiry(data)
        if stated is not None:
            return stated
        if task.expires_at is not None:
            return task.expires_at
        if parsing.find_image_urls(data, self.image_url_paths):
            return utc_now() + self.capabilities.url_lifetime
        return None

    def cost_from(self, data: dict[str, Any]) -> Cost | None:
        """``cost`` in the submit answer: credits, which are US cents."""
        credits = parsing.amount(data.get("cost"))
        if credits is None:
            return None
        return Cost(credits=credits, usd=round(credits * USD_PER_CREDIT, 6))

    def estimate_cost(self, request: GenerationRequest) -> Cost | None:
        """BFL's formula for the output image, each reference counted as one megapixel (its
        size is not known before upload); the model's default 1024×1024 when no size is sent."""
        width, height = DEFAULT_SIZE if request.default_size else request.pixel_size(SIZE_MULTIPLE)
        credits = estimate_credits(
            self.model_for(request), width, height, input_megapixels=float(len(request.refs))
        )
        if credits is None:
            return None
        return Cost(credits=credits, usd=round(credits * USD_PER_CREDIT, 6))

    def create_not_found(self, request: GenerationRequest, call: HttpCall) -> ApiError:
        """A 404 on ``POST /v1/{model}``: a model BFL does not serve (exit 2)."""
        model = self.model_for(request)
        known = CAPABILITIES.known_models()
        close = difflib.get_close_matches(model, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return BadRequestError(
            f"{PROVIDER_ID}: unknown model {model!r} ({call.method} {call.url} answered 404).",
            status_code=404,
            hints=[f"{hint}Models: {', '.join(known)} (see `flux2 providers`)."],
        )


def with_task_id(url: str, task_id: str) -> str:
    """``url`` with ``id=TASK_ID`` in its query unless it already has an ``id``."""
    parts = urlsplit(url.strip())
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "id" and value for key, value in query):
        return url.strip()
    query = [(key, value) for key, value in query if key != "id"] + [("id", task_id)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def signed_expiry(url: str) -> datetime | None:
    """The ``se=`` (signed expiry) time of a result URL, or None."""
    try:
        query = parse_qsl(urlsplit(url).query)
    except ValueError:
        return None
    for key, value in query:
        if key == SIGNED_EXPIRY_PARAM:
            return parse_time(value)
    return None


def trusted_poll_url(url: str, base_url: str) -> bool:
    """True for an https URL on a ``*.bfl.ai`` host, or on the base URL's own origin.

    The poll carries the key; a URL from the answer pointing anywhere else is not followed
    (the documented ``/v1/get_result?id=`` on the base URL is used instead). "Own origin" is
    scheme, host and port together: ``http://`` for an ``https://`` base would send the key in
    clear text, and another port on the same host is another service.
    """
    text = url.strip()
    if not is_url(text):
        return False
    try:
        parts, base = urlsplit(text), urlsplit(base_url.strip())
        origin = _origin(parts.scheme, parts.hostname, parts.port)
        base_origin = _origin(base.scheme, base.hostname, base.port)
    except ValueError:  # an invalid port
        return False
    scheme, host, _ = origin
    if host and origin == base_origin:
        return True
    return scheme == "https" and (
        host == TRUSTED_POLL_HOST_SUFFIX[1:] or host.endswith(TRUSTED_POLL_HOST_SUFFIX)
    )


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str, int | None]:
    scheme = scheme.lower()
    return scheme, (host or "").lower(), port or DEFAULT_PORTS.get(scheme)


def _details_text(details: Any) -> str | None:
    if isinstance(details, str):
        return details.strip() or None
    if isinstance(details, dict):
        parts = []
        for key, value in details.items():
            shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
            parts.append(f"{key}: {shown}")
        return "; ".join(parts) or None
    return None
