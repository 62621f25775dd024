"""The lectures (``docs/lectures/NN_*.py``, jupytext's percent format) run as notebooks, within a time budget.

Each lecture is converted to a notebook with jupytext and executed with nbclient in a fresh ``python3`` kernel
(ipykernel's own, which jupyter_client finds without an installed kernelspec), in a temporary working folder so
that nothing a lecture writes lands in the checkout. A lecture passes when every cell runs, no cell writes to
stderr, every cell that shows a figure (``plt.show()``, ``display(Image(...))``) has a PNG among its outputs, and the
lecture ran within ``BUDGET_S`` seconds (the whole set within ``TOTAL_BUDGET_S``).

The test needs the ``course`` extra (jupytext, nbclient, nbformat, ipykernel, matplotlib). Without it the tests
are skipped, with the reason; when the environment variable ``CI`` is set (``.ci/run`` sets it and installs the
extra) a missing package is a failure, never a silent skip.
"""
import glob
import importlib.util
import os
import re
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LECTURES = sorted(glob.glob(os.path.join(ROOT, "docs", "lectures", "[0-9][0-9]_*.py")))
COURSE_PACKAGES = ("jupytext", "nbclient", "nbformat", "ipykernel", "matplotlib")
BUDGET_S = 60          # one lecture, kernel start included (each takes under 15 s on 2 cores)
TOTAL_BUDGET_S = 180   # all of them (about 40 s on 2 cores with a cold Numba cache)
CELL_TIMEOUT_S = 120   # nbclient stops a cell that runs longer (an endless loop fails, not hangs)
SHOWS_A_FIGURE = re.compile(r"^\s*(plt\.show\(\)|display\(Image\()", re.M)
durations = {}


@pytest.fixture(scope="module")
def course_extra():
    missing = [name for name in COURSE_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        message = (f"the lectures need the 'course' extra; missing: {', '.join(missing)} "
                   f"(pip install -e '.[course]')")
        if os.environ.get("CI"):
            pytest.fail(message + "; CI is set, so this is a failure, not a skip")
        pytest.skip(message)


def execute(path, workdir, text=None):
    """``path`` (a percent-format lecture), or ``text`` in that format, executed as a notebook in ``workdir``:
    (notebook, seconds)."""
    import jupytext
    from nbclient import NotebookClient
    notebook = jupytext.read(path, fmt="py:percent") if text is None else jupytext.reads(text, fmt="py:percent")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MPLBACKEND", None)           # the kernel's inline backend, so that figures come back as PNGs
    env.pop("MINCEPTION_KERNELS", None)   # the default kernel tier, as in a student's fresh kernel
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    client.execute(env=env)
    return notebook, time.perf_counter() - start


def test_there_are_seven_numbered_lectures():
    names = [os.path.basename(p) for p in LECTURES]
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, 8)], names


@pytest.mark.parametrize("path", LECTURES, ids=[os.path.basename(p)[:-3] for p in LECTURES])
def test_lecture_text_is_what_jupytext_writes(path, course_extra):
    """Opened and saved in Jupyter (with jupytext), a lecture comes back unchanged, so diffs show only edits."""
    import jupytext
    with open(path, encoding="utf-8") as f:
        text = f.read()
    written = jupytext.writes(jupytext.reads(text, fmt="py:percent"), fmt="py:percent")
    ours, theirs = ([line for line in t.splitlines() if "jupytext_version:" not in line] for t in (text, written))
    assert ours == theirs, (f"{os.path.relpath(path, ROOT)} is not in jupytext's canonical percent format; "
                            f"rewrite it with: jupytext --to py:percent {os.path.relpath(path, ROOT)}")


@pytest.mark.slow
@pytest.mark.parametrize("path", LECTURES, ids=[os.path.basename(p)[:-3] for p in LECTURES])
def test_lecture_runs_as_a_notebook(path, course_extra, tmp_path):
    from nbclient.exceptions import CellExecutionError
    name = os.path.relpath(path, ROOT)
    try:
        notebook, seconds = execute(path, tmp_path)
    except CellExecutionError as e:
        pytest.fail(f"{name}: a cell failed:\n{e}")
    durations[name] = seconds
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{name}: no code cells (is it in jupytext's percent format, '# %%'?)"
    figures = 0
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        where = f"{name}, cell {number} ({cell.source.splitlines()[0] if cell.source else 'empty'!r})"
        for output in cell.outputs:
            assert output.output_type != "error", f"{where}: {output.ename}: {output.evalue}"
            assert not (output.output_type == "stream" and output.name == "stderr"), \
                f"{where} wrote to stderr:\n{output.text[:2000]}"
        pngs = sum("image/png" in output.get("data", {}) for output in cell.outputs)
        if SHOWS_A_FIGURE.search(cell.source):
            assert pngs, f"{where} shows a figure, but its outputs hold no image/png"
        figures += pngs
    assert seconds <= BUDGET_S, (f"{name} took {seconds:.1f} s, over its budget of {BUDGET_S} s: make it "
                                 f"smaller (narrower networks, fewer steps) or split it")
    print(f"{name}: {seconds:.1f} s, {len(code)} code cells, {figures} figures")


@pytest.mark.slow
def test_all_lectures_within_the_total_budget(course_extra):
    if len(durations) < len(LECTURES):
        pytest.skip("only some lectures ran in this session (select them all to check the total)")
    total = sum(durations.values())
    slowest = ", ".join(f"{os.path.basename(n)} {s:.1f} s" for n, s in sorted(durations.items(),
                                                                              key=lambda kv: -kv[1])[:3])
    assert total <= TOTAL_BUDGET_S, f"the lectures took {total:.1f} s together, over {TOTAL_BUDGET_S} s ({slowest})"


@pytest.mark.slow
def test_the_tutorial_runs_in_a_kernel(course_extra, tmp_path):
    """``examples/tutorial.py``'s ``main()`` inside a kernel, whose own arguments (``-f ...``) it must ignore."""
    script = os.path.join(ROOT, "examples", "tutorial.py")
    text = ("# %%\nimport importlib.util\n"
            f"spec = importlib.util.spec_from_file_location('tutorial', {script!r})\n"
            "tutorial = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(tutorial)\n"
            "assert tutorial.main() == 0\n")
    notebook, _ = execute(None, tmp_path, text=text)
    out = "".join(o.get("text", "") for o in notebook.cells[0].outputs)
    assert "all stages ran; every gradient check passed" in out
    assert (tmp_path / "runs" / "tutorial" / "inception_a_branches.dot").exists()   # in the kernel's folder
