"""Submit, poll, wait and download: a provider, the client and the ledger driven together.

The sleep and the clock come from the Context, so tests never wait for real.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flux2_cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    AuthError,
    BadRequestError,
    CreditsError,
    DeadlineError,
    DownloadError,
    Flux2Error,
    InterruptedError_,
    InterruptSignal,
    NotFoundError,
    RateLimitError,
    TaskFailedError,
    TerminatedSignal,
    UrlExpiredError,
    WaitTimeoutError,
    resume_hints,
)
from flux2_cli.providers import parsing
from flux2_cli.providers.base import idempotency_key
from flux2_cli.request import GenerationRequest
from flux2_cli.task import Task, TaskError, TaskStatus, utc_now

if TYPE_CHECKING:
    from datetime import datetime

    from flux2_cli.context import Context
    from flux2_cli.download import DownloadOptions
    from flux2_cli.providers.base import HttpCall, Provider

POLL_GROWTH = 1.5
POLL_CAP_S = 10.0
POLL_JITTER = 0.1
NOT_FOUND_CODE = parsing.NOT_FOUND_CODE  # the provider does not know the task (404, BFL word)
GEN_INTENT_PREFIX = "gen:"
# Task.extra flag: made with `gen --no-download` (URLs wanted, not files).
NO_DOWNLOAD = "no_download"

OnUpdate = Callable[[Task], None]


def poll_intervals(first: float, rng: random.Random | None = None) -> Iterator[float]:
    """Intervals growing from ``first`` by 1.5× to a 10 s cap, each with ±10 % jitter."""
    rng = rng or random.Random()
    interval = max(0.05, first)
    while True:
        yield interval * rng.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
        interval = min(POLL_CAP_S, interval * POLL_GROWTH)


def variants(request: GenerationRequest, count: int) -> list[GenerationRequest]:
    """``-n N``: N copies of one request, with seeds S, S+1, … when a seed S was given (the
    provider then took seeds, or validation refused it); else the provider draws each seed."""
    if count <= 1:
        return [request]
    if request.seed is None:
        return [request] * count
    return [replace(request, seed=request.seed + index) for index in range(count)]


def estimate_total(
    provider: Provider, requests: list[GenerationRequest]
) -> tuple[float, float, int]:
    """Estimated credits and dollars of ``requests``, and how many have no published price."""
    credits = usd = 0.0
    unpriced = 0
    for request in requests:
        cost = provider.estimate_cost(request)
        if cost is None or cost.credits is None:
            unpriced += 1
            continue
        credits += cost.credits
        usd += cost.usd or 0.0
    return credits, usd, unpriced


def prepare_request(provider: Provider, request: GenerationRequest) -> GenerationRequest:
    """The request as sent: local reference files inlined where the provider takes them."""
    if not request.refs:
        return request
    from flux2_cli.refs import resolve_refs

    return resolve_refs(request, provider.capabilities)


def create_call(
    ctx: Context, provider: Provider, request: GenerationRequest, *, fingerprint: str | None
) -> HttpCall:
    """The paid create call as sent (``--dry-run`` shows this one too): local references
    inlined, and an idempotency key where the provider replays duplicates (APIMart).

    The same batch entry and attempt give the same key, so a re-run after a lost answer is a
    replay; a lone ``gen`` is a new attempt each time (two runs, two images).
    """
    call = provider.build_create(prepare_request(provider, request))
    if not provider.capabilities.idempotent_create:
        return call
    if fingerprint is not None:
        attempt: int | str = ctx.ledger().attempts(fingerprint)
        keyed = fingerprint
    else:
        import uuid

        attempt = uuid.uuid4().hex
        keyed = request.fingerprint(provider.capabilities.id, provider.model_for(request))
    return provider.with_idempotency_key(call, idempotency_key(keyed, attempt))


def submit(
    ctx: Context,
    provider: Provider,
    request: GenerationRequest,
    *,
    fingerprint: str | None = None,
    batch_key: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Task:
    """Send the one paid create call and record the task before any polling.

    ``extra`` is kept with the task in the same ledger write (batch: the entry's output
    intent, so a later ``flux2 download`` saves where the batch would).
    """
    base_url = ctx.base_url(provider)
    # Local references are read (and refused, exit 2) before the key is needed (exit 3).
    call = create_call(ctx, provider, request, fingerprint=fingerprint)
    client = ctx.client(provider, base_url)
    from flux2_cli.ledger import LedgerError, TaskUnrecordedError

    # The intent is written before the paid POST, for gen as for batch: a ledger that cannot
    # be written means nothing is sent. gen's intents are kept apart from batch fingerprints.
    intent_key = fingerprint or GEN_INTENT_PREFIX + request.fingerprint(
        provider.capabilities.id, provider.model_for(request)
    )
    try:
        ledger = ctx.ledger()
        intent = ledger.record_intent(
            intent_key,
            provider=provider.capabilities.id,
            base_url=base_url,
            request=request.to_json(),
            batch_key=batch_key,
        )
    except LedgerError as exc:
        raise LedgerError(f"{exc.message} Nothing was sent.", hints=exc.hints) from exc
    try:
        try:
            body = client.send(call)
        except NotFoundError:
            # A 404 on the create is an endpoint (BFL: a model) that does not exist, not a
            # task that expired.
            raise provider.create_not_found(request, call) from None
    except (BadRequestError, AuthError, CreditsError, RateLimitError):
        with contextlib.suppress(LedgerError):
            ledger.close_intent(intent)  # refused outright: no task was created
        raise
    task = provider.parse_create(body, request, base_url)
    if task.cost is None:
        task = task.evolve(cost=provider.estimate_cost(request))
    if extra:
        task = task.evolve(extra={**task.extra, **extra})
    try:
        ledger.record_submit(
            task,
            profile=ctx.settings.profile,
            fingerprint=fingerprint,
            batch_key=batch_key,
            intent_id=intent,
        )
    except LedgerError as exc:
        raise TaskUnrecordedError(
            f"task {task.task_id} was created ({provider.capabilities.id}) but could not be "
            f"recorded: {exc.message}",
            task=task,
            hints=[*unrecorded_hints(ctx, task), *exc.hints],
        ) from exc
    return task


def unrecorded_hints(ctx: Context, task: Task) -> list[str]:
    """How to pick up a task the ledger does not know: the flags that find it again."""
    if ctx.sandbox:
        flags = " --sandbox"
    else:
        flags = f" --provider {task.provider}"
        if ctx.cli_base_url and task.base_url:
            flags += f" --base-url {task.base_url}"
    return [
        f"The task {task.task_id} is paid for and running at the provider; nothing is lost. "
        "Once the ledger can be written, pick it up with:",
        f"  flux2 status {task.task_id} --wait{flags}",
        f"  flux2 download {task.task_id}{flags}",
    ]


def refresh(
    ctx: Context, task: Task, *, deadline: float | None = None, grace: bool | None = None
) -> Task:
    """One status look-up; a 404 marks the task failed ("not found or expired").

    ``deadline`` (on ``ctx.clock``) bounds the look-up whole, slow answers included.
    With ``grace`` (a young task, see :func:`not_found_grace`) a "not found" answer leaves the
    task as it was: the provider may not have it everywhere yet. ``None``: decided from the
    task's age (batch's own polling loops); ``wait`` passes it on its own clock.
    """
    if grace is None:
        grace = _grace_left(ctx, task) > 0
    provider = ctx.provider(task.provider)
    base_url = task.base_url or ctx.base_url(provider)
    client = ctx.client(provider, base_url)
    try:
        body = client.send(provider.build_poll(task), deadline=deadline)
        updated = provider.parse_poll(body, task)
    except NotFoundError as exc:
        updated = task.evolve(
            status=TaskStatus.FAILED,
            raw_status="not found",
            error=TaskError(code=NOT_FOUND_CODE, message=exc.message),
        )
        if grace:
            return task
        if ctx.ledger().get(task.task_id) is None:
            return updated  # a mistyped id is not a task: keep it out of `flux2 history`
    if grace and updated.error is not None and updated.error.code == NOT_FOUND_CODE:
        return task
    if updated.cost is None and task.request:
        updated = updated.evolve(
            cost=provider.estimate_cost(GenerationRequest.from_json(task.request))
        )
    ctx.ledger().update(updated)
    return updated


def wait(
    ctx: Context,
    task: Task,
    *,
    timeout: float,
    on_update: OnUpdate | None = None,
    poll_first: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> Task:
    """Poll until a final state; WaitTimeoutError after ``timeout``, TaskFailedError on failure.

    ``sleep`` replaces the context's between polls (batch wakes its waiters early with it).
    """
    pause = sleep or ctx.sleep
    deadline = ctx.clock() + timeout
    intervals = poll_intervals(ctx.settings.poll_interval)
    grace_until = not_found_grace(ctx, task)
    try:
        if poll_first and not task.status.is_final:
            task = refresh(ctx, task, deadline=deadline, grace=ctx.clock() < grace_until)
            if on_update:
                on_update(task)
        while not task.status.is_final:
            remaining = deadline - ctx.clock()
            if remaining <= 0:
                raise _timed_out(task, timeout)
            pause(min(next(intervals), remaining))
            task = refresh(ctx, task, deadline=deadline, grace=ctx.clock() < grace_until)
            if on_update:
                on_update(task)
    except (TaskFailedError, WaitTimeoutError):
        raise
    except DeadlineError:
        # A status answer that dripped or never ended ran into --timeout: the wait timed out.
        raise _timed_out(task, timeout) from None
    except Flux2Error as exc:
        # A poll that kept failing (503 storm, network down) does not end the paid task:
        # say which task it was and how to pick it up again, even under --quiet.
        if not any(task.task_id in hint for hint in exc.hints):
            exc.hints.extend(resume_hints(task.task_id))
        raise
    raise_if_failed(task)
    return task


def not_found_grace(ctx: Context, task: Task) -> float:
    """Until when (on ``ctx.clock``) a "not found" answer about ``task`` is polled through.

    Right after a submit a task may not have reached every host yet (BFL's "Task not found",
    especially with a webhook and no polling_url; wire-contracts.md, "Updates"): the
    provider's grace period counts from the task's creation. An old task, or one made
    elsewhere with no known creation time, gets none.
    """
    left = _grace_left(ctx, task)
    return ctx.clock() + left if left > 0 else float("-inf")


def _grace_left(ctx: Context, task: Task) -> float:
    """Seconds of the provider's "not found" grace period left in the task's life."""
    grace = ctx.provider(task.provider).capabilities.not_found_grace_s
    if grace <= 0 or task.created_at is None:
        return 0.0
    age = (utc_now() - task.created_at).total_seconds()
    return grace - age if 0 <= age < grace else 0.0


def as_seen_now(task: Task, now: datetime | None = None) -> Task:
    """A succeeded task whose image URLs are past their expiry is shown as ``expired``."""
    if (
        task.status is TaskStatus.SUCCEEDED
        and task.expires_at is not None
        and task.expires_at <= (now or utc_now())
    ):
        return task.evolve(status=TaskStatus.EXPIRED)
    return task


def raise_if_failed(task: Task) -> None:
    """TaskFailedError (exit 5) for a failed task, with the provider's code and reason."""
    if task.status is not TaskStatus.FAILED:
        return
    error = task.error or TaskError(code=task.raw_status, message="the task failed")
    code = f" [{error.code}]" if error.code else ""
    if error.code == NOT_FOUND_CODE:
        text = f"task {task.task_id}: task not found or expired"
    else:
        text = f"task {task.task_id} failed{code}: {error.message}"
    raise TaskFailedError(text, task_id=task.task_id, code=error.code, task=task)


