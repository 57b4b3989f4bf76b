/*
 * test_arena.c — server/arena.c: small blocks from chunks, large blocks that grow and die early, adopted library
 * blocks, and one free for all (leaks show under ASan: make SANITIZE=address,undefined ...).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/acmd.h"

Test(arena, small_blocks_are_aligned_distinct_and_kept) {
    acmd_arena a = {0};
    char *p[200];
    for (int i = 0; i < 200; i++) {
        p[i] = acmd_arena_alloc(&a, 1 + (size_t)i % 100);
        cr_assert_not_null(p[i]);
        cr_expect_eq((uintptr_t)p[i] % 16, 0);
        memset(p[i], i, 1 + (size_t)i % 100);
    }
    for (int i = 0; i < 200; i++)
        for (size_t k = 0; k < 1 + (size_t)i % 100; k++) cr_assert_eq((unsigned char)p[i][k], i, "block %d byte %zu", i, k);
    acmd_arena_free(&a);
    cr_expect_eq(a.n, 0);
    cr_expect_null(a.blk);
}

Test(arena, a_body_grows_and_a_decoded_input_dies_early) {
    acmd_arena a = {0};
    uint8_t *body = NULL;
    size_t len = 0;
    for (int i = 0; i < 10; i++) { /* a body arriving in pieces */
        uint8_t *b = acmd_arena_realloc(&a, body, len, len + 5000);
        cr_assert_not_null(b);
        memset(b + len, i, 5000);
        body = b, len += 5000;
    }
    for (size_t k = 0; k < len; k++) cr_assert_eq(body[k], k / 5000);
    float *px = acmd_arena_realloc(&a, NULL, 0, 1 << 20);
    cr_assert_not_null(px);
    const size_t held = a.n;
    acmd_arena_release(&a, px);
    cr_expect_eq(a.n, held - 1);
    acmd_arena_release(&a, NULL);
    acmd_arena_free(&a);
}

Test(arena, a_small_block_grown_is_copied_and_adopted_blocks_are_freed) {
    acmd_arena a = {0};
    char *s = acmd_arena_alloc(&a, 6);
    memcpy(s, "hello", 6);
    char *t = acmd_arena_realloc(&a, s, 5, 7); /* a piece of a chunk: copied into a block of its own */
    cr_assert_not_null(t);
    cr_expect_eq(memcmp(t, "hello", 5), 0);
    char *lib = strdup("from a library");
    cr_expect_eq(acmd_arena_adopt(&a, lib), lib);
    cr_expect_null(acmd_arena_adopt(&a, NULL));
    acmd_arena_free(&a);
}
