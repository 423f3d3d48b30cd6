/*
 * pmp_protocol.c - encoder and validating decoder of the pympipool wire
 * format, compiled into both the frontend library and the runtime.
 *
 * Where it sits: the frontend's I/O thread and every group leader of the
 * runtime call these functions on each multipart ZeroMQ message before
 * they look at anything else in it.  The frontend never unpickles, so the
 * checks here are the only thing standing between a foreign or broken peer
 * and the frontend's task bookkeeping.
 *
 * How it works: every integer is read and written one byte at a time in
 * little-endian order (s_get_* / s_put_*), so the format does not depend on
 * the host's endianness, alignment or struct padding, and no struct is ever
 * copied onto the wire.  Decoders check lengths before they read, check
 * every field against what this side knows, and on the first problem fill
 * err with a sentence that names the field and the offending value, set
 * errno = EPROTO and return -1.  Bytes from the peer are never printed raw:
 * s_quote() escapes them, so a hostile message cannot inject control
 * characters into a log.
 *
 * Guarantees: no function here reads outside the buffer it was given, no
 * input makes one crash or allocate more than the input justifies (the rank
 * table is only allocated after its length and frame count have been
 * checked), and arithmetic on untrusted counts is done in 64 bits with
 * explicit bounds so it cannot wrap.
 */
#include "pmp_protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmp_le.h"

/* ---- little-endian helpers (pmp_le.h) ------------------------------------ */

static void s_put_u16(unsigned char *p, uint16_t v)
{
    pmp_le_put(p, v, 2);
}

static void s_put_u32(unsigned char *p, uint32_t v)
{
    pmp_le_put(p, v, 4);
}

static void s_put_u64(unsigned char *p, uint64_t v)
{
    pmp_le_put(p, v, 8);
}

static uint16_t s_get_u16(const unsigned char *p)
{
    return (uint16_t)pmp_le_get(p, 2);
}

static uint32_t s_get_u32(const unsigned char *p)
{
    return (uint32_t)pmp_le_get(p, 4);
}

static uint64_t s_get_u64(const unsigned char *p)
{
    return pmp_le_get(p, 8);
}

/* Copies up to 40 bytes of untrusted text into out as a printable,
 * NUL-terminated string: non-printable bytes become \xNN, and "..." marks
 * a cut.  out must hold 4 * 40 + 4 bytes. */
