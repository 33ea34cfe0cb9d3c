"""``flux2 batch`` from start to end: plan, dry run, check, execute, summary, reports."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux2_cli.batch.decide import Action, Decision, decide
from flux2_cli.batch.lock import (
    LOCK_SUFFIX,
    UNKNOWN,
    LockFile,
    endpoint_id,
    error_record,
    hold_path,
    hold_run,
    lock_record,
    state_path,
)
from flux2_cli.batch.manifest import Problems, read_manifest
from flux2_cli.batch.plan import PlannedEntry, plan_entries, preflight, select_shard
from flux2_cli.batch.reports import EntryReport, RunTotals
from flux2_cli.batch.runner import (
    OUTCOME_UNKNOWN,
    BatchOptions,
    Outcome,
    Runner,
    Summary,
    UnknownOutcomeError,
    error_code,
    tidy_number,
)
from flux2_cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_TASK_FAILED,
    EXIT_TERMINATED,
    EXIT_TIMEOUT,
    Flux2Error,
    InterruptedError_,
    InterruptSignal,
    TerminatedSignal,
    UsageError,
    WaitTimeoutError,
)
from flux2_cli.output import format_cost, format_credits
from flux2_cli.task import SANDBOX_PROVIDER, SIMULATED

if TYPE_CHECKING:
    from flux2_cli.context import Context
    from flux2_cli.providers.base import Provider


class BatchError(Flux2Error):
    """Some entries failed, or (``--check``) some assets are out of date: exit 5."""

    exit_code = EXIT_TASK_FAILED


class BatchTimedOutError(Flux2Error):
    """The only problems were timeouts: those tasks still run and a re-run resumes them (6)."""

    exit_code = EXIT_TIMEOUT


# How people read each outcome.
STATUS_TEXT = {
    "done": "done",
    "reused": "reused",
    "skipped": "skipped",
    "failed": "failed",
    "timed_out": "timed out",
    "unknown": "outcome unknown",
}
PROBLEM_STATUSES = ("failed", "timed_out", "unknown")
NAMED_MAX = 20


def run_batch(ctx: Context, options: BatchOptions) -> Summary | None:
    """``flux2 batch``: validate everything, then check, plan, or run. Raises BatchError (5)."""
    provider = ctx.provider()
    if options.report is not None or options.contact_sheet is not None:
        from flux2_cli.batch.gallery import check_targets

        check_targets(options.report, options.contact_sheet)
    problems = Problems("stdin" if str(options.manifest) == "-" else options.manifest.name)
    entries = read_manifest(options.manifest, options.manifest_kind, problems)
    planned = plan_entries(ctx, provider, options.manifest, entries, options.flags, problems)
    if options.shard is not None:
        whole = len(planned)
        planned = select_shard(planned, *options.shard)
        k, n = options.shard
        ctx.output.info(f"Shard {k}/{n}: {len(planned)} of {_entries(whole)}.")
    base_url = ctx.base_url(provider)
    endpoint = endpoint_id(provider.capabilities.id, base_url)
    kept = state_path(options.manifest, options.lock)
    if options.check and kept is None:
        raise UsageError(
            "--check compares the manifest with its lock file, and a manifest read from stdin "
            "has none; nothing was sent.",
            hints=["Name the lock file: flux2 batch - --format FORMAT --check --lock PATH."],
        )
    if options.check or options.dry_run:
        # Read-only: the lock file with any journal a stopped run left, applied in memory.
        lock = LockFile.load(kept or _NO_LOCK, warn=ctx.output.warn)
        if options.check:
            check(ctx, planned, lock, options, endpoint)
            return None
        preflight(planned, options.manifest.name, create=False)
        decisions = _decide_all(ctx, planned, lock, options, endpoint, base_url)
        credits, usd, unpriced = estimate(decisions)
        print_plan(ctx, decisions, credits, usd, unpriced)
        if options.max_cost is not None:
            check_max_cost(provider, options.max_cost, credits, unpriced)
        return None
    preflight(planned, options.manifest.name, create=True)
    with contextlib.ExitStack() as stack:
        if kept is None:
            # stdin: the run's state lives in a scratch folder removed at the end, so nothing
            # lands in the current folder; re-runs still resume through this machine's ledger.
            import tempfile

            ctx.output.info(
                "The manifest comes from stdin: no lock file is kept (re-runs on this machine "
                "resume through the ledger); give --lock PATH to keep one."
            )
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flux2-")))
            kept = scratch / f"stdin{LOCK_SUFFIX}"
        else:
            # One run of a manifest at a time: a second one waits here, before deciding anything.
            stack.enter_context(
                hold_run(
                    options.manifest,
                    notice=ctx.output.warn,
                    path=hold_path(options.manifest, options.lock),
                )
            )
        lock = LockFile.load(kept, warn=ctx.output.warn)
        try:
            lock.fold()  # what a killed run left in the journal
            decisions = _decide_all(ctx, planned, lock, options, endpoint, base_url)
            credits, usd, unpriced = estimate(decisions)
            if options.max_cost is not None:
                check_max_cost(provider, options.max_cost, credits, unpriced)
            if not options.shard:
                lock.keep_only(entry.key for entry in planned)
            return execute(ctx, provider, options, decisions, lock, endpoint)
        finally:
            try:
                lock.fold()
            except OSError as exc:
                # The journal still holds this run's state: the next run folds it.
                ctx.output.warn(
                    f"{lock.path.name} could not be written ({exc.strerror or exc}); "
                    f"{lock.journal.name} keeps this run's state for the next run."
                )


# A path that never exists: a dry run of stdin reads an empty lock.
_NO_LOCK = Path("/nonexistent/flux2-stdin" + LOCK_SUFFIX)


def _decide_all(
    ctx: Context,
    planned: list[PlannedEntry],
    lock: LockFile,
    options: BatchOptions,
    endpoint: str,
    base_url: str,
) -> list[Decision]:
    return [
        decide(
            ctx,
            entry,
            lock,
            resubmit_unknown=options.resubmit_unknown,
            manifest=options.manifest,
            fresh=options.fresh,
            endpoint=endpoint,
            base_url=base_url,
        )
        for entry in planned
    ]


def estimate(decisions: list[Decision]) -> tuple[float, float, int]:
    """Estimated credits and dollars of the entries to submit, and how many have no price."""
    credits = usd = 0.0
    unpriced = 0
    for decision in decisions:
        if not decision.pays:
            continue
        cost = decision.entry.estimate
        if cost is None or cost.credits is None:
            unpriced += 1
            continue
        credits += cost.credits
        usd += cost.usd or 0.0
    return credits, usd, unpriced


def check_max_cost(provider: Provider, max_cost: float, credits: float, unpriced: int) -> None:
    """UsageError (exit 2) before the first POST when the estimate is over ``--max-cost``."""
    if unpriced:
        raise UsageError(
            f"--max-cost cannot be checked: {provider.capabilities.id} publishes no price for "
            f"{unpriced} entr{'y' if unpriced == 1 else 'ies'}; nothing was sent."
        )
    if credits > max_cost:
        raise UsageError(
            f"the estimated cost, {format_credits(credits)} credits, is over --max-cost "
            f"{max_cost:g}; nothing was sent.",
            hints=["Raise --max-cost, or split the work with --shard K/N."],
        )


def print_plan(
    ctx: Context, decisions: list[Decision], credits: float, usd: float, unpriced: int
) -> None:
    """``--dry-run``: one row (or JSON line) per entry, then the total. Nothing is sent."""
    output = ctx.output
    rows = []
    for decision in decisions:
        entry = decision.entry
        cost = entry.estimate if decision.pays else None
        action = "reuse" if decision.source == "reused" else decision.action.value
        if output.json_mode:
            output.json_line(
                {
                    "entry": entry.number,
                    "name": entry.name,
                    "key": entry.key,
                    "line": entry.line,
                    "action": action,
                    "fingerprint": entry.fingerprint,
                    "estimated_cost": cost.to_json() if cost is not None else None,
                    "request": entry.request.to_json(),
                }
            )
        credit_text = "" if cost is None or cost.credits is None else format_credits(cost.credits)
        rows.append([entry.key, entry.line, action, _short(entry.request.prompt), credit_text])
    submits = sum(1 for decision in decisions if decision.pays)
    if output.json_mode:
        output.json_line(
            {
                "summary": True,
                "dry_run": True,
                "total": len(decisions),
                "to_submit": submits,
                "estimated_credits": tidy_number(credits),
                "estimated_usd": round(usd, 4),
                "unpriced": unpriced,
                "sandbox": simulated(ctx),
            }
        )
        return
    from flux2_cli.output import print_rows

    # Plain aligned columns (tab-separated when piped), not a Rich table: Rich took ~70 % of a
    # 20,000-entry --dry-run measuring and wrapping every cell.
    print_rows(
        output,
        ["entry", "line", "action", "prompt", "credits"],
        [[str(cell) for cell in row] for row in rows],
        shrink=(3,),
        shrink_left=(0,),
    )
    note = f" ({unpriced} without a published price)" if unpriced else ""
    cost_text = format_cost(credits, usd, simulated=simulated(ctx))
    output.info(
        f"Plan: {_entries(len(decisions))}, {submits} to submit; estimated cost "
        f"{cost_text}{note}. Nothing was sent."
    )


def simulated(ctx: Context) -> bool:
    """True when the batch runs on the sandbox: its costs are shown, and nothing is charged."""
    return ctx.sandbox or ctx.settings.provider == SANDBOX_PROVIDER


def check(
    ctx: Context,
    planned: list[PlannedEntry],
    lock: LockFile,
    options: BatchOptions,
    endpoint: str | None = None,
) -> None:
    """``--check``: compare the manifest with the lock file and the files; send nothing.

    Each out-of-date entry is printed once (a line on stdout, or its JSON line); the error
    that follows counts them instead of naming them again. ``endpoint`` is where this run
    would make tasks: entries made elsewhere (the sandbox) are stale.
    """
    output = ctx.output
    problems: list[tuple[PlannedEntry, str]] = []
    reports: list[EntryReport] = []
    for entry in planned:
        problem = lock.problem(entry.key, entry.fingerprint, endpoint)
        state, _, detail = (problem or "ok").partition(":")
        detail = detail.strip()  # the state is said once: "stale: stale: …" repeated it
        reports.append(EntryReport(entry.key, entry.line, state, message=detail or None))
        if output.json_mode:
            output.json_line(
                {
                    "entry": entry.number,
                    "name": entry.name,
                    "key": entry.key,
                    "line": entry.line,
                    "status": state,
                    "reason": problem,
                }
            )
        if problem is not None:
            problems.append((entry, problem))
            # The state leads the line; the reason follows only when it says more ("new\tnew").
            line = f"{state}\t{entry.key}\tline {entry.line}"
            output.result(f"{line}\t{detail}" if detail else line)
    counts = {"new": 0, "missing": 0, "changed": 0, "stale": 0}
    for _, problem in problems:
        state = problem.split(":")[0]
        counts[state] = counts.get(state, 0) + 1
    if output.json_mode:
        output.json_line(
            {"summary": True, "check": True, "ok": len(planned) - len(problems), **counts}
        )
    totals = RunTotals(counts={"ok": len(planned) - len(problems), **counts})
    _publish(ctx, options, reports, totals, title="flux2 batch --check")
    if not problems:
        output.info(f"{_all(len(planned))} up to date ({lock.path.name}).")
        return
    kinds = ", ".join(f"{count} {state}" for state, count in counts.items() if count)
    raise BatchError(
        f"{_of(len(problems), len(planned))} {'is' if len(problems) == 1 else 'are'} out of "
        f"date ({kinds}).",
        hints=[f"Run `{_rerun(options)}` to bring them up to date."],
    )


def execute(
    ctx: Context,
    provider: Provider,
    options: BatchOptions,
    decisions: list[Decision],
    lock: LockFile,
    endpoint: str = "",
) -> Summary:
    """Run the entries: skips at once, the rest on the workers; the summary, or BatchError."""
    output = ctx.output
    started = ctx.clock()
    summary = Summary(total=len(decisions))
    reports: list[EntryReport] = []
    began: dict[str, float] = {}
    running = 0
    finished = 0
    outcomes: list[Outcome] = []

    with output.progress("batch", len(decisions)) as advance:

        def report(outcome: Outcome) -> None:
            nonlocal finished
            finished += 1
            outcomes.append(outcome)
            entry = outcome.entry
            outcome.status = _classify(ctx, outcome)
            if outcome.status == "done":
                summary.done += 1
                if outcome.submitted and outcome.task is not None and outcome.task.cost:
                    summary.credits += outcome.task.cost.credits or 0.0
            elif outcome.status == "reused":
                summary.reused += 1
            elif outcome.status == "skipped":
                summary.skipped += 1
            else:
                setattr(summary, outcome.status, getattr(summary, outcome.status) + 1)
                summary.failures.append(outcome)
            # The workers record submitted, finished and failed entries as they change;
            # a skipped one is (re)written under its key, as made here.
            if outcome.status == "skipped":
                if outcome.task is not None:
                    lock.put(entry.key, lock_record(lock, entry, outcome.task, endpoint))
                elif outcome.decision.record is not None:
                    lock.put(entry.key, {**outcome.decision.record, "endpoint": endpoint})
            outputs = _outputs(outcome, lock)
            seconds = ctx.clock() - began[entry.key] if entry.key in began else None
            reports.append(_entry_report(outcome, outputs, seconds))
            if output.json_mode:
                entry_json = outcome.to_json()
                entry_json["task_id"] = _task_id(outcome)
                entry_json["outputs"] = outputs
                output.json_line(entry_json)
            elif outcome.status not in PROBLEM_STATUSES:
                for item in outputs:
                    output.result(item["path"])
            line = None if output.json_mode else _progress_line(outcome, finished, summary.total)
            advance(
                done=summary.done + summary.reused + summary.skipped,
                failed=len(summary.failures),
                running=running,
                credits=summary.credits,
                line=line,
            )

        work: list[Decision] = []
        for decision in decisions:
            if decision.action is Action.SKIP:
                report(Outcome(decision, "skipped", task=decision.task))
            elif decision.action is Action.UNKNOWN:
                error = UnknownOutcomeError(
                    "an earlier create call for this entry got no clear answer; the task may "
                    "exist at the provider (outcome unknown)."
                )
                record = decision.record
                lock.put(
                    decision.entry.key,
                    error_record(
                        decision.entry,
                        endpoint,
                        UNKNOWN,
                        code=OUTCOME_UNKNOWN,
                        message=error.message,
                        previous=record if record and record.get("state") == UNKNOWN else None,
                    ),
                )
                report(Outcome(decision, "unknown", error=error))
            else:
                work.append(decision)
        if work:
            runner = Runner(ctx, provider, options, lock=lock, endpoint=endpoint)
            runner.prepare(work)
            try:
                for kind, payload in runner.run(work):
                    if kind == "start":
                        running += 1
                        began[payload.entry.key] = ctx.clock()
                    else:
                        running -= 1
                        report(payload)
            except (KeyboardInterrupt, InterruptSignal):
                runner.stop.set()
                runner.drain()  # POSTs already sent: their answers go to the lock first
                _publish_unfinished(
                    ctx, options, decisions, reports, summary, started, "interrupted"
                )
                raise _interrupted(options, running, EXIT_INTERRUPTED, "interrupted") from None
            except TerminatedSignal:
                runner.stop.set()
                runner.drain()
                _publish_unfinished(
                    ctx, options, decisions, reports, summary, started, "terminated"
                )
                raise _interrupted(options, running, EXIT_TERMINATED, "terminated") from None
            finally:
                runner.stop.set()
    summary.wall_seconds = max(0.0, ctx.clock() - started)
    write_gallery(ctx, options, outcomes, lock)
    if output.json_mode:
        output.json_line({**summary.to_json(), "sandbox": simulated(ctx)})
    else:
        _print_summary(ctx, summary)
    totals = RunTotals(
        counts=summary.counts(),
        credits=summary.credits,
        wall_seconds=summary.wall_seconds,
    )
    _publish(ctx, options, reports, totals, title="flux2 batch")
    if summary.failures:
        raise _failed(options, summary)
    return summary


def write_gallery(
    ctx: Context, options: BatchOptions, outcomes: list[Outcome], lock: LockFile
) -> None:
    """``--report`` and ``--contact-sheet``, when asked for, from every entry's outcome."""
    if options.report is None and options.contact_sheet is None:
        return
    from flux2_cli.batch import gallery

    items = gallery.items_from_outcomes(outcomes, lock, sandbox=ctx.sandbox)
    title = f"flux2 batch {options.manifest.name}"
    targets = (("--report", options.report), ("--contact-sheet", options.contact_sheet))
    for what, path in targets:
        if path is None:
            continue
        try:
            if what == "--report":
                gallery.write_report(path, items, title=title)
            else:
                gallery.write_contact_sheet(path, items)
        except OSError as exc:  # the run's outcome stands; only the picture of it is lost
            ctx.output.warn(f"{what} {path}: cannot write it ({exc.strerror or exc}).")
            continue
        ctx.output.info(f"{'Report' if what == '--report' else 'Contact sheet'}: {path}")


