"""Packaging: the sdist and wheel carry full metadata, and the wheel installs and runs.

Tests never touch the network, so the fresh virtualenv gets flux2 from the wheel alone
(``pip install --no-deps --no-index``) and its dependencies from this environment's
site-packages through a plain path entry in a ``.pth`` file. A plain path (unlike a site dir)
does not run that folder's own ``.pth`` files, so the editable install of this checkout stays
invisible: the test asserts ``flux2_cli`` is imported from the new venv. ``pip check`` there
proves the wheel's declared requirements are met. What this does not prove is that PyPI can
resolve them; ``pipx install dist/*.whl`` on a networked machine does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from flux2_cli import __version__

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command, fail the test with its output if it fails, return its stdout."""
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel built from it, offline (hatchling comes with the dev extra)."""
    pytest.importorskip("hatchling", reason="needs the dev extra (hatchling) to build offline")
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    return out


def only(folder: Path, pattern: str) -> Path:
    """The one file in ``folder`` matching ``pattern``."""
    (path,) = folder.glob(pattern)
    return path


def test_wheel_metadata_is_complete(dist: Path) -> None:
    wheel = only(dist, "*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"flux2_cli-{__version__}.dist-info"
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert metadata["Name"] == "flux2-cli"
    assert metadata["Version"] == __version__
    assert metadata["Summary"]
    assert metadata["License-Expression"] == "MIT"
    assert f"{info}/licenses/LICENSE" in names
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["Description-Content-Type"] == "text/markdown"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert metadata.get_payload().strip() == readme.strip()
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "License :: OSI Approved :: MIT License" in classifiers
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Changelog", "Issues"} <= set(urls)
    requires = metadata.get_all("Requires-Dist") or []
    assert any(req.startswith("typer") for req in requires)
    assert "flux2_cli/py.typed" in names
    assert "flux2 = flux2_cli._entry:main" in entry_points


def test_sdist_carries_sources_tests_and_completions(dist: Path) -> None:
    sdist = only(dist, "*.tar.gz")
    prefix = f"flux2_cli-{__version__}/"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(prefix) for name in archive.getnames()}
    expected = {
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "flux2_cli/py.typed",
        "flux2_cli/_entry.py",
        "completions/flux2.bash",
        "completions/_flux2",
        "completions/flux2.fish",
        "completions/flux2.ps1",
        "scripts/gen-completions",
        "tests/test_packaging.py",
        "action.yml",
        "examples/github-actions.yml",
        "examples/gitlab-ci.yml",
    }
    assert expected <= names


def test_wheel_installs_in_a_fresh_venv_and_runs(dist: Path, tmp_path: Path) -> None:
    wheel = only(dist, "*.whl")
    home = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(home)
    python = home / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    Path(purelib, "_flux2_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = (sys.executable, "-m", "pip", "--python", python)
    run(*pip, "install", "--quiet", "--no-deps", "--no-index", wheel)
    run(*pip, "check")

    # Not from the checkout: `python -c` puts the working directory first on sys.path.
    where = run(python, "-c", "import flux2_cli; print(flux2_cli.__file__)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(home)
    assert Path(purelib, "flux2_cli", "py.typed").exists()

    flux2 = home / "bin" / "flux2"
    env = {**os.environ, "PATH": f"{home / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    assert run(flux2, "--version", env=env, cwd=tmp_path) == f"flux2 {__version__}\n"
    out = run(flux2, "gen", "x y z", "--dry-run", env=env, cwd=tmp_path)
    assert '"prompt": "x y z"' in out