#define S_QUOTE_MAX 40
#define S_QUOTE_SIZE (4 * S_QUOTE_MAX + 4)
static const char *s_quote(const char *s, size_t len, char out[S_QUOTE_SIZE])
{
    size_t o = 0;
    size_t n = len < S_QUOTE_MAX ? len : S_QUOTE_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out[o++] = (char)c;
        } else {
            snprintf(out + o, 5, "\\x%02x", c);
            o += 4;
        }
    }
    if (n < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* ---- header -------------------------------------------------------------- */

const char *pmp_msg_type_name(int type)
{
    switch (type) {
    case PMP_MSG_HELLO:
        return "hello";
    case PMP_MSG_TASK:
        return "task";
    case PMP_MSG_INIT:
        return "init";
    case PMP_MSG_RESULT:
        return "result";
    case PMP_MSG_ERROR:
        return "error";
    case PMP_MSG_SHUTDOWN:
        return "shutdown";
    case PMP_MSG_GOODBYE:
        return "goodbye";
    case PMP_MSG_DEFINE:
        return "define";
    case PMP_MSG_FORGET:
        return "forget";
    default:
        return "unknown";
    }
}

void pmp_header_encode(const pmp_header_t *hdr, unsigned char buf[PMP_HEADER_SIZE])
{
    buf[0] = PMP_MAGIC_0;
    buf[1] = PMP_MAGIC_1;
    buf[2] = PMP_MAGIC_2;
    buf[3] = PMP_MAGIC_3;
    s_put_u16(buf + 4, PMP_PROTOCOL_VERSION);
    s_put_u16(buf + 6, hdr->type);
    s_put_u64(buf + 8, hdr->task_id);
    s_put_u32(buf + 16, hdr->flags);
    s_put_u32(buf + 20, hdr->nframes);
}

int pmp_header_decode(const void *buf, size_t len, pmp_header_t *hdr, pmp_error_t *err)
{
    const unsigned char *p = buf;
    if (len != PMP_HEADER_SIZE || !p)
        PMP_LE_REJECT(err, "header frame is %zu bytes, expected %d (%s)", p ? len : (size_t)0,
                      PMP_HEADER_SIZE, p && len > PMP_HEADER_SIZE ? "oversized" : "truncated");
    if (p[0] != PMP_MAGIC_0 || p[1] != PMP_MAGIC_1 || p[2] != PMP_MAGIC_2 || p[3] != PMP_MAGIC_3) {
        char q[S_QUOTE_SIZE];
        PMP_LE_REJECT(err, "bad magic 0x%02x%02x%02x%02x (\"%s\"): not a pympipool message", p[0],
                      p[1], p[2], p[3], s_quote((const char *)p, 4, q));
    }
    uint16_t version = s_get_u16(p + 4);
    if (version != PMP_PROTOCOL_VERSION)
        PMP_LE_REJECT(err,
                      "protocol version %u, this side speaks %d: frontend and runtime come from "
                      "different pympipool builds",
                      (unsigned)version, PMP_PROTOCOL_VERSION);
    uint16_t type = s_get_u16(p + 6);
    if (type < PMP_MSG_HELLO || type > PMP_MSG_FORGET)
        PMP_LE_REJECT(err, "unknown message type %u (known: %d..%d)", (unsigned)type, PMP_MSG_HELLO,
                      PMP_MSG_FORGET);
    uint32_t flags = s_get_u32(p + 16);
    if (flags & ~PMP_FLAG_KNOWN_MASK)
        PMP_LE_REJECT(err, "unknown flags 0x%x in %s header (known: 0x%x)",
                      (unsigned)(flags & ~PMP_FLAG_KNOWN_MASK), pmp_msg_type_name(type),
                      (unsigned)PMP_FLAG_KNOWN_MASK);
    uint32_t nframes = s_get_u32(p + 20);
    if (nframes > PMP_MAX_FRAMES)
        PMP_LE_REJECT(err, "%s header announces %u frames, more than the limit of %d",
                      pmp_msg_type_name(type), (unsigned)nframes, PMP_MAX_FRAMES);
    hdr->version = version;
    hdr->type = type;
    hdr->task_id = s_get_u64(p + 8);
    hdr->flags = flags;
    hdr->nframes = nframes;
    return 0;
}

int pmp_header_check(const pmp_header_t *hdr, size_t nreceived, int from_worker, pmp_error_t *err)
{
    int type = hdr->type;
    const char *name = pmp_msg_type_name(type);
    int worker_type = type == PMP_MSG_HELLO || type == PMP_MSG_RESULT || type == PMP_MSG_ERROR ||
                      type == PMP_MSG_GOODBYE;
    int frontend_type = type == PMP_MSG_TASK || type == PMP_MSG_INIT || type == PMP_MSG_SHUTDOWN ||
                        type == PMP_MSG_DEFINE || type == PMP_MSG_FORGET;
    if (!worker_type && !frontend_type)
        PMP_LE_REJECT(err, "unknown message type %d", type);
    if (from_worker && !worker_type)
        PMP_LE_REJECT(err,
                      "unexpected %s message from a worker (a worker sends hello, result, error or "
                      "goodbye)",
                      name);
    if (!from_worker && !frontend_type)
        PMP_LE_REJECT(err,
                      "unexpected %s message from the frontend (the frontend sends task, init, "
                      "define, forget or shutdown)",
                      name);
    if (hdr->nframes != nreceived)
        PMP_LE_REJECT(err, "%s header announces %u frame%s after it, but %zu arrived", name,
                      (unsigned)hdr->nframes, hdr->nframes == 1 ? "" : "s", nreceived);
    switch (type) {
    case PMP_MSG_TASK:
    case PMP_MSG_INIT:
    case PMP_MSG_RESULT:
    case PMP_MSG_DEFINE:
        if (hdr->nframes < 1)
            PMP_LE_REJECT(err, "%s message has no payload frame", name);
        break;
    case PMP_MSG_HELLO:
    case PMP_MSG_ERROR:
        if (hdr->nframes != 1)
            PMP_LE_REJECT(err,
                          "%s message carries %u frames after the header, expected exactly 1 "
                          "(the payload)",
                          name, (unsigned)hdr->nframes);
        break;
    default: /* SHUTDOWN, GOODBYE, FORGET: no payload or one (empty) frame */
        if (hdr->nframes > 1)
            PMP_LE_REJECT(err, "%s message carries %u frames after the header, expected at most 1",
                          name, (unsigned)hdr->nframes);
        break;
    }
    if ((hdr->flags & PMP_FLAG_SHM) && (type == PMP_MSG_TASK || type == PMP_MSG_RESULT)) {
        if (hdr->nframes < 2)
            PMP_LE_REJECT(err,
                          "%s message with the shared-memory flag carries %u frame%s, expected at "
                          "least 2 (the payload and the segment table)",
                          name, (unsigned)hdr->nframes, hdr->nframes == 1 ? "" : "s");
        if (type == PMP_MSG_RESULT && (hdr->flags & PMP_FLAG_PER_RANK))
            PMP_LE_REJECT(err, "result message has both the per-rank and the shared-memory flag");
    }
    if (hdr->task_id == 0 && (type == PMP_MSG_TASK || type == PMP_MSG_INIT ||
                              type == PMP_MSG_RESULT || type == PMP_MSG_ERROR))
        PMP_LE_REJECT(err, "%s message has task id 0 (reserved for hello, shutdown and goodbye)",
                      name);
    if (hdr->task_id == 0 && (type == PMP_MSG_DEFINE || type == PMP_MSG_FORGET))
        PMP_LE_REJECT(err, "%s message has key 0 (a function key must be non-zero)", name);
    return 0;
}

int pmp_header_next(const void *buf, size_t len, size_t nleft, int from_worker, pmp_header_t *hdr,
                    pmp_error_t *err)
{
    if (nleft == 0)
        PMP_LE_REJECT(err, "no frame where a header should start");
    if (pmp_header_decode(buf, len, hdr, err) < 0)
        return -1;
    if (hdr->nframes > nleft - 1)
        PMP_LE_REJECT(err, "%s header announces %u frame%s after it, but %zu arrived",
                      pmp_msg_type_name(hdr->type), (unsigned)hdr->nframes,
                      hdr->nframes == 1 ? "" : "s", nleft - 1);
    return pmp_header_check(hdr, hdr->nframes, from_worker, err);
}

/* ---- hello --------------------------------------------------------------- */

enum { S_INT32, S_INT64, S_TEXT };

typedef struct {
    const char *key;
    int kind;
    size_t offset;
    int32_t min, max; /* S_INT32: the range; min > 0 also makes the key optional, min its default */
} s_hello_field_t;

static const s_hello_field_t s_hello_fields[] = {
    {"group", S_INT32, offsetof(pmp_hello_t, group), 0, 0},
    {"ngroups", S_INT32, offsetof(pmp_hello_t, ngroups), 0, 0},
    {"group_size", S_INT32, offsetof(pmp_hello_t, group_size), 0, 0},
    {"world_size", S_INT32, offsetof(pmp_hello_t, world_size), 0, 0},
    {"world_rank", S_INT32, offsetof(pmp_hello_t, world_rank), 0, 0},
    {"pid", S_INT64, offsetof(pmp_hello_t, pid), 0, 0},
    {"host", S_TEXT, offsetof(pmp_hello_t, host), 0, 0},
    {"python", S_TEXT, offsetof(pmp_hello_t, python_version), 0, 0},
    {"mpi", S_TEXT, offsetof(pmp_hello_t, mpi_version), 0, 0},
    {"runtime", S_TEXT, offsetof(pmp_hello_t, runtime_version), 0, 0},
    {"batch", S_INT32, offsetof(pmp_hello_t, batch), 1, PMP_BATCH_MAX},
    {"pack", S_INT32, offsetof(pmp_hello_t, pack), 1, PMP_BATCH_MAX},
};
#define S_NFIELDS (sizeof s_hello_fields / sizeof s_hello_fields[0])

/* Appends to buf at *pos, failing when it would not leave room for a NUL. */
static int s_append(char *buf, size_t size, size_t *pos, const char *s, size_t n)
{
    if (n >= size - *pos)
        return -1;
    memcpy(buf + *pos, s, n);
    *pos += n;
    return 0;
}

/* The end of a text encoder: NUL-terminates the pos bytes written and
 * returns their count, or (pos = SIZE_MAX: it did not fit, or a length
 * beyond an int) leaves an empty text and fails with ENOSPC. */
static int s_finish_text(char *buf, size_t pos)
{
    if (pos > (size_t)INT32_MAX) {
        buf[0] = '\0';
        errno = ENOSPC;
        return -1;
    }
    buf[pos] = '\0';
    return (int)pos;
}

int pmp_hello_encode(const pmp_hello_t *hello, char *buf, size_t size)
{
    size_t pos = 0;
    if (!buf || size == 0) {
        errno = ENOSPC;
        return -1;
    }
    for (size_t i = 0; i < S_NFIELDS; i++) {
        const s_hello_field_t *f = &s_hello_fields[i];
        const char *base = (const char *)hello + f->offset;
        char num[32];
        const char *value = num;
        size_t vlen;
        if (f->kind == S_INT32) {
            int32_t v;
            memcpy(&v, base, sizeof v);
            if (f->min > 0 && v <= f->min)
                continue; /* an optional key at its default */
            vlen = (size_t)snprintf(num, sizeof num, "%ld", (long)v);
        } else if (f->kind == S_INT64) {
            int64_t v;
            memcpy(&v, base, sizeof v);
            vlen = (size_t)snprintf(num, sizeof num, "%lld", (long long)v);
        } else {
            value = base;
            vlen = strnlen(base, PMP_HELLO_TEXT_MAX);
        }
        size_t start;
        if (s_append(buf, size, &pos, f->key, strlen(f->key)) < 0 ||
            s_append(buf, size, &pos, "=", 1) < 0)
            goto nospace;
        start = pos;
        if (s_append(buf, size, &pos, value, vlen) < 0 || s_append(buf, size, &pos, "\n", 1) < 0)
            goto nospace;
        /* A line break inside a value would start a bogus line. */
        for (size_t k = start; k < start + vlen; k++)
            if (buf[k] == '\n' || buf[k] == '\r')
                buf[k] = ' ';
    }
    return s_finish_text(buf, pos);
nospace:
    return s_finish_text(buf, SIZE_MAX);
}

/* Parses a decimal integer in [min, max]: optional '-', then 1..19 digits,
 * nothing else. */
static int s_parse_int(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (len > 0 && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == len || len - i > 19)
        return -1;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits fit in uint64 */
    }
    if (!neg && v > (uint64_t)INT64_MAX)
        return -1;
    if (neg && v > (uint64_t)INT64_MAX + 1)
        return -1;
    int64_t sv = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    if (sv < min || sv > max)
        return -2;
    *out = sv;
    return 0;
}

