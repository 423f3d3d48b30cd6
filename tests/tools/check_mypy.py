"""Type-checks the package and the examples with ``mypy --strict``.

    check_mypy.py MYPY PYTHON CACHE_DIR EXAMPLES_DIR

Runs ``MYPY --strict -p pympipool`` (the package as a user's mypy sees it,
with its ``py.typed`` and the extension's stub ``_core.pyi``) and ``MYPY
--strict EXAMPLES_DIR``, both against the build tree's package (``MYPYPATH``,
set by CTest), with the site-packages of PYTHON (numpy's own types) and the
cache in CACHE_DIR, never in the source tree.  Both always run; the exit
status is 1 if either found an error.  Used by CTest as ``lint.mypy``.
"""
import subprocess
import sys


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    mypy, python, cache_dir, examples = sys.argv[1:]
    common = [mypy, "--strict", "--python-executable", python, "--cache-dir", cache_dir]
    status = 0
    for target in (["-p", "pympipool"], [examples]):
        command = common + target
        print("check_mypy: " + " ".join(command), flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
