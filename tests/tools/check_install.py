"""Installs the build into a fresh prefix and uses the installed package.

    check_install.py BUILD_DIR PACKAGE_SUBDIR

Checks that `cmake --install` puts the runtime, the frontend library, the
package and the `pympipool` command under the prefix, that the installed
package imports from a directory unrelated to the source and build trees,
that it finds the installed runtime (not the build tree's), that an Executor
started from it returns one result per rank, and that `<prefix>/bin/pympipool`
(run without PYTHONPATH) describes the installed package, not the build tree,
also after the whole prefix was moved to another directory.
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
        for rel in ("bin/pympipool-runtime", "bin/pympipool",
                    package_subdir + "/pympipool/__init__.py"):
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
        if check_command(prefix, package_subdir) != 0:
            return 1
        # The installed tree moved elsewhere still finds its own runtime.
        moved = prefix + "-moved"
        os.rename(prefix, moved)
        try:
            return check_command(moved, package_subdir)
        finally:
            os.rename(moved, prefix)


def check_command(prefix: str, package_subdir: str) -> int:
    """`<prefix>/bin/pympipool --version` and `--info` describe the installed tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYMPIPOOL_RUNTIME")}
    command = os.path.join(prefix, "bin", "pympipool")
    version = subprocess.run([command, "--version"], cwd=prefix, env=env,
                             capture_output=True, text=True, timeout=60)
    info = subprocess.run([command, "--info"], cwd=prefix, env=env,
                          capture_output=True, text=True, timeout=60)
    sys.stdout.write(version.stdout + info.stdout)
    sys.stderr.write(version.stderr + info.stderr)
    rows = dict(line.split(": ", 1) for line in info.stdout.splitlines() if ": " in line)
    wanted = {
        "package": os.path.join(prefix, package_subdir, "pympipool"),
        "runtime": os.path.join(prefix, "bin", "pympipool-runtime"),
        "status": "ok",
    }
    bad = [f"{key}: {rows.get(key)!r}, expected {value!r}" for key, value in wanted.items()
           if rows.get(key) != value]
    if version.returncode != 0 or not version.stdout.startswith("pympipool "):
        bad.append(f"--version exited {version.returncode} with {version.stdout!r}")
    if info.returncode != 0:
        bad.append(f"--info exited {info.returncode}")
    for line in bad:
        print("check_install: bin/pympipool " + line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