/* Copies a text value, cutting it to PMP_HELLO_TEXT_MAX - 1 bytes without
 * splitting a UTF-8 sequence. */
static void s_copy_text(char *dst, const char *v, size_t len)
{
    size_t n = len;
    if (n > PMP_HELLO_TEXT_MAX - 1) {
        n = PMP_HELLO_TEXT_MAX - 1;
        /* v[n] is the first byte dropped; if it continues a sequence, drop
         * that sequence's earlier bytes too. */
        while (n > 0 && ((unsigned char)v[n] & 0xc0u) == 0x80u)
            n--;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

int pmp_hello_decode(const void *buf, size_t len, pmp_hello_t *hello, pmp_error_t *err)
{
    const char *text = buf;
    char q1[S_QUOTE_SIZE], q2[S_QUOTE_SIZE];
    int seen[S_NFIELDS] = {0};
    if (!text && len > 0)
        PMP_LE_REJECT(err, "hello payload is missing");
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul)
        PMP_LE_REJECT(err, "hello payload contains a NUL byte at offset %zu", (size_t)(nul - text));
    memset(hello, 0, sizeof *hello);

    size_t pos = 0;
    size_t lineno = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t linelen = nl ? (size_t)(nl - line) : len - pos;
        pos += linelen + (nl ? 1 : 0);
        lineno++;
        if (linelen > 0 && line[linelen - 1] == '\r')
            linelen--;
        if (linelen == 0)
            continue;
        const char *eq = memchr(line, '=', linelen);
        if (!eq)
            PMP_LE_REJECT(err, "hello line %zu (\"%s\") is not key=value", lineno,
                          s_quote(line, linelen, q1));
        size_t keylen = (size_t)(eq - line);
        const char *value = eq + 1;
        size_t vlen = linelen - keylen - 1;
        size_t i;
        for (i = 0; i < S_NFIELDS; i++)
            if (strlen(s_hello_fields[i].key) == keylen &&
                memcmp(s_hello_fields[i].key, line, keylen) == 0)
                break;
        if (i == S_NFIELDS)
            continue; /* unknown key: a newer runtime may say more */
        const s_hello_field_t *f = &s_hello_fields[i];
        if (seen[i])
            PMP_LE_REJECT(err, "hello repeats key '%s' (line %zu)", f->key, lineno);
        seen[i] = 1;
        char *dst = (char *)hello + f->offset;
        if (f->kind == S_TEXT) {
            s_copy_text(dst, value, vlen);
            continue;
        }
        int64_t v;
        int ranged = f->kind == S_INT32 && f->min < f->max;
        int64_t max = ranged ? f->max : f->kind == S_INT32 ? INT32_MAX : INT64_MAX;
        int64_t min = ranged ? f->min : f->kind == S_INT32 ? INT32_MIN : INT64_MIN;
        int rc = s_parse_int(value, vlen, min, max, &v);
        if (rc == -1)
            PMP_LE_REJECT(err,
                          "hello key '%s' has malformed number \"%s\" (expected decimal digits)",
                          f->key, s_quote(value, vlen, q2));
        if (rc == -2 && ranged)
            PMP_LE_REJECT(err, "hello key '%s' has number %s, out of its range %ld..%ld", f->key,
                          s_quote(value, vlen, q2), (long)min, (long)max);
        if (rc == -2)
            PMP_LE_REJECT(err, "hello key '%s' has number %s, out of range for a %d-bit integer",
                          f->key, s_quote(value, vlen, q2), f->kind == S_INT32 ? 32 : 64);
        if (f->kind == S_INT32) {
            int32_t v32 = (int32_t)v;
            memcpy(dst, &v32, sizeof v32);
        } else {
            memcpy(dst, &v, sizeof v);
        }
    }

    char missing[256] = "";
    size_t mlen = 0;
    int nmissing = 0;
    for (size_t i = 0; i < S_NFIELDS; i++) {
        const s_hello_field_t *f = &s_hello_fields[i];
        if (!seen[i] && f->min > 0) { /* optional: its default */
            memcpy((char *)hello + f->offset, &f->min, sizeof f->min);
            continue;
        }
        if (seen[i])
            continue;
        int n = snprintf(missing + mlen, sizeof missing - mlen, "%s%s", nmissing ? ", " : "",
                         s_hello_fields[i].key);
        if (n > 0 && (size_t)n < sizeof missing - mlen)
            mlen += (size_t)n;
        nmissing++;
    }
    if (nmissing)
        PMP_LE_REJECT(err, "hello is missing required key%s %s", nmissing > 1 ? "s" : "", missing);

    /* Values that cannot describe a real job. */
    if (hello->ngroups < 1)
        PMP_LE_REJECT(err, "hello has ngroups=%ld, out of range (must be >= 1)",
                      (long)hello->ngroups);
    if (hello->group < 0 || hello->group >= hello->ngroups)
        PMP_LE_REJECT(err, "hello has group=%ld, out of range for ngroups=%ld", (long)hello->group,
                      (long)hello->ngroups);
    if (hello->group_size < 1)
        PMP_LE_REJECT(err, "hello has group_size=%ld, out of range (must be >= 1)",
                      (long)hello->group_size);
    if (hello->world_size < hello->group_size)
        PMP_LE_REJECT(err, "hello has world_size=%ld, smaller than group_size=%ld",
                      (long)hello->world_size, (long)hello->group_size);
    if (hello->world_rank < 0 || hello->world_rank >= hello->world_size)
        PMP_LE_REJECT(err, "hello has world_rank=%ld, out of range for world_size=%ld",
                      (long)hello->world_rank, (long)hello->world_size);
    if (hello->pid < 1)
        PMP_LE_REJECT(err, "hello has pid=%lld, out of range (must be >= 1)",
                      (long long)hello->pid);
    return 0;
}

