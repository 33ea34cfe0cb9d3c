"""Saving a finished task's images: where they go, the fetch-verify-place loop, recovery hints.

The jobs live beside it: names in ``naming.py``, the HTTP GET in ``transfer.py``, the checks
in ``verify.py``, sidecars and embedded metadata in ``metadata.py``, the temp file and the
rename in ``atomic.py``. The HTTP core is the caller's (one per process), never built here
unless none is given.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from flux2_cli.atomic import AtomicFile, file_sha256, remove_stale_temps
from flux2_cli.client import DeadlinePassed, HttpCore, TooLongToWait
from flux2_cli.errors import DownloadError, UrlExpiredError, UsageError, gone_hints
from flux2_cli.naming import (
    DEFAULT_TEMPLATE,
    EXTENSIONS,
    numbered,
    render_name,
    unique_name,
    validate_template,
    with_extension,
)
from flux2_cli.task import ImageResult, Task, format_time, regenerate_command
from flux2_cli.transfer import (
    Expired,
    Part,
    Retry,
    Transfer,
    WriteFailed,
    refused_scheme,
    url_host,
)
from flux2_cli.verify import Incomplete, MarkupPage, Verified, verify_image

if TYPE_CHECKING:
    import httpx

MAX_IMAGE_BYTES = 200 * 1024 * 1024
READ_TIMEOUT_S = 60.0
# Without a budget from the caller (``--timeout``), one image may take this long in all.
DOWNLOAD_BUDGET_S = 600.0
# How many NAME, NAME-1, NAME-2 ... are compared with a new image before it gets a new name.
MAX_TWINS_CHECKED = 100

__all__ = [
    "DownloadOptions",
    "check_destination",
    "download_images",
    "validate_template",
]


@dataclass(frozen=True)
class DownloadOptions:
    """Where and how result images are saved (the ``gen``/``download`` output options).

    ``budget``: the seconds one image may take in all, retries and slow reads included.
    """

    output: str | None = None
    name_template: str = DEFAULT_TEMPLATE
    overwrite: bool = False
    sidecar: bool = True
    embed_metadata: bool = False
    max_bytes: int = MAX_IMAGE_BYTES
    timeout: float = READ_TIMEOUT_S
    retries: int = 4
    budget: float = DOWNLOAD_BUDGET_S


@dataclass(frozen=True)
class _Target:
    stdout: bool
    folder: Path
    file_name: str | None  # the user's own file name, when -o named one
    # Folders made for this download, deepest first: removed again if no file lands.
    created: tuple[Path, ...] = ()


def download_images(
    task: Task,
    options: DownloadOptions,
    *,
    core: HttpCore | None = None,
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
    Download requests carry no credentials. ``clock`` gives the time for ``{date}``/``{time}``;
    ``core`` is the process's HTTP core (one is made for this call when none is given, with
    ``transport`` and ``sleep``).
    """
    if not task.images:
        raise DownloadError(
            f"task {task.task_id} has no images to download",
            hints=[f"  flux2 status {task.task_id}"],
        )
    validate_template(options.name_template)
    target = _resolve_target(options.output, task)
    now = clock() if clock is not None else datetime.now().astimezone()
    own = core is None
    http = core if core is not None else HttpCore(transport=transport, sleep=sleep)
    try:
        downloader = _Downloader(
            core=http,
            task=task,
            options=options,
            target=target,
            now=now,
            refresh=refresh,
            notify=notify,
            stdout=stdout,
            on_bytes=on_bytes,
            log=log,
        )
        return downloader.run()
    except BaseException:
        _remove_empty_folders(target.created)
        raise
    finally:
        if own:
            http.close()


def _remove_empty_folders(folders: tuple[Path, ...]) -> None:
    """Undo the folders a failed download made (``-o new/`` for an expired task); a folder
    that received a file, or someone else's, is not empty and stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


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
            hints=recover_hints(task),
        )
    return _Target(stdout=False, folder=parent, file_name=path.name)


def check_destination(output: str | None, label: str = "-o") -> None:
    """Before a task is paid for: UsageError when ``-o`` cannot work (a missing or read-only
    folder), so that a typo costs nothing. A folder that vanishes later is still exit 8.
    ``label`` names where ``output`` came from (``-o``, ``config key output_dir``)."""
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
                f"{label} {output}: the folder {folder} does not exist; create it, or end "
                f"{label} with / to have flux2 create it."
            )
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{label} {output}: {folder} is not a folder flux2 can write to.")


def recover_hints(task: Task) -> list[str]:
    """How to fetch a paid task's images again: its id and ``flux2 download ID``."""
    return [
        f"The task {task.task_id} succeeded; its images stay at the provider until the URLs "
        "expire. Fetch them again with:",
        f"  flux2 download {task.task_id} -o FOLDER",
    ]


