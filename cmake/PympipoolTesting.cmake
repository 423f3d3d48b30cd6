# Helpers for CTest: every test has a label and a timeout.
#   pmp_add_test(NAME name COMMAND ... LABELS l... [TIMEOUT s] [ENVIRONMENT ...])
set(PMP_TEST_PYTHONPATH "${PYMPIPOOL_PYTHON_BUILD_DIR}")
function(pmp_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT;WORKING_DIRECTORY" "COMMAND;LABELS;ENVIRONMENT" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  if(NOT T_WORKING_DIRECTORY)
    set(T_WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  endif()
  add_test(NAME ${T_NAME} COMMAND ${T_COMMAND} WORKING_DIRECTORY "${T_WORKING_DIRECTORY}")
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
                       ENVIRONMENT "${T_ENVIRONMENT}")
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
