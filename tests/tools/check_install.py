"""Installs the build into a fresh prefix and uses the installed package.

    check_install.py BUILD_DIR PACKAGE_SUBDIR

Checks that `cmake --install` puts the runtime, the frontend library and the
package under the prefix, that the installed package imports from a directory
unrelated to the source and build trees, that it finds the installed runtime
(not the build tree's), and that an Executor started from it returns one
result per rank.
"""
import os
import subprocess
import sys
import tempfile

SCRIPT = """
import os, pympipool, pympipool._config as c
assert c.RUNTIME.startswith(os.environ['PREFIX']), c.RUNTIME
assert pympipool.__file__.startswith(os.environ['PREFIX']), pympipool.__file__
def rank_pid():
    return os.getpid()
with pympipool.Executor(cores=2) as exe:
    pids = exe.submit(rank_pid).result()
assert len(set(pids)) == 2, pids
print("installed package ran on ranks", len(pids))
"""


def main() -> int:
    build, package_subdir = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="pympipool-install-") as prefix:
        subprocess.run(["cmake", "--install", build, "--prefix", prefix], check=True,
                       stdout=subprocess.DEVNULL)
        for rel in ("bin/pympipool-runtime", package_subdir + "/pympipool/__init__.py"):
            if not os.path.exists(os.path.join(prefix, rel)):
                print(f"check_install: {rel} was not installed", file=sys.stderr)
                return 1
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = os.path.join(prefix, package_subdir)
        env["PREFIX"] = prefix
        proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=prefix, env=env,
                              capture_output=True, text=True, timeout=120)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0 or "ran on ranks 2" not in proc.stdout:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
