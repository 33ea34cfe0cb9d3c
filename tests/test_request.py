"""The neutral request: snapping, the size table, validation and its JSON form."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flux2_cli.errors import UsageError
from flux2_cli.request import (
    MAX_REFERENCES,
    RATIOS,
    RESOLUTIONS,
    SIZE_TABLE,
    GenerationRequest,
    is_url,
    normalise_format,
    parse_param,
    snap,
    validate_prompt,
    validate_request,
)


@pytest.mark.parametrize(
    ("value", "multiple", "expected"),
    [
        (1080, 32, 1088),
        (1080, 16, 1088),
        (1440, 32, 1440),
        (1248, 32, 1248),
        (1368, 32, 1376),
        (1368, 16, 1376),
        (1000, 16, 1008),  # 62.5 -> halves round up
        (1001, 1, 1001),
        (7, 16, 0),
    ],
)
def test_snap(value: int, multiple: int, expected: int) -> None:
    assert snap(value, multiple) == expected


@given(st.integers(1, 20_000), st.sampled_from([16, 32, 64]))
def test_snap_is_the_nearest_multiple(value: int, multiple: int) -> None:
    result = snap(value, multiple)
    assert result % multiple == 0
    assert abs(result - value) <= multiple // 2


def test_size_table_is_the_apimart_table() -> None:
    assert set(SIZE_TABLE) == {(r, s) for r in RATIOS for s in RESOLUTIONS}
    assert SIZE_TABLE[("16:9", "1K")] == (1920, 1080)
    assert SIZE_TABLE[("2:3", "2K")] == (1248, 1872)
    for (ratio, _), (width, height) in SIZE_TABLE.items():
        across, down = (int(n) for n in ratio.split(":"))
        assert abs(width / height - across / down) < 0.01


def test_pixel_size_snaps_table_sizes_but_not_explicit_ones() -> None:
    assert GenerationRequest("abc", ratio="16:9").pixel_size(32) == (1920, 1088)
    assert GenerationRequest("abc", ratio="9:16").pixel_size(16) == (1088, 1920)
    assert GenerationRequest("abc", width=1000, height=1000).pixel_size(32) == (1000, 1000)


def test_validate_normalises() -> None:
    request = validate_request(
        GenerationRequest("  a fox  ", res="2k", mode="FLEX", format="jpg", model=" m ")
    )
    assert (request.prompt, request.res, request.mode, request.format, request.model) == (
        "a fox",
        "2K",
        "flex",
        "jpeg",
        "m",
    )


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"prompt": "ab"}, "too short"),
        ({"prompt": "   \n  "}, "empty"),
        ({"prompt": "a \x00 fox"}, "NUL"),
        ({"prompt": "a \x07 fox"}, "control"),
        ({"ratio": "21:9"}, "--ratio"),
        ({"ratio": "1x1"}, "--ratio"),
        ({"res": "4K"}, "--res"),
        ({"mode": "turbo"}, "--mode"),
        ({"format": "gif"}, "--format"),
        ({"refs": tuple(f"https://e.example/{n}" for n in range(9))}, "at most 8"),
        ({"width": 1024}, "--width and --height"),
        ({"height": 1024}, "--width and --height"),
        ({"width": 0, "height": 1024}, "--width"),
        ({"width": 1024, "height": 99999}, "--height"),
        ({"seed": -1}, "--seed"),
        ({"seed": 2**63}, "--seed"),
        ({"callback_url": "ftp://x.example/hook"}, "--callback-url"),
        ({"callback_url": "not a url"}, "--callback-url"),
        ({"model": "  "}, "--model"),
        ({"params": {"seed": None}}, "--param: seed"),
        ({"params": {"extra": {"deep": [1, None]}}}, "--param: extra"),
    ],
)
def test_validate_refuses(changes: dict[str, Any], fragment: str) -> None:
    request = GenerationRequest(**{"prompt": "a red fox", **changes})
    with pytest.raises(UsageError) as caught:
        validate_request(request)
    assert fragment in caught.value.message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("prompt", ["abc", "x" * 5000, "  abc  ", "line one\nline two\ttab"])
def test_prompt_bounds_accepted(prompt: str) -> None:
    assert validate_prompt(prompt) == prompt.strip()


def test_prompt_maximum_is_the_callers() -> None:
    # The maximum is a provider capability (API in One 5,000; BFL none): no bound by default.
    assert validate_prompt("x" * 20000) == "x" * 20000
    with pytest.raises(UsageError, match="too long"):
        validate_prompt("x" * 5001, max_chars=5000)


def test_eight_refs_accepted() -> None:
    refs = tuple(f"https://e.example/{n}" for n in range(MAX_REFERENCES))
    assert validate_request(GenerationRequest("a red fox", refs=refs)).refs == refs


@pytest.mark.parametrize(("text", "expected"), [("jpg", "jpeg"), ("JPEG", "jpeg"), ("png", "png")])
def test_format_aliases(text: str, expected: str) -> None:
    assert normalise_format(text) == expected


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("steps=30", ("steps", 30)),
        ("guidance=4.5", ("guidance", 4.5)),
        ("prompt_upsampling=true", ("prompt_upsampling", True)),
        ("style=vivid", ("style", "vivid")),
        ('x={"a": [1]}', ("x", {"a": [1]})),
        ("eq=a=b", ("eq", "a=b")),
    ],
)
def test_parse_param(text: str, pair: tuple[str, Any]) -> None:
    assert parse_param(text) == pair


@pytest.mark.parametrize("text", ["novalue", "=3", " =3"])
def test_parse_param_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_param(text)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("https://a.example/x.png", True),
        ("http://a.example", True),
        ("ftp://a", False),
        ("./x.png", False),
        ("https://", False),
    ],
)
def test_is_url(text: str, ok: bool) -> None:
    assert is_url(text) is ok


def test_json_round_trip_drops_unset_and_keeps_no_secret() -> None:
    request = GenerationRequest(
        "a red fox", seed=4, refs=("https://e.example/a",), webhook_secret="s"
    )
    data = request.to_json()
    assert data == {
        "prompt": "a red fox",
        "ratio": "1:1",
        "res": "1K",
        "mode": "pro",
        "refs": ["https://e.example/a"],
        "seed": 4,
    }
    assert GenerationRequest.from_json(data) == GenerationRequest(
        "a red fox", seed=4, refs=("https://e.example/a",)
    )


def test_fingerprint_is_stable_and_sensitive() -> None:
    one = GenerationRequest("a red fox").fingerprint("bfl", "flux-2-pro")
    assert one == GenerationRequest("a red fox").fingerprint("bfl", "flux-2-pro")
    assert one != GenerationRequest("a red fox", seed=1).fingerprint("bfl", "flux-2-pro")
    assert one != GenerationRequest("a red fox").fingerprint("vtrix", "flux-2-pro")


# --- property: any single invalid value is a UsageError ----------------------------------

INVALID_CHANGES = st.one_of(
    st.builds(lambda n: {"prompt": "x" * n}, st.integers(0, 2)),
    st.builds(
        lambda s: {"prompt": f"abc{s}def"}, st.sampled_from(["\x00", "\x01", "\x1b", "\x7f\x00"])
    ),
    st.builds(
        lambda s: {"ratio": s}, st.text(max_size=6).filter(lambda s: s.strip() not in RATIOS)
    ),
    st.builds(
        lambda s: {"res": s},
        st.text(max_size=4).filter(lambda s: s.strip().upper() not in RESOLUTIONS),
    ),
    st.builds(
        lambda s: {"mode": s},
        st.text(max_size=6).filter(lambda s: s.strip().lower() not in ("pro", "flex")),
    ),
    st.builds(
        lambda s: {"format": s},
        st.text(max_size=6).filter(
            lambda s: s.strip().lower() not in ("png", "jpeg", "jpg", "webp")
        ),
    ),
    st.builds(lambda n: {"seed": n}, st.integers(max_value=-1)),
    st.builds(lambda n: {"seed": n}, st.integers(min_value=2**63)),
    st.builds(lambda n: {"width": n}, st.integers(1, 4096)),
    st.builds(lambda n: {"width": n, "height": 64}, st.integers(max_value=0)),
    st.builds(lambda n: {"width": 64, "height": n}, st.integers(min_value=16385)),
    st.builds(
        lambda n: {"refs": tuple(f"https://e.example/{i}" for i in range(n))}, st.integers(9, 20)
    ),
    st.builds(lambda s: {"callback_url": s}, st.text(max_size=20).filter(lambda s: not is_url(s))),
    st.builds(lambda k: {"params": {k: None}}, st.text(min_size=1, max_size=5)),
)


@given(INVALID_CHANGES)
def test_any_invalid_value_is_a_usage_error(changes: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        validate_request(GenerationRequest(**{"prompt": "a red fox", **changes}))
