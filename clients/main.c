/*
 * main.c — `acm`, the command-line client of acmd: dispatch to the commands (clients/commands.c, clients/bench.c),
 * the top-level help with the exit codes (from the table in acmc.h), libcurl's global set-up.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "acmc.h"

void acmc_usage(FILE *f) {
    fputs("usage: acm COMMAND [options] [arguments]\n"
          "The command-line client of acmd (docs/CLI.md).\n\n"
          "commands:\n"
          "  classify [options] FILE...   classify images: label, confidence, top-5, budget, FLOPs, timings,\n"
          "                               --heatmap OUT.png draws the per-token compute map\n"
          "  transcribe [options] FILE... transcribe audio files (WAV, FLAC, Ogg) with a speech model, several at\n"
          "                               once: text, words, budget, FLOPs, real-time factor, timings\n"
          "  health [options]             is the server live and ready?\n"
          "  models [options] [NAME...]   server and model metadata (OIP v2)\n"
          "  bench [options]              load generator: closed or open loop, latency percentiles, deadline\n"
          "                               attainment, budgets, FLOPs/s, accuracy under load\n"
          "  help [COMMAND]               this text, or a command's options (also: acm COMMAND --help)\n\n"
          "common options: --server URL (default " ACMC_DEFAULT_SERVER "), --json, --timeout S (default 30)\n\n"
          "exit status:\n",
          f);
#define X(name, code, doc) fprintf(f, "  %d  %s\n", code, doc);
    ACMC_EXIT_CODES(X)
#undef X
}

int main(int argc, char **argv) {
    if (argc < 2) {
        acmc_usage(stderr);
        return ACMC_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || (!strcmp(cmd, "help") && argc == 2)) {
        acmc_usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("acm %s (%s)\n", ACMC_VERSION, curl_version());
        return 0;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        fprintf(stderr, "acm: libcurl initialisation failed\n");
        return ACMC_EXIT_FAIL;
    }
    int rc;
    char *help[3] = {NULL, "--help", NULL};
    if (!strcmp(cmd, "help")) { /* acm help COMMAND = acm COMMAND --help */
        cmd = argv[2], argc = 2, help[0] = argv[2], argv = help;
    } else argc--, argv++;
    if (!strcmp(cmd, "classify")) rc = acmc_cmd_classify(argc, argv);
    else if (!strcmp(cmd, "transcribe")) rc = acmc_cmd_transcribe(argc, argv);
    else if (!strcmp(cmd, "health")) rc = acmc_cmd_health(argc, argv);
    else if (!strcmp(cmd, "models")) rc = acmc_cmd_models(argc, argv);
    else if (!strcmp(cmd, "bench")) rc = acmc_cmd_bench(argc, argv);
    else {
        fprintf(stderr, "acm: unknown command '%s' (acm --help lists them)\n", cmd);
        rc = ACMC_EXIT_USAGE;
    }
    curl_global_cleanup();
    return rc;
}
