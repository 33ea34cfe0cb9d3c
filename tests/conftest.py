"""Test isolation: config, data and cache dirs under tmp_path; no real key or provider leaks in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
