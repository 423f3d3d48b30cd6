/*
 * pmp_completion.c - completions and received frames.
 *
 * The I/O thread turns every outcome (a result, an error, a lost task, a
 * group's hello, the job's exit, the end of close()) into one completion
 * and appends it to the executor's completion list; the caller who gets it
 * from pmp_executor_wait() owns it.  Result frames are the zmq_msg_t
 * received from the socket, moved and never copied (pmp_frame.c), so a
 * 1 GiB result costs no copy between the wire and the caller.  A frame
 * taken out of a completion lives on independently until
 * pmp_frame_destroy().
 *
 * Cost: a result of one or two frames is two or three allocations (the
 * completion, a record per frame): its empty text is a shared "" and its
 * frame pointers live in the completion.  The I/O thread makes one per
 * task and a caller frees it, so every allocation saved here is saved for
 * every task (bench/frontend_scale.c).
 */
#include "pmp_completion.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static char s_empty[] = ""; /* the text of every completion without one */

pmp_completion_t *pmp_completion_new(int kind, uint64_t task_id, uint32_t flags, const char *text,
                                     int status)
{
    pmp_completion_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->text = text && *text ? strdup(text) : s_empty;
    if (!c->text) {
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->kind = kind;
    c->task_id = task_id;
    c->flags = flags;
    c->status = status;
    return c;
}

int pmp_completion_take_msgs(pmp_completion_t *c, zmq_msg_t *msgs, size_t n)
{
    pmp_frame_t **frames =
        n <= PMP_COMPLETION_FEW_FRAMES ? c->few_frames : calloc(n, sizeof *frames);
    if (!frames)
        return -1;
    if (pmp_frame_take_msgs(frames, msgs, n) < 0) {
        if (frames != c->few_frames)
            free(frames);
        errno = ENOMEM;
        return -1;
    }
    c->frames = frames;
    c->nframes = n;
    return 0;
}

int pmp_completion_kind(const pmp_completion_t *c)
{
    return c->kind;
}

uint64_t pmp_completion_task_id(const pmp_completion_t *c)
{
    return c->task_id;
}

uint32_t pmp_completion_flags(const pmp_completion_t *c)
{
    return c->flags;
}

const char *pmp_completion_text(const pmp_completion_t *c)
{
    return c->text;
}

int pmp_completion_status(const pmp_completion_t *c)
{
    return c->kind == PMP_EVENT_EXIT || c->kind == PMP_EVENT_RESTART ? c->status : -1;
}

size_t pmp_completion_nframes(const pmp_completion_t *c)
{
    return c->nframes;
}

pmp_frame_t *pmp_completion_take_frame(pmp_completion_t *c, size_t i)
{
    if (i >= c->nframes)
        return NULL;
    pmp_frame_t *f = c->frames[i];
    c->frames[i] = NULL;
    return f;
}

void pmp_completion_destroy(pmp_completion_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_completion_t *c = *self_p;
    for (size_t i = 0; i < c->nframes; i++)
        pmp_frame_destroy(&c->frames[i]);
    if (c->frames != c->few_frames)
        free(c->frames);
    if (c->text != s_empty)
        free(c->text);
    free(c);
    *self_p = NULL;
}
