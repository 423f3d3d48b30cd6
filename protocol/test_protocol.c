/*
 * test_protocol.c - unit test of the wire format (pmp_protocol), run by
 * CTest as unit.protocol (the error and logging helpers it uses have
 * their own test, test_error.c).
 *
 * The decoder is the only thing between a foreign or broken peer and both
 * sides' bookkeeping, so most of this file is about rejection: every way a
 * header, hello text or rank table can be wrong is fed in, and the test
 * asserts not only that it is rejected (-1, errno = EPROTO) but that the
 * reason names the problem, because that sentence is what a user reads in
 * the log.  A few thousand random inputs from a fixed seed check that no
 * input crashes the decoders (this file is also run under ASan/UBSan).
 *
 * No framework: CHECK() records a failure and goes on; the exit status is
 * the verdict.
 */
#include "pmp_error.h"
#include "pmp_protocol.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmp_check.h"

/* Deterministic generator (xorshift64*) so that failures reproduce. */
static uint64_t s_rng = 0x9e3779b97f4a7c15ull;
static uint32_t s_rand(void)
{
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return (uint32_t)((s_rng * 0x2545f4914f6cdd1dull) >> 32);
}

static void s_valid_header(unsigned char buf[PMP_HEADER_SIZE], int type, uint64_t id,
                           uint32_t flags, uint32_t nframes)
{
    pmp_header_t h = {.type = (uint16_t)type, .task_id = id, .flags = flags, .nframes = nframes};
    pmp_header_encode(&h, buf);
}

/* ---- header -------------------------------------------------------------- */

static void test_header_layout(void)
{
    unsigned char buf[PMP_HEADER_SIZE];
    pmp_header_t h = {.version = 77, /* ignored */
                      .type = PMP_MSG_RESULT,
                      .task_id = 0x0102030405060708ull,
                      .flags = PMP_FLAG_PER_RANK,
                      .nframes = 0x0a0b0c0du};
    pmp_header_encode(&h, buf);
    static const unsigned char want[PMP_HEADER_SIZE] = {
        'P',  'M',  'P',  'X',  1,    0,    4,    0,    0x08, 0x07, 0x06, 0x05,
        0x04, 0x03, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00, 0x0d, 0x0c, 0x0b, 0x0a};
    CHECK(memcmp(buf, want, sizeof want) == 0);
}

static void test_header_round_trips(void)
{
    static const uint64_t ids[] = {0, 1, 42, 0xffffffffull, 0xffffffffffffffffull};
    static const uint32_t nframes[] = {0, 1, 2, 1000, PMP_MAX_FRAMES};
    for (int type = PMP_MSG_HELLO; type <= PMP_MSG_FORGET; type++) {
        CHECK(strcmp(pmp_msg_type_name(type), "unknown") != 0);
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
            for (size_t j = 0; j < sizeof nframes / sizeof nframes[0]; j++)
                for (uint32_t flags = 0; flags <= PMP_FLAG_KNOWN_MASK; flags++) {
                    unsigned char buf[PMP_HEADER_SIZE];
                    s_valid_header(buf, type, ids[i], flags, nframes[j]);
                    pmp_header_t out;
                    memset(&out, 0xee, sizeof out);
                    pmp_error_t err = {{0}};
                    CHECK(pmp_header_decode(buf, sizeof buf, &out, &err) == 0);
                    CHECK(out.version == PMP_PROTOCOL_VERSION);
                    CHECK(out.type == type);
                    CHECK(out.task_id == ids[i]);
                    CHECK(out.flags == flags);
                    CHECK(out.nframes == nframes[j]);
                }
    }
    CHECK(strcmp(pmp_msg_type_name(PMP_MSG_TASK), "task") == 0);
    CHECK(strcmp(pmp_msg_type_name(PMP_MSG_GOODBYE), "goodbye") == 0);
    CHECK(strcmp(pmp_msg_type_name(0), "unknown") == 0);
    CHECK(strcmp(pmp_msg_type_name(PMP_MSG_DEFINE), "define") == 0);
    CHECK(strcmp(pmp_msg_type_name(PMP_MSG_FORGET), "forget") == 0);
    CHECK(strcmp(pmp_msg_type_name(10), "unknown") == 0);
    CHECK(strcmp(pmp_msg_type_name(-1), "unknown") == 0);
}

