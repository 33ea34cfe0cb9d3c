"""Streaming, verified, atomic downloads of result images; safe file names; metadata sidecars."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import string
import struct
import sys
import tempfile
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

from flux2_cli import __version__
from flux2_cli.errors import DownloadError, UrlExpiredError, UsageError
from flux2_cli.imagetype import sniff_image_type
from flux2_cli.task import ImageResult, Task, format_time, short_id, utc_now

if TYPE_CHECKING:
    import httpx

MAX_IMAGE_BYTES = 200 * 1024 * 1024
CONNECT_TIMEOUT = 10.0
MAX_REDIRECTS = 5
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 8.0
RETRY_AFTER_CAP = 60.0
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
EXPIRED_STATUSES = frozenset({403, 404, 410})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MARKUP_TYPES = frozenset({"text/html", "application/xhtml+xml", "application/xml", "text/xml"})
# Leaves room under the usual 255-byte limit for a "-NN" clash suffix and the ".part-" temp name.
MAX_NAME_BYTES = 200
TEMP_STEM_BYTES = 80
MAX_CLASH_SUFFIX = 9999
DEFAULT_TEMPLATE = "{slug}-{id8}"
TEMPLATE_FIELDS = frozenset(
    {"slug", "task_id", "id8", "n", "ext", "date", "time", "seed", "ratio", "res", "mode"}
)
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp"}
METADATA_KEY = "flux2"
SECRET_KEY_RE = re.compile(r"key|token|secret|password|authorization|signature", re.IGNORECASE)
WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
    | {f"COM{c}" for c in "¹²³"}
    | {f"LPT{c}" for c in "¹²³"}
)
_UNSAFE_CHARS_RE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


@dataclass(frozen=True)
class DownloadOptions:
    """Where and how result images are saved (the ``gen``/``download`` output options)."""

    output: str | None = None
    name_template: str = DEFAULT_TEMPLATE
    overwrite: bool = False
    sidecar: bool = True
    embed_metadata: bool = False
    max_bytes: int = MAX_IMAGE_BYTES
    timeout: float = 60.0
    retries: int = 4


# --------------------------------------------------------------------------- names


def slugify(prompt: str, max_len: int = 48) -> str:
    """A short ``a-z0-9-`` slug of a prompt (accents folded), or ``image`` when nothing is left."""
    folded = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    if len(slug) > max_len:
        cut = slug[: max_len + 1]
        # Prefer ending on a whole word when one ends in the second half.
        boundary = cut.rfind("-")
        slug = cut[:boundary] if boundary >= max_len // 2 else slug[:max_len]
        slug = slug.strip("-")
    return slug or "image"


def safe_filename(name: str) -> str:
    """One file name safe on Windows, macOS and Linux: never a path, never empty or hidden."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE_CHARS_RE.sub("_", name)
    name = re.sub(r"\.{2,}", ".", name)
    name = name.strip(" .")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 10 or not ext.isalnum():
        stem, ext = name, ""
    stem = stem.rstrip(" .")
    if stem.split(".")[0].upper().rstrip(" ") in WINDOWS_RESERVED:
        stem = "_" + stem
    suffix = f".{ext}" if ext else ""
    stem = _cap_bytes(stem, MAX_NAME_BYTES - len(suffix.encode("utf-8"))).rstrip(" .")
    if not stem:
        stem = "image"
    return stem + suffix


def validate_template(template: str) -> None:
    """Refuse a ``--name`` template with unknown fields (exit 2, before anything is paid for)."""
    _template_fields(template)


