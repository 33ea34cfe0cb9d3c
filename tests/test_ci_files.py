"""action.yml and examples/: valid against SchemaStore's schemas and clean under zizmor, offline.

check-jsonschema carries SchemaStore's schemas (``--builtin-schema vendor.…``) and zizmor audits
workflows for template injection, unpinned actions, credential persistence and the like; both
are in the ``dev`` extra and read nothing from the network here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
GITHUB_EXAMPLE = ROOT / "examples" / "github-actions.yml"
GITLAB_EXAMPLE = ROOT / "examples" / "gitlab-ci.yml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), (
        f"{name} is not installed beside {sys.executable}: pip install -e '.[dev]'"
    )
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ("vendor.github-actions", ACTION),
        ("vendor.github-workflows", GITHUB_EXAMPLE),
        ("vendor.gitlab-ci", GITLAB_EXAMPLE),
    ],
    ids=["action.yml", "github-actions.yml", "gitlab-ci.yml"],
)
def test_ci_files_are_valid_against_schemastore(schema: str, path: Path) -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", schema, str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_action_and_the_workflow_pass_zizmor_offline() -> None:
    result = run(tool("zizmor"), "--offline", "--no-progress", str(ACTION), str(GITHUB_EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_would_catch_an_input_spliced_into_a_script(tmp_path: Path) -> None:
    # The audit is live: the same action with one input interpolated into `run:` fails it.
    text = ACTION.read_text(encoding="utf-8").replace(
        'args=(batch "$INPUT_MANIFEST"', 'args=(batch "${{ inputs.manifest }}"'
    )
    assert text != ACTION.read_text(encoding="utf-8")
    bad = tmp_path / "action.yml"
    bad.write_text(text, encoding="utf-8")
    result = run(tool("zizmor"), "--offline", "--no-progress", str(bad))
    assert result.returncode != 0 and "template-injection" in result.stdout + result.stderr


def test_the_action_takes_the_documented_inputs() -> None:
    from ruamel.yaml import YAML

    action = YAML(typ="safe").load(ACTION.read_text(encoding="utf-8"))
    assert {"manifest", "shard", "concurrency", "max-cost", "check", "junit"} <= set(
        action["inputs"]
    )
    assert action["inputs"]["manifest"]["required"] is True
    assert action["runs"]["using"] == "composite"


def test_the_github_example_saves_state_always_and_merges_then_checks() -> None:
    from ruamel.yaml import YAML

    workflow = YAML(typ="safe").load(GITHUB_EXAMPLE.read_text(encoding="utf-8"))
    generate, merge = workflow["jobs"]["generate"], workflow["jobs"]["merge"]
    assert generate["strategy"]["matrix"]["shard"] == [1, 2, 3]
    uploads = [step for step in generate["steps"] if "upload-artifact" in step.get("uses", "")]
    assert uploads and all(step.get("if") == "always()" for step in uploads)
    assert merge["needs"] == "generate" and merge["if"] == "always()"
    (flux2,) = [step for step in merge["steps"] if "flux2" in step.get("uses", "")]
    assert flux2["with"]["merge"] and flux2["with"]["check"] == "true"


def test_the_gitlab_example_runs_parallel_jobs_with_shard_auto() -> None:
    from ruamel.yaml import YAML

    pipeline = YAML(typ="safe").load(GITLAB_EXAMPLE.read_text(encoding="utf-8"))
    assert pipeline["generate"]["parallel"] == 3
    assert any("--shard auto" in line for line in pipeline["generate"]["script"])
    assert pipeline["generate"]["artifacts"]["when"] == "always"
    merge = pipeline["merge"]["script"]
    assert merge[0].startswith("flux2 lock merge ") and "--check" in merge[1]
