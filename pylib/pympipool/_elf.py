"""Which MPI library a binary links, read from its ELF dynamic section.

One module, two homes.  The pympipool package ships it (``pympipool._elf``,
used by ``python -m pympipool --info``), and the runtime embeds its source
(as the module ``_pympipool_elf``, see runtime/CMakeLists.txt), where the
worker (runtime/pmp_worker.py) decides at start-up whether the mpi4py on
``sys.path`` may be used inside the job.  Both ask the same question without
loading anything: the ``DT_NEEDED`` entries of the ``mpi4py.MPI`` extension
must name the runtime's MPI library (by its ``DT_SONAME``), otherwise
importing ``mpi4py.MPI`` would load a second MPI library into the process.

Standard library only (the runtime's interpreter imports nothing else
before the user's code runs); nothing here imports ``mpi4py.MPI``.
"""

import os
import re
import struct
from typing import List, Optional, Tuple

__all__ = [
    "elf_dynamic_strings",
    "mpi4py_extension",
    "mpi4py_links_runtime",
    "mpi_sonames",
    "mpi4py_matches_executable",
]

# DT_NEEDED names of MPI libraries: libmpi.so.40 (Open MPI), libmpich.so.12
# and libmpi.so.12 (MPICH and its derivatives).
_MPI_SONAME = re.compile(r"^lib(mpi|mpich)\.so(\.|$)")


def elf_dynamic_strings(path: str) -> Tuple[List[str], Optional[str]]:
    """(DT_NEEDED list, DT_SONAME or None) of the ELF file at path, read
    from its section headers.  Raises ValueError for anything that is not a
    well-formed ELF file with a dynamic section, OSError if it cannot be read."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or len(data) < 64:
        raise ValueError("%s is not an ELF file" % path)
    bits = {1: 32, 2: 64}.get(data[4])
    order = {1: "<", 2: ">"}.get(data[5])
    if bits is None or order is None:
        raise ValueError("%s: unknown ELF class or byte order" % path)
    if bits == 64:
        (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
        sec_fmt, dyn_fmt = order + "IIQQQQIIQQ", order + "qQ"
    else:
        (shoff,) = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x2E)
        sec_fmt, dyn_fmt = order + "IIIIIIIIII", order + "iI"
    sections = []
    for i in range(shnum):
        off = shoff + i * shentsize
        if off + struct.calcsize(sec_fmt) > len(data):
            raise ValueError("%s: truncated section table" % path)
        sections.append(struct.unpack_from(sec_fmt, data, off))
    # fields: name, type, flags, addr, offset, size, link, info, align, entsize
    dynamic = [sec for sec in sections if sec[1] == 6]  # SHT_DYNAMIC
    if not dynamic:
        raise ValueError("%s has no dynamic section" % path)
    dyn = dynamic[0]
    if dyn[6] >= len(sections):
        raise ValueError("%s: bad string table link" % path)
    strtab = sections[dyn[6]]
    strings = data[strtab[4] : strtab[4] + strtab[5]]

    def text(offset: int) -> str:
        end = strings.find(b"\0", offset)
        if offset >= len(strings) or end < 0:
            raise ValueError("%s: bad string offset" % path)
        return strings[offset:end].decode("utf-8", "replace")

    needed, soname = [], None
    step = struct.calcsize(dyn_fmt)
    for off in range(dyn[4], min(dyn[4] + dyn[5], len(data) - step + 1), step):
        tag, value = struct.unpack_from(dyn_fmt, data, off)
        if tag == 0:  # DT_NULL
            break
        if tag == 1:  # DT_NEEDED
            needed.append(text(value))
        elif tag == 14:  # DT_SONAME
            soname = text(value)
    return needed, soname


def mpi4py_extension() -> Optional[str]:
    """Path of the mpi4py.MPI extension on sys.path, or None.  Imports the
    pure-Python mpi4py package only, never mpi4py.MPI."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("mpi4py.MPI")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return None
    return spec.origin


def mpi4py_links_runtime(extension: str, libmpi: str) -> Tuple[bool, str]:
    """(ok, reason): whether the mpi4py.MPI extension file links the
    library at path libmpi (the runtime's MPI, by its soname)."""
    try:
        _, soname = elf_dynamic_strings(libmpi)
    except (OSError, ValueError) as exc:
        return False, "cannot read the runtime's MPI library: %s" % exc
    if not soname:
        return False, "the runtime's MPI library %s has no soname" % libmpi
    try:
        needed, _ = elf_dynamic_strings(extension)
    except (OSError, ValueError) as exc:
        return False, "cannot read %s: %s" % (extension, exc)
    if soname in needed:
        return True, "%s links %s" % (extension, soname)
    return False, "%s needs %s, not the runtime's %s" % (
        extension,
        ", ".join(n for n in needed if "mpi" in n) or "no MPI library",
        soname,
    )


def mpi_sonames(path: str) -> List[str]:
    """The MPI libraries among the DT_NEEDED entries of the ELF file at path
    (``libmpich.so.12``, ``libmpi.so.40``, ...).  Raises like
    elf_dynamic_strings."""
    needed, _ = elf_dynamic_strings(path)
    return [name for name in needed if _MPI_SONAME.match(name)]


def mpi4py_matches_executable(extension: str, executable: str) -> Tuple[bool, str]:
    """(ok, reason): whether the mpi4py.MPI extension file links the MPI
    library that the executable (pympipool-runtime) links.  The same
    question as mpi4py_links_runtime, asked from outside the job, where the
    runtime's loaded library is only known by the name the executable needs."""
    try:
        theirs = mpi_sonames(executable)
    except (OSError, ValueError) as exc:
        return False, "cannot read %s: %s" % (executable, exc)
    if not theirs:
        return False, "%s links no MPI library by a known name" % executable
    try:
        needed, _ = elf_dynamic_strings(extension)
    except (OSError, ValueError) as exc:
        return False, "cannot read %s: %s" % (extension, exc)
    common = [name for name in theirs if name in needed]
    if common:
        return True, "both link %s" % ", ".join(common)
    return False, "mpi4py.MPI links %s, the runtime %s" % (
        ", ".join(n for n in needed if _MPI_SONAME.match(n)) or "no MPI library",
        ", ".join(theirs),
    )
