/*
 * pmp_tail.c - a fixed-size ring of the most recent bytes of a stream.
 *
 * The launcher feeds every chunk it reads from the job's stderr pipe in here
 * (after echoing it to the user's own stderr) so that, when the job dies,
 * the frontend can say not only "exited with status 1" but also what the
 * job printed last.  Memory is bounded by the capacity whatever the job
 * writes; appending is O(len) and never fails.
 */
#include "pmp_tail.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct pmp_tail {
    char *buf;
    size_t capacity;
    size_t start; /* index of the oldest byte */
    size_t size;
    int dropped; /* bytes were forgotten at some point */
};

pmp_tail_t *pmp_tail_new(size_t capacity)
{
    if (capacity == 0) {
        errno = EINVAL;
        return NULL;
    }
    pmp_tail_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->buf = malloc(capacity);
    if (!self->buf) {
        free(self);
        errno = ENOMEM;
        return NULL;
    }
    self->capacity = capacity;
    return self;
}

void pmp_tail_destroy(pmp_tail_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->buf);
    free(*self_p);
    *self_p = NULL;
}

void pmp_tail_append(pmp_tail_t *self, const void *data, size_t len)
{
    const char *p = data;
    if (len >= self->capacity) {
        memcpy(self->buf, p + len - self->capacity, self->capacity);
        self->dropped |= (self->size + len) > self->capacity;
        self->start = 0;
        self->size = self->capacity;
        return;
    }
    for (size_t i = 0; i < len; i++) {
        size_t end = (self->start + self->size) % self->capacity;
        self->buf[end] = p[i];
        if (self->size == self->capacity) {
            self->start = (self->start + 1) % self->capacity;
            self->dropped = 1;
        } else {
            self->size++;
        }
    }
}

char *pmp_tail_text(const pmp_tail_t *self)
{
    char *text = malloc(self->size + 1);
    if (!text) {
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < self->size; i++) {
        char c = self->buf[(self->start + i) % self->capacity];
        text[i] = c ? c : '?';
    }
    size_t n = self->size;
    text[n] = '\0';
    size_t skip = 0;
    if (self->dropped) {
        char *nl = memchr(text, '\n', n);
        if (nl && (size_t)(nl - text) + 1 < n)
            skip = (size_t)(nl - text) + 1;
    }
    if (skip)
        memmove(text, text + skip, n - skip + 1);
    n -= skip;
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    return text;
}