/* ---- the group's ranks in a hello --------------------------------------- */

int pmp_hello_ranks_encode(const pmp_hello_rank_t *ranks, size_t n, char *buf, size_t size)
{
    size_t pos = 0;
    if (!buf || size == 0) {
        errno = ENOSPC;
        return -1;
    }
    buf[0] = '\0';
    if (n == 0) {
        errno = EINVAL;
        return -1;
    }
    if (s_append(buf, size, &pos, PMP_HELLO_RANKS_KEY "=", strlen(PMP_HELLO_RANKS_KEY) + 1) < 0)
        goto nospace;
    for (size_t i = 0; i < n; i++) {
        char num[64];
        int len = snprintf(num, sizeof num, "%s%ld:%lld:", i ? "," : "", (long)ranks[i].world_rank,
                           (long long)ranks[i].pid);
        if (s_append(buf, size, &pos, num, (size_t)len) < 0)
            goto nospace;
        size_t start = pos;
        size_t hlen = strnlen(ranks[i].host, PMP_HELLO_TEXT_MAX - 1);
        if (s_append(buf, size, &pos, ranks[i].host, hlen) < 0)
            goto nospace;
        for (size_t k = start; k < pos; k++) /* the separators cannot be part of a name */
            if (buf[k] == ':' || buf[k] == ',' || buf[k] == '\n' || buf[k] == '\r')
                buf[k] = '_';
    }
    if (s_append(buf, size, &pos, "\n", 1) < 0)
        goto nospace;
    return s_finish_text(buf, pos);
nospace:
    return s_finish_text(buf, SIZE_MAX);
}

