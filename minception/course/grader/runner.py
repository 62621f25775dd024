"""Running the student's code where it cannot hurt the grading: one child process per exercise, a time limit.

``grade(directory, exercise, seed, timeout)`` starts ``python -m minception.course.grader.child`` (the same
interpreter, so the same installed library) in a new session, with its output going to a log file, and waits at
most ``timeout`` seconds. Then, from the child's JSON result or from how it ended:

* a result file: the exercise's result (``"pass"``, ``"fail"`` or ``"not started"``);
* still running at the deadline: the whole process group is killed, ``"timeout"`` (an infinite loop?);
* killed by a signal (a segfault, the kernel's out-of-memory killer) or exited without a result (``os._exit``,
  ``sys.exit``): ``"crashed"``, with the last lines of its output.

The child runs in a fresh temporary folder, so that files the student's code writes do not land anywhere that
matters, and ``OMP_NUM_THREADS=1`` keeps a class graded in parallel from fighting over the cores.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

#: lines of the child's output shown when it crashed
TAIL_LINES = 6


def signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def tail(path):
    """The last lines of the child's output (the student's prints, a traceback), each cut to 90 characters."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line.rstrip()[:90] for line in f.read().splitlines() if line.strip()]
    except OSError:
        return []
    return lines[-TAIL_LINES:]


def stop(process):
    """Kill the child and everything it started (its own session: process group id = its pid)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    process.wait()


def crashed(exercise, seconds, message, log_path):
    return {"exercise": exercise.name, "status": "crashed", "seconds": round(seconds, 1),
            "problems": [{"function": "", "call": "", "output": "", "kind": "crashed", "message": message,
                          "output_tail": tail(log_path)}]}


def read_result(path, exercise, seconds, log_path):
    """The child's JSON result (a file that is not one: the exercise crashed)."""
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
        if not isinstance(result, dict) or result.get("exercise") != exercise.name:
            raise ValueError("not the result of this exercise")
    except (OSError, ValueError) as error:
        return crashed(exercise, seconds, f"the grading process left an unreadable result ({error})", log_path)
    return dict(result, seconds=round(seconds, 1))


def grade(directory, exercise, seed, timeout):
    """The result dict of ``exercise`` (an ``Exercise``) for the copy in ``directory``; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="minception-grade-") as work:
        out, log_path = os.path.join(work, "result.json"), os.path.join(work, "output.log")
        command = [sys.executable, "-m", "minception.course.grader.child", os.path.abspath(directory),
                   exercise.name, str(seed), out]
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
        start = time.monotonic()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=work, env=env, start_new_session=True)
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                stop(process)
                if os.path.exists(out):         # finished, but a thread of the student's kept the process alive
                    return read_result(out, exercise, time.monotonic() - start, log_path)
                return {"exercise": exercise.name, "status": "timeout", "seconds": round(time.monotonic() - start, 1),
                        "problems": [{"function": "", "call": "", "output": "", "kind": "timeout",
                                      "message": f"still running after {timeout:g} s: stopped (an infinite loop, "
                                                 f"or a loop over every element in Python?)"}]}
        seconds = time.monotonic() - start
        if os.path.exists(out):
            return read_result(out, exercise, seconds, log_path)
        how = (f"was killed by {signal_name(-code)}" + (" (a segmentation fault)" if -code == signal.SIGSEGV else "")
               if code < 0 else f"exited with status {code} before it finished (sys.exit or os._exit?)")
        return crashed(exercise, seconds, f"the grading process {how}", log_path)