def _classify(ctx: Context, outcome: Outcome) -> str:
    """done, reused, skipped, failed, timed_out or unknown: what a run's outcome counts as."""
    if outcome.status == "done":
        return "reused" if outcome.decision.source == "reused" else "done"
    if outcome.status in ("skipped", "unknown"):
        return outcome.status
    error = outcome.error
    if isinstance(error, WaitTimeoutError):
        return "timed_out"  # the task still runs; a re-run polls it
    if error is not None and error_code(error) == OUTCOME_UNKNOWN:
        return "unknown"
    if (
        error is not None
        and outcome.decision.action is Action.SUBMIT
        and not outcome.submitted
        and _intent_open(ctx, outcome.entry)
    ):
        # A 5xx or a lost answer to the paid POST: the provider may have made the task. Told
        # as the re-run will tell it (its intent stays open), never "failed, re-run to retry".
        outcome.error = UnknownOutcomeError(
            f"the create call got no clear answer ({error.message.rstrip('.')}); the task may "
            "exist at the provider (outcome unknown)."
        )
        return "unknown"
    return "failed"


def _intent_open(ctx: Context, entry: PlannedEntry) -> bool:
    try:
        return bool(ctx.ledger().open_intents(entry.fingerprint))
    except Flux2Error:
        return False