/* Decodes one "R:PID:HOST" entry of len bytes. */
static int s_parse_rank(const char *s, size_t len, pmp_hello_rank_t *out, size_t index,
                        pmp_error_t *err)
{
    char q[S_QUOTE_SIZE];
    const char *c1 = memchr(s, ':', len);
    const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - s)) : NULL;
    int64_t rank, pid;
    if (!c2 || c2 + 1 == s + len)
        PMP_LE_REJECT(err, "hello ranks entry %zu (\"%s\") is not rank:pid:host", index,
                      s_quote(s, len, q));
    if (s_parse_int(s, (size_t)(c1 - s), 0, INT32_MAX, &rank) != 0)
        PMP_LE_REJECT(err, "hello ranks entry %zu has a bad rank \"%s\"", index,
                      s_quote(s, (size_t)(c1 - s), q));
    if (s_parse_int(c1 + 1, (size_t)(c2 - c1 - 1), 1, INT64_MAX, &pid) != 0)
        PMP_LE_REJECT(err, "hello ranks entry %zu has a bad pid \"%s\"", index,
                      s_quote(c1 + 1, (size_t)(c2 - c1 - 1), q));
    out->world_rank = (int32_t)rank;
    out->pid = pid;
    s_copy_text(out->host, c2 + 1, (size_t)(s + len - c2 - 1));
    return 0;
}

