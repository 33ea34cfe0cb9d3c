"""The sandbox's ASGI application: the four providers' paths at one base URL, plus image files.

===========  =======================================  =========================================
dialect      create                                   poll
===========  =======================================  =========================================
apiinone     ``POST /api/v1/images/generations``      ``GET /api/v1/tasks/{id}``
apimart      ``POST /v1/images/generations``          ``GET /v1/tasks/{id}``
vtrix        ``POST /model/v1/generation``            ``GET /model/v1/generation/task/{id}``
bfl          ``POST /v1/{model}`` (seven FLUX.2)      ``GET /v1/get_result?id=`` (polling_url)
===========  =======================================  =========================================

The key's credit balance: ``GET /v1/credits`` (BFL's own endpoint, ``x-key``) and
``GET /sandbox/v1/credits`` (the sandbox's, a bearer key, for ``--provider sandbox``); the other
dialects document no balance endpoint, so the sandbox offers none in their dialect either.

Images are served at ``GET /files/{name}`` (no key, like a signed storage URL) with
``Content-Length``, ``Accept-Ranges`` and single-range ``Range`` support; after the TTL they
answer 403 with an XML ``AccessDenied`` body. ``GET /`` describes the sandbox in JSON. Unknown
paths answer FastAPI's ``{"detail": "Not Found"}``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from flux2_cli.providers.apimart import RESPONSE_VERSION as APIMART_RESPONSE_VERSION
from flux2_cli.providers.bfl import CAPABILITIES as BFL_CAPABILITIES
from flux2_cli.providers.sandbox import BALANCE_PATH as SANDBOX_CREDITS_PATH
from flux2_cli.sandbox import faults as faultmod
from flux2_cli.sandbox import images, tasks, webhooks
from flux2_cli.sandbox.dialects import DIALECTS, LOST_POLLS, ApiMart, Dialect, Invalid
from flux2_cli.sandbox.settings import (
    BROKE_KEY,
    INVALID_KEY,
    SLOW_MARKER_FACTOR,
    SandboxSettings,
)
from flux2_cli.sandbox.state import StateStore, key_fingerprint, safe_name

FAULT_HEADER = "X-Sandbox-Fault"  # names the injected fault on every faulty answer
# Every FLUX.2 model BFL serves, each at POST /v1/{model} (providers.bfl.MODEL_SPECS).
BFL_MODELS: tuple[str, ...] = tuple(spec.id for spec in BFL_CAPABILITIES.model_specs)
APIMART_IDEMPOTENCY_HEADER = "idempotency-key"
APIMART_VERSION_HEADER = "x-apimart-response-version"
APIMART_REPLAYED_HEADER = "idempotency-replayed"
MARKER_RETRY_AFTER = 1
PROXY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
PORTAL_PAGE = (
    "<!DOCTYPE html><html><head><title>Sign in</title></head><body>"
    "<h1>Network login required</h1><p>This page stands in for the image "
    "(sandbox fault).</p></body></html>"
)
XML_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>{message}</Message><Resource>/files/{name}</Resource></Error>"
)
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


# At most two images drawn at once in the background (the machine may have two cores).
_PRERENDER_SLOTS = threading.BoundedSemaphore(2)


class Sandbox:
    """What the routes share: settings, the state store and the fault injector."""

    def __init__(self, settings: SandboxSettings, *, webhooks_on_poll: bool = True) -> None:
        self.settings = settings
        self.store = StateStore(settings.resolved_state_dir())
        self.faults = faultmod.FaultInjector(settings.faults)
        self.webhooks_on_poll = webhooks_on_poll
        self.webhook_sender: webhooks.Sender | None = None

    def ttl_for(self, dialect: Dialect) -> float:
        """How long this dialect's image URLs live."""
        return self.settings.bfl_ttl_seconds if dialect.bfl_ttl else self.settings.ttl_seconds

    def prerender(self, record: dict[str, Any]) -> None:
        """Draw a task's image in the background while it is "running".

        A real provider has the image ready when the task ends; drawing it on the first
        download instead put Pillow's encoding on every client's critical path (16 images at
        the end of a batch wave). Daemon threads, so a short-lived embedded process never waits
        for them; the download path still draws on demand if the image is not there yet.
        """
        name = tasks.image_name(record)

        def draw() -> None:
            with _PRERENDER_SLOTS:
                if self.store.read_image(name) is not None:
                    return
                data = images.render(
                    int(record["width"]),
                    int(record["height"]),
                    str(record["prompt"]),
                    record.get("seed"),
                    str(record["format"]),
                )
                self.store.write_image(name, data)

        threading.Thread(target=draw, name=f"sandbox-draw-{name}", daemon=True).start()