def _outputs(outcome: Outcome, lock: LockFile) -> list[dict[str, Any]]:
    """Every saved image of the entry, from its task or (skipped) from the lock record."""
    if outcome.status in PROBLEM_STATUSES:
        return []
    task = outcome.task
    if task is not None and task.images:
        return [
            {"path": image.path, "sha256": image.sha256}
            for image in task.images
            if image.path and image.path != "-"
        ]
    record = outcome.decision.record or {}
    return [
        {"path": str(lock.resolve(str(item.get("path", "")))), "sha256": item.get("sha256")}
        for item in record.get("outputs") or []
        if isinstance(item, dict)
    ]


def _task_id(outcome: Outcome) -> str | None:
    if outcome.task is not None:
        return outcome.task.task_id
    task_id = (outcome.decision.record or {}).get("task_id")
    return str(task_id) if task_id else None


def _entry_report(
    outcome: Outcome, outputs: list[dict[str, Any]], seconds: float | None
) -> EntryReport:
    error = outcome.error
    return EntryReport(
        key=outcome.entry.key,
        line=outcome.entry.line,
        status=outcome.status,
        message=error.message if error is not None else None,
        code=error_code(error) if error is not None else None,
        task_id=_task_id(outcome),
        seconds=seconds,
        outputs=tuple(str(item["path"]) for item in outputs),
    )


