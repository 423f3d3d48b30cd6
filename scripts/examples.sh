#!/usr/bin/env bash
# Sets everything up (Debian packages, configure, build) and runs every
# example in examples/, printing what each prints.
#   bash scripts/examples.sh [mpich|openmpi]     (default: mpich)
source "$(dirname "$0")/common.sh"
flavour=${1:-mpich}
pmp_install_packages
pmp_build "$flavour"
export PYTHONPATH="$PMP_BUILD/python${PYTHONPATH:+:$PYTHONPATH}"
cd "$PMP_ROOT/examples"
for ex in *.py; do
    echo "== examples/$ex"
    "$PMP_PYTHON" "$ex"
done
