# Chooses the MPI library (PYMPIPOOL_MPI=mpich|openmpi|auto), finds it with
# FindMPI through that library's own compiler wrapper, and records what the
# Python package needs to launch the runtime: the matching mpiexec, the
# flavour and the version.  Debian installs MPICH and Open MPI side by side
# with suffixed wrappers (mpicc.mpich, mpiexec.openmpi), which is why the
# wrapper is chosen by name rather than left to PATH.
if(PYMPIPOOL_MPI STREQUAL "mpich")
  set(_pmp_cc_names mpicc.mpich mpicc)
  set(_pmp_exec_names mpiexec.mpich mpiexec.hydra mpiexec)
elseif(PYMPIPOOL_MPI STREQUAL "openmpi")
  set(_pmp_cc_names mpicc.openmpi mpicc)
  set(_pmp_exec_names mpiexec.openmpi mpiexec)
elseif(PYMPIPOOL_MPI STREQUAL "auto")
  set(_pmp_cc_names mpicc)
  set(_pmp_exec_names mpiexec)
else()
  message(FATAL_ERROR "PYMPIPOOL_MPI must be mpich, openmpi or auto, not '${PYMPIPOOL_MPI}'")
endif()

if(NOT MPI_C_COMPILER)
  find_program(_pmp_mpicc NAMES ${_pmp_cc_names})
  if(NOT _pmp_mpicc)
    message(FATAL_ERROR "No MPI compiler wrapper (${_pmp_cc_names}) for PYMPIPOOL_MPI=${PYMPIPOOL_MPI}; "
                        "install libmpich-dev (mpich) or libopenmpi-dev (openmpi)")
  endif()
  set(MPI_C_COMPILER "${_pmp_mpicc}" CACHE FILEPATH "MPI C compiler wrapper")
endif()
if(NOT MPIEXEC_EXECUTABLE)
  find_program(_pmp_mpiexec NAMES ${_pmp_exec_names})
  if(NOT _pmp_mpiexec)
    message(FATAL_ERROR "No mpiexec (${_pmp_exec_names}) for PYMPIPOOL_MPI=${PYMPIPOOL_MPI}; "
                        "install mpich or openmpi-bin")
  endif()
  set(MPIEXEC_EXECUTABLE "${_pmp_mpiexec}" CACHE FILEPATH "mpiexec matching the MPI library")
endif()

find_package(MPI 3.0 REQUIRED COMPONENTS C)

# Which library the headers belong to, read from mpi.h itself.
include(CheckCSourceCompiles)
set(CMAKE_REQUIRED_LIBRARIES MPI::MPI_C)
check_c_source_compiles("#include <mpi.h>
#ifndef MPICH_VERSION
#error not mpich
#endif
int main(void){return 0;}" PMP_MPI_IS_MPICH)
check_c_source_compiles("#include <mpi.h>
#ifndef OMPI_MAJOR_VERSION
#error not openmpi
#endif
int main(void){return 0;}" PMP_MPI_IS_OPENMPI)
unset(CMAKE_REQUIRED_LIBRARIES)
if(PMP_MPI_IS_MPICH)
  set(PYMPIPOOL_MPI_FLAVOUR mpich)
elseif(PMP_MPI_IS_OPENMPI)
  set(PYMPIPOOL_MPI_FLAVOUR openmpi)
else()
  set(PYMPIPOOL_MPI_FLAVOUR other)
endif()
if(NOT PYMPIPOOL_MPI STREQUAL "auto" AND NOT PYMPIPOOL_MPI STREQUAL PYMPIPOOL_MPI_FLAVOUR)
  message(FATAL_ERROR "PYMPIPOOL_MPI=${PYMPIPOOL_MPI} but ${MPI_C_COMPILER} builds against ${PYMPIPOOL_MPI_FLAVOUR}")
endif()

# Version string from the header (MPICH_VERSION or OMPI_*_VERSION).
set(PYMPIPOOL_MPI_VERSION "${MPI_C_VERSION}")
foreach(_dir IN LISTS MPI_C_INCLUDE_DIRS)
  if(EXISTS "${_dir}/mpi.h")
    file(STRINGS "${_dir}/mpi.h" _lines REGEX "#define[ \t]+(MPICH_VERSION|OMPI_(MAJOR|MINOR|RELEASE)_VERSION)[ \t]")
    foreach(_l IN LISTS _lines)
      if(_l MATCHES "MPICH_VERSION[ \t]+\"([^\"]+)\"")
        set(PYMPIPOOL_MPI_VERSION "${CMAKE_MATCH_1}")
      elseif(_l MATCHES "OMPI_MAJOR_VERSION[ \t]+([0-9]+)")
        set(_maj ${CMAKE_MATCH_1})
      elseif(_l MATCHES "OMPI_MINOR_VERSION[ \t]+([0-9]+)")
        set(_min ${CMAKE_MATCH_1})
      elseif(_l MATCHES "OMPI_RELEASE_VERSION[ \t]+([0-9]+)")
        set(_rel ${CMAKE_MATCH_1})
      endif()
    endforeach()
  endif()
endforeach()
if(DEFINED _maj)
  set(PYMPIPOOL_MPI_VERSION "${_maj}.${_min}.${_rel}")
endif()
message(STATUS "pympipool: MPI ${PYMPIPOOL_MPI_FLAVOUR} ${PYMPIPOOL_MPI_VERSION}, mpiexec ${MPIEXEC_EXECUTABLE}")
