/*
 * fuzz_protocol.c - fuzz harness of the wire-format decoder (pmp_protocol.c)
 * and the generator of its seed corpus.
 *
 * Where it sits: the decoder is the only code that reads bytes from a peer
 * before that peer has proven anything, on both sides of the socket, so it
 * is the code a hostile or broken peer reaches first.  This harness is
 * linked into the libFuzzer target fuzz_protocol (clang,
 * -fsanitize=fuzzer,address,undefined; CTest runs it as fuzz.protocol for a
 * bounded time) and into fuzz_replay, which replays the checked-in corpus in
 * every build (unit.fuzz_replay) so that an input that once crashed stays a
 * regression test under gcc and ASan too.
 *
 * How it works: the input is split into frames (fuzz_protocol.h), and the
 * frames are fed in the two ways messages arrive:
 *   - as a group leader (ZeroMQ DEALER) receives them: frame 0 the header,
 *     then its payload and buffers, checked for from_worker = 0, and the
 *     next message of a batch after them (pmp_header_next);
 *   - as the frontend (ROUTER) receives them: frame 0 the peer identity,
 *     frame 1 the header, checked for from_worker = 1, a batch alike; a HELLO payload then
 *     goes through the hello decoder and its "ranks=" line decoder (bounded
 *     by the hello's group size), and a per-rank RESULT's first frame
 *     through the rank table decoder, as the frontend and the binding do;
 * and every frame also goes straight through each decoder, so that the
 * fuzzer reaches the payload decoders without first having to build a
 * valid header.  The first frame also fills a pmp_hello_t for the hello
 * encoder, with an output buffer whose size comes from the input.
 *
 * The whole input is also read as the byte stream of a local link
 * (pmp_fuzz_link, fuzz_link.c, with its own invariants).
 *
 * Invariants checked (a violation aborts with a message, which libFuzzer
 * reports as a crash and keeps as an artifact):
 *   - a call returns 0 or -1; a rejection sets errno to EPROTO (ENOMEM for
 *     an allocation) and a non-empty, NUL-terminated, printable reason;
 *     a NULL error buffer gives the same verdict;
 *   - a decoded header re-encodes to the very same 24 bytes, and the
 *     header check agrees with an independent reading of its contract, as
 *     does the split of a batch (pmp_header_next);
 *   - a decoded hello satisfies the ranges the decoder promises, and
 *     encoding then decoding it again gives the same hello (line breaks in
 *     text become spaces, as pmp_hello_encode documents);
 *   - a decoded ranks line has at most the allowed entries, each with a
 *     rank >= 0, a pid >= 1 and a non-empty host, and survives a round trip
 *     through pmp_hello_ranks_encode (separators in names become '_');
 *   - a decoded rank table accounts for exactly the announced frames and
 *     re-encodes to the same bytes;
 *   - the encoder never writes past its buffer (ASan) and returns the
 *     length of a NUL-terminated text, or -1/ENOSPC with an empty buffer,
 *     and what it writes decodes unless a number is out of range.
 * Heap buffers are sized exactly so that AddressSanitizer sees any
 * out-of-bounds read; nothing here keeps state between inputs.
 */
#include "fuzz_protocol.h"
#include "pmp_error.h"
#include "pmp_protocol.h"
#include "pmp_shmref.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- failing loudly ------------------------------------------------------ */

__attribute__((noreturn, format(printf, 1, 2))) static void s_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_protocol: invariant broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

#define S_REQUIRE(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            s_fail("%s (%s:%d)", #cond, __FILE__, __LINE__);                                       \
    } while (0)

/* A rejection: -1, errno as expected, a printable non-empty reason. */
static void s_check_rejection(const char *what, int rc, int e, const pmp_error_t *err,
                              int allow_nomem)
{
    if (rc != -1)
        s_fail("%s returned %d (expected 0 or -1)", what, rc);
    if (e != EPROTO && !(allow_nomem && e == ENOMEM))
        s_fail("%s rejected with errno %d, expected EPROTO", what, e);
    size_t len = strnlen(err->text, sizeof err->text);
    if (len == sizeof err->text)
        s_fail("%s: reason is not NUL-terminated", what);
    if (len == 0)
        s_fail("%s rejected without a reason", what);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)err->text[i];
        if (c < 0x20 || c > 0x7e)
            s_fail("%s: reason has unprintable byte 0x%02x at %zu: %s", what, c, i, err->text);
    }
}

/* ---- frames -------------------------------------------------------------- */

typedef struct {
    unsigned char *data; /* malloc'ed copy of exactly size bytes (NULL when 0) */
    size_t size;
} s_frame_t;

static size_t s_split(const uint8_t *data, size_t size, s_frame_t *frames)
{
    size_t n = 0, pos = 0;
    while (pos < size && n < PMP_FUZZ_MAX_FRAMES) {
        size_t len;
        if (size - pos < 2) {
            len = size - pos;
        } else {
            len = (size_t)data[pos] | ((size_t)data[pos + 1] << 8);
            pos += 2;
            if (len > size - pos)
                len = size - pos;
        }
        /* An exact-size copy: ASan then catches a read one byte too far. */
        frames[n].data = len ? malloc(len) : NULL;
        S_REQUIRE(len == 0 || frames[n].data != NULL);
        if (len)
            memcpy(frames[n].data, data + pos, len);
        frames[n].size = len;
        pos += len;
        n++;
    }
    return n;
}

/* ---- header -------------------------------------------------------------- */

