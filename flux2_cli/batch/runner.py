"""Running a batch: workers, the shared 429 gate, learned task durations, outcomes."""

from __future__ import annotations

import collections
import functools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux2_cli.batch.decide import Action, Decision
from flux2_cli.batch.lock import (
    FAILED,
    SUBMITTED,
    UNKNOWN,
    LockFile,
    error_record,
    lock_record,
    submitting_record,
    task_record,
)
from flux2_cli.batch.plan import PlannedEntry
from flux2_cli.errors import (
    EXIT_TASK_FAILED,
    ApiError,
    AuthError,
    BadRequestError,
    CreditsError,
    DeadlineError,
    DownloadError,
    Flux2Error,
    RateLimitError,
    SubmissionUnknownError,
    TaskFailedError,
    UrlExpiredError,
    WaitTimeoutError,
    resume_hints,
)
from flux2_cli.task import Task, TaskStatus

if TYPE_CHECKING:
    from flux2_cli.build import Layer
    from flux2_cli.context import Context
    from flux2_cli.providers.base import Provider

# A 429 that got past the client's own retries pauses every worker; the pause comes from the
# HTTP core's one retry policy (Retry-After honoured, full jitter, caps), continuing its series.
RATE_MAX_ROUNDS = 6
EVENT_POLL_S = 0.2
# Look-ups near the learned task duration: every 2.5 % of it (at least 0.1 s), up to twice it.
FINE_STEP_FRACTION = 0.025
FINE_STEP_MIN_S = 0.1
FINE_WINDOW = 2.0
# A task still running at its first look-up puts the run's aim this share of a fine step after
# that look-up; a task already finished there pulls it down by 1/(AIM_FALL_TASKS x window) of
# that, so the aim settles just after the run's tasks end and only about one wave in ten pays a
# second look-up. The fall doubles every AIM_DOUBLING windows of tasks all found finished at
# once, so an aim left high by slower tasks comes back down within a few dozen waves.
AIM_RISE_SHARE = 0.25
AIM_FALL_TASKS = 8
AIM_DOUBLING = 4
# Until a duration is learned, one task of the run is polled at this share of its elapsed time
# (at least SENTINEL_MIN_S, at most the usual cap): the first wave then learns at once.
SENTINEL_FRACTION = 0.1
SENTINEL_MIN_S = 0.25
SENTINEL_MAX_S = 10.0
OUTCOME_UNKNOWN = "outcome_unknown"
# After SIGTERM or Ctrl-C, POSTs already sent get this long (real time) for their answer to be
# recorded: a CI runner gives about ten seconds between SIGTERM and SIGKILL.
STOP_GRACE_S = 5.0


class _Learned(Exception):
    """Raised inside a waiting worker's sleep when the run has just learned the task duration."""


class _Stopped(BaseException):
    """Unwinds a worker when the run is stopped (Ctrl-C, SIGTERM, a fatal error)."""


