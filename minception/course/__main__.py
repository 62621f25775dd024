"""The course's command line::

    python -m minception.course new DIR [--solutions] [--force]   a student's copy (or the key) in DIR
    python -m minception.course check DIR [EXERCISE] ...           grade a copy (the grader's own options)
    python -m minception.course run DIR [--steps N]                train on the student's kernels

Usage errors (a missing argument, an unknown command, a non-empty DIR) exit with status 2 and one line saying
what was expected.
"""
import argparse
import os
import sys

USAGE_ERROR = 2


def parser():
    top = argparse.ArgumentParser(
        prog="python -m minception.course",
        description="The minception course: exercises on the kernels of a CNN, a grader, and a training run on "
                    "the student's own kernels.")
    commands = top.add_subparsers(dest="command", metavar="{new,check,run}")
    new = commands.add_parser("new", help="write a student's copy of the exercises into DIR",
                              description="Write the exercises, a README, the public tests and course.json "
                                          "into DIR.")
    new.add_argument("dir", metavar="DIR", help="a new or empty folder")
    new.add_argument("--solutions", action="store_true", help="fill in the solutions (the instructor's key)")
    new.add_argument("--force", action="store_true", help="write into DIR even if it is not empty")
    commands.add_parser("check", help="grade a copy (python -m minception.course check --help)", add_help=False)
    run = commands.add_parser("run", help="train Inception-ResNet-v2 on the kernels written in DIR",
                              description="Register the finished exercise files of DIR as the kernel tier "
                                          "'student' and train the scaled Inception-ResNet-v2 on them.")
    run.add_argument("dir", metavar="DIR", help="a copy written by 'new'")
    run.add_argument("--steps", type=_positive, default=200,
                     help="training steps (default 200: about 2-3 minutes on 2 cores)")
    run.add_argument("--log-every", type=_positive, default=None, metavar="N",
                     help="print the loss every N steps (default: steps / 10)")
    return top


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value}")
    return value


def _error(message):
    print(f"python -m minception.course: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "check":
        from minception.course import grader        # the grader parses its own arguments
        if not callable(getattr(grader, "main", None)):
            return _error("check: the grader (minception.course.grader) has no main(argv) in this installation")
        return grader.main(argv[1:])
    args = parser().parse_args(argv)
    if args.command is None:
        parser().print_usage(sys.stderr)
        return _error("expected a command: new, check or run")
    if args.command == "new":
        from .student_copy import CopyExists, write_copy
        try:
            written = write_copy(args.dir, solutions=args.solutions, force=args.force)
        except CopyExists as e:
            return _error(str(e))
        kind = "the solutions" if args.solutions else "the exercises"
        print(f"wrote {kind} into {args.dir} ({len(written)} files); start with {os.path.join(args.dir, 'README.md')}")
        return 0
    if not os.path.isdir(os.path.join(args.dir, "exercises")):
        return _error(f"{args.dir} holds no exercises/ folder; expected a copy written by "
                      f"'python -m minception.course new {args.dir}'")
    from minception.train import NonFiniteLossError

    from .run import train
    try:
        train(args.dir, steps=args.steps, log_every=args.log_every)
    except NonFiniteLossError as e:
        print(f"python -m minception.course run: the training stopped: {e}", file=sys.stderr)
        print(f"python -m minception.course check {args.dir} may show which of your functions is wrong",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