def _publish(
    ctx: Context,
    options: BatchOptions,
    reports: list[EntryReport],
    totals: RunTotals,
    *,
    title: str,
) -> None:
    """``--junit``, and under GitHub Actions the annotations and the step summary."""
    from flux2_cli.batch import reports as ci
    from flux2_cli.env import is_github_actions

    if options.junit is not None:
        try:
            ci.write_junit(options.junit, options.manifest, reports, title)
        except OSError as exc:
            ctx.output.warn(f"--junit {options.junit}: cannot write the report ({exc}).")
    if not is_github_actions():
        return
    manifest = ci.annotation_path(options.manifest, os.environ)
    for line in ci.workflow_commands(manifest, reports):
        ctx.output.command(line)
    if simulated(ctx):  # the summary's credits were never charged
        title = f"{title} (sandbox: {SIMULATED})"
    try:
        ci.append_step_summary(os.environ, ci.step_summary(manifest, reports, totals, title=title))
    except OSError as exc:
        ctx.output.warn(f"$GITHUB_STEP_SUMMARY cannot be written ({exc}).")


def _publish_unfinished(
    ctx: Context,
    options: BatchOptions,
    decisions: list[Decision],
    reports: list[EntryReport],
    summary: Summary,
    started: float,
    what: str,
) -> None:
    """Reports of a stopped run (a CI timeout): what ended, and every other entry unfinished."""
    if options.junit is None and not _on_github():
        return
    ended = {report.key for report in reports}
    unfinished = [
        EntryReport(
            decision.entry.key,
            decision.entry.line,
            "interrupted",
            message=f"not finished: the run was {what}; a re-run resumes it without paying again",
            code=what,
        )
        for decision in decisions
        if decision.entry.key not in ended
    ]
    totals = RunTotals(
        counts={**summary.counts(), "interrupted": len(unfinished)},
        credits=summary.credits,
        wall_seconds=max(0.0, ctx.clock() - started),
    )
    # A second signal stops this at once: the lock file and the ledger already hold the state.
    with contextlib.suppress(KeyboardInterrupt, InterruptSignal, TerminatedSignal):
        _publish(ctx, options, [*reports, *unfinished], totals, title="flux2 batch")


