#!/usr/bin/env bash
# Sets everything up (Debian packages, configure, build) and runs the whole
# test suite: against MPICH, against Open MPI, the unit tests once more
# under AddressSanitizer and UndefinedBehaviorSanitizer, and the protocol
# decoder's libFuzzer target (clang) for a bounded time.
#   bash scripts/test.sh [mpich|openmpi|asan|fuzz ...]   (default: all four)
source "$(dirname "$0")/common.sh"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(mpich openmpi asan fuzz)
pmp_install_packages
status=0
for t in "${targets[@]}"; do
    case $t in
    mpich | openmpi)
        pmp_build "$t" -DPYMPIPOOL_WERROR=ON
        # Every test but the benchmark (label bench: ctest -L bench, bench/run.py).
        echo "== ctest ($t)"
        ctest --test-dir "$PMP_BUILD" --output-on-failure --timeout 900 -j2 -LE bench || status=1
        ;;
    asan)
        pmp_build mpich-asan -DPYMPIPOOL_WERROR=ON -DPYMPIPOOL_SANITIZE=ON
        echo "== ctest (unit tests under ASan/UBSan)"
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
            ctest --test-dir "$PMP_BUILD" --output-on-failure -L unit -j2 || status=1
        ;;
    fuzz)
        # Only the fuzz targets are built (with clang); -L fuzz runs
        # fuzz.protocol (PYMPIPOOL_FUZZ_SECONDS, default 60 s).
        CC=clang PMP_BUILD_TARGETS="fuzz_protocol fuzz_replay" \
            pmp_build mpich-fuzz -DPYMPIPOOL_WERROR=ON -DPYMPIPOOL_FUZZ=ON
        echo "== ctest (libFuzzer on the protocol decoder)"
        ctest --test-dir "$PMP_BUILD" --output-on-failure -L fuzz || status=1
        ;;
    *)
        echo "unknown target '$t': use mpich, openmpi, asan or fuzz" >&2
        exit 2
        ;;
    esac
done
exit $status
