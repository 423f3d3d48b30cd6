/*
 * _pmp_shm_py.c - the C half of the shared-memory path, for Python
 * (pylib/pympipool/_shm.py is the other half, on both sides).
 *
 * Why C: three things Python cannot do by itself.  The segment table is
 * the protocol's (protocol/pmp_shmref.c), so Python encodes and decodes it
 * through that one definition.  The view count in a segment's header is
 * changed by two processes at once, so it needs atomic operations.  And a
 * receiver must know exactly when the last view of a buffer is gone: a
 * memoryview slice does not tell (memoryview(m) of a slice m refers to the
 * mapping, not to m, so m may die while the bytes are still in use), but an
 * exporter object does, because every view made from it, directly or
 * through memoryviews and numpy arrays, holds a reference to it.
 *
 * How: ShmView(mapping, offset, length, release) holds a Py_buffer of the
 * whole mapping (an mmap: it stays mapped while the ShmView lives, even
 * when its cache has forgotten it) and exports [offset, offset + length) as
 * a writable buffer.  When it is deallocated, which happens only after the
 * last buffer exported from it has been released, it subtracts one from
 * the segment's view count if release is true: that is the receiver
 * telling the owner "done" (docs/protocol.md, "Shared memory").
 * shm_write copies into a segment with the GIL released, so a caller's
 * other threads run during a large copy.
 *
 * The same file is compiled into pympipool._core and into the runtime's
 * _pympipool_runtime module; its type is a plain heap type per module.
 * Everything needs the GIL except the copy inside shm_write.
 */
#define PY_SSIZE_T_CLEAN
#include "_pmp_shm_py.h"

#include <stdint.h>
#include <string.h>

#include "pmp_protocol.h"
#include "pmp_shmref.h"

/* ---- ShmView ------------------------------------------------------------- */

typedef struct {
    PyObject ob_base;
    Py_buffer mapping; /* the whole segment */
    Py_ssize_t offset;
    Py_ssize_t length;
    int release; /* count down the segment's view count at the end */
} s_view_t;

static int s_get_mapping(PyObject *obj, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE) < 0)
        return -1;
    if (view->len < PMP_SHM_DATA_OFFSET) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "a segment mapping is at least %d bytes",
                     PMP_SHM_DATA_OFFSET);
        return -1;
    }
    return 0;
}

static PyObject *s_view_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"mapping", "offset", "length", "release", NULL};
    PyObject *mapping;
    Py_ssize_t offset, length;
    int release;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Onnp:ShmView", kwlist, &mapping, &offset,
                                     &length, &release))
        return NULL;
    s_view_t *self = (s_view_t *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    if (s_get_mapping(mapping, &self->mapping) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (offset < PMP_SHM_DATA_OFFSET || length < 0 || offset > self->mapping.len ||
        length > self->mapping.len - offset) {
        PyErr_Format(PyExc_ValueError,
                     "bytes %zd..%zd are not in the data of a segment of %zd bytes", offset,
                     offset + length, self->mapping.len);
        PyBuffer_Release(&self->mapping);
        Py_DECREF(self);
        return NULL;
    }
    self->offset = offset;
    self->length = length;
    self->release = release;
    return (PyObject *)self;
}

static int s_view_getbuffer(PyObject *op, Py_buffer *view, int flags)
{
    s_view_t *self = (s_view_t *)op;
    return PyBuffer_FillInfo(view, op, (char *)self->mapping.buf + self->offset, self->length, 0,
                             flags);
}

static void s_view_dealloc(PyObject *op)
{
    s_view_t *self = (s_view_t *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (self->mapping.obj != NULL) {
        if (self->release)
            pmp_shm_count_add(self->mapping.buf, -1);
        PyBuffer_Release(&self->mapping);
    }
    tp->tp_free(op);
    Py_DECREF(tp);
}

static Py_ssize_t s_view_length(PyObject *op)
{
    return ((s_view_t *)op)->length;
}

static PyObject *s_view_repr(PyObject *op)
{
    s_view_t *self = (s_view_t *)op;
    return PyUnicode_FromFormat("<ShmView of %zd bytes at offset %zd>", self->length, self->offset);
}

static PyType_Slot s_view_slots[] = {
    {Py_tp_doc, "ShmView(mapping, offset, length, release)\n--\n\n"
                "Bytes offset..offset+length of a shared segment (mapping: its whole mmap),\n"
                "exported as a writable buffer without a copy.  When the last buffer made\n"
                "from it is gone and release is true, the segment's view count goes down by\n"
                "one: its owner may then reuse it."},
    {Py_tp_new, s_view_new},
    {Py_tp_dealloc, s_view_dealloc},
    {Py_tp_repr, s_view_repr},
    {Py_bf_getbuffer, s_view_getbuffer},
    {Py_sq_length, s_view_length},
    {0, NULL},
};

static PyType_Spec s_view_spec = {
    .name = "pympipool.ShmView",
    .basicsize = sizeof(s_view_t),
    .flags = Py_TPFLAGS_DEFAULT
#ifdef Py_TPFLAGS_IMMUTABLETYPE
             | Py_TPFLAGS_IMMUTABLETYPE
#endif
    ,
    .slots = s_view_slots,
};

/* ---- functions ------------------------------------------------------------- */

static PyObject *s_shm_table(PyObject *module, PyObject *refs_obj)
{
    (void)module;
    PyObject *seq = PySequence_Fast(refs_obj, "shm_table() needs a sequence of references");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || (size_t)n > PMP_SHM_MAX_REFS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "a segment table has 1 to %u references, not %zd",
                     PMP_SHM_MAX_REFS, n);
        return NULL;
    }
    pmp_shm_ref_t *refs = PyMem_Calloc((size_t)n, sizeof *refs);
    PyObject *out = NULL;
    if (refs == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned int frame, fd;
        unsigned long long pid, serial, offset, length;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "IIKKKK:shm_table", &frame, &fd,
                              &pid, &serial, &offset, &length))
            goto done;
        refs[i] = (pmp_shm_ref_t){frame, fd, pid, serial, offset, length};
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)pmp_shm_table_size((size_t)n));
    if (out != NULL)
        pmp_shm_table_encode(refs, (size_t)n, (unsigned char *)PyBytes_AS_STRING(out));
