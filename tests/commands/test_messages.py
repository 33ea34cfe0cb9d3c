"""Messages that used to mislead: each says what really happened and what to do next."""

from __future__ import annotations

from pathlib import Path

import pytest

from flux2_cli.task import Task, regenerate_command
from tests.helpers import run_cli


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_web_page_instead_of_the_image_says_what_came_back() -> None:
    result = run_cli(["gen", "a red fox [sandbox:html]", "--sandbox", "-o", "out/"])
    assert result.exit_code == 8
    first = result.stderr.split("error: ", 1)[1].splitlines()[0]
    assert "answered an HTML page titled 'Sign in' instead of the image" in first
    assert "expired" not in first
    assert "a proxy, a captive portal" in result.stderr
    assert "flux2 download sbx" in result.stderr
    assert not list(Path("out").glob("*.png"))


def test_an_expired_url_says_the_images_are_gone_and_how_to_make_them_again() -> None:
    result = run_cli(
        ["gen", "a red fox [sandbox:expired]", "--sandbox", "-r", "16:9", "-o", "out/"]
    )
    assert result.exit_code == 8
    assert "error: image URL expired" in result.stderr
    assert "are gone" in result.stderr
    assert "flux2 status" not in result.stderr  # it would show the same dead URL
    assert (
        "  flux2 gen 'a red fox [sandbox:expired]' --ratio 16:9 --res 1K --mode pro "
        "--provider apiinone --sandbox" in result.stderr
    )


def test_regenerate_command_repeats_the_request() -> None:
    task = Task(
        task_id="t1",
        provider="bfl",
        request={"prompt": "it's a fox", "width": 1024, "height": 768, "seed": 7, "mode": "pro"},
    )
    assert regenerate_command(task) == (
        "flux2 gen 'it'\"'\"'s a fox' --width 1024 --height 768 --mode pro --seed 7 --provider bfl"
    )
    bare = Task(task_id="t2", provider="sandbox")
    assert regenerate_command(bare) == "flux2 gen PROMPT --provider sandbox"


@pytest.mark.parametrize(
    ("provider", "ref", "said"),
    [
        ("apiinone", "ftp://example.com/fox.png", "a ftp: URL; only http(s) URLs"),
        ("apiinone", "not a url", "neither an http(s) URL nor a path to an image file"),
        ("bfl", "ftp://example.com/fox.png", "a ftp: URL; only http(s) URLs"),
        ("bfl", "not a url", "neither an http(s) URL nor a path to an image file"),
    ],
)
def test_refs_that_are_not_paths_are_not_called_local_paths(
    provider: str, ref: str, said: str
) -> None:
    result = run_cli(["gen", "a red fox", "--sandbox", "--provider", provider, "--ref", ref])
    assert result.exit_code == 2
    assert said in result.stderr
    assert "local path" not in result.stderr


def test_a_local_path_is_still_called_one_where_only_urls_go() -> None:
    result = run_cli(["gen", "a red fox", "--sandbox", "--ref", "sketch.png"])
    assert result.exit_code == 2
    assert "is a local path" in result.stderr


def test_a_broken_sandbox_dir_is_a_setting_to_fix_not_a_server_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FLUX2_SANDBOX_DIR", str(blocker / "state"))
    result = run_cli(["gen", "a red fox", "--sandbox", "-o", "out/"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the sandbox's state folder")
    assert "(from FLUX2_SANDBOX_DIR) cannot be used" in result.stderr
    assert "dashboard" not in result.stderr and "server error" not in result.stderr


def test_a_param_that_replaces_a_field_flux2_sets_is_warned_about() -> None:
    result = run_cli(
        [
            "gen",
            "a red fox",
            "--provider",
            "sandbox",
            "--param",
            'prompt="a cat"',
            "--param",
            "foo=1",
            "--dry-run",
        ]
    )
    assert result.exit_code == 0, result.stderr
    assert "warning: --param prompt=… replaces the 'prompt' flux2 sets" in result.stderr
    assert "foo" not in result.stderr  # a key flux2 does not set is just sent
    assert '"prompt": "a cat"' in result.stdout


def test_a_manifest_param_override_names_its_line(tmp_path: Path) -> None:
    manifest = tmp_path / "p.jsonl"
    manifest.write_text('{"prompt": "a red fox", "params": {"type": "flex"}}\n')
    result = run_cli(["batch", str(manifest), "--provider", "sandbox", "--dry-run"])
    assert result.exit_code == 0, result.stderr
    assert "p.jsonl line 1: params type=… replaces the 'type'" in result.stderr
