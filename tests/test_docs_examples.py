"""Code blocks in README.md and docs/ are executed, so the documentation never rots."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def _blocks(path: Path, lang: str) -> list[str]:
    return [body for kind, body in _BLOCK.findall(path.read_text()) if kind == lang]


@pytest.mark.parametrize("doc", [d for d in DOCS if _blocks(d, "python")], ids=lambda d: d.name)
def test_python_blocks_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Examples write below ~; point it at a fresh directory.
    monkeypatch.setenv("HOME", str(tmp_path))
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    for block in _blocks(doc, "python"):
        exec(compile(block, f"{doc.name}:python-block", "exec"), namespace)


def test_readme_shell_examples_run(tmp_path: Path) -> None:
    """The ``diced ...`` lines of the README succeed after its Python session ran."""
    env = {**os.environ, "HOME": str(tmp_path)}
    session = "\n".join(_blocks(ROOT / "README.md", "python")[:1])
    subprocess.run([sys.executable, "-c", session], env=env, check=True, cwd=tmp_path)
    lines = [line for block in _blocks(ROOT / "README.md", "bash")
             for line in block.splitlines() if line.startswith("diced ") and "demo" not in line]
    assert lines, "the README shows no diced command"
    for line in lines:
        argv = [os.path.expanduser(a).replace(os.path.expanduser("~"), str(tmp_path))
                for a in shlex.split(line)]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, f"{line!r} failed: {result.stderr}"
        assert any(word in result.stdout for word in ("firstrepo", "em", "master")), line


def test_cli_page_examples_run(tmp_path: Path) -> None:
    """The examples on docs/cli.md run, with /tmp replaced by a fresh directory."""
    lines = [line.replace("/tmp/", f"{tmp_path}/") for block in _blocks(ROOT / "docs" / "cli.md",
                                                                         "bash")
             for line in block.splitlines() if line.startswith("diced ")]
    assert len(lines) == 3
    outputs = []
    for line in lines:
        result = subprocess.run(shlex.split(line), capture_output=True, text=True)
        assert result.returncode == 0, f"{line!r} failed: {result.stderr}"
        outputs.append(result.stdout)
    assert "(open node)" not in outputs[1] and len(outputs[1].strip().splitlines()) >= 3
    assert "README.md" in outputs[2]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """CI proves the README: .ci/run's command is the README's test command, verbatim."""
    readme = [line for block in _blocks(ROOT / "README.md", "bash")
              for line in block.splitlines() if "pytest" in line]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in line]
    assert len(readme) == 1
    assert ci == readme
