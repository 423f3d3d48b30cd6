"""Checks that docs/interfaces.md documents every public interface.

    check_interfaces_doc.py DOC

For every class pympipool exports that a user creates (``Executor``,
``PoolExecutor``, ``Pool``, ``MPISpawnPool``, ``SocketInterface``) and for
the module-level functions (the socket coupling's other end and
``cancel_items_in_queue``), the page must
name the class or function, every parameter of its constructor or
signature, and every public method and property, each inside code (inline
or a block).  Imports nothing but the package; starts no executor.  Used by
CTest as ``docs.interfaces``, so that a parameter added to the code and not
to the page fails the suite.
"""
import inspect
import re
import sys

import pympipool

CLASSES = ["Executor", "PoolExecutor", "Pool", "MPISpawnPool", "SocketInterface"]
REQUIRED = ["Executor", "PoolExecutor", "Pool", "MPISpawnPool"]
# Inherited plumbing that is not part of what the page documents.
SKIP_METHODS = {"broken"}


def s_names(obj, what):
    """(what, name) pairs the page must mention for obj."""
    names = [(what, obj.__name__)]
    target = obj.__init__ if inspect.isclass(obj) else obj
    for name in inspect.signature(target).parameters:
        if name not in ("self", "args", "kwargs"):
            names.append((f"parameter of {obj.__name__}", name))
    if inspect.isclass(obj):
        for name, member in inspect.getmembers(obj):
            if name.startswith("_") or name in SKIP_METHODS:
                continue
            if callable(member) or isinstance(inspect.getattr_static(obj, name), property):
                names.append((f"method of {obj.__name__}", name))
    return names


def s_code_words(doc):
    """Every identifier that appears inside inline code or a code block."""
    words = set()
    for span in re.findall(r"```.*?```|`[^`\n]+`", doc, re.DOTALL):
        words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span))
    return words


def main() -> int:
    doc = open(sys.argv[1], encoding="utf-8").read()
    words = s_code_words(doc)
    missing = []
    for name in CLASSES:
        obj = getattr(pympipool, name, None)
        if obj is None:
            if name in REQUIRED:
                missing.append(f"class {name} (not exported by pympipool)")
            continue
        for what, item in s_names(obj, "class"):
            if item not in words:
                missing.append(f"{what} {item}")
    # The other end of SocketInterface, and pympipool 0.5's queue helper:
    # module-level functions.
    for name in (
        "connect_to_socket_interface",
        "send_result",
        "receive_instruction",
        "close_connection",
        "cancel_items_in_queue",
    ):
        fn = getattr(pympipool, name, None)
        if fn is not None:
            for what, item in s_names(fn, "function"):
                if item not in words:
                    missing.append(f"{what} {item}")
    for item in missing:
        print(f"check_interfaces_doc: {sys.argv[1]} does not document {item}", file=sys.stderr)
    if not missing:
        print("check_interfaces_doc: every class, parameter and method is documented")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
