"""Runs a command and checks that it exits 0 and that its stdout matches.

    check_output.py --expect REGEX [--expect REGEX ...] -- command args...

Used by CTest for the examples: unlike PASS_REGULAR_EXPRESSION, a script that
prints the right line and then fails still fails.
"""
import argparse
import re
import subprocess
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect", action="append", default=[], help="regex stdout must match")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        print(f"check_output: {command[0]} exited with status {proc.returncode}", file=sys.stderr)
        return 1
    for regex in args.expect:
        if not re.search(regex, proc.stdout, re.MULTILINE):
            print(f"check_output: stdout does not match {regex!r}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