def render_name(template: str, task: Task, index: int, count: int, ext: str, now: datetime) -> str:
    """The file name for image ``index`` (0-based) of ``count``, sanitised by :func:`safe_filename`.

    ``-{n}`` is appended when there are several images and the template lacks ``{n}``;
    ``.{ext}`` when it lacks ``{ext}``.
    """
    fields = _template_fields(template)
    if count > 1 and "n" not in fields:
        template += "-{n}"
    if "ext" not in fields:
        template += ".{ext}"
    request = task.request or {}
    seed = request.get("seed")
    if seed is None:
        seed = task.extra.get("seed")
    values: dict[str, Any] = {
        "slug": slugify(str(request.get("prompt") or "")),
        "task_id": task.task_id,
        "id8": _id8(task.task_id),
        "n": index + 1,
        "ext": ext,
        "date": now.strftime("%Y-%m-%d"),
        "time": now.strftime("%H%M%S"),
        "seed": "" if seed is None else seed,
        "ratio": str(request.get("ratio") or "").replace(":", "x"),
        "res": str(request.get("res") or ""),
        "mode": str(request.get("mode") or ""),
    }
    try:
        rendered = template.format_map(values)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise UsageError(f"invalid --name template {template!r}: {exc}") from None
    return safe_filename(rendered)


def _template_fields(template: str) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(f"invalid --name template {template!r}: {exc}") from None
    fields = {name for _, name, _, _ in parsed if name is not None}
    unknown = sorted(name for name in fields if name not in TEMPLATE_FIELDS)
    if unknown:
        allowed = " ".join("{" + name + "}" for name in sorted(TEMPLATE_FIELDS))
        raise UsageError(
            f"unknown field {{{unknown[0]}}} in --name template {template!r}",
            hints=[f"Fields: {allowed}"],
        )
    return fields


def _id8(task_id: str) -> str:
    return short_id(task_id)