static void test_header_rejections(void)
{
    unsigned char buf[PMP_HEADER_SIZE + 8];
    pmp_header_t h;
    pmp_error_t err;

    s_valid_header(buf, PMP_MSG_TASK, 7, 0, 1);
    buf[PMP_HEADER_SIZE] = 0;
    CHECK_REJECT(pmp_header_decode(buf, 7, &h, &err), err, "header frame is 7 bytes, expected 24");
    CHECK(strstr(err.text, "truncated") != NULL);
    CHECK_REJECT(pmp_header_decode(buf, 0, &h, &err), err, "0 bytes, expected 24");
    CHECK_REJECT(pmp_header_decode(buf, 23, &h, &err), err, "23 bytes");
    CHECK_REJECT(pmp_header_decode(NULL, 24, &h, &err), err, "truncated");
    CHECK_REJECT(pmp_header_decode(buf, 25, &h, &err), err,
                 "header frame is 25 bytes, expected 24");
    CHECK(strstr(err.text, "oversized") != NULL);

    /* NULL err is allowed. */
    errno = 0;
    CHECK(pmp_header_decode(buf, 3, &h, NULL) == -1 && errno == EPROTO);

    s_valid_header(buf, PMP_MSG_TASK, 7, 0, 1);
    buf[4] = 9;
    CHECK_REJECT(pmp_header_decode(buf, PMP_HEADER_SIZE, &h, &err), err,
                 "protocol version 9, this side speaks 1");
    s_valid_header(buf, PMP_MSG_TASK, 7, 0, 1);
    buf[5] = 1; /* version 257: the high byte counts too */
    CHECK_REJECT(pmp_header_decode(buf, PMP_HEADER_SIZE, &h, &err), err, "protocol version 257");

    s_valid_header(buf, PMP_MSG_TASK, 7, 0, 1);
    memcpy(buf, "GET ", 4);
    CHECK_REJECT(pmp_header_decode(buf, PMP_HEADER_SIZE, &h, &err), err, "bad magic 0x47455420");
    CHECK(strstr(err.text, "not a pympipool message") != NULL);
    s_valid_header(buf, PMP_MSG_TASK, 7, 0, 1);
    buf[3] = '\n'; /* control bytes are escaped in the reason */
    CHECK_REJECT(pmp_header_decode(buf, PMP_HEADER_SIZE, &h, &err), err, "PMP\\x0a");

    static const unsigned bad_types[] = {0, 10, 11, 0x100, 0xffff};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        s_valid_header(buf, PMP_MSG_TASK, 7, 0, 1);
        buf[6] = (unsigned char)(bad_types[i] & 0xff);
        buf[7] = (unsigned char)(bad_types[i] >> 8);
        char want[64];
        snprintf(want, sizeof want, "unknown message type %u", bad_types[i]);
        CHECK_REJECT(pmp_header_decode(buf, PMP_HEADER_SIZE, &h, &err), err, want);
    }

    s_valid_header(buf, PMP_MSG_TASK, 7, 0x80, 1);
    CHECK_REJECT(pmp_header_decode(buf, PMP_HEADER_SIZE, &h, &err), err, "unknown flags 0x80");
    CHECK(strstr(err.text, "task header") != NULL);
    CHECK(strstr(err.text, "known: 0x7f") != NULL);
    s_valid_header(buf, PMP_MSG_TASK, 7, PMP_FLAG_FN_KEY | PMP_FLAG_CHUNK | PMP_FLAG_MAP | 0x100,
                   1);
    CHECK_REJECT(pmp_header_decode(buf, PMP_HEADER_SIZE, &h, &err), err, "unknown flags 0x100");
    /* every known bit alone and together decodes */
    static const uint32_t known[] = {PMP_FLAG_ALL_RANKS,
                                     PMP_FLAG_FN_KEY,
                                     PMP_FLAG_CHUNK,
                                     PMP_FLAG_MAP,
                                     PMP_FLAG_STARMAP,
                                     PMP_FLAG_FN_KEY | PMP_FLAG_CHUNK,
                                     PMP_FLAG_FN_KEY | PMP_FLAG_CHUNK | PMP_FLAG_MAP,
                                     PMP_FLAG_FN_KEY | PMP_FLAG_CHUNK | PMP_FLAG_STARMAP,
                                     PMP_FLAG_SHM,
                                     PMP_FLAG_KNOWN_MASK};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        s_valid_header(buf, PMP_MSG_TASK, 7, known[i], 1);
        CHECK(pmp_header_decode(buf, PMP_HEADER_SIZE, &h, &err) == 0 && h.flags == known[i]);
    }
    s_valid_header(buf, PMP_MSG_RESULT, 7, 0x80000001u, 1);
    CHECK_REJECT(pmp_header_decode(buf, PMP_HEADER_SIZE, &h, &err), err,
                 "unknown flags 0x80000000");

    s_valid_header(buf, PMP_MSG_RESULT, 7, 0, PMP_MAX_FRAMES + 1);
    CHECK_REJECT(pmp_header_decode(buf, PMP_HEADER_SIZE, &h, &err), err, "65537 frames");
    CHECK(strstr(err.text, "limit of 65536") != NULL);
    s_valid_header(buf, PMP_MSG_RESULT, 7, 0, 0xffffffffu);
    CHECK_REJECT(pmp_header_decode(buf, PMP_HEADER_SIZE, &h, &err), err, "4294967295 frames");
}

static void test_header_garbage(void)
{
    unsigned char buf[64];
    pmp_header_t h;
    pmp_error_t err;
    int accepted = 0;
    /* Pure noise of any length: always a rejection with a reason. */
    for (int it = 0; it < 4000; it++) {
        size_t len = it % 4 == 0 ? s_rand() % sizeof buf : PMP_HEADER_SIZE;
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)s_rand();
        err.text[0] = '\0';
        errno = 0;
        int rc = pmp_header_decode(buf, len, &h, &err);
        CHECK(rc == -1 && errno == EPROTO && err.text[0] != '\0');
    }
    /* Noise behind a valid magic and version: either rejected with a reason
     * or, when the noise happens to be valid, decoded faithfully. */
    for (int it = 0; it < 4000; it++) {
        s_valid_header(buf, PMP_MSG_TASK, 0, 0, 0);
        for (size_t i = 6; i < PMP_HEADER_SIZE; i++)
            buf[i] = (unsigned char)s_rand();
        if (it % 2) { /* bias towards plausible values */
            buf[6] = (unsigned char)(s_rand() % 12);
            buf[7] = 0;
            buf[17] = buf[18] = buf[19] = 0;
            buf[16] &= 0xf;
            buf[22] = (unsigned char)(s_rand() % 3);
            buf[23] = 0;
        }
        err.text[0] = '\0';
        errno = 0;
        int rc = pmp_header_decode(buf, PMP_HEADER_SIZE, &h, &err);
        if (rc == 0) {
            accepted++;
            unsigned char again[PMP_HEADER_SIZE];
            CHECK(h.type >= PMP_MSG_HELLO && h.type <= PMP_MSG_FORGET);
            CHECK((h.flags & ~PMP_FLAG_KNOWN_MASK) == 0);
            CHECK(h.nframes <= PMP_MAX_FRAMES);
            pmp_header_encode(&h, again);
            CHECK(memcmp(again, buf, PMP_HEADER_SIZE) == 0);
        } else {
            CHECK(rc == -1 && errno == EPROTO && err.text[0] != '\0');
        }
    }
    CHECK(accepted > 100); /* the biased half must reach the accept path */
}

