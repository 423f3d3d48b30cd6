# Helpers for CTest: every test has a label and a timeout.
#   pmp_add_test(NAME name COMMAND ... LABELS l... [TIMEOUT s] [ENVIRONMENT ...])
#
# No test may leave a process behind.  Every test except the lint and fuzz
# ones (which start nothing) gets PYMPIPOOL_TEST_SESSION=<build dir> in its
# environment, inherited by whatever it starts (mpiexec, proxies, ranks), and
# requires the fixture pmp_no_strays: stray.setup (before them) records what
# already exists, stray.check (after them) fails, listing and killing them,
# if a process of this run is still alive (tests/tools/check_strays.py,
# registered in tests/CMakeLists.txt).
set(PMP_TEST_PYTHONPATH "${PYMPIPOOL_PYTHON_BUILD_DIR}")
set(PMP_TEST_SESSION "${PROJECT_BINARY_DIR}")
function(pmp_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT;WORKING_DIRECTORY" "COMMAND;LABELS;ENVIRONMENT" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  if(NOT T_WORKING_DIRECTORY)
    set(T_WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  endif()
  set(_strays ON)
  if("lint" IN_LIST T_LABELS OR "fuzz" IN_LIST T_LABELS OR T_NAME MATCHES "^stray\\.")
    set(_strays OFF)
  endif()
  if(_strays)
    list(APPEND T_ENVIRONMENT "PYMPIPOOL_TEST_SESSION=${PMP_TEST_SESSION}")
  endif()
  add_test(NAME ${T_NAME} COMMAND ${T_COMMAND} WORKING_DIRECTORY "${T_WORKING_DIRECTORY}")
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
                       ENVIRONMENT "${T_ENVIRONMENT}")
  if(_strays)
    # Deferred to the end of the directory: callers often set
    # FIXTURES_REQUIRED afterwards with set_tests_properties, which replaces
    # the property; appending after them keeps both.
    cmake_language(EVAL CODE "cmake_language(DEFER CALL set_property TEST [[${T_NAME}]] APPEND
                              PROPERTY FIXTURES_REQUIRED pmp_no_strays)")
  endif()
endfunction()

# The mpiexec command line for N ranks of this MPI (Open MPI needs
# --oversubscribe for more ranks than cores).
function(pmp_mpiexec_command out n)
  set(cmd "${MPIEXEC_EXECUTABLE}" ${MPIEXEC_NUMPROC_FLAG} ${n})
  if(PYMPIPOOL_MPI_FLAVOUR STREQUAL "openmpi")
    list(APPEND cmd --oversubscribe)
  endif()
  set(${out} "${cmd}" PARENT_SCOPE)
endfunction()