def _cap_bytes(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", "ignore")


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def public_url(url: str) -> str:
    """The URL without its query string and fragment (signed URLs carry their secret there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "?"
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


# --------------------------------------------------------------------------- downloading


class _Retry(Exception):
    """A transient failure: the attempt may be repeated."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Expired(Exception):
    """The URL was refused or answered a storage error page: it needs a fresh URL."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _WriteFailed(Exception):
    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Part:
    """The temp file of one image and what has been received into it so far."""

    path: Path
    fh: BinaryIO
    written: int = 0
    total: int | None = None
    resumable: bool = False
    hasher: Any = field(default_factory=hashlib.sha256)

    def reset(self) -> None:
        try:
            self.fh.seek(0)
            self.fh.truncate()
        except OSError as exc:
            raise _WriteFailed(exc) from exc
        self.written = 0
        self.total = None
        self.resumable = False
        self.hasher = hashlib.sha256()


@dataclass(frozen=True)
class _Target:
    stdout: bool
    folder: Path
    file_name: str | None  # the user's own file name, when -o named one
    # Folders made for this download, deepest first: removed again if no file lands.
    created: tuple[Path, ...] = ()


@dataclass(frozen=True)
class _Verified:
    format: str
    width: int
    height: int


def _write_all(fh: BinaryIO, data: bytes) -> None:
    """Write a chunk to the temp file (one seam, so tests can fake a full disk)."""
    fh.write(data)


def download_images(
    task: Task,
    options: DownloadOptions,
    *,
    transport: httpx.BaseTransport | None = None,
    refresh: Callable[[], Task] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    notify: Callable[[str], None] = lambda message: None,
    stdout: BinaryIO | None = None,
    on_bytes: Callable[[int, int | None], None] | None = None,
    clock: Callable[[], datetime] | None = None,
    log: Callable[[str], None] | None = None,
) -> Task:
    """Download every image of a finished task; return the task with the images filled in.

    Each image is streamed into a temp file beside its destination, checked (length, magic
    bytes, decodes), then renamed into place; nothing partial is ever left at a destination.
    Download requests carry no credentials. ``clock`` gives the time for ``{date}``/``{time}``.
    """
    import httpx

    if not task.images:
        raise DownloadError(
            f"task {task.task_id} has no images to download",
            hints=[f"  flux2 status {task.task_id}"],
        )
    validate_template(options.name_template)
    target = _resolve_target(options.output, task)
    now = clock() if clock is not None else datetime.now().astimezone()
    client = httpx.Client(
        transport=transport,
        # A custom transport (tests, the sandbox) must not be bypassed by proxy variables.
        trust_env=transport is None,
        timeout=httpx.Timeout(options.timeout, connect=CONNECT_TIMEOUT),
        follow_redirects=False,
        headers={"User-Agent": f"flux2/{__version__}", "Accept-Encoding": "identity"},
        event_hooks=_log_hooks(log) if log is not None else None,
    )
    try:
        downloader = _Downloader(
            client=client,
            task=task,
            options=options,
            target=target,
            now=now,
            refresh=refresh,
            sleep=sleep,
            notify=notify,
            stdout=stdout,
            on_bytes=on_bytes,
        )
        return downloader.run()
    except BaseException:
        _remove_empty_folders(target.created)
        raise
    finally:
        client.close()


def _remove_empty_folders(folders: tuple[Path, ...]) -> None:
    """Undo the folders a failed download made (``-o new/`` for an expired task); a folder
    that received a file, or someone else's, is not empty and stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _log_hooks(log: Callable[[str], None]) -> dict[str, list[Callable[[Any], None]]]:
    """--verbose: each image request and answer on one line, the signed query redacted."""
    from flux2_cli.redact import redact_url

    def request(req: httpx.Request) -> None:
        log(f"-> {req.method} {redact_url(str(req.url))}")

    def response(resp: httpx.Response) -> None:
        length = resp.headers.get("content-length", "?")
        kind = resp.headers.get("content-type", "?")
        log(f"<- {resp.status_code} {resp.reason_phrase} ({kind}, {length} bytes)")

    return {"request": [request], "response": [response]}


def _resolve_target(output: str | None, task: Task) -> _Target:
    if output is None or output in ("", "."):
        return _Target(stdout=False, folder=Path("."), file_name=None)
    if output == "-":
        return _Target(stdout=True, folder=Path("."), file_name=None)
    separators = tuple(sep for sep in (os.sep, os.altsep, "/") if sep)
    path = Path(output).expanduser()
    if output.endswith(separators) or path.is_dir():
        missing: list[Path] = []
        probe = path
        while not probe.exists() and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _cannot_write(path, exc, task) from None
        return _Target(stdout=False, folder=path, file_name=None, created=tuple(missing))
    parent = path.parent
    if not parent.is_dir():
        raise DownloadError(
            f"cannot write {path}: the folder {parent} does not exist",
            hints=_recover_hints(task),
        )
    return _Target(stdout=False, folder=parent, file_name=path.name)


def check_destination(output: str | None) -> None:
    """Before a task is paid for: UsageError when ``-o`` cannot work (a missing or read-only
    folder), so that a typo costs nothing. A folder that vanishes later is still exit 8."""
    if output is None or output in ("", "-"):
        return
    separators = tuple(sep for sep in (os.sep, os.altsep, "/") if sep)
    path = Path(output).expanduser()
    if output.endswith(separators) or path.is_dir():
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent  # created on download: its nearest existing parent
        folder = existing
    else:
        folder = path.parent
        if not folder.is_dir():
            raise UsageError(
                f"-o {output}: the folder {folder} does not exist; create it, or end -o "
                "with / to have flux2 create it."
            )
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"-o {output}: {folder} is not a folder flux2 can write to.")


def _recover_hints(task: Task) -> list[str]:
    return [
        f"The task {task.task_id} succeeded; its images stay at the provider until the URLs "
        "expire. Fetch them again with:",
        f"  flux2 download {task.task_id} -o FOLDER",
    ]


def _cannot_write(path: Path | str, exc: OSError, task: Task) -> DownloadError:
    reason = exc.strerror or str(exc)
    return DownloadError(f"cannot write {path}: {reason}", hints=_recover_hints(task))


