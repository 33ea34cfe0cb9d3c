"""A batch run to look at: ``--report PATH.html`` (one self-contained page) and
``--contact-sheet PATH.png`` (a labelled grid drawn with Pillow).

Both are made from :class:`GalleryItem` rows, one per entry in manifest order, built from the
run's outcomes. The page embeds each thumbnail (a small JPEG as a ``data:`` URI), so it can be
mailed or attached as a CI artifact alone; each thumbnail links to the full image by a path
relative to the page. Every string from the manifest or a server is HTML-escaped. A small inline
script filters the entries by status (the checkboxes, or a link such as ``report.html#show=failed``)
and marks any thumbnail that did not load (``data-state`` on each image, ``data-thumbnails="N/M"``
on the body).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux2_cli.atomic import write_atomic
from flux2_cli.errors import UsageError

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from flux2_cli.batch.lock import LockFile
    from flux2_cli.batch.runner import Outcome

THUMB_PIXELS = 320  # the longer side of a thumbnail on the page
THUMB_QUALITY = 82
SHEET_CELL = 256  # the longer side of an image on the contact sheet
SHEET_LABEL_LINES = 3
SHEET_MAX_COLUMNS = 6
SHEET_PADDING = 12
SHEET_BACKGROUND = (250, 250, 250)
SHEET_EMPTY = (225, 225, 225)
SHEET_TEXT = (20, 20, 20)
SHEET_FAILED = (176, 0, 32)
PROMPT_LABEL_CHARS = 40
MESSAGE_LINES = 8
REPORT_SUFFIXES = (".html", ".htm")
SHEET_SUFFIXES = (".png",)


@dataclass(frozen=True)
class GalleryItem:
    """One entry as the report shows it."""

    number: int
    line: int
    key: str
    status: str
    prompt: str
    seed: int | None
    model: str | None
    provider: str
    sandbox: bool
    credits: float | None
    usd: float | None
    task_id: str | None
    message: str | None
    images: tuple[str, ...] = field(default_factory=tuple)


def items_from_outcomes(
    outcomes: Iterable[Outcome], lock: LockFile, *, sandbox: bool
) -> list[GalleryItem]:
    """One row per outcome, in manifest order; ``sandbox`` marks a run on the emulator."""
    from flux2_cli.context import is_sandbox_url

    items = []
    for outcome in sorted(outcomes, key=lambda each: each.entry.number):
        entry = outcome.entry
        task = outcome.task
        record = outcome.decision.record or {}
        seed = entry.request.seed
        if seed is None and task is not None:
            seed = task.extra.get("seed")
        if seed is None:
            seed = record.get("seed")
        cost = task.cost if task is not None else None
        message = None
        if outcome.error is not None:
            message = outcome.error.message
        elif task is not None and task.error is not None:
            message = task.error.message
        made_on_sandbox = (
            sandbox
            or entry.provider == "sandbox"
            or (task is not None and is_sandbox_url(task.base_url))
        )
        items.append(
            GalleryItem(
                number=entry.number,
                line=entry.line,
                key=entry.key,
                status=outcome.status,
                prompt=entry.request.prompt,
                seed=seed if isinstance(seed, int) else None,
                model=(task.model if task is not None else None)
                or record.get("model")
                or entry.model,
                provider=entry.provider,
                sandbox=made_on_sandbox,
                credits=cost.credits if cost is not None else None,
                usd=cost.usd if cost is not None else None,
                task_id=task.task_id if task is not None else record.get("task_id"),
                message=message,
                images=tuple(outcome.paths(lock)),
            )
        )
    return items


def check_targets(report: Path | None, sheet: Path | None) -> None:
    """Refuse (exit 2, before anything is sent) a report path that cannot be written."""
    for path, flag, suffixes in (
        (report, "--report", REPORT_SUFFIXES),
        (sheet, "--contact-sheet", SHEET_SUFFIXES),
    ):
        if path is None:
            continue
        if path.suffix.lower() not in suffixes:
            raise UsageError(f"{flag} {path}: the file name must end in {' or '.join(suffixes)}.")
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise UsageError(f"{flag} {path}: the folder {folder} does not exist.")
        if not os.access(folder, os.W_OK):
            raise UsageError(f"{flag} {path}: the folder {folder} is not writable.")


# -- the HTML page ---------------------------------------------------------------------------


def write_report(path: Path, items: Sequence[GalleryItem], *, title: str) -> None:
    """Write the self-contained HTML page to ``path`` (atomically)."""
    write_atomic(path, render_report(items, title=title, base=path.parent).encode("utf-8"))


def render_report(items: Sequence[GalleryItem], *, title: str, base: Path) -> str:
    """The page: a header with counts and status filters, then one card per entry."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.status] = counts.get(item.status, 0) + 1
    credits = sum(item.credits or 0.0 for item in items if item.status == "done")
    filters = "".join(
        f'<label><input type="checkbox" data-status="{_e(status)}" checked> '
        f"{_e(status)} ({count})</label>"
        for status, count in sorted(counts.items())
    )
    cards = "\n".join(_card(item, base) for item in items)
    sandbox_note = (
        '<p class="sandbox-note">Made on the sandbox: simulated, nothing was charged.</p>'
        if any(item.sandbox for item in items)
        else ""
    )
    return PAGE.format(
        title=_e(title),
        total=len(items),
        summary=_e(", ".join(f"{count} {status}" for status, count in sorted(counts.items()))),
        credits=_e(f"{credits:g}"),
        sandbox_note=sandbox_note,
        filters=filters,
        cards=cards,
        style=STYLE,
        script=SCRIPT,
    )


