/*
 * main.c — acmd: the ACM inference server. Parses the configuration (server/config.c), loads the models, serves until
 * SIGTERM and exits 0 after the drain (server/server.c). Exit status 2 for a bad command line or configuration, 1 when
 * a model cannot be loaded or the address cannot be bound.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "acmd.h"
#include "cpu/cpu.h"

int main(int argc, char **argv) {
    acm_blas_init(argc, argv); /* may re-execute the program with OPENBLAS_CORETYPE set (docs/DESIGN.md §4) */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN); /* until the loop handles it (a reload): a SIGHUP during start-up must not kill acmd */
    acmd_config cfg;
    acmd_config_defaults(&cfg);
    char err[1024];
    if (acmd_config_parse(&cfg, argc, argv, err, sizeof err)) {
        fprintf(stderr, "acmd: %s\n", err);
        return 2;
    }
    if (cfg.help) {
        acmd_config_help(stdout);
        return 0;
    }
    if (cfg.print_api) {
        acmd_api_markdown(stdout);
        return 0;
    }
    if (cfg.hash_key[0]) return acmd_hash_key_main(cfg.hash_key, stdin, stdout, stderr);
    if (cfg.print_config) {
        acmd_config_print(&cfg, stdout);
        return 0;
    }
    if (acmd_config_validate(&cfg, err, sizeof err)) {
        fprintf(stderr, "acmd: %s\n", err);
        return 2;
    }
    static acmd_server srv; /* large: not on the stack */
    if (acmd_server_init(&srv, &cfg, err, sizeof err)) {
        fprintf(stderr, "acmd: %s\n", err);
        acmd_server_free(&srv);
        return 1;
    }
    int rc = acmd_server_run(&srv);
    acmd_server_free(&srv);
    return rc;
}