static int s_decode_header(const s_frame_t *f, pmp_header_t *hdr)
{
    pmp_error_t err;
    memset(&err, 0, sizeof err);
    errno = 0;
    int rc = pmp_header_decode(f->data, f->size, hdr, &err);
    int e = errno;
    pmp_header_t again;
    errno = 0;
    int rc2 = pmp_header_decode(f->data, f->size, &again, NULL);
    if (rc != rc2)
        s_fail("pmp_header_decode gives %d with an error buffer and %d without", rc, rc2);
    if (rc != 0) {
        s_check_rejection("pmp_header_decode", rc, e, &err, 0);
        return -1;
    }
    S_REQUIRE(f->size == PMP_HEADER_SIZE);
    S_REQUIRE(hdr->version == PMP_PROTOCOL_VERSION);
    S_REQUIRE(hdr->type >= PMP_MSG_HELLO && hdr->type <= PMP_MSG_FORGET);
    S_REQUIRE((hdr->flags & ~PMP_FLAG_KNOWN_MASK) == 0);
    S_REQUIRE(hdr->nframes <= PMP_MAX_FRAMES);
    S_REQUIRE(strcmp(pmp_msg_type_name(hdr->type), "unknown") != 0);
    unsigned char out[PMP_HEADER_SIZE];
    pmp_header_encode(hdr, out);
    if (memcmp(out, f->data, PMP_HEADER_SIZE) != 0)
        s_fail("a decoded header does not re-encode to the same bytes");
    return 0;
}

/* What pmp_protocol.h says pmp_header_check accepts, written independently. */
static int s_header_ok(const pmp_header_t *h, size_t nreceived, int from_worker)
{
    int t = h->type;
    int worker =
        t == PMP_MSG_HELLO || t == PMP_MSG_RESULT || t == PMP_MSG_ERROR || t == PMP_MSG_GOODBYE;
    int front = t == PMP_MSG_TASK || t == PMP_MSG_INIT || t == PMP_MSG_SHUTDOWN ||
                t == PMP_MSG_DEFINE || t == PMP_MSG_FORGET;
    if (from_worker ? !worker : !front)
        return 0;
    if (h->nframes != nreceived)
        return 0;
    if ((t == PMP_MSG_HELLO || t == PMP_MSG_ERROR) && h->nframes != 1)
        return 0;
    if ((t == PMP_MSG_TASK || t == PMP_MSG_INIT || t == PMP_MSG_RESULT || t == PMP_MSG_DEFINE) &&
        h->nframes < 1)
        return 0;
    if ((t == PMP_MSG_SHUTDOWN || t == PMP_MSG_GOODBYE || t == PMP_MSG_FORGET) && h->nframes > 1)
        return 0;
    if ((h->flags & PMP_FLAG_SHM) && (t == PMP_MSG_TASK || t == PMP_MSG_RESULT) &&
        (h->nframes < 2 || (t == PMP_MSG_RESULT && (h->flags & PMP_FLAG_PER_RANK))))
        return 0;
    if (h->task_id == 0 && t != PMP_MSG_HELLO && t != PMP_MSG_SHUTDOWN && t != PMP_MSG_GOODBYE)
        return 0;
    return 1;
}

static int s_check_header(const pmp_header_t *hdr, size_t nreceived, int from_worker)
{
    pmp_error_t err;
    memset(&err, 0, sizeof err);
    errno = 0;
    int rc = pmp_header_check(hdr, nreceived, from_worker, &err);
    int e = errno;
    int rc2 = pmp_header_check(hdr, nreceived, from_worker, NULL);
    if (rc != rc2)
        s_fail("pmp_header_check gives %d with an error buffer and %d without", rc, rc2);
    int want = s_header_ok(hdr, nreceived, from_worker);
    if ((rc == 0) != want)
        s_fail("pmp_header_check(%s, id %" PRIu64 ", flags 0x%x, nframes %u, nreceived %zu, "
               "from_worker %d) = %d, the contract says %s",
               pmp_msg_type_name(hdr->type), hdr->task_id, (unsigned)hdr->flags,
               (unsigned)hdr->nframes, nreceived, from_worker, rc, want ? "accept" : "reject");
    if (rc != 0)
        s_check_rejection("pmp_header_check", rc, e, &err, 0);
    return rc;
}

/* ---- hello --------------------------------------------------------------- */

static void s_check_text(const char *what, const char *s)
{
    if (strnlen(s, PMP_HELLO_TEXT_MAX) == PMP_HELLO_TEXT_MAX)
        s_fail("hello %s is not NUL-terminated", what);
}