def create_app(settings: SandboxSettings, *, webhooks_on_poll: bool = True) -> Starlette:
    """The Starlette application answering all four dialects and the image files."""

    sandbox = Sandbox(settings, webhooks_on_poll=webhooks_on_poll)

    def bind(
        handler: Callable[..., Awaitable[Response]], **kwargs: Any
    ) -> Callable[[Request], Awaitable[Response]]:
        return partial(handler, sandbox, **kwargs)

    routes = [
        Route("/", bind(_index), methods=["GET"]),
        Route(
            "/api/v1/images/generations",
            bind(_create, dialect=DIALECTS["apiinone"]),
            methods=["POST"],
        ),
        Route("/api/v1/tasks/{task_id}", bind(_poll, dialect=DIALECTS["apiinone"])),
        Route(
            "/v1/images/generations", bind(_create, dialect=DIALECTS["apimart"]), methods=["POST"]
        ),
        Route("/v1/tasks/{task_id}", bind(_poll, dialect=DIALECTS["apimart"])),
        Route("/model/v1/generation", bind(_create, dialect=DIALECTS["vtrix"]), methods=["POST"]),
        Route("/model/v1/generation/task/{task_id}", bind(_poll, dialect=DIALECTS["vtrix"])),
        Route("/v1/get_result", bind(_poll, dialect=DIALECTS["bfl"])),
        *(
            Route(
                f"/v1/{model}",
                bind(_create, dialect=DIALECTS["bfl"], path_model=model),
                methods=["POST"],
            )
            for model in BFL_MODELS
        ),
        Route("/v1/credits", bind(_credits, dialect=DIALECTS["bfl"]), methods=["GET"]),
        Route(SANDBOX_CREDITS_PATH, bind(_credits, dialect=DIALECTS["apiinone"]), methods=["GET"]),
        Route("/files/{name}", bind(_file), methods=["GET", "HEAD"]),
    ]
    # Unknown paths and methods answer FastAPI's JSON, as BFL's API does.
    handlers = {404: _http_error, 405: _http_error}
    app = Starlette(routes=routes, exception_handlers=handlers)  # type: ignore[arg-type]
    app.state.sandbox = sandbox
    return app


# -- helpers ---------------------------------------------------------------------------------


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer."""
    return JSONResponse(body, status_code=status, headers=headers)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _auth(dialect: Dialect, request: Request) -> tuple[str | None, Response | None]:
    key = dialect.key(request.headers)
    if key is None:
        status, body = dialect.unauthorized("Missing API key")
        return None, _json(status, body)
    if key == INVALID_KEY:
        status, body = dialect.unauthorized("Invalid API key")
        return None, _json(status, body)
    return key, None


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """FastAPI's ``{"detail": "Not Found"}`` for a path (or method) no dialect serves."""
    return _json(exc.status_code, {"detail": exc.detail})


def _fault_response(sandbox: Sandbox, dialect: Dialect, kind: str) -> Response:
    headers = {FAULT_HEADER: kind}
    if kind == "429":
        body, extra = dialect.rate_limited(sandbox.settings.faults.retry_after)
        return _json(429, body, {**headers, **extra})
    if kind == "500":
        return _json(500, dialect.error(500, "Internal server error"), headers)
    if kind == "drop":
        return DroppedResponse(headers)
    status = int(kind)
    page = PROXY_PAGE.format(status=status, reason=_REASONS[status])
    return HTMLResponse(page, status_code=status, headers=headers)


# -- routes ----------------------------------------------------------------------------------


async def _index(sandbox: Sandbox, request: Request) -> Response:
    base = _base(request)
    return _json(
        200,
        {
            "service": "flux2 sandbox",
            "base_url": base,
            "dialects": sorted(DIALECTS),
            "keys": {
                "any non-empty key": f"accepted, {sandbox.settings.credits} credits to start",
                INVALID_KEY: "refused (401)",
                BROKE_KEY: "no credits (402; vtrix 403)",
            },
            "latency_seconds": sandbox.settings.latency,
            "faults": sandbox.settings.faults.describe(),
        },
    )


