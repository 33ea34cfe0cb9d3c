"""batch/gallery.py: the HTML report and the contact sheet, from GalleryItem rows."""

from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path

import pytest
from PIL import Image

from flux2_cli.batch import gallery
from flux2_cli.batch.gallery import GalleryItem
from flux2_cli.errors import UsageError
from tests.helpers import png_bytes


def item(number: int, status: str = "done", **changes: object) -> GalleryItem:
    values: dict[str, object] = {
        "number": number,
        "line": number,
        "key": f"entry-{number}",
        "status": status,
        "prompt": f"prompt number {number}",
        "seed": None,
        "model": "flux-2",
        "provider": "sandbox",
        "sandbox": True,
        "credits": 5.0,
        "usd": 0.05,
        "task_id": f"task-{number}",
        "message": None,
        "images": (),
    }
    values.update(changes)
    return GalleryItem(**values)  # type: ignore[arg-type]


def saved(tmp_path: Path, name: str, size: tuple[int, int] = (64, 48)) -> str:
    path = tmp_path / "out" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(png_bytes(*size))
    return str(path)


def test_the_page_is_self_contained_in_manifest_order(tmp_path: Path) -> None:
    items = [
        item(1, images=(saved(tmp_path, "a.png"),), seed=7),
        item(2, "failed", message="moderated: the prompt was refused", credits=None),
        item(3, images=(saved(tmp_path, "c.png"),)),
    ]
    page = gallery.render_report(items, title="flux2 batch m.jsonl", base=tmp_path)
    keys = re.findall(r'data-key="([^"]+)"', page)
    assert keys == ["entry-1", "entry-2", "entry-3"]
    assert page.count('src="data:image/jpeg;base64,') == 2  # thumbnails embedded
    assert 'href="out/a.png"' in page and 'href="out/c.png"' in page  # relative to the page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    assert "<dt>seed</dt><dd>7</dd>" in page
    assert "moderated: the prompt was refused" in page
    assert 'data-status="failed" checked' in page and 'data-status="done" checked' in page
    assert "2 done" in page and "1 failed" in page and "10 credits spent" in page
    assert "sandbox" in page


def test_manifest_and_server_text_is_escaped() -> None:
    hostile = item(1, prompt='<img src=x onerror="alert(1)">', message="\x1b]52;c;evil\x07 <b>")
    page = gallery.render_report([hostile], title="t", base=Path("."))
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "\x1b" not in page and "\\x1b]52;c;evil\\x07 &lt;b&gt;" in page


def test_an_unreadable_image_is_marked_not_fatal(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    page = gallery.render_report([item(1, images=(str(broken),))], title="t", base=tmp_path)
    assert "image not readable" in page


def test_thumbnails_are_small(tmp_path: Path) -> None:
    big = saved(tmp_path, "big.png", (1440, 900))
    uri = gallery._thumbnail_uri(big)
    assert uri is not None
    import base64

    data = base64.b64decode(uri.split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as thumb:
        assert max(thumb.size) == gallery.THUMB_PIXELS


def test_write_report_is_atomic_and_readable_by_others(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    gallery.write_report(target, [item(1)], title="t")
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert [path.name for path in tmp_path.iterdir()] == ["report.html"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600


def test_contact_sheet_grid_and_labels(tmp_path: Path) -> None:
    items = [item(n, images=(saved(tmp_path, f"{n}.png"),)) for n in range(1, 6)]
    items.append(item(6, "failed", message="generation failed"))
    sheet = gallery.draw_contact_sheet(items)
    columns, rows = 3, 2  # six cells: ceil(sqrt(6)) columns
    line = gallery._line_height(gallery._font())
    cell_w = gallery.SHEET_CELL + gallery.SHEET_PADDING
    cell_h = gallery.SHEET_CELL + gallery.SHEET_PADDING + gallery.SHEET_LABEL_LINES * line
    assert sheet.size == (
        columns * cell_w + gallery.SHEET_PADDING,
        rows * cell_h + gallery.SHEET_PADDING,
    )
    # The first image is pasted (its red), the failed cell is the grey of "no image".
    first = sheet.getpixel((gallery.SHEET_PADDING + 128, gallery.SHEET_PADDING + 128))
    assert first == (200, 40, 40)
    last = sheet.getpixel(
        (gallery.SHEET_PADDING + 2 * cell_w + 200, gallery.SHEET_PADDING + cell_h + 200)
    )
    assert last == gallery.SHEET_EMPTY
    target = tmp_path / "sheet.png"
    gallery.write_contact_sheet(target, items)
    with Image.open(target) as written:
        assert written.format == "PNG" and written.size == sheet.size


@pytest.mark.parametrize(
    ("report", "sheet", "message"),
    [
        ("r.pdf", None, "must end in .html or .htm"),
        (None, "s.jpg", "must end in .png"),
        ("missing/r.html", None, "does not exist"),
    ],
)
def test_bad_targets_are_refused_before_anything_runs(
    tmp_path: Path, report: str | None, sheet: str | None, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        gallery.check_targets(
            tmp_path / report if report else None, tmp_path / sheet if sheet else None
        )