class _Downloader:
    """The state of one ``download_images`` call: its client, the refresh budget, the names."""

    def __init__(
        self,
        *,
        client: httpx.Client,
        task: Task,
        options: DownloadOptions,
        target: _Target,
        now: datetime,
        refresh: Callable[[], Task] | None,
        sleep: Callable[[float], None],
        notify: Callable[[str], None],
        stdout: BinaryIO | None,
        on_bytes: Callable[[int, int | None], None] | None,
    ) -> None:
        self.client = client
        self.task = task
        self.options = options
        self.target = target
        self.now = now
        self.refresh = refresh
        self.refreshed = False
        self.sleep = sleep
        self.notify = notify
        self.stdout = stdout
        self.on_bytes = on_bytes
        self.urls = [image.url for image in task.images]

    def run(self) -> Task:
        count = len(self.task.images)
        results: list[ImageResult] = []
        for index in range(count):
            to_stdout = self.target.stdout and index == 0
            if self.target.stdout and index == 1:
                self.notify(
                    f"the task returned {count} images; only the first went to stdout, "
                    "the others are saved in the current folder"
                )
            results.append(self._one(index, count, to_stdout))
        return self.task.evolve(images=tuple(results))

    # -- one image -------------------------------------------------------------------------

    def _one(self, index: int, count: int, to_stdout: bool) -> ImageResult:
        folder = Path(tempfile.gettempdir()) if to_stdout else self.target.folder
        provisional = self._name(index, count, "part")
        stem = _cap_bytes(provisional.rsplit(".", 1)[0], TEMP_STEM_BYTES)
        temp_path = folder / f".{stem}.part-{secrets.token_hex(4)}"
        try:
            # 0o666 & ~umask, like any new file: os.open's default of 0o777 makes images executable.
            fd = os.open(
                temp_path, os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_BINARY", 0), 0o666
            )
        except OSError as exc:
            raise _cannot_write(folder, exc, self.task) from None
        placed = False
        try:
            with os.fdopen(fd, "w+b") as fh:
                part = _Part(path=temp_path, fh=fh)
                try:
                    verified = self._fetch(index, part)
                    if self.options.embed_metadata:
                        self._embed(part, verified)
                    fh.flush()
                    os.fsync(fh.fileno())
                except _WriteFailed as failure:
                    raise _cannot_write(temp_path.parent, failure.error, self.task) from None
                except OSError as exc:
                    raise _cannot_write(temp_path.parent, exc, self.task) from None
                image = replace(
                    self.task.images[index],
                    url=self.urls[index],
                    bytes=part.written,
                    sha256=part.hasher.hexdigest(),
                    width=verified.width,
                    height=verified.height,
                    format=verified.format,
                )
                if to_stdout:
                    self._to_stdout(fh)
                    return replace(image, path="-")
            ext = EXTENSIONS[verified.format]
            destination = self._destination(index, count, ext)
            final = self._place(temp_path, destination)
            placed = True
        finally:
            if not placed:
                _unlink_quietly(temp_path)
        image = replace(image, path=str(final))
        if self.options.sidecar:
            try:
                write_sidecar(final, self.task, image)
            except OSError as exc:
                self.notify(f"saved {final}, but could not write its sidecar: {exc.strerror}")
        return image

    def _name(self, index: int, count: int, ext: str) -> str:
        name = self.target.file_name
        if name is None or (self.target.stdout and index > 0):
            return render_name(self.options.name_template, self.task, index, count, ext, self.now)
        return name

    def _destination(self, index: int, count: int, ext: str) -> Path:
        name = self.target.file_name
        if name is None or self.target.stdout:
            return self.target.folder / self._name(index, count, ext)
        path = Path(name)
        stem, suffix = path.stem, path.suffix
        if suffix.lower() in IMAGE_SUFFIXES:
            wanted = {".jpeg": "jpg"}.get(suffix.lower(), suffix.lower().lstrip("."))
            if wanted != ext:
                self.notify(f"the image is {ext.upper()}, not {suffix}: saving it as .{ext}")
                suffix = f".{ext}"
        else:
            stem, suffix = name, f".{ext}"
        if count > 1:
            stem = f"{stem}-{index + 1}"
        return self.target.folder / f"{stem}{suffix}"

    def _place(self, temp_path: Path, destination: Path) -> Path:
        """Rename the verified temp file to ``destination`` or, on a clash, ``NAME-1``, ``-2``."""
        if self.options.overwrite:
            try:
                os.replace(temp_path, destination)
            except OSError as exc:
                raise _cannot_write(destination, exc, self.task) from None
            return destination
        candidate = destination
        number = 0
        while True:
            try:
                # Claiming the name with O_EXCL makes two concurrent runs pick different names.
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            except FileExistsError:
                pass
            except OSError as exc:
                raise _cannot_write(candidate, exc, self.task) from None
            else:
                # The sidecar shares the name: an existing NAME.json (another image's sidecar,
                # say fox.json of fox.jpg) makes the name taken too, or it would be replaced.
                if not (self.options.sidecar and os.path.lexists(candidate.with_suffix(".json"))):
                    break
                _unlink_quietly(candidate)
            number += 1
            if number > MAX_CLASH_SUFFIX:
                raise DownloadError(
                    f"cannot write {destination}: too many files with that name",
                    hints=_recover_hints(self.task),
                ) from None
            candidate = destination.with_name(f"{destination.stem}-{number}{destination.suffix}")
        try:
            os.replace(temp_path, candidate)
        except BaseException as exc:
            _unlink_quietly(candidate)
            if isinstance(exc, OSError):
                raise _cannot_write(candidate, exc, self.task) from None
            raise
        if candidate != destination:
            self.notify(f"{destination} exists; saved as {candidate.name}")
        return candidate

    def _to_stdout(self, fh: BinaryIO) -> None:
        out = self.stdout if self.stdout is not None else sys.stdout.buffer
        fh.seek(0)
        try:
            shutil.copyfileobj(fh, out)
            out.flush()
        except OSError as exc:
            raise _cannot_write("stdout", exc, self.task) from None

    # -- fetching ---------------------------------------------------------------------------

    def _fetch(self, index: int, part: _Part) -> _Verified:
        """Attempts with backoff until the image is complete and verified, or the budget is out."""
        failures = 0
        while True:
            url = self.urls[index]
            try:
                self._attempt(url, part)
                return _verify(part)
            except _Retry as exc:
                failures += 1
                if failures > self.options.retries:
                    raise DownloadError(
                        f"could not download image {index + 1} of task {self.task.task_id} "
                        f"from {_host(url)}: {exc.reason} "
                        f"(after {failures} attempt{'s' if failures > 1 else ''})",
                        hints=_recover_hints(self.task),
                    ) from None
                delay = min(BACKOFF_FIRST * 2 ** (failures - 1), BACKOFF_CAP)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, RETRY_AFTER_CAP))
                self.notify(f"download from {_host(url)} failed ({exc.reason}); retrying")
                self.sleep(delay)
            except _Expired as exc:
                new_url = self._refreshed_url(index)
                if new_url is None or new_url == url:
                    raise self._expired(url, exc.reason) from None
                part.reset()
                self.notify(f"the image URL was refused ({exc.reason}); using a fresh one")

    def _refreshed_url(self, index: int) -> str | None:
        if self.refresh is None or self.refreshed:
            return None
        self.refreshed = True
        fresh = self.refresh()
        for position, image in enumerate(fresh.images[: len(self.urls)]):
            self.urls[position] = image.url
        if index >= len(fresh.images):
            return None
        return self.urls[index]

    def _expired(self, url: str, reason: str) -> UrlExpiredError:
        issued = format_time(self.task.created_at)
        when = f"issued {issued}" if issued else "issued at an unknown time"
        return UrlExpiredError(
            f"image URL expired ({when}): {_host(url)} answered {reason}",
            hints=[
                "Image URLs are only valid for a limited time (often 24 hours).",
                f"  flux2 status {self.task.task_id}   (shows fresh URLs when the provider "
                "still has them)",
            ],
        )

    def _attempt(self, url: str, part: _Part) -> None:
        """One GET (following redirects by hand) streamed into ``part``; raises on any fault."""
        import httpx

        offset = part.written if part.resumable and part.total is not None else 0
        if offset == 0 and part.written:
            part.reset()
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            scheme = urlsplit(current).scheme.lower()
            if scheme not in ("http", "https"):
                raise self._bad_scheme(scheme)
            try:
                request = self.client.build_request("GET", current, headers=headers)
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                raise DownloadError(f"invalid image URL ({exc})") from None
            try:
                response = self.client.send(request, stream=True)
            except httpx.TimeoutException:
                raise _Retry("timed out") from None
            except httpx.UnsupportedProtocol as exc:
                raise DownloadError(f"invalid image URL ({exc})") from None
            except httpx.InvalidURL:
                # httpx prepares the next hop even when not following; its Location is unusable.
                raise DownloadError(
                    f"refusing a redirect from {_host(current)} to an invalid URL "
                    "(only http and https)",
                    hints=_recover_hints(self.task),
                ) from None
            except httpx.TransportError as exc:
                raise _Retry(_describe(exc)) from None
            except httpx.DecodingError:
                # A body read in full on sending (in-memory transports) fails here, not in
                # _receive; the same fault, the same answer.
                part.resumable = False
                raise _Retry("the body did not decode (a bad Content-Encoding)") from None
            try:
                if response.status_code in REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise DownloadError(
                            f"{_host(current)} answered HTTP {response.status_code} "
                            "without a Location"
                        )
                    current = self._redirect_target(response.url, location)
                    continue
                self._receive(response, part, offset)
                return
            finally:
                response.close()
        raise DownloadError(
            f"too many redirects (more than {MAX_REDIRECTS}) from {_host(url)}",
            hints=_recover_hints(self.task),
        )

    def _redirect_target(self, base: httpx.URL, location: str) -> str:
        import httpx

        scheme = urlsplit(location).scheme.lower()
        if scheme and scheme not in ("http", "https"):
            raise self._bad_scheme(scheme)
        try:
            return str(base.join(location))
        except httpx.InvalidURL as exc:
            raise DownloadError(
                f"{_host(str(base))} redirected to an invalid URL ({exc})"
            ) from None

    def _bad_scheme(self, scheme: str) -> DownloadError:
        return DownloadError(
            f"refusing to download an image from a {scheme or 'schemeless'}: URL "
            "(only http and https)",
            hints=_recover_hints(self.task),
        )

    def _receive(self, response: httpx.Response, part: _Part, offset: int) -> None:
        import httpx

        status = response.status_code
        host = _host(str(response.url))
        if status in EXPIRED_STATUSES:
            raise _Expired(f"HTTP {status}")
        if status in RETRY_STATUSES:
            raise _Retry(f"HTTP {status}", _retry_after(response.headers.get("retry-after")))
        if status not in (200, 206):
            raise DownloadError(
                f"{host} answered HTTP {status} for the image", hints=_recover_hints(self.task)
            )
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in MARKUP_TYPES:
            raise _Expired(f"a {content_type} page instead of an image")
        encoded = response.headers.get("content-encoding", "identity").lower() not in (
            "",
            "identity",
        )
        length = _int_header(response.headers.get("content-length"))
        if status == 206:
            start, total = _content_range(response.headers.get("content-range"))
            if not offset or start != offset or encoded:
                # A range we did not ask for, or the wrong one: start again from zero.
                part.reset()
                raise _Retry("the server sent an unexpected byte range")
            part.resumable = True
            if total is None and length is not None:
                total = offset + length
        else:
            if offset:
                # The server ignored Range: the body is the whole image, never spliced on.
                part.reset()
            total = None if encoded else length
            part.resumable = (
                response.headers.get("accept-ranges", "").strip().lower() == "bytes" and not encoded
            )
        part.total = total
        if total is not None and total > self.options.max_bytes:
            raise self._too_large(host)
        # iter_bytes, not iter_raw: it also serves responses whose body is already in memory
        # (mock and embedded transports); with identity encoding the bytes are the raw ones.
        chunks: Iterator[bytes] = response.iter_bytes()
        try:
            for chunk in chunks:
                if not chunk:
                    continue
                if part.written == 0 and _looks_like_markup(chunk):
                    raise _Expired("an HTML/XML page instead of an image")
                if part.written + len(chunk) > self.options.max_bytes:
                    raise self._too_large(host)
                try:
                    _write_all(part.fh, chunk)
                except OSError as exc:
                    raise _WriteFailed(exc) from exc
                part.hasher.update(chunk)
                part.written += len(chunk)
                if self.on_bytes is not None:
                    self.on_bytes(part.written, total)
        except httpx.TimeoutException:
            raise _Retry("timed out while reading the image") from None
        except httpx.TransportError as exc:
            if total is None:
                part.resumable = False
            raise _Retry(_describe(exc)) from None
        except httpx.DecodingError:
            # Sent gzip/deflate despite "Accept-Encoding: identity", and it does not decode:
            # what was written is not the image, so the next attempt starts from zero.
            part.resumable = False
            raise _Retry("the body did not decode (a bad Content-Encoding)") from None
        if total is not None and part.written < total:
            raise _Retry(f"body shorter than its length ({part.written} of {total} bytes)")
        if total is not None and part.written > total:
            part.resumable = False
            raise _Retry(f"body longer than its length ({part.written} of {total} bytes)")

    def _too_large(self, host: str) -> DownloadError:
        limit = self.options.max_bytes
        return DownloadError(
            f"the image from {host} is larger than the {_human_bytes(limit)} limit; aborted",
            hints=_recover_hints(self.task),
        )

    # -- metadata ---------------------------------------------------------------------------

    def _embed(self, part: _Part, verified: _Verified) -> None:
        if verified.format == "webp":
            self.notify("--embed-metadata: WebP is not supported; the image is saved unchanged")
            return
        text = json.dumps(_metadata(self.task), separators=(",", ":"), ensure_ascii=True)
        part.fh.seek(0)
        data = part.fh.read()
        if verified.format == "png":
            changed = _png_with_text(data, METADATA_KEY, text)
        else:
            changed = _jpeg_with_comment(data, text)
        if changed is None:
            self.notify("--embed-metadata: the metadata did not fit; the image is saved unchanged")
            return
        part.fh.seek(0)
        part.fh.truncate()
        _write_all(part.fh, changed)
        part.written = len(changed)
        part.hasher = hashlib.sha256(changed)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass


def _describe(exc: Exception) -> str:
    name = type(exc).__name__
    text = str(exc).strip()
    # httpx messages can quote the URL; keep only a short reason without a query string.
    if not text or "?" in text or len(text) > 120:
        return f"connection problem ({name})"
    return f"{text} ({name})"


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return None
    return seconds


def _int_header(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _human_bytes(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):g} MB"
    return f"{count} bytes"


def _looks_like_markup(chunk: bytes) -> bool:
    head = chunk[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


def _verify(part: _Part) -> _Verified:
    """Magic bytes, then Pillow: the format, the size, and that the image is whole."""
    part.fh.flush()
    part.fh.seek(0)
    head = part.fh.read(16)
    if _looks_like_markup(head):
        raise _Expired("an HTML/XML page instead of an image")
    kind = sniff_image_type(head)
    if kind is None:
        if len(head) < 12:
            part.resumable = False
            raise _Retry(f"the body was cut short ({part.written} bytes)")
        raise DownloadError("the downloaded file is not a PNG, JPEG or WebP image")
    from PIL import Image

    try:
        with Image.open(part.path) as image:
            pil_format = image.format or ""
            width, height = image.size
            image.verify()
        if part.total is None:
            # Without a declared length only a full decode shows that nothing is missing.
            with Image.open(part.path) as image:
                image.load()
    except Image.DecompressionBombError:
        raise DownloadError("the image is too large to decode safely") from None
    except Exception as exc:  # any decoder failure means a damaged image
        part.resumable = False
        raise _Retry(f"the image does not decode ({type(exc).__name__}: cut short?)") from None
    actual = PIL_FORMATS.get(pil_format)
    if actual != kind:
        raise DownloadError(f"the downloaded file is not a PNG, JPEG or WebP image ({pil_format})")
    return _Verified(format=actual, width=width, height=height)


def _png_with_text(data: bytes, keyword: str, text: str) -> bytes | None:
    """The PNG with a tEXt chunk inserted after IHDR (no re-encoding)."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None
    (ihdr_length,) = struct.unpack(">I", data[8:12])
    position = 8 + 12 + ihdr_length
    body = keyword.encode("latin-1") + b"\x00" + text.encode("latin-1")
    crc = zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", crc)
    return data[:position] + chunk + data[position:]


def _jpeg_with_comment(data: bytes, text: str) -> bytes | None:
    """The JPEG with a COM segment inserted after the APPn segments (no re-encoding)."""
    payload = text.encode("utf-8")
    if len(payload) > 0xFFFF - 2 or data[:2] != b"\xff\xd8":
        return None
    position = 2
    # JFIF/Exif readers expect their APPn segment right after SOI, so the comment goes after.
    while (
        position + 4 <= len(data) and data[position] == 0xFF and 0xE0 <= data[position + 1] <= 0xEF
    ):
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        position += 2 + length
    segment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
    return data[:position] + segment + data[position:]


# --------------------------------------------------------------------------- sidecars


def _scrub(value: Any) -> Any:
    """A copy of a JSON value with anything that looks like a credential removed."""
    if isinstance(value, dict):
        return {
            key: ("[redacted]" if SECRET_KEY_RE.search(str(key)) else _scrub(item))
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_scrub(item) for item in value]
    return value


def _metadata(task: Task) -> dict[str, Any]:
    request = task.request or {}
    seed = request.get("seed")
    if seed is None:
        seed = task.extra.get("seed")
    return {
        "tool": f"flux2 {__version__}",
        "task_id": task.task_id,
        "provider": task.provider,
        "model": task.model,
        "seed": seed,
        "created_at": format_time(task.created_at),
        "request": _scrub(task.request),
    }


def write_sidecar(image_path: Path, task: Task, image: ImageResult) -> Path:
    """Write the metadata sidecar beside an image (same name, ``.json``), atomically.

    It holds the request, provider, model, task id, seed, times, the source URL without its
    signed query string, the checksum, size and format, and the cost; never a key.
    """
    path = Path(image_path).with_suffix(".json")
    data = {
        **_metadata(task),
        "downloaded_at": format_time(utc_now()),
        "source_url": public_url(image.url),
        "file": Path(image_path).name,
        "sha256": image.sha256,
        "bytes": image.bytes,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "cost": task.cost.to_json() if task.cost else None,
    }
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    temp = path.with_name(
        f".{_cap_bytes(path.stem, TEMP_STEM_BYTES)}.json.part-{secrets.token_hex(4)}"
    )
    try:
        with open(temp, "x", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    finally:
        _unlink_quietly(temp)
    return path
