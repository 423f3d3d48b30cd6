/*
 * test_banner.c - unit test of pmp_banner (unit.banner), the filter that
 * takes MPICH's "BAD TERMINATION" box out of the job's stdout.  The box as
 * hydra prints it (both variants) goes wholly to the banner side and the
 * program output around it wholly to the text side, in order, however the
 * stream is cut into chunks (every split point, and byte by byte); text
 * that merely looks like the start of a box (rules, empty lines, lines of
 * '=' of every length) comes out unchanged; partial lines come out at once
 * unless they may open a box, and such a held line comes out at a flush;
 * end of stream decides everything.  Exits 0 on success; prints the
 * failing check and exits 1 otherwise.
 */
#include "pmp_banner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmp_check.h"

#define RULE "===================================================================================\n"

/* As hydra (MPICH 4.0) printed it for a rank killed by SIGKILL. */
static const char s_box_signal[] =
    "\n" RULE "=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\n"
    "=   RANK 1 PID 19338 RUNNING AT vm\n"
    "=   KILLED BY SIGNAL: 9 (Killed)\n" RULE
    "YOUR APPLICATION TERMINATED WITH THE EXIT STRING: Killed "
    "(signal 9)\n"
    "This typically refers to a problem with your application.\n"
    "Please see the FAQ page for debugging suggestions\n";

/* ... and for a rank that exited with a status. */
static const char s_box_exit[] =
    "\n" RULE "=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\n"
    "=   PID 19338 RUNNING AT vm\n"
    "=   EXIT CODE: 9\n"
    "=   CLEANING UP REMAINING PROCESSES\n"
    "=   YOU CAN IGNORE THE BELOW CLEANUP MESSAGES\n" RULE;

typedef struct {
    char text[8192], banner[8192];
    size_t ntext, nbanner;
    size_t calls;
} s_out_t;

static void s_sink(void *arg, int banner, const char *data, size_t len)
{
    s_out_t *o = arg;
    CHECK(len > 0);
    char *buf = banner ? o->banner : o->text;
    size_t *n = banner ? &o->nbanner : &o->ntext;
    CHECK(*n + len < sizeof o->text);
    memcpy(buf + *n, data, len);
    *n += len;
    buf[*n] = '\0';
    o->calls++;
}

/* Feeds in at the split points cuts[0..ncuts) (increasing), then ends the
 * stream, and checks that text and banner came out as expected. */
static void s_run(const char *in, const size_t *cuts, size_t ncuts, const char *want_text,
                  const char *want_banner)
{
    pmp_banner_t *f = pmp_banner_new();
    CHECK(f);
    s_out_t o;
    memset(&o, 0, sizeof o);
    size_t len = strlen(in), at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        pmp_banner_feed(f, in + at, end - at, s_sink, &o);
        at = end;
    }
    pmp_banner_flush(f, 1, s_sink, &o);
    CHECK(!pmp_banner_holding(f));
    if (strcmp(o.text, want_text) != 0 || strcmp(o.banner, want_banner) != 0) {
        fprintf(stderr, "input: [%s]\ntext: [%s]\nwant: [%s]\nbanner: [%s]\nwant: [%s]\n", in,
                o.text, want_text, o.banner, want_banner);
        CHECK(!"unexpected split");
    }
    pmp_banner_destroy(&f);
    CHECK(f == NULL);
}

/* Whole, at every single split point, and byte by byte. */
static void s_every_split(const char *in, const char *want_text, const char *want_banner)
{
    s_run(in, NULL, 0, want_text, want_banner);
    size_t len = strlen(in);
    for (size_t c = 1; c < len; c++)
        s_run(in, &c, 1, want_text, want_banner);
    size_t *all = malloc(len * sizeof *all);
    CHECK(all);
    for (size_t c = 0; c + 1 < len; c++)
        all[c] = c + 1;
    s_run(in, all, len ? len - 1 : 0, want_text, want_banner);
    free(all);
}

