"""TASK_ID arguments: ledger ids, unique prefixes, short ids and ``last``; others looked up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flux2_cli.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Flux2Error, TaskFailedError
from flux2_cli.task import TaskStatus

if TYPE_CHECKING:
    from flux2_cli.context import Context
    from flux2_cli.task import Task


def lookup(ctx: Context, ref: str) -> tuple[Task, bool]:
    """The task ``ref`` names, and whether the ledger knew it.

    A ledger task comes back as stored (no request). An id the ledger does not hold is looked
    up once at the chosen provider, saying so on stderr; when the provider does not know it
    either, TaskFailedError (exit 5) names the provider and suggests near ids from the ledger.
    Ambiguous or too short prefixes are a UsageError (exit 2) from the ledger.
    """
    from flux2_cli import jobs

    entry = ctx.ledger().resolve(ref)
    if entry is not None:
        return jobs.find_task(ctx, entry.task.task_id), True
    bare = jobs.find_task(ctx, ref)
    where = f"{bare.provider} in the sandbox" if ctx.sandbox else bare.provider
    ctx.output.info(f"{ref}: not in the local ledger; looking it up at {where} ({_which(ctx)})")
    try:
        task = jobs.refresh(ctx, bare)
    except Flux2Error as exc:
        if exc.exit_code not in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            exc.message = f"{ref}: {exc.message}" if ref not in exc.message else exc.message
            exc.hints.extend(suggestions(ctx, ref))
        raise
    if task.status is TaskStatus.FAILED and task.error and task.error.code == jobs.NOT_FOUND_CODE:
        raise TaskFailedError(
            f"task {ref}: not found at {bare.provider}, nor in the local ledger.",
            task_id=ref,
            code=jobs.NOT_FOUND_CODE,
            task=task,
            hints=suggestions(ctx, ref),
        )
    return task, False


def suggestions(ctx: Context, ref: str) -> list[str]:
    """``Did you mean …`` hints: ledger ids close to a mistyped one."""
    near = ctx.ledger().near_ids(ref)
    if not near:
        return ["Recent tasks: flux2 history"]
    return ["Did you mean one of these ledger tasks?", *(f"  {task_id}" for task_id in near)]


def _which(ctx: Context) -> str:
    """Where the provider for an unknown id came from, and how to choose another."""
    from flux2_cli.providers import DEFAULT_PROVIDER

    if ctx.cli_values.get("provider"):
        return "from --provider"
    if ctx.settings.provider == DEFAULT_PROVIDER:
        return "the default; pass --provider"
    return "from your settings; pass --provider"


class Outcomes:
    """One result per TASK_ID of a command: each error shown as it happens (several ids) and
    the exit code the highest of the per-id codes; ``--json`` gets every task seen."""

    def __init__(
        self,
        ctx: Context,
        *,
        total: int,
        single: bool | None = None,
        summary: str = "had a problem",
    ) -> None:
        self._ctx = ctx
        self._total = total
        # One id given: its error is the command's error, its task the JSON object.
        self._single = total == 1 if single is None else single
        self._summary = summary
        self._tasks: dict[int, Task] = {}
        self._errors: list[tuple[str, Flux2Error]] = []

    def done(self, index: int, task: Task) -> None:
        """A task looked up; a failed one also counts as an error (exit 5)."""
        from flux2_cli import jobs

        self._tasks[index] = task
        try:
            jobs.raise_if_failed(task)
        except TaskFailedError as exc:
            self._record(task.task_id, exc)

    def failed(
        self, index: int, exc: Flux2Error, ref: str | None = None, known: Task | None = None
    ) -> None:
        """An id whose look-up, wait or download went wrong (the others go on).

        ``known`` is the task as last seen when the error carries none (a failed download):
        ``--json`` still lists it, so a script keeps every id it asked about.
        """
        seen = getattr(exc, "task", None) or known
        if seen is not None and hasattr(seen, "task_id"):
            self._tasks[index] = seen
        self._record(ref or getattr(exc, "task_id", None) or "?", exc)

    def _record(self, ref: str, exc: Flux2Error) -> None:
        if exc.exit_code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            raise exc
        self._errors.append((ref, exc))
        if not self._single:
            named = ref in exc.message
            self._ctx.output.error(exc.message if named else f"{ref}: {exc.message}", exc.hints)

    @property
    def tasks(self) -> list[Task]:
        """The tasks seen, in the order of the ids given."""
        return [self._tasks[index] for index in sorted(self._tasks)]

    def finish(self, *, json_document: bool = True) -> None:
        """Print the ``--json`` document; raise the one error, or a summary with the worst code."""
        from flux2_cli.jobs import as_seen_now

        output = self._ctx.output
        if json_document and output.json_mode:
            documents = [as_seen_now(task).to_json() for task in self.tasks]
            if self._single:
                if documents:
                    output.document(documents[0])
            else:
                output.document(documents)
        if not self._errors:
            return
        if self._single:
            raise self._errors[0][1]
        refs = ", ".join(ref for ref, _ in self._errors)
        summary = Flux2Error(f"{len(self._errors)} of {self._total} tasks {self._summary}: {refs}")
        summary.exit_code = max(exc.exit_code for _, exc in self._errors)
        raise summary