done:
    PyMem_Free(refs);
    Py_DECREF(seq);
    return out;
}

static PyObject *s_shm_refs(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer table;
    unsigned int nframes;
    if (!PyArg_ParseTuple(args, "y*I:shm_refs", &table, &nframes))
        return NULL;
    size_t count = 0;
    pmp_error_t err;
    PyObject *out = NULL;
    if (pmp_shm_table_decode(table.buf, (size_t)table.len, nframes, NULL, 0, &count, &err) < 0) {
        PyErr_Format(PyExc_ValueError, "bad segment table: %s", err.text);
        goto done;
    }
    pmp_shm_ref_t *refs = PyMem_Calloc(count, sizeof *refs);
    if (refs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    (void)pmp_shm_table_decode(table.buf, (size_t)table.len, nframes, refs, count, &count, &err);
    out = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; out != NULL && i < count; i++) {
        PyObject *t =
            Py_BuildValue("(IIKKKK)", refs[i].frame, refs[i].fd, (unsigned long long)refs[i].pid,
                          (unsigned long long)refs[i].serial, (unsigned long long)refs[i].offset,
                          (unsigned long long)refs[i].length);
        if (t == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, (Py_ssize_t)i, t);
    }
    PyMem_Free(refs);
done:
    PyBuffer_Release(&table);
    return out;
}

static PyObject *s_shm_count(PyObject *module, PyObject *mapping)
{
    (void)module;
    Py_buffer view;
    if (s_get_mapping(mapping, &view) < 0)
        return NULL;
    int64_t n = pmp_shm_count_load(view.buf);
    PyBuffer_Release(&view);
    return PyLong_FromLongLong((long long)n);
}

static PyObject *s_shm_add(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *mapping;
    long long delta;
    if (!PyArg_ParseTuple(args, "OL:shm_add", &mapping, &delta))
        return NULL;
    Py_buffer view;
    if (s_get_mapping(mapping, &view) < 0)
        return NULL;
    int64_t n = pmp_shm_count_add(view.buf, (int64_t)delta);
    PyBuffer_Release(&view);
    return PyLong_FromLongLong((long long)n);
}

static PyObject *s_shm_write(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *mapping, *source;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "OnO:shm_write", &mapping, &offset, &source))
        return NULL;
    Py_buffer dst, src;
    if (s_get_mapping(mapping, &dst) < 0)
        return NULL;
    if (PyObject_GetBuffer(source, &src, PyBUF_ANY_CONTIGUOUS) < 0) {
        PyBuffer_Release(&dst);
        return NULL;
    }
    PyObject *out = NULL;
    if (offset < PMP_SHM_DATA_OFFSET || offset > dst.len || src.len > dst.len - offset) {
        PyErr_Format(PyExc_ValueError, "%zd bytes at offset %zd do not fit a segment of %zd bytes",
                     src.len, offset, dst.len);
    } else {
        Py_BEGIN_ALLOW_THREADS memcpy((char *)dst.buf + offset, src.buf, (size_t)src.len);
        Py_END_ALLOW_THREADS out = PyLong_FromSsize_t(src.len);
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return out;
}

static PyMethodDef s_functions[] = {
    {"shm_table", s_shm_table, METH_O,
     "shm_table(refs) -> bytes: the segment table of refs, each (frame, fd, pid, serial,\n"
     "offset, length)."},
    {"shm_refs", s_shm_refs, METH_VARARGS,
     "shm_refs(table, nframes) -> list of (frame, fd, pid, serial, offset, length):\n"
     "the decoded table of a message of nframes frames after its header (ValueError\n"
     "with the reason when it is malformed)."},
    {"shm_count", s_shm_count, METH_O,
     "shm_count(mapping) -> int: the segment's view count (an acquire load)."},
    {"shm_add", s_shm_add, METH_VARARGS,
     "shm_add(mapping, delta) -> int: adds delta to the segment's view count; the new count."},
    {"shm_write", s_shm_write, METH_VARARGS,
     "shm_write(mapping, offset, source) -> int: copies source into the segment at offset\n"
     "with the GIL released; the number of bytes."},
    {NULL, NULL, 0, NULL},
};

int pmp_shm_py_add(PyObject *module)
{
    if (PyModule_AddFunctions(module, s_functions) < 0)
        return -1;
    PyObject *type = PyType_FromSpec(&s_view_spec);
    if (type == NULL)
        return -1;
    int rc = PyModule_AddObjectRef(module, "ShmView", type);
    Py_DECREF(type);
    if (rc < 0 || PyModule_AddIntConstant(module, "FLAG_SHM", (long)PMP_FLAG_SHM) < 0 ||
        PyModule_AddIntConstant(module, "SHM_DATA_OFFSET", PMP_SHM_DATA_OFFSET) < 0 ||
        PyModule_AddIntConstant(module, "SHM_SERIAL_OFFSET", PMP_SHM_SERIAL_OFFSET) < 0)
        return -1;
    PyObject *magic = PyBytes_FromStringAndSize(PMP_SHM_MAGIC, 4);
    if (magic == NULL)
        return -1;
    rc = PyModule_AddObjectRef(module, "SHM_MAGIC", magic);
    Py_DECREF(magic);
    return rc;
}
