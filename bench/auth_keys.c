/*
 * auth_keys.c — what the key check costs one request, measured in process (bench/auth.sh, stage 0): the time of
 * acmd_keys_find (one SHA-256 of the presented key, then a 32-byte comparison with every key in the file) for key
 * files of 1, 10, 100 and 1000 keys, valid and unknown keys alternating. A server-level comparison of keys against no
 * keys cannot see this on a shared machine (bench/RESULTS.md, "acmd, part 5"); this bounds it: bench/auth.sh divides
 * it by one request's service time.
 *
 * Usage: auth_keys [ROUNDS]   (default 5; the median of the rounds is printed, one line per file size)
 */
#define BENCH_NAME "auth_keys"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "bench/bench_util.h"
#include "server/acmd.h"

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1 || rounds > 99) bu_die("ROUNDS", "1..99");
    printf("auth_keys: OpenBLAS core %s (unused here); %d rounds, median ns per lookup\n", acm_blas_core(), rounds);
    const int sizes[] = {1, 10, 100, 1000};
    volatile int sink = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        acmd_keys k = {calloc((size_t)sizes[si], sizeof(acmd_key)), sizes[si]};
        if (!k.k) bu_die("calloc", "out of memory");
        for (int i = 0; i < k.n; i++) {
            char key[64];
            acmd_key_defaults(&k.k[i]);
            snprintf(k.k[i].name, sizeof k.k[i].name, "k%d", i);
            const int n = snprintf(key, sizeof key, "bench-key-%08d-0123456789abcdef", i);
            acmd_key_hash(k.k[i].hash, key, (size_t)n);
        }
        const int iters = sizes[si] >= 1000 ? 20000 : 200000;
        double ns[99];
        for (int r = 0; r < rounds; r++) {
            const double t0 = bu_now_s();
            for (int it = 0; it < iters; it++) {
                char key[64]; /* a valid key (the last in the file) and an unknown one, alternating */
                const int n = snprintf(key, sizeof key, "bench-key-%08d-0123456789abcde%c", k.n - 1, it & 1 ? 'f' : 'X');
                sink += acmd_keys_find(&k, key, (size_t)n, NULL);
            }
            ns[r] = (bu_now_s() - t0) * 1e9 / iters;
        }
        printf("keys=%d ns_per_lookup=%.0f\n", k.n, bu_median(ns, rounds));
        free(k.k);
    }
    return sink == 42 ? 1 : 0; /* keeps the lookups */
}
