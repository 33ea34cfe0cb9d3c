"""End to end: the steps of action.yml and examples/ run as separate CI runners on the sandbox.

Each runner is its own copy of the workspace with its own HOME, config, data and cache folders
(an empty ledger, as on a fresh CI machine); what one job hands the next travels only as the
files its artifacts would carry. The shell of the steps is taken from the YAML files themselves,
so a broken script in an example fails here; only the installation steps (pip) are left out:
the flux2 under test is on PATH instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import FLUX2_BIN, RUN_TIMEOUT, TEST_KEY, SandboxServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sys.platform == "win32", reason="the examples' steps are bash"),
]

ROOT = Path(__file__).resolve().parents[2]
SHARDS = 3
ENTRIES = 12
MANIFEST = "assets/prompts.jsonl"


def load_yaml(path: Path) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def make_workspace(folder: Path) -> Path:
    """A checkout of the repository the pipeline runs in: the manifest and nothing else."""
    (folder / "assets").mkdir(parents=True)
    (folder / MANIFEST).write_text(
        "".join(json.dumps({"prompt": f"a lighthouse at dusk, view {n}"}) + "\n" for n in range(12))
    )
    return folder


def runner_env(runner: Path, server: SandboxServer, **extra: str) -> dict[str, str]:
    """A fresh machine: own HOME and flux2 folders, the sandbox server as the provider."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FLUX2_", "CI_NODE", "GITHUB_"))
    }
    home = runner / "machine"
    env.update(
        HOME=str(home),
        FLUX2_CONFIG=str(home / "config" / "config.toml"),
        FLUX2_DATA_DIR=str(home / "data"),
        FLUX2_CACHE_DIR=str(home / "cache"),
        FLUX2_SANDBOX_DIR=str(home / "sandbox"),
        FLUX2_PROVIDER="apiinone",
        FLUX2_BASE_URL=server.url,
        FLUX2_API_KEY=TEST_KEY,
        PATH=f"{FLUX2_BIN.parent}{os.pathsep}{env.get('PATH', '')}",
        CI="true",
    )
    env.update(extra)
    return env


