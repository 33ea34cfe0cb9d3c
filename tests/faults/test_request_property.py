"""Row 45 as a property: over generated ``gen`` options for every provider, an invalid
combination is exit 2 with nothing sent (a real run, key set, so a request WOULD go out), and a
valid one sends one POST whose body the provider's documented schema accepts
(wire-contracts.md), as does the ``--dry-run --json`` body."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock

from tests.helpers import run_cli

RATIOS = ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3")
SIZE_TABLE = {
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
CREATE = {
    "apiinone": "https://apiin.one/api/v1/images/generations",
    "sandbox": "http://sandbox.flux2.invalid/api/v1/images/generations",
    "apimart": "https://api.apimart.ai/v1/images/generations",
    "vtrix": "https://cloud.vtrix.ai/model/v1/generation",
}
BFL_MODELS = {"pro": "flux-2-pro", "flex": "flux-2-flex"}
FOUR_MP = 4 * 1024 * 1024
URL_RE = re.compile(r"^https?://\S+$")


@dataclass(frozen=True)
class Options:
    provider: str
    prompt: str
    ratio: str | None
    res: str | None
    mode: str | None
    width: int | None
    height: int | None
    seed: int | None
    safety: int | None
    format: str | None
    refs: tuple[str, ...]

    def args(self) -> list[str]:
        argv = ["gen", self.prompt, "--provider", self.provider]
        for flag, value in (
            ("--ratio", self.ratio),
            ("--res", self.res),
            ("--mode", self.mode),
            ("--width", self.width),
            ("--height", self.height),
            ("--seed", self.seed),
            ("--safety", self.safety),
            ("--format", self.format),
        ):
            if value is not None:
                argv += [flag, str(value)]
        for ref in self.refs:
            argv += ["--ref", ref]
        return argv


def snap(value: int, multiple: int) -> int:
    return (value + multiple // 2) // multiple * multiple


# --- the oracle: what the spec says is valid ----------------------------------------------


def prompt_ok(prompt: str, provider: str) -> bool:
    text = prompt.strip()
    if "\x00" in prompt or any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text):
        return False
    # 5,000 is API in One's bound; BFL documents no maximum (wire-contracts.md, updates).
    return len(text) >= 3 and (provider == "bfl" or len(text) <= 5000)


def expected_valid(o: Options) -> bool:
    if not prompt_ok(o.prompt, o.provider):
        return False
    if o.ratio is not None and o.ratio not in RATIOS:
        return False
    if o.res is not None and o.res.upper() not in ("1K", "2K"):
        return False
    if o.mode is not None and o.mode not in ("pro", "flex"):
        return False
    if o.format is not None and o.format not in ("png", "jpeg", "jpg", "webp"):
        return False
    if len(o.refs) > 8:
        return False
    if (o.width is None) != (o.height is None):
        return False
    sized = o.width is not None and o.height is not None
    if sized and (o.ratio is not None or o.res is not None):
        return False
    if sized and not (1 <= o.width <= 16384 and 1 <= o.height <= 16384):  # type: ignore[operator]
        return False
    if o.seed is not None and o.seed < 0:
        return False
    fmt = "jpeg" if o.format == "jpg" else o.format
    p = o.provider
    if p in ("apiinone", "apimart", "sandbox"):
        if sized or o.safety is not None or fmt is not None:
            return False
        return o.seed is None  # the sandbox takes exactly what API in One takes
    if p == "vtrix":
        if (o.mode or "pro") != "pro":
            return False
        if sized and (o.width % 32 or o.height % 32 or min(o.width, o.height) < 64):  # type: ignore[operator]
            return False
        if o.safety is not None and not 1 <= o.safety <= 5:
            return False
        return fmt in (None, "jpeg", "png")
    assert p == "bfl"
    if sized:
        assert o.width is not None and o.height is not None
        if o.width % 16 or o.height % 16 or min(o.width, o.height) < 64:
            return False
        if o.width * o.height > FOUR_MP:
            return False
    if o.safety is not None and not 0 <= o.safety <= 5:
        return False
    return fmt in (None, "jpeg", "png", "webp")


# --- the schemas: what each provider documents -------------------------------------------


def no_nulls(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, dict):
        return all(no_nulls(item) for item in value.values())
    if isinstance(value, list):
        return all(no_nulls(item) for item in value)
    return True


def check_keys(body: dict[str, Any], required: set[str], optional: set[str]) -> None:
    assert required <= set(body), f"missing {required - set(body)}"
    assert set(body) <= required | optional, f"undocumented {set(body) - required - optional}"
    assert no_nulls(body), body


def check_prompt(body: dict[str, Any], o: Options) -> None:
    assert isinstance(body["prompt"], str) and 3 <= len(body["prompt"]) <= 5000
    assert body["prompt"] == o.prompt.strip()


def check_pixels(body: dict[str, Any], o: Options, multiple: int) -> None:
    width, height = body["width"], body["height"]
    assert type(width) is int and type(height) is int
    assert width % multiple == 0 and height % multiple == 0 and min(width, height) >= 64
    if o.width is not None:
        assert (width, height) == (o.width, o.height)
    else:
        w, h = SIZE_TABLE[(o.ratio or "1:1", (o.res or "1K").upper())]
        assert (width, height) == (snap(w, multiple), snap(h, multiple))


def refs_in(body: dict[str, Any]) -> list[str]:
    keys = ["input_image"] + [f"input_image_{n}" for n in range(2, 9)]
    return [body[key] for key in keys if key in body]


def check_body(o: Options, url: str, body: dict[str, Any]) -> None:
    p = o.provider
    mode = o.mode or "pro"
    ratio = o.ratio or "1:1"
    res = (o.res or "1K").upper()
    if p in ("apiinone", "sandbox"):
        assert url == CREATE[p]
        optional = {"input_urls", "callback_url"}
        check_keys(body, {"model", "prompt", "aspect_ratio", "resolution", "type"}, optional)
        assert body["model"] == "flux-2" and body["type"] == mode
        assert body["aspect_ratio"] == ratio and body["resolution"] == res
        assert body.get("input_urls", []) == list(o.refs)
        if "seed" in body:
            assert type(body["seed"]) is int and body["seed"] == o.seed
    elif p == "apimart":
        assert url == CREATE[p]
        check_keys(body, {"model", "prompt", "size", "resolution"}, {"image_urls"})
        assert body["model"] == f"flux-2-{mode}"
        assert body["size"] == ratio and body["resolution"] == res
        images = body.get("image_urls", [])
        assert len(images) <= 8 and all(URL_RE.match(ref) for ref in images)
        assert images == list(o.refs)
    elif p == "vtrix":
        # Wrapped, as Vtrix's official CLI sends it (VtrixAI/vtrix-cli client.go).
        assert url == CREATE[p]
        check_keys(body, {"model", "input"}, set())
        assert body["model"] == "flux_2_pro"
        body = body["input"][0]["params"]
        ref_keys = {"input_image"} | {f"input_image_{n}" for n in range(2, 9)}
        check_keys(
            body,
            {"prompt", "width", "height"},
            {"seed", "safety_tolerance", "output_format"} | ref_keys,
        )
        check_pixels(body, o, 32)
        if "safety_tolerance" in body:
            assert type(body["safety_tolerance"]) is int and 1 <= body["safety_tolerance"] <= 5
            assert body["safety_tolerance"] == o.safety
        if "output_format" in body:
            assert body["output_format"] in ("jpeg", "png")
        assert refs_in(body) == list(o.refs)
    else:
        assert url == f"https://api.bfl.ai/v1/{BFL_MODELS[mode]}"
        ref_keys = {"input_image"} | {f"input_image_{n}" for n in range(2, 9)}
        # width/height are optional for BFL: sent only when a size was asked for.
        asked = o.width is not None or o.ratio is not None or o.res is not None
        check_keys(
            body,
            {"prompt", "width", "height"} if asked else {"prompt"},
            {"seed", "safety_tolerance", "output_format", "webhook_url", "webhook_secret"}
            | ref_keys,
        )
        if asked:
            check_pixels(body, o, 16)
            assert body["width"] * body["height"] <= FOUR_MP
        if "safety_tolerance" in body:
            assert type(body["safety_tolerance"]) is int and 0 <= body["safety_tolerance"] <= 5
        if "output_format" in body:
            assert body["output_format"] in ("jpeg", "png", "webp")
        assert refs_in(body) == list(o.refs)
    check_prompt(body, o)
    if "seed" in body:
        assert type(body["seed"]) is int and body["seed"] == o.seed
    if o.format is not None and "output_format" in body:
        assert body["output_format"] == ("jpeg" if o.format == "jpg" else o.format)


# --- the strategy -------------------------------------------------------------------------

GOOD_PROMPT = st.sampled_from(["a red fox in the snow", "  lighthouse at dusk \n", "abc"])
BAD_PROMPT = st.sampled_from(["", "   ", "ab", "x" * 5001, "a fox\x00 ", "fox \x07 bell"])
SIDES = st.one_of(
    st.integers(min_value=64, max_value=2048).map(lambda n: n // 32 * 32),
    st.integers(min_value=64, max_value=2048).map(lambda n: n // 16 * 16),
    st.integers(min_value=1, max_value=5000),
)


@st.composite
def options(draw: st.DrawFn) -> Options:
    provider = draw(st.sampled_from(["apiinone", "apimart", "vtrix", "bfl", "sandbox"]))
    sized = draw(st.booleans())
    width = draw(SIDES) if sized else None
    height = draw(SIDES) if sized and draw(st.integers(0, 9)) else None
    return Options(
        provider=provider,
        prompt=draw(st.one_of(GOOD_PROMPT, GOOD_PROMPT, GOOD_PROMPT, BAD_PROMPT)),
        ratio=draw(st.none() | st.sampled_from([*RATIOS, "5:4", "1:2", "wide"])),
        res=draw(st.none() | st.sampled_from(["1K", "2K", "2k", "4K"])) if not sized else None,
        mode=draw(st.none() | st.sampled_from(["pro", "flex", "turbo"])),
        width=width,
        height=height,
        seed=draw(st.none() | st.integers(min_value=-3, max_value=2**31)),
        safety=draw(st.none() | st.integers(min_value=-1, max_value=8)),
        format=draw(st.none() | st.sampled_from(["png", "jpeg", "jpg", "webp", "gif"])),
        refs=tuple(f"https://refs.example/{n}.png" for n in range(draw(st.integers(0, 9))))
        if draw(st.integers(0, 3)) == 0
        else (),
    )


@st.composite
def valid_leaning_options(draw: st.DrawFn) -> Options:
    """Options drawn from each provider's documented domain (mostly valid, by design)."""
    provider = draw(st.sampled_from(["apiinone", "apimart", "vtrix", "bfl", "sandbox"]))
    pixels = provider in ("vtrix", "bfl")
    sized = pixels and draw(st.booleans())
    multiple = 32 if provider == "vtrix" else 16
    side = st.integers(min_value=2, max_value=64).map(lambda n: n * multiple)
    width = draw(side) if sized else None
    height = draw(side) if sized else None
    maybe = st.booleans()
    safety_low, safety_high = {"vtrix": (1, 5), "bfl": (0, 5)}.get(provider, (0, None))
    formats = {"vtrix": ["jpeg", "png", "jpg"], "bfl": ["jpeg", "png", "webp", "jpg"]}
    return Options(
        provider=provider,
        prompt=draw(GOOD_PROMPT),
        ratio=draw(st.sampled_from(RATIOS)) if not sized and draw(maybe) else None,
        res=draw(st.sampled_from(["1K", "2K", "2k"])) if not sized and draw(maybe) else None,
        mode=draw(st.sampled_from(["pro"] if provider == "vtrix" else ["pro", "flex"]))
        if draw(maybe)
        else None,
        width=width,
        height=height,
        seed=draw(st.integers(0, 2**31)) if provider in ("vtrix", "bfl") and draw(maybe) else None,
        safety=draw(st.integers(safety_low, safety_high)) if safety_high and draw(maybe) else None,
        format=draw(st.sampled_from(formats[provider]))
        if provider in formats and draw(maybe)
        else None,
        refs=tuple(f"https://refs.example/{n}.png" for n in range(draw(st.integers(0, 8))))
        if draw(maybe)
        else (),
    )