async def _create(
    sandbox: Sandbox, request: Request, *, dialect: Dialect, path_model: str | None = None
) -> Response:
    key, refused = _auth(dialect, request)
    if refused is not None:
        return refused
    assert key is not None
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        status, answer = dialect.invalid(Invalid("body", "the body must be a JSON object"))
        return _json(status, answer)
    fault = sandbox.faults.draw(faultmod.CREATE_FAULTS)
    if fault is not None:
        return _fault_response(sandbox, dialect, fault)
    try:
        spec = dialect.parse(body, path_model)
    except Invalid as exc:
        status, answer = dialect.invalid(exc)
        return _json(status, answer)

    settings, store = sandbox.settings, sandbox.store
    now = settings.clock()
    fingerprint = key_fingerprint(key)
    markers = faultmod.markers_in(spec.prompt)
    token = hashlib.sha256(fingerprint.encode() + b"\x00" + raw).hexdigest()[:32]
    if "429" in markers and store.first_time(f"429:{token}", now):
        body_429, extra = dialect.rate_limited(MARKER_RETRY_AFTER)
        return _json(429, body_429, {**extra, FAULT_HEADER: "429"})
    if "500" in markers and store.first_time(f"500:{token}", now):
        return _json(500, dialect.error(500, "Internal server error"), {FAULT_HEADER: "500"})

    idempotency = _idempotency(dialect, request, fingerprint)
    if idempotency is not None:
        replay = _replay(sandbox, dialect, request, idempotency, raw)
        if replay is not None:
            return replay

    cost = dialect.price(spec)
    initial = 0 if key == BROKE_KEY else settings.credits
    charged, _balance = store.charge(fingerprint, cost, initial)
    if not charged:
        status, answer = dialect.no_credits()
        return _json(status, answer)

    if "moderate_request" in markers:
        spec.extra["moderation"] = "request"
    if "lost" in markers:
        spec.extra["lost_polls"] = LOST_POLLS
    for marker in ("fail422", "bare_poll"):
        if marker in markers:
            spec.extra[marker] = True
    if "moderate" in markers or "moderate_request" in markers:
        outcome = tasks.MODERATED
    elif "fail" in markers or "fail422" in markers:
        outcome = tasks.FAILED
    else:
        drawn = sandbox.faults.draw(faultmod.OUTCOME_FAULTS)
        outcome = {"fail": tasks.FAILED, "moderate": tasks.MODERATED}.get(
            drawn or "", tasks.SUCCEEDED
        )
    latency = settings.latency * (SLOW_MARKER_FACTOR if "slow" in markers else 1.0)
    record = tasks.new_record(
        task_id=tasks.new_task_id(dialect.name),
        dialect=dialect.name,
        spec=spec,
        created=now,
        latency=latency,
        outcome=outcome,
        never="never" in markers,
        ttl=sandbox.ttl_for(dialect),
        image_faults=[m for m in markers if m in ("html", "truncate", "expired")],
        drop_first_poll="drop" in markers,
        cost=cost,
        base_url=_base(request),
    )
    store.save_task(record)
    if outcome == tasks.SUCCEEDED and "never" not in markers:
        sandbox.prerender(record)
    if spec.webhook_url:
        store.mark_webhook_pending(record["id"])
    if "lose_answer" in markers and store.first_time(f"lose:{token}", now):
        if idempotency is not None:
            store.bind_idempotent(idempotency, record["id"], _request_hash(raw))
        return DroppedResponse({FAULT_HEADER: "lose_answer"})
    headers = _version_headers(dialect, request)
    if idempotency is not None:
        task_id, _ = store.bind_idempotent(idempotency, record["id"], _request_hash(raw))
        if task_id != record["id"]:  # a concurrent duplicate won the key: answer with its task
            replayed = store.load_task(task_id)
            record = replayed if replayed is not None else record
            headers[APIMART_REPLAYED_HEADER] = "true"
    return _json(200, _created(dialect, request, record), headers or None)


def _created(dialect: Dialect, request: Request, record: dict[str, Any]) -> dict[str, Any]:
    """The create answer, in the response version APIMart's client asked for."""
    if isinstance(dialect, ApiMart) and request.headers.get(APIMART_VERSION_HEADER):
        return dialect.created_v2(record)
    return dialect.created(record, _base(request))


def _version_headers(dialect: Dialect, request: Request) -> dict[str, str]:
    """APIMart names the response version it answered in, when one was asked for."""
    if isinstance(dialect, ApiMart) and request.headers.get(APIMART_VERSION_HEADER):
        return {APIMART_VERSION_HEADER: APIMART_RESPONSE_VERSION}
    return {}


def _request_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:32]