def sh(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One CI step: its script in bash, as the runner would."""
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def copy_paths(source: Path, target: Path, paths: list[str]) -> None:
    """What an artifact carries from one job's workspace into another's."""
    for pattern in paths:
        for found in source.glob(pattern.rstrip("/")):
            destination = target / found.relative_to(source)
            if found.is_dir():
                shutil.copytree(found, destination, dirs_exist_ok=True)
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(found, destination)


def images(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("*.png") if not path.name.startswith("."))


def test_gitlab_example_three_parallel_jobs_then_merge_and_check(
    sandbox_server: Any, tmp_path: Path
) -> None:
    server: SandboxServer = sandbox_server(latency=0.2)
    pipeline = load_yaml(ROOT / "examples" / "gitlab-ci.yml")
    generate, merge = pipeline["generate"], pipeline["merge"]
    assert generate["parallel"] == SHARDS
    runners = []
    for index in range(1, SHARDS + 1):
        runner = make_workspace(tmp_path / f"runner-{index}")
        env = runner_env(runner, server, CI_NODE_INDEX=str(index), CI_NODE_TOTAL=str(SHARDS))
        for line in generate["script"]:
            ok(sh(line, runner, env))
        for line in generate["after_script"]:
            ok(sh(line, runner, env))
        runners.append(runner)
    assert server.tasks_created() == ENTRIES
    assert sum(len(images(runner / "assets" / "out")) for runner in runners) == ENTRIES
    for index, runner in enumerate(runners, start=1):
        suite = (runner / "reports" / f"flux2-{index}.xml").read_text()
        assert 'failures="0"' in suite and 'errors="0"' in suite

    final = make_workspace(tmp_path / "merge")
    for runner in runners:  # GitLab extracts every needed job's artifacts into the workspace
        copy_paths(runner, final, generate["artifacts"]["paths"])
    env = runner_env(final, server)
    results = [ok(sh(line, final, env)) for line in merge["script"]]

    assert "Merged 3 lock files" in results[0].stderr
    assert f"All {ENTRIES} entries are up to date" in results[1].stderr
    assert server.tasks_created() == ENTRIES  # the merge and the check sent nothing
    lock = json.loads((final / f"{MANIFEST}.lock.json").read_text())
    assert len(lock["entries"]) == ENTRIES


def action_step(action: dict[str, Any], name: str) -> dict[str, Any]:
    return next(step for step in action["runs"]["steps"] if step["name"] == name)


def workflow_step(job: dict[str, Any], name: str) -> dict[str, Any]:
    return next(step for step in job["steps"] if step.get("name") == name)


def action_inputs(action: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """``INPUT_*`` as the action's env block maps them, defaults filled in."""
    values = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    values.update(given)
    env = {}
    for variable, template in action_step(action, "Run flux2 batch")["env"].items():
        name = template.removeprefix("${{ inputs.").removesuffix(" }}")
        env[variable] = values[name]
    return env


def test_github_example_matrix_then_merge_job_through_the_action(
    sandbox_server: Any, tmp_path: Path
) -> None:
    server: SandboxServer = sandbox_server(latency=0.2)
    action = load_yaml(ROOT / "action.yml")
    workflow = load_yaml(ROOT / "examples" / "github-actions.yml")
    generate, merge = workflow["jobs"]["generate"], workflow["jobs"]["merge"]
    run_action = action_step(action, "Run flux2 batch")["run"]
    gathered_root = tmp_path / "artifacts"
    for shard in generate["strategy"]["matrix"]["shard"]:
        runner = make_workspace(tmp_path / f"runner-{shard}")
        temp = runner / "runner-temp"
        # The action's install step, done: its venv's flux2 is the one under test.
        (temp / "flux2-venv" / "bin").mkdir(parents=True)
        (temp / "flux2-venv" / "bin" / "flux2").symlink_to(FLUX2_BIN)
        step = next(step for step in generate["steps"] if "flux2" in step.get("uses", ""))
        given = {
            key: str(value).replace("${{ matrix.shard }}", str(shard))
            for key, value in step["with"].items()
            if key != "api-key"
        }
        github = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(runner),
            "GITHUB_STEP_SUMMARY": str(runner / "step-summary.md"),
        }
        env = runner_env(
            runner, server, RUNNER_TEMP=str(temp), **github, **action_inputs(action, given)
        )
        ran = ok(sh(run_action, runner, env))
        assert "::error" not in ran.stderr  # nothing failed, nothing annotated
        summary = (runner / "step-summary.md").read_text()
        assert f"### flux2 batch `{MANIFEST}`" in summary and "| 4 | 0 | 0 | 0 |" in summary
        keep = workflow_step(generate, "Keep this shard's lock file apart from the others")
        ok(sh(keep["run"], runner, runner_env(runner, server, SHARD=str(shard))))
        upload = workflow_step(
            generate, "Save the lock file, journal and images, even when cancelled"
        )
        assert upload["if"] == "always()"
        copy_paths(
            runner,
            gathered_root / "gathered" / f"flux2-shard-{shard}",
            upload["with"]["path"].split(),
        )
    assert server.tasks_created() == ENTRIES

    final = make_workspace(tmp_path / "merge")
    shutil.copytree(gathered_root / "gathered", final / "gathered")  # download-artifact
    env = runner_env(final, server)
    ok(sh(workflow_step(merge, "Put the images in place")["run"], final, env))
    assert len(images(final / "assets" / "out")) == ENTRIES
    temp = final / "runner-temp"
    (temp / "flux2-venv" / "bin").mkdir(parents=True)
    (temp / "flux2-venv" / "bin" / "flux2").symlink_to(FLUX2_BIN)
    step = next(step for step in merge["steps"] if "flux2" in step.get("uses", ""))
    given = {key: str(value) for key, value in step["with"].items()}
    result = ok(
        sh(
            run_action,
            final,
            runner_env(final, server, RUNNER_TEMP=str(temp), **action_inputs(action, given)),
        )
    )

    assert "Merged 3 lock files" in result.stderr
    assert f"All {ENTRIES} entries are up to date" in result.stderr
    assert server.tasks_created() == ENTRIES
    assert 'failures="0"' in (final / "reports" / "flux2-check.xml").read_text()


