"""Executes a notebook headless and checks the text its code cells print.

    run_notebook.py NOTEBOOK [--timeout SECONDS]

Each code cell may carry regular expressions in its metadata,
``{"pympipool": {"expect": ["regex", ...]}}``; the cell's output (its stdout,
stderr and the text/plain of its results, joined) must match every one of
them (re.MULTILINE).  The run fails when a cell raises, when any expectation
is not met, when the notebook carries no expectation at all, or when the
committed notebook holds outputs (notebooks are committed clean).

The kernel is this interpreter (``sys.executable -m ipykernel_launcher``),
from a kernelspec written to a temporary directory, whatever kernel the
notebook names or the machine has installed; it inherits this process's
environment, so PYTHONPATH reaches it.  The notebook's directory is the
kernel's working directory.  Used by CTest as ``example.notebook``.
"""
import argparse
import json
import os
import re
import sys
import tempfile

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

KERNEL_NAME = "pympipool-test-python"


def s_cell_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", "") + "\n")
        elif output.get("output_type") == "error":
            parts.append("\n".join(output.get("traceback", [])) + "\n")
    return "".join(parts)


def s_kernel_manager(kernel_dir: str) -> KernelManager:
    spec_dir = os.path.join(kernel_dir, KERNEL_NAME)
    os.makedirs(spec_dir)
    argv = [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    with open(os.path.join(spec_dir, "kernel.json"), "w", encoding="utf-8") as f:
        json.dump({"argv": argv, "display_name": "pympipool test", "language": "python"}, f)
    specs = KernelSpecManager(kernel_dirs=[kernel_dir])
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebook")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per cell")
    args = parser.parse_args()

    nb = nbformat.read(args.notebook, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(code_cells) if c.get("outputs") or c.get("execution_count")]
    if dirty:
        print(f"run_notebook: code cells {dirty} of {args.notebook} hold outputs; commit it clean", file=sys.stderr)
        return 1
    if not any(c.metadata.get("pympipool", {}).get("expect") for c in code_cells):
        print(f"run_notebook: {args.notebook} has no pympipool.expect metadata to check", file=sys.stderr)
        return 1

    workdir = os.path.dirname(os.path.abspath(args.notebook))
    with tempfile.TemporaryDirectory(prefix="pmp-kernel-") as kernel_dir:
        client = NotebookClient(
            nb,
            km=s_kernel_manager(kernel_dir),
            timeout=args.timeout,
            resources={"metadata": {"path": workdir}},
        )
        try:
            client.execute()
        except CellExecutionError as error:
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
            print(f"run_notebook: a cell raised:\n{text}", file=sys.stderr)
            return 1

    failed = 0
    for index, cell in enumerate(code_cells):
        text = s_cell_text(cell)
        print(f"--- code cell {index}\n{text}", end="" if text.endswith("\n") or not text else "\n")
        for regex in cell.metadata.get("pympipool", {}).get("expect", []):
            if not re.search(regex, text, re.MULTILINE):
                print(f"run_notebook: code cell {index}: output does not match {regex!r}", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
