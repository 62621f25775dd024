"""The printed report: one block per exercise, what is wrong and the likely cause, then the score table.

Example (every line within 100 columns; a copy with ``=`` for ``+=`` in col2im and the unbiased variance)::

    minception course: grading /tmp/demo, seed 2718 (rerun with --seed 2718)

      4  col2im                     FAIL
        col2im: 4 of 4 cases wrong; the first:
          col2im(cols=(27, 18) float64, x_shape=(2, 3, 5, 6), kernel_size=(3, 3), stride=(2, 2),
                padding=(1, 1))
          dx: 108 of 180 elements wrong, only where windows overlap (pixels in several windows)
            first at dx[0, 0, 0, 1]: got -1.374088, expected -1.296235
            likely cause: `=` where `+=` is needed: a pixel in several windows receives the sum of their
                          entries

      8  batch_norm_train           FAIL
        forward_train: 4 of 4 cases wrong; the first:
          ...
          var: 3 of 3 elements wrong
            first at var[0]: got 2.935988, expected 2.772877
            likely cause: biased variance: var divides by M = N*L, not M - 1 (...)
        backward_train, gradient check, float64: gx, ggamma, gbeta for x (2, 2, 5), relu=True
          gx: 20 of 20 elements wrong (against finite differences of your forward)
            ...
            likely cause: your backward_train agrees with the reference's, so your forward_train is the
                          one to fix

    not started yet (their functions still raise NotImplementedError; take your time): 11 inception_resnet_a

    score
       1  relu                       pass
       ...
    8 of 11 exercises pass

Exercises that pass appear in the score table only; those not started, in one line.
"""
import textwrap

WIDTH = 100

STATUS = {"pass": "pass", "fail": "FAIL", "not started": "not started", "timeout": "FAIL (time limit)",
          "crashed": "FAIL (crashed)"}


def wrap(text, indent, more=4):
    """``text`` wrapped at WIDTH columns, indented by ``indent`` spaces (continuations by ``more`` more)."""
    return textwrap.wrap(text, WIDTH, initial_indent=" " * indent, subsequent_indent=" " * (indent + more),
                         break_on_hyphens=False) or [""]


def problem_lines(problem, hints_shown):
    """The lines of one problem: what is wrong, the first wrong element, the likely cause (``hints_shown``: the
    hints already printed for this exercise, written "as above" when they come again)."""
    name = problem.get("output") or ""
    lines = wrap(f"{name}: {problem['message']}" if name else problem["message"], 6)
    if problem.get("first"):
        lines += wrap(problem["first"], 8)
    if problem.get("hint") in hints_shown:
        lines += wrap("likely cause: as above", 8)
    elif problem.get("hint"):
        hints_shown.append(problem["hint"])
        lines += wrap("likely cause: " + problem["hint"], 8, more=14)
    for line in problem.get("output_tail", ()):
        lines += wrap("| " + line, 8)
    return lines


def exercise_lines(number, result):
    """The block of one exercise: its status line, then (when it fails) what is wrong, function by function."""
    status = result["status"]
    lines = [f"{number:>3}  {result['exercise']:<26} {STATUS.get(status, status)}"]
    cases = result.get("cases", {})
    shown, hints_shown = [], []
    for problem in result.get("problems", []):
        function, text = problem.get("function", ""), problem.get("call", "")
        if (function, text) not in shown:
            shown.append((function, text))
            run, failed = cases.get(function, {}).get("run", 0), cases.get(function, {}).get("failed", 0)
            if problem.get("gradcheck"):
                lines += wrap(f"{function}, {text}", 4, more=6)
            elif function and run:
                lines += wrap(f"{function}: {failed} of {run} cases wrong; the first:", 4)
            elif function:
                lines += wrap(f"{function}:", 4)
            if text and not problem.get("gradcheck"):
                lines += wrap(text, 6, more=6)
        lines += problem_lines(problem, hints_shown)
    failing = {p.get("function") for p in result.get("problems", [])}
    for function, counts in cases.items():
        if counts["run"] and not counts["failed"] and function not in failing:
            lines += wrap(f"{function}: passes ({counts['run']} case{'s' if counts['run'] != 1 else ''})", 4)
    for function in result.get("not_started", ()):
        lines += wrap(f"{function}: not started yet (raises NotImplementedError)", 4)
    return lines


def score_lines(results, numbers):
    """The score table and its last line, "7 of 11 exercises pass"."""
    lines = ["score"]
    for number, result in zip(numbers, results):
        lines.append(f"{number:>4}  {result['exercise']:<26} {STATUS.get(result['status'], result['status'])}")
    passed = sum(r["status"] == "pass" for r in results)
    lines.append(f"{passed} of {len(results)} exercises pass" if len(results) != 1
                 else f"{passed} of 1 exercise passes")
    return lines


def report(directory, seed, results, numbers):
    """The whole report, as one string: the exercises that fail, in detail; those not started, in one line;
    then the score table."""
    lines = wrap(f"minception course: grading {directory}, seed {seed} (rerun with --seed {seed})", 0)
    for number, result in zip(numbers, results):
        if result["status"] not in ("pass", "not started"):
            lines += [""] + exercise_lines(number, result)
    waiting = [f"{n}\xa0{r['exercise']}" for n, r in zip(numbers, results) if r["status"] == "not started"]
    if waiting:     # (a no-break space keeps each id with its name when the line wraps)
        lines += [""] + [line.replace("\xa0", " ") for line in wrap(
            "not started yet (their functions still raise NotImplementedError; take your time): "
            + ", ".join(waiting), 0)]
    return "\n".join(lines + [""] + score_lines(results, numbers))