def _idempotency(dialect: Dialect, request: Request, fingerprint: str) -> str | None:
    """The store token of an APIMart ``Idempotency-Key`` (per API key), or None."""
    if not isinstance(dialect, ApiMart):
        return None
    value = request.headers.get(APIMART_IDEMPOTENCY_HEADER, "").strip()
    return f"{fingerprint}:{value}" if value else None


def _replay(
    sandbox: Sandbox, dialect: Dialect, request: Request, token: str, raw: bytes
) -> Response | None:
    """A duplicate APIMart request: the first answer again, ``idempotency-replayed: true``,
    nothing charged; the same key with another body is refused (422)."""
    bound = sandbox.store.idempotent_task(token)
    if bound is None:
        return None
    task_id, request_hash = bound
    if request_hash != _request_hash(raw):
        return _json(
            422,
            dialect.error(422, "Idempotency-Key was already used with a different request"),
        )
    record = sandbox.store.load_task(task_id)
    if record is None:
        return None
    headers = {**_version_headers(dialect, request), APIMART_REPLAYED_HEADER: "true"}
    return _json(200, _created(dialect, request, record), headers)


async def _credits(sandbox: Sandbox, request: Request, *, dialect: Dialect) -> Response:
    """The key's balance, ``{"credits": N}`` as BFL answers it."""
    key, refused = _auth(dialect, request)
    if refused is not None:
        return refused
    assert key is not None
    initial = 0 if key == BROKE_KEY else sandbox.settings.credits
    balance = sandbox.store.balance(key_fingerprint(key), initial)
    return _json(200, {"credits": balance})


async def _poll(sandbox: Sandbox, request: Request, *, dialect: Dialect) -> Response:
    _key, refused = _auth(dialect, request)
    if refused is not None:
        return refused
    if dialect.name == "bfl":
        task_id = request.query_params.get("id", "")
        if not task_id:
            return _json(
                422,
                {"detail": [{"loc": ["query", "id"], "msg": "Field required", "type": "missing"}]},
            )
    else:
        task_id = str(request.path_params["task_id"])
    fault = sandbox.faults.draw(faultmod.POLL_FAULTS)
    if fault is not None:
        return _fault_response(sandbox, dialect, fault)
    store = sandbox.store
    record = store.load_task(task_id) if safe_name(task_id) else None
    if record is None or record.get("dialect") != dialect.name:
        status, answer = dialect.not_found(task_id)
        return _json(status, answer)
    if record.get("drop_first_poll") and not record.get("dropped"):
        dropped: list[bool] = []

        def mark_dropped(current: dict[str, Any]) -> bool:
            # Checked again under the lock: of two racing polls, only one is dropped.
            if current.get("dropped"):
                return False
            current["dropped"] = True
            dropped.append(True)
            return True

        store.update_task(task_id, mark_dropped)
        if dropped:
            return DroppedResponse({FAULT_HEADER: "drop"})
    if record.get("lost_polls"):
        lost: list[bool] = []

        def lose_one(current: dict[str, Any]) -> bool:
            # Counted under the lock: [sandbox:lost] answers "not found" exactly LOST_POLLS times.
            if not current.get("lost_polls"):
                return False
            current["lost_polls"] = int(current["lost_polls"]) - 1
            lost.append(True)
            return True

        store.update_task(task_id, lose_one)
        if lost:
            status, answer = dialect.not_found(task_id)
            return _json(status, answer, {FAULT_HEADER: "lost"})
    now = sandbox.settings.clock()
    phase = tasks.phase(record, now)
    due = record.get("webhook_state") == "pending" and phase in tasks.ENDED
    if sandbox.webhooks_on_poll and due:
        import anyio.to_thread

        await anyio.to_thread.run_sync(
            partial(webhooks.deliver, store, sandbox.settings, task_id, sandbox.webhook_sender)
        )
    # [sandbox:fail422]: a failed task answered HTTP 422 with its task body, as BFL's can be.
    code = 422 if phase == tasks.FAILED and record.get("fail422") else 200
    return _json(code, dialect.status(record, phase, _base(request), now))


