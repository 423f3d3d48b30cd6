# Whether mpi4py can be used inside the runtime, decided at configure time.
#
# The runtime is an MPI program; a user function may want mpi4py.  That only
# works when the mpi4py importable by Python3_EXECUTABLE is built for the
# same MPI library as the runtime (Debian's python3-mpi4py is built for Open
# MPI, so an MPICH runtime must not load it).  A plain Python (no mpiexec)
# imports mpi4py.MPI with mpi4py.rc.initialize = False, which loads its MPI
# library without initialising it, and prints MPI_Get_library_version.
#
# Sets, for the runtime's compile definitions and for tests:
#   PYMPIPOOL_MPI4PY          matching | mismatched | absent
#   PYMPIPOOL_MPI4PY_MPI      short name of mpi4py's MPI ("Open MPI 4.1.4"), or ""
#   PYMPIPOOL_MPI4PY_VERSION  mpi4py's version, or ""
#   PYMPIPOOL_RUNTIME_MPI     short name of the runtime's MPI ("MPICH 4.0.2")
# The runtime checks "matching" again at start-up on every rank (the
# DT_NEEDED entries of the mpi4py.MPI extension it would load, see
# runtime/pmp_worker.py and pylib/pympipool/_elf.py), because the job's
# sys.path may differ from the build's.  The results also go into the
# package's _config.py, for `python -m pympipool --info`.
if(PYMPIPOOL_MPI_FLAVOUR STREQUAL "mpich")
  set(PYMPIPOOL_RUNTIME_MPI "MPICH ${PYMPIPOOL_MPI_VERSION}")
elseif(PYMPIPOOL_MPI_FLAVOUR STREQUAL "openmpi")
  set(PYMPIPOOL_RUNTIME_MPI "Open MPI ${PYMPIPOOL_MPI_VERSION}")
else()
  set(PYMPIPOOL_RUNTIME_MPI "MPI ${PYMPIPOOL_MPI_VERSION}")
endif()

set(PYMPIPOOL_MPI4PY "absent")
set(PYMPIPOOL_MPI4PY_MPI "")
set(PYMPIPOOL_MPI4PY_VERSION "")
execute_process(
  COMMAND "${Python3_EXECUTABLE}" -c
          "import mpi4py; mpi4py.rc.initialize = False; mpi4py.rc.finalize = False; from mpi4py import MPI; print(mpi4py.__version__); print(MPI.Get_library_version().splitlines()[0].strip())"
  RESULT_VARIABLE _pmp_m4p_rc
  OUTPUT_VARIABLE _pmp_m4p_out
  ERROR_VARIABLE _pmp_m4p_err
  TIMEOUT 60)
if(_pmp_m4p_rc EQUAL 0)
  string(REPLACE "\n" ";" _pmp_m4p_lines "${_pmp_m4p_out}")
  list(GET _pmp_m4p_lines 0 PYMPIPOOL_MPI4PY_VERSION)
  list(GET _pmp_m4p_lines 1 _pmp_m4p_lib)
  if(_pmp_m4p_lib MATCHES "Open MPI v([0-9][0-9.]*)")
    set(_pmp_m4p_flavour openmpi)
    set(PYMPIPOOL_MPI4PY_MPI "Open MPI ${CMAKE_MATCH_1}")
  elseif(_pmp_m4p_lib MATCHES "MPICH Version:[ \t]*([0-9][0-9.a-z]*)")
    set(_pmp_m4p_flavour mpich)
    set(PYMPIPOOL_MPI4PY_MPI "MPICH ${CMAKE_MATCH_1}")
  else()
    set(_pmp_m4p_flavour other)
    set(PYMPIPOOL_MPI4PY_MPI "${_pmp_m4p_lib}")
  endif()
  if(_pmp_m4p_flavour STREQUAL PYMPIPOOL_MPI_FLAVOUR AND NOT _pmp_m4p_flavour STREQUAL "other")
    set(PYMPIPOOL_MPI4PY "matching")
  else()
    set(PYMPIPOOL_MPI4PY "mismatched")
  endif()
  message(STATUS "pympipool: mpi4py ${PYMPIPOOL_MPI4PY_VERSION} for ${PYMPIPOOL_MPI4PY_MPI}, "
                 "runtime ${PYMPIPOOL_RUNTIME_MPI}: ${PYMPIPOOL_MPI4PY}")
else()
  message(STATUS "pympipool: mpi4py is not importable by ${Python3_EXECUTABLE}: "
                 "functions get pympipool's own communicator")
endif()
