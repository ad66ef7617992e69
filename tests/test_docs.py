"""Every code block of the README and of docs/ runs as written; the docs site builds without warnings.

Conventions for the Markdown files (README.md, docs/**/*.md):

- ```` ```python ```` blocks run in this process as ``python FILE`` would (``runpy``), each in a fresh
  namespace and a new temporary working directory that holds a copy of the repository's ``examples/``
  (so ``"examples/argon-liquid.pdb"`` reads as it does from a checkout). ```` ```bash ```` blocks run
  there with ``bash -euo pipefail``, with this interpreter's ``bin`` first on ``PATH`` (``python`` and
  ``mlcalc`` are this environment's);
  ```` ```console ```` blocks likewise, their ``$ `` lines being the commands. Blocks of other languages
  (``text``, ``toml``, ...) are not run; a fence without a language is refused.
- ``<!-- not-run: REASON -->`` on the line above a block (blank lines between allowed) keeps it from
  running; the reason is required (installs, runs of many minutes, a GPU, a method signature).
- ``<!-- needs: MODULE[, MODULE] -->`` runs the block only where each module imports, and otherwise
  skips it naming the missing one (openmm-torch blocks run in the openmm-torch stack of
  scripts/test-stacks).

The README's two commands are checked against ``.ci/run`` and ``scripts/test-stacks`` instead of being
run (the demo is tests/test_cli.py's job).
"""

from __future__ import annotations

import importlib.util
import os
import re
import runpy
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN = {"python", "bash", "console"}
NOT_RUN = {"text", "toml", "json", "yaml", "xml", "diff", "markdown"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not-run|needs)\s*:?\s*(?P<text>.*?)\s*-->\s*$")
README_COMMANDS = ('pip install ".[demo]" && mlcalc demo', "scripts/test-stacks")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: Optional[str]  # the stated reason, "" when the marker gives none
    needs: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def read_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        start, body = i, []
        i += 1
        while i < len(lines) and not re.match(rf"^\s*{re.escape(fence)}\s*$", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        not_run, needs = None, ()
        above = start - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        while above >= 0 and (marker := MARKER.match(lines[above])):
            if marker["kind"] == "not-run":
                not_run = marker["text"]
            else:
                needs = tuple(name.strip() for name in marker["text"].split(",") if name.strip())
            above -= 1
        blocks.append(Block(page, start + 1, opening["lang"], "\n".join(body) + "\n", not_run, needs))
    return blocks


BLOCKS = [block for page in PAGES for block in read_blocks(page)]
RUNNABLE = [block for block in BLOCKS if block.lang in RUN]


def _param(block: Block):
    marks = []
    if block.not_run is not None:
        marks.append(pytest.mark.skip(reason=f"not run: {block.not_run or '(no reason given)'}"))
    missing = [name for name in block.needs if importlib.util.find_spec(name) is None]
    if missing:
        marks.append(pytest.mark.skip(reason=f"needs {', '.join(missing)}, which is not installed"))
    return pytest.param(block, id=block.id, marks=marks)


def _workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _run_python(block: Block, cwd: Path, monkeypatch) -> None:
    """As ``python FILE`` would: a file of the block's code (TorchScript reads a class's source from it)
    run as ``__main__``, named after the page and line so that tracebacks say where the block is."""
    import torch

    script = cwd / f"{block.page.stem}_line{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    environ, threads = dict(os.environ), torch.get_num_threads()
    monkeypatch.setenv("MPLBACKEND", "Agg")
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:  # a block may configure threads (mlcalc.threads.configure_threads) for this process
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)
        import matplotlib.pyplot

        matplotlib.pyplot.close("all")


def _run_shell(block: Block, cwd: Path) -> None:
    code = block.code
    if block.lang == "console":
        code = "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ ")) + "\n"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, (
        f"{block.id}: exit status {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n"
        f"--- stderr\n{result.stderr[-4000:]}"
    )


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("block", [_param(block) for block in RUNNABLE])
def test_code_block_runs_as_written(block: Block, tmp_path, monkeypatch):
    cwd = _workdir(tmp_path)
    monkeypatch.chdir(cwd)
    if block.lang == "python":
        _run_python(block, cwd, monkeypatch)
    else:
        _run_shell(block, cwd)


def test_every_block_runs_or_says_why():
    assert RUNNABLE, "no code blocks found"
    unknown = [f"{block.id} ({block.lang or 'no language'})" for block in BLOCKS if block.lang not in RUN | NOT_RUN]
    assert not unknown, f"fences need a language this test knows (python, bash, console; text, toml, ...): {unknown}"
    silent = [block.id for block in RUNNABLE if block.not_run == ""]
    assert not silent, f"<!-- not-run: REASON --> needs a reason: {silent}"


def test_readme_commands_are_those_ci_runs():
    """The README's first two blocks are the project's two commands, exactly; .ci/run runs the second as
    written, and scripts/test-stacks installs what the README says."""
    readme = [block for block in BLOCKS if block.page == ROOT / "README.md"]
    assert [block.code.strip() for block in readme[:2]] == list(README_COMMANDS)
    assert all(block.lang == "bash" for block in readme[:2])
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert README_COMMANDS[1] in ci, ".ci/run no longer runs the README's test command as written"
    stacks = (ROOT / "scripts" / "test-stacks").read_text()
    for installed in ('extras="test"', 'extras="openmm-torch,test"', "sevenn"):
        assert installed in stacks
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r"^demo = ", pyproject, re.M), "the README installs the demo extra"
    assert 'mlcalc = "mlcalc.cli:main"' in pyproject


def test_links_between_pages_resolve():
    """Relative links of the README and the docs name files that exist (mkdocs checks the docs again)."""
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)} → {target}")
    assert not broken, broken


def test_every_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r"([\w/.-]+\.md)\s*$", config, re.M))
    pages = {str(page.relative_to(ROOT / "docs")) for page in PAGES if page.is_relative_to(ROOT / "docs")}
    assert pages <= listed, f"pages missing from mkdocs.yml's nav: {sorted(pages - listed)}"


def test_docs_build_strictly(tmp_path):
    """``mkdocs build --strict``: no warnings (broken links, anchors, docstrings griffe cannot parse)."""
    for module in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install mkdocs 'mkdocstrings[python]' to build the docs")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
