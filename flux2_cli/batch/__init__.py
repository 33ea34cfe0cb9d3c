"""``flux2 batch``: many prompts from a manifest, concurrently, resumable, with a lock file.

Modules, in the order a run uses them:

- ``manifest``  reading and checking JSON Lines, CSV and text manifests, line by line
- ``plan``      each entry's neutral request, fingerprint and output folder; stable shards
- ``lock``      ``FILE.lock.json``: what each entry produced, to skip it or ``--check`` it
- ``decide``    per entry: skip, download, poll (resume), submit, or an unknown outcome
- ``runner``    the workers, the shared 429 gate and the learned task duration
- ``flow``      the command from start to end: dry run, max cost, check, execute, summary

No module here imports Typer; ``commands/batch.py`` parses the flags and calls ``run_batch``.
"""

from flux2_cli.batch.flow import BatchError, run_batch
from flux2_cli.batch.manifest import ManifestError
from flux2_cli.batch.plan import parse_shard
from flux2_cli.batch.runner import BatchOptions

__all__ = [
    "BatchError",
    "BatchOptions",
    "ManifestError",
    "parse_shard",
    "run_batch",
]
