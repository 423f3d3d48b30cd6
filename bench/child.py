"""One measurement in a process of its own (started by harness.run_child).

    python3 bench/child.py MODULE FUNCTION PARAMS_JSON OUT_JSON

Calls ``workloads.MODULE.FUNCTION(**PARAMS)`` and writes the dict of
measured values it returns to OUT_JSON.  An exception ends the process with
status 1, its last line naming the exception (the runner reports it).

The ``__main__`` guard matters: mpi4py.futures imports the main module of
the process that spawns its workers in each worker.
"""

import importlib
import json
import os
import sys


def main() -> int:
    module, function, params, out_path = sys.argv[1:5]
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    workload = importlib.import_module(f"workloads.{module}")
    values = getattr(workload, function)(**json.loads(params))
    with open(out_path, "w") as f:
        json.dump(values, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
