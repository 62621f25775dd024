"""README.md's Python blocks run, in order, as one session (a block may use what an earlier one defined).

A block that cannot run here says so in an HTML comment on the line right above its fence, with the reason:

    <!-- not run by the tests: needs the published weights, a 171 MB download -->

Everything else is executed in a fresh interpreter from the repository's root, in a temporary working folder so
that nothing the snippets write lands in the checkout.
"""
import os
import re
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
SKIP = re.compile(r"<!--\s*not run by the tests:\s*(?P<reason>.*?)\s*-->\s*$")
FENCE = re.compile(r"^```python\n(?P<code>.*?)^```", re.S | re.M)


def python_blocks(text):
    """``[(line number of the fence, code, reason to skip or None)]`` for every ```python block of ``text``."""
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.match(before.strip())
        blocks.append((line, match.group("code"), skip.group("reason") if skip else None))
    return blocks


RUNNER = textwrap.dedent("""
    import sys, traceback
    blocks = {blocks!r}
    namespace = {{"__name__": "__readme__"}}
    for line, code in blocks:
        try:
            exec(compile(code, f"README.md, block at line {{line}}", "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            print(f"README.md: the python block at line {{line}} failed (above)")
            sys.exit(1)
        print(f"README.md: block at line {{line}} ran")
""")


def test_readme_python_blocks_run(tmp_path):
    with open(README, encoding="utf-8") as f:
        blocks = python_blocks(f.read())
    runnable = [(line, code) for line, code, skip in blocks if skip is None]
    skipped = [(line, skip) for line, _, skip in blocks if skip is not None]
    assert len(runnable) >= 4, f"expected README.md to hold runnable python blocks, found {len(runnable)}"
    assert all(reason for _, reason in skipped), f"a skipped README block must say why: {skipped}"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    env.pop("MINCEPTION_KERNELS", None)
    out = subprocess.run([sys.executable, "-c", RUNNER.format(blocks=runnable)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-8000:]
    assert out.stdout.count("ran\n") == len(runnable), out.stdout


def test_the_block_reader_sees_fences_and_skip_marks():
    text = ("intro\n```python\nx = 1\n```\n<!-- not run by the tests: needs a GPU -->\n```python\ncuda()\n```\n"
            "```bash\nls\n```\n")
    assert python_blocks(text) == [(2, "x = 1\n", None), (6, "cuda()\n", "needs a GPU")]
