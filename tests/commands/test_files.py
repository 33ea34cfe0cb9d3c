"""Files and metadata through the command: names from any script, sidecars, embedded provenance."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from flux2_cli.provenance import DIGITAL_SOURCE_TYPE
from tests.helpers import run_cli


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def saved(result: object) -> Path:
    lines = str(result.stdout).strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    return Path(lines[0])


@pytest.mark.parametrize(
    ("prompt", "start"),
    [
        ("قطة حمراء في الثلج", "qth-hmr-fy-lthlj-"),
        ("雪の中の赤い狐", "xue-no-zhong-no-chi-i-hu-"),
        ("Красная лиса в снегу", "krasnaya-lisa-v-snegu-"),
    ],
)
def test_non_latin_prompts_are_transliterated_for_the_name(prompt: str, start: str) -> None:
    result = run_cli(["gen", prompt, "--sandbox", "-o", "out/"])
    assert result.exit_code == 0, result.stderr
    assert saved(result).name.startswith(start), saved(result).name


def test_a_prompt_with_nothing_to_read_is_named_by_date_and_time() -> None:
    result = run_cli(["gen", "★ ★ ★ ♪♪", "--sandbox", "-o", "out/"])
    assert result.exit_code == 0, result.stderr
    assert re.fullmatch(r"(?:star-star-star-|\d{8}-\d{6}-).+\.png", saved(result).name)
    result = run_cli(["gen", "!!! ??? ...", "--sandbox", "-o", "out/"])
    assert result.exit_code == 0, result.stderr
    assert re.fullmatch(r"\d{8}-\d{6}-\w+\.png", saved(result).name), saved(result).name


def test_the_sidecar_records_what_was_sent_and_that_it_was_the_sandbox() -> None:
    size = ["--width", "1024", "--height", "768"]
    result = run_cli(["gen", "a red fox", "--sandbox", "--provider", "bfl", *size, "-o", "out/"])
    assert result.exit_code == 0, result.stderr
    sidecar = json.loads(saved(result).with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["request"]["width"] == 1024 and sidecar["request"]["height"] == 768
    assert "ratio" not in sidecar["request"] and "res" not in sidecar["request"]
    assert (sidecar["width"], sidecar["height"]) == (1024, 768)
    assert sidecar["sandbox"] is True


def test_embed_metadata_writes_parameters_and_the_ai_source_type() -> None:
    result = run_cli(["gen", "a red fox", "--sandbox", "-o", "out/", "--embed-metadata"])
    assert result.exit_code == 0, result.stderr
    with Image.open(saved(result)) as image:
        image.load()
        parameters = image.text["parameters"]
        assert parameters.startswith("a red fox\n")
        assert "Size: 1440x1440, Model: flux-2" in parameters
        assert json.loads(image.text["flux2"])["sandbox"] is True
        assert DIGITAL_SOURCE_TYPE.encode() in image.info["xmp"]
