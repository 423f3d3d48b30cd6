/*
 * fuzz_replay.c - the plain driver of the protocol fuzz harness, built in
 * every configuration (any compiler, no libFuzzer needed).
 *
 * Why it exists: the libFuzzer target only exists in a clang build with
 * -DPYMPIPOOL_FUZZ=ON, but the inputs it has found (and the seeds it starts
 * from) should keep being checked everywhere, including under gcc with
 * ASan/UBSan.  This driver runs the same LLVMFuzzerTestOneInput over files,
 * and it owns the seed corpus: the seeds are made by the real encoders
 * (pmp_fuzz_seeds_new), written once into protocol/fuzz_corpus/ and checked
 * by CTest to still be what the encoders produce.
 *
 *   fuzz_replay FILE|DIR...        run every file (a directory: its regular
 *                                  files) through the harness; an invariant
 *                                  violation aborts, naming the file first
 *   fuzz_replay --write-seeds DIR  (re)write the seed files into DIR
 *   fuzz_replay --check-seeds DIR  fail unless DIR holds every seed file
 *                                  with exactly the bytes the encoders give
 *
 * Exit status 0 on success, 1 on a failed check or an unreadable file.
 */
#include "fuzz_protocol.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int s_read_file(const char *path, unsigned char **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        unsigned char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        errno = buf ? EIO : ENOMEM;
        return -1;
    }
    *data = buf;
    *size = n;
    return 0;
}

static int s_run_file(const char *path, size_t *count)
{
    unsigned char *data;
    size_t size;
    if (s_read_file(path, &data, &size) < 0) {
        fprintf(stderr, "fuzz_replay: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* Named first, so that an abort in the harness says which input. */
    fprintf(stderr, "fuzz_replay: %s (%zu bytes)\n", path, size);
    /* An exact-size copy, so that ASan sees a read past the input. */
    unsigned char *exact = malloc(size ? size : 1);
    if (!exact) {
        free(data);
        return -1;
    }
    memcpy(exact, data, size);
    free(data);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    (*count)++;
    return 0;
}

static int s_run_path(const char *path, size_t *count)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return s_run_file(path, count);
    DIR *dir = opendir(path);
    if (!dir) {
        fprintf(stderr, "fuzz_replay: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && s_run_file(full, count) < 0)
            rc = -1;
    }
    closedir(dir);
    return rc;
}

static int s_seeds(const char *dir, int write)
{
    size_t n;
    pmp_fuzz_seed_t *seeds = pmp_fuzz_seeds_new(&n);
    if (!seeds) {
        fprintf(stderr, "fuzz_replay: cannot build the seeds: %s\n", strerror(errno));
        return 1;
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, seeds[i].name);
        if (write) {
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(seeds[i].data, 1, seeds[i].size, f) != seeds[i].size ||
                fclose(f) != 0) {
                fprintf(stderr, "fuzz_replay: cannot write %s: %s\n", path, strerror(errno));
                failed = 1;
            }
            continue;
        }
        unsigned char *data;
        size_t size;
        if (s_read_file(path, &data, &size) < 0) {
            fprintf(stderr,
                    "fuzz_replay: seed %s is missing (%s); run fuzz_replay --write-seeds %s\n",
                    path, strerror(errno), dir);
            failed = 1;
            continue;
        }
        if (size != seeds[i].size || memcmp(data, seeds[i].data, size) != 0) {
            fprintf(stderr,
                    "fuzz_replay: seed %s differs from what the encoders produce; run "
                    "fuzz_replay --write-seeds %s\n",
                    path, dir);
            failed = 1;
        }
        free(data);
    }
    if (!failed)
        printf("fuzz_replay: %zu seed files %s %s\n", n, write ? "written to" : "match in", dir);
    pmp_fuzz_seeds_free(seeds, n);
    return failed;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0)
        return s_seeds(argv[2], 1);
    if (argc == 3 && strcmp(argv[1], "--check-seeds") == 0)
        return s_seeds(argv[2], 0);
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: fuzz_replay FILE|DIR... | --write-seeds DIR | --check-seeds DIR\n");
        return 2;
    }
    size_t count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++)
        if (s_run_path(argv[i], &count) < 0)
            rc = 1;
    printf("fuzz_replay: %zu inputs ran through the harness without a broken invariant\n", count);
    if (count == 0) {
        fprintf(stderr, "fuzz_replay: no input found\n");
        rc = 1;
    }
    return rc;
}