/* The hello that encoding h and decoding it again should give. */
static void s_expected_round_trip(const pmp_hello_t *h, pmp_hello_t *want)
{
    *want = *h;
    if (want->batch < 1) /* not written: it decodes as 1 */
        want->batch = 1;
    char *texts[] = {want->host, want->python_version, want->mpi_version, want->runtime_version};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (char *c = texts[i]; *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
}

static void s_require_same_hello(const pmp_hello_t *a, const pmp_hello_t *b)
{
    S_REQUIRE(a->group == b->group);
    S_REQUIRE(a->ngroups == b->ngroups);
    S_REQUIRE(a->group_size == b->group_size);
    S_REQUIRE(a->world_size == b->world_size);
    S_REQUIRE(a->world_rank == b->world_rank);
    S_REQUIRE(a->pid == b->pid);
    S_REQUIRE(strcmp(a->host, b->host) == 0);
    S_REQUIRE(strcmp(a->python_version, b->python_version) == 0);
    S_REQUIRE(strcmp(a->mpi_version, b->mpi_version) == 0);
    S_REQUIRE(strcmp(a->runtime_version, b->runtime_version) == 0);
    S_REQUIRE(a->batch == b->batch);
}

static int s_hello_in_range(const pmp_hello_t *h)
{
    return h->ngroups >= 1 && h->group >= 0 && h->group < h->ngroups && h->group_size >= 1 &&
           h->world_size >= h->group_size && h->world_rank >= 0 && h->world_rank < h->world_size &&
           h->pid >= 1 && h->batch <= PMP_BATCH_MAX; /* a batch below 2 is not written */
}

/* Encodes h into a heap buffer of exactly size bytes and checks the
 * result; returns the encoded length or -1. */
static int s_encode_hello(const pmp_hello_t *h, size_t size, char **out)
{
    char *buf = size ? malloc(size) : NULL;
    S_REQUIRE(size == 0 || buf != NULL);
    if (buf)
        memset(buf, 'x', size);
    errno = 0;
    int rc = pmp_hello_encode(h, buf, size);
    int e = errno;
    if (rc < 0) {
        S_REQUIRE(rc == -1);
        if (e != ENOSPC)
            s_fail("pmp_hello_encode failed with errno %d, expected ENOSPC", e);
        S_REQUIRE(size == 0 || buf[0] == '\0');
        free(buf);
        *out = NULL;
        return -1;
    }
    S_REQUIRE((size_t)rc < size);
    S_REQUIRE(buf[rc] == '\0');
    S_REQUIRE(strlen(buf) == (size_t)rc);
    *out = buf;
    return rc;
}

static int s_decode_hello(const void *data, size_t size, pmp_hello_t *hello)
{
    pmp_error_t err;
    memset(&err, 0, sizeof err);
    errno = 0;
    int rc = pmp_hello_decode(data, size, hello, &err);
    int e = errno;
    pmp_hello_t again;
    int rc2 = pmp_hello_decode(data, size, &again, NULL);
    if (rc != rc2)
        s_fail("pmp_hello_decode gives %d with an error buffer and %d without", rc, rc2);
    if (rc != 0) {
        s_check_rejection("pmp_hello_decode", rc, e, &err, 0);
        return -1;
    }
    s_require_same_hello(hello, &again);
    s_check_text("host", hello->host);
    s_check_text("python", hello->python_version);
    s_check_text("mpi", hello->mpi_version);
    s_check_text("runtime", hello->runtime_version);
    if (!s_hello_in_range(hello) || hello->batch < 1)
        s_fail("pmp_hello_decode accepted a hello whose numbers are out of range");
    return 0;
}

static void s_fuzz_hello_payload(const s_frame_t *f)
{
    pmp_hello_t h;
    if (s_decode_hello(f->data, f->size, &h) != 0)
        return;
    /* Round trip: what was accepted re-encodes, and decodes to itself. */
    char *text;
    int len = s_encode_hello(&h, 8 * PMP_HELLO_TEXT_MAX, &text);
    if (len < 0)
        s_fail("a decoded hello does not fit into %d bytes when encoded", 8 * PMP_HELLO_TEXT_MAX);
    pmp_hello_t back, want;
    if (s_decode_hello(text, (size_t)len, &back) != 0)
        s_fail("a decoded hello, encoded again, is rejected");
    s_expected_round_trip(&h, &want);
    s_require_same_hello(&back, &want);
    free(text);
}

/* The encoder on a hello made of raw bytes (text fields NUL-terminated, as
 * the header requires of callers), into a buffer sized by the input. */
static void s_fuzz_hello_encode(const s_frame_t *f)
{
    pmp_hello_t h;
    memset(&h, 0, sizeof h);
    if (f->size)
        memcpy(&h, f->data, f->size < sizeof h ? f->size : sizeof h);
    h.host[PMP_HELLO_TEXT_MAX - 1] = '\0';
    h.python_version[PMP_HELLO_TEXT_MAX - 1] = '\0';
    h.mpi_version[PMP_HELLO_TEXT_MAX - 1] = '\0';
    h.runtime_version[PMP_HELLO_TEXT_MAX - 1] = '\0';
    size_t size = f->size >= 2 ? ((size_t)f->data[0] | ((size_t)f->data[1] << 8)) % 1400 : 0;
    char *text;
    int len = s_encode_hello(&h, size, &text);
    if (len < 0)
        return;
    pmp_hello_t back, want;
    if (s_decode_hello(text, (size_t)len, &back) == 0) {
        s_expected_round_trip(&h, &want);
        s_require_same_hello(&back, &want);
    } else if (s_hello_in_range(&h)) {
        s_fail("pmp_hello_encode wrote a hello that pmp_hello_decode rejects");
    }
    free(text);
}

/* ---- the ranks line of a hello -------------------------------------------- */

/* Decodes the "ranks=" line with at most max_ranks entries, checks what the
 * header promises, and that the accepted entries survive a round trip
 * through the encoder (with ':', ',' and line breaks in names as '_'). */
static void s_fuzz_hello_ranks(const s_frame_t *f, size_t max_ranks)
{
    pmp_error_t err;
    memset(&err, 0, sizeof err);
    pmp_hello_rank_t *ranks = (pmp_hello_rank_t *)1; /* must be reset */
    size_t n = 12345;
    errno = 0;
    int rc = pmp_hello_ranks_decode(f->data, f->size, max_ranks, &ranks, &n, &err);
    int e = errno;
    if (rc != 0) {
        s_check_rejection("pmp_hello_ranks_decode", rc, e, &err, 1);
        return;
    }
    if (n == 0) {
        S_REQUIRE(ranks == NULL);
        return;
    }
    S_REQUIRE(ranks != NULL);
    S_REQUIRE(n <= max_ranks);
    for (size_t i = 0; i < n; i++) {
        S_REQUIRE(ranks[i].world_rank >= 0);
        S_REQUIRE(ranks[i].pid >= 1);
        s_check_text("ranks host", ranks[i].host);
        S_REQUIRE(ranks[i].host[0] != '\0');
    }
    /* Round trip. */
    size_t size = n * (2 * PMP_HELLO_TEXT_MAX) + 16;
    char *text = malloc(size);
    S_REQUIRE(text != NULL);
    int len = pmp_hello_ranks_encode(ranks, n, text, size);
    if (len < 0)
        s_fail("decoded hello ranks do not encode again (errno %d)", errno);
    S_REQUIRE((size_t)len < size && text[len] == '\0' && strlen(text) == (size_t)len);
    pmp_hello_rank_t *back = NULL;
    size_t nback = 0;
    memset(&err, 0, sizeof err);
    if (pmp_hello_ranks_decode(text, (size_t)len, n, &back, &nback, &err) != 0)
        s_fail("decoded hello ranks, encoded again, are rejected: %s", err.text);
    S_REQUIRE(nback == n);
    for (size_t i = 0; i < n; i++) {
        char want[PMP_HELLO_TEXT_MAX];
        memcpy(want, ranks[i].host, sizeof want);
        for (char *c = want; *c; c++)
            if (*c == ':' || *c == ',' || *c == '\n' || *c == '\r')
                *c = '_';
        S_REQUIRE(back[i].world_rank == ranks[i].world_rank);
        S_REQUIRE(back[i].pid == ranks[i].pid);
        S_REQUIRE(strcmp(back[i].host, want) == 0);
    }
    free(back);
    free(text);
    free(ranks);
}

/* ---- rank table ---------------------------------------------------------- */

static void s_fuzz_rank_table(const s_frame_t *f, uint32_t nframes)
{
    pmp_error_t err;
    memset(&err, 0, sizeof err);
    uint32_t nranks = 0, *nbuffers = NULL;
    errno = 0;
    int rc = pmp_rank_table_decode(f->data, f->size, nframes, &nranks, &nbuffers, &err);
    int e = errno;
    if (rc != 0) {
        s_check_rejection("pmp_rank_table_decode", rc, e, &err, 1);
        return;
    }
    S_REQUIRE(nranks >= 1);
    S_REQUIRE(nbuffers != NULL);
    S_REQUIRE(f->size == pmp_rank_table_size(nranks));
    uint64_t total = 1 + (uint64_t)nranks;
    for (uint32_t i = 0; i < nranks; i++)
        total += nbuffers[i];
    if (total != nframes)
        s_fail("an accepted rank table accounts for %" PRIu64 " frames, its header announces %u",
               total, (unsigned)nframes);
    unsigned char *out = malloc(f->size);
    S_REQUIRE(out != NULL);
    pmp_rank_table_encode(nranks, nbuffers, out);
    if (memcmp(out, f->data, f->size) != 0)
        s_fail("a decoded rank table does not re-encode to the same bytes");
    free(out);
    free(nbuffers);
    /* The same table with a NULL error buffer. */
    nbuffers = NULL;
    S_REQUIRE(pmp_rank_table_decode(f->data, f->size, nframes, &nranks, &nbuffers, NULL) == 0);
    free(nbuffers);
}

/* ---- segment table ------------------------------------------------------- */

static void s_fuzz_shm_table(const s_frame_t *f, uint32_t nframes)
{
    pmp_error_t err;
    memset(&err, 0, sizeof err);
    size_t count = 0;
    errno = 0;
    int rc = pmp_shm_table_decode(f->data, f->size, nframes, NULL, 0, &count, &err);
    int e = errno;
    if (rc != 0) {
        s_check_rejection("pmp_shm_table_decode", rc, e, &err, 1);
        return;
    }
    S_REQUIRE(count >= 1 && count <= (size_t)nframes - 2);
    S_REQUIRE(f->size == pmp_shm_table_size(count));
    pmp_shm_ref_t *refs = malloc(count * sizeof *refs);
    unsigned char *out = malloc(f->size);
    S_REQUIRE(refs != NULL && out != NULL);
    S_REQUIRE(pmp_shm_table_decode(f->data, f->size, nframes, refs, count, &count, NULL) == 0);
    for (size_t i = 0; i < count; i++) {
        S_REQUIRE(refs[i].frame >= 1 && refs[i].frame <= nframes - 2);
        S_REQUIRE(i == 0 || refs[i].frame > refs[i - 1].frame);
        S_REQUIRE(refs[i].length >= 1 && refs[i].pid >= 1);
    }
    pmp_shm_table_encode(refs, count, out);
    if (memcmp(out, f->data, f->size) != 0)
        s_fail("a decoded segment table does not re-encode to the same bytes");
    free(out);
    free(refs);
}

/* ---- the two receivers --------------------------------------------------- */

/* pmp_header_next on the message that starts at frames[at] (at < n),
 * held to its contract: it accepts exactly when the header decodes, the
 * frames it announces are all there, and the header check accepts it for
 * that many; what it decodes is what pmp_header_decode gives.  Returns 0
 * or -1. */
static int s_next(const s_frame_t *frames, size_t at, size_t n, int from_worker, pmp_header_t *hdr)
{
    pmp_error_t err;
    memset(&err, 0, sizeof err);
    errno = 0;
    int rc = pmp_header_next(frames[at].data, frames[at].size, n - at, from_worker, hdr, &err);
    int e = errno;
    pmp_header_t dec;
    int want = s_decode_header(&frames[at], &dec) == 0 && dec.nframes <= n - at - 1 &&
               s_header_ok(&dec, dec.nframes, from_worker);
    if ((rc == 0) != want)
        s_fail("pmp_header_next at frame %zu of %zu (from_worker %d) = %d, the contract says %s",
               at, n, from_worker, rc, want ? "accept" : "reject");
    if (rc != 0) {
        s_check_rejection("pmp_header_next", rc, e, &err, 0);
        return -1;
    }
    S_REQUIRE(hdr->type == dec.type && hdr->task_id == dec.task_id && hdr->flags == dec.flags &&
              hdr->nframes == dec.nframes);
    return 0;
}

/* A group leader: [header, payload, buffers...] from the frontend, or a
 * batch of such messages back to back. */
static void s_as_leader(const s_frame_t *frames, size_t n)
{
    pmp_header_t hdr;
    for (size_t at = 0; at < n; at += 1 + hdr.nframes) {
        if (s_next(frames, at, n, 0, &hdr) != 0)
            return;
        /* The payload of TASK/INIT/DEFINE is a pickle: the C side does not
         * look inside it.  The segment table is read by the worker's
         * binding. */
        if (hdr.type == PMP_MSG_TASK && (hdr.flags & PMP_FLAG_SHM))
            s_fuzz_shm_table(&frames[at + hdr.nframes], hdr.nframes);
    }
}

/* The frontend: [identity, header, payload, buffers...] from a worker, or
 * the identity and a batch of messages back to back. */
static void s_as_frontend(const s_frame_t *frames, size_t n)
{
    pmp_header_t hdr;
    for (size_t at = 1; at < n; at += 1 + hdr.nframes) {
        if (s_next(frames, at, n, 1, &hdr) != 0)
            return;
        const s_frame_t *payload = &frames[at + 1];
        if (hdr.type == PMP_MSG_HELLO) {
            /* As the frontend does: the hello, then its ranks line, bounded
             * by the group size the hello announced. */
            pmp_hello_t hello;
            s_fuzz_hello_payload(payload);
            if (s_decode_hello(payload->data, payload->size, &hello) == 0)
                s_fuzz_hello_ranks(payload, (size_t)hello.group_size);
        } else if (hdr.type == PMP_MSG_RESULT && (hdr.flags & PMP_FLAG_PER_RANK))
            s_fuzz_rank_table(payload, hdr.nframes);
        else if (hdr.type == PMP_MSG_RESULT && (hdr.flags & PMP_FLAG_SHM))
            s_fuzz_shm_table(&frames[at + hdr.nframes], hdr.nframes);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_frame_t frames[PMP_FUZZ_MAX_FRAMES];
    size_t n = s_split(data, size, frames);
    s_as_leader(frames, n);
    s_as_frontend(frames, n);
    for (size_t i = 0; i < n; i++) {
        pmp_header_t hdr;
        if (s_decode_header(&frames[i], &hdr) == 0) {
            s_check_header(&hdr, n - 1 - i, 0);
            s_check_header(&hdr, n - 1 - i, 1);
        }
        s_fuzz_hello_payload(&frames[i]);
        s_fuzz_hello_ranks(&frames[i], 1 + i * 7);
        s_fuzz_rank_table(&frames[i], (uint32_t)(n - 1 - i));
    }
    if (n > 0) {
        s_fuzz_hello_encode(&frames[0]);
        /* A rank table whose frame count comes from the input, not only
         * from how many frames followed. */
        if (n > 1 && frames[0].size >= 4) {
            const unsigned char *p = frames[0].data;
            uint32_t nf =
                (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            s_fuzz_rank_table(&frames[1], nf);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(frames[i].data);
    pmp_fuzz_link(data, size);
    return 0;
}

/* ---- the seed corpus ----------------------------------------------------- */

typedef struct {
    pmp_fuzz_seed_t *items;
    size_t count, cap;
    int failed;
} s_seeds_t;

typedef struct {
    const void *data;
    size_t size;
} s_part_t;

static void s_seed_add(s_seeds_t *s, const char *name, const s_part_t *parts, size_t nparts)
{
    if (s->failed)
        return;
    if (s->count == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        pmp_fuzz_seed_t *items = realloc(s->items, cap * sizeof *items);
        if (!items) {
            s->failed = 1;
            return;
        }
        s->items = items;
        s->cap = cap;
    }
    size_t total = 0;
    for (size_t i = 0; i < nparts; i++)
        total += 2 + parts[i].size;
    unsigned char *buf = malloc(total ? total : 1);
    if (!buf) {
        s->failed = 1;
        return;
    }
    size_t pos = 0;
    for (size_t i = 0; i < nparts; i++) {
        buf[pos++] = (unsigned char)(parts[i].size & 0xffu);
        buf[pos++] = (unsigned char)(parts[i].size >> 8);
        if (parts[i].size)
            memcpy(buf + pos, parts[i].data, parts[i].size);
        pos += parts[i].size;
    }
    pmp_fuzz_seed_t *seed = &s->items[s->count++];
    snprintf(seed->name, sizeof seed->name, "%s", name);
    seed->data = buf;
    seed->size = total;
}

/* A message as a leader receives it: header, then the given frames. */
static void s_seed_to_leader(s_seeds_t *s, const char *name, int type, uint64_t id, uint32_t flags,
                             uint32_t nframes, const s_part_t *rest, size_t nrest)
{
    unsigned char hdr[PMP_HEADER_SIZE];
    pmp_header_t h = {.type = (uint16_t)type, .task_id = id, .flags = flags, .nframes = nframes};
    pmp_header_encode(&h, hdr);
    s_part_t parts[8] = {{hdr, sizeof hdr}};
    for (size_t i = 0; i < nrest && i < 7; i++)
        parts[1 + i] = rest[i];
    s_seed_add(s, name, parts, 1 + (nrest < 7 ? nrest : 7));
}

/* A message as the frontend receives it: identity, header, frames. */
static void s_seed_to_frontend(s_seeds_t *s, const char *name, int type, uint64_t id,
                               uint32_t flags, uint32_t nframes, const s_part_t *rest, size_t nrest)
{
    static const unsigned char identity[5] = {0, 0x80, 0x00, 0x41, 0xa7};
    unsigned char hdr[PMP_HEADER_SIZE];
    pmp_header_t h = {.type = (uint16_t)type, .task_id = id, .flags = flags, .nframes = nframes};
    pmp_header_encode(&h, hdr);
    s_part_t parts[9] = {{identity, sizeof identity}, {hdr, sizeof hdr}};
    for (size_t i = 0; i < nrest && i < 7; i++)
        parts[2 + i] = rest[i];
    s_seed_add(s, name, parts, 2 + (nrest < 7 ? nrest : 7));
}

static void s_seed_hello(s_seeds_t *s, const char *name, const char *text)
{
    s_part_t p = {text, strlen(text)};
    s_seed_to_frontend(s, name, PMP_MSG_HELLO, 0, 0, 1, &p, 1);
}

pmp_fuzz_seed_t *pmp_fuzz_seeds_new(size_t *count)
{
    s_seeds_t s = {0};
    /* A tiny protocol-5 pickle (the int 7) and an out-of-band buffer. */
    static const unsigned char pickle[] = {0x80, 0x05, 0x4b, 0x07, 0x2e};
    static const unsigned char buffer[] = {1, 2, 3, 4, 5, 6, 7, 8};
    s_part_t pk = {pickle, sizeof pickle};
    s_part_t pk_bufs[3] = {pk, {buffer, sizeof buffer}, {buffer, 3}};
    s_part_t empty = {"", 0};

    /* Frontend -> leader. */
    s_seed_to_leader(&s, "leader-task", PMP_MSG_TASK, 1, 0, 1, &pk, 1);
    s_seed_to_leader(&s, "leader-task-buffers", PMP_MSG_TASK, 2, PMP_FLAG_ALL_RANKS, 3, pk_bufs, 3);
    s_seed_to_leader(&s, "leader-task-fn-key-chunk", PMP_MSG_TASK, 3,
                     PMP_FLAG_FN_KEY | PMP_FLAG_CHUNK, 1, &pk, 1);
    s_seed_to_leader(&s, "leader-task-fn-key-chunk-map", PMP_MSG_TASK, 3,
                     PMP_FLAG_FN_KEY | PMP_FLAG_CHUNK | PMP_FLAG_MAP, 1, &pk, 1);
    s_seed_to_leader(&s, "leader-task-fn-key-chunk-starmap", PMP_MSG_TASK, 3,
                     PMP_FLAG_FN_KEY | PMP_FLAG_CHUNK | PMP_FLAG_STARMAP, 1, &pk, 1);
    s_seed_to_leader(&s, "leader-init", PMP_MSG_INIT, 4, 0, 1, &pk, 1);
    s_seed_to_leader(&s, "leader-define", PMP_MSG_DEFINE, 0xfeedull, 0, 1, &pk, 1);
    s_seed_to_leader(&s, "leader-forget", PMP_MSG_FORGET, 0xfeedull, 0, 0, NULL, 0);
    s_seed_to_leader(&s, "leader-forget-empty-frame", PMP_MSG_FORGET, 0xfeedull, 0, 1, &empty, 1);
    s_seed_to_leader(&s, "leader-shutdown", PMP_MSG_SHUTDOWN, 0, 0, 0, NULL, 0);
    {
        /* a batch: TASK 5, FORGET, TASK 6 with a buffer, in one message */
        unsigned char h5[PMP_HEADER_SIZE], hf[PMP_HEADER_SIZE], h6[PMP_HEADER_SIZE];
        pmp_header_encode(&(pmp_header_t){.type = PMP_MSG_TASK, .task_id = 5, .nframes = 1}, h5);
        pmp_header_encode(&(pmp_header_t){.type = PMP_MSG_FORGET, .task_id = 9, .nframes = 0}, hf);
        pmp_header_encode(&(pmp_header_t){.type = PMP_MSG_TASK, .task_id = 6, .nframes = 2}, h6);
        s_part_t batch[] = {{h5, sizeof h5}, pk, {hf, sizeof hf},
                            {h6, sizeof h6}, pk, {buffer, sizeof buffer}};
        s_seed_add(&s, "leader-batch", batch, sizeof batch / sizeof batch[0]);
        /* results the same way, behind the peer identity */
        unsigned char r5[PMP_HEADER_SIZE], r6[PMP_HEADER_SIZE];
        pmp_header_encode(&(pmp_header_t){.type = PMP_MSG_RESULT, .task_id = 5, .nframes = 1}, r5);
        pmp_header_encode(&(pmp_header_t){.type = PMP_MSG_ERROR, .task_id = 6, .nframes = 1}, r6);
        s_part_t replies[] = {{"G1", 2}, {r5, sizeof r5}, pk, {r6, sizeof r6}, pk};
        s_seed_add(&s, "frontend-batch", replies, sizeof replies / sizeof replies[0]);
    }
    /* Near-valid, for the leader. */
    s_seed_to_leader(&s, "leader-bad-task-id-0", PMP_MSG_TASK, 0, 0, 1, &pk, 1);
    s_seed_to_leader(&s, "leader-bad-define-key-0", PMP_MSG_DEFINE, 0, 0, 1, &pk, 1);
    s_seed_to_leader(&s, "leader-bad-frame-count", PMP_MSG_TASK, 5, 0, 2, &pk, 1);
    s_seed_to_leader(&s, "leader-bad-forget-frames", PMP_MSG_FORGET, 9, 0, 2, pk_bufs, 2);
    s_seed_to_leader(&s, "leader-bad-result-from-frontend", PMP_MSG_RESULT, 6, 0, 1, &pk, 1);
    {
        unsigned char hdr[PMP_HEADER_SIZE];
        pmp_header_t h = {.type = PMP_MSG_TASK, .task_id = 7, .nframes = 1};
        pmp_header_encode(&h, hdr);
        s_part_t parts[2] = {{hdr, sizeof hdr}, pk};
        hdr[0] = 'X';
        s_seed_add(&s, "leader-bad-magic", parts, 2);
        hdr[0] = 'P';
        hdr[4] = 2;
        s_seed_add(&s, "leader-bad-version", parts, 2);
        hdr[4] = 1;
        hdr[6] = 10;
        s_seed_add(&s, "leader-bad-type", parts, 2);
        hdr[6] = PMP_MSG_TASK;
        hdr[16] = 0x80; /* the lowest bit above PMP_FLAG_KNOWN_MASK */
        s_seed_add(&s, "leader-bad-flags", parts, 2);
        hdr[16] = 0;
        hdr[22] = 0x01; /* 65537 frames */
        hdr[20] = 0x01;
        s_seed_add(&s, "leader-bad-too-many-frames", parts, 2);
        hdr[22] = 0;
        parts[0].size = PMP_HEADER_SIZE - 1;
        s_seed_add(&s, "leader-bad-truncated-header", parts, 2);
    }

    /* Worker -> frontend. */
    s_seed_hello(&s, "frontend-hello",
                 "group=0\nngroups=2\ngroup_size=2\nworld_size=4\nworld_rank=0\npid=4242\n"
                 "host=node01\npython=3.11.2\nmpi=MPICH Version: 4.0.2\nruntime=0.1.0\n");
    s_seed_hello(&s, "frontend-hello-crlf-unknown-key",
                 "group=1\r\nngroups=2\r\ngroup_size=1\r\nworld_size=2\r\nworld_rank=1\r\n"
                 "pid=9223372036854775807\r\nhost=h\r\npython=3\r\nmpi=Open MPI v4.1.4\r\n"
                 "runtime=0.1.0\r\nfuture=key\r\n");
    {
        /* A host name longer than the field, cut inside a UTF-8 sequence. */
        char text[1024];
        int pos = snprintf(text, sizeof text,
                           "group=0\nngroups=1\ngroup_size=1\nworld_size=1\n"
                           "world_rank=0\npid=1\npython=3\nmpi=m\nruntime=r\n"
                           "host=");
        for (int i = 0; i < 254; i++)
            text[pos++] = 'h';
        for (int i = 0; i < 4; i++) {
            text[pos++] = (char)0xc3;
            text[pos++] = (char)0xa9;
        }
        text[pos] = '\0';
        s_seed_hello(&s, "frontend-hello-long-utf8-host", text);
    }
    s_seed_hello(&s, "frontend-hello-ranks",
                 "group=0\nngroups=1\ngroup_size=2\nworld_size=2\nworld_rank=0\npid=4242\n"
                 "host=node01\npython=3.11.2\nmpi=MPICH Version: 4.0.2\nruntime=0.1.0\n"
                 "ranks=0:4242:node01,1:4243:node02.example.org\n");
    s_seed_hello(&s, "frontend-hello-ranks-bad-too-many",
                 "group=0\nngroups=1\ngroup_size=1\nworld_size=2\nworld_rank=0\npid=1\n"
                 "host=h\npython=3\nmpi=m\nruntime=r\nranks=0:1:h,1:2:h\n");
    s_seed_hello(&s, "frontend-hello-ranks-bad-entry",
                 "group=0\nngroups=1\ngroup_size=2\nworld_size=2\nworld_rank=0\npid=1\n"
                 "host=h\npython=3\nmpi=m\nruntime=r\nranks=0:0:h,x:2:\r\n");
    s_seed_hello(&s, "frontend-hello-bad-missing-key",
                 "group=0\nngroups=1\ngroup_size=1\nworld_size=1\nworld_rank=0\nhost=h\n");
    s_seed_hello(&s, "frontend-hello-bad-number",
                 "group=0x1\nngroups=1\ngroup_size=1\nworld_size=1\nworld_rank=0\npid=1\n"
                 "host=h\npython=3\nmpi=m\nruntime=r\n");
    s_seed_hello(&s, "frontend-hello-bad-range",
                 "group=2147483648\nngroups=1\ngroup_size=1\nworld_size=1\nworld_rank=0\n"
                 "pid=-1\nhost=h\npython=3\nmpi=m\nruntime=r\n");
    s_seed_hello(&s, "frontend-hello-bad-group",
                 "group=3\nngroups=2\ngroup_size=1\nworld_size=1\nworld_rank=0\npid=1\n"
                 "host=h\npython=3\nmpi=m\nruntime=r\n");
    s_seed_hello(&s, "frontend-hello-bad-repeat",
                 "group=0\ngroup=0\nngroups=1\ngroup_size=1\nworld_size=1\nworld_rank=0\npid=1\n"
                 "host=h\npython=3\nmpi=m\nruntime=r\n");
    s_seed_hello(&s, "frontend-hello-bad-line", "group\n\x1b[31mngroups=1\n");
    {
        static const char nul_hello[] = "group=0\nngr\0ups=1\n";
        s_part_t p = {nul_hello, sizeof nul_hello - 1};
        s_seed_to_frontend(&s, "frontend-hello-bad-nul", PMP_MSG_HELLO, 0, 0, 1, &p, 1);
    }
    s_seed_to_frontend(&s, "frontend-result", PMP_MSG_RESULT, 1, 0, 1, &pk, 1);
    s_seed_to_frontend(&s, "frontend-error", PMP_MSG_ERROR, 1, 0, 1, &pk, 1);
    s_seed_to_frontend(&s, "frontend-goodbye", PMP_MSG_GOODBYE, 0, 0, 0, NULL, 0);
    {
        /* Per-rank result: 2 ranks, rank 0 with one buffer, rank 1 none:
         * table, pickle 0, buffer 0, pickle 1 = 4 frames. */
        uint32_t nb[2] = {1, 0};
        unsigned char table[12];
        pmp_rank_table_encode(2, nb, table);
        s_part_t rest[4] = {{table, sizeof table}, pk, {buffer, sizeof buffer}, pk};
        s_seed_to_frontend(&s, "frontend-result-per-rank", PMP_MSG_RESULT, 8, PMP_FLAG_PER_RANK, 4,
                           rest, 4);
        s_seed_to_frontend(&s, "frontend-result-per-rank-bad-count", PMP_MSG_RESULT, 8,
                           PMP_FLAG_PER_RANK, 3, rest, 3);
        rest[0].size = 10;
        s_seed_to_frontend(&s, "frontend-result-per-rank-bad-truncated", PMP_MSG_RESULT, 8,
                           PMP_FLAG_PER_RANK, 4, rest, 4);
        static const unsigned char zero[4] = {0};
        rest[0] = (s_part_t){zero, sizeof zero};
        s_seed_to_frontend(&s, "frontend-result-per-rank-bad-zero", PMP_MSG_RESULT, 8,
                           PMP_FLAG_PER_RANK, 1, rest, 1);
        uint32_t huge[2] = {0xffffffffu, 0xffffffffu};
        pmp_rank_table_encode(2, huge, table);
        rest[0] = (s_part_t){table, sizeof table};
        s_seed_to_frontend(&s, "frontend-result-per-rank-bad-wrap", PMP_MSG_RESULT, 8,
                           PMP_FLAG_PER_RANK, 4, rest, 4);
    }
    {
        /* Shared memory: payload, an empty frame the table stands for,
         * a plain buffer, the table (as a task and as a result). */
        pmp_shm_ref_t ref = {1, 5, 4711, 1, PMP_SHM_DATA_OFFSET, 1u << 20};
        unsigned char table[4 + PMP_SHM_ENTRY_SIZE];
        pmp_shm_table_encode(&ref, 1, table);
        s_part_t rest[4] = {pk, empty, {buffer, sizeof buffer}, {table, sizeof table}};
        s_seed_to_leader(&s, "leader-task-shm", PMP_MSG_TASK, 9, PMP_FLAG_SHM, 4, rest, 4);
        s_seed_to_frontend(&s, "frontend-result-shm", PMP_MSG_RESULT, 9, PMP_FLAG_SHM, 4, rest, 4);
        ref.frame = 3;
        pmp_shm_table_encode(&ref, 1, table);
        s_seed_to_frontend(&s, "frontend-result-shm-bad-frame", PMP_MSG_RESULT, 9, PMP_FLAG_SHM, 4,
                           rest, 4);
    }
    s_seed_to_frontend(&s, "frontend-bad-task-from-worker", PMP_MSG_TASK, 1, 0, 1, &pk, 1);
    s_seed_to_frontend(&s, "frontend-bad-error-frames", PMP_MSG_ERROR, 1, 0, 2, pk_bufs, 2);
    s_seed_to_frontend(&s, "frontend-bad-hello-frames", PMP_MSG_HELLO, 0, 0, 0, NULL, 0);

    if (s.failed) {
        pmp_fuzz_seeds_free(s.items, s.count);
        errno = ENOMEM;
        return NULL;
    }
    *count = s.count;
    return s.items;
}

void pmp_fuzz_seeds_free(pmp_fuzz_seed_t *seeds, size_t count)
{
    if (!seeds)
        return;
    for (size_t i = 0; i < count; i++)
        free(seeds[i].data);
    free(seeds);
}
