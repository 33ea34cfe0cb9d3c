"""The four wire formats the sandbox speaks: reading create bodies, writing every answer.

Each dialect turns a create body into a neutral :class:`~flux2_cli.sandbox.tasks.Spec` and a
task record into the JSON its provider documents (see wire-contracts.md). Error shapes:

==========  =========================================================  ======================
dialect     error body                                                 out of credits
==========  =========================================================  ======================
apiinone    ``{"error":{"code":401,"message":…,"type":…}}``             402
apimart     ``{"error":{"code":401,"message":…,"type":…}}``             402
vtrix       ``{"code":"401","message":…}`` (what Vtrix's CLI reads)       403 insufficient balance
bfl         ``{"detail":…}`` (422: FastAPI's list with ``loc``)          402
==========  =========================================================  ======================

A missing, empty or refused key is 401 in every dialect. Prompt bounds, models and options
follow each provider's ``Capabilities`` (flux2_cli.providers): BFL takes prompts of any length
and its seven model paths; Vtrix an integer ``safety_tolerance`` of 1-5, flat or wrapped.
"""

from __future__ import annotations

import base64
import binascii
import io
import random
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import quote

from flux2_cli.providers import apiinone as apiinone_provider
from flux2_cli.providers import apimart as apimart_provider
from flux2_cli.providers import bfl as bfl_provider
from flux2_cli.providers import vtrix as vtrix_provider
from flux2_cli.providers.base import Capabilities
from flux2_cli.request import RATIOS, SIZE_TABLE
from flux2_cli.sandbox import tasks
from flux2_cli.sandbox.tasks import Spec

PROMPT_MIN = 3
PROMPT_MAX = 5000
MAX_REFS = 8
SEED_MAX = 2**31 - 1  # the seed BFL draws when none is sent (always a number in its answer)
URL_REF_MEGAPIXELS = 1.0  # the sandbox never fetches a URL reference: counted as one MP
LOST_POLLS = 2  # [sandbox:lost]: how many polls answer "not found" first
MAX_PIXELS = 16_777_216  # the sandbox refuses anything larger (it would have to draw it)
BFL_MAX_PIXELS = 4_194_304
DEFAULT_SIDE = 1024  # width/height when a pixel dialect is sent neither

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "server_error",
}


class Invalid(Exception):
    """A create body the dialect refuses: the field (as a name) and why."""

    def __init__(self, field: str, message: str, kind: str = "value_error") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.kind = kind


def iso(moment: float) -> str:
    """Unix seconds as ISO 8601 UTC with a Z."""
    return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, key = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key.strip() or None


def _prompt(body: Mapping[str, Any], caps: Capabilities | None = None) -> str:
    """The prompt, within the provider's bounds (``caps``; API in One's 3-5,000 if None)."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise Invalid("prompt", "prompt is required and must be a string", "missing")
    low = caps.prompt_min if caps else PROMPT_MIN
    high = caps.prompt_max if caps else PROMPT_MAX
    length = len(prompt.strip())
    if length < low or (high is not None and length > high):
        bound = f"{low} to {high}" if high is not None else f"at least {low}"
        raise Invalid("prompt", f"prompt must be {bound} characters")
    return prompt


def _int(body: Mapping[str, Any], name: str, low: float, high: float) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(name, f"{name} must be an integer", "int_parsing")
    if not low <= value <= high:
        raise Invalid(name, f"{name} must be between {low:g} and {high:g}")
    return value


def _number(body: Mapping[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(name, f"{name} must be a number", "float_parsing")
    if not low <= value <= high:
        raise Invalid(name, f"{name} must be between {low:g} and {high:g}")


def _seed(body: Mapping[str, Any]) -> int | None:
    return _int(body, "seed", 0, 2**63 - 1)


def _choice(body: Mapping[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or value not in choices:
        raise Invalid(name, f"{name} must be one of {', '.join(choices)}")
    return value


def _url_list(body: Mapping[str, Any], name: str, *, urls_only: bool) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Invalid(name, f"{name} must be a list of strings")
    if len(value) > MAX_REFS:
        raise Invalid(name, f"{name} takes at most {MAX_REFS} images")
    if urls_only and not all(item.startswith(("http://", "https://")) for item in value):
        raise Invalid(name, f"{name} must be public http(s) URLs")


def _http_url(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise Invalid(name, f"{name} must be an http(s) URL")
    return value


def _numbered_refs(body: Mapping[str, Any], limit: int = MAX_REFS) -> list[str]:
    """The ``input_image`` … ``input_image_N`` values (at most ``limit``), in order."""
    refs: list[str] = []
    for index in range(1, MAX_REFS + 1):
        name = "input_image" if index == 1 else f"input_image_{index}"
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise Invalid(name, f"{name} must be a string (a URL or base64)")
        if value is not None:
            if index > limit:
                raise Invalid(name, f"this model takes at most {limit} input images")
            refs.append(value)
    extra = [key for key in body if key.startswith("input_image_")]
    for key in extra:
        suffix = key.removeprefix("input_image_")
        if not suffix.isdigit() or not 2 <= int(suffix) <= MAX_REFS:
            raise Invalid(key, f"at most {MAX_REFS} input images (input_image … input_image_8)")
    return refs


def _megapixels(ref: str) -> float:
    """An input image's size in megapixels (10^6): read from base64, one MP for a URL."""
    if ref.startswith(("http://", "https://")):
        return URL_REF_MEGAPIXELS
    try:
        data = base64.b64decode(ref, validate=False)
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            width, height = (int(side) for side in image.size)
    except (binascii.Error, ValueError, OSError):
        return URL_REF_MEGAPIXELS
    return width * height / 1_000_000


