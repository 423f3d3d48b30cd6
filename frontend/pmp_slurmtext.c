/*
 * pmp_slurmtext.c - one sentence from SLURM's lines about a step that
 * ended (see pmp_slurmtext.h for the lines and the sentence).
 *
 * Each kind of line is looked for by its fixed words, the last occurrence
 * in the text winning (but the first of srun's task lines: the tasks that
 * end after the first were ended because of it), and its fields are copied as words (up to a space,
 * a comma or the end of the line) into fixed buffers: a malformed or
 * truncated line gives shorter fields, never a read past the text or a
 * write past a buffer.  What was not found is left out of the sentence.
 */
#include "pmp_slurmtext.h"

#include <stdio.h>
#include <string.h>

#define S_FIELD 64

/* The last occurrence of needle in text, or NULL. */
static const char *s_last(const char *text, const char *needle)
{
    const char *found = NULL;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        found = p;
    return found;
}

/* Copies the word at p (up to a space, a comma or the end of the line)
 * into out; returns the first character after it. */
static const char *s_word(const char *p, char *out)
{
    size_t i = 0;
    while (*p && !strchr(" ,\n\r\t", *p)) {
        if (i + 1 < S_FIELD)
            out[i++] = *p;
        p++;
    }
    out[i] = '\0';
    return p;
}

/* Copies the rest of the line at p, up to a comma, " ***" or the end of
 * the line, into out. */
static void s_phrase(const char *p, char *out)
{
    size_t i = 0;
    while (*p && *p != '\n' && *p != '\r' && *p != ',' && strncmp(p, " ***", 4) != 0) {
        if (i + 1 < S_FIELD)
            out[i++] = *p;
        p++;
    }
    out[i] = '\0';
}

typedef struct {
    char id[S_FIELD], node[S_FIELD], state[S_FIELD], reason[S_FIELD];
} s_cancel_t;

/* "*** <what> <id> ON <node> <STATE> AT <time> [DUE TO <reason>, ...] ***"
 * Returns 0 and fills c, or -1 when there is no such line. */
static int s_cancel_line(const char *text, const char *what, s_cancel_t *c)
{
    const char *p = s_last(text, what);
    if (!p)
        return -1;
    memset(c, 0, sizeof *c);
    p = s_word(p + strlen(what), c->id);
    if (strncmp(p, " ON ", 4) == 0) {
        p = s_word(p + 4, c->node);
        if (*p == ' ')
            p = s_word(p + 1, c->state);
    }
    const char *eol = strchr(p, '\n');
    const char *due = strstr(p, " DUE TO ");
    if (due && (!eol || due < eol))
        s_phrase(due + 8, c->reason);
    return 0;
}

typedef struct {
    char *out;
    size_t n, len;
} s_buf_t;

static void s_add(s_buf_t *b, const char *a, const char *v)
{
    if (b->len + 1 >= b->n)
        return;
    int k = snprintf(b->out + b->len, b->n - b->len, "%s%s", a, v);
    if (k > 0)
        b->len += (size_t)k < b->n - b->len ? (size_t)k : b->n - b->len - 1;
}

int pmp_slurmtext_summary(const char *text, char *out, size_t n)
{
    s_cancel_t step, job;
    int have_step = s_cancel_line(text, "*** STEP ", &step) == 0;
    int have_job = s_cancel_line(text, "*** JOB ", &job) == 0;
    char step_id[S_FIELD] = "", job_id[S_FIELD] = "", failed[S_FIELD] = "";
    char task[S_FIELD] = "", task_node[S_FIELD] = "", task_how[S_FIELD] = "";

    if (have_step)
        memcpy(step_id, step.id, sizeof step_id);
    const char *p = s_last(text, "StepId=");
    if (!step_id[0] && p)
        s_word(p + 7, step_id);
    if (have_job)
        memcpy(job_id, job.id, sizeof job_id);
    else if (step_id[0]) {
        memcpy(job_id, step_id, sizeof job_id);
        job_id[strcspn(job_id, ".")] = '\0';
    }
    if ((p = s_last(text, "Node failure on ")))
        s_word(p + 16, failed);
    /* "srun: error: <node>: task<s> <list>: <how>" */
    for (const char *q = strstr(text, "srun: error: "); q; q = strstr(q + 1, "srun: error: ")) {
        char node[S_FIELD];
        const char *r = s_word(q + 13, node);
        size_t len = strlen(node);
        if (len < 2 || node[len - 1] != ':' || strncmp(r, " task", 5) != 0)
            continue;
        node[len - 1] = '\0';
        const char *colon = strstr(r + 1, ": ");
        const char *eol = strchr(r + 1, '\n');
        if (!colon || (eol && colon > eol))
            continue;
        size_t tl = (size_t)(colon - (r + 1));
        if (tl >= S_FIELD)
            tl = S_FIELD - 1;
        memcpy(task, r + 1, tl); /* "task 2", "tasks 0-1" */
        task[tl] = '\0';
        memcpy(task_node, node, sizeof task_node);
        s_phrase(colon + 2, task_how);
        break; /* the first: the tasks after it were ended for it */
    }
    if (!have_step && !have_job && !failed[0] && !task[0])
        return -1;

    s_buf_t b = {out, n, 0};
    out[0] = '\0';
    s_add(&b, "SLURM", "");
    if (job_id[0])
        s_add(&b, " job ", job_id);
    if (step_id[0])
        s_add(&b, ", step ", step_id);
    const s_cancel_t *c = have_step ? &step : have_job ? &job : NULL;
    if (c && c->state[0]) {
        s_add(&b, ": ", c->state);
        if (c->node[0])
            s_add(&b, " on ", c->node);
        if (c->reason[0])
            s_add(&b, " due to ", c->reason);
    }
    if (failed[0]) {
        s_add(&b, "; node ", failed);
        s_add(&b, " failed", "");
    }
    if (task[0]) {
        s_add(&b, "; ", task);
        s_add(&b, " on ", task_node);
        if (task_how[0])
            s_add(&b, ": ", task_how);
    }
    return 0;
}
