/*
 * pmp_frame.h - the bytes that cross the frontend's public API, shared by
 * its two public headers (pmp_executor.h and pmp_channel.h): buffers handed
 * in (pmp_buffer_t, sent with or without a copy) and frames handed out
 * (pmp_frame_t, received without a copy), with the export macro and the
 * errno of an object inherited by a forked child.  No Python in here.
 *
 * A frame is one received ZeroMQ message part, moved from the socket and
 * never copied: its bytes are writable and stay valid until
 * pmp_frame_destroy(), independently of the completion or message it came
 * in.  Any thread may use a frame it owns.
 */
#ifndef PMP_FRAME_H
#define PMP_FRAME_H

#include <errno.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How long destroy() lets a job (or a channel's program) end by itself
 * before SIGTERM, unless the caller says otherwise: the default of the
 * Python binding and of the package (pympipool._core.DESTROY_GRACE_MS). */
#define PMP_DESTROY_GRACE_MS 3000

/* Marks the functions the shared library exports (everything else is
 * hidden). */
#if defined(__GNUC__)
#define PMP_EXPORT __attribute__((visibility("default")))
#else
#define PMP_EXPORT
#endif

/* errno of every call on an executor (or channel) that a forked child
 * inherited from its parent ("state not recoverable": the object's threads
 * stayed in the parent). */
#define PMP_EFORKED ENOTRECOVERABLE

/* A buffer handed to pmp_executor_submit or pmp_channel_send.  With
 * free_fn == NULL the bytes are copied during the call.  With free_fn !=
 * NULL the frontend takes the memory without copying and calls
 * free_fn(data, hint) exactly once when it no longer needs it, from an
 * arbitrary thread (possibly a ZeroMQ thread): the callback must not block
 * and must not call into Python. */
typedef void(pmp_free_fn)(void *data, void *hint);
typedef struct {
    const void *data;
    size_t size;
    pmp_free_fn *free_fn;
    void *hint;
} pmp_buffer_t;

/* A received frame (opaque). */
typedef struct pmp_frame pmp_frame_t;

/* Its bytes: writable, valid until pmp_frame_destroy(). */
PMP_EXPORT void *pmp_frame_data(pmp_frame_t *f);
PMP_EXPORT size_t pmp_frame_size(const pmp_frame_t *f);
/* Frees the frame.  NULL-safe; nulls *self_p. */
PMP_EXPORT void pmp_frame_destroy(pmp_frame_t **self_p);

#ifdef __cplusplus
}
#endif

#endif
