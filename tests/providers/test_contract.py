"""The contract every registered provider keeps: vocabulary, refusals, and clean create bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flux2_cli.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    CreditsError,
    RateLimitError,
    ServerError,
    UsageError,
)
from flux2_cli.providers import REGISTRY, get_provider
from flux2_cli.providers.base import Capabilities, Provider
from flux2_cli.request import GenerationRequest, validate_request
from flux2_cli.task import Task, TaskStatus

PROVIDERS = list(REGISTRY)

# The documented vocabulary of each API (wire-contracts.md), written here independently of
# the translators so that a dropped word fails.
Q, R, S, F = TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED, TaskStatus.FAILED
APIINONE_WORDS = {
    "IN_PROGRESS": R,
    "pending": Q,
    "processing": R,
    "COMPLETED": S,
    "completed": S,
    "SUCCESS": S,
    "success": S,
    "FAILED": F,
    "failed": F,
    "ERROR": F,
    "error": F,
}
VOCABULARY: dict[str, dict[str, TaskStatus]] = {
    "apiinone": APIINONE_WORDS,
    "sandbox": APIINONE_WORDS,
    "apimart": {
        "submitted": Q,
        "pending": Q,
        "processing": R,
        "completed": S,
        "failed": F,
        "cancelled": F,
    },
    "vtrix": {"in_progress": R, "completed": S, "failed": F},
    "bfl": {
        "Pending": Q,
        "Ready": S,
        "Error": F,
        "Request Moderated": F,
        "Content Moderated": F,
        "Task not found": F,
    },
}

# What each API takes, from the wire-contracts.md table (sandbox: exactly what apiinone takes).
TAKES: dict[str, dict[str, bool]] = {
    "apiinone": {
        "seed": False,
        "format": False,
        "safety": False,
        "size": False,
        "callback": True,
        "local_ref": False,
    },
    "sandbox": {
        "seed": False,
        "format": False,
        "safety": False,
        "size": False,
        "callback": True,
        "local_ref": False,
    },
    "apimart": {
        "seed": False,
        "format": False,
        "safety": False,
        "size": False,
        "callback": False,
        "local_ref": False,
    },
    "vtrix": {
        "seed": True,
        "format": True,
        "safety": True,
        "size": True,
        # The flux-2-pro page (doc.vtrix.ai) lists no webhook fields (wire-contracts, updates).
        "callback": False,
        "local_ref": False,
    },
    "bfl": {
        "seed": True,
        "format": True,
        "safety": True,
        "size": True,
        "callback": True,
        "local_ref": True,
    },
}

OPTION_REQUESTS: dict[str, tuple[str, GenerationRequest]] = {
    "seed": ("--seed", GenerationRequest("a red fox", seed=1)),
    "format": ("--format", GenerationRequest("a red fox", format="png")),
    "safety": ("--safety", GenerationRequest("a red fox", safety=2)),
    "size": ("--width", GenerationRequest("a red fox", width=1024, height=1024)),
    "callback": (
        "--callback-url",
        GenerationRequest("a red fox", callback_url="https://h.example/x"),
    ),
    "local_ref": ("--ref", GenerationRequest("a red fox", refs=("./me.png",))),
}


def test_registry_lists_every_provider() -> None:
    assert PROVIDERS == ["apiinone", "apimart", "vtrix", "bfl", "sandbox"]
    assert set(VOCABULARY) == set(PROVIDERS)


@pytest.mark.parametrize("provider_id", PROVIDERS)
def test_is_a_provider_with_complete_capabilities(provider_id: str) -> None:
    provider = get_provider(provider_id)
    assert isinstance(provider, Provider)
    caps = provider.capabilities
    assert caps.id == provider_id
    assert caps.base_url.startswith(("https://", "http://"))
    assert caps.docs_url and caps.prices and caps.env_var and caps.auth_header
    assert set(caps.modes) <= set(caps.models)
    assert caps.default_format in ("png", "jpeg", "webp")
    if caps.formats:
        assert caps.default_format in caps.formats
    assert caps.url_lifetime.total_seconds() > 0
    json = caps.to_json()
    assert json["id"] == provider_id


@pytest.mark.parametrize("provider_id", ["apiinone", "apimart", "vtrix", "bfl"])
def test_env_var_is_the_documented_one(provider_id: str) -> None:
    expected = {
        "apiinone": "APIINONE_API_KEY",
        "apimart": "APIMART_API_KEY",
        "vtrix": "VTRIX_API_KEY",
        "bfl": "BFL_API_KEY",
    }
    assert get_provider(provider_id).capabilities.env_var == expected[provider_id]


def _task(provider: Provider) -> Task:
    return Task(task_id="t1", provider=provider.capabilities.id, status=TaskStatus.QUEUED)


@pytest.mark.parametrize(
    ("provider_id", "word", "status"),
    [(pid, word, status) for pid, words in VOCABULARY.items() for word, status in words.items()],
)
def test_every_documented_status_word_is_mapped(
    provider_id: str, word: str, status: TaskStatus
) -> None:
    provider = get_provider(provider_id)
    body: dict[str, Any] = {
        "id": "t1",
        "status": word,
        # Success needs URLs in every usual place a provider documents.
        "images": [{"url": "https://cdn.example/a.png"}],
        "result": {
            "images": [{"url": "https://cdn.example/a.png"}],
            "sample": "https://cdn.example/a.png",
        },
        "output": [{"content": [{"type": "image", "url": "https://cdn.example/a.png"}]}],
    }
    task = provider.parse_poll(body, _task(provider))
    assert task.status is status, word
    assert task.unknown_status is None
    if status is TaskStatus.SUCCEEDED:
        assert [i.url for i in task.images] == ["https://cdn.example/a.png"]
    if status is TaskStatus.FAILED:
        assert task.error is not None and task.error.message


@pytest.mark.parametrize(
    ("provider_id", "option"),
    [(pid, option) for pid in PROVIDERS for option in OPTION_REQUESTS],
)
def test_options_taken_or_refused_naming_provider_and_option(provider_id: str, option: str) -> None:
    provider = get_provider(provider_id)
    flag, request = OPTION_REQUESTS[option]
    if TAKES[provider_id][option]:
        provider.validate(request)
        return
    with pytest.raises(UsageError) as caught:
        provider.validate(request)
    assert provider_id in caught.value.message
    assert flag in caught.value.message


@pytest.mark.parametrize("provider_id", PROVIDERS)
def test_too_many_refs_are_refused(provider_id: str) -> None:
    refs = tuple(f"https://example.com/{n}.png" for n in range(9))
    with pytest.raises(UsageError) as caught:
        get_provider(provider_id).validate(GenerationRequest("a red fox", refs=refs))
    assert provider_id in caught.value.message and "--ref" in caught.value.message


# --- hypothesis: any valid request gives a clean, schema-conforming body -----------------

PROMPT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=3, max_size=60
).filter(lambda text: len(text.strip()) >= 3)
URL = st.from_regex(r"\Ahttps://[a-z]{1,10}\.example/[a-z0-9]{1,10}\.png\Z")
JSON_LEAF = st.one_of(st.booleans(), st.integers(-1000, 1000), st.text(max_size=10))
PARAM_KEYS = st.sampled_from(["extra", "note", "quality_hint", "tag"])
PARAMS = st.dictionaries(
    PARAM_KEYS, st.one_of(JSON_LEAF, st.lists(JSON_LEAF, max_size=3)), max_size=2
)


@st.composite
def valid_requests(draw: st.DrawFn, caps: Capabilities) -> GenerationRequest:
    explicit = caps.size_rule is not None and draw(st.booleans())
    width = height = None
    if explicit:
        assert caps.size_rule is not None
        rule = caps.size_rule
        top = 2048 // rule.multiple
        low = max(1, -(-rule.min_side // rule.multiple))
        width = draw(st.integers(low, top)) * rule.multiple
        height = draw(st.integers(low, top)) * rule.multiple
        if rule.max_pixels and width * height > rule.max_pixels:
            height = max(
                low * rule.multiple, (rule.max_pixels // width) // rule.multiple * rule.multiple
            )
    optional = st.booleans()
    callback_url = draw(URL) if caps.takes_callback and draw(optional) else None
    model = (
        draw(st.sampled_from(caps.extra_models))
        if bool(caps.extra_models) and draw(optional)
        else None
    )
    mode = draw(st.sampled_from(caps.modes))
    # A model's own limits (klein: 4 references, jpeg/png) where the provider lists them.
    spec = caps.spec_for(model or caps.models.get(mode, ""))
    max_refs = spec.max_refs if spec and spec.max_refs is not None else caps.max_refs
    formats = spec.formats if spec and spec.formats is not None else caps.formats
    return GenerationRequest(
        prompt=draw(PROMPT),
        ratio=draw(st.sampled_from(caps.ratios)),
        res=draw(st.sampled_from(caps.resolutions)),
        mode=mode,
        refs=tuple(draw(st.lists(URL, max_size=max_refs))),
        seed=draw(st.integers(0, 2**32)) if caps.takes_seed and draw(optional) else None,
        width=width,
        height=height,
        format=draw(st.sampled_from(formats)) if bool(formats) and draw(optional) else None,
        safety=(
            draw(st.integers(*caps.safety_range)) if caps.safety_range and draw(optional) else None
        ),
        callback_url=callback_url,
        webhook_secret=(
            "s3cret" if caps.takes_webhook_secret and callback_url and draw(optional) else None
        ),
        params=draw(PARAMS),
        model=model,
        upsample=False if spec and spec.upsample_param and draw(optional) else None,
        default_size=caps.size_optional and not explicit and draw(optional),
    )


def _none_paths(node: Any, path: str = "$") -> list[str]:
    if node is None:
        return [path]
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in _none_paths(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [p for n, value in enumerate(node) for p in _none_paths(value, f"{path}[{n}]")]
    return []


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _check_refs_flat(body: dict[str, Any], request: GenerationRequest) -> None:
    keys = ["input_image"] + [f"input_image_{n}" for n in range(2, 9)]
    sent = [body[key] for key in keys if key in body]
    assert sent == list(request.refs)


def check_apiinone(body: dict[str, Any], call_url: str, request: GenerationRequest) -> None:
    assert call_url == "/api/v1/images/generations"
    assert body["model"] == (request.model or "flux-2")
    assert body["aspect_ratio"] in ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3")
    assert body["resolution"] in ("1K", "2K")
    assert body["type"] in ("pro", "flex")
    assert all(_is_url(u) for u in body.get("input_urls", []))
    assert len(body.get("input_urls", [])) <= 8
    assert "callback_url" not in body or _is_url(body["callback_url"])


def check_apimart(body: dict[str, Any], call_url: str, request: GenerationRequest) -> None:
    assert call_url == "/v1/images/generations"
    assert body["model"] in ("flux-2-pro", "flux-2-flex") or body["model"] == request.model
    assert body["size"] in ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3")
    assert body["resolution"] in ("1K", "2K")
    assert all(_is_url(u) for u in body.get("image_urls", []))
    for key in ("width", "height", "seed", "output_format", "safety_tolerance"):
        assert key not in body


def check_vtrix(wire: dict[str, Any], call_url: str, request: GenerationRequest) -> None:
    # Wrapped as Vtrix's official CLI sends it (VtrixAI/vtrix-cli internal/generation/client.go).
    assert call_url == "/model/v1/generation"
    assert set(wire) == {"model", "input"} and wire["model"] in ("flux_2_pro", "flux_2_max")
    body = wire["input"][0]["params"]
    for side in ("width", "height"):
        assert isinstance(body[side], int) and body[side] >= 64 and body[side] % 32 == 0
    _check_refs_flat(body, request)
    assert "seed" not in body or isinstance(body["seed"], int)
    assert "safety_tolerance" not in body or body["safety_tolerance"] in range(1, 6)
    assert body.get("output_format", "jpeg") in ("jpeg", "png")
    assert "webhook_url" not in body


BFL_PATHS = {
    f"/v1/flux-2-{name}"
    for name in ("pro", "flex", "max", "klein-4b", "klein-9b", "pro-preview", "klein-9b-preview")
}


def check_bfl(body: dict[str, Any], call_url: str, request: GenerationRequest) -> None:
    # BFL's OpenAPI schema (api.bfl.ai/openapi.json) as summarised in wire-contracts.md.
    assert call_url in BFL_PATHS
    assert "model" not in body
    # width/height are optional: sent only when a size was asked for.
    assert ("width" in body) == (not request.default_size) == ("height" in body)
    if not request.default_size:
        for side in ("width", "height"):
            assert isinstance(body[side], int) and body[side] >= 64 and body[side] % 16 == 0
        assert body["width"] * body["height"] <= 4 * 1024 * 1024
    if "klein" in call_url:
        assert sum(key.startswith("input_image") for key in body) <= 4
        assert body.get("output_format", "jpeg") in ("jpeg", "png")
    if request.upsample is False:
        flex = call_url == "/v1/flux-2-flex"
        assert body.get("prompt_upsampling" if flex else "disable_pup") is (not flex)
    _check_refs_flat(body, request)
    assert "seed" not in body or isinstance(body["seed"], int)
    assert "safety_tolerance" not in body or 0 <= body["safety_tolerance"] <= 5
    assert body.get("output_format", "jpeg") in ("jpeg", "png", "webp")
    assert "webhook_url" not in body or _is_url(body["webhook_url"])


SCHEMAS: dict[str, Callable[[dict[str, Any], str, GenerationRequest], None]] = {
    "apiinone": check_apiinone,
    "sandbox": check_apiinone,
    "apimart": check_apimart,
    "vtrix": check_vtrix,
    "bfl": check_bfl,
}


@pytest.mark.parametrize("provider_id", PROVIDERS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_valid_requests_give_clean_bodies(provider_id: str, data: st.DataObject) -> None:
    provider = get_provider(provider_id)
    request = validate_request(data.draw(valid_requests(provider.capabilities)))
    provider.validate(request)
    call = provider.build_create(request)
    assert call.method == "POST" and call.paid
    assert isinstance(call.json, dict)
    assert _none_paths(call.json) == []
    SCHEMAS[provider_id](call.json, call.url, request)
    body = call.json["input"][0]["params"] if provider_id == "vtrix" else call.json
    assert body["prompt"] == request.prompt
    for key, value in request.params.items():
        assert body[key] == value


# Each dialect's documented error body (wire-contracts.md), carrying the message "nope".
ERROR_BODIES: dict[str, dict[str, Any]] = {
    "apiinone": {"error": {"code": 0, "message": "nope", "type": "x"}},
    "apimart": {"code": 0, "message": "nope", "data": None},
    "vtrix": {"error": {"code": "x", "message": "nope"}},
    "bfl": {"detail": "nope"},
    "sandbox": {"error": {"code": 0, "message": "nope", "type": "x"}},
}
STATUS_LADDER = [
    (400, BadRequestError, 2),
    (401, AuthError, 3),
    (402, CreditsError, 4),
    (403, AuthError, 3),
    (422, BadRequestError, 2),
    (429, RateLimitError, 7),
    (500, ServerError, 7),
    (503, ServerError, 7),
]


def test_every_provider_has_a_documented_error_body() -> None:
    assert set(ERROR_BODIES) == set(PROVIDERS)


@pytest.mark.parametrize("provider_id", PROVIDERS)
@pytest.mark.parametrize(("status", "cls", "exit_code"), STATUS_LADDER)
def test_http_errors_take_the_status_ladder(
    provider_id: str, status: int, cls: type[ApiError], exit_code: int
) -> None:
    error = get_provider(provider_id).error_for(status, ERROR_BODIES[provider_id], "")
    assert type(error) is cls
    assert error.exit_code == exit_code
    assert provider_id in error.message and "nope" in error.message


def test_the_sandbox_takes_exactly_what_api_in_one_takes() -> None:
    """A pipeline rehearsed on --provider sandbox must not fail live on a refused option."""
    from dataclasses import fields

    from flux2_cli.providers.apiinone import CAPABILITIES as APIINONE
    from flux2_cli.providers.sandbox import CAPABILITIES as SANDBOX

    own = {"id", "name", "base_url", "env_var", "docs_url", "requires_key", "prices"}
    for item in fields(APIINONE):
        if item.name not in own:
            assert getattr(SANDBOX, item.name) == getattr(APIINONE, item.name), item.name
