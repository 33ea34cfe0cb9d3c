"""The one error tree of flux2; every class carries the exit code the CLI maps it to.

::

    Flux2Error (1)                      base; anything unexpected is also exit 1
    ├── UsageError (2)                  bad flags or input, caught before any request
    │   └── ConfigError (2)             unreadable or invalid config file
    ├── UnexpectedResponseError (1)     a 2xx answer we cannot read (no task id, bad JSON)
    ├── ApiError                        the service answered with an HTTP error
    │   ├── BadRequestError (2)         400 / 422: the server refused the request's content
    │   ├── AuthError (3)               401 / 403, or no key at all
    │   ├── CreditsError (4)            402, vtrix's 403 "insufficient balance"
    │   ├── NotFoundError (5)           404 on a task: unknown or expired
    │   ├── RateLimitError (7)          429 after retries, or a Retry-After too long to wait
    │   └── ServerError (7)             5xx after retries (or at once for a paid POST)
    ├── ServiceUnavailableError (7)     connection failures, timeouts after retries
    │   ├── SubmissionUnknownError (7)  the paid POST may or may not have created a task
    │   └── DeadlineError (7)           no complete answer before the call's deadline
    ├── TaskFailedError (5)             the task itself failed or was moderated
    ├── WaitTimeoutError (6)            --timeout passed; the task goes on
    ├── DownloadError (8)               an image could not be fetched or written
    │   └── UrlExpiredError (8)         403/404/410 or an XML/HTML answer on an image URL
    └── InterruptedError_ (130 / 143)   Ctrl-C or SIGTERM
"""

from __future__ import annotations

EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_CREDITS = 4
EXIT_TASK_FAILED = 5
EXIT_TIMEOUT = 6
EXIT_SERVICE = 7
EXIT_DOWNLOAD = 8
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Flux2Error(Exception):
    """Base of every error flux2 raises on purpose; ``hints`` are extra lines for people."""

    exit_code: int = EXIT_UNEXPECTED

    def __init__(self, message: str, *, hints: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hints: list[str] = list(hints or [])


class UsageError(Flux2Error):
    """Invalid flags or input, refused before any request is sent."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """The config file cannot be read or holds an invalid value."""


class UnexpectedResponseError(Flux2Error):
    """A successful HTTP answer that does not hold what the API documents."""

    exit_code = EXIT_UNEXPECTED


class ApiError(Flux2Error):
    """The service answered with an HTTP error status."""

    exit_code = EXIT_SERVICE

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        hints: list[str] | None = None,
    ) -> None:
        super().__init__(message, hints=hints)
        self.status_code = status_code
        self.code = code


class BadRequestError(ApiError):
    """400 / 422: the server refused the content of the request."""

    exit_code = EXIT_USAGE


class AuthError(ApiError):
    """No API key, or the key was refused (401 / 403)."""

    exit_code = EXIT_AUTH


class CreditsError(ApiError):
    """Out of credits or payment required."""

    exit_code = EXIT_CREDITS


class NotFoundError(ApiError):
    """404 on a task: unknown to the service or expired."""

    exit_code = EXIT_TASK_FAILED


class RateLimitError(ApiError):
    """429 that outlasted the retries, or asked for a wait too long to honour.

    ``retry_after``: the server's ``Retry-After`` header, as given (batch's shared pause).
    """

    exit_code = EXIT_SERVICE
    retry_after: str | None = None


class ServerError(ApiError):
    """5xx from the service."""

    exit_code = EXIT_SERVICE


class ServiceUnavailableError(Flux2Error):
    """The service could not be reached (connection errors, timeouts) after retries."""

    exit_code = EXIT_SERVICE


class SubmissionUnknownError(ServiceUnavailableError):
    """The paid POST may have reached the server; it is not repeated automatically."""


class DeadlineError(ServiceUnavailableError):
    """A call's deadline (``--timeout``) passed before a complete answer came."""


class TaskFailedError(Flux2Error):
    """The task failed or was moderated on the provider's side."""

    exit_code = EXIT_TASK_FAILED

    def __init__(
        self,
        message: str,
        *,
        task_id: str | None = None,
        code: str | None = None,
        hints: list[str] | None = None,
        task: object | None = None,
    ) -> None:
        super().__init__(message, hints=hints)
        self.task_id = task_id
        self.code = code
        self.task = task  # the failed Task, for --json output


class WaitTimeoutError(Flux2Error):
    """The task did not finish within ``--timeout``; it goes on at the provider."""

    exit_code = EXIT_TIMEOUT

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        hints: list[str] | None = None,
        task: object | None = None,
    ) -> None:
        super().__init__(message, hints=hints)
        self.task_id = task_id
        self.task = task  # the Task as last seen, for --json output


class DownloadError(Flux2Error):
    """An image could not be downloaded or written."""

    exit_code = EXIT_DOWNLOAD


class UrlExpiredError(DownloadError):
    """The image URL answered 403/404/410 or a storage error page: it has expired."""


class InterruptedError_(Flux2Error):
    """Ctrl-C (exit 130) or SIGTERM (exit 143) while a task was in flight."""

    def __init__(self, message: str, *, exit_code: int, hints: list[str] | None = None) -> None:
        super().__init__(message, hints=hints)
        self.exit_code = exit_code


def resume_hints(task_id: str) -> list[str]:
    """The commands that pick a still-running task up again."""
    return [
        f"The task {task_id} is still running at the provider; nothing is lost.",
        f"  flux2 status {task_id} --wait",
        f"  flux2 download {task_id}",
    ]


def gone_hints(task_id: str, command: str) -> list[str]:
    """After an expired URL: the images are gone (a status look-up would show the same dead
    URL), and the command that generates them again."""
    return [
        f"The images of task {task_id} are gone: result URLs live about 24 hours (BFL's ten "
        "minutes), and the provider had no fresh one.",
        "Generate them again (a new task, paid again):",
        f"  {command}",
    ]


class TerminatedSignal(BaseException):
    """Raised by the SIGTERM handler so that ``finally`` blocks run (temp files removed)."""


class InterruptSignal(BaseException):
    """Raised by the SIGINT handler; Click turns KeyboardInterrupt into exit 1, not this."""
