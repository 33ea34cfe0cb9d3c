"""batch/merge.py: the rule that folds shards' lock records into the manifest's."""

from __future__ import annotations

from typing import Any

from flux2_cli.batch.merge import EntryRef, merge_records

FOX = EntryRef("fox", "f" * 64, 1)
OWL = EntryRef("owl", "0" * 64, 2)


def record(task_id: str | None, state: str = "finished", **extra: Any) -> dict[str, Any]:
    fingerprint = extra.pop("fingerprint", "f" * 64)
    return {"state": state, "fingerprint": fingerprint, "task_id": task_id, **extra}


def test_disjoint_shards_are_folded_and_the_current_lock_keeps_untouched_entries() -> None:
    owl = record("t-owl", fingerprint="0" * 64)
    result = merge_records(
        [FOX, OWL],
        {"owl": owl},
        [("a.lock.json", {"fox": record("t1")}), ("b.lock.json", {})],
    )
    assert result.records == {"fox": record("t1"), "owl": owl}
    assert result.merged == 1 and not result.conflicts and not result.dropped


def test_the_same_task_told_twice_keeps_the_furthest_state() -> None:
    submitted = record("t1", "submitted")
    finished = record("t1", outputs=[{"path": "out/fox.png", "sha256": "x"}])
    for order in ([submitted, finished], [finished, submitted]):
        sources = [(f"{n}.lock.json", {"fox": item}) for n, item in enumerate(order)]
        result = merge_records([FOX], {}, sources)
        assert result.records["fox"] == finished and not result.conflicts


def test_a_record_with_no_task_yields_to_one_with_a_task() -> None:
    result = merge_records(
        [FOX], {}, [("a", {"fox": record(None, "submitting")}), ("b", {"fox": record("t2")})]
    )
    assert result.records["fox"]["task_id"] == "t2" and not result.conflicts


def test_different_tasks_for_one_entry_are_a_conflict_left_out_of_the_merge() -> None:
    result = merge_records(
        [FOX, OWL],
        {"fox": record("t0")},
        [
            ("shard-1/m.lock.json", {"fox": record("t1")}),
            ("shard-2/m.lock.json", {"fox": record("t2", "submitted")}),
        ],
    )
    (conflict,) = result.conflicts
    assert conflict.describe() == (
        "fox (line 1): task t1, finished (shard-1/m.lock.json) vs "
        "task t2, submitted (shard-2/m.lock.json)"
    )
    assert "fox" not in result.records  # not silently resolved, not the old record either


def test_records_of_entries_not_in_the_manifest_are_dropped_and_renamed_ones_matched() -> None:
    renamed = record("t-owl", fingerprint="0" * 64)
    result = merge_records(
        [FOX, OWL],
        {},
        [("a", {"gone": record("t9", fingerprint="9" * 64), "#2": renamed})],
    )
    assert result.dropped == [("a", "gone")]
    assert result.records == {"owl": renamed}
