/*
 * image_decode.c — the decode-amplification case of issue 16: an all-zero 16-bit RGBA PNG of SIDE x SIDE pixels
 * (4096: 130 KB of file) decoded to the 28 x 28 grey input of the Fashion-MNIST models. Prints the file size, the
 * decode bound computed from the header (acm_image_decode_bytes), the decode's wall time (best of RUNS) and the
 * process's peak resident memory. The PNG is written with zlib a row at a time, so the peak is the decode's own.
 *
 * Usage: build/bench/image_decode [SIDE] [RUNS]   (defaults 4096, 3)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <zlib.h>

#include "image.h"

static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v; }

/* An all-zero RGBA16 PNG of side x side: signature, IHDR, one IDAT, IEND. */
static uint8_t *zero_png(uint32_t side, size_t *len) {
    const size_t row = 1 + (size_t)side * 8, cap = row * side / 500 + 65536;
    uint8_t *out = malloc(33 + 12 + cap + 12), *zeros = calloc(1, row);
    if (!out || !zeros) return NULL;
    memcpy(out, "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
    put32(out + 16, side), put32(out + 20, side);
    memcpy(out + 24, "\x10\x06\0\0\0", 5); /* 16-bit, RGBA, deflate, no filter method, no interlace */
    put32(out + 29, (uint32_t)crc32(0, out + 12, 17));
    uint8_t *idat = out + 33;
    z_stream z = {0};
    deflateInit(&z, 9);
    z.next_out = idat + 8, z.avail_out = (uInt)cap;
    for (uint32_t y = 0; y < side; y++) {
        z.next_in = zeros, z.avail_in = (uInt)row;
        deflate(&z, y + 1 < side ? Z_NO_FLUSH : Z_FINISH);
    }
    const uint32_t n = (uint32_t)z.total_out;
    deflateEnd(&z);
    free(zeros);
    put32(idat, n);
    memcpy(idat + 4, "IDAT", 4);
    put32(idat + 8 + n, (uint32_t)crc32(0, idat + 4, 4 + n));
    memcpy(idat + 12 + n, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
    *len = 33 + 12 + n + 12;
    return out;
}

int main(int argc, char **argv) {
    const int side = argc > 1 ? atoi(argv[1]) : 4096, runs = argc > 2 ? atoi(argv[2]) : 3;
    if (side < 1 || runs < 1) return fprintf(stderr, "usage: image_decode [SIDE] [RUNS]\n"), 2;
    size_t len;
    uint8_t *png = zero_png((uint32_t)side, &len);
    if (!png) return fprintf(stderr, "out of memory\n"), 1;
    acm_image_params p = {.size = 28, .channels = 1, .mean = {0.286f}, .std = {0.353f}};
    acm_image_info info;
    char err[256];
    if (acm_image_probe(&info, png, len, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    float out[28 * 28];
    double best = 1e300;
    for (int r = 0; r < runs; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (acm_image_to_tensor(out, png, len, &p, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (s < best) best = s;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%dx%d RGBA16 PNG, %zu bytes: decode bound %.2f MiB, decode %.3f s (best of %d), peak RSS %.1f MiB\n", side,
           side, len, acm_image_decode_bytes(&info, &p) / 1048576.0, best, runs, ru.ru_maxrss / 1024.0);
    free(png);
    return 0;
}