def _timed_out(task: Task, timeout: float) -> WaitTimeoutError:
    if task.unknown_status:
        state = f"the provider kept answering an unknown status {task.unknown_status!r}"
    else:
        state = f"last status {task.status.value}"
    return WaitTimeoutError(
        f"timed out after {timeout:g} s waiting for task {task.task_id} ({state}).",
        task_id=task.task_id,
        hints=resume_hints(task.task_id),
        task=task,
    )


def find_task(ctx: Context, task_id: str) -> Task:
    """The task a TASK_ID (id, short id or `last`) names in the ledger; else a bare task for
    the configured provider."""
    entry = ctx.ledger().resolve(task_id)
    if entry is not None:
        task = entry.task
        if ctx.sandbox and not task.base_url:
            task = task.evolve(base_url=ctx.base_url(ctx.provider(task.provider)))
        elif ctx.cli_base_url and not ctx.sandbox:
            # An explicit --base-url wins over the saved one (a moved server, a new proxy).
            task = task.evolve(base_url=ctx.base_url(ctx.provider(task.provider)))
        return task
    provider = ctx.provider()
    return Task(
        task_id=task_id,
        provider=provider.capabilities.id,
        status=TaskStatus.QUEUED,
        base_url=ctx.base_url(provider),
    )


def download(ctx: Context, task: Task, options: DownloadOptions) -> Task:
    """Fetch every image of a finished task (one fresh look-up allowed for new URLs)."""
    from flux2_cli.download import DOWNLOAD_BUDGET_S, download_images

    if task.status is TaskStatus.EXPIRED:
        from flux2_cli.errors import gone_hints
        from flux2_cli.task import regenerate_command

        raise UrlExpiredError(
            f"the image URLs of task {task.task_id} have expired.",
            hints=gone_hints(task.task_id, regenerate_command(task)),
        )
    if not task.images:
        raise DownloadError(f"task {task.task_id} has no images to download.")
    if options.budget == DOWNLOAD_BUDGET_S:
        # --timeout bounds each image's download too, retries and slow reads included.
        options = replace(options, budget=ctx.settings.timeout)
    try:
        done = download_images(
            task,
            options,
            core=ctx.http(),
            refresh=lambda: refresh(ctx, task),
            notify=ctx.output.info,
            log=ctx.output.debug if ctx.output.verbose else None,
        )
    except DownloadError as exc:
        hint = f"Try again later with: flux2 download {task.task_id}"
        if not isinstance(exc, UrlExpiredError) and not any(task.task_id in h for h in exc.hints):
            exc.hints.append(hint)
        raise
    ctx.ledger().mark_downloaded(done)
    return done


