#!/usr/bin/env python3
"""Start-up ratios: `flux2 --version` vs `python -c pass`; --help and a Tab press vs `import typer`.

Run from the repository root with the project venv: ``.venv/bin/python benchmarks/startup.py``.
By default a ``time.perf_counter`` loop runs the cases interleaved, round after round (median of
``--runs``), so load drift on a busy machine hits every case alike; ``--hyperfine`` uses
hyperfine instead (one invocation, every command through ``env`` so the environment variables
of a completion request cost the baselines the same; mean of ``--runs``). Ratios are taken
within one run, so the machine's speed cancels out. Bytecode is compiled first, as an installer
would do (``PYTHONDONTWRITEBYTECODE`` would otherwise recompile flux2_cli on every start).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COMPLETE = {"_FLUX2_COMPLETE": "complete_bash", "COMP_WORDS": "flux2 ge", "COMP_CWORD": "1"}
COMPLETE_RATIO = {
    "_FLUX2_COMPLETE": "complete_bash",
    "COMP_WORDS": "flux2 gen --ratio ",
    "COMP_CWORD": "3",
}
# uv's console-script wrapper (no `import re`, unlike pip's): what `uv tool install` writes.
UV_WRAPPER = """#!{python}
import sys
from flux2_cli._entry import main
if __name__ == "__main__":
    sys.exit(main())
"""


def cases(uv_wrapper: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Name -> (argv, extra environment)."""
    py = sys.executable
    flux2 = str(BIN / "flux2")
    return {
        "python -c pass": ([py, "-c", "pass"], {}),
        "flux2 --version (pip wrapper)": ([flux2, "--version"], {}),
        "flux2 --version (uv wrapper)": ([str(uv_wrapper), "--version"], {}),
        "python -c 'import typer'": ([py, "-c", "import typer"], {}),
        "flux2 --help": ([flux2, "--help"], {"COLUMNS": "100"}),
        "completion: flux2 ge<TAB>": ([flux2], COMPLETE),
        "completion: flux2 gen --ratio <TAB>": ([flux2], COMPLETE_RATIO),
    }


def time_with_hyperfine(
    table: dict[str, tuple[list[str], dict[str, str]]], runs: int
) -> dict[str, float]:
    """Mean seconds per case, measured by one hyperfine invocation."""
    commands = []
    for argv, extra in table.values():
        assignments = [f"{key}={value}" for key, value in extra.items()]
        commands.append(" ".join(f"'{part}'" for part in ["/usr/bin/env", *assignments, *argv]))
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [
                *("hyperfine", "-N", "--warmup", "5", "--runs", str(runs), "--style", "none"),
                *("--export-json", out.name, *commands),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        data = json.loads(Path(out.name).read_text())
    return {
        name: float(result["mean"]) for name, result in zip(table, data["results"], strict=True)
    }


def time_with_loop(
    table: dict[str, tuple[list[str], dict[str, str]]], runs: int
) -> dict[str, float]:
    """Median seconds per case; the cases are interleaved so drift hits them all alike."""
    samples: dict[str, list[float]] = {name: [] for name in table}
    for index in range(runs + 3):
        for name, (argv, extra) in table.items():
            start = time.perf_counter()
            subprocess.run(argv, env={**os.environ, **extra}, stdout=subprocess.DEVNULL, check=True)
            if index >= 3:  # warm-up rounds
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    """Measure, print a Markdown table with the ratios and goals, optionally save JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--hyperfine", action="store_true", help="time with hyperfine")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    compileall.compile_dir(str(ROOT / "flux2_cli"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp, "flux2")
        wrapper.write_text(UV_WRAPPER.format(python=sys.executable))
        wrapper.chmod(0o755)
        table = cases(wrapper)
        use_hyperfine = args.hyperfine
        if use_hyperfine and shutil.which("hyperfine") is None:
            parser.error("hyperfine is not on PATH")
        timer = time_with_hyperfine if use_hyperfine else time_with_loop
        seconds = timer(table, args.runs)

    base, typer_import = seconds["python -c pass"], seconds["python -c 'import typer'"]
    rows = [
        ("flux2 --version (pip wrapper)", base, "python -c pass", 1.3),
        ("flux2 --version (uv wrapper)", base, "python -c pass", 1.3),
        ("completion: flux2 ge<TAB>", typer_import, "import typer", 1.5),
        ("completion: flux2 gen --ratio <TAB>", typer_import, "import typer", 1.5),
        ("flux2 --help", typer_import, "import typer", 2.2),
    ]
    tool = "hyperfine (mean)" if use_hyperfine else "perf_counter loop (median)"
    print(f"timer: {tool}, {args.runs} runs; python {sys.version.split()[0]}\n")
    print("| command | ms | baseline | baseline ms | ratio | goal |")
    print("| --- | ---: | --- | ---: | ---: | --- |")
    report = {"timer": tool, "runs": args.runs, "seconds": seconds, "ratios": {}}
    for name, reference, reference_name, goal in rows:
        ratio = seconds[name] / reference
        report["ratios"][name] = ratio  # type: ignore[index]
        verdict = "met" if ratio <= goal else "missed"
        print(
            f"| `{name}` | {seconds[name] * 1e3:.1f} | `{reference_name}` | "
            f"{reference * 1e3:.1f} | {ratio:.2f}× | ≤ {goal}× {verdict} |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
