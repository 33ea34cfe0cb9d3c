"""The output intent travels with the task: -o/--name kept in the ledger, output_dir a folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flux2_cli.build import OutputIntent, output_intent
from flux2_cli.config import resolve_settings
from flux2_cli.errors import UsageError
from tests.helpers import run_cli

SANDBOX = ["--provider", "sandbox"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def submit(*args: str) -> str:
    result = run_cli(["gen", "a red fox in snow", *SANDBOX, "--no-wait", *args])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_no_wait_keeps_o_and_name_for_a_later_download(tmp_path: Path) -> None:
    task_id = submit("-o", "out/", "--name", "hero-{id8}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    result = run_cli(["download", task_id])
    assert result.exit_code == 0, result.output
    (saved,) = result.stdout.split()
    assert Path(saved).parent == tmp_path / "out"
    assert Path(saved).name.startswith("hero-") and Path(saved).suffix == ".png"
    assert not list(elsewhere.glob("*.png"))


def test_a_new_o_or_name_overrides_the_kept_intent(tmp_path: Path) -> None:
    task_id = submit("-o", "out/", "--name", "hero-{id8}")
    result = run_cli(["download", task_id, "-o", "other/"])
    assert result.exit_code == 0, result.output
    (saved,) = result.stdout.split()
    assert Path(saved).resolve().parent == tmp_path / "other"
    assert Path(saved).name.startswith("hero-")
    result = run_cli(["download", task_id, "--name", "{slug}", "--overwrite"])
    (saved,) = result.stdout.split()
    assert Path(saved).resolve() == tmp_path / "out" / "a-red-fox-in-snow.png"


def test_download_pending_sends_each_task_where_it_was_asked(tmp_path: Path) -> None:
    first = submit("-o", "a/")
    submit("--name", "b-{id8}")
    result = run_cli(["download", "--pending"])
    assert result.exit_code == 0, result.output
    saved = sorted(Path(line) for line in result.stdout.split())
    assert len(saved) == 2
    assert any(path.parent == tmp_path / "a" and first[3:11] in path.name for path in saved)
    assert any(path.parent == tmp_path and path.name.startswith("b-") for path in saved)


def test_config_output_dir_is_always_a_folder_created_on_first_use(tmp_path: Path) -> None:
    assert run_cli(["config", "set", "output_dir", "~/newdir"]).exit_code == 0
    result = run_cli(["gen", "a blue whale", *SANDBOX])
    assert result.exit_code == 0, result.output
    (saved,) = result.stdout.split()
    assert Path(saved).parent == tmp_path / "home" / "newdir"
    assert not (tmp_path / "home" / "newdir.png").exists()


def test_a_template_in_o_and_a_folder_in_name_make_folders(tmp_path: Path) -> None:
    result = run_cli(["gen", "a green frog", *SANDBOX, "-o", "pics/{slug}.png"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(Path("pics/a-green-frog.png"))]
    result = run_cli(["gen", "a grey owl", *SANDBOX, "-o", "art/", "--name", "birds/{slug}"])
    assert result.exit_code == 0, result.output
    saved = Path(result.stdout.split()[0]).resolve()
    assert saved == tmp_path / "art" / "birds" / "a-grey-owl.png"
    assert not list(tmp_path.rglob("*{*"))  # never a file literally named {slug}.png


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-o", "out/{date}/{slug}.png"], "template fields go in the file name only"),
        (["--name", "/abs/{slug}"], "relative to the output folder"),
        (["-o", "out/{slug}.png", "--name", "x"], "give one"),
        (["-o", "one.png", "--name", "birds/{slug}"], "needs -o to name a folder"),
    ],
)
def test_templates_that_cannot_work_are_refused_before_paying(
    args: list[str], words: str, tmp_path: Path
) -> None:
    result = run_cli(["gen", "a grey owl", *SANDBOX, *args])
    assert result.exit_code == 2, result.output
    assert words in result.stderr
    assert not (tmp_path / "flux2-home" / "data").exists() or "Submitted" not in result.stderr


def test_the_intent_is_kept_with_absolute_paths(tmp_path: Path) -> None:
    settings, _ = resolve_settings({})
    intent = output_intent("out/", "hero-{id8}", settings)
    assert intent == OutputIntent("out/", "hero-{id8}")
    assert intent.to_json() == {"output": str(tmp_path / "out") + "/", "name": "hero-{id8}"}
    kept = output_intent(None, None, settings, intent.to_json())
    assert kept.output == str(tmp_path / "out") + "/"
    with pytest.raises(UsageError):
        output_intent("x/{a}/{slug}", None, settings)


def test_a_config_name_with_a_folder_makes_the_folder_too(tmp_path: Path) -> None:
    assert run_cli(["config", "set", "name", "renders/{slug}"]).exit_code == 0
    result = run_cli(["gen", "a grey owl", *SANDBOX, "-o", "art/"])
    assert result.exit_code == 0, result.output
    saved = Path(result.stdout.split()[0]).resolve()
    assert saved == tmp_path / "art" / "renders" / "a-grey-owl.png"


def test_a_bad_config_output_dir_is_named_as_the_config_key(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    assert run_cli(["config", "set", "output_dir", str(tmp_path / "a-file")]).exit_code == 0
    result = run_cli(["gen", "a blue whale", *SANDBOX])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: config key output_dir {tmp_path / 'a-file'}/: ")
    assert "Submitted" not in result.stderr


def test_a_task_kept_without_an_intent_downloads_where_the_config_says(tmp_path: Path) -> None:
    task_id = submit()  # no -o, no --name: nothing is kept, as in ledgers written before
    assert run_cli(["config", "set", "output_dir", "~/later"]).exit_code == 0
    result = run_cli(["download", task_id])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.split()[0]).parent == tmp_path / "home" / "later"
