/*
 * pmp_banner.c - the launcher-banner filter (see pmp_banner.h).
 *
 * Why on stdout at all: hydra prints its "BAD TERMINATION" box with
 * printf, so it lands in the middle of the program's output, and a Pool
 * that is terminated while a worker is busy (the user's "with" block ends)
 * made every such script print it.  The relay hands the box to stderr and
 * to the kept stderr tail instead, or drops it when the frontend ended the
 * job on purpose; either way stdout carries only what the tasks printed.
 *
 * How.  At the start of a line the bytes are collected in a small line
 * buffer until the line is complete or can no longer be one that matters;
 * the line is then classified:
 *
 *   START    nothing held.  An empty line or a rule (a line of at least
 *            S_RULE_MIN '=') is held (HOLD); anything else is text.
 *   HOLD     an empty line and/or a rule are held.  A rule followed by the
 *            "=   BAD TERMINATION" line opens a banner: everything held and
 *            that line are banner (BANNER).  Otherwise the held lines are
 *            text, except that an empty line or a rule starts a new hold.
 *   BANNER   lines that start with '=' are banner; a rule closes the box
 *            (TRAILER).  A line that does not start with '=' is text (the
 *            box was cut short) and the filter starts over.
 *   TRAILER  hydra's three closing sentences are banner; any other line is
 *            classified as at START.
 *
 * A partial line is sent on at once when it cannot become one of the lines
 * above (TEXT: the rest of that line is passed through without looking at
 * it), so prompts and progress output without a newline are not delayed.
 * A line longer than S_LINE_MAX is never a banner line.  Everything is
 * O(bytes); the only memory is the fixed line buffer.
 */
#include "pmp_banner.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define S_LINE_MAX 256                   /* longer lines are program output */
#define S_RULE_MIN 20                    /* hydra's rule has 83 '=' */
#define S_BUF_MAX (3 * (S_LINE_MAX + 2)) /* two held lines and the current one */

static const char s_bad[] = "=   BAD TERMINATION";
static const char *const s_trailers[] = {
    "YOUR APPLICATION TERMINATED WITH THE EXIT STRING",
    "This typically refers to a problem with your application",
    "Please see the FAQ page for debugging suggestions",
};

typedef enum {
    S_START,   /* at a line start, nothing held */
    S_TEXT,    /* inside a text line already passed on */
    S_HOLD,    /* at a line start, an empty line and/or a rule held */
    S_BANNER,  /* inside the box, at a line start */
    S_TRAILER, /* after the box, at a line start */
    S_BLINE    /* inside a banner line already passed on (after a flush) */
} s_mode_t;

struct pmp_banner {
    s_mode_t mode;
    s_mode_t after_bline; /* mode after the S_BLINE line ends */
    char buf[S_BUF_MAX];  /* held complete lines, then the current line */
    size_t held;          /* bytes of complete lines held (S_HOLD) */
    size_t len;           /* bytes in buf */
    int held_rule;        /* the last held line is a rule */
    int held_lines;
};

pmp_banner_t *pmp_banner_new(void)
{
    pmp_banner_t *self = calloc(1, sizeof *self);
    if (!self)
        errno = ENOMEM;
    return self;
}

void pmp_banner_destroy(pmp_banner_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

/* ---- classifying a line (without its '\n') ---------------------------- */

static size_t s_content_len(const char *line, size_t len)
{
    if (len && line[len - 1] == '\n')
        len--;
    if (len && line[len - 1] == '\r')
        len--;
    return len;
}

static int s_all_eq(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != '=')
            return 0;
    return n > 0;
}

static int s_is_rule(const char *p, size_t n)
{
    return n >= S_RULE_MIN && s_all_eq(p, n);
}

/* p (n bytes) and the text s agree on their common length: p may still
 * become a line that starts with s. */
static int s_compatible(const char *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    return memcmp(p, s, n < k ? n : k) == 0;
}

static int s_starts(const char *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    return n >= k && memcmp(p, s, k) == 0;
}

static int s_is_trailer(const char *p, size_t n, int partial)
{
    for (size_t i = 0; i < sizeof s_trailers / sizeof s_trailers[0]; i++)
        if (partial ? s_compatible(p, n, s_trailers[i]) : s_starts(p, n, s_trailers[i]))
            return 1;
    return 0;
}

/* ---- passing bytes on ------------------------------------------------- */

static void s_emit(pmp_banner_sink_fn *sink, void *arg, int banner, const char *p, size_t n)
{
    if (n)
        sink(arg, banner, p, n);
}

/* Passes everything buffered on as one kind and empties the buffer. */
static void s_emit_all(pmp_banner_t *self, pmp_banner_sink_fn *sink, void *arg, int banner)
{
    s_emit(sink, arg, banner, self->buf, self->len);
    self->len = self->held = 0;
    self->held_rule = 0;
    self->held_lines = 0;
}

/* Moves the current (complete) line into the held part. */
static void s_hold_line(pmp_banner_t *self, int rule)
{
    self->held = self->len;
    self->held_rule = rule;
    self->held_lines++;
    self->mode = S_HOLD;
}

