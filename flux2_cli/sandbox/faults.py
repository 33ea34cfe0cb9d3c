"""Fault injection for the sandbox: rates and counts from a string, and prompt markers.

Faults by rate or count are set with ``flux2 sandbox serve --faults SPEC`` (or
``FLUX2_SANDBOX_FAULTS`` for the embedded mode). ``SPEC`` is a comma-separated list of
``KIND=RATE`` (a probability, 0 to 1) or ``KIND=#N`` (the first N requests that the kind can
apply to), plus ``retry_after=SECONDS`` (for 429, default 1) and ``seed=N`` (the random
generator's seed; ``--fault-seed`` overrides it)::

    429=0.2,500=0.1,drop=0.05,slow=0.1,truncate=0.1,html=0.05,fail=0.1,moderate=0.05,retry_after=2
    429=#3

======================  ====================================================================
kind                    effect (and which requests it applies to)
======================  ====================================================================
``429``                 create or poll answered 429 with ``Retry-After`` (no task is created)
``500`` ``502`` ``503`` create or poll answered with that status (500 in the dialect's JSON
                        error shape; 502/503 as a proxy's HTML page); no task is created
``drop``                poll or image download: the connection closes after the headers
``slow``                image download sent in pieces with pauses (8 × 0.5 s by default)
``truncate``            image download: ``Content-Length`` says more than is sent
``html``                image download answered ``200 text/html`` (a portal's page)
``expired``             image download answered 403 XML ``AccessDenied``, as after the TTL
``fail``                the created task ends failed
``moderate``            the created task ends moderated
======================  ====================================================================

Markers in the prompt force an outcome without any setting (case-insensitive, anywhere in the
prompt, several may be combined):

========================  ==================================================================
marker                    outcome
========================  ==================================================================
``[sandbox:fail]``        the task ends failed (``generation failed``)
``[sandbox:moderate]``    the task ends moderated (bfl ``Content Moderated``, others failed
                          with code ``content_moderated``)
``[sandbox:slow]``        the task takes five times the configured latency
``[sandbox:never]``       the task never finishes (running forever)
``[sandbox:429]``         the first create of this request (same key and body) is answered
                          429 with ``Retry-After: 1``; the next one succeeds
``[sandbox:500]``         the first create of this request is answered 500; the next succeeds
``[sandbox:drop]``        the first poll of the task has its connection dropped
``[sandbox:html]``        the image URL answers an HTML page instead of the image
``[sandbox:truncate]``    the image URL declares the full ``Content-Length`` but sends half
``[sandbox:expired]``     the image URL is expired from the start (403 XML ``AccessDenied``)
``[sandbox:moderate_request]``  the task ends moderated before generating (bfl ``Request
                          Moderated`` with ``details: {"Moderation Reasons": [...]}``)
``[sandbox:lost]``        the first two polls answer "not found" (bfl: 200 ``Task not found``,
                          transient as BFL's can be right after a submit; others: 404)
``[sandbox:fail422]``     the task ends failed and its poll answers HTTP 422 with the task body
                          (``"status": "Error"``), as BFL's can
``[sandbox:bare_poll]``   bfl: the submit answer's ``polling_url`` has no ``?id=``
``[sandbox:lose_answer]`` the first create of this request makes (and charges) the task, then
                          the connection drops before the answer: a lost answer (APIMart
                          replays it for the same ``Idempotency-Key``)
========================  ==================================================================

Markers are deterministic; the "first …" ones are remembered in the state folder, so they hold
across processes. Counts (``#N``) are kept per running application (per process).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field

FAULT_KINDS: tuple[str, ...] = (
    "429",
    "500",
    "502",
    "503",
    "drop",
    "slow",
    "truncate",
    "html",
    "expired",
    "fail",
    "moderate",
)
# Which kinds each kind of request can draw, in the order they are drawn.
CREATE_FAULTS: tuple[str, ...] = ("429", "500", "502", "503")
POLL_FAULTS: tuple[str, ...] = ("429", "500", "502", "503", "drop")
FILE_FAULTS: tuple[str, ...] = ("drop", "expired", "html", "truncate", "slow")
OUTCOME_FAULTS: tuple[str, ...] = ("fail", "moderate")
DEFAULT_RETRY_AFTER = 1.0

MARKERS: tuple[str, ...] = (
    "fail",
    "moderate",
    "slow",
    "never",
    "429",
    "500",
    "drop",
    "html",
    "truncate",
    "expired",
    "moderate_request",
    "lost",
    "fail422",
    "bare_poll",
    "lose_answer",
)
_MARKER_RE = re.compile(r"\[sandbox:([a-z0-9_]+)\]", re.IGNORECASE)


@dataclass(frozen=True)
class FaultSettings:
    """Fault rates (0–1) and counts (first N eligible requests) by kind."""

    rates: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    retry_after: float = DEFAULT_RETRY_AFTER
    seed: int | None = None

    @property
    def active(self) -> bool:
        """True when any fault can fire."""
        return any(rate > 0 for rate in self.rates.values()) or any(
            count > 0 for count in self.counts.values()
        )

    def describe(self) -> str:
        """The settings back in the ``--faults`` syntax (for the start-up banner)."""
        parts = [f"{kind}={rate:g}" for kind, rate in self.rates.items()]
        parts += [f"{kind}=#{count}" for kind, count in self.counts.items()]
        if self.rates.get("429") or self.counts.get("429"):
            parts.append(f"retry_after={self.retry_after:g}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ",".join(parts) or "none"


def parse_faults(text: str | None, seed: int | None = None) -> FaultSettings:
    """Parse a ``--faults`` string; ValueError names the bad item. ``seed`` overrides ``seed=``."""
    rates: dict[str, float] = {}
    counts: dict[str, int] = {}
    retry_after = DEFAULT_RETRY_AFTER
    parsed_seed: int | None = None
    for raw_item in (text or "").split(","):
        item = raw_item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value:
            raise ValueError(f"{item!r} is not KIND=RATE or KIND=#COUNT")
        if key in ("retry_after", "retry-after"):
            retry_after = _number(item, value, 0, 86400 * 7)
        elif key == "seed":
            try:
                parsed_seed = int(value)
            except ValueError:
                raise ValueError(f"{item!r}: the seed must be an integer") from None
        elif key not in FAULT_KINDS:
            raise ValueError(f"unknown fault {key!r}; choose from {', '.join(FAULT_KINDS)}")
        elif value.startswith("#"):
            counts[key] = int(_number(item, value[1:], 0, 10**9, integer=True))
            rates.pop(key, None)
        else:
            rates[key] = _number(item, value, 0, 1)
            counts.pop(key, None)
    return FaultSettings(
        rates=rates,
        counts=counts,
        retry_after=retry_after,
        seed=seed if seed is not None else parsed_seed,
    )


def _number(item: str, value: str, low: float, high: float, *, integer: bool = False) -> float:
    try:
        number = float(int(value)) if integer else float(value)
    except ValueError:
        raise ValueError(f"{item!r}: {value!r} is not a number") from None
    if not low <= number <= high:
        raise ValueError(f"{item!r}: {value} is outside {low:g}–{high:g}")
    return number


def markers_in(prompt: str) -> frozenset[str]:
    """The documented markers present in a prompt (unknown ``[sandbox:…]`` words are ignored)."""
    return frozenset(word.lower() for word in _MARKER_RE.findall(prompt) if word.lower() in MARKERS)


class FaultInjector:
    """Draws faults for one running application: a seeded generator and per-kind counters."""

    def __init__(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._rng = random.Random(settings.seed)
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def draw(self, kinds: tuple[str, ...]) -> str | None:
        """The first of ``kinds`` that fires for this request, or None."""
        if not self.settings.active:
            return None
        with self._lock:
            for kind in kinds:
                if kind in self.settings.counts:
                    self._seen[kind] = self._seen.get(kind, 0) + 1
                    if self._seen[kind] <= self.settings.counts[kind]:
                        return kind
                elif kind in self.settings.rates and self._rng.random() < self.settings.rates[kind]:
                    return kind
        return None
