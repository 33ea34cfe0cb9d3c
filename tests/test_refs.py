"""Local --ref files: checked, capped, sniffed and inlined as raw base64 only where taken."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import pytest

from flux2_cli import refs
from flux2_cli.errors import UsageError
from flux2_cli.imagetype import sniff_image_type
from flux2_cli.providers.apimart import CAPABILITIES as APIMART
from flux2_cli.providers.bfl import CAPABILITIES as BFL
from flux2_cli.providers.bfl import BflProvider
from flux2_cli.request import GenerationRequest

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 24
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 16
URL = "https://example.com/a.png"


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(("data", "kind"), [(PNG, "png"), (JPEG, "jpeg"), (WEBP, "webp")])
def test_sniff(data: bytes, kind: str) -> None:
    assert sniff_image_type(data[:12]) == kind


@pytest.mark.parametrize("data", [b"", b"GIF89a", b"RIFF\x00\x00\x00\x00WAVE", b"%PDF-1.7"])
def test_sniff_refuses_others(data: bytes) -> None:
    assert sniff_image_type(data) is None


@pytest.mark.parametrize("data", [PNG, JPEG, WEBP])
def test_local_files_become_raw_base64_for_inline_providers(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, "ref.img", data)
    request = GenerationRequest("a red fox", refs=(URL, path))
    resolved = refs.resolve_refs(request, BFL)
    assert resolved.refs[0] == URL
    assert resolved.refs[1] == base64.b64encode(data).decode("ascii")
    assert not resolved.refs[1].startswith("data:")
    assert request.refs == (URL, path)  # the original keeps the path for the ledger


def test_resolved_request_feeds_the_body_and_the_original_the_record(tmp_path: Path) -> None:
    path = write(tmp_path, "ref.png", PNG)
    request = GenerationRequest("a red fox", refs=(path,))
    provider = BflProvider()
    body = provider.build_create(refs.resolve_refs(request, BFL)).json
    assert body is not None and body["input_image"] == base64.b64encode(PNG).decode("ascii")
    task = provider.parse_create({"id": "t"}, request, "https://api.bfl.ai")
    assert task.request is not None and task.request["refs"] == [path]


def test_urls_only_returns_the_same_request() -> None:
    request = GenerationRequest("a red fox", refs=(URL,))
    assert refs.resolve_refs(request, APIMART) is request
    assert refs.resolve_refs(request, BFL) is request


def test_local_path_refused_where_not_inline(tmp_path: Path) -> None:
    path = write(tmp_path, "ref.png", PNG)
    with pytest.raises(UsageError) as caught:
        refs.resolve_refs(GenerationRequest("a red fox", refs=(path,)), APIMART)
    assert "provider apimart only takes public URLs for --ref" in caught.value.message


def test_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.png")
    with pytest.raises(UsageError) as caught:
        refs.resolve_refs(GenerationRequest("a red fox", refs=(missing,)), BFL)
    assert missing in caught.value.message and "no such file" in caught.value.message


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a regular file"):
        refs.resolve_refs(GenerationRequest("a red fox", refs=(str(tmp_path),)), BFL)


def test_not_an_image(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.png", b"just some text, honestly")
    with pytest.raises(UsageError) as caught:
        refs.resolve_refs(GenerationRequest("a red fox", refs=(path,)), BFL)
    assert path in caught.value.message and "PNG, JPEG or WebP" in caught.value.message


def test_size_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refs, "MAX_REF_BYTES", len(PNG) - 1)
    path = write(tmp_path, "big.png", PNG)
    with pytest.raises(UsageError, match="limit"):
        refs.resolve_refs(GenerationRequest("a red fox", refs=(path,)), BFL)


def test_exactly_at_the_cap_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refs, "MAX_REF_BYTES", len(PNG))
    path = write(tmp_path, "big.png", PNG)
    assert refs.resolve_refs(GenerationRequest("a red fox", refs=(path,)), BFL).refs[0]


def test_cap_is_twenty_megabytes() -> None:
    assert refs.MAX_REF_BYTES == 20 * 1024 * 1024


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path, "me.jpg", JPEG)
    resolved = refs.resolve_refs(GenerationRequest("a red fox", refs=("~/me.jpg",)), BFL)
    assert resolved.refs == (base64.b64encode(JPEG).decode("ascii"),)


def test_other_fields_untouched(tmp_path: Path) -> None:
    path = write(tmp_path, "ref.png", PNG)
    request = GenerationRequest("a red fox", refs=(path,), seed=3, params={"a": 1})
    resolved = refs.resolve_refs(request, BFL)
    assert dataclasses.replace(resolved, refs=request.refs) == request
