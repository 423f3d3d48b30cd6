/*
 * _pmp_wire_py.c - the wire's facts for Python (see _pmp_wire_py.h).
 *
 * Every number a Python side of the project needs from the protocol is
 * added here, from the macro that defines it, and nowhere else: the
 * caller's package and the runtime's worker both read them from their
 * native module, so a change to protocol/pmp_protocol.h reaches both.
 */
#include "_pmp_wire_py.h"

#include "pmp_protocol.h"

int pmp_wire_py_add(PyObject *module)
{
    static const struct {
        const char *name;
        long value;
    } constants[] = {
        {"MSG_HELLO", PMP_MSG_HELLO},
        {"MSG_TASK", PMP_MSG_TASK},
        {"MSG_INIT", PMP_MSG_INIT},
        {"MSG_RESULT", PMP_MSG_RESULT},
        {"MSG_ERROR", PMP_MSG_ERROR},
        {"MSG_SHUTDOWN", PMP_MSG_SHUTDOWN},
        {"MSG_GOODBYE", PMP_MSG_GOODBYE},
        {"MSG_DEFINE", PMP_MSG_DEFINE},
        {"MSG_FORGET", PMP_MSG_FORGET},
        {"FLAG_ALL_RANKS", (long)PMP_FLAG_ALL_RANKS},
        {"FLAG_FN_KEY", (long)PMP_FLAG_FN_KEY},
        {"FLAG_CHUNK", (long)PMP_FLAG_CHUNK},
        {"FLAG_MAP", (long)PMP_FLAG_MAP},
        {"FLAG_STARMAP", (long)PMP_FLAG_STARMAP},
        {"FLAG_PER_RANK", (long)PMP_FLAG_PER_RANK},
        {"PROTOCOL_VERSION", PMP_PROTOCOL_VERSION},
        {"OOB_THRESHOLD", PMP_OOB_THRESHOLD},
    };
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
        if (PyModule_AddIntConstant(module, constants[i].name, constants[i].value) < 0)
            return -1;
    return 0;
}
