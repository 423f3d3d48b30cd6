/*
 * pmp_task.c - the executor's task record and its zero-copy frames (see
 * pmp_task.h).
 *
 * Place in the design: everything the executor sends to its groups, a
 * task or a broadcast, is one pmp_task_t from submit to completion.  The
 * public API builds it (pmp_executor.c), the queues hold it, the I/O
 * thread sends it and destroys it when its completion is queued, or keeps
 * it while a restart may need to send it again (pmp_executor_io.c).
 *
 * How the zero-copy release works: each buffer with a free_fn gets a small
 * record (free_fn, hint, armed) that is the hint of its zmq_msg_init_data
 * frame; ZeroMQ calls s_zc_release once, with that record, when the last
 * reference to the frame is gone, whichever thread that is (the I/O thread
 * after a send, ZeroMQ's own I/O thread after the bytes left, a caller
 * that cancelled).  The record calls free_fn only once armed and frees
 * itself in any case.  Arming is a plain store made before the task
 * becomes visible to the I/O thread (under the executor's mutex), so the
 * release, which can only happen after the I/O thread has sent or dropped
 * the frame, always sees it.
 */
#include "pmp_task.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct pmp_task_zc {
    pmp_free_fn *free_fn;
    void *hint;
    int armed;
};

static void s_zc_release(void *data, void *hint)
{
    pmp_task_zc_t *zc = hint;
    if (zc->armed)
        zc->free_fn(data, zc->hint);
    free(zc);
}

int pmp_task_check_bufs(const char *who, const pmp_buffer_t *bufs, size_t nbufs, size_t min,
                        pmp_error_t *err)
{
    if ((!bufs && nbufs > 0) || nbufs < min || nbufs > PMP_MAX_FRAMES) {
        pmp_error_set(err, "%s: between %zu and %d buffers are needed, not %zu", who, min,
                      PMP_MAX_FRAMES, bufs ? nbufs : (size_t)0);
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < nbufs; i++)
        if (!bufs[i].data && bufs[i].size) {
            pmp_error_set(err, "%s: buffer %zu has no data but a size of %zu", who, i,
                          bufs[i].size);
            errno = EINVAL;
            return -1;
        }
    return 0;
}

/* The record and its frames, in one allocation. */
typedef struct {
    pmp_task_t task;
    zmq_msg_t msgs[];
} s_block_t;

pmp_task_t *pmp_task_new(uint64_t id, int type, uint32_t flags, const pmp_buffer_t *bufs,
                         size_t nbufs)
{
    size_t nzc = 0;
    for (size_t i = 0; i < nbufs; i++)
        nzc += bufs[i].free_fn != NULL;
    s_block_t *block = calloc(1, sizeof *block + nbufs * sizeof(zmq_msg_t));
    pmp_task_zc_t **zcs = nzc ? calloc(nbufs, sizeof *zcs) : NULL;
    zmq_msg_t *msgs = block ? block->msgs : NULL;
    size_t built = 0;
    if (!block || (nzc && !zcs))
        goto fail;
    for (size_t i = 0; i < nbufs; i++)
        if (bufs[i].free_fn && !(zcs[i] = malloc(sizeof *zcs[i])))
            goto fail;
    for (; built < nbufs; built++) {
        const pmp_buffer_t *b = &bufs[built];
        if (b->free_fn) {
            *zcs[built] = (pmp_task_zc_t){.free_fn = b->free_fn, .hint = b->hint, .armed = 0};
            if (zmq_msg_init_data(&msgs[built], (void *)b->data, b->size, s_zc_release,
                                  zcs[built]) < 0)
                goto fail;
        } else {
            if (zmq_msg_init_size(&msgs[built], b->size) < 0)
                goto fail;
            if (b->size)
                memcpy(zmq_msg_data(&msgs[built]), b->data, b->size);
        }
    }
    pmp_task_t *task = &block->task;
    task->id = id;
    task->type = type;
    task->flags = flags;
    task->ncalls = 1;
    task->pin = -1;
    task->nmsgs = nbufs;
    task->msgs = msgs;
    task->zcs = zcs;
    return task;
fail:
    /* messages made so far free their (disarmed) hint when closed; hints
     * not yet handed to ZeroMQ are freed here */
    for (size_t i = 0; i < built; i++)
        zmq_msg_close(&msgs[i]);
    if (zcs)
        for (size_t i = built; i < nbufs; i++)
            free(zcs[i]);
    free(zcs);
    free(block);
    errno = ENOMEM;
    return NULL;
}

pmp_task_t *pmp_task_share(pmp_task_t *task, uint64_t id)
{
    s_block_t *block = calloc(1, sizeof *block + task->nmsgs * sizeof(zmq_msg_t));
    if (!block) {
        errno = ENOMEM;
        return NULL;
    }
    pmp_task_t *copy = &block->task;
    *copy = *task;
    copy->id = id;
    copy->msgs = block->msgs;
    copy->zcs = NULL;
    for (size_t i = 0; i < task->nmsgs; i++) {
        zmq_msg_init(&copy->msgs[i]);
        if (zmq_msg_copy(&copy->msgs[i], &task->msgs[i]) < 0) {
            copy->nmsgs = i;
            pmp_task_destroy(&copy);
            errno = ENOMEM;
            return NULL;
        }
    }
    return copy;
}

void pmp_task_arm(pmp_task_t *task)
{
    for (size_t i = 0; task->zcs && i < task->nmsgs; i++)
        if (task->zcs[i])
            task->zcs[i]->armed = 1;
    free(task->zcs);
    task->zcs = NULL;
}

void pmp_task_destroy(pmp_task_t **task_p)
{
    if (!task_p || !*task_p)
        return;
    pmp_task_t *task = *task_p;
    for (size_t i = 0; i < task->nmsgs; i++)
        zmq_msg_close(&task->msgs[i]);
    free(task->zcs);
    free(task); /* the block: the task is its first member, the frames follow */
    *task_p = NULL;
}