int pmp_hello_ranks_decode(const void *buf, size_t len, size_t max_ranks, pmp_hello_rank_t **ranks,
                           size_t *n, pmp_error_t *err)
{
    const char *text = buf;
    const char *value = NULL;
    size_t vlen = 0;
    const size_t klen = strlen(PMP_HELLO_RANKS_KEY);
    *ranks = NULL;
    *n = 0;
    for (size_t pos = 0; text && pos < len;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t linelen = nl ? (size_t)(nl - line) : len - pos;
        pos += linelen + (nl ? 1 : 0);
        if (linelen > 0 && line[linelen - 1] == '\r')
            linelen--;
        if (linelen <= klen || line[klen] != '=' || memcmp(line, PMP_HELLO_RANKS_KEY, klen) != 0)
            continue;
        if (value)
            PMP_LE_REJECT(err, "hello repeats key '%s'", PMP_HELLO_RANKS_KEY);
        value = line + klen + 1;
        vlen = linelen - klen - 1;
    }
    if (!value)
        return 0;
    if (memchr(value, '\0', vlen))
        PMP_LE_REJECT(err, "hello key '%s' contains a NUL byte", PMP_HELLO_RANKS_KEY);
    size_t count = 1;
    for (size_t i = 0; i < vlen; i++)
        count += value[i] == ',';
    if (count > max_ranks)
        PMP_LE_REJECT(err, "hello names %zu ranks, more than the %zu of its group", count,
                      max_ranks);
    pmp_hello_rank_t *out = calloc(count, sizeof *out);
    if (!out) {
        pmp_error_set(err, "out of memory decoding the ranks of a hello");
        errno = ENOMEM;
        return -1;
    }
    const char *p = value;
    for (size_t i = 0; i < count; i++) {
        const char *comma = memchr(p, ',', (size_t)(value + vlen - p));
        size_t elen = comma ? (size_t)(comma - p) : (size_t)(value + vlen - p);
        if (s_parse_rank(p, elen, &out[i], i, err) != 0) {
            free(out);
            errno = EPROTO;
            return -1;
        }
        p += elen + 1;
    }
    *ranks = out;
    *n = count;
    return 0;
}

