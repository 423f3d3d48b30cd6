/*
 * test_shmref.c - unit test of the segment table (pmp_shmref.h) and of the
 * header checks of PMP_FLAG_SHM: round trips, and every rejection with its
 * reason.  Also the view count helpers, on private memory.
 */
#include "pmp_protocol.h"
#include "pmp_shmref.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmp_check.h"

static void test_round_trip(void)
{
    pmp_shm_ref_t in[3] = {
        {1, 7, 4711, 1, PMP_SHM_DATA_OFFSET, 1},
        {3, 0x7fffffffu, 0x7fffffffu, UINT64_MAX, 0, 128u << 20},
        {4, 9, 2, 5, (uint64_t)1 << 40, 4096},
    };
    unsigned char buf[4 + 3 * PMP_SHM_ENTRY_SIZE];
    CHECK(pmp_shm_table_size(3) == sizeof buf);
    pmp_shm_table_encode(in, 3, buf);
    CHECK(buf[0] == 3 && buf[1] == 0 && buf[4] == 1);
    CHECK(buf[8] == 7); /* fd, little-endian */
    pmp_shm_ref_t out[3];
    size_t n = 0;
    pmp_error_t err;
    CHECK(pmp_shm_table_decode(buf, sizeof buf, 6, out, 3, &n, &err) == 0 && n == 3);
    CHECK(memcmp(in, out, sizeof in) == 0);
    /* counting only, and a short array */
    n = 0;
    CHECK(pmp_shm_table_decode(buf, sizeof buf, 6, NULL, 0, &n, &err) == 0 && n == 3);
    memset(out, 0, sizeof out);
    CHECK(pmp_shm_table_decode(buf, sizeof buf, 6, out, 1, &n, &err) == 0 && n == 3);
    CHECK(out[0].frame == 1 && out[1].frame == 0);
}

static void s_one(pmp_shm_ref_t r, unsigned char *buf)
{
    pmp_shm_table_encode(&r, 1, buf);
}

static void test_rejections(void)
{
    pmp_error_t err;
    size_t n;
    unsigned char buf[4 + 2 * PMP_SHM_ENTRY_SIZE];
    const pmp_shm_ref_t good = {1, 3, 100, 1, 4096, 10};

    CHECK_REJECT(pmp_shm_table_decode(NULL, 0, 3, NULL, 0, &n, &err), err, "0 bytes, too short");
    CHECK_REJECT(pmp_shm_table_decode(buf, 3, 3, NULL, 0, &n, &err), err, "3 bytes, too short");
    memset(buf, 0, 4);
    CHECK_REJECT(pmp_shm_table_decode(buf, 4, 3, NULL, 0, &n, &err), err, "no entries");
    s_one(good, buf);
    CHECK(pmp_shm_table_decode(buf, 4 + PMP_SHM_ENTRY_SIZE, 3, NULL, 0, &n, &err) == 0);
    CHECK_REJECT(pmp_shm_table_decode(buf, 3 + PMP_SHM_ENTRY_SIZE, 3, NULL, 0, &n, &err), err,
                 "of 1 entries is 43 bytes, expected 44");
    CHECK_REJECT(pmp_shm_table_decode(buf, 5 + PMP_SHM_ENTRY_SIZE, 3, NULL, 0, &n, &err), err,
                 "expected 44");
    /* a message of payload + table has no buffer frame to stand for */
    CHECK_REJECT(pmp_shm_table_decode(buf, 4 + PMP_SHM_ENTRY_SIZE, 2, NULL, 0, &n, &err), err,
                 "only 0 buffer frames");
    CHECK_REJECT(pmp_shm_table_decode(buf, 4 + PMP_SHM_ENTRY_SIZE, 1, NULL, 0, &n, &err), err,
                 "only 0 buffer frames");

    pmp_shm_ref_t r = good;
    r.frame = 0;
    s_one(r, buf);
    CHECK_REJECT(pmp_shm_table_decode(buf, 4 + PMP_SHM_ENTRY_SIZE, 3, NULL, 0, &n, &err), err,
                 "names the payload");
    r.frame = 2; /* the table itself in a message of 3 frames */
    s_one(r, buf);
    CHECK_REJECT(pmp_shm_table_decode(buf, 4 + PMP_SHM_ENTRY_SIZE, 3, NULL, 0, &n, &err), err,
                 "names frame 2, but the buffer frames are 1..1");
    r = good;
    r.pid = 0;
    s_one(r, buf);
    CHECK_REJECT(pmp_shm_table_decode(buf, 4 + PMP_SHM_ENTRY_SIZE, 3, NULL, 0, &n, &err), err,
                 "has pid 0");
    r.pid = (uint64_t)INT32_MAX + 1;
    s_one(r, buf);
    CHECK_REJECT(pmp_shm_table_decode(buf, 4 + PMP_SHM_ENTRY_SIZE, 3, NULL, 0, &n, &err), err,
                 "has pid 2147483648");
    r = good;
    r.fd = 0x80000000u;
    s_one(r, buf);
    CHECK_REJECT(pmp_shm_table_decode(buf, 4 + PMP_SHM_ENTRY_SIZE, 3, NULL, 0, &n, &err), err,
                 "has fd 2147483648");
    r = good;
    r.length = 0;
    s_one(r, buf);
    CHECK_REJECT(pmp_shm_table_decode(buf, 4 + PMP_SHM_ENTRY_SIZE, 3, NULL, 0, &n, &err), err,
                 "has length 0");
    r = good;
    r.offset = UINT64_MAX - 5;
    s_one(r, buf);
    CHECK_REJECT(pmp_shm_table_decode(buf, 4 + PMP_SHM_ENTRY_SIZE, 3, NULL, 0, &n, &err), err,
                 "overflows");
    r.offset = (uint64_t)INT64_MAX;
    s_one(r, buf);
    CHECK_REJECT(pmp_shm_table_decode(buf, 4 + PMP_SHM_ENTRY_SIZE, 3, NULL, 0, &n, &err), err,
                 "overflows");

    /* order: strictly increasing, so no buffer is named twice */
    pmp_shm_ref_t two[2] = {good, good};
    two[0].frame = 2;
    two[1].frame = 1;
    pmp_shm_table_encode(two, 2, buf);
    CHECK_REJECT(pmp_shm_table_decode(buf, sizeof buf, 4, NULL, 0, &n, &err), err,
                 "names frame 1 after frame 2 (out of order)");
    two[1].frame = 2;
    pmp_shm_table_encode(two, 2, buf);
    CHECK_REJECT(pmp_shm_table_decode(buf, sizeof buf, 4, NULL, 0, &n, &err), err, "out of order");
    two[0].frame = 1;
    pmp_shm_table_encode(two, 2, buf);
    CHECK(pmp_shm_table_decode(buf, sizeof buf, 4, NULL, 0, &n, &err) == 0 && n == 2);
    CHECK_REJECT(pmp_shm_table_decode(buf, sizeof buf, 3, NULL, 0, &n, &err), err,
                 "2 entries but the message only 1 buffer frames");
}