def _card(item: GalleryItem, base: Path) -> str:
    thumbs = []
    for image in item.images:
        thumb = _thumbnail_uri(image)
        href = _e(_link(image, base))
        if thumb is None:
            thumbs.append(f'<a class="missing" href="{href}">image not readable</a>')
        else:
            alt = _e(f"{item.key}: {Path(image).name}")
            thumbs.append(f'<a href="{href}"><img src="{thumb}" alt="{alt}"></a>')
    if not thumbs:
        thumbs.append('<div class="missing">no image</div>')
    facts = [
        ("entry", f"{item.number} (line {item.line})"),
        ("seed", "" if item.seed is None else str(item.seed)),
        ("model", item.model or ""),
        ("provider", item.provider),
        ("cost", _cost_text(item)),
        ("task", item.task_id or ""),
    ]
    rows = "".join(f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in facts if value)
    sandbox = '<span class="badge sandbox">sandbox</span>' if item.sandbox else ""
    message = f'<p class="message">{_e(item.message)}</p>' if item.message else ""
    return (
        f'<article class="entry status-{_e(item.status)}" data-status="{_e(item.status)}" '
        f'data-key="{_e(item.key)}">'
        f'<div class="thumbs">{"".join(thumbs)}</div>'
        f'<h2><span class="badge status">{_e(item.status)}</span>{sandbox} {_e(item.key)}</h2>'
        f'<p class="prompt">{_e(item.prompt)}</p>{message}<dl>{rows}</dl></article>'
    )


def _cost_text(item: GalleryItem) -> str:
    if item.credits is None:
        return ""
    text = f"{item.credits:g} credits"
    if item.usd is not None:
        text += f" (≈ ${item.usd:.2f})"
    return text


def _link(image: str, base: Path) -> str:
    """The image's address from the page: a relative path, else a file: URI."""
    target = Path(image).resolve()
    try:
        relative = os.path.relpath(target, base.resolve())
    except ValueError:  # another drive (Windows)
        return target.as_uri()
    return Path(relative).as_posix()