async def _file(sandbox: Sandbox, request: Request) -> Response:
    name = str(request.path_params["name"])
    task_id = tasks.task_id_of_image(name) if safe_name(name) else None
    record = sandbox.store.load_task(task_id) if task_id else None
    now = sandbox.settings.clock()
    if (
        record is None
        or tasks.image_name(record) != name
        or tasks.phase(record, now) != tasks.SUCCEEDED
    ):
        return _xml(404, "NoSuchKey", "The specified key does not exist.", name)
    if now >= tasks.expires_at(record):
        return _xml(403, "AccessDenied", "Request has expired", name, fault=None)
    fault = sandbox.faults.draw(faultmod.FILE_FAULTS)
    marked = record.get("image_faults", [])
    if fault == "drop":
        return DroppedResponse({FAULT_HEADER: "drop"})
    if fault == "expired":
        return _xml(403, "AccessDenied", "Request has expired", name, fault="expired")
    if fault == "html" or "html" in marked:
        return HTMLResponse(PORTAL_PAGE, headers={FAULT_HEADER: "html"})

    data = sandbox.store.read_image(name)
    if data is None:
        import anyio.to_thread

        data = await anyio.to_thread.run_sync(
            partial(
                images.render,
                int(record["width"]),
                int(record["height"]),
                str(record["prompt"]),
                record.get("seed"),
                str(record["format"]),
            )
        )
        sandbox.store.write_image(name, data)
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=0",
        "ETag": '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"',
    }
    status = 200
    body = data
    range_header = request.headers.get("range")
    if range_header:
        span = _parse_range(range_header, len(data))
        if span is None:
            headers["Content-Range"] = f"bytes */{len(data)}"
            return Response(b"", status_code=416, headers=headers)
        start, end = span
        body = data[start : end + 1]
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    media_type = images.content_type(str(record["format"]))
    if fault == "truncate" or "truncate" in marked:
        headers[FAULT_HEADER] = "truncate"
        return PartialResponse(body, status, media_type, headers, send=len(body) // 2)
    if fault == "slow":
        headers[FAULT_HEADER] = "slow"
        return SlowResponse(body, status, media_type, headers, sandbox.settings)
    return Response(body, status_code=status, media_type=media_type, headers=headers)


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as (first, last) inclusive, or None when unsatisfiable."""
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec or "-" not in spec:
        return None
    first_text, _, last_text = spec.strip().partition("-")
    try:
        if not first_text:
            suffix = int(last_text)
            if suffix <= 0:
                return None
            return max(0, size - suffix), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first < 0 or first >= size or last < first:
        return None
    return first, min(last, size - 1)


def _xml(status: int, code: str, message: str, name: str, fault: str | None = None) -> Response:
    headers = {FAULT_HEADER: fault} if fault else None
    return Response(
        XML_ERROR.format(code=code, message=message, name=name),
        status_code=status,
        media_type="application/xml",
        headers=headers,
    )


# -- responses that misbehave on purpose -----------------------------------------------------


class _RawResponse(Response):
    """A response that writes its ASGI messages itself (to send less than it promises)."""

    def __init__(self, status: int, headers: dict[str, str], length: int) -> None:
        # Starlette's __init__ would encode a body; these responses send their own.
        self.status_code = status
        self.background = None
        self.raw_headers = [
            (key.lower().encode("latin-1"), value.encode("latin-1"))
            for key, value in {**headers, "Content-Length": str(length)}.items()
        ]

    async def start(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )


class DroppedResponse(_RawResponse):
    """Headers promising a body, then nothing: the server closes the connection (uvicorn does
    when an application returns without completing its response)."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(200, {"Content-Type": "application/json", **headers}, 64)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.start(send)


class PartialResponse(_RawResponse):
    """The full ``Content-Length``, then only ``send`` bytes of the body, then the close."""

    def __init__(
        self, body: bytes, status: int, media_type: str, headers: dict[str, str], send: int
    ) -> None:
        super().__init__(status, {"Content-Type": media_type, **headers}, len(body))
        self.body = body[:send]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.start(send)
        await send({"type": "http.response.body", "body": self.body, "more_body": True})


class SlowResponse(_RawResponse):
    """The whole body in ``slow_chunks`` pieces, pausing ``slow_delay`` before each."""

    def __init__(
        self,
        body: bytes,
        status: int,
        media_type: str,
        headers: dict[str, str],
        settings: SandboxSettings,
    ) -> None:
        super().__init__(status, {"Content-Type": media_type, **headers}, len(body))
        self.body = body
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.start(send)
        pieces = max(1, self.settings.slow_chunks)
        step = -(-len(self.body) // pieces) or 1
        for offset in range(0, len(self.body), step):
            await self.settings.sleep(self.settings.slow_delay)
            chunk = self.body[offset : offset + step]
            more = offset + step < len(self.body)
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
        if not self.body:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
