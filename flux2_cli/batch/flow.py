"""``flux2 batch`` from start to end: plan, dry run, check, execute, summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flux2_cli.batch.decide import Action, Decision, decide
from flux2_cli.batch.lock import LOCK_SUFFIX, LockFile, lock_path, lock_record
from flux2_cli.batch.manifest import read_manifest
from flux2_cli.batch.plan import PlannedEntry, plan_entries, select_shard
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
    Flux2Error,
    InterruptedError_,
    InterruptSignal,
    TerminatedSignal,
    UsageError,
)

if TYPE_CHECKING:
    from flux2_cli.context import Context
    from flux2_cli.providers.base import Provider


class BatchError(Flux2Error):
    """Some entries failed, or (``--check``) some assets are out of date: exit 5."""

    exit_code = EXIT_TASK_FAILED


def run_batch(ctx: Context, options: BatchOptions) -> Summary | None:
    """``flux2 batch``: validate everything, then check, plan, or run. Raises BatchError (5)."""
    provider = ctx.provider()
    if options.report is not None or options.contact_sheet is not None:
        from flux2_cli.batch.gallery import check_targets

        check_targets(options.report, options.contact_sheet)
    entries = read_manifest(options.manifest)
    planned = plan_entries(ctx, provider, options.manifest, entries)
    if options.shard is not None:
        planned = select_shard(planned, *options.shard)
    lock = LockFile.load(lock_path(options.manifest), warn=ctx.output.warn)
    if options.check:
        check(ctx, planned, lock)
        return None
    decisions = [
        decide(ctx, entry, lock, resubmit_unknown=options.resubmit_unknown) for entry in planned
    ]
    credits, usd, unpriced = estimate(decisions)
    if options.dry_run:
        print_plan(ctx, decisions, credits, usd, unpriced)
    if options.max_cost is not None:
        check_max_cost(provider, options.max_cost, credits, unpriced)
    if options.dry_run:
        return None
    if not options.shard:
        lock.keep_only(entry.key for entry in planned)
    return execute(ctx, provider, options, decisions, lock)


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
            f"the estimated cost, {credits:g} credits, is over --max-cost {max_cost:g}; "
            "nothing was sent.",
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
        if output.json_mode:
            output.json_line(
                {
                    "entry": entry.number,
                    "name": entry.name,
                    "key": entry.key,
                    "line": entry.line,
                    "action": decision.action.value,
                    "fingerprint": entry.fingerprint,
                    "estimated_cost": cost.to_json() if cost is not None else None,
                    "request": entry.request.to_json(),
                }
            )
        credit_text = "" if cost is None or cost.credits is None else f"{cost.credits:g}"
        rows.append(
            [
                entry.key,
                entry.line,
                decision.action.value,
                _short(entry.request.prompt),
                credit_text,
            ]
        )
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
            }
        )
        return
    output.table(None, ["entry", "line", "action", "prompt", "credits"], rows)
    note = f" ({unpriced} without a published price)" if unpriced else ""
    output.info(
        f"Plan: {len(decisions)} entries, {submits} to submit; estimated cost {credits:g} "
        f"credits (≈ ${usd:.2f}){note}. Nothing was sent."
    )


def check(ctx: Context, planned: list[PlannedEntry], lock: LockFile) -> None:
    """``--check``: compare the manifest with the lock file and the files; send nothing."""
    output = ctx.output
    problems: list[tuple[PlannedEntry, str]] = []
    for entry in planned:
        problem = lock.problem(entry.key, entry.fingerprint)
        state = "ok" if problem is None else problem.split(":")[0]
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
            output.result(f"{state}\t{entry.key}\tline {entry.line}\t{problem}")
    if output.json_mode:
        counts = {"missing": 0, "changed": 0, "stale": 0}
        for _, problem in problems:
            counts[problem.split(":")[0]] += 1
        output.json_line(
            {"summary": True, "check": True, "ok": len(planned) - len(problems), **counts}
        )
    if not problems:
        output.info(f"All {len(planned)} entries are up to date ({lock.path.name}).")
        return
    named = ", ".join(f"{entry.label}: {problem}" for entry, problem in problems[:20])
    more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
    raise BatchError(
        f"{len(problems)} of {len(planned)} entries are out of date: {named}{more}",
        hints=[
            f"Run `flux2 batch {lock.path.name[: -len(LOCK_SUFFIX)]}` to bring them up to date."
        ],
    )


def execute(
    ctx: Context,
    provider: Provider,
    options: BatchOptions,
    decisions: list[Decision],
    lock: LockFile,
) -> Summary:
    """Run the entries: skips at once, the rest on the workers; the summary, or BatchError."""
    output = ctx.output
    started = ctx.clock()
    summary = Summary(total=len(decisions))
    running = 0
    finished = 0
    outcomes: list[Outcome] = []

    with output.progress("batch", len(decisions)) as advance:

        def report(outcome: Outcome) -> None:
            nonlocal finished
            finished += 1
            outcomes.append(outcome)
            entry = outcome.entry
            if outcome.status == "done":
                summary.done += 1
                if outcome.submitted and outcome.task is not None and outcome.task.cost:
                    summary.credits += outcome.task.cost.credits or 0.0
            elif outcome.status == "skipped":
                summary.skipped += 1
            else:
                summary.failed += 1
                summary.failures.append(outcome)
            if outcome.status == "done" and outcome.task is not None:
                lock.put(entry.key, lock_record(lock, entry, outcome.task))
            elif outcome.status == "skipped":
                if outcome.task is not None:
                    lock.put(entry.key, lock_record(lock, entry, outcome.task))
                elif outcome.decision.record is not None:
                    lock.put(entry.key, {**outcome.decision.record, "line": entry.line})
            if output.json_mode:
                output.json_line(outcome.to_json())
            elif outcome.status != "failed":
                for path in outcome.paths(lock):
                    output.result(path)
            line = None if output.json_mode else _progress_line(outcome, finished, summary.total)
            advance(
                done=summary.done + summary.skipped,
                failed=summary.failed,
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
                    "a POST for this entry got no answer in an earlier run; the task may exist "
                    "at the provider (outcome unknown).",
                    hints=["Check `flux2 history`, then re-run with --resubmit-unknown."],
                )
                report(Outcome(decision, "failed", error=error))
            else:
                work.append(decision)
        if work:
            runner = Runner(ctx, provider, options)
            runner.prepare(work)
            try:
                for kind, payload in runner.run(work):
                    if kind == "start":
                        running += 1
                    else:
                        running -= 1
                        report(payload)
            except (KeyboardInterrupt, InterruptSignal):
                runner.stop.set()
                raise _interrupted(options, running, EXIT_INTERRUPTED, "interrupted") from None
            except TerminatedSignal:
                runner.stop.set()
                raise _interrupted(options, running, EXIT_TERMINATED, "terminated") from None
            finally:
                runner.stop.set()
    summary.wall_seconds = max(0.0, ctx.clock() - started)
    write_gallery(ctx, options, outcomes, lock)
    if output.json_mode:
        output.json_line(summary.to_json())
    else:
        _print_summary(ctx, summary)
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
    if options.report is not None:
        gallery.write_report(options.report, items, title=f"flux2 batch {options.manifest.name}")
        ctx.output.info(f"Report: {options.report}")
    if options.contact_sheet is not None:
        gallery.write_contact_sheet(options.contact_sheet, items)
        ctx.output.info(f"Contact sheet: {options.contact_sheet}")


def _interrupted(options: BatchOptions, running: int, code: int, what: str) -> InterruptedError_:
    return InterruptedError_(
        f"{what}; {running} entr{'y was' if running == 1 else 'ies were'} in flight "
        "(recorded in the ledger).",
        exit_code=code,
        hints=[
            f"Re-run `flux2 batch {options.manifest}` to resume: submitted tasks are polled, "
            "not paid for again; finished entries are skipped."
        ],
    )


def _failed(options: BatchOptions, summary: Summary) -> BatchError:
    failures = summary.failures
    names = ", ".join(outcome.entry.label for outcome in failures[:20])
    more = f" (and {len(failures) - 20} more)" if len(failures) > 20 else ""
    hints = []
    for outcome in failures[:20]:
        assert outcome.error is not None
        hints.append(f"{outcome.entry.label}: {outcome.error.message}")
    if any(error_code(outcome.error) == OUTCOME_UNKNOWN for outcome in failures if outcome.error):
        hints.append(
            "Entries whose outcome is unknown may exist at the provider; check `flux2 history` "
            "or the dashboard, then re-run with --resubmit-unknown to submit them again."
        )
    hints.append(
        f"Re-run `flux2 batch {options.manifest}` to retry: finished entries are skipped and "
        "submitted ones resumed, not paid for again."
    )
    return BatchError(
        f"{len(failures)} of {summary.total} entries failed: {names}{more}", hints=hints
    )


def _progress_line(outcome: Outcome, finished: int, total: int) -> str:
    entry = outcome.entry
    prefix = f"[{finished}/{total}] {outcome.status} {entry.label}"
    if outcome.status == "failed" and outcome.error is not None:
        return f"{prefix}: {outcome.error.message}"
    if outcome.status == "skipped":
        return f"{prefix}: up to date ({outcome.decision.source})"
    task_id = outcome.task.task_id if outcome.task is not None else ""
    return f"{prefix}: task {task_id}"


def _print_summary(ctx: Context, summary: Summary) -> None:
    """The closing table, on stderr (stdout carries only the saved paths)."""
    headers = ["done", "failed", "skipped", "credits", "wall time"]
    values = [
        str(summary.done),
        str(summary.failed),
        str(summary.skipped),
        f"{summary.credits:g}",
        f"{summary.wall_seconds:.1f} s",
    ]
    widths = [max(len(h), len(v)) for h, v in zip(headers, values, strict=True)]
    ctx.output.info("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    ctx.output.info("  ".join(v.rjust(w) for v, w in zip(values, widths, strict=True)))


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