def _on_github() -> bool:
    from flux2_cli.env import is_github_actions

    return is_github_actions()


def _rerun(options: BatchOptions) -> str:
    """The command that resumes this run, with the flags that matter."""
    return options.rerun or f"flux2 batch {options.manifest}"


def _recorded_in(options: BatchOptions) -> str:
    kept = state_path(options.manifest, options.lock)
    return f"{kept.name} and the ledger" if kept is not None else "the ledger"


def _interrupted(options: BatchOptions, running: int, code: int, what: str) -> InterruptedError_:
    return InterruptedError_(
        f"{what}; {running} entr{'y was' if running == 1 else 'ies were'} in flight "
        f"(recorded in {_recorded_in(options)}).",
        exit_code=code,
        hints=[
            f"Re-run `{_rerun(options)}` to resume: submitted tasks are polled, "
            "not paid for again; finished entries are skipped."
        ],
    )


def _failed(options: BatchOptions, summary: Summary) -> Flux2Error:
    """BatchError (5) naming the entries by line, or BatchTimedOutError (6) for timeouts only."""
    problems = sorted(summary.failures, key=lambda outcome: (outcome.entry.line, outcome.entry.key))
    names = ", ".join(outcome.entry.label for outcome in problems[:NAMED_MAX])
    more = f" (and {len(problems) - NAMED_MAX} more)" if len(problems) > NAMED_MAX else ""
    rerun = _rerun(options)
    hints = []
    for outcome in problems[:NAMED_MAX]:
        assert outcome.error is not None
        hints.append(
            f"{outcome.entry.label}: {STATUS_TEXT[outcome.status]}: {outcome.error.message}"
        )
    kinds = {status: getattr(summary, status) for status in PROBLEM_STATUSES}
    if kinds["unknown"]:
        hints.append(
            f"Outcome unknown: the provider may have made these tasks. `{rerun} --dry-run` "
            "lists them (action unknown); look for them on the provider's dashboard, then "
            f"`{rerun} --resubmit-unknown` submits them again (it may pay twice)."
        )
    if kinds["timed_out"]:
        hints.append(
            f"Timed-out tasks are still running at the provider: `{rerun}` resumes them "
            "(polled, not paid for again)."
        )
    if kinds["failed"]:
        hints.append(
            f"Re-run `{rerun}` to retry the failed entries: finished entries are skipped and "
            "submitted ones resumed, not paid for again."
        )
    whole = _of(len(problems), summary.total)
    if kinds["timed_out"] == len(problems):
        return BatchTimedOutError(
            f"{whole} timed out (still running at the provider): {names}{more}", hints=hints
        )
    if kinds["failed"] == len(problems):
        return BatchError(f"{whole} failed: {names}{more}", hints=hints)
    parts = ", ".join(f"{count} {STATUS_TEXT[status]}" for status, count in kinds.items() if count)
    return BatchError(f"{whole} did not succeed ({parts}): {names}{more}", hints=hints)


