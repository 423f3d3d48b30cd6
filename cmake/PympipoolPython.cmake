# Where the importable package lives in the build tree and under the install
# prefix.  The build tree holds a complete package (pure Python files, the
# _core extension and the generated _config.py) so that tests and examples
# run with PYTHONPATH=<build>/python and no install step.
set(PYMPIPOOL_PYTHON_BUILD_DIR "${PROJECT_BINARY_DIR}/python")
set(PYMPIPOOL_PACKAGE_BUILD_DIR "${PYMPIPOOL_PYTHON_BUILD_DIR}/pympipool")
set(PYMPIPOOL_PYTHON_INSTALL_DIR
    "${CMAKE_INSTALL_LIBDIR}/python${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}/site-packages"
    CACHE STRING "Install directory of the pympipool package, relative to the prefix")
message(STATUS "pympipool: Python ${Python3_VERSION} (${Python3_EXECUTABLE})")

# mpi4py inside the runtime: matching, mismatched or absent.
include(PympipoolMPI4py)
