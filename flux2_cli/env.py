"""Every environment variable flux2 reads, and the user directories they can redirect."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

APP_NAME = "flux2"

FLUX2_CONFIG = "FLUX2_CONFIG"  # path of config.toml
FLUX2_DATA_DIR = "FLUX2_DATA_DIR"  # folder of the ledger (ledger.sqlite3)
FLUX2_CACHE_DIR = "FLUX2_CACHE_DIR"  # folder of caches (the embedded sandbox's state lives here)
FLUX2_API_KEY = "FLUX2_API_KEY"
FLUX2_PROVIDER = "FLUX2_PROVIDER"
FLUX2_BASE_URL = "FLUX2_BASE_URL"
FLUX2_PROFILE = "FLUX2_PROFILE"
FLUX2_SANDBOX_DIR = "FLUX2_SANDBOX_DIR"  # state folder of the sandbox (overrides the cache dir)
FLUX2_SANDBOX_LATENCY = "FLUX2_SANDBOX_LATENCY"  # seconds a sandbox task takes (embedded mode)
FLUX2_SANDBOX_FAULTS = "FLUX2_SANDBOX_FAULTS"  # fault settings for the embedded sandbox
CI = "CI"
NO_COLOR = "NO_COLOR"
GITHUB_ACTIONS = "GITHUB_ACTIONS"  # "true" on GitHub Actions: ::error annotations
GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"  # file the job's Markdown summary is appended to
FLUX2_SHARD_TOTAL = "FLUX2_SHARD_TOTAL"  # shard count beside Kubernetes' JOB_COMPLETION_INDEX

# `--shard auto`: each CI's (index, total) variables, and whether its index counts from 1.
SHARD_VARIABLES: tuple[tuple[str, str, int], ...] = (
    ("CI_NODE_INDEX", "CI_NODE_TOTAL", 1),  # GitLab `parallel: N`
    ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0),  # CircleCI `parallelism: N`
    ("BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0),  # Buildkite `parallelism`
    ("JOB_COMPLETION_INDEX", FLUX2_SHARD_TOTAL, 0),  # Kubernetes Indexed Jobs
)

# After FLUX2_API_KEY in precedence: each provider's own variable.
PROVIDER_KEY_VARS: dict[str, str] = {
    "apiinone": "APIINONE_API_KEY",
    "apimart": "APIMART_API_KEY",
    "vtrix": "VTRIX_API_KEY",
    "bfl": "BFL_API_KEY",
}


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The user data dir (the ledger), or ``FLUX2_DATA_DIR``."""
    override = _environ(env).get(FLUX2_DATA_DIR)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The user cache dir, or ``FLUX2_CACHE_DIR``."""
    override = _environ(env).get(FLUX2_CACHE_DIR)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def config_file(env: Mapping[str, str] | None = None) -> Path:
    """``config.toml`` in the user config dir, or the file ``FLUX2_CONFIG`` names."""
    override = _environ(env).get(FLUX2_CONFIG)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


def sandbox_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the sandbox keeps its tasks, images and balances."""
    override = _environ(env).get(FLUX2_SANDBOX_DIR)
    if override:
        return Path(override)
    return cache_dir(env) / "sandbox"


def is_ci(env: Mapping[str, str] | None = None) -> bool:
    """True when ``CI`` is set to anything but an empty string, 0 or false."""
    value = _environ(env).get(CI, "")
    return value.strip().lower() not in ("", "0", "false", "no")


def is_github_actions(env: Mapping[str, str] | None = None) -> bool:
    """True on a GitHub Actions runner (``GITHUB_ACTIONS=true``)."""
    return _environ(env).get(GITHUB_ACTIONS, "").strip().lower() == "true"