def _flag(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise Invalid(name, f"{name} must be a boolean", "bool_parsing")
    return value


def _pixels(body: Mapping[str, Any], multiple: int, max_pixels: int) -> tuple[int, int]:
    """width/height checked against the rule; ``DEFAULT_SIDE`` for a side not sent (the
    model's own choice, for BFL)."""
    sides: list[int] = []
    for name in ("width", "height"):
        value = _int(body, name, 1, 1 << 20)
        if value is None:
            value = DEFAULT_SIDE
        if value < 64 or value % multiple:
            raise Invalid(name, f"{name} must be a multiple of {multiple}, at least 64")
        sides.append(value)
    width, height = sides
    if width * height > max_pixels:
        raise Invalid("width", f"{width}x{height} is more than {max_pixels / 1e6:g} MP")
    return width, height


def _ratio_res(ratio: Any, res: Any) -> tuple[str, str]:
    if ratio not in RATIOS:
        raise Invalid("aspect_ratio", f"aspect ratio must be one of {', '.join(RATIOS)}")
    canonical = str(res).upper() if isinstance(res, str) else ""
    if canonical not in ("1K", "2K"):
        raise Invalid("resolution", "resolution must be 1K or 2K")
    return str(ratio), canonical


class Dialect:
    """Shared behaviour; each provider's subclass writes what is its own."""

    name = ""
    bfl_ttl = False  # True: image URLs live SandboxSettings.bfl_ttl_seconds

    def key(self, headers: Mapping[str, str]) -> str | None:
        """The API key the request carries, or None."""
        return _bearer(headers)

    def parse(self, body: Mapping[str, Any], path_model: str | None) -> Spec:  # pragma: no cover
        """Read and check a create body."""
        raise NotImplementedError

    def created(self, record: dict[str, Any], base: str) -> dict[str, Any]:  # pragma: no cover
        """The create answer."""
        raise NotImplementedError

    def status(
        self, record: dict[str, Any], phase: str, base: str, now: float
    ) -> dict[str, Any]:  # pragma: no cover
        """The poll answer (also the webhook body)."""
        raise NotImplementedError

    def price(self, spec: Spec) -> float:
        """Credits a task costs: API in One's table (max priced as flex)."""
        return tasks.price_credits(spec.mode, spec.res)

    def rate_limited(self, retry_after: float) -> tuple[dict[str, Any], dict[str, str]]:
        """The body and headers of a 429 answer."""
        return self.error(429, "Too many requests, slow down"), {"Retry-After": f"{retry_after:g}"}

    def error(self, status: int, message: str) -> dict[str, Any]:
        """An error body in this dialect's shape."""
        return {
            "error": {
                "code": status,
                "message": message,
                "type": _ERROR_TYPES.get(status, "api_error"),
            }
        }

    def invalid(self, exc: Invalid) -> tuple[int, dict[str, Any]]:
        """The answer to a refused create body."""
        return 400, self.error(400, exc.message)

    def unauthorized(self, message: str) -> tuple[int, dict[str, Any]]:
        """The answer to a missing or refused key."""
        return 401, self.error(401, message)

    def no_credits(self) -> tuple[int, dict[str, Any]]:
        """The answer when the balance does not cover the task."""
        return 402, self.error(402, "Insufficient credits: top up your balance")

    def not_found(self, task_id: str) -> tuple[int, dict[str, Any]]:
        """The answer to an unknown task id."""
        return 404, self.error(404, f"Task not found: {task_id}")

    @staticmethod
    def failure(record: dict[str, Any]) -> tuple[str, str]:
        """(code, message) of a failed or moderated task."""
        if record["outcome"] == tasks.MODERATED:
            return "content_moderated", tasks.MODERATED_MESSAGE
        return "generation_failed", tasks.FAILED_MESSAGE


class ApiInOne(Dialect):
    """``POST /api/v1/images/generations``, ``GET /api/v1/tasks/{id}``, envelope answers."""

    name = "apiinone"
    _words: ClassVar[dict[str, str]] = {
        tasks.QUEUED: "IN_PROGRESS",
        tasks.RUNNING: "IN_PROGRESS",
        tasks.SUCCEEDED: "COMPLETED",
        tasks.FAILED: "FAILED",
        tasks.MODERATED: "FAILED",
    }

    def parse(self, body: Mapping[str, Any], path_model: str | None) -> Spec:
        """model flux-2, type pro|flex, aspect_ratio + resolution, input_urls, callback_url."""
        model = body.get("model", "flux-2")
        if model != "flux-2":
            raise Invalid("model", "model must be flux-2")
        prompt = _prompt(body, apiinone_provider.CAPABILITIES)
        mode = _choice(body, "type", ("pro", "flex"), "pro")
        ratio, res = _ratio_res(body.get("aspect_ratio", "1:1"), body.get("resolution", "1K"))
        _url_list(body, "input_urls", urls_only=True)
        fmt = _choice(body, "output_format", ("png", "jpeg", "webp"), "png")
        width, height = SIZE_TABLE[(ratio, res)]
        return Spec(
            prompt=prompt,
            width=width,
            height=height,
            fmt=fmt,
            seed=_seed(body),
            mode=mode,
            res=res,
            model="flux-2",
            webhook_url=_http_url(body, "callback_url"),
        )

    def created(self, record: dict[str, Any], base: str) -> dict[str, Any]:
        """The documented envelope with ``data.task_id``."""
        return {
            "code": 200,
            "message": "success",
            "data": {"task_id": record["id"], "status": "IN_PROGRESS"},
        }

    def status(self, record: dict[str, Any], phase: str, base: str, now: float) -> dict[str, Any]:
        """Envelope; ``data`` holds status, images, times and error."""
        data: dict[str, Any] = {
            "task_id": record["id"],
            "status": self._words[phase],
            "images": [],
            "created_at": iso(float(record["created"])),
            "expires_at": None,
            "error": None,
        }
        if phase == tasks.SUCCEEDED:
            data["images"] = [{"url": tasks.image_url(record, base)}]
            data["expires_at"] = iso(tasks.expires_at(record))
        elif phase in (tasks.FAILED, tasks.MODERATED):
            code, message = self.failure(record)
            data["error"] = {"code": code, "message": message}
        return {"code": 200, "message": "success", "data": data}


class ApiMart(Dialect):
    """``POST /v1/images/generations`` (``size`` is the ratio), ``GET /v1/tasks/{id}``."""

    name = "apimart"
    _words: ClassVar[dict[str, str]] = {
        tasks.QUEUED: "submitted",
        tasks.RUNNING: "processing",
        tasks.SUCCEEDED: "completed",
        tasks.FAILED: "failed",
        tasks.MODERATED: "failed",
    }

    def parse(self, body: Mapping[str, Any], path_model: str | None) -> Spec:
        """model flux-2-pro|flux-2-flex, size (exactly the seven ratios), resolution any case."""
        model = _choice(body, "model", ("flux-2-pro", "flux-2-flex"), "flux-2-pro")
        prompt = _prompt(body, apimart_provider.CAPABILITIES)
        try:
            ratio, res = _ratio_res(body.get("size", "1:1"), body.get("resolution", "1K"))
        except Invalid as exc:
            field = "size" if exc.field == "aspect_ratio" else exc.field
            raise Invalid(field, exc.message) from None
        _url_list(body, "image_urls", urls_only=True)
        width, height = SIZE_TABLE[(ratio, res)]
        return Spec(
            prompt=prompt,
            width=width,
            height=height,
            seed=_seed(body),
            mode=model.removeprefix("flux-2-"),
            res=res,
            model=model,
        )

    def created(self, record: dict[str, Any], base: str) -> dict[str, Any]:
        """``data`` is a one-item list (the documented shape), or an object in the response
        version the client asked for (``X-APIMart-Response-Version``, see ``created_v2``)."""
        return {"code": 200, "data": [{"status": "submitted", "task_id": record["id"]}]}

    def created_v2(self, record: dict[str, Any]) -> dict[str, Any]:
        """The 2026-07-27 response version: ``data`` an object (apimart-ai/apimart-skills)."""
        return {
            "code": 200,
            "data": {"id": record["id"], "object": "generation.task", "status": "submitted"},
        }

    def status(self, record: dict[str, Any], phase: str, base: str, now: float) -> dict[str, Any]:
        """``data.result.images[].url`` is a list; times are unix seconds."""
        created = int(float(record["created"]))
        data: dict[str, Any] = {
            "id": record["id"],
            "status": self._words[phase],
            "progress": tasks.progress(record, now),
            "created": created,
            "estimated_time": max(1, round(float(record["latency"]))),
        }
        if phase in tasks.ENDED:
            data["completed"] = int(tasks.ended_at(record))
            data["actual_time"] = data["completed"] - created
        if phase == tasks.SUCCEEDED:
            data["result"] = {
                "images": [
                    {
                        "url": [tasks.image_url(record, base)],
                        "expires_at": int(tasks.expires_at(record)),
                    }
                ]
            }
            # Task data reports what was charged: USD and credits (apimart-skills README).
            credits = float(record["cost"])
            data["credits_cost"] = credits
            data["cost"] = round(credits / 100, 4)
        elif phase in (tasks.FAILED, tasks.MODERATED):
            code, message = self.failure(record)
            data["error"] = {"code": code, "message": message}
        return {"code": 200, "data": data}


class Vtrix(Dialect):
    """``POST /model/v1/generation`` (flat or wrapped params), ``GET …/task/{id}``."""

    name = "vtrix"
    _words: ClassVar[dict[str, str]] = {
        tasks.QUEUED: "in_progress",
        tasks.RUNNING: "in_progress",
        tasks.SUCCEEDED: "completed",
        tasks.FAILED: "failed",
        tasks.MODERATED: "failed",
    }
    # The models Vtrix documents (providers.vtrix.CAPABILITIES), and how they are priced.
    _modes: ClassVar[dict[str, str]] = {"flux_2_pro": "pro", "flux_2_max": "max"}

    def parse(self, body: Mapping[str, Any], path_model: str | None) -> Spec:
        """Both shapes: flat as the flux page lists the parameters, or wrapped as Vtrix's CLI
        sends them (``{"model": M, "input": [{"params": {…}}]}``); width/height multiples of
        32 (≥ 64), ``safety_tolerance`` an integer 1-5, output_format jpeg (default) or png.
        The page lists no webhook fields: they are refused."""
        model = _choice(body, "model", tuple(self._modes), "flux_2_pro")
        wrapped = "input" in body
        params = self._params(body) if wrapped else body
        caps = vtrix_provider.CAPABILITIES
        prompt = _prompt(params, caps)
        width, height = _pixels(params, 32, MAX_PIXELS)
        assert caps.safety_range is not None
        _int(params, "safety_tolerance", *caps.safety_range)
        fmt = _choice(params, "output_format", ("jpeg", "png"), "jpeg")
        _numbered_refs(params)
        for field in ("webhook_url", "webhook_secret"):
            if field in params:
                raise Invalid(field, f"{field} is not a parameter of {model}", "extra_forbidden")
        return Spec(
            prompt=prompt,
            width=width,
            height=height,
            fmt=fmt,
            seed=_seed(params),
            mode=self._modes[model],
            res=tasks.res_for(width, height),
            model=model,
            extra={"wrapped": wrapped},
        )

    @staticmethod
    def _params(body: Mapping[str, Any]) -> Mapping[str, Any]:
        blocks = body.get("input")
        if (
            not isinstance(blocks, list)
            or len(blocks) != 1
            or not isinstance(blocks[0], dict)
            or not isinstance(blocks[0].get("params"), dict)
        ):
            raise Invalid("input", 'input must be [{"params": {...}}]')
        if set(body) - {"model", "input"}:
            raise Invalid("input", "with input, parameters go inside input[0].params")
        params: Mapping[str, Any] = blocks[0]["params"]
        return params

    def created(self, record: dict[str, Any], base: str) -> dict[str, Any]:
        """The task object, still in progress."""
        return {"id": record["id"], "status": "in_progress", "model": record["model"]}

    def status(self, record: dict[str, Any], phase: str, base: str, now: float) -> dict[str, Any]:
        """``output[].content[].url`` and ``usage.cost`` (USD, a string).

        A failed task's ``error`` follows the request's shape: an object ``{code, message}``
        as the doc page describes for a flat request, a string as Vtrix's CLI reads it
        (``Error *string``) for a wrapped one.
        """
        answer: dict[str, Any] = {
            "id": record["id"],
            "status": self._words[phase],
            "model": record["model"],
            "created_at": int(float(record["created"])),
        }
        if phase == tasks.SUCCEEDED:
            answer["output"] = [
                {"content": [{"type": "image", "url": tasks.image_url(record, base)}]}
            ]
            answer["usage"] = {"cost": f"{float(record['cost']) / 100:.2f}", "discount": 0}
        elif phase in (tasks.FAILED, tasks.MODERATED):
            code = "002014001" if record["outcome"] == tasks.FAILED else "002014002"
            message = self.failure(record)[1]
            if record.get("wrapped"):
                answer["error"] = message
                answer["error_code"] = code
            else:
                answer["error"] = {"code": code, "message": message}
        return answer

    def error(self, status: int, message: str) -> dict[str, Any]:
        """``{"code": "STATUS", "message": …}``: Vtrix's CLI reads ``message`` (or an
        ``error`` string) from an error answer (VtrixAI/vtrix-cli client.go ``do``)."""
        return {"code": str(status), "message": message}

    def invalid(self, exc: Invalid) -> tuple[int, dict[str, Any]]:
        """A refused body: 400 naming the parameter."""
        return 400, {"code": "400", "message": exc.message, "param": exc.field}

    def no_credits(self) -> tuple[int, dict[str, Any]]:
        """Vtrix answers 403 for an empty balance."""
        return 403, {"code": "403", "message": "insufficient balance"}


class Bfl(Dialect):
    """``x-key``; ``POST /v1/{model}`` for BFL's seven FLUX.2 models, ``GET /v1/get_result``."""

    name = "bfl"
    bfl_ttl = True
    _words: ClassVar[dict[str, str]] = {
        tasks.QUEUED: "Pending",
        tasks.RUNNING: "Pending",
        tasks.SUCCEEDED: "Ready",
        tasks.FAILED: "Error",
        tasks.MODERATED: "Content Moderated",
    }

    def key(self, headers: Mapping[str, str]) -> str | None:
        """The ``x-key`` header."""
        return headers.get("x-key", "").strip() or None

    def parse(self, body: Mapping[str, Any], path_model: str | None) -> Spec:
        """The model from the path; width/height optional (multiples of 16, ≥ 64, ≤ 4 MP;
        1024×1024 when not sent); output_format jpeg|png|webp (klein jpeg|png); klein at most
        4 input images; the seed drawn when not sent; input megapixels counted for the price.
        """
        model = path_model or "flux-2-pro"
        caps = bfl_provider.CAPABILITIES
        spec = caps.spec_for(model)
        prompt = _prompt(body, caps)
        width, height = _pixels(body, 16, BFL_MAX_PIXELS)
        _int(body, "safety_tolerance", 0, 5)
        if model == "flux-2-flex":
            _int(body, "steps", 1, 50)
            _number(body, "guidance", 1.5, 10)
        formats = spec.formats if spec and spec.formats else caps.formats
        fmt = _choice(body, "output_format", tuple(formats), "jpeg")
        limit = spec.max_refs if spec and spec.max_refs is not None else caps.max_refs
        refs = _numbered_refs(body, limit)
        if spec and spec.upsample_param:
            _flag(body, spec.upsample_param)
        secret = body.get("webhook_secret")
        seed = _seed(body)
        return Spec(
            prompt=prompt,
            width=width,
            height=height,
            fmt=fmt,
            # BFL's answer always carries a number (clients reject "seed": null).
            seed=seed if seed is not None else random.randint(0, SEED_MAX),
            mode=model.removeprefix("flux-2-"),
            res=tasks.res_for(width, height),
            model=model,
            webhook_url=_http_url(body, "webhook_url"),
            webhook_secret=secret if isinstance(secret, str) else None,
            extra={"input_mp": round(sum(_megapixels(ref) for ref in refs), 6)},
        )

    def price(self, spec: Spec) -> float:
        """BFL's published formula (providers.bfl.estimate_credits), inputs counted."""
        credits = bfl_provider.estimate_credits(
            spec.model, spec.width, spec.height, float(spec.extra.get("input_mp", 0.0))
        )
        return credits if credits is not None else super().price(spec)

    def rate_limited(self, retry_after: float) -> tuple[dict[str, Any], dict[str, str]]:
        """BFL's documented 429 body, the wait in it (black-forest-labs/skills,
        rate-limiting.md); no Retry-After header, so clients must read the body."""
        return {
            "error": "rate_limit_exceeded",
            "message": "Too many concurrent requests",
            "retry_after": retry_after,
        }, {}

    def created(self, record: dict[str, Any], base: str) -> dict[str, Any]:
        """id, polling_url at this base (none when a webhook_url was given), cost in credits,
        input and output megapixels."""
        answer: dict[str, Any] = {"id": record["id"]}
        if not record.get("webhook"):
            url = f"{base.rstrip('/')}/v1/get_result"
            answer["polling_url"] = url if record.get("bare_poll") else f"{url}?id={record['id']}"
        answer["cost"] = float(record["cost"])
        answer["input_mp"] = float(record.get("input_mp", 0.0))
        answer["output_mp"] = round(int(record["width"]) * int(record["height"]) / 1e6, 2)
        return answer

    def status(self, record: dict[str, Any], phase: str, base: str, now: float) -> dict[str, Any]:
        """``result.sample`` (signed with an ``se=`` expiry) when Ready; ``details`` when it
        failed or was moderated."""
        answer: dict[str, Any] = {
            "id": record["id"],
            "status": self._words[phase],
            "result": None,
            "progress": None if phase in tasks.ENDED else tasks.progress(record, now) / 100,
        }
        if phase == tasks.SUCCEEDED:
            expiry = quote(iso(tasks.expires_at(record)), safe="")
            answer["result"] = {
                "sample": f"{tasks.image_url(record, base)}?se={expiry}&sp=r&sig=sandbox",
                "prompt": record["prompt"],
                "seed": record["seed"] if record["seed"] is not None else 0,
                "start_time": float(record["created"]),
                "end_time": tasks.ended_at(record),
                "duration": float(record["latency"]),
            }
        elif phase == tasks.MODERATED and record.get("moderation") == "request":
            answer["status"] = "Request Moderated"
            answer["details"] = {"Moderation Reasons": ["Sandbox marker"]}
        elif phase == tasks.MODERATED:
            answer["details"] = {"Moderation Reasons": ["Sandbox moderation"]}
        elif phase == tasks.FAILED:
            answer["details"] = {"message": self.failure(record)[1]}
        return answer

    def error(self, status: int, message: str) -> dict[str, Any]:
        """FastAPI's ``{"detail": …}``."""
        return {"detail": message}

    def invalid(self, exc: Invalid) -> tuple[int, dict[str, Any]]:
        """FastAPI's 422 with ``loc``, ``msg`` and ``type``."""
        return 422, {"detail": [{"loc": ["body", exc.field], "msg": exc.message, "type": exc.kind}]}

    def not_found(self, task_id: str) -> tuple[int, dict[str, Any]]:
        """BFL's answer for an unknown id: 200 with the status word ``Task not found``."""
        return 200, {"id": task_id, "status": "Task not found", "result": None}


DIALECTS: dict[str, Dialect] = {d.name: d for d in (ApiInOne(), ApiMart(), Vtrix(), Bfl())}