/* Expected outcome of pmp_header_check, written from the contract. */
static int s_check_expect(int type, uint64_t id, size_t announced, size_t received, int from_worker)
{
    int worker_type = type == PMP_MSG_HELLO || type == PMP_MSG_RESULT || type == PMP_MSG_ERROR ||
                      type == PMP_MSG_GOODBYE;
    if (from_worker != worker_type)
        return -1;
    if (announced != received)
        return -1;
    switch (type) {
    case PMP_MSG_TASK:
    case PMP_MSG_INIT:
    case PMP_MSG_RESULT:
    case PMP_MSG_DEFINE:
        if (announced < 1 || id == 0)
            return -1;
        return 0;
    case PMP_MSG_FORGET:
        return announced <= 1 && id != 0 ? 0 : -1;
    case PMP_MSG_ERROR:
        return announced == 1 && id != 0 ? 0 : -1;
    case PMP_MSG_HELLO:
        return announced == 1 ? 0 : -1;
    default:
        return announced <= 1 ? 0 : -1;
    }
}

static void test_header_check(void)
{
    pmp_error_t err;
    for (int type = PMP_MSG_HELLO; type <= PMP_MSG_FORGET; type++)
        for (int from_worker = 0; from_worker <= 1; from_worker++)
            for (uint32_t announced = 0; announced <= 3; announced++)
                for (size_t received = 0; received <= 3; received++)
                    for (uint64_t id = 0; id <= 1; id++) {
                        pmp_header_t h = {PMP_PROTOCOL_VERSION, (uint16_t)type, id, 0, announced};
                        err.text[0] = '\0';
                        errno = 0;
                        int rc = pmp_header_check(&h, received, from_worker, &err);
                        int want = s_check_expect(type, id, announced, received, from_worker);
                        if (rc != want)
                            fprintf(stderr, "check type=%d worker=%d announced=%u got=%zu id=%d\n",
                                    type, from_worker, (unsigned)announced, received, (int)id);
                        CHECK(rc == want);
                        if (rc == -1)
                            CHECK(errno == EPROTO && err.text[0] != '\0');
                    }

    pmp_header_t h = {PMP_PROTOCOL_VERSION, PMP_MSG_TASK, 5, 0, 1};
    CHECK_REJECT(pmp_header_check(&h, 1, 1, &err), err, "unexpected task message from a worker");
    h.type = PMP_MSG_RESULT;
    CHECK_REJECT(pmp_header_check(&h, 1, 0, &err), err,
                 "unexpected result message from the frontend");
    h.type = PMP_MSG_TASK;
    h.nframes = 3;
    CHECK_REJECT(pmp_header_check(&h, 2, 0, &err), err,
                 "task header announces 3 frames after it, but 2 arrived");
    h.nframes = 0;
    CHECK_REJECT(pmp_header_check(&h, 0, 0, &err), err, "task message has no payload frame");
    h.nframes = 1;
    h.task_id = 0;
    CHECK_REJECT(pmp_header_check(&h, 1, 0, &err), err, "task id 0");
    h.type = PMP_MSG_HELLO;
    h.nframes = 2;
    CHECK_REJECT(pmp_header_check(&h, 2, 1, &err), err, "hello message carries 2 frames");
    h.type = PMP_MSG_GOODBYE;
    h.nframes = 2;
    CHECK_REJECT(pmp_header_check(&h, 2, 1, &err), err, "expected at most 1");
    h.type = 99;
    h.nframes = 1;
    CHECK_REJECT(pmp_header_check(&h, 1, 1, &err), err, "unknown message type 99");
    /* DEFINE and FORGET: frontend -> worker, a non-zero key */
    pmp_header_t d = {PMP_PROTOCOL_VERSION, PMP_MSG_DEFINE, 3, 0, 2};
    CHECK(pmp_header_check(&d, 2, 0, &err) == 0);
    CHECK_REJECT(pmp_header_check(&d, 2, 1, &err), err, "unexpected define message from a worker");
    d.nframes = 0;
    CHECK_REJECT(pmp_header_check(&d, 0, 0, &err), err, "define message has no payload frame");
    d.nframes = 1;
    d.task_id = 0;
    CHECK_REJECT(pmp_header_check(&d, 1, 0, &err), err, "define message has key 0");
    d.type = PMP_MSG_FORGET;
    CHECK_REJECT(pmp_header_check(&d, 1, 0, &err), err, "forget message has key 0");
    d.task_id = 3;
    CHECK(pmp_header_check(&d, 1, 0, &err) == 0);
    d.nframes = 0;
    CHECK(pmp_header_check(&d, 0, 0, &err) == 0);
    d.nframes = 2;
    CHECK_REJECT(pmp_header_check(&d, 2, 0, &err), err, "forget message carries 2 frames");
    d.nframes = 1;
    CHECK_REJECT(pmp_header_check(&d, 1, 1, &err), err, "unexpected forget message from a worker");
    /* A large but consistent out-of-band message is fine. */
    pmp_header_t big = {PMP_PROTOCOL_VERSION, PMP_MSG_TASK, 9, PMP_FLAG_ALL_RANKS, PMP_MAX_FRAMES};
    CHECK(pmp_header_check(&big, PMP_MAX_FRAMES, 0, &err) == 0);
}

/* ---- hello --------------------------------------------------------------- */

static pmp_hello_t s_sample_hello(void)
{
    pmp_hello_t h;
    memset(&h, 0, sizeof h);
    h.group = 2;
    h.ngroups = 4;
    h.group_size = 3;
    h.world_size = 12;
    h.world_rank = 6;
    h.pid = 4000000123ll;
    snprintf(h.host, sizeof h.host, "node-7.cluster");
    snprintf(h.python_version, sizeof h.python_version, "3.11.2");
    snprintf(h.mpi_version, sizeof h.mpi_version, "MPICH Version: 4.0.2");
    snprintf(h.runtime_version, sizeof h.runtime_version, "0.1.0");
    return h;
}