static void s_test_boxes(void)
{
    s_every_split(s_box_signal, "", s_box_signal);
    s_every_split(s_box_exit, "", s_box_exit);
    /* output around it stays, in order */
    char in[4096], text[1024];
    snprintf(in, sizeof in, "result 1\nhalf line %safter\n", s_box_signal);
    /* the box's leading empty line ends the half line: that newline is the
     * line's, so it stays text, and the box starts at its rule */
    snprintf(text, sizeof text, "result 1\nhalf line \nafter\n");
    s_every_split(in, text, s_box_signal + 1);
    snprintf(in, sizeof in, "a\n\n%sb\n", s_box_exit + 1);
    s_every_split(in, "a\nb\n", s_box_exit);
    /* two boxes (two ranks) in a row */
    snprintf(in, sizeof in, "%s%s", s_box_exit, s_box_signal);
    s_every_split(in, "", in);
}

static void s_test_lookalikes(void)
{
    const char *same[] = {
        "plain text\n",
        "\n\n\n",
        "====================\n",
        "=\n==\n===\n",
        RULE,
        RULE "not a box\n",
        "\n" RULE "\n",
        RULE RULE "x\n",
        "\n" RULE "=   BAD\n",                                        /* cut short: not the line */
        "=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\n", /* no rule before */
        "YOUR APPLICATION TERMINATED WITH THE EXIT STRING: x\n",      /* not after a box */
        "no newline at the end",
        "\r\n\r\n",
        "===",
        "\n",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        s_every_split(same[i], same[i], "");
    /* a line of '=' longer than any of the launcher's */
    char big[2048];
    memset(big, '=', 1500);
    big[1500] = '\n';
    big[1501] = '\0';
    s_run(big, NULL, 0, big, "");
    size_t cuts[] = {100, 700, 1400};
    s_run(big, cuts, 3, big, "");
    /* a box interrupted by program output: the output is text */
    char in[4096];
    snprintf(in, sizeof in,
             "\n" RULE "=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\nrank output\n");
    char want_banner[1024];
    snprintf(want_banner, sizeof want_banner,
             "\n" RULE "=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\n");
    s_every_split(in, "rank output\n", want_banner);
}

/* What comes out before the end of the stream: prompt partial lines, held
 * possible openings, and a flush after a pause. */
static void s_test_timing(void)
{
    pmp_banner_t *f = pmp_banner_new();
    CHECK(f);
    s_out_t o;
    memset(&o, 0, sizeof o);
    pmp_banner_feed(f, "progress 10%", 12, s_sink, &o);
    CHECK(strcmp(o.text, "progress 10%") == 0); /* at once, without a newline */
    CHECK(!pmp_banner_holding(f));
    pmp_banner_feed(f, "\rprogress 20%\n", 14, s_sink, &o);
    CHECK(strcmp(o.text, "progress 10%\rprogress 20%\n") == 0);
    o.ntext = 0;
    o.text[0] = '\0';
    pmp_banner_feed(f, "\n", 1, s_sink, &o); /* may open a box: held */
    CHECK(o.ntext == 0 && pmp_banner_holding(f));
    pmp_banner_feed(f, "=====", 5, s_sink, &o);
    CHECK(o.ntext == 0 && pmp_banner_holding(f));
    pmp_banner_flush(f, 0, s_sink, &o); /* a pause: it was program output */
    CHECK(strcmp(o.text, "\n=====") == 0);
    CHECK(!pmp_banner_holding(f));
    pmp_banner_feed(f, "=====\n", 6, s_sink, &o); /* the rest of that line */
    CHECK(strcmp(o.text, "\n==========\n") == 0);
    CHECK(o.nbanner == 0);
    /* inside a box a pause changes nothing: the launcher finishes it */
    o.ntext = 0;
    o.text[0] = '\0';
    const char *open = RULE "=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\n=   PID";
    pmp_banner_feed(f, open, strlen(open), s_sink, &o);
    CHECK(o.ntext == 0 && !pmp_banner_holding(f));
    pmp_banner_flush(f, 0, s_sink, &o);
    CHECK(o.ntext == 0);
    const char *rest = " 1 RUNNING AT vm\n" RULE "after\n";
    pmp_banner_feed(f, rest, strlen(rest), s_sink, &o);
    CHECK(strcmp(o.text, "after\n") == 0);
    CHECK(strstr(o.banner, "=   PID 1 RUNNING AT vm\n") != NULL);
    pmp_banner_destroy(&f);
    pmp_banner_destroy(&f); /* NULL-safe */
}

int main(void)
{
    s_test_boxes();
    s_test_lookalikes();
    s_test_timing();
    printf("unit.banner: ok\n");
    return 0;
}
