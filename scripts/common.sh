# Shared by scripts/examples.sh and scripts/test.sh: installs what is missing
# (Debian packages), configures and builds one MPI flavour of pympipool.
# Everything uses Debian's /usr/bin/python3: the python3-* packages belong to
# it, and the runtime embeds exactly that interpreter.  python3-pip and
# python3-venv are for the install.* tests (pip install into a fresh venv).
set -euo pipefail

PMP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PMP_PYTHON=/usr/bin/python3
PMP_PACKAGES=(cmake make gcc clang libclang-rt-14-dev pkg-config clang-format libzmq3-dev python3-dev python3-cloudpickle python3-numpy
    python3-pytest python3-zmq python3-mpi4py python3-tqdm python3-nbclient python3-ipykernel python3-nbformat
    python3-pip python3-venv python3-sphinx python3-myst-parser mypy
    libmpich-dev mpich libopenmpi-dev openmpi-bin slurmctld slurmd slurm-client iproute2)

pmp_install_packages() {
    local missing=() p
    for p in "${PMP_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# pmp_build <flavour: mpich|openmpi[-suffix]> [extra cmake args...]  -> sets PMP_BUILD
# PMP_BUILD_TARGETS (optional): build only these targets instead of all.
pmp_build() {
    local flavour=$1; shift
    PMP_BUILD=${PMP_BUILD_ROOT:-$PMP_ROOT}/build-$flavour
    echo "== configuring and building $PMP_BUILD"
    mkdir -p "$PMP_BUILD"
    cmake -S "$PMP_ROOT" -B "$PMP_BUILD" -DPython3_EXECUTABLE=$PMP_PYTHON -DPYMPIPOOL_MPI="${flavour%%-*}" \
        "$@" >"$PMP_BUILD/configure.log" 2>&1 || { cat "$PMP_BUILD/configure.log"; return 1; }
    cmake --build "$PMP_BUILD" -j"$(nproc)" ${PMP_BUILD_TARGETS:+--target $PMP_BUILD_TARGETS} \
        >"$PMP_BUILD/build.log" 2>&1 || { cat "$PMP_BUILD/build.log"; return 1; }
}

# Open MPI refuses to run as root unless told that it is intended.
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