static int s_hello_equal(const pmp_hello_t *a, const pmp_hello_t *b)
{
    return a->group == b->group && a->ngroups == b->ngroups && a->group_size == b->group_size &&
           a->world_size == b->world_size && a->world_rank == b->world_rank && a->pid == b->pid &&
           strcmp(a->host, b->host) == 0 && strcmp(a->python_version, b->python_version) == 0 &&
           strcmp(a->mpi_version, b->mpi_version) == 0 &&
           strcmp(a->runtime_version, b->runtime_version) == 0;
}

static int s_hello_decode_str(const char *s, pmp_hello_t *out, pmp_error_t *err)
{
    return pmp_hello_decode(s, strlen(s), out, err);
}

static const char s_good_hello[] = "group=0\nngroups=1\ngroup_size=2\nworld_size=2\n"
                                   "world_rank=0\npid=1234\nhost=h\npython=3.11.2\n"
                                   "mpi=MPICH\nruntime=0.1.0\n";

static void test_hello(void)
{
    pmp_error_t err = {{0}};
    char buf[2048];
    pmp_hello_t in = s_sample_hello(), out;

    int n = pmp_hello_encode(&in, buf, sizeof buf);
    CHECK(n > 0 && (size_t)n == strlen(buf));
    CHECK(strstr(buf, "group=2\n") == buf);
    CHECK(strstr(buf, "\npid=4000000123\n") != NULL);
    CHECK(strstr(buf, "\npython=3.11.2\n") != NULL);
    CHECK(strstr(buf, "\nmpi=MPICH Version: 4.0.2\n") != NULL);
    CHECK(strstr(buf, "\nruntime=0.1.0\n") != NULL);
    CHECK(pmp_hello_decode(buf, (size_t)n, &out, &err) == 0);
    CHECK(s_hello_equal(&in, &out));

    /* Buffer too small: every size below the needed one fails with ENOSPC. */
    for (int size = 0; size <= n; size++) {
        errno = 0;
        CHECK(pmp_hello_encode(&in, buf, (size_t)size) == -1 && errno == ENOSPC);
    }
    CHECK(pmp_hello_encode(&in, buf, (size_t)n + 1) == n);

    /* Line breaks in text fields cannot forge keys. */
    pmp_hello_t evil = s_sample_hello();
    snprintf(evil.host, sizeof evil.host, "a\npid=1\r\nb");
    n = pmp_hello_encode(&evil, buf, sizeof buf);
    CHECK(n > 0);
    CHECK(pmp_hello_decode(buf, (size_t)n, &out, &err) == 0);
    CHECK(out.pid == 4000000123ll);
    CHECK(strcmp(out.host, "a pid=1  b") == 0);

    /* Extreme values round trip. */
    pmp_hello_t ext = s_sample_hello();
    ext.ngroups = INT32_MAX;
    ext.group = INT32_MAX - 1;
    ext.world_size = INT32_MAX;
    ext.group_size = INT32_MAX;
    ext.world_rank = INT32_MAX - 1;
    ext.pid = INT64_MAX;
    ext.host[0] = '\0';
    n = pmp_hello_encode(&ext, buf, sizeof buf);
    CHECK(n > 0 && pmp_hello_decode(buf, (size_t)n, &out, &err) == 0 && s_hello_equal(&ext, &out));

    CHECK(s_hello_decode_str(s_good_hello, &out, &err) == 0);
    CHECK(out.group_size == 2 && out.pid == 1234 && strcmp(out.mpi_version, "MPICH") == 0);

    /* Missing keys, all of them named. */
    CHECK_REJECT(s_hello_decode_str("group=0\nngroups=1\ngroup_size=2\nworld_size=2\n"
                                    "world_rank=0\nhost=h\npython=3\nmpi=m\nruntime=r\n",
                                    &out, &err),
                 err, "missing required key pid");
    CHECK_REJECT(s_hello_decode_str("group=0\nngroups=1\ngroup_size=2\nworld_size=2\n"
                                    "world_rank=0\nhost=h\nruntime=r\n",
                                    &out, &err),
                 err, "missing required keys pid, python, mpi");
    CHECK_REJECT(pmp_hello_decode("", 0, &out, &err), err, "missing required keys group, ngroups");
    CHECK_REJECT(pmp_hello_decode(NULL, 0, &out, &err), err, "missing required keys");

    /* Malformed and out-of-range numbers. */
    static const struct {
        const char *from, *to, *want;
    } bad[] = {
        {"pid=1234", "pid=12x", "key 'pid' has malformed number \"12x\""},
        {"pid=1234", "pid=", "key 'pid' has malformed number \"\""},
        {"pid=1234", "pid= 12", "malformed number"},
        {"pid=1234", "pid=+12", "malformed number"},
        {"pid=1234", "pid=-", "malformed number"},
        {"pid=1234", "pid=0x10", "malformed number"},
        {"pid=1234", "pid=99999999999999999999", "malformed number"},
        {"pid=1234", "pid=9223372036854775808", "malformed number"},
        {"pid=1234", "pid=0", "pid=0, out of range"},
        {"group_size=2", "group_size=2147483648", "out of range for a 32-bit integer"},
        {"group=0", "group=-2147483649", "out of range for a 32-bit integer"},
        {"group=0", "group=-1", "group=-1, out of range"},
        {"group=0", "group=1", "group=1, out of range for ngroups=1"},
        {"ngroups=1", "ngroups=0", "ngroups=0"},
        {"group_size=2", "group_size=0", "group_size=0"},
        {"world_size=2", "world_size=1", "world_size=1, smaller than group_size=2"},
        {"world_rank=0", "world_rank=2", "world_rank=2, out of range for world_size=2"},
        {"host=h", "hostname", "line 7 (\"hostname\") is not key=value"},
        {"group=0", "group=0\ngroup=0", "repeats key 'group'"},
        {"pid=1234", "pid=12\x01", "\"12\\x01\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024];
        const char *at = strstr(s_good_hello, bad[i].from);
        CHECK(at != NULL);
        if (!at)
            continue;
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - s_good_hello), s_good_hello, bad[i].to,
                 at + strlen(bad[i].from));
        CHECK_REJECT(s_hello_decode_str(text, &out, &err), err, bad[i].want);
    }

    /* A NUL byte anywhere is rejected, even inside an unknown key. */
    char withnul[sizeof s_good_hello + 16];
    size_t glen = strlen(s_good_hello);
    memcpy(withnul, s_good_hello, glen);
    memcpy(withnul + glen, "x=a\0b\n", 6);
    CHECK_REJECT(pmp_hello_decode(withnul, glen + 6, &out, &err), err, "NUL byte at offset");
    memcpy(withnul, s_good_hello, glen);
    withnul[3] = '\0';
    CHECK_REJECT(pmp_hello_decode(withnul, glen, &out, &err), err, "NUL byte at offset 3");

    /* Unknown keys are ignored, wherever they are; CRLF and blank lines too. */
    char text[4096];
    snprintf(text, sizeof text, "future_key=whatever\n\n%s=just equals\nx=\r\ncolour=blue",
             s_good_hello);
    CHECK(s_hello_decode_str(text, &out, &err) == 0);
    CHECK(out.world_size == 2 && strcmp(out.host, "h") == 0);
    CHECK(s_hello_decode_str("group=0\r\nngroups=1\r\ngroup_size=1\r\nworld_size=1\r\n"
                             "world_rank=0\r\npid=5\r\nhost=a=b\r\npython=\r\nmpi=m\r\n"
                             "runtime=r",
                             &out, &err) == 0);
    CHECK(strcmp(out.host, "a=b") == 0 && out.python_version[0] == '\0' &&
          strcmp(out.runtime_version, "r") == 0);

    /* Overlong values are cut to PMP_HELLO_TEXT_MAX - 1 bytes. */
    char longhost[1000];
    memset(longhost, 'x', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    snprintf(text, sizeof text, "%shost=%s\n",
             "group=0\nngroups=1\ngroup_size=1\nworld_size=1\n"
             "world_rank=0\npid=5\npython=p\nmpi=m\nruntime=r\n",
             longhost);
    CHECK(s_hello_decode_str(text, &out, &err) == 0);
    CHECK(strlen(out.host) == PMP_HELLO_TEXT_MAX - 1);
    CHECK(out.host[0] == 'x' && out.host[PMP_HELLO_TEXT_MAX - 2] == 'x');
    /* ... without splitting a UTF-8 sequence: 254 ASCII bytes then "é". */
    memset(longhost, 'y', PMP_HELLO_TEXT_MAX - 2);
    memcpy(longhost + PMP_HELLO_TEXT_MAX - 2, "\xc3\xa9zz", 5);
    snprintf(text, sizeof text, "%shost=%s\n",
             "group=0\nngroups=1\ngroup_size=1\nworld_size=1\n"
             "world_rank=0\npid=5\npython=p\nmpi=m\nruntime=r\n",
             longhost);
    CHECK(s_hello_decode_str(text, &out, &err) == 0);
    CHECK(strlen(out.host) == PMP_HELLO_TEXT_MAX - 2);

    /* Noise: never crashes; accepted only if it is a real hello. */
    for (int it = 0; it < 3000; it++) {
        char noise[512];
        size_t len;
        if (it % 2) {
            len = s_rand() % sizeof noise;
            for (size_t i = 0; i < len; i++)
                noise[i] = (char)s_rand();
        } else { /* mutate a valid hello */
            len = glen;
            memcpy(noise, s_good_hello, len);
            for (int k = 0; k < 3; k++)
                noise[s_rand() % len] = "0123456789=\n\0-x"[s_rand() % 15];
        }
        err.text[0] = '\0';
        errno = 0;
        int rc = pmp_hello_decode(noise, len, &out, &err);
        if (rc == 0)
            CHECK(out.ngroups >= 1 && out.group >= 0 && out.group < out.ngroups && out.pid >= 1 &&
                  out.world_rank < out.world_size && memchr(noise, '\0', len) == NULL);
        else
            CHECK(rc == -1 && errno == EPROTO && err.text[0] != '\0');
    }
}

