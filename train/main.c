/*
 * acm-train — the local model tool. Dispatches to the sub-commands of train/commands.h.
 */
#include <stdio.h>
#include <string.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "train/commands.h"

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train COMMAND [options]   (acm-train COMMAND --help for its options)\n\ncommands:\n");
#define X(name, fn, help) fprintf(f, "  %-14s %s\n", name, help);
    ACM_TRAIN_COMMANDS(X)
#undef X
}

int main(int argc, char **argv) {
    acm_blas_init(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
#define X(name, fn, help) \
    if (!strcmp(argv[1], name)) return fn(argc - 1, argv + 1);
    ACM_TRAIN_COMMANDS(X)
#undef X
    fprintf(stderr, "acm-train: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
