"""Test isolation: config, data and cache dirs under tmp_path; no real key or provider leaks in."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

SENTINEL_KEY = "sk-sentinel-9f8e7d6c5b4a-DO-NOT-LEAK"

_CLEARED = (
    "FLUX2_API_KEY",
    "FLUX2_PROVIDER",
    "FLUX2_BASE_URL",
    "FLUX2_PROFILE",
    "FLUX2_SANDBOX_FAULTS",
    "APIINONE_API_KEY",
    "APIMART_API_KEY",
    "VTRIX_API_KEY",
    "BFL_API_KEY",
    "CI",
    "NO_COLOR",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "https_proxy",
    "http_proxy",
    # CI variables that switch on annotations, step summaries and `--shard auto`.
    "GITHUB_ACTIONS",
    "GITHUB_STEP_SUMMARY",
    "CI_NODE_INDEX",
    "CI_NODE_TOTAL",
    "CIRCLE_NODE_INDEX",
    "CIRCLE_NODE_TOTAL",
    "BUILDKITE_PARALLEL_JOB",
    "BUILDKITE_PARALLEL_JOB_COUNT",
    "JOB_COMPLETION_INDEX",
    "FLUX2_SHARD_TOTAL",
)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point every user directory flux2 uses at tmp_path, and clear key variables."""
    home = tmp_path / "flux2-home"
    monkeypatch.setenv("FLUX2_CONFIG", str(home / "config" / "config.toml"))
    monkeypatch.setenv("FLUX2_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("FLUX2_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("FLUX2_SANDBOX_DIR", str(home / "sandbox"))
    monkeypatch.setenv("FLUX2_SANDBOX_LATENCY", "0")
    monkeypatch.setenv("COLUMNS", "200")
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    yield home


@pytest.fixture
def sentinel_key() -> str:
    """The one fixture API key: it must never appear in any output."""
    return SENTINEL_KEY


SWEEP_MAX_FILE_BYTES = 20 * 1024 * 1024
SWEEP_EXEMPT_NAMES = frozenset({"config.toml"})


@pytest.fixture(autouse=True)
def sentinel_sweep(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Fail any test whose CLI output, or any file it wrote, holds the sentinel key.

    The config file is exempt (it is where a key belongs). A test that must print the key
    (``flux2 config get api_key``) opts out with ``@pytest.mark.allow_key_in_output``.
    """
    results: list[Any] = []
    original = CliRunner.invoke

    def recording_invoke(self: CliRunner, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        results.append(result)
        return result

    monkeypatch.setattr(CliRunner, "invoke", recording_invoke)
    yield
    if request.node.get_closest_marker("allow_key_in_output"):
        return
    needle = SENTINEL_KEY.encode()
    for result in results:
        for name in ("stdout_bytes", "stderr_bytes"):
            data = getattr(result, name, b"") or b""
            assert needle not in data, f"sentinel key leaked on CLI {name}"
    for path in tmp_path.rglob("*"):
        if path.name in SWEEP_EXEMPT_NAMES or not path.is_file() or path.is_symlink():
            continue
        try:
            if path.stat().st_size > SWEEP_MAX_FILE_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        assert needle not in data, f"sentinel key written to {path}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    """Also sweep pytest's own captured stdout, stderr and log records."""
    report = yield
    if (
        report.when == "call"
        and report.passed
        and not item.get_closest_marker("allow_key_in_output")
    ):
        for title, content in report.sections:
            if SENTINEL_KEY in content:
                report.outcome = "failed"
                report.longrepr = f"sentinel key leaked in captured {title}"
    return report
