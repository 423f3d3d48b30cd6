"""The pickle of a function, made once for as long as it cannot differ.

A call carries the pickle of its function (docs/architecture.md): for a
function pickled by value (``__main__``, a notebook, a module only the caller
can import) that pickle is a snapshot of the function and of the globals it
uses, taken at ``submit``.  cloudpickle makes it in about 25 us for the
smallest function, more than everything else a tiny call costs the caller.

This module keeps the pickle of each function and hands it out again while
a *fingerprint* of everything that goes into it is unchanged.  The
fingerprint is only made when every object the pickle depends on is one
whose pickle cannot change without the object itself being replaced:

* the function's code, name, qualified name, module, docstring and
  annotations object, and its empty ``__dict__``;
* its defaults, keyword defaults, closure cells' contents, and the values of
  the globals its code (and the code nested in it) names, each of which must
  be *frozen*: ``None``, a bool, number, string or bytes; a tuple or
  frozenset of frozen values; a module pickled by reference; a class or
  builtin pickled by reference; or a plain function, frozen in turn by its
  own fingerprint (recursion is cut at functions already being looked at).

Frozen values are compared by value (numbers, strings) or by identity
(modules, classes, functions), so rebinding a global (``SCALE = 2``) or
redefining a function gives a new fingerprint and a new pickle.  A function
that depends on anything mutable (a list, a dict, an array, an instance, a
class defined in ``__main__``) has no fingerprint and is pickled at every
submit, as before: a change made in place between two submits is still seen
by the second call.  The pickle is byte for byte the one a fresh dump would
give, so the workers' cache of unpickled functions (keyed by these bytes)
still applies.

Cost: a fingerprint is a walk over the names the code uses (kept per code
object) and a dictionary lookup per name, about 1-3 us for a typical
function.  Entries are held by weak reference to the function: a lambda
made for one ``map`` goes with its pickle.  Thread-safe (one dict operation
at a time under the GIL; two threads may both pickle, which is harmless).
"""

from __future__ import annotations

import functools
import sys
import types
import weakref
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import cloudpickle  # type: ignore[import]  # ships no type information

_is_registered_by_value: Optional[Callable[[types.ModuleType], bool]] = getattr(
    getattr(cloudpickle, "cloudpickle", None), "_is_registered_pickle_by_value", None
)

_ATOMS = (type(None), bool, int, float, complex, str, bytes, type(Ellipsis))
_DEPTH = 8  # nesting of tuples and functions looked into before giving up

#: id(code object) -> (the code object, the names its code and the code
#: nested in it look up); plain dicts, since a weak-key lookup makes a
#: weak reference at every call.  Code objects are few (lambdas made in a
#: loop share theirs) and the table is emptied when it grows past _MAX_CODES.
_code_names: Dict[int, Tuple[types.CodeType, Tuple[str, ...]]] = {}
_MAX_CODES = 4096
#: id(function) -> (weak reference to it, fingerprint, pickle); the weak
#: reference's callback removes the entry when the function goes.
_pickles: Dict[int, Tuple["weakref.ref[Any]", Any, bytes]] = {}


class _NotFrozen(Exception):
    """Raised inside the walk: the pickle may change in place."""


_NOT_FROZEN = _NotFrozen()


def _names(code: types.CodeType) -> Tuple[str, ...]:
    entry = _code_names.get(id(code))
    if entry is not None and entry[0] is code:
        return entry[1]
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.update(_names(const))
    names = tuple(sorted(found))
    if len(_code_names) >= _MAX_CODES:
        _code_names.clear()
    _code_names[id(code)] = (code, names)
    return names


def _by_reference(obj: Any) -> bool:
    """obj (a module, class or builtin) is pickled by reference: its name
    alone, whatever its state."""
    if isinstance(obj, types.ModuleType):
        name = obj.__name__
        if name == "__main__" or sys.modules.get(name) is not obj:
            return False
        return _is_registered_by_value is not None and not _is_registered_by_value(obj)
    module_name = getattr(obj, "__module__", None)
    if not isinstance(module_name, str) or module_name == "__main__":
        return False
    module = sys.modules.get(module_name)
    if module is None or _is_registered_by_value is None or _is_registered_by_value(module):
        return False
    target: Any = module
    for part in getattr(obj, "__qualname__", "<>").split("."):
        target = getattr(target, part, None)
    return target is obj


def _frozen(value: Any, seen: Set[int], depth: int) -> Any:
    """What stands for value in a fingerprint; raises _NotFrozen."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if depth <= 0:
        raise _NOT_FROZEN
    if kind is tuple or kind is frozenset:
        return (kind, tuple(_frozen(v, seen, depth - 1) for v in value))
    if kind is types.FunctionType:
        if id(value) in seen:  # recursion: a weak reference does not keep it alive
            return weakref.ref(value)
        return _fingerprint(value, seen, depth - 1)
    if kind is types.ModuleType or kind is type or kind is types.BuiltinFunctionType:
        if kind is types.BuiltinFunctionType and not isinstance(
            value.__self__, (types.ModuleType, type(None))
        ):
            raise _NOT_FROZEN
        if _by_reference(value):
            return value
    raise _NOT_FROZEN


def _fingerprint(fn: types.FunctionType, seen: Set[int], depth: int) -> Tuple[Any, ...]:
    seen.add(id(fn))
    if fn.__dict__:
        raise _NOT_FROZEN
    code = fn.__code__
    g = fn.__globals__
    parts: List[Any] = [
        code,
        fn.__name__,
        fn.__qualname__,
        fn.__module__,
        fn.__doc__,
        id(fn.__annotations__) if fn.__annotations__ else None,
    ]
    if fn.__defaults__:
        parts.append(_frozen(fn.__defaults__, seen, depth))
    if fn.__kwdefaults__:
        parts.append(
            tuple((k, _frozen(v, seen, depth)) for k, v in fn.__kwdefaults__.items())
        )
    for cell in fn.__closure__ or ():
        try:
            parts.append(_frozen(cell.cell_contents, seen, depth))
        except ValueError:  # an empty cell
            parts.append(_NotFrozen)  # stands for "empty"
    for name in _names(code):
        if name in g:
            parts.append(name)
            parts.append(_frozen(g[name], seen, depth))
    return tuple(parts)


def fingerprint(fn: Any) -> Optional[Tuple[Any, ...]]:
    """The fingerprint of a plain function whose pickle can only change by
    replacing one of the objects in it, or None."""
    if type(fn) is not types.FunctionType:
        return None
    try:
        return _fingerprint(fn, set(), _DEPTH)
    except _NotFrozen:
        return None


def cached_pickle(fn: Any, dump: Callable[[Any], bytes]) -> bytes:
    """``dump(fn)``, or the bytes it gave last time for fn when fn's
    fingerprint has not changed since."""
    mark = fingerprint(fn)
    if mark is None:
        return dump(fn)
    key = id(fn)
    entry = _pickles.get(key)
    if entry is not None and entry[0]() is fn and entry[1] == mark:
        return entry[2]
    data = dump(fn)
    _pickles[key] = (weakref.ref(fn, functools.partial(_forget, key)), mark, data)
    return data


def _forget(key: int, ref: "weakref.ref[Any]") -> None:
    """A cached function is gone: its entry goes (unless the id was reused
    by a newer function already)."""
    entry = _pickles.get(key)
    if entry is not None and entry[0] is ref:
        del _pickles[key]