/* ---- rank table ---------------------------------------------------------- */

/* The optional "ranks" line of a hello: round trip, absence, rejections. */
static void test_hello_ranks(void)
{
    pmp_error_t err;
    pmp_hello_rank_t in[3] = {{0, 101, "node-a"}, {1, 102, "node:b,c"}, {7, 9000000000LL, "x"}};
    char buf[512];
    int n = pmp_hello_ranks_encode(in, 3, buf, sizeof buf);
    CHECK(n > 0 && strcmp(buf, "ranks=0:101:node-a,1:102:node_b_c,7:9000000000:x\n") == 0);
    for (int size = 0; size < n + 1; size++)
        CHECK(pmp_hello_ranks_encode(in, 3, buf, (size_t)size) == -1 && errno == ENOSPC);
    CHECK(pmp_hello_ranks_encode(in, 0, buf, sizeof buf) == -1 && errno == EINVAL);

    /* inside a whole hello, among other keys */
    const char *hello = "group=0\nranks=3:44:h1,4:45:h2\r\npid=44\n";
    pmp_hello_rank_t *out = NULL;
    size_t count = 99;
    CHECK(pmp_hello_ranks_decode(hello, strlen(hello), 2, &out, &count, &err) == 0);
    CHECK(count == 2 && out != NULL);
    CHECK(out[0].world_rank == 3 && out[0].pid == 44 && strcmp(out[0].host, "h1") == 0);
    CHECK(out[1].world_rank == 4 && out[1].pid == 45 && strcmp(out[1].host, "h2") == 0);
    free(out);

    /* an older runtime says nothing: no ranks, no error */
    CHECK(pmp_hello_ranks_decode("group=0\nrankz=1\n", 17, 4, &out, &count, &err) == 0);
    CHECK(count == 0 && out == NULL);
    CHECK(pmp_hello_ranks_decode(NULL, 0, 4, &out, &count, &err) == 0 && count == 0);

    const char *bad[][2] = {
        {"ranks=0:1:a\nranks=0:1:a", "repeats key 'ranks'"},
        {"ranks=", "is not rank:pid:host"},
        {"ranks=0:1:", "is not rank:pid:host"},
        {"ranks=0:1", "is not rank:pid:host"},
        {"ranks=0:1:a,", "entry 1"},
        {"ranks=-1:1:a", "bad rank"},
        {"ranks=x:1:a", "bad rank"},
        {"ranks=0:0:a", "bad pid"},
        {"ranks=0:1\x1b:a", "bad pid \"1\\x1b\""},
        {"ranks=0:1:a,1:2:b,2:3:c", "3 ranks, more than the 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out = (pmp_hello_rank_t *)buf; /* must be reset to NULL on failure */
        CHECK_REJECT(pmp_hello_ranks_decode(bad[i][0], strlen(bad[i][0]), 2, &out, &count, &err),
                     err, bad[i][1]);
        CHECK(out == NULL && count == 0);
    }
    /* a round trip of what the encoder wrote */
    n = pmp_hello_ranks_encode(in, 3, buf, sizeof buf);
    CHECK(pmp_hello_ranks_decode(buf, (size_t)n, 3, &out, &count, &err) == 0 && count == 3);
    CHECK(out[2].pid == 9000000000LL && strcmp(out[1].host, "node_b_c") == 0);
    free(out);
}

static void test_rank_table(void)
{
    pmp_error_t err;
    uint32_t nranks = 0, *nb = NULL;
    unsigned char buf[64];

    CHECK(pmp_rank_table_size(0) == 4);
    CHECK(pmp_rank_table_size(3) == 16);
    CHECK(pmp_rank_table_size(0xffffffffu) == 4 + 4 * (size_t)0xffffffffu);

    const uint32_t in[3] = {0, 2, 0x01020304u};
    pmp_rank_table_encode(3, in, buf);
    static const unsigned char want[16] = {3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 4, 3, 2, 1};
    CHECK(memcmp(buf, want, sizeof want) == 0);
    /* 1 table + 3 pickles + 2 + 0x01020304 buffers exceeds PMP_MAX_FRAMES but
     * the decoder itself only compares with nframes. */
    const uint32_t small[3] = {0, 2, 1};
    pmp_rank_table_encode(3, small, buf);
    CHECK(pmp_rank_table_decode(buf, 16, 1 + 3 + 3, &nranks, &nb, &err) == 0);
    CHECK(nranks == 3 && nb && nb[0] == 0 && nb[1] == 2 && nb[2] == 1);
    free(nb);
    nb = NULL;

    const uint32_t one[1] = {0};
    pmp_rank_table_encode(1, one, buf);
    CHECK(pmp_rank_table_decode(buf, 8, 2, &nranks, &nb, &err) == 0);
    CHECK(nranks == 1 && nb && nb[0] == 0);
    free(nb);
    nb = NULL;

    /* Truncated. */
    pmp_rank_table_encode(3, small, buf);
    CHECK_REJECT(pmp_rank_table_decode(buf, 2, 7, &nranks, &nb, &err), err,
                 "rank table is 2 bytes, too short");
    CHECK_REJECT(pmp_rank_table_decode(buf, 15, 7, &nranks, &nb, &err), err,
                 "rank table is 15 bytes, expected 16 for 3 ranks (truncated)");
    CHECK_REJECT(pmp_rank_table_decode(buf, 12, 7, &nranks, &nb, &err), err, "truncated");
    CHECK_REJECT(pmp_rank_table_decode(NULL, 0, 7, &nranks, &nb, &err), err, "too short");
    /* A huge count in a short frame is truncation, not a huge allocation. */
    buf[0] = buf[1] = buf[2] = buf[3] = 0xff;
    CHECK_REJECT(pmp_rank_table_decode(buf, 16, 7, &nranks, &nb, &err), err,
                 "expected 17179869184 for 4294967295 ranks (truncated)");

    /* Trailing bytes. */
    pmp_rank_table_encode(3, small, buf);
    CHECK_REJECT(pmp_rank_table_decode(buf, 17, 7, &nranks, &nb, &err), err,
                 "17 bytes, expected 16 for 3 ranks (1 trailing bytes)");
    CHECK_REJECT(pmp_rank_table_decode(buf, 20, 7, &nranks, &nb, &err), err, "trailing");

    /* Zero ranks. */
    pmp_rank_table_encode(0, NULL, buf);
    CHECK_REJECT(pmp_rank_table_decode(buf, 4, 1, &nranks, &nb, &err), err, "zero ranks");

    /* Frame count mismatch, both ways. */
    pmp_rank_table_encode(3, small, buf);
    CHECK_REJECT(pmp_rank_table_decode(buf, 16, 8, &nranks, &nb, &err), err,
                 "accounts for 7 frames, but its header announces 8");
    CHECK_REJECT(pmp_rank_table_decode(buf, 16, 6, &nranks, &nb, &err), err,
                 "needs more than the 6 frames");
    CHECK_REJECT(pmp_rank_table_decode(buf, 16, 0, &nranks, &nb, &err), err, "0 frames");

    /* Sum of buffer counts that wraps in 32 bits: 1 + 2 + (0xffffffff + 2)
     * is 4 modulo 2^32, and must not be taken for 4 frames. */
    const uint32_t wrap[2] = {0xffffffffu, 2};
    pmp_rank_table_encode(2, wrap, buf);
    CHECK_REJECT(pmp_rank_table_decode(buf, 12, 4, &nranks, &nb, &err), err, "needs more than");
    const uint32_t wrap2[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    pmp_rank_table_encode(4, wrap2, buf);
    CHECK_REJECT(pmp_rank_table_decode(buf, 20, 0xffffffffu, &nranks, &nb, &err), err,
                 "needs more than");
    /* ... and the largest sum that fits exactly is accepted. */
    const uint32_t big[2] = {0xfffffff0u, 0};
    pmp_rank_table_encode(2, big, buf);
    CHECK(pmp_rank_table_decode(buf, 12, 0xfffffff3u, &nranks, &nb, &err) == 0);
    CHECK(nranks == 2 && nb && nb[0] == 0xfffffff0u);
    free(nb);
    nb = NULL;

    /* Noise. */
    for (int it = 0; it < 3000; it++) {
        unsigned char noise[40];
        size_t len = s_rand() % sizeof noise;
        for (size_t i = 0; i < len; i++)
            noise[i] = (unsigned char)(it % 2 ? s_rand() : s_rand() % 3);
        if (len >= 4 && it % 2 == 0) {
            noise[0] = (unsigned char)((len - 4) / 4);
            noise[1] = noise[2] = noise[3] = 0;
        }
        uint32_t nframes = s_rand() % 40;
        err.text[0] = '\0';
        errno = 0;
        int rc = pmp_rank_table_decode(noise, len, nframes, &nranks, &nb, &err);
        if (rc == 0) {
            uint64_t total = 1 + (uint64_t)nranks;
            for (uint32_t i = 0; i < nranks; i++)
                total += nb[i];
            CHECK(nranks >= 1 && len == pmp_rank_table_size(nranks) && total == nframes);
            free(nb);
            nb = NULL;
        } else {
            CHECK(rc == -1 && errno == EPROTO && err.text[0] != '\0');
        }
    }
}

/* ---- a whole message ------------------------------------------------------ */

/* Every message type as one side would build it and the other validate it. */
static void test_message_round_trips(void)
{
    static const struct {
        int type;
        uint64_t id;
        uint32_t flags;
        uint32_t nframes;
        int from_worker;
    } msgs[] = {
        {PMP_MSG_HELLO, 0, 0, 1, 1},
        {PMP_MSG_TASK, 1, 0, 1, 0},
        {PMP_MSG_TASK, 2, PMP_FLAG_ALL_RANKS, 4, 0},
        {PMP_MSG_INIT, 3, 0, 2, 0},
        {PMP_MSG_RESULT, 1, 0, 1, 1},
        {PMP_MSG_RESULT, 2, PMP_FLAG_PER_RANK, 7, 1},
        {PMP_MSG_ERROR, 4, 0, 1, 1},
        {PMP_MSG_SHUTDOWN, 0, 0, 1, 0},
        {PMP_MSG_SHUTDOWN, 0, 0, 0, 0},
        {PMP_MSG_GOODBYE, 0, 0, 1, 1},
        {PMP_MSG_DEFINE, 9, 0, 3, 0},
        {PMP_MSG_FORGET, 9, 0, 0, 0},
        {PMP_MSG_FORGET, 9, 0, 1, 0},
        {PMP_MSG_TASK, 5, PMP_FLAG_FN_KEY, 1, 0},
        {PMP_MSG_TASK, 6, PMP_FLAG_FN_KEY | PMP_FLAG_CHUNK, 2, 0},
        {PMP_MSG_TASK, 7, PMP_FLAG_CHUNK, 1, 0},
        {PMP_MSG_TASK, 8, PMP_FLAG_FN_KEY | PMP_FLAG_CHUNK | PMP_FLAG_MAP, 1, 0},
        {PMP_MSG_TASK, 9, PMP_FLAG_FN_KEY | PMP_FLAG_CHUNK | PMP_FLAG_STARMAP, 3, 0},
    };
    pmp_error_t err = {{0}};
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        unsigned char frame[PMP_HEADER_SIZE];
        s_valid_header(frame, msgs[i].type, msgs[i].id, msgs[i].flags, msgs[i].nframes);
        pmp_header_t h;
        int ok = pmp_header_decode(frame, sizeof frame, &h, &err) == 0 &&
                 pmp_header_check(&h, msgs[i].nframes, msgs[i].from_worker, &err) == 0;
        if (!ok)
            fprintf(stderr, "message %zu (%s): %s\n", i, pmp_msg_type_name(msgs[i].type), err.text);
        CHECK(ok);
        CHECK(h.type == msgs[i].type && h.task_id == msgs[i].id && h.flags == msgs[i].flags);
        /* The same message from the wrong side is refused. */
        CHECK(pmp_header_check(&h, msgs[i].nframes, !msgs[i].from_worker, &err) == -1);
    }
    /* A per-rank result: header, table, then pickles and buffers. */
    const uint32_t nbuf[3] = {1, 0, 2};
    unsigned char table[16];
    pmp_rank_table_encode(3, nbuf, table);
    unsigned char frame[PMP_HEADER_SIZE];
    s_valid_header(frame, PMP_MSG_RESULT, 11, PMP_FLAG_PER_RANK, 1 + 3 + 3);
    pmp_header_t h;
    uint32_t nranks, *nb = NULL;
    CHECK(pmp_header_decode(frame, sizeof frame, &h, &err) == 0);
    CHECK(pmp_header_check(&h, 7, 1, &err) == 0);
    CHECK(pmp_rank_table_decode(table, sizeof table, h.nframes, &nranks, &nb, &err) == 0);
    CHECK(nranks == 3 && nb && nb[2] == 2);
    free(nb);
}

/* The crash line: what the runtime formats is what the frontend finds, by
 * pid, among other lines; another pid's line or none gives nothing. */
static void test_crash_line(void)
{
    char line[256], text[1024], how[64];
    snprintf(line, sizeof line, PMP_CRASH_LINE_FORMAT "11 (Segmentation fault)", "prog", 3, 4,
             "node7", 4242L);
    CHECK(strcmp(line, "prog: rank 3 of 4 on host node7 (pid 4242) was killed by signal 11 "
                       "(Segmentation fault)") == 0);
    snprintf(text, sizeof text, "noise\nmore (pid 42) was killed by signal 9 (Killed)\n%s\nafter\n",
             line);
    CHECK(pmp_crash_line_find(text, 4242, how, sizeof how) == 1);
    CHECK(strcmp(how, "was killed by signal 11 (Segmentation fault)") == 0);
    CHECK(pmp_crash_line_find(text, 42, how, sizeof how) == 1);
    CHECK(strcmp(how, "was killed by signal 9 (Killed)") == 0);
    CHECK(pmp_crash_line_find(text, 424, how, sizeof how) == 0);
    CHECK(pmp_crash_line_find("", 4242, how, sizeof how) == 0);
    char small[8];
    CHECK(pmp_crash_line_find(text, 4242, small, sizeof small) == 1 && strlen(small) == 7);
}

/* ---- batches -------------------------------------------------------------- */

/* Several protocol messages in one ZeroMQ message are split by
 * pmp_header_next; the hello's optional batch key. */
static void test_batch(void)
{
    pmp_error_t err = {{0}};
    pmp_header_t h;
    /* frames of a batch: TASK 1 (payload), FORGET 9 (nothing), TASK 2
     * (payload + a buffer) */
    unsigned char t1[PMP_HEADER_SIZE], f9[PMP_HEADER_SIZE], t2[PMP_HEADER_SIZE];
    s_valid_header(t1, PMP_MSG_TASK, 1, 0, 1);
    s_valid_header(f9, PMP_MSG_FORGET, 9, 0, 0);
    s_valid_header(t2, PMP_MSG_TASK, 2, 0, 2);
    const unsigned char *frames[] = {t1, (const unsigned char *)"p", f9, t2, t1, t1};
    size_t sizes[] = {PMP_HEADER_SIZE, 1, PMP_HEADER_SIZE, PMP_HEADER_SIZE, 1, 1};
    size_t n = 6, at = 0, k = 0;
    uint64_t ids[3];
    while (at < n) {
        CHECK(pmp_header_next(frames[at], sizes[at], n - at, 0, &h, &err) == 0);
        CHECK(k < 3);
        ids[k++] = h.task_id;
        at += 1 + h.nframes;
    }
    CHECK(at == n && k == 3 && ids[0] == 1 && ids[1] == 9 && ids[2] == 2);
    /* the last message announces more frames than are left */
    CHECK_REJECT(pmp_header_next(t2, PMP_HEADER_SIZE, 2, 0, &h, &err), err,
                 "task header announces 2 frames after it, but 1 arrived");
    CHECK_REJECT(pmp_header_next(t2, PMP_HEADER_SIZE, 0, 0, &h, &err), err, "no frame");
    /* a payload where a header should start, a type from the wrong side */
    CHECK_REJECT(pmp_header_next("p", 1, 3, 0, &h, &err), err, "header frame is 1 bytes");
    CHECK_REJECT(pmp_header_next(t1, PMP_HEADER_SIZE, 2, 1, &h, &err), err,
                 "unexpected task message from a worker");
    /* every check of pmp_header_check holds inside a batch too */
    unsigned char t0[PMP_HEADER_SIZE];
    s_valid_header(t0, PMP_MSG_TASK, 0, 0, 1);
    CHECK_REJECT(pmp_header_next(t0, PMP_HEADER_SIZE, 5, 0, &h, &err), err, "task id 0");

    /* the hello's batch: optional (1), written only above 1, 1..PMP_BATCH_MAX */
    char buf[2048];
    pmp_hello_t in = s_sample_hello(), out;
    in.batch = 1;
    int len = pmp_hello_encode(&in, buf, sizeof buf);
    CHECK(len > 0 && strstr(buf, "batch=") == NULL);
    CHECK(pmp_hello_decode(buf, (size_t)len, &out, &err) == 0 && out.batch == 1);
    in.batch = PMP_BATCH_MAX;
    len = pmp_hello_encode(&in, buf, sizeof buf);
    CHECK(len > 0 && strstr(buf, "\nbatch=64\n") != NULL);
    CHECK(pmp_hello_decode(buf, (size_t)len, &out, &err) == 0 && out.batch == PMP_BATCH_MAX);
    CHECK(s_hello_equal(&in, &out));
    static const char *const bad[][2] = {
        {"batch=0\n", "out of its range 1..64"},       {"batch=65\n", "out of its range 1..64"},
        {"batch=-3\n", "out of its range 1..64"},      {"batch=x\n", "malformed number"},
        {"batch=2\nbatch=2\n", "repeats key 'batch'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        in.batch = 1;
        len = pmp_hello_encode(&in, buf, sizeof buf);
        CHECK(len > 0);
        snprintf(buf + len, sizeof buf - (size_t)len, "%s", bad[i][0]);
        CHECK_REJECT(s_hello_decode_str(buf, &out, &err), err, bad[i][1]);
    }
}

int main(void)
{
    test_header_layout();
    test_header_round_trips();
    test_header_rejections();
    test_header_garbage();
    test_header_check();
    test_batch();
    test_hello();
    test_hello_ranks();
    test_rank_table();
    test_message_round_trips();
    test_crash_line();
    return pmp_check_verdict("test_protocol");
}