def fetch_copy(ctx: Context, task: Task, folder: str) -> Task:
    """A finished task's images saved into ``folder`` only to be looked at (``status --wait
    --preview``): no sidecar, and the ledger does not count them as downloaded."""
    from flux2_cli.download import DownloadOptions, download_images

    return download_images(
        task,
        DownloadOptions(output=folder + "/", sidecar=False, budget=ctx.settings.timeout),
        core=ctx.http(),
        log=ctx.output.debug if ctx.output.verbose else None,
    )


def pending_downloads(
    ctx: Context, *, warn: Callable[[str], None], include_no_download: bool = False
) -> tuple[list[Task], list[Task]]:
    """(finished tasks to download, tasks still running), after one fresh look at each
    unfinished task.

    A task submitted with ``gen --no-wait`` stays "running" in the ledger until something
    polls it; one look-up each (no waiting) lets ``download --pending`` find the ones done
    since. A look-up that fails is a warning; the others go on. Tasks made with
    ``gen --no-download`` are left out unless ``include_no_download``; tasks whose images are
    gone (:meth:`Ledger.mark_gone`) always are.
    """
    ledger = ctx.ledger()
    running: list[Task] = []
    for entry in ledger.history(limit=None, pending_only=True):
        if entry.task.status.is_final:
            continue
        try:
            with interruptible(entry.task.task_id):
                task = refresh(ctx, entry.task)
        except Flux2Error as exc:
            if exc.exit_code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
                raise
            warn(f"{entry.task.task_id}: could not look it up: {exc.message}")
            continue
        if not task.status.is_final:
            running.append(task)
    ready = [
        entry.task
        for entry in ledger.downloadable()
        if include_no_download or not entry.task.extra.get(NO_DOWNLOAD)
    ]
    return ready, running


@contextmanager
def interruptible(task_id: str | None) -> Iterator[None]:
    """Ctrl-C (130) and SIGTERM (143) become an error that names the task and how to resume."""
    try:
        yield
    except (KeyboardInterrupt, InterruptSignal):
        raise _interrupted(task_id, EXIT_INTERRUPTED, "interrupted") from None
    except TerminatedSignal:
        raise _interrupted(task_id, EXIT_TERMINATED, "terminated") from None


def _interrupted(task_id: str | None, code: int, what: str) -> InterruptedError_:
    if task_id is None:
        return InterruptedError_(
            f"{what} during submission; the outcome is unknown (check `flux2 history`).",
            exit_code=code,
        )
    return InterruptedError_(f"{what}; task {task_id}", exit_code=code, hints=resume_hints(task_id))