def _thumbnail_uri(path: str) -> str | None:
    """A small JPEG of the image as a ``data:`` URI; None when it cannot be read."""
    image = _open_image(path)
    if image is None:
        return None
    image.thumbnail((THUMB_PIXELS, THUMB_PIXELS))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=THUMB_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _open_image(path: str) -> PILImage.Image | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            opened.load()
            converted: PILImage.Image = opened.convert("RGB")
            return converted
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def _e(text: str) -> str:
    """HTML-escaped, with control characters (terminal escapes in server text) made visible."""
    cleaned = "".join(ch if ch in "\n\t" or ord(ch) >= 32 else f"\\x{ord(ch):02x}" for ch in text)
    return html.escape(cleaned, quote=True)


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:16px;
color:#1a1a1a;background:#fafafa}
header{margin-bottom:12px}h1{font-size:20px;margin:0 0 4px}
.filters label{margin-right:12px;white-space:nowrap}
.sandbox-note{color:#7a4b00;background:#fff4d6;padding:4px 8px;border-radius:4px;
display:inline-block}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
.entry{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;overflow-wrap:anywhere}
.entry.hidden{display:none}.entry h2{font-size:14px;margin:6px 0}
.thumbs{display:flex;gap:4px;flex-wrap:wrap}
.thumbs img{max-width:100%;border-radius:4px;display:block}
.thumbs img.broken{outline:3px solid #b00020}
.missing{display:flex;align-items:center;justify-content:center;width:100%;height:120px;
background:#eee;color:#666;border-radius:4px}
.badge{font-size:11px;padding:1px 6px;border-radius:8px;margin-right:4px;background:#e0e0e0}
.status-done .badge.status,.status-skipped .badge.status,.status-reused .badge.status
{background:#d7f5dd;color:#0b5d1e}
.status-timed_out .badge.status,.status-unknown .badge.status{background:#fff0c2;color:#6b4e00}
.status-failed .badge.status{background:#fde0e3;color:#b00020}
.badge.sandbox{background:#fff4d6;color:#7a4b00}
.message{color:#b00020;white-space:pre-wrap}.prompt{margin:4px 0}
dl{display:grid;grid-template-columns:auto 1fr;gap:0 8px;margin:4px 0 0;color:#555;font-size:12px}
dt{font-weight:600}dd{margin:0}
"""

SCRIPT = """
function flux2Filter(){
  var shown={};
  document.querySelectorAll('.filters input').forEach(function(box){
    shown[box.dataset.status]=box.checked;});
  document.querySelectorAll('article.entry').forEach(function(card){
    card.classList.toggle('hidden',!shown[card.dataset.status]);});
}
document.querySelectorAll('.filters input').forEach(function(box){
  box.addEventListener('change',flux2Filter);});
var wanted=/^#show=(.+)$/.exec(location.hash);
if(wanted){
  var keep=decodeURIComponent(wanted[1]).split(',');
  document.querySelectorAll('.filters input').forEach(function(box){
    box.checked=keep.indexOf(box.dataset.status)>=0;});
  flux2Filter();
}
window.addEventListener('load',function(){
  var images=document.querySelectorAll('.thumbs img'),loaded=0;
  images.forEach(function(img){
    var ok=img.complete&&img.naturalWidth>0;
    img.dataset.state=ok?'loaded':'broken';
    if(ok){loaded++;}else{img.classList.add('broken');}
  });
  document.body.dataset.thumbnails=loaded+'/'+images.length;
});
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="flux2">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p class="counts" data-total="{total}">{total} entries: {summary}; {credits} credits spent</p>
{sandbox_note}
<div class="filters">Show: {filters}</div>
</header>
<main>
{cards}
</main>
<script>{script}</script>
</body>
</html>
"""


# -- the contact sheet -----------------------------------------------------------------------


def write_contact_sheet(path: Path, items: Sequence[GalleryItem]) -> None:
    """Write a labelled grid of every entry's first image (a grey cell for none) as PNG."""
    buffer = io.BytesIO()
    draw_contact_sheet(items).save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())


def draw_contact_sheet(items: Sequence[GalleryItem]) -> PILImage.Image:
    """The grid: up to six columns; under each image its key, status and seed, and the prompt."""
    from PIL import Image, ImageDraw

    font = _font()
    line_height = _line_height(font)
    count = max(1, len(items))
    columns = min(SHEET_MAX_COLUMNS, math.ceil(math.sqrt(count)))
    rows = math.ceil(count / columns)
    cell_w = SHEET_CELL + SHEET_PADDING
    cell_h = SHEET_CELL + SHEET_PADDING + SHEET_LABEL_LINES * line_height
    sheet = Image.new(
        "RGB",
        (columns * cell_w + SHEET_PADDING, rows * cell_h + SHEET_PADDING),
        SHEET_BACKGROUND,
    )
    pen = ImageDraw.Draw(sheet)
    for index, item in enumerate(items):
        left = SHEET_PADDING + (index % columns) * cell_w
        top = SHEET_PADDING + (index // columns) * cell_h
        image = _open_image(item.images[0]) if item.images else None
        if image is None:
            pen.rectangle(
                (left, top, left + SHEET_CELL - 1, top + SHEET_CELL - 1), fill=SHEET_EMPTY
            )
            note = item.message or "no image"
            for number, text in enumerate(textwrap.wrap(note, 34)[:MESSAGE_LINES]):
                y = top + 8 + number * line_height
                pen.text((left + 8, y), _fit(pen, text, font), fill=SHEET_TEXT, font=font)
        else:
            image.thumbnail((SHEET_CELL, SHEET_CELL))
            offset_x = (SHEET_CELL - image.width) // 2
            offset_y = (SHEET_CELL - image.height) // 2
            sheet.paste(image, (left + offset_x, top + offset_y))
        for number, (text, colour) in enumerate(_label(item)):
            y = top + SHEET_CELL + 4 + number * line_height
            pen.text((left, y), _fit(pen, text, font), fill=colour, font=font)
    return sheet


def _label(item: GalleryItem) -> list[tuple[str, tuple[int, int, int]]]:
    status = item.status + (" · sandbox" if item.sandbox else "")
    seed = f" · seed {item.seed}" if item.seed is not None else ""
    colour = SHEET_FAILED if item.status == "failed" else SHEET_TEXT
    prompt = " ".join(item.prompt.split())
    if len(prompt) > PROMPT_LABEL_CHARS:
        prompt = prompt[: PROMPT_LABEL_CHARS - 1] + "…"
    return [
        (f"{item.number}. {item.key}", SHEET_TEXT),
        (status + seed, colour),
        (prompt, SHEET_TEXT),
    ]


def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=13)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _line_height(font: Any) -> int:
    _, top, _, bottom = font.getbbox("Hg…")
    return int(bottom - top) + 5


def _fit(pen: Any, text: str, font: Any) -> str:
    """``text`` cut with an ellipsis to the cell's width."""
    if pen.textlength(text, font=font) <= SHEET_CELL:
        return text
    while text and pen.textlength(text + "…", font=font) > SHEET_CELL:
        text = text[:-1]
    return text + "…"
