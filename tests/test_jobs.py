"""The poll schedule and the interruption guard."""

from __future__ import annotations

import random

import pytest

from flux2_cli import jobs
from flux2_cli.errors import InterruptedError_, TerminatedSignal


def test_poll_intervals_grow_from_the_first_to_the_cap_with_jitter() -> None:
    schedule = jobs.poll_intervals(1.0, random.Random(3))
    values = [next(schedule) for _ in range(12)]
    assert 0.9 <= values[0] <= 1.1
    assert values[1] > values[0] * 1.2  # growing
    assert all(value <= jobs.POLL_CAP_S * 1.1 for value in values)
    assert values[-1] >= jobs.POLL_CAP_S * 0.9  # reaches the cap
    assert len({round(value, 6) for value in values[-4:]}) > 1  # jittered, not lock-step


@pytest.mark.parametrize(
    ("raised", "code", "word"),
    [(KeyboardInterrupt, 130, "interrupted"), (TerminatedSignal, 143, "terminated")],
)
def test_interruptible_names_the_task_and_the_resume_commands(
    raised: type[BaseException], code: int, word: str
) -> None:
    with pytest.raises(InterruptedError_) as info, jobs.interruptible("task-9"):
        raise raised()
    assert info.value.exit_code == code
    assert word in info.value.message
    hints = "\n".join(info.value.hints)
    assert "flux2 status task-9 --wait" in hints and "flux2 download task-9" in hints


def test_interrupted_during_submission_says_the_outcome_is_unknown() -> None:
    with pytest.raises(InterruptedError_) as info, jobs.interruptible(None):
        raise KeyboardInterrupt()
    assert "outcome is unknown" in info.value.message