def _cannot_write(path: Path | str, exc: OSError, task: Task) -> DownloadError:
    reason = exc.strerror or str(exc)
    return DownloadError(f"cannot write {path}: {reason}", hints=recover_hints(task))


class _Downloader:
    """The state of one ``download_images`` call: the refresh budget, the names."""

    def __init__(
        self,
        *,
        core: HttpCore,
        task: Task,
        options: DownloadOptions,
        target: _Target,
        now: datetime,
        refresh: Callable[[], Task] | None,
        notify: Callable[[str], None],
        stdout: BinaryIO | None,
        on_bytes: Callable[[int, int | None], None] | None,
        log: Callable[[str], None] | None,
    ) -> None:
        self.core = core
        self.task = task
        self.options = options
        self.target = target
        self.now = now
        self.refresh = refresh
        self.refreshed = False
        self.notify = notify
        self.stdout = stdout
        self.urls = [image.url for image in task.images]
        self.transfer = Transfer(
            core,
            max_bytes=options.max_bytes,
            read_timeout=options.timeout,
            hints=lambda: recover_hints(self.task),
            on_bytes=on_bytes,
            log=log,
        )

    def run(self) -> Task:
        count = len(self.task.images)
        if not self.target.stdout:
            # Debris of killed runs (their hidden temp files), by name and age only.
            remove_stale_temps(self.target.folder)
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
        scheme = self._refused(index)
        if scheme is not None:
            raise self.transfer.bad_scheme(scheme)
        folder = Path(tempfile.gettempdir()) if to_stdout else self.target.folder
        provisional = self._name(index, count, "part").rsplit(".", 1)[0]
        try:
            temp = AtomicFile(folder, provisional)
        except OSError as exc:
            raise _cannot_write(folder, exc, self.task) from None
        with temp:
            part = Part(file=temp)
            try:
                verified = self._fetch(index, part)
                if self.options.embed_metadata:
                    self._embed(part, verified)
                temp.sync()
            except WriteFailed as failure:
                raise _cannot_write(temp.path.parent, failure.error, self.task) from None
            except OSError as exc:
                raise _cannot_write(temp.path.parent, exc, self.task) from None
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
                self._to_stdout(temp.fh)
                return replace(image, path="-")
            destination = self._destination(index, count, EXTENSIONS[verified.format])
            final = self._place(temp, destination, image.sha256 or "")
        image = replace(image, path=str(final))
        if self.options.sidecar:
            from flux2_cli.metadata import write_sidecar

            try:
                write_sidecar(final, self.task, image)
            except OSError as exc:
                self.notify(f"saved {final}, but could not write its sidecar: {exc.strerror}")
        return image

    def _refused(self, index: int) -> str | None:
        return refused_scheme(self.urls[index])

    def _name(self, index: int, count: int, ext: str) -> str:
        name = self.target.file_name
        if name is None or (self.target.stdout and index > 0):
            return render_name(self.options.name_template, self.task, index, count, ext, self.now)
        return name

    def _destination(self, index: int, count: int, ext: str) -> Path:
        name = self.target.file_name
        if name is None or self.target.stdout:
            return self.target.folder / self._name(index, count, ext)
        fixed, changed = with_extension(name, ext)
        if changed:
            self.notify(f"the image is {ext.upper()}, not {Path(name).suffix}: saving it as .{ext}")
        path = Path(fixed)
        if count > 1:
            path = path.with_name(f"{path.stem}-{index + 1}{path.suffix}")
        return self.target.folder / path

    def _place(self, temp: AtomicFile, destination: Path, sha256: str) -> Path:
        """Rename the verified temp file to ``destination`` or, on a clash, ``NAME-1``, ``-2``.

        A file already there with the same bytes under the wanted name (a second
        ``download`` of the same task, a batch re-run after a kill) is reused, not copied.
        """
        try:
            if self.options.overwrite:
                return temp.commit(destination)
            same = self._same_file(destination, sha256)
            if same is not None:
                temp.discard()
                return same
            while True:
                candidate = unique_name(destination, exists=self._taken)
                if candidate is None:
                    raise DownloadError(
                        f"cannot write {destination}: too many files with that name",
                        hints=recover_hints(self.task),
                    )
                # O_EXCL: two runs racing for one name each get their own.
                if temp.commit_new(candidate):
                    break
        except OSError as exc:
            raise _cannot_write(destination, exc, self.task) from None
        if candidate != destination:
            self.notify(f"{destination} exists; saved as {candidate.name}")
        return candidate

    def _taken(self, path: Path) -> bool:
        # The sidecar shares the name: an existing NAME.json (another image's sidecar, say
        # fox.json of fox.jpg) makes the name taken too, or it would be replaced.
        return os.path.lexists(path) or (
            self.options.sidecar and os.path.lexists(path.with_suffix(".json"))
        )

    def _same_file(self, destination: Path, sha256: str) -> Path | None:
        """``destination`` or one of its ``-N`` twins already holding exactly these bytes."""
        for number in range(MAX_TWINS_CHECKED):
            candidate = numbered(destination, number)
            if not os.path.lexists(candidate):
                return None
            regular = candidate.is_file() and not candidate.is_symlink()
            if regular and file_sha256(candidate) == sha256:
                return candidate
        return None

    def _to_stdout(self, fh: BinaryIO) -> None:
        out = self.stdout if self.stdout is not None else sys.stdout.buffer
        fh.seek(0)
        try:
            shutil.copyfileobj(fh, out)
            out.flush()
        except OSError as exc:
            raise _cannot_write("stdout", exc, self.task) from None

    # -- fetching ---------------------------------------------------------------------------

    def _fetch(self, index: int, part: Part) -> Verified:
        """Attempts with backoff until the image is complete and verified, or the budget is out."""
        core = self.core
        deadline = core.deadline(self.options.budget)
        failures = 0
        while True:
            url = self.urls[index]
            try:
                self.transfer.fetch(url, part, deadline)
                return self._verify(part)
            except DeadlinePassed:
                raise self._out_of_time(index, url) from None
            except Retry as exc:
                failures += 1
                if failures > self.options.retries:
                    raise DownloadError(
                        f"could not download image {index + 1} of task {self.task.task_id} "
                        f"from {url_host(url)}: {exc.reason} "
                        f"(after {failures} attempt{'s' if failures > 1 else ''})",
                        hints=recover_hints(self.task),
                    ) from None
                try:
                    delay = core.policy.wait(failures, exc.retry_after, core.rng)
                except TooLongToWait as wait:
                    raise DownloadError(
                        f"{url_host(url)} asks to wait {wait.seconds:g} s before the image of "
                        f"task {self.task.task_id}; that is longer than flux2 waits",
                        hints=recover_hints(self.task),
                    ) from None
                self.notify(f"download from {url_host(url)} failed ({exc.reason}); retrying")
                try:
                    core.pause(delay, deadline)
                except DeadlinePassed:
                    raise self._out_of_time(index, url) from None
            except Expired as exc:
                new_url = self._refreshed_url(index)
                if new_url is None or new_url == url:
                    if exc.page:
                        raise self._page_instead(url, exc.reason) from None
                    raise self._expired(url, exc.reason) from None
                scheme = self._refused(index)
                if scheme is not None:
                    raise self.transfer.bad_scheme(scheme) from None
                part.reset()
                self.notify(f"the image URL was refused ({exc.reason}); using a fresh one")

    def _verify(self, part: Part) -> Verified:
        try:
            return verify_image(part.fh, part.file.path, length_known=part.total is not None)
        except Incomplete as exc:
            part.resumable = False
            raise Retry(exc.reason) from None
        except MarkupPage as exc:
            raise Expired.of(exc) from None

    def _out_of_time(self, index: int, url: str) -> DownloadError:
        return DownloadError(
            f"could not download image {index + 1} of task {self.task.task_id} from "
            f"{url_host(url)} within {self.options.budget:g} s (the server is too slow)",
            hints=recover_hints(self.task),
        )

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
            f"image URL expired ({when}): {url_host(url)} answered {reason}",
            hints=gone_hints(self.task.task_id, regenerate_command(self.task)),
        )

    def _page_instead(self, url: str, what: str) -> DownloadError:
        return DownloadError(
            f"{url_host(url)} answered {what} instead of the image of task {self.task.task_id}",
            hints=[
                "Something answered in the image's place: a proxy, a captive portal (hotel or "
                "airport Wi-Fi), or the host's error page. The image is not saved; it stays at "
                "the provider until its URL expires. Once the network is right:",
                f"  flux2 download {self.task.task_id}",
            ],
        )

    # -- metadata ---------------------------------------------------------------------------

    def _embed(self, part: Part, verified: Verified) -> None:
        from flux2_cli.metadata import embedded

        if verified.format == "webp":
            self.notify("--embed-metadata: WebP is not supported; the image is saved unchanged")
            return
        part.fh.seek(0)
        changed = embedded(
            part.fh.read(), verified.format, self.task, verified.width, verified.height
        )
        if changed is None:
            self.notify("--embed-metadata: the metadata did not fit; the image is saved unchanged")
            return
        part.replace_bytes(changed)
