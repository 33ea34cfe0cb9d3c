"""`flux2 providers` for people: no URL or price split mid-token; tab-separated when piped."""

from __future__ import annotations

from pathlib import Path

from flux2_cli.providers import get_provider, provider_ids
from tests.helpers import run_cli, run_in_terminal


def test_piped_providers_are_tab_separated_rows() -> None:
    # Before: a Rich table with box drawing, cells folded over several lines.
    result = run_cli(["providers"])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[0] for row in rows] == list(provider_ids())
    assert all(len(row) == 7 for row in rows)
    assert rows[0][1] == get_provider(rows[0][0]).capabilities.base_url


def test_on_a_narrow_terminal_urls_stay_whole(tmp_path: Path) -> None:
    text = run_in_terminal(["providers"], 60, tmp_path)
    for provider_id in provider_ids():
        url = get_provider(provider_id).capabilities.base_url
        assert f"  base URL    {url}\n" in text
    assert all(len(line) <= 60 for line in text.splitlines() if " " in line.strip())
