#!/usr/bin/env bash
# Sets everything up (Debian packages, configure, build) and runs every
# example in examples/, printing what each prints (programs that examples
# boot live in examples/backends/); the notebook runs headless through
# tests/tools/run_notebook.py, which prints each code cell's output.
#   bash scripts/examples.sh [mpich|openmpi]     (default: mpich)
source "$(dirname "$0")/common.sh"
flavour=${1:-mpich}
pmp_install_packages
pmp_build "$flavour"
export PYTHONPATH="$PMP_BUILD/python${PYTHONPATH:+:$PYTHONPATH}"
# The examples are the original documentation's, verbatim: MPISpawnPool(cores=4)
# may start more ranks than the machine has cores, which Open MPI refuses
# unless told (MPICH allows it silently).
export OMPI_MCA_rmaps_base_oversubscribe=1
cd "$PMP_ROOT/examples"
for ex in *.py; do
    echo "== examples/$ex"
    "$PMP_PYTHON" "$ex"
done
for nb in *.ipynb; do
    [ -e "$nb" ] || continue
    echo "== examples/$nb"
    "$PMP_PYTHON" "$PMP_ROOT/tests/tools/run_notebook.py" "$nb"
done
