"""Tab completion values: config keys, profile names, recent task ids (never files).

Each completer imports only what it needs at the moment of a Tab press: only the task-id
completer opens the ledger (sqlite3); the others read the config file at most.
"""

from __future__ import annotations

from typing import Any

RECENT_TASKS = 30  # ids offered for status/download: the newest ones
PROMPT_HELP_CHARS = 50


def _matching(values: Any, incomplete: str) -> list[str]:
    wanted = incomplete.lower()
    return [value for value in values if value.lower().startswith(wanted)]


def config_keys(incomplete: str) -> list[str]:
    """The keys ``config set/get/unset`` take."""
    from flux2_cli.config import ALL_KEYS

    return _matching(ALL_KEYS, incomplete)


def profile_names(incomplete: str) -> list[str]:
    """The ``[profiles.NAME]`` tables of the config file (none when it cannot be read)."""
    from flux2_cli.config import PROFILES_TABLE, load_config

    try:
        profiles = load_config().get(PROFILES_TABLE)
    except Exception:  # a Tab press never fails loudly; `flux2 config list` explains
        return []
    return _matching(sorted(profiles), incomplete) if isinstance(profiles, dict) else []


def config_values(key: str | None, incomplete: str) -> list[str]:
    """Values for ``config set KEY <TAB>`` where the key has a fixed set of them."""
    from flux2_cli.providers import provider_ids
    from flux2_cli.request import FORMATS, MODES, RATIOS, RESOLUTIONS

    choices: dict[str, Any] = {
        "provider": provider_ids(),
        "mode": MODES,
        "ratio": RATIOS,
        "res": RESOLUTIONS,
        "format": FORMATS,
    }
    if key == "profile":
        return profile_names(incomplete)
    return _matching(choices.get(key or "", ()), incomplete)


def task_ids(incomplete: str) -> list[tuple[str, str]]:
    """The newest task ids in the ledger, then ``last``; nothing when there is no ledger.

    Each with its status and prompt as the help text (zsh, fish and PowerShell show it).
    """
    from flux2_cli.ledger import LAST_ALIAS, Ledger, default_path

    path = default_path()
    if not path.is_file():
        return []  # a Tab press must not create the ledger
    try:
        with Ledger(path) as ledger:
            recent = ledger.recent_tasks(RECENT_TASKS)
    except Exception:  # a busy or damaged ledger: offer nothing rather than a traceback
        return []
    wanted = incomplete.lower()
    offered = [
        (task_id, f"{status} · {' '.join(prompt.split())[:PROMPT_HELP_CHARS]}")
        for task_id, status, prompt in recent
        if task_id.lower().startswith(wanted)
    ]
    if recent and LAST_ALIAS.startswith(wanted):
        offered.append((LAST_ALIAS, f"the newest task ({recent[0][0]})"))
    return offered