static void test_header(void)
{
    pmp_error_t err;
    pmp_header_t h = {PMP_PROTOCOL_VERSION, PMP_MSG_TASK, 5, PMP_FLAG_SHM, 2};
    CHECK(pmp_header_check(&h, 2, 0, &err) == 0);
    h.nframes = 1;
    CHECK_REJECT(pmp_header_check(&h, 1, 0, &err), err,
                 "task message with the shared-memory flag carries 1 frame, expected at least 2");
    h.type = PMP_MSG_RESULT;
    CHECK_REJECT(pmp_header_check(&h, 1, 1, &err), err, "result message with the shared-memory");
    h.nframes = 3;
    CHECK(pmp_header_check(&h, 3, 1, &err) == 0);
    h.flags |= PMP_FLAG_PER_RANK;
    CHECK_REJECT(pmp_header_check(&h, 3, 1, &err), err, "both the per-rank and the shared-memory");
    /* the bit means nothing on other types: an INIT with it is checked as before */
    pmp_header_t i = {PMP_PROTOCOL_VERSION, PMP_MSG_INIT, 5, PMP_FLAG_SHM, 1};
    CHECK(pmp_header_check(&i, 1, 0, &err) == 0);
    /* and it decodes */
    unsigned char buf[PMP_HEADER_SIZE];
    pmp_header_encode(&h, buf);
    pmp_header_t back;
    CHECK(pmp_header_decode(buf, sizeof buf, &back, &err) == 0 && back.flags == h.flags);
}

static void test_count(void)
{
    int64_t *segment = calloc(PMP_SHM_DATA_OFFSET / sizeof(int64_t), sizeof(int64_t));
    CHECK(segment != NULL);
    if (!segment)
        return;
    CHECK(pmp_shm_count_load(segment) == 0);
    CHECK(pmp_shm_count_add(segment, 2) == 2);
    CHECK(pmp_shm_count_add(segment, -1) == 1);
    CHECK(pmp_shm_count_load(segment) == 1);
    CHECK(segment[PMP_SHM_COUNT_OFFSET / sizeof(int64_t)] == 1);
    free(segment);
}

int main(void)
{
    test_round_trip();
    test_rejections();
    test_header();
    test_count();
    return pmp_check_verdict("test_shmref");
}