class RateGate:
    """A shared "not before" moment: after a 429 every worker pauses before its next call."""

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._not_before = float("-inf")
        self.pauses = 0

    def slow_down(self, seconds: float) -> None:
        """Push the shared moment at least ``seconds`` into the future."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)
            self.pauses += 1

    def wait(self) -> None:
        """Sleep until the shared moment has passed."""
        while True:
            with self._lock:
                delay = self._not_before - self._clock()
            if delay <= 0:
                return
            self._sleep(delay)


def fine_step(expected: float) -> float:
    """The spacing of look-ups near a task duration of ``expected`` seconds."""
    return max(FINE_STEP_MIN_S, FINE_STEP_FRACTION * expected)


class Durations:
    """When to look first at a task of this run, refined by both bounds each look-up gives.

    A look-up ``t`` seconds after the submit that finds the task still running says it takes
    more than ``t``; one that finds it finished says at most ``t``. The run keeps one *aim*, the
    moment of a task's first look-up. A task still running there pushes the aim just past that
    lower bound; a task already finished there pulls it down a little (its upper bound), and the
    lowest recent "found finished" moment caps what a slow task's lower bound can add. Tasks of a
    batch take about as long as each other, so the aim settles just after most of them end: one
    look-up per task, a few hundredths of a second late.
    """

    def __init__(self, window: int) -> None:
        self._window = max(1, window)
        self._finished: collections.deque[float] = collections.deque(maxlen=self._window)
        self._aim: float | None = None
        self._streak = 0  # first look-ups in a row that found the task finished
        self._lock = threading.Lock()
        self.learned = threading.Event()  # set by the first finished task

    def learn(self, running_at: float | None, finished_at: float) -> None:
        """Record a finished task: its last moment seen running (if any) and first seen finished.

        Times are seconds after the task's submit.
        """
        with self._lock:
            self._finished.append(finished_at)
            ceiling = min(self._finished)
            if self._aim is None:
                if running_at is None:
                    self._aim = max(0.0, finished_at - fine_step(finished_at))
                else:
                    rise = AIM_RISE_SHARE * fine_step(running_at)
                    self._aim = min(running_at + rise, finished_at)
            elif running_at is not None:
                rise = AIM_RISE_SHARE * fine_step(self._aim)
                self._aim = max(self._aim, min(running_at + rise, ceiling))
        self.learned.set()

    def first_look(self, at: float, *, finished: bool) -> None:
        """Move the aim after a task's first look-up near it, made ``at`` seconds after submit."""
        with self._lock:
            if self._aim is None:  # pragma: no cover - first looks come after learning
                return
            rise = AIM_RISE_SHARE * fine_step(self._aim)
            if finished:
                doublings = min(8, self._streak // (AIM_DOUBLING * self._window))
                fall = rise * 2**doublings / (AIM_FALL_TASKS * self._window)
                self._aim = max(0.0, min(self._aim, at) - fall)
                self._streak += 1
            else:
                self._aim = max(self._aim, at + rise)
                self._streak = 0

    def ceiling(self) -> float | None:
        """The lowest recent "found finished" moment: some task of the run was done by then."""
        with self._lock:
            return min(self._finished) if self._finished else None

    def estimate(self) -> float | None:
        """The moment of a task's first look-up (seconds after submit), None before learning."""
        with self._lock:
            return self._aim


@dataclass(frozen=True)
class BatchOptions:
    """What ``flux2 batch`` was asked to do, besides the settings."""

    manifest: Path
    concurrency: int = 4
    dry_run: bool = False
    check: bool = False
    max_cost: float | None = None
    shard: tuple[int, int] | None = None
    resubmit_unknown: bool = False
    overwrite: bool = False
    sidecar: bool = True
    embed_metadata: bool = False
    report: Path | None = None  # --report PATH.html
    contact_sheet: Path | None = None  # --contact-sheet PATH.png
    # The command line's request options (the entries' defaults) and the manifest's format.
    flags: Layer | None = None
    manifest_kind: str | None = None
    fresh: bool = False  # never reuse a task made for another manifest
    rerun: str = ""  # the command that resumes this run, with the flags that matter
    junit: Path | None = None  # --junit PATH: a JUnit XML report, one test case per entry
    lock: Path | None = None  # --lock PATH: the lock file elsewhere than beside the manifest


@dataclass
class Outcome:
    """How one entry ended."""

    decision: Decision
    status: str  # done | reused | skipped | failed | timed_out | unknown
    task: Task | None = None
    error: Flux2Error | None = None
    submitted: bool = False

    @property
    def entry(self) -> PlannedEntry:
        """The entry."""
        return self.decision.entry

    def paths(self, lock: LockFile) -> list[str]:
        """The saved image paths."""
        if self.task is not None and self.task.images:
            return [image.path for image in self.task.images if image.path and image.path != "-"]
        record = self.decision.record or {}
        return [str(lock.resolve(str(item["path"]))) for item in record.get("outputs") or []]

    def to_json(self) -> dict[str, Any]:
        """The JSON line of ``--json``."""
        entry = self.entry
        return {
            "entry": entry.number,
            "name": entry.name,
            "key": entry.key,
            "line": entry.line,
            "status": self.status,
            "source": "submitted" if self.submitted else self.decision.source,
            "fingerprint": entry.fingerprint,
            "task": self.task.to_json() if self.task is not None else None,
            "error": error_json(self.error) if self.error is not None else None,
        }


@dataclass
class Summary:
    """The totals of a run."""

    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    reused: int = 0
    timed_out: int = 0
    unknown: int = 0
    credits: float = 0.0
    wall_seconds: float = 0.0
    failures: list[Outcome] = field(default_factory=list)  # every entry that did not succeed

    def counts(self) -> dict[str, int]:
        """How many entries ended each way, in the order summaries and reports show them."""
        return {
            "done": self.done,
            "reused": self.reused,
            "skipped": self.skipped,
            "failed": self.failed,
            "timed_out": self.timed_out,
            "unknown": self.unknown,
        }

    def to_json(self) -> dict[str, Any]:
        """The closing object of ``--json``."""
        return {
            "summary": True,
            "total": self.total,
            **self.counts(),
            "credits": tidy_number(self.credits),
            "wall_seconds": round(self.wall_seconds, 3),
            "failed_entries": [
                outcome.entry.key for outcome in sorted(self.failures, key=_by_line)
            ],
        }


def _by_line(outcome: Outcome) -> tuple[int, str]:
    return outcome.entry.line, outcome.entry.key


def error_json(error: Flux2Error) -> dict[str, Any]:
    """A failure as ``{"code", "message", "exit_code"}``."""
    return {"code": error_code(error), "message": error.message, "exit_code": error.exit_code}


def error_code(error: Flux2Error) -> str:
    """A short stable code for a failure."""
    if isinstance(error, SubmissionUnknownError) or getattr(error, "code", None) == OUTCOME_UNKNOWN:
        return OUTCOME_UNKNOWN
    if isinstance(error, TaskFailedError):
        return error.code or "task_failed"
    if isinstance(error, ApiError):
        return error.code or (f"http_{error.status_code}" if error.status_code else "api_error")
    if isinstance(error, WaitTimeoutError):
        return "timeout"
    if isinstance(error, UrlExpiredError):
        return "url_expired"
    if isinstance(error, DownloadError):
        return "download_failed"
    return type(error).__name__.lower()


class UnknownOutcomeError(Flux2Error):
    """An entry whose earlier POST got no answer: it may exist at the provider (exit 5)."""

    exit_code = EXIT_TASK_FAILED
    code = OUTCOME_UNKNOWN


class Runner:
    """Runs the decided entries with ``concurrency`` workers on one Context."""

    def __init__(
        self,
        ctx: Context,
        provider: Provider,
        options: BatchOptions,
        lock: LockFile | None = None,
        endpoint: str = "",
    ) -> None:
        self.ctx = ctx
        self.provider = provider
        self.options = options
        self.lock = lock
        self.endpoint = endpoint
        self.stop = threading.Event()
        self._posting = 0  # POSTs sent whose answer is not yet recorded
        self._posting_done = threading.Condition()
        real_sleep = ctx.sleep
        stop = self.stop

        def sleep(seconds: float) -> None:
            # Sleeping workers wake up at once when the run stops (Ctrl-C, a fatal error).
            if stop.is_set():
                raise _Stopped()
            if real_sleep is time.sleep:
                if stop.wait(seconds):
                    raise _Stopped()
            else:
                real_sleep(seconds)

        ctx.sleep = sleep
        self.gate = RateGate(ctx.clock, sleep)
        self.durations = Durations(window=max(1, options.concurrency))
        self._sentinel_lock = threading.Lock()
        self._sentinel_claimed = False
        learned = self.durations.learned

        def sleep_until_learned(seconds: float) -> None:
            # A first-wave worker on the usual schedule wakes as soon as a duration is known.
            if real_sleep is time.sleep:
                end = time.monotonic() + seconds
                while (left := end - time.monotonic()) > 0:
                    if stop.is_set():
                        raise _Stopped()
                    if learned.wait(min(left, EVENT_POLL_S)):
                        raise _Learned()
            else:
                sleep(seconds)
                if learned.is_set():
                    raise _Learned()

        self.sleep_until_learned = sleep_until_learned
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()

    def _claim_sentinel(self) -> bool:
        """True for the one task of the run that is polled finely until it ends."""
        with self._sentinel_lock:
            if self._sentinel_claimed:
                return False
            self._sentinel_claimed = True
            return True

    def prepare(self, decisions: list[Decision]) -> None:
        """Open the ledger and one client per endpoint before any thread starts."""
        self.ctx.ledger()
        endpoints = {(self.provider.capabilities.id, self.ctx.base_url(self.provider))}
        for decision in decisions:
            if decision.task is not None and decision.action is not Action.SKIP:
                provider = self.ctx.provider(decision.task.provider)
                base_url = decision.task.base_url or self.ctx.base_url(provider)
                endpoints.add((provider.capabilities.id, base_url))
        for provider_id, base_url in sorted(endpoints):
            self.ctx.client(self.ctx.provider(provider_id), base_url)

    def run(self, work: list[Decision]) -> Iterator[tuple[str, Any]]:
        """Start the workers; yield ``("start", Decision)`` and ``("end", Outcome)`` events.

        A task worker holds one of the ``concurrency`` slots from submit until the task ends,
        then hands the download to a download worker and takes the next entry: downloads
        overlap the next tasks instead of keeping a slot (and the provider) idle.
        """
        todo: queue.Queue[Decision] = queue.Queue()
        for decision in work:
            todo.put(decision)
        fetch: queue.Queue[tuple[Decision, Task, bool]] = queue.Queue()
        count = min(self.options.concurrency, len(work))
        threads = [
            threading.Thread(target=self._worker, args=(todo, fetch), daemon=True, name=f"task-{n}")
            for n in range(count)
        ] + [
            threading.Thread(target=self._fetcher, args=(fetch,), daemon=True, name=f"fetch-{n}")
            for n in range(count)
        ]
        for thread in threads:
            thread.start()
        remaining = len(work)
        while remaining:
            try:
                kind, payload = self.events.get(timeout=EVENT_POLL_S)
            except queue.Empty:
                if not any(thread.is_alive() for thread in threads) and self.events.empty():
                    raise RuntimeError("batch workers stopped without reporting") from None
                continue
            if kind == "fatal":
                self.stop.set()
                raise payload
            if kind == "end":
                remaining -= 1
            yield kind, payload

    def _worker(
        self, todo: queue.Queue[Decision], fetch: queue.Queue[tuple[Decision, Task, bool]]
    ) -> None:
        while not self.stop.is_set():
            try:
                decision = todo.get_nowait()
            except queue.Empty:
                return
            self.events.put(("start", decision))
            self._guarded(functools.partial(self._task_phase, decision, fetch))

    def _fetcher(self, fetch: queue.Queue[tuple[Decision, Task, bool]]) -> None:
        while not self.stop.is_set():
            try:
                decision, task, submitted = fetch.get(timeout=EVENT_POLL_S)
            except queue.Empty:
                continue
            self._guarded(functools.partial(self._download_phase, decision, task, submitted))

    def _guarded(self, step: Callable[[], Outcome | None]) -> None:
        """Run one step; report its outcome, or a fatal error to the main thread."""
        try:
            outcome = step()
        except _Stopped:
            return
        except (AuthError, CreditsError) as exc:
            # The account itself is refused: every other entry would fail the same way.
            self.stop.set()
            self.events.put(("fatal", exc))
            return
        except BaseException as exc:  # a bug: surface it in the main thread
            self.stop.set()
            self.events.put(("fatal", exc))
            return
        if outcome is not None:
            self.events.put(("end", outcome))

    def _task_phase(
        self, decision: Decision, fetch: queue.Queue[tuple[Decision, Task, bool]]
    ) -> Outcome | None:
        """Submit (or resume) and wait; a succeeded task goes on to the download workers."""
        from flux2_cli import jobs

        task = decision.task
        submitted = False
        try:
            submitted_at = None
            if decision.action is Action.SUBMIT:
                submitted_at = self.ctx.clock()
                task = self._submit(decision)
                submitted = True
            assert task is not None
            if not task.status.is_final:
                try:
                    task = self._wait(task, resumed=not submitted, submitted_at=submitted_at)
                except TaskFailedError as exc:
                    if not (decision.refetch and exc.code == jobs.NOT_FOUND_CODE):
                        raise
                    # Finished elsewhere, its files are not here and the provider no longer
                    # has it: generate it anew.
                    submitted_at = self.ctx.clock()
                    task = self._submit(decision)
                    submitted = True
                    task = self._wait(task, resumed=False, submitted_at=submitted_at)
            jobs.raise_if_failed(task)
        except (AuthError, CreditsError, _Stopped):
            raise
        except Flux2Error as exc:
            latest = getattr(exc, "task", None)  # a timeout carries the last state seen
            if isinstance(latest, Task):
                task = latest
            if isinstance(exc, TaskFailedError) and task is not None:
                self._record(
                    decision,
                    task_record(
                        self._lock(),
                        decision.entry,
                        self.endpoint,
                        task,
                        FAILED,
                        self._previous(decision),
                    ),
                )
            return Outcome(decision, "failed", task=task, error=exc, submitted=submitted)
        fetch.put((decision, task, submitted))
        return None

    def _download_phase(self, decision: Decision, task: Task, submitted: bool) -> Outcome:
        try:
            task = self._download(decision, task)
        except (AuthError, CreditsError, _Stopped):
            raise
        except Flux2Error as exc:
            # The task stays "submitted" in the lock: the next run fetches it again.
            return Outcome(decision, "failed", task=task, error=exc, submitted=submitted)
        record = lock_record(
            self._lock(), decision.entry, task, self.endpoint, self._previous(decision)
        )
        self._record(decision, record)
        return Outcome(decision, "done", task=task, submitted=submitted)

    # -- state ------------------------------------------------------------------------------

    def _lock(self) -> LockFile:
        assert self.lock is not None
        return self.lock

    def _previous(self, decision: Decision) -> dict[str, Any] | None:
        if self.lock is None:
            return None
        return self.lock.records.get(decision.entry.key, decision.record)

    def _record(self, decision: Decision, record: dict[str, Any]) -> None:
        """Write an entry's new state to the lock journal (durably, before the next step)."""
        if self.lock is not None:
            self.lock.put(decision.entry.key, record)

    def drain(self, grace: float = STOP_GRACE_S) -> bool:
        """After a stop: wait (bounded) until every POST sent has its answer recorded."""
        with self._posting_done:
            return self._posting_done.wait_for(lambda: self._posting == 0, timeout=grace)

    def _submit(self, decision: Decision) -> Task:
        from flux2_cli import jobs
        from flux2_cli.build import OUTPUT_INTENT, OutputIntent
        from flux2_cli.ledger import LedgerError, TaskUnrecordedError

        entry = decision.entry
        ledger = self.ctx.ledger()
        stale_intents = ledger.open_intents(entry.fingerprint)
        rounds = 0
        while True:
            self.gate.wait()
            with self._posting_done:
                if self.stop.is_set():
                    raise _Stopped()  # no new paid POST once the run is stopping
                self._posting += 1
            try:
                # Just before the paid POST: a run that finds this (after a kill) knows a task
                # may exist.
                if self.lock is not None:
                    self._record(decision, submitting_record(entry, self.endpoint))
                try:
                    task = jobs.submit(
                        self.ctx,
                        self.provider,
                        entry.request,
                        fingerprint=entry.fingerprint,
                        batch_key=f"{self.options.manifest.resolve()}#{entry.key}",
                        # Where this entry's images go, kept with the task: a `flux2 download
                        # --pending` elsewhere saves them there, not in its own folder.
                        extra={
                            OUTPUT_INTENT: OutputIntent(entry.output, entry.name_template).to_json()
                        },
                    )
                except RateLimitError as exc:
                    rounds += 1
                    # Refused (no task): while the run pauses, a kill must not leave the entry
                    # looking like a POST in flight.
                    self._refused(decision, "rate_limited", "HTTP 429: not sent")
                    if rounds > RATE_MAX_ROUNDS:
                        raise
                    self.gate.slow_down(self._pause(rounds, exc))
                    continue
                except TaskUnrecordedError as exc:
                    if self.lock is not None:
                        record = task_record(self.lock, entry, self.endpoint, exc.task, SUBMITTED)
                        self._record(decision, record)
                    raise
                except (BadRequestError, AuthError, CreditsError) as exc:
                    self._refused(decision, error_code(exc), exc.message)
                    raise
                except LedgerError as exc:
                    # The intent could not be written, so nothing was sent: not "unknown".
                    self._refused(decision, "ledger", exc.message)
                    raise
                except Flux2Error as exc:
                    if self.lock is not None:
                        self._record(
                            decision,
                            error_record(
                                entry,
                                self.endpoint,
                                UNKNOWN,
                                code=OUTCOME_UNKNOWN,
                                message=exc.message,
                            ),
                        )
                    raise
                if self.lock is not None:
                    self._record(
                        decision, task_record(self.lock, entry, self.endpoint, task, SUBMITTED)
                    )
                break
            finally:
                with self._posting_done:
                    self._posting -= 1
                    self._posting_done.notify_all()
        for intent in stale_intents:
            # --resubmit-unknown: the old unanswered POST is settled by this new task.
            ledger.close_intent(intent)
        return task

    def _refused(self, decision: Decision, code: str, message: str) -> None:
        """The POST was refused outright (no task): the entry is failed, nothing is pending."""
        if self.lock is not None:
            record = error_record(decision.entry, self.endpoint, FAILED, code=code, message=message)
            self._record(decision, record)

    def _wait(self, task: Task, *, resumed: bool, submitted_at: float | None = None) -> Task:
        """Poll until final: finely near the learned duration, else on the usual schedule.

        Before anything is learned, one task (the sentinel) is polled finely and the others
        wait on the usual schedule, woken as soon as the sentinel's duration is known.
        """
        from flux2_cli import jobs

        clock = self.ctx.clock
        timeout = self.ctx.settings.timeout
        deadline = clock() + timeout
        poll_first = resumed
        fine_done = submitted_at is None or resumed
        rounds = 0
        last_pending: list[float] = []
        first_final: list[float] = []
        latest = [task]

        def seen(current: Task) -> None:
            latest[0] = current
            if submitted_at is None:
                return
            if not current.status.is_final:
                last_pending[:] = [clock() - submitted_at]
            elif not first_final:
                first_final.append(clock() - submitted_at)

        while True:
            try:
                if not fine_done and submitted_at is not None:
                    if self.durations.estimate() is not None:
                        task = self._poll_near_expected(task, submitted_at, deadline, seen)
                        fine_done = True
                    elif self._claim_sentinel():
                        task = self._poll_as_sentinel(task, submitted_at, deadline, seen)
                        fine_done = True
                if not task.status.is_final:
                    task = jobs.wait(
                        self.ctx,
                        task,
                        timeout=max(0.0, deadline - clock()),
                        poll_first=poll_first,
                        on_update=seen,
                        sleep=None if fine_done else self.sleep_until_learned,
                    )
                if first_final and task.status is TaskStatus.SUCCEEDED:
                    running_at = last_pending[0] if last_pending else None
                    self.durations.learn(running_at, first_final[0])
                return task
            except _Learned:
                task = latest[0]  # back to the top: the fine look-ups around the duration
            except WaitTimeoutError as exc:
                error = WaitTimeoutError(
                    f"timed out after {timeout:g} s waiting for task {task.task_id}",
                    task_id=task.task_id,
                    hints=exc.hints,
                )
                error.task = getattr(exc, "task", None)  # type: ignore[attr-defined,unused-ignore]
                raise error from None
            except DeadlineError:
                # A look-up that dripped or never ended ran into the entry's timeout.
                raise WaitTimeoutError(
                    f"timed out after {timeout:g} s waiting for task {task.task_id}",
                    task_id=task.task_id,
                    hints=resume_hints(task.task_id),
                    task=latest[0],
                ) from None
            except RateLimitError as exc:
                rounds += 1
                if rounds > RATE_MAX_ROUNDS:
                    raise
                self.gate.slow_down(self._pause(rounds, exc))
                self.gate.wait()
                stored = self.ctx.ledger().get(task.task_id, task.provider)
                task = stored.task if stored is not None else task
                poll_first = True

    def _poll_as_sentinel(
        self,
        task: Task,
        submitted_at: float,
        deadline: float,
        seen: Callable[[Task], None],
    ) -> Task:
        """Poll at a tenth of the elapsed time (0.25 s to 10 s) until the task ends."""
        from flux2_cli import jobs

        clock = self.ctx.clock
        while not task.status.is_final:
            elapsed = max(0.0, clock() - submitted_at)
            step = min(SENTINEL_MAX_S, max(SENTINEL_MIN_S, SENTINEL_FRACTION * elapsed))
            if clock() + step >= deadline:
                break  # the usual schedule reports the timeout
            self.ctx.sleep(step)
            task = jobs.refresh(self.ctx, task, deadline=deadline)
            seen(task)
        return task

    def _poll_near_expected(
        self,
        task: Task,
        submitted_at: float,
        deadline: float,
        seen: Callable[[Task], None],
    ) -> Task:
        """Look-ups around the moment this run's tasks end, before the usual schedule.

        The first look-up is at the run's aim (see ``Durations``); its answer moves the aim.
        Still running there: the next look-ups halve the gap to the lowest recent "found
        finished" moment, then step finely. Nothing learned yet: nothing done here.
        """
        from flux2_cli import jobs

        durations = self.durations
        aim = durations.estimate()
        if aim is None:  # pragma: no cover - callers check first
            return task
        clock = self.ctx.clock
        step = fine_step(aim)
        min_gap = AIM_RISE_SHARE * step
        moment = submitted_at + aim
        first = True
        while not task.status.is_final and moment <= submitted_at + FINE_WINDOW * aim:
            if moment >= deadline:
                break
            delay = moment - clock()
            if delay > 0:
                self.ctx.sleep(delay)
            asked_at = clock() - submitted_at
            task = jobs.refresh(self.ctx, task, deadline=deadline)
            seen(task)
            done = task.status.is_final
            if first:
                # Still running: it ran past the moment of asking; finished: done by the answer.
                durations.first_look(
                    asked_at if not done else clock() - submitted_at, finished=done
                )
                first = False
            now = clock()
            ceiling = durations.ceiling()
            target = submitted_at + ceiling if ceiling is not None else now
            if target - now > 2 * min_gap:
                moment = now + (target - now) / 2
            elif target - now > 0:
                moment = target
            else:
                moment = max(moment, now) + step
        return task

    def _download(self, decision: Decision, task: Task) -> Task:
        from flux2_cli import jobs
        from flux2_cli.download import DownloadOptions

        entry = decision.entry
        options = DownloadOptions(
            output=entry.output,
            name_template=entry.name_template,
            # A task fetched again (a resumed run) replaces its own earlier, partial copy.
            overwrite=self.options.overwrite or decision.source in ("ledger", "lock"),
            sidecar=self.options.sidecar,
            embed_metadata=self.options.embed_metadata,
        )
        return jobs.download(self.ctx, task, options)

    def _pause(self, rounds: int, error: RateLimitError) -> float:
        """The shared pause after a 429 the client gave up on: the core's policy decides.

        A ``Retry-After`` longer than the policy's cap ends the entry at once, as it does a
        single ``gen``.
        """
        from flux2_cli.client import TooLongToWait

        core = self.ctx.http()
        try:
            return core.policy.wait(core.policy.attempts + rounds, error.retry_after, core.rng)
        except TooLongToWait:
            raise error from None


def tidy_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 4)