/* The current line (buf[held..len), ending in '\n') is complete. */
static void s_line(pmp_banner_t *self, pmp_banner_sink_fn *sink, void *arg)
{
    const char *line = self->buf + self->held;
    size_t n = s_content_len(line, self->len - self->held);
    int blank = n == 0, rule = s_is_rule(line, n);
    switch (self->mode) {
    case S_START:
        if (blank || rule)
            s_hold_line(self, rule);
        else
            s_emit_all(self, sink, arg, 0);
        return;
    case S_HOLD:
        if (self->held_rule && s_starts(line, n, s_bad)) {
            s_emit_all(self, sink, arg, 1);
            self->mode = S_BANNER;
        } else if (rule && self->held_lines == 1 && !self->held_rule) {
            s_hold_line(self, 1); /* the empty line before the box, then its rule */
        } else if (blank || rule) {
            s_emit(sink, arg, 0, self->buf, self->held); /* the older lines were text */
            memmove(self->buf, line, self->len - self->held);
            self->len -= self->held;
            self->held = 0;
            self->held_lines = 0;
            s_hold_line(self, rule);
        } else {
            s_emit_all(self, sink, arg, 0);
            self->mode = S_START;
        }
        return;
    case S_BANNER:
        if (n && line[0] == '=') {
            s_emit_all(self, sink, arg, 1);
            if (rule)
                self->mode = S_TRAILER;
        } else {
            s_emit_all(self, sink, arg, 0);
            self->mode = S_START;
        }
        return;
    case S_TRAILER:
        if (s_is_trailer(line, n, 0)) {
            s_emit_all(self, sink, arg, 1);
        } else {
            self->mode = S_START;
            s_line(self, sink, arg);
        }
        return;
    default: /* S_TEXT and S_BLINE never buffer */
        return;
    }
}

/* The current line is incomplete: hold it while it may still matter,
 * otherwise pass it (and whatever is held with it) on. */
static void s_partial(pmp_banner_t *self, pmp_banner_sink_fn *sink, void *arg)
{
    const char *p = self->buf + self->held;
    size_t n = self->len - self->held;
    int keep = 0, banner = 0;
    switch (self->mode) {
    case S_START:
        keep = s_all_eq(p, n);
        break;
    case S_HOLD:
        keep = s_all_eq(p, n) || (self->held_rule && s_compatible(p, n, s_bad));
        break;
    case S_BANNER:
        keep = p[0] == '=';
        break;
    case S_TRAILER:
        keep = s_is_trailer(p, n, 1) || s_all_eq(p, n);
        break;
    default:
        return;
    }
    if (keep && n <= S_LINE_MAX)
        return;
    if (n > S_LINE_MAX && self->mode == S_BANNER && p[0] == '=')
        banner = 1; /* an overlong line of the box: still the launcher's */
    s_emit_all(self, sink, arg, banner);
    if (banner) {
        self->after_bline = S_BANNER;
        self->mode = S_BLINE;
    } else {
        self->mode = S_TEXT;
    }
}

void pmp_banner_feed(pmp_banner_t *self, const char *data, size_t len, pmp_banner_sink_fn *sink,
                     void *arg)
{
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) + 1 : len;
        if (self->mode == S_TEXT || self->mode == S_BLINE) {
            s_emit(sink, arg, self->mode == S_BLINE, data, n);
            if (nl)
                self->mode = self->mode == S_TEXT ? S_START : self->after_bline;
            data += n;
            len -= n;
            continue;
        }
        size_t room = S_BUF_MAX - self->len;
        if (n > room) {
            n = room; /* the line is too long to be the launcher's: s_partial decides */
            nl = NULL;
        }
        memcpy(self->buf + self->len, data, n);
        self->len += n;
        data += n;
        len -= n;
        if (nl && self->len - self->held <= S_LINE_MAX + 1)
            s_line(self, sink, arg);
        else if (nl) { /* an overlong complete line: as a partial one, then its end */
            s_partial(self, sink, arg);
            if (self->mode == S_TEXT || self->mode == S_BLINE)
                self->mode = self->mode == S_TEXT ? S_START : self->after_bline;
        } else
            s_partial(self, sink, arg);
    }
}

int pmp_banner_holding(const pmp_banner_t *self)
{
    return (self->mode == S_START || self->mode == S_HOLD) && self->len > 0;
}

void pmp_banner_flush(pmp_banner_t *self, int at_eof, pmp_banner_sink_fn *sink, void *arg)
{
    int partial = self->len > self->held;
    switch (self->mode) {
    case S_START:
    case S_HOLD:
        s_emit_all(self, sink, arg, 0);
        self->mode = partial && !at_eof ? S_TEXT : S_START;
        break;
    case S_BANNER:
    case S_TRAILER:
        if (!at_eof)
            return; /* the launcher finishes its box; nobody waits for it */
        s_emit_all(self, sink, arg, 1);
        self->mode = S_START;
        break;
    default:
        break;
    }
    if (at_eof)
        self->mode = S_START;
}
