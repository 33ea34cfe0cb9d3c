"""Black Forest Labs (api.bfl.ai): the model in the path, ``x-key`` auth, ``polling_url`` polls."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flux2_cli.env import PROVIDER_KEY_VARS
from flux2_cli.providers import parsing
from flux2_cli.providers.base import (
    BaseProvider,
    Capabilities,
    HttpCall,
    OptionRefused,
    SizeRule,
    flux_params,
    require_callback_for_secret,
)
from flux2_cli.request import GenerationRequest, is_url
from flux2_cli.task import Cost, Task, TaskError, TaskStatus

PROVIDER_ID = "bfl"
SIZE_MULTIPLE = 16
# "At most 4 MP": BFL's own example of the largest output is 2048×2048 = 4,194,304 pixels, so a
# megapixel here is 2^20 pixels (1024×1024), not 10^6.
PIXELS_PER_MP = 1_048_576
MAX_PIXELS = 4 * PIXELS_PER_MP
GET_RESULT_PATH = "/v1/get_result"
CREDITS_PATH = "/v1/credits"  # BFL's OpenAPI schema: "Get the user's credits"
TRUSTED_POLL_HOST_SUFFIX = ".bfl.ai"
DEFAULT_PORTS = {"http": 80, "https": 443}
MODEL_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# Flex's tuning knobs arrive through --param; their documented ranges are checked here.
PARAM_RANGES: dict[str, tuple[float, float]] = {"steps": (1, 50), "guidance": (1.5, 10)}
INTEGER_PARAMS = frozenset({"steps"})

# Published rates in US cents: the first megapixel, then each further one (rounded up).
# BFL credits are cents (1 credit = $0.01); the reported ``cost`` matches this (3.0 for the
# documented 1024×1024 pro image, "output_mp": 1.05 in units of 10^6 pixels).
RATES_CENTS: dict[str, tuple[float, float]] = {
    "flux-2-pro": (3.0, 1.5),
    "flux-2-flex": (5.0, 5.0),
    "flux-2-max": (7.0, 3.0),
}
USD_PER_CREDIT = 0.01

STATUS_WORDS: dict[str, TaskStatus] = {
    "pending": TaskStatus.QUEUED,
    "ready": TaskStatus.SUCCEEDED,
    "error": TaskStatus.FAILED,
    "request moderated": TaskStatus.FAILED,
    "content moderated": TaskStatus.FAILED,
    "task not found": TaskStatus.FAILED,
}
MODERATED_WORDS = frozenset({"request moderated", "content moderated"})

CAPABILITIES = Capabilities(
    id=PROVIDER_ID,
    name="Black Forest Labs",
    base_url="https://api.bfl.ai",
    env_var=PROVIDER_KEY_VARS[PROVIDER_ID],
    docs_url="https://docs.bfl.ai",
    models={"pro": "flux-2-pro", "flex": "flux-2-flex"},
    extra_models=("flux-2-max",),
    size_rule=SizeRule(multiple=SIZE_MULTIPLE, min_side=64, max_pixels=MAX_PIXELS),
    max_refs=8,
    inline_refs=True,  # input_image … _8 take a URL or raw base64: local files are inlined
    formats=("jpeg", "png", "webp"),
    default_format="jpeg",
    safety_range=(0, 5),
    takes_seed=True,
    takes_callback=True,
    takes_webhook_secret=True,
    url_lifetime=timedelta(minutes=10),
    prices=(
        "cents per image by megapixel (1 credit = $0.01): pro 3 + 1.5 per extra MP, "
        "flex 5 + 5, max 7 + 3; the cost the API reports at submit is shown"
    ),
    regions={"eu": "https://api.eu.bfl.ai", "us": "https://api.us.bfl.ai"},
    auth_header="x-key",
)


def estimate_credits(model: str, width: int, height: int) -> float | None:
    """Credits (cents) for one output image at the published rates, or None for other models.

    Megapixels are counted in 2^20 pixels and rounded up (an assumption consistent with the
    documented example and the 4 MP = 2048×2048 cap). Reference images are billed too, but
    their sizes are not known before upload, so they are left out of the estimate.
    """
    rates = RATES_CENTS.get(model)
    if rates is None:
        return None
    first, extra = rates
    megapixels = max(1, math.ceil(width * height / PIXELS_PER_MP - 1e-9))
    return first + extra * (megapixels - 1)


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
        """The shared checks, the model as a path segment, flex's --param ranges."""
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
        upsampling = request.params.get("prompt_upsampling")
        if upsampling is not None and not isinstance(upsampling, bool):
            raise OptionRefused(
                "params", f"prompt_upsampling={upsampling!r} must be true or false", PROVIDER_ID
            )

    def build_create(self, request: GenerationRequest) -> HttpCall:
        """``POST /v1/{model}``; refs must already be URLs or raw base64 (see refs.resolve_refs)."""
        body = flux_params(request, multiple=SIZE_MULTIPLE)
        body.update(request.params)
        return HttpCall("POST", f"/v1/{self.model_for(request)}", json=body, paid=True)

    def parse_create(self, body: Any, request: GenerationRequest, base_url: str) -> Task:
        """The id, the reported cost, and the ``polling_url`` when it can be trusted."""
        task = super().parse_create(body, request, base_url)
        polling_url = body.get("polling_url") if isinstance(body, dict) else None
        if isinstance(polling_url, str) and trusted_poll_url(polling_url, base_url):
            task = task.evolve(poll_url=polling_url.strip())
        return task

    def build_poll(self, task: Task) -> HttpCall:
        """The returned ``polling_url`` as is, else ``GET /v1/get_result?id=…``."""
        if task.poll_url:
            return HttpCall("GET", task.poll_url)
        return HttpCall("GET", GET_RESULT_PATH, params={"id": task.task_id})

    def parse_poll(self, body: Any, task: Task) -> Task:
        """The shared reading, plus BFL's ``details`` for moderated and failed tasks."""
        updated = super().parse_poll(body, task)
        if updated.status is not TaskStatus.FAILED or task.status is TaskStatus.FAILED:
            return updated
        raw = (updated.raw_status or "").strip()
        message = updated.error.message if updated.error else f"the task ended as {raw!r}"
        details = _details_text(body.get("details") if isinstance(body, dict) else None)
        code: str | None
        if raw.lower() in MODERATED_WORDS:
            code = "moderated"
            message = f"{raw}: the prompt or an image was refused by moderation"
        else:
            code = (updated.error.code if updated.error else None) or raw or None
        if details:
            message = f"{message} ({details})"
        return updated.evolve(error=TaskError(code=code, message=message))

    def cost_from(self, data: dict[str, Any]) -> Cost | None:
        """``cost`` in the submit answer: credits, which are US cents."""
        credits = parsing.amount(data.get("cost"))
        if credits is None:
            return None
        return Cost(credits=credits, usd=round(credits * USD_PER_CREDIT, 6))

    def estimate_cost(self, request: GenerationRequest) -> Cost | None:
        """The published per-megapixel rates for the output image (see estimate_credits)."""
        width, height = request.pixel_size(SIZE_MULTIPLE)
        credits = estimate_credits(self.model_for(request), width, height)
        if credits is None:
            return None
        return Cost(credits=credits, usd=round(credits * USD_PER_CREDIT, 6))


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
