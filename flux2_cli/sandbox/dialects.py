"""The four wire formats the sandbox speaks: reading create bodies, writing every answer.

Each dialect turns a create body into a neutral :class:`~flux2_cli.sandbox.tasks.Spec` and a
task record into the JSON its provider documents (see wire-contracts.md). Error shapes:

==========  =========================================================  ======================
dialect     error body                                                 out of credits
==========  =========================================================  ======================
apiinone    ``{"error":{"code":401,"message":…,"type":…}}``             402
apimart     ``{"error":{"code":401,"message":…,"type":…}}``             402
vtrix       ``{"error":{"code":"401","message":…}}``                    403 insufficient balance
bfl         ``{"detail":…}`` (422: FastAPI's list with ``loc``)          402
==========  =========================================================  ======================

A missing, empty or refused key is 401 in every dialect.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

from flux2_cli.request import RATIOS, SIZE_TABLE
from flux2_cli.sandbox import tasks
from flux2_cli.sandbox.tasks import Spec

PROMPT_MIN = 3
PROMPT_MAX = 5000
MAX_REFS = 8
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


def _prompt(body: Mapping[str, Any]) -> str:
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise Invalid("prompt", "prompt is required and must be a string", "missing")
    if not PROMPT_MIN <= len(prompt.strip()) <= PROMPT_MAX:
        raise Invalid("prompt", f"prompt must be {PROMPT_MIN} to {PROMPT_MAX} characters")
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


def _numbered_refs(body: Mapping[str, Any]) -> None:
    for index in range(1, MAX_REFS + 1):
        name = "input_image" if index == 1 else f"input_image_{index}"
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise Invalid(name, f"{name} must be a string (a URL or base64)")
    extra = [key for key in body if key.startswith("input_image_")]
    for key in extra:
        suffix = key.removeprefix("input_image_")
        if not suffix.isdigit() or not 2 <= int(suffix) <= MAX_REFS:
            raise Invalid(key, f"at most {MAX_REFS} input images (input_image … input_image_8)")


def _pixels(body: Mapping[str, Any], multiple: int, max_pixels: int) -> tuple[int, int]:
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
        prompt = _prompt(body)
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
        prompt = _prompt(body)
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
        """``data`` is a one-item list."""
        return {"code": 200, "data": [{"status": "submitted", "task_id": record["id"]}]}

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
        elif phase in (tasks.FAILED, tasks.MODERATED):
            code, message = self.failure(record)
            data["error"] = {"code": code, "message": message}
        return {"code": 200, "data": data}


class Vtrix(Dialect):
    """``POST /model/v1/generation`` (flat params), ``GET /model/v1/generation/task/{id}``."""

    name = "vtrix"
    _words: ClassVar[dict[str, str]] = {
        tasks.QUEUED: "in_progress",
        tasks.RUNNING: "in_progress",
        tasks.SUCCEEDED: "completed",
        tasks.FAILED: "failed",
        tasks.MODERATED: "failed",
    }
    _modes: ClassVar[dict[str, str]] = {
        "flux_2_pro": "pro",
        "flux_2_flex": "flex",
        "flux_2_max": "max",
    }

    def parse(self, body: Mapping[str, Any], path_model: str | None) -> Spec:
        """width/height multiples of 32 (≥ 64), output_format jpeg (default) or png."""
        model = _choice(body, "model", tuple(self._modes), "flux_2_pro")
        prompt = _prompt(body)
        width, height = _pixels(body, 32, MAX_PIXELS)
        _int(body, "safety_tolerance", 0, 6)
        fmt = _choice(body, "output_format", ("jpeg", "png"), "jpeg")
        _numbered_refs(body)
        secret = body.get("webhook_secret")
        return Spec(
            prompt=prompt,
            width=width,
            height=height,
            fmt=fmt,
            seed=_seed(body),
            mode=self._modes[model],
            res=tasks.res_for(width, height),
            model=model,
            webhook_url=_http_url(body, "webhook_url"),
            webhook_secret=secret if isinstance(secret, str) else None,
        )

    def created(self, record: dict[str, Any], base: str) -> dict[str, Any]:
        """The task object, still in progress."""
        return {"id": record["id"], "status": "in_progress", "model": record["model"]}

    def status(self, record: dict[str, Any], phase: str, base: str, now: float) -> dict[str, Any]:
        """``output[].content[].url`` and ``usage.cost`` (USD, a string)."""
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
            answer["usage"] = {"cost": f"{int(record['cost']) / 100:.2f}", "discount": 0}
        elif phase in (tasks.FAILED, tasks.MODERATED):
            code = "002014001" if record["outcome"] == tasks.FAILED else "002014002"
            answer["error"] = {"code": code, "message": self.failure(record)[1]}
        return answer

    def error(self, status: int, message: str) -> dict[str, Any]:
        """``{"error":{"code":"STATUS","message":…}}``."""
        return {"error": {"code": str(status), "message": message}}

    def no_credits(self) -> tuple[int, dict[str, Any]]:
        """Vtrix answers 403 for an empty balance."""
        return 403, {"error": {"message": "insufficient balance"}}


class Bfl(Dialect):
    """``x-key``; ``POST /v1/flux-2-{pro,flex,max}``, ``GET /v1/get_result?id=``."""

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
        """width/height multiples of 16, ≥ 64, ≤ 4 MP; output_format jpeg|png|webp."""
        mode = path_model or "pro"
        prompt = _prompt(body)
        width, height = _pixels(body, 16, BFL_MAX_PIXELS)
        _int(body, "safety_tolerance", 0, 5)
        _int(body, "steps", 1, 50)
        _number(body, "guidance", 1.5, 10)
        fmt = _choice(body, "output_format", ("jpeg", "png", "webp"), "jpeg")
        _numbered_refs(body)
        secret = body.get("webhook_secret")
        return Spec(
            prompt=prompt,
            width=width,
            height=height,
            fmt=fmt,
            seed=_seed(body),
            mode=mode,
            res=tasks.res_for(width, height),
            model=f"flux-2-{mode}",
            webhook_url=_http_url(body, "webhook_url"),
            webhook_secret=secret if isinstance(secret, str) else None,
        )

    def created(self, record: dict[str, Any], base: str) -> dict[str, Any]:
        """id, polling_url at this base, cost in credits, megapixels."""
        return {
            "id": record["id"],
            "polling_url": f"{base.rstrip('/')}/v1/get_result?id={record['id']}",
            "cost": float(record["cost"]),
            "input_mp": 0.0,
            "output_mp": round(int(record["width"]) * int(record["height"]) / 1e6, 2),
        }

    def status(self, record: dict[str, Any], phase: str, base: str, now: float) -> dict[str, Any]:
        """``result.sample`` when Ready; ``details`` when it failed or was moderated."""
        answer: dict[str, Any] = {
            "id": record["id"],
            "status": self._words[phase],
            "result": None,
            "progress": None if phase in tasks.ENDED else tasks.progress(record, now) / 100,
        }
        if phase == tasks.SUCCEEDED:
            answer["result"] = {
                "sample": tasks.image_url(record, base),
                "prompt": record["prompt"],
                "seed": record["seed"],
                "start_time": float(record["created"]),
                "end_time": tasks.ended_at(record),
                "duration": float(record["latency"]),
            }
        elif phase in (tasks.FAILED, tasks.MODERATED):
            answer["details"] = {"message": self.failure(record)[1]}
        return answer

    def error(self, status: int, message: str) -> dict[str, Any]:
        """FastAPI's ``{"detail": …}``."""
        return {"detail": message}

    def invalid(self, exc: Invalid) -> tuple[int, dict[str, Any]]:
        """FastAPI's 422 with ``loc``, ``msg`` and ``type``."""
        return 422, {"detail": [{"loc": ["body", exc.field], "msg": exc.message, "type": exc.kind}]}

    def not_found(self, task_id: str) -> tuple[int, dict[str, Any]]:
        """BFL's status word for an unknown id."""
        return 404, {"id": task_id, "status": "Task not found", "result": None}


DIALECTS: dict[str, Dialect] = {d.name: d for d in (ApiInOne(), ApiMart(), Vtrix(), Bfl())}
