"""origin.py: an earlier request read back from a sidecar, an image or the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from flux2_cli.errors import UsageError
from flux2_cli.origin import load_origin, read_embedded

DOCUMENT = {
    "tool": "flux2 0.1.0",
    "task_id": "task-1",
    "provider": "bfl",
    "model": "flux-2-pro",
    "seed": 1234,
    "request": {"prompt": "a red fox", "ratio": "16:9", "res": "2K", "mode": "pro"},
}


def png_with(path: Path, text: str | None) -> Path:
    info = PngImagePlugin.PngInfo()
    if text is not None:
        info.add_text("flux2", text)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path, format="PNG", pnginfo=info)
    return path


def test_a_sidecar_gives_the_request_provider_and_reported_seed(tmp_path: Path) -> None:
    sidecar = tmp_path / "fox.json"
    sidecar.write_text(json.dumps(DOCUMENT))
    origin = load_origin(str(sidecar))
    assert (origin.provider, origin.model) == ("bfl", "flux-2-pro")
    assert origin.request["ratio"] == "16:9"
    assert origin.request["seed"] == 1234  # the provider's seed: the same picture again


def test_a_seed_that_was_asked_for_stays(tmp_path: Path) -> None:
    sidecar = tmp_path / "fox.json"
    sidecar.write_text(json.dumps({**DOCUMENT, "request": {**DOCUMENT["request"], "seed": 7}}))
    assert load_origin(str(sidecar)).request["seed"] == 7


def test_png_embedded_metadata(tmp_path: Path) -> None:
    image = png_with(tmp_path / "fox.png", json.dumps(DOCUMENT))
    origin = load_origin(str(image))
    assert origin.label.endswith("(embedded metadata)")
    assert origin.request["prompt"] == "a red fox"


def test_jpeg_comment(tmp_path: Path) -> None:
    path = tmp_path / "fox.jpg"
    Image.new("RGB", (8, 8)).save(path, format="JPEG", comment=json.dumps(DOCUMENT).encode())
    assert read_embedded(path) is not None
    assert load_origin(str(path)).provider == "bfl"


def test_an_image_without_metadata_uses_the_sidecar_beside_it(tmp_path: Path) -> None:
    image = png_with(tmp_path / "fox.png", None)
    (tmp_path / "fox.json").write_text(json.dumps(DOCUMENT))
    assert load_origin(str(image)).label == "fox.json"


def test_an_image_with_neither_is_refused(tmp_path: Path) -> None:
    image = png_with(tmp_path / "fox.png", "not json")
    with pytest.raises(UsageError, match="carries no flux2 metadata"):
        load_origin(str(image))


def test_relative_paths_are_taken_from_base(tmp_path: Path) -> None:
    (tmp_path / "fox.json").write_text(json.dumps(DOCUMENT))
    assert load_origin("fox.json", base=tmp_path).provider == "bfl"


def test_a_task_id_from_the_ledger(tmp_path: Path) -> None:
    task = SimpleNamespace(
        task_id="sbx123456",
        provider="sandbox",
        model="flux-2",
        request={"prompt": "a heron", "ratio": "1:1", "res": "1K", "mode": "pro"},
        extra={"seed": 99},
        base_url="http://sandbox.flux2.invalid",
    )
    seen: list[str] = []

    def lookup(ref: str) -> Any:
        seen.append(ref)
        return SimpleNamespace(task=task) if ref == "last" else None

    origin = load_origin("last", lookup=lookup)
    assert (origin.label, origin.provider, origin.request["seed"]) == (
        "task sbx123456",
        "sandbox",
        99,
    )
    assert origin.sandbox
    with pytest.raises(UsageError, match="no such file, and no task with that id"):
        load_origin("nothing-like-this", lookup=lookup)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not a readable JSON sidecar"), ('{"request": {}}', "not a flux2 sidecar")],
)
def test_bad_sidecars_are_exit_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_origin(str(path))
