"""Rows 44–45 of reliability.md: bad prompts and bad options are exit 2 with zero requests."""

from __future__ import annotations

import pytest
from pytest_httpx import HTTPXMock

from tests.helpers import run_cli

BAD_PROMPTS = [
    ("", "empty"),
    ("   \t\n  ", "empty"),
    ("a red\x00 fox", "NUL"),
    ("a red \x1b[2J fox", "control"),
    ("ab", "too short"),
]


@pytest.mark.parametrize(
    ("provider", "prompt", "words"),
    [
        *[("apiinone", prompt, words) for prompt, words in BAD_PROMPTS],
        *[("bfl", prompt, words) for prompt, words in BAD_PROMPTS],
        # The maximum is the provider's: API in One's 5,000; BFL documents none (issue 14).
        ("apiinone", "x" * 5001, "too long"),
        ("apimart", "x" * 5001, "too long"),
    ],
    ids=[
        *[f"apiinone-{w}" for w in ("empty", "whitespace", "nul", "control", "too-short")],
        *[f"bfl-{w}" for w in ("empty", "whitespace", "nul", "control", "too-short")],
        "apiinone-too-long",
        "apimart-too-long",
    ],
)
def test_row44_bad_prompt_is_exit2_with_zero_requests(
    httpx_mock: HTTPXMock, prompt: str, words: str, provider: str
) -> None:
    result = run_cli(["gen", prompt, "--provider", provider])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error:") and "prompt" in result.stderr.lower()
    assert words.lower() in result.stderr.lower()
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize(
    "prompt", ["", "  \n", "x" * 5001, "a red\x00 fox"], ids=["empty", "blank", "long", "nul"]
)
def test_row44_bad_prompt_from_stdin_is_exit2_with_zero_requests(
    httpx_mock: HTTPXMock, prompt: str
) -> None:
    result = run_cli(["gen", "-"], input=prompt)
    assert result.exit_code == 2, result.output
    assert httpx_mock.get_requests() == []


BAD_OPTIONS = [
    # (provider, extra args, the flag named, a piece of the provider's rule)
    ("apiinone", ["--width", "1024", "--height", "1024"], "--width/--height", "--ratio and --res"),
    ("apiinone", ["--seed", "7"], "--seed", "--param seed="),
    ("apiinone", ["--safety", "2"], "--safety", "not taken"),
    ("apiinone", ["--format", "png"], "--format", "not taken"),
    ("apiinone", ["--ratio", "5:4"], "--ratio", "16:9"),
    ("apiinone", ["--res", "4K"], "--res", "1K, 2K"),
    ("apiinone", ["--mode", "turbo"], "--mode", "pro, flex"),
    ("apimart", ["--width", "1440", "--height", "1440"], "--width/--height", "--ratio"),
    ("apimart", ["--seed", "7"], "--seed", "--param"),
    ("apimart", ["--format", "jpeg"], "--format", "not taken"),
    ("apimart", ["--ref", "./local.png"], "--ref", "http(s) URLs"),
    ("vtrix", ["--width", "1000", "--height", "1024"], "--width", "multiple of 32"),
    ("vtrix", ["--width", "32", "--height", "64"], "--width", "at least 64"),
    ("vtrix", ["--safety", "7"], "--safety", "1–5"),
    ("vtrix", ["--format", "webp"], "--format", "jpeg/png"),
    ("vtrix", ["--mode", "flex"], "--mode", "pro"),
    ("bfl", ["--width", "1000", "--height", "1024"], "--width", "multiple of 16"),
    ("bfl", ["--width", "4096", "--height", "4096"], "--width/--height", "4,194,304 pixels"),
    ("bfl", ["--safety", "6"], "--safety", "0–5"),
    ("bfl", ["--seed", "-1"], "--seed", "non-negative"),
    ("bfl", ["--format", "gif"], "--format", "png, jpeg, webp"),
    ("bfl", ["--width", "1024"], "--width", "--height"),
    ("bfl", ["--param", "steps=99"], "steps", "1 to 50"),
    ("sandbox", ["--width", "512", "--height", "512"], "--width/--height", "--ratio"),
    ("sandbox", ["--safety", "1"], "--safety", "not taken"),
]


@pytest.mark.parametrize(
    ("provider", "args", "flag", "rule"),
    BAD_OPTIONS,
    ids=[f"{p}-{a[0].lstrip('-')}-{a[1][:6]}" for p, a, _, _ in BAD_OPTIONS],
)
def test_row45_bad_option_for_the_provider_is_exit2_naming_flag_and_rule(
    httpx_mock: HTTPXMock, provider: str, args: list[str], flag: str, rule: str
) -> None:
    result = run_cli(["gen", "a red fox", "--provider", provider, *args])
    assert result.exit_code == 2, result.output
    assert flag in result.stderr
    assert rule in result.stderr
    assert httpx_mock.get_requests() == []


# Issue 12, class 5 (odd values), the input parts: exit 2 with a clear message, never exit 1.


def test_a_prompt_that_is_not_utf8_on_argv_is_exit2(httpx_mock: HTTPXMock) -> None:
    # Python hands undecodable argv bytes over as lone surrogates (surrogateescape).
    result = run_cli(["gen", "a red \udcff fox", "--provider", "sandbox"])
    assert result.exit_code == 2, result.output
    assert "PROMPT: is not valid UTF-8 (at character 7)" in result.stderr
    assert httpx_mock.get_requests() == []


def test_a_prompt_that_is_not_utf8_on_argv_is_exit2_in_a_real_process() -> None:
    import os
    import subprocess
    import sys

    code = "import sys; from flux2_cli.cli import run; sys.exit(run(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", code, "gen", b"a red \xff fox", "--provider", "sandbox"],
        capture_output=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert b"not valid UTF-8" in result.stderr and b"bug" not in result.stderr


def test_a_prompt_that_is_not_utf8_on_stdin_is_exit2(httpx_mock: HTTPXMock) -> None:
    result = run_cli(["gen", "-", "--provider", "sandbox"], input=b"a red \xc3\x28 fox")  # type: ignore[arg-type]
    assert result.exit_code == 2, result.output
    assert "PROMPT (stdin): is not valid UTF-8 (byte 7)" in result.stderr


def test_a_utf8_prompt_with_a_bom_on_stdin_is_fine() -> None:
    result = run_cli(
        ["gen", "-", "--provider", "sandbox", "--dry-run", "--json"],
        input="\ufeffa red fox".encode(),  # type: ignore[arg-type]
    )
    assert result.exit_code == 0, result.output
    assert '"prompt": "a red fox"' in result.stdout


@pytest.mark.parametrize(
    "output",
    ["x" * 300 + ".png", "out/" + "y" * 256 + "/", "/".join(["deep"] * 1100) + "/a.png"],
    ids=["long-name", "long-folder", "long-path"],
)
def test_an_output_path_longer_than_the_file_system_allows_is_exit2(
    httpx_mock: HTTPXMock, output: str
) -> None:
    result = run_cli(["gen", "a red fox", "--provider", "sandbox", "-o", output])
    assert result.exit_code == 2, result.output
    assert "longer than the file system allows" in result.stderr
    assert "Submitted" not in result.stderr
    download = run_cli(["download", "sbx-nope-123", "--provider", "sandbox", "-o", output])
    assert download.exit_code == 2 and "longer than the file system allows" in download.stderr