def _progress_line(outcome: Outcome, finished: int, total: int) -> str:
    entry = outcome.entry
    prefix = f"[{finished}/{total}] {STATUS_TEXT.get(outcome.status, outcome.status)} {entry.label}"
    if outcome.status in PROBLEM_STATUSES and outcome.error is not None:
        return f"{prefix}: {outcome.error.message}"
    if outcome.status == "skipped":
        return f"{prefix}: up to date ({outcome.decision.source})"
    task_id = outcome.task.task_id if outcome.task is not None else ""
    if outcome.status == "reused":
        return f"{prefix}: reused task {task_id} from an earlier run (--fresh generates anew)"
    return f"{prefix}: task {task_id}"


def _print_summary(ctx: Context, summary: Summary) -> None:
    """The closing table, on stderr (stdout carries only the saved paths)."""
    columns: list[tuple[str, str]] = [("done", str(summary.done))]
    if summary.reused:
        columns.append(("reused", str(summary.reused)))
    columns += [("skipped", str(summary.skipped)), ("failed", str(summary.failed))]
    if summary.timed_out:
        columns.append(("timed out", str(summary.timed_out)))
    if summary.unknown:
        columns.append(("unknown", str(summary.unknown)))
    columns += [
        ("credits", format_credits(summary.credits)),
        ("wall time", f"{summary.wall_seconds:.1f} s"),
    ]
    widths = [max(len(header), len(value)) for header, value in columns]
    ctx.output.info("  ".join(h.rjust(w) for (h, _), w in zip(columns, widths, strict=True)))
    ctx.output.info("  ".join(v.rjust(w) for (_, v), w in zip(columns, widths, strict=True)))
    if simulated(ctx):
        ctx.output.info(f"Credits on the sandbox: {SIMULATED}.")


def _entries(count: int) -> str:
    """``1 entry``, ``2 entries``."""
    return f"{count} entr{'y' if count == 1 else 'ies'}"


def _of(count: int, total: int) -> str:
    """``1 of 1 entry``, ``2 of 5 entries``."""
    return f"{count} of {_entries(total)}"


def _all(count: int) -> str:
    return "The 1 entry is" if count == 1 else f"All {count} entries are"


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