def start_flux2(
    args: list[str], cwd: Path, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with open(log, "wb") as handle:
        return subprocess.Popen(
            [str(FLUX2_BIN), *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
        )


def stop_after_first_image(
    process: subprocess.Popen[bytes], out: Path, signum: signal.Signals, log: Path
) -> None:
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not images(out) and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        assert process.poll() is None, (
            f"the shard ended before it could be stopped:\n{log.read_text()}"
        )
        process.send_signal(signum)
        process.wait(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_three_runners_one_stopped_and_resumed_on_a_fourth_then_merge_and_check(
    signum: signal.Signals, sandbox_server: Any, tmp_path: Path
) -> None:
    """The "Done when" of issue 10: 12 entries, --shard K/3, one runner stopped mid-run."""
    server: SandboxServer = sandbox_server(latency=1.0)

    # -c 4: a shard's four POSTs are all answered long before its first task can end (1 s), so
    # the signal lands while tasks run or download, never between a POST and its answer.
    def args(k: int) -> list[str]:
        return ["batch", MANIFEST, "--shard", f"{k}/{SHARDS}", "-o", "assets/out/", "-c", "4"]

    runners: dict[int, Path] = {}
    for k in (1, 3):
        runner = make_workspace(tmp_path / f"runner-{k}")
        ok(sh(" ".join(["flux2", *args(k)]), runner, runner_env(runner, server)))
        runners[k] = runner
    stopped = make_workspace(tmp_path / "runner-2")
    log = tmp_path / "runner-2.log"
    process = start_flux2(args(2), stopped, runner_env(stopped, server), log)
    stop_after_first_image(process, stopped / "assets" / "out", signum, log)
    expected = 143 if signum == signal.SIGTERM else -signal.SIGKILL
    assert process.returncode == expected, log.read_text()
    answered = server.task_ids()
    assert len(answered) == ENTRIES  # every create was answered before the stop

    # A fresh fourth runner: the manifest and only the files the stopped one left beside it.
    fourth = make_workspace(tmp_path / "runner-4")
    left = sorted((stopped / "assets").glob("prompts.jsonl.lock.*"))
    assert left, "the stopped runner left no state beside the manifest"
    for path in left:
        shutil.copy2(path, fourth / "assets" / path.name)
    resumed = ok(sh(" ".join(["flux2", *args(2)]), fourth, runner_env(fourth, server)))
    runners[4] = fourth

    assert server.task_ids() == answered, resumed.stderr  # nothing paid for twice: 12 in all
    final = make_workspace(tmp_path / "merge")
    for runner in runners.values():
        copy_paths(runner, final, ["assets/out/"])
    assert len(images(final / "assets" / "out")) == ENTRIES
    locks = [str(runner / f"{MANIFEST}.lock.json") for runner in runners.values()]
    # The stopped runner's own lock file too: the same tasks, told at an earlier moment.
    locks.append(str(stopped / f"{MANIFEST}.lock.json"))
    env = runner_env(final, server)
    merged = ok(sh(" ".join(["flux2", "lock", "merge", MANIFEST, *locks]), final, env))
    check = ok(sh(f"flux2 batch {MANIFEST} --check", final, env))

    assert "Merged 4 lock files" in merged.stderr
    assert f"All {ENTRIES} entries are up to date" in check.stderr
    assert server.task_ids() == answered
