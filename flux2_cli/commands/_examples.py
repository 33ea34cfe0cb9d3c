"""The Examples section at the end of each command's ``--help``, as ``gh`` prints them.

Kept in one place so that ``cli.py`` attaches them to every command it registers (as the
commands' epilog); a test checks that every command has one.
"""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, tuple[str, ...]] = {
    "gen": (
        "flux2 gen 'a red fox in the snow' --sandbox  # try it offline, no key",
        "flux2 gen 'a red fox' -r 16:9 --res 2K -o out/",
        "flux2 gen 'a red fox' --ref sketch.png --seed 7 --provider bfl",
        "echo 'a red fox' | flux2 gen - --json | jq -r '.images[].path'",
        "flux2 gen 'a red fox' -o - > fox.png  # image bytes on stdout",
        "flux2 gen 'a red fox' --no-wait  # then: flux2 status ID --wait",
    ),
    "status": (
        "flux2 status TASK_ID",
        "flux2 status TASK_ID --wait",
        "flux2 status ID1 ID2 --json",
    ),
    "download": (
        "flux2 download TASK_ID -o out/",
        "flux2 download --pending",
    ),
    "history": (
        "flux2 history",
        "flux2 history --pending --limit 50",
        "flux2 history --json | jq -r '.[].task_id'",
    ),
    "credits": (
        "flux2 credits --provider bfl",
        "flux2 credits --provider bfl --sandbox --json",
    ),
    "providers": (
        "flux2 providers",
        "flux2 providers --json | jq '.[].id'",
    ),
    "batch": (
        "flux2 batch prompts.txt -o out/ --sandbox  # rehearse for free",
        "flux2 batch prompts.jsonl -o out/ --concurrency 8",
        "flux2 batch prompts.jsonl --check  # what is done, send nothing",
        "flux2 batch prompts.jsonl --shard auto --junit report.xml  # one CI job's share",
    ),
    "lock merge": (
        "flux2 lock merge prompts.jsonl shard-*/prompts.jsonl.lock.json",
        "flux2 batch prompts.jsonl --check  # then: every entry accounted for",
    ),
    "config set": (
        "flux2 config set provider bfl",
        "flux2 config set api_key -  # hidden prompt, or stdin",
        "flux2 config set --profile work ratio 16:9",
    ),
    "config get": ("flux2 config get provider", "flux2 config get --profile work ratio"),
    "config unset": ("flux2 config unset ratio",),
    "config list": ("flux2 config list", "flux2 config list --json"),
    "config path": ("flux2 config path",),
    "sandbox serve": (
        "flux2 sandbox serve  # http://127.0.0.1:8765",
        "flux2 sandbox serve --port 0 --latency 0.5  # a free port, printed first",
        "flux2 sandbox serve --faults '429=0.2,500=#1' --fault-seed 4",
        "flux2 gen 'a fox' --provider bfl --base-url http://127.0.0.1:8765 --api-key test",
    ),
}


def epilog(name: str) -> str | None:
    """The Examples block for the command called ``name`` (``"config set"``), if any."""
    lines = EXAMPLES.get(name)
    if not lines:
        return None
    # Escaped so that Rich keeps `[...]` and shows each example on its own line.
    return "Examples:\n" + "\n".join("  " + line.replace("[", "\\[") for line in lines)


def attach(app: Any, prefix: str = "") -> None:
    """Give every command registered on ``app`` (and its sub-apps) its Examples epilog."""
    for info in app.registered_commands:
        name = f"{prefix}{info.name or info.callback.__name__}"
        if info.epilog is None:
            info.epilog = epilog(name)
    for group in app.registered_groups:
        attach(group.typer_instance, f"{prefix}{group.name} ")