/* ---- rank table ---------------------------------------------------------- */

size_t pmp_rank_table_size(uint32_t nranks)
{
    return 4 + 4 * (size_t)nranks;
}

void pmp_rank_table_encode(uint32_t nranks, const uint32_t *nbuffers, unsigned char *buf)
{
    s_put_u32(buf, nranks);
    for (uint32_t i = 0; i < nranks; i++)
        s_put_u32(buf + 4 + 4 * (size_t)i, nbuffers[i]);
}

int pmp_rank_table_decode(const void *buf, size_t len, uint32_t nframes, uint32_t *nranks,
                          uint32_t **nbuffers, pmp_error_t *err)
{
    const unsigned char *p = buf;
    if (!p || len < 4)
        PMP_LE_REJECT(err,
                      "rank table is %zu bytes, too short for its 4-byte rank count (truncated)",
                      p ? len : (size_t)0);
    uint32_t n = s_get_u32(p);
    if (n == 0)
        PMP_LE_REJECT(err, "rank table has zero ranks");
    /* Compare in entries, not bytes, so that 4 * n cannot overflow. */
    size_t entries = (len - 4) / 4;
    if ((len - 4) % 4 != 0 || entries != n) {
        if (entries < n)
            PMP_LE_REJECT(err, "rank table is %zu bytes, expected %zu for %u ranks (truncated)",
                          len, pmp_rank_table_size(n), (unsigned)n);
        PMP_LE_REJECT(err,
                      "rank table is %zu bytes, expected %zu for %u ranks (%zu trailing bytes)",
                      len, pmp_rank_table_size(n), (unsigned)n, len - pmp_rank_table_size(n));
    }
    /* 1 (the table) + n pickles + sum of buffers, summed in 64 bits and
     * stopped as soon as it passes nframes, so that it cannot wrap. */
    uint64_t total = 1 + (uint64_t)n;
    for (uint32_t i = 0; i < n && total <= nframes; i++)
        total += s_get_u32(p + 4 + 4 * (size_t)i);
    if (total != nframes) {
        if (total > nframes)
            PMP_LE_REJECT(err,
                          "rank table of %u ranks needs more than the %u frames its header "
                          "announces (1 table + %u pickles + out-of-band buffers)",
                          (unsigned)n, (unsigned)nframes, (unsigned)n);
        PMP_LE_REJECT(
            err, "rank table of %u ranks accounts for %llu frames, but its header announces %u",
            (unsigned)n, (unsigned long long)total, (unsigned)nframes);
    }
    uint32_t *out = malloc(sizeof *out * n);
    if (!out) {
        pmp_error_set(err, "out of memory decoding a rank table of %u ranks", (unsigned)n);
        errno = ENOMEM;
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)
        out[i] = s_get_u32(p + 4 + 4 * (size_t)i);
    *nranks = n;
    *nbuffers = out;
    return 0;
}

int pmp_crash_line_find(const char *text, long pid, char *how, size_t size)
{
    char key[64];
    snprintf(key, sizeof key, "(pid %ld) " PMP_CRASH_HOW, pid);
    const char *line = strstr(text, key);
    if (!line || size == 0)
        return 0;
    line += strlen(key) - strlen(PMP_CRASH_HOW);
    size_t len = strcspn(line, "\n");
    snprintf(how, size, "%.*s", (int)(len < size ? len : size - 1), line);
    return 1;
}