def create_url(o: Options) -> str:
    if o.provider == "bfl":
        return f"https://api.bfl.ai/v1/{BFL_MODELS.get(o.mode or 'pro', 'flux-2-pro')}"
    return CREATE[o.provider]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(o=st.one_of(valid_leaning_options(), options()))
def test_row45_property_invalid_is_exit2_sends_nothing_valid_matches_schema(
    httpx_mock: HTTPXMock, o: Options
) -> None:
    httpx_mock.reset()
    if o.provider != "sandbox":
        httpx_mock.add_response(
            method="POST", url=create_url(o), json={"id": "t-prop"}, is_optional=True
        )
    valid = expected_valid(o)
    event(f"{o.provider} {'valid' if valid else 'invalid'}")
    result = run_cli([*o.args(), "--no-wait"])
    if not valid:
        assert result.exit_code == 2, (o, result.output)
        assert result.stderr.startswith("error:")
        assert httpx_mock.get_requests() == []
        return
    assert result.exit_code == 0, (o, result.output)
    if o.provider == "sandbox":
        sent = None  # the embedded sandbox is not an httpx_mock transport
    else:
        requests = httpx_mock.get_requests()
        assert len(requests) == 1 and requests[0].method == "POST"
        sent = json.loads(requests[0].content)
        check_body(o, str(requests[0].url), sent)
    dry = run_cli([*o.args(), "--dry-run", "--json"])
    assert dry.exit_code == 0, (o, dry.output)
    plan = json.loads(dry.stdout)
    assert plan["method"] == "POST"
    check_body(o, plan["url"], plan["body"])
    if sent is not None:
        assert plan["body"] == sent
