"""Names of saved images: slugs, safe file names, --name templates, the fallback, clashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from flux2_cli import naming
from flux2_cli.errors import UsageError
from flux2_cli.naming import numbered, render_name, safe_filename, slugify, unique_name
from tests.test_download import NOW, TASK_ID, make_task


@pytest.mark.parametrize(
    ("prompt", "slug"),
    [
        ("A red fox in the snow", "a-red-fox-in-the-snow"),
        ("Crème brûlée, über alles!", "creme-brulee-uber-alles"),
        ("  --Hello---World--  ", "hello-world"),
        ("日本の風景 🌸", "ri-ben-no-feng-jing-cherry-blossom"),
        ("", "image"),
    ],
)
def test_slugify(prompt: str, slug: str) -> None:
    assert slugify(prompt) == slug


def test_slugify_caps_length_without_trailing_dash() -> None:
    slug = slugify("a very long prompt about " * 20)
    assert 0 < len(slug) <= 48
    assert not slug.endswith("-") and not slug.startswith("-")
    assert set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert slugify("x" * 100, max_len=10) == "x" * 10


@pytest.mark.parametrize(
    "name",
    [
        "../../.bashrc",
        "..%2f..%2fetc%2fpasswd",
        "a\0b.png",
        "CON",
        "con.png",
        "NUL.txt",
        "com1",
        "LPT9.jpg",
        "x" * 300 + ".png",
        "é" * 300 + ".png",
        "",
        "...",
        "name. ",
        'a/b\\c:d*e?f"g<h>i|j\x07k.png',
        ".hidden",
    ],
)
def test_safe_filename_is_one_harmless_component(name: str) -> None:
    safe = safe_filename(name)
    assert safe
    assert "/" not in safe and "\\" not in safe and "\0" not in safe
    assert ".." not in safe
    assert not safe.startswith(".") and not safe.endswith((".", " "))
    assert all(ord(char) >= 32 for char in safe)
    assert len(safe.encode("utf-8")) <= 200
    assert safe.split(".")[0].upper() not in naming.WINDOWS_RESERVED


def test_safe_filename_keeps_extension_when_capping() -> None:
    safe = safe_filename("x" * 300 + ".png")
    assert safe.endswith(".png")
    assert safe_filename("red-fox-3f9a1c2e.png") == "red-fox-3f9a1c2e.png"
    assert safe_filename("CON.png") == "_CON.png"


def test_render_name_default_template() -> None:
    task = make_task()
    assert (
        render_name("{slug}-{id8}", task, 0, 1, "png", NOW) == "a-red-fox-in-the-snow-3f9a1c2e.png"
    )


def test_render_name_appends_n_for_several_images_and_ext() -> None:
    task = make_task()
    assert render_name("{slug}", task, 1, 3, "jpg", NOW) == "a-red-fox-in-the-snow-2.jpg"
    assert render_name("img{n}.{ext}", task, 1, 3, "jpg", NOW) == "img2.jpg"


def test_render_name_every_field() -> None:
    task = make_task()
    template = "{date}_{time}_{seed}_{ratio}_{res}_{mode}_{task_id}_{n}.{ext}"
    name = render_name(template, task, 0, 1, "webp", NOW)
    assert name == f"2026-11-21_100506_42_16x9_1K_pro_{TASK_ID}_1.webp"


def test_render_name_unknown_field_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as caught:
        render_name("{slug}-{colour}", make_task(), 0, 1, "png", NOW)
    assert caught.value.exit_code == 2
    assert "colour" in str(caught.value)
    with pytest.raises(UsageError):
        naming.validate_template("{slug")


def test_row64_a_template_rendering_empty_falls_back_to_image_id8() -> None:
    task = make_task(request={"prompt": "a fox"})  # no seed anywhere
    assert render_name("{seed}", task, 0, 1, "png", NOW) == "image-3f9a1c2e.png"
    assert render_name("{seed}.{ext}", task, 0, 1, "png", NOW) == "image-3f9a1c2e.png"
    assert render_name("{seed}", task, 1, 2, "jpg", NOW) == "image-3f9a1c2e-2.jpg"
    assert render_name("x{seed}", task, 0, 1, "png", NOW) == "x.png"


def test_unique_name_asks_the_injected_file_system() -> None:
    taken = {Path("out/fox.png"), Path("out/fox-1.png")}
    assert unique_name(Path("out/fox.png"), exists=taken.__contains__) == Path("out/fox-2.png")
    assert unique_name(Path("out/whale.png"), exists=taken.__contains__) == Path("out/whale.png")
    assert unique_name(Path("out/x.png"), exists=lambda path: True) is None
    assert numbered(Path("out/fox.png"), 3) == Path("out/fox-3.png")
