"""The argument checks every interface shares, done before anything starts.

Every constructor (``Executor``, ``PoolExecutor``, ``Pool``,
``MPISpawnPool``) checks all of its arguments before the engine launches
anything (``_engine._Engine._start_engine``), so a wrong argument costs no
MPI job, thread or socket: it raises at once, in the caller's thread, with a
sentence that names the parameter and says what it takes (``TypeError`` for
the wrong type, ``ValueError`` for a value out of range,
``FileNotFoundError`` for a missing directory or program).  Each check is a
function of its argument alone (and of the file system, for ``cwd`` and the
programs); it returns the value as the engine uses it (an ``int``, an
absolute path, a ``float``) and has no other effect.

``_Default`` and ``_resolve_alias`` serve the parameters that have a second
name from pympipool 0.5's documentation (``cores`` for ``max_workers``):
passing both spellings is an error, passing one is not.
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import Any, Dict, Optional, Tuple, Union


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be greater than 0")
    return int(value)


class _Default(int):
    """The default of a count that has an alias (``cores`` for
    ``max_workers``): an int equal to the default that can be told apart
    from the same number passed explicitly, so that passing both spellings
    is detected.  Its repr is the number's, so signatures read as usual."""

    def __repr__(self) -> str:
        return int.__repr__(self)


def _resolve_alias(
    name: str, value: Any, alias: str, alias_value: Any
) -> Tuple[str, Any]:
    """(the name the user spelled, its value) of a parameter with an alias;
    TypeError if both spellings were given."""
    if alias_value is None:
        return name, value
    if not isinstance(value, _Default):
        raise TypeError(
            f"{alias} is another name for {name}: pass one of them, not both"
        )
    return alias, alias_value


def _check_cwd(cwd: Any, name: str = "cwd") -> Optional[str]:
    if cwd is None:
        return None
    try:
        path: Union[str, bytes] = os.fspath(cwd)
    except TypeError:
        raise TypeError(
            f"{name} must be a path or None, not {type(cwd).__name__}"
        ) from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            errno.ENOENT, f"{name} must be an existing directory; no such directory", path
        )
    return os.path.abspath(path)


def _find_program(program: str, what: str) -> str:
    """Path of an executable (a path, or a name looked up in PATH)."""
    if os.sep in program:
        if os.path.isfile(program) and os.access(program, os.X_OK):
            return program
        raise FileNotFoundError(
            errno.ENOENT, f"{what} not found: no executable file at this path", program
        )
    found = shutil.which(program)
    if found is None:
        raise FileNotFoundError(
            errno.ENOENT, f"{what} not found: {program!r} is not on PATH", program
        )
    return found


def _check_restart_limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"restart_limit must be an int (>= 0), not {type(value).__name__}"
        )
    if value < 0:
        raise ValueError(f"restart_limit must be at least 0, not {value}")
    return int(value)


def _check_run_time_max(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"run_time_max must be None or a number of seconds, "
            f"not {type(value).__name__}"
        )
    if not (0 < value <= 1e9):  # also rejects nan
        raise ValueError(
            f"run_time_max must be None or a number of seconds > 0 (and at most 1e9), "
            f"not {value!r}"
        )
    return float(value)


def _check_hostname(value: Any) -> Optional[str]:
    """None (ipc:// on this host) or one address to listen on with TCP.
    Only the type is checked here: what a hostname may be (no wildcard, one
    address or interface name) is the frontend's rule, checked by the
    executor before anything is launched (frontend/pmp_command.c), which
    raises ValueError naming it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(
            f"hostname must be None or a str (an IP address or network interface "
            f"name), not {type(value).__name__}"
        )
    return value.strip()


#: The keys a per-call ``resource_dict`` may hold today (``submit(...,
#: resource_dict=...)``); new per-call resources are added here.
RESOURCE_KEYS = frozenset({"cache_key"})
#: ... and on a ``FlexExecutor``, which also places each call on its own
#: ranks: how many (``cores``), where it runs (``cwd``) and its
#: ``OMP_NUM_THREADS`` (``threads_per_core``).
FLEX_RESOURCE_KEYS = RESOURCE_KEYS | {"cores", "cwd", "threads_per_core"}
#: What a ``cache_key`` may be: a file name of its own in the cache directory.
_CACHE_KEY_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
)


def check_resource_dict(value: Any, max_cores: Optional[int] = None) -> Dict[str, Any]:
    """A call's ``resource_dict`` as the executor uses it (a new dict; empty
    for None).  TypeError for a non-dict, ValueError naming an unknown key
    or a ``cache_key`` that is not a non-empty name of letters, digits,
    ``.``, ``_`` and ``-`` (not starting with ``.``, at most 200 characters:
    it names a file).  With ``max_cores`` (a ``FlexExecutor``'s) the keys
    of ``FLEX_RESOURCE_KEYS`` are allowed too: ``cores`` an int from 1 to
    ``max_cores``, ``cwd`` an existing directory (made absolute here),
    ``threads_per_core`` an int >= 1; each None means unset."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"resource_dict must be a dict or None, not {type(value).__name__}")
    keys = RESOURCE_KEYS if max_cores is None else FLEX_RESOURCE_KEYS
    unknown = sorted(map(repr, set(value) - keys))
    if unknown:
        more = (
            " (cores, cwd and threads_per_core per call need a FlexExecutor)"
            if max_cores is None and set(value) & FLEX_RESOURCE_KEYS
            else ""
        )
        raise ValueError(
            f"resource_dict has unknown key(s) {', '.join(unknown)}; it may hold "
            f"{', '.join(sorted(map(repr, keys)))}{more}"
        )
    checked = dict(value)
    if max_cores is not None:
        _check_flex_resources(checked, max_cores)
    key = value.get("cache_key")
    if key is not None and (
        not isinstance(key, str)
        or not key
        or len(key) > 200
        or key.startswith(".")
        or not _CACHE_KEY_CHARS.issuperset(key)
    ):
        raise ValueError(
            f"resource_dict['cache_key'] must be a non-empty str of letters, digits, "
            f"'.', '_' and '-' (not starting with '.', at most 200 characters), "
            f"not {key!r}"
        )
    return checked


def _check_flex_resources(value: Dict[str, Any], max_cores: int) -> None:
    """The ``FlexExecutor`` keys of a resource_dict, checked and normalised
    in place (see check_resource_dict)."""
    cores = value.get("cores")
    if cores is not None:
        if isinstance(cores, bool) or not isinstance(cores, int):
            raise TypeError(
                f"resource_dict['cores'] must be an int, not {type(cores).__name__}"
            )
        if not 1 <= cores <= max_cores:
            raise ValueError(
                f"resource_dict['cores'] is {cores}, but this FlexExecutor has "
                f"max_cores={max_cores}: ask for 1 to {max_cores} cores, or create the "
                f"executor with max_cores >= {max(cores, 1)}"
            )
    threads = value.get("threads_per_core")
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int):
            raise TypeError(
                f"resource_dict['threads_per_core'] must be an int, "
                f"not {type(threads).__name__}"
            )
        if threads < 1:
            raise ValueError(
                f"resource_dict['threads_per_core'] must be >= 1 (it sets "
                f"OMP_NUM_THREADS for the call), not {threads}"
            )
    cwd = value.get("cwd")
    if cwd is not None:
        value["cwd"] = _check_cwd(cwd, "resource_dict['cwd']")
