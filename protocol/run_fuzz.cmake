# Runs the libFuzzer target for the fuzz.protocol test:
#   cmake -DFUZZER=path -DSEEDS=dir -DDICT=file -DWORK=dir -DSECONDS=n -P run_fuzz.cmake
# The checked-in seeds are copied into WORK/corpus (libFuzzer adds the inputs
# it finds to its first corpus directory, and the source tree must stay
# untouched); crash, leak and timeout reproducers land in WORK/artifacts/.
# Any of them, or a non-zero exit, fails the test; the reproducer can then be
# replayed with `fuzz_protocol FILE` or `fuzz_replay FILE` and belongs in
# protocol/fuzz_corpus/ once the decoder is fixed.
foreach(_v FUZZER SEEDS DICT WORK SECONDS)
  if(NOT DEFINED ${_v})
    message(FATAL_ERROR "run_fuzz.cmake: -D${_v}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/corpus" "${WORK}/artifacts")
file(GLOB _seeds "${SEEDS}/*")
file(COPY ${_seeds} DESTINATION "${WORK}/corpus")
list(LENGTH _seeds _nseeds)
message(STATUS "fuzz.protocol: ${_nseeds} seeds, ${SECONDS} s")
execute_process(
  COMMAND "${FUZZER}" -max_total_time=${SECONDS} -timeout=5 -rss_limit_mb=2048 -max_len=4096
          -print_final_stats=1 "-dict=${DICT}" "-artifact_prefix=${WORK}/artifacts/"
          "${WORK}/corpus"
  RESULT_VARIABLE _rc)
file(GLOB _artifacts "${WORK}/artifacts/*")
if(NOT _rc EQUAL 0 OR _artifacts)
  message(FATAL_ERROR "fuzz.protocol: the fuzzer failed (exit ${_rc}); reproducers: ${_artifacts}")
endif()
file(GLOB _corpus "${WORK}/corpus/*")
list(LENGTH _corpus _ncorpus)
message(STATUS "fuzz.protocol: no crash, leak or timeout; corpus grew from ${_nseeds} to ${_ncorpus}")
