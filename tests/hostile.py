"""Running one hostile-input case in a child process with a memory limit and a time limit.

A reader that regresses on a hostile file might allocate gigabytes, hang, or crash the interpreter. Run in the
test process, that would take CI down with it; run here, it is one failed test that says which:

    result = run_limited("from minception.files import read_npz; read_npz(PATH)", memory_mb=1024, seconds=30,
                         env={"PATH_": str(path)})
    assert result.outcome == "raised" and result.error_type == "NpzError", result.report()

The child runs ``code`` (Python source) with the repository importable. ``outcome`` is one of "ok" (no
exception), "raised" (an exception: ``error_type`` and ``message`` say which), "memory" (``MemoryError`` or the
address-space limit hit), "timeout" or "crashed" (killed by a signal or exited without a result).
"""
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CHILD = textwrap.dedent("""
    import json, sys, traceback
    code = sys.stdin.read()
    try:
        exec(compile(code, "<hostile case>", "exec"), {"__name__": "__hostile__"})
        result = {"outcome": "ok"}
    except MemoryError as e:
        result = {"outcome": "memory", "error_type": "MemoryError", "message": str(e)[:2000]}
    except BaseException as e:
        result = {"outcome": "raised", "error_type": type(e).__name__, "message": str(e)[:2000],
                  "traceback": traceback.format_exc()[-3000:]}
    sys.stdout.write("\\n@@RESULT@@" + json.dumps(result))
""")


@dataclass
class Limited:
    outcome: str
    error_type: str = None
    message: str = None
    traceback: str = None
    output: str = ""

    def report(self):
        return (f"outcome {self.outcome}, {self.error_type}: {self.message}\n{self.traceback or ''}\n"
                f"output:\n{self.output[-3000:]}")


def run_limited(code, memory_mb=1024, seconds=60, env=None):
    """Run ``code`` in a fresh interpreter limited to ``memory_mb`` of address space and ``seconds`` of wall time."""
    def limit():
        size = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
        os.setsid()

    child_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                     OMP_NUM_THREADS="1", **(env or {}))
    proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=child_env, preexec_fn=limit)
    try:
        out, _ = proc.communicate(textwrap.dedent(code), timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return Limited("timeout", output=out or "")
    head, marker, tail = (out or "").rpartition("@@RESULT@@")
    if not marker:
        return Limited("crashed", message=f"exit status {proc.returncode}", output=out or "")
    result = json.loads(tail)
    if result["outcome"] == "raised" and "Cannot allocate memory" in (result.get("message") or ""):
        result["outcome"] = "memory"
    return Limited(output=head, **result)
