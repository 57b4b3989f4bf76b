/*
 * commands.c — `acm classify`, `acm health`, `acm models`: one request at a time (libcurl easy), human-readable
 * output or --json, exit codes from acmc.h's table. Every message names the file, option or URL it is about.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "acmc.h"
#include "image.h"

#define CMD_MAX_FILE ((size_t)64 << 20) /* above any server's --max-body-bytes we know of; the server says 413 */

/* A string member, "?" when absent (printf never gets NULL). */
static const char *cmd__s(json_t *o, const char *key) {
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "?";
}

int acmc_usage_error(const char *cmd, const char *msg) {
    fprintf(stderr, "acm %s: %s (acm %s --help)\n", cmd, msg, cmd);
    return ACMC_EXIT_USAGE;
}

int acmc_common_opt(acmc_common *c, const char *cmd, int argc, char **argv, int *i) {
    const char *v;
    char err[512];
    int m;
    if (strcmp(argv[*i], "--json") == 0) return c->json = 1;
    if ((m = acmc_opt(argc, argv, i, "--server", &v, err, sizeof err)) != 0) {
        if (m < 0 || acmc_server_url(c->server, sizeof c->server, v, err, sizeof err))
            return -acmc_usage_error(cmd, err);
        return 1;
    }
    if ((m = acmc_opt(argc, argv, i, "--api-key", &v, err, sizeof err)) != 0) {
        if (m < 0 || acmc_set_api_key(v, err, sizeof err)) return -acmc_usage_error(cmd, err);
        return 1;
    }
    if ((m = acmc_opt(argc, argv, i, "--timeout", &v, err, sizeof err)) != 0) {
        if (m < 0 || acmc_parse_double("--timeout", v, 0, 3600, 1, &c->timeout_s, err, sizeof err))
            return -acmc_usage_error(cmd, err);
        return 1;
    }
    return 0;
}

void acmc_common_defaults(acmc_common *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->server, sizeof c->server, "%s", ACMC_DEFAULT_SERVER);
    c->timeout_s = 30;
    char err[128];
    if (acmc_set_api_key(getenv("ACM_API_KEY"), err, sizeof err)) fprintf(stderr, "acm: ACM_API_KEY ignored: %s\n", err + 11);
}

#define CMD_COMMON_HELP                                                                                               \
    "  --server URL        the server (default " ACMC_DEFAULT_SERVER ")\n"                                           \
    "  --timeout S         seconds for each request, connection included (default 30)\n"                              \
    "  --api-key KEY       sent as Authorization: Bearer KEY (default: $ACM_API_KEY; none without it)\n"              \
    "  --json              print JSON instead of text\n"

/* ---- classify ------------------------------------------------------------------------------------------------------- */

static const char *const classify_help =
    "usage: acm classify [options] FILE...\n"
    "Sends each image (PNG, JPEG or PNM) to POST /v1/models/MODEL/classify and prints the label, confidence, top-5,\n"
    "budget requested/applied/realised, FLOPs executed and dense, and the server's and the round trip's timings.\n\n"
    "  --model M           served model name (default " ACMC_DEFAULT_MODEL ")\n"
    "  --budget B          X-Compute-Budget: ceiling on the fraction of learner compute, (0, 1] (default: none, the\n"
    "                      server's default policy)\n"
    "  --budget-min B      X-Compute-Budget-Min: floor, (0, 1] (default: none)\n"
    "  --policy P          X-Compute-Policy: cap, mean or argmax (default: none, the server's)\n"
    "  --deadline-ms D     X-Deadline-Ms: answer within D ms of arrival (default: none)\n"
    "  --priority U        Priority: u=U, RFC 9218 urgency 0 (most urgent) .. 7 (default: none)\n"
    "  --heatmap OUT.png   also ask for the compute map (?explain=1) and draw it over the image into OUT.png; with\n"
    "                      several files, OUT-1.png, OUT-2.png, ... (default: none)\n" CMD_COMMON_HELP
    "--json prints the server's answer with \"file\" and \"client_ms\" added, one line per file.\n";

/* OUT.png -> OUT-3.png */
static void cmd__heatmap_name(char *out, size_t n, const char *base, int index, int nfiles) {
    if (nfiles == 1) {
        snprintf(out, n, "%s", base);
        return;
    }
    const char *dot = strrchr(base, '.'), *slash = strrchr(base, '/');
    if (!dot || (slash && dot < slash)) dot = base + strlen(base);
    snprintf(out, n, "%.*s-%d%s", (int)(dot - base), base, index + 1, dot);
}

static int cmd__write_file(const char *path, const void *p, size_t n, char *err, size_t errlen) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
        snprintf(err, errlen, "%s: cannot write", path);
        if (f) fclose(f);
        return ACMC_EXIT_FAIL;
    }
    return 0;
}

static void cmd__print_classify(const char *file, json_t *j, double client_ms) {
    printf("%s: %s (index %lld), confidence %.1f%%\n", file, cmd__s(j, "label"),
           (long long)json_integer_value(json_object_get(j, "index")),
           100 * json_number_value(json_object_get(j, "confidence")));
    json_t *tk = json_object_get(j, "top_k"), *e;
    size_t i;
    printf("  top-%zu:", json_array_size(tk));
    json_array_foreach(tk, i, e) printf("%s %s %.1f%%", i ? "," : "", cmd__s(e, "label"),
                                        100 * json_number_value(json_object_get(e, "confidence")));
    json_t *req = json_object_get(j, "budget_requested");
    char rq[64];
    if (json_is_number(req)) snprintf(rq, sizeof rq, "%g", json_number_value(req));
    else snprintf(rq, sizeof rq, "none");
    printf("\n  budget: applied %.3f, realised %.3f (requested %s, source %s%s, policy %s)\n",
           json_number_value(json_object_get(j, "budget_applied")),
           json_number_value(json_object_get(j, "budget_realised")), rq,
           cmd__s(j, "budget_source"),
           json_is_true(json_object_get(j, "budget_raised")) ? ", raised to the model's minimum" : "",
           cmd__s(j, "policy"));
    double fl = json_number_value(json_object_get(j, "flops")), fd = json_number_value(json_object_get(j, "flops_dense"));
    printf("  FLOPs: %.4g executed of %.4g dense (%.1f%%)\n", fl, fd, fd > 0 ? 100 * fl / fd : 0.0);
    json_t *t = json_object_get(j, "timing");
    printf("  time: queue %.3f ms, compute %.3f ms, server total %.3f ms, round trip %.3f ms (batch of %lld)\n",
           json_number_value(json_object_get(t, "queue_ms")), json_number_value(json_object_get(t, "compute_ms")),
           json_number_value(json_object_get(t, "total_ms")), client_ms,
           (long long)json_integer_value(json_object_get(j, "batch_size")));
    printf("  model %s, version %s\n", cmd__s(j, "model"),
           cmd__s(j, "model_version"));
}

int acmc_cmd_classify(int argc, char **argv) {
    acmc_common c;
    acmc_common_defaults(&c);
    char model[128] = ACMC_DEFAULT_MODEL, err[4096], hdr[6][128];
    const char *heatmap = NULL, *headers[7] = {0};
    int nh = 0, nfiles = 0;
    char **files = calloc((size_t)argc + 1, sizeof *files);
    if (!files) return ACMC_EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int m = acmc_common_opt(&c, "classify", argc, argv, &i);
        double d;
        long l;
        if (m < 0) {
            free(files);
            return -m;
        }
        if (m) continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(classify_help, stdout);
            free(files);
            return 0;
        }
        int bad = 0;
        if ((m = acmc_opt(argc, argv, &i, "--model", &v, err, sizeof err)) != 0) {
            if (m > 0 && (!*v || strlen(v) >= sizeof model || strpbrk(v, "/?#% ")))
                snprintf(err, sizeof err, "--model: '%s' is not a model name", v), m = -1;
            if (m > 0) snprintf(model, sizeof model, "%s", v);
            bad = m < 0;
        } else if ((m = acmc_opt(argc, argv, &i, "--budget", &v, err, sizeof err)) != 0) {
            bad = m < 0 || acmc_parse_double("--budget", v, 0, 1, 1, &d, err, sizeof err);
            if (!bad) snprintf(hdr[nh], sizeof hdr[nh], "X-Compute-Budget: %s", v), headers[nh] = hdr[nh], nh++;
        } else if ((m = acmc_opt(argc, argv, &i, "--budget-min", &v, err, sizeof err)) != 0) {
            bad = m < 0 || acmc_parse_double("--budget-min", v, 0, 1, 1, &d, err, sizeof err);
            if (!bad) snprintf(hdr[nh], sizeof hdr[nh], "X-Compute-Budget-Min: %s", v), headers[nh] = hdr[nh], nh++;
        } else if ((m = acmc_opt(argc, argv, &i, "--deadline-ms", &v, err, sizeof err)) != 0) {
            bad = m < 0 || acmc_parse_double("--deadline-ms", v, 0, 3600e3, 1, &d, err, sizeof err);
            if (!bad) snprintf(hdr[nh], sizeof hdr[nh], "X-Deadline-Ms: %s", v), headers[nh] = hdr[nh], nh++;
        } else if ((m = acmc_opt(argc, argv, &i, "--priority", &v, err, sizeof err)) != 0) {
            bad = m < 0 || acmc_parse_long("--priority", v, 0, 7, &l, err, sizeof err);
            if (!bad) snprintf(hdr[nh], sizeof hdr[nh], "Priority: u=%ld", l), headers[nh] = hdr[nh], nh++;
        } else if ((m = acmc_opt(argc, argv, &i, "--policy", &v, err, sizeof err)) != 0) {
            if (m > 0 && strcmp(v, "cap") && strcmp(v, "mean") && strcmp(v, "argmax"))
                snprintf(err, sizeof err, "--policy: '%s' is not cap, mean or argmax", v), m = -1;
            bad = m < 0;
            if (!bad) snprintf(hdr[nh], sizeof hdr[nh], "X-Compute-Policy: %s", v), headers[nh] = hdr[nh], nh++;
        } else if ((m = acmc_opt(argc, argv, &i, "--heatmap", &v, err, sizeof err)) != 0) {
            if (m > 0 && !*v) snprintf(err, sizeof err, "--heatmap: empty file name"), m = -1;
            bad = m < 0;
            heatmap = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            snprintf(err, sizeof err, "unknown option '%s'", argv[i]);
            bad = 1;
        } else files[nfiles++] = argv[i];
        if (bad) {
            free(files);
            return acmc_usage_error("classify", err);
        }
        if (nh > 5) { /* every header option given twice or more: the last one counts for the server anyway */
            free(files);
            return acmc_usage_error("classify", "too many budget/deadline/priority options");
        }
    }
    if (!nfiles) {
        free(files);
        return acmc_usage_error("classify", "no image file given");
    }
    char url[1400];
    snprintf(url, sizeof url, "%s/v1/models/%s/classify%s", c.server, model, heatmap ? "?explain=1" : "");
    int worst = 0;
    for (int f = 0; f < nfiles; f++) {
        uint8_t *img;
        size_t len;
        int rc = acmc_read_file(files[f], &img, &len, CMD_MAX_FILE, err, sizeof err);
        acm_image_info info;
        char ierr[512];
        acm_image_format fmt = rc ? ACM_IMAGE_UNKNOWN : acm_image_sniff(img, len);
        if (!rc && fmt == ACM_IMAGE_UNKNOWN) {
            snprintf(err, sizeof err, "%s: not a PNG, JPEG or PNM image", files[f]);
            rc = ACMC_EXIT_INPUT;
        } else if (!rc && acm_image_probe(&info, img, len, ierr, sizeof ierr)) {
            snprintf(err, sizeof err, "%s: %s", files[f], ierr);
            rc = ACMC_EXIT_INPUT;
        }
        acmc_resp r = {0};
        if (!rc) {
            const char *type = fmt == ACM_IMAGE_PNG ? "image/png" : fmt == ACM_IMAGE_JPEG ? "image/jpeg"
                                                                                         : "image/x-portable-anymap";
            rc = acmc_http(url, headers, img, len, type, c.timeout_s, &r, err, sizeof err);
        }
        json_t *j = NULL;
        if (!rc && r.status != 200) {
            char se[900];
            acmc_server_error(&r, se, sizeof se);
            snprintf(err, sizeof err, "%s: the server answered %s", files[f], se);
            rc = ACMC_EXIT_SERVER;
        } else if (!rc && !(j = json_loadb(r.body.data, r.body.len, 0, NULL))) {
            snprintf(err, sizeof err, "%s: the server's answer is not JSON", files[f]);
            rc = ACMC_EXIT_SERVER;
        }
        if (!rc) {
            double client_ms = r.seconds * 1e3;
            json_t *map = json_object_get(j, "compute_map");
            char *map_s = map ? json_dumps(map, JSON_COMPACT) : NULL;
            if (c.json) {
                json_object_set_new(j, "file", json_string(files[f]));
                json_object_set_new(j, "client_ms", json_real(client_ms));
                json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(9));
                putchar('\n');
            } else cmd__print_classify(files[f], j, client_ms);
            if (heatmap) {
                uint8_t *png;
                size_t plen;
                double mean = 0;
                char out[1200];
                cmd__heatmap_name(out, sizeof out, heatmap, f, nfiles);
                if (!map_s) {
                    snprintf(err, sizeof err, "%s: the server sent no compute map", files[f]);
                    rc = ACMC_EXIT_SERVER;
                } else if ((rc = acmc_heatmap_png(img, len, map_s, &png, &plen, &mean, ierr, sizeof ierr)) != 0) {
                    snprintf(err, sizeof err, "%s: heatmap: %s", files[f], ierr);
                } else {
                    rc = cmd__write_file(out, png, plen, err, sizeof err);
                    free(png);
                    if (!rc && !c.json) printf("  heatmap: %s (mean %.1f%% of the learners per patch)\n", out, 100 * mean);
                }
            }
            free(map_s);
        }
        json_decref(j);
        acmc_resp_free(&r);
        free(img);
        if (rc) {
            fprintf(stderr, "acm classify: %s\n", err);
            if (rc > worst) worst = rc;
            if (rc == ACMC_EXIT_UNREACHABLE || rc == ACMC_EXIT_FAIL) break; /* the next file would fare no better */
        }
    }
    fflush(stdout);
    free(files);
    return worst;
}

/* ---- health --------------------------------------------------------------------------------------------------------- */

static const char *const health_help =
    "usage: acm health [options]\n"
    "GET /v2/health/live and /v2/health/ready. Exit status 0 when live and ready, 5 when live but not ready\n"
    "(warming up or draining), 4 when the server cannot be reached.\n\n" CMD_COMMON_HELP;

int acmc_cmd_health(int argc, char **argv) {
    acmc_common c;
    acmc_common_defaults(&c);
    for (int i = 1; i < argc; i++) {
        int m = acmc_common_opt(&c, "health", argc, argv, &i);
        if (m < 0) return -m;
        if (m) continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(health_help, stdout);
            return 0;
        }
        char err[512];
        snprintf(err, sizeof err, "unknown %s '%s'", argv[i][0] == '-' ? "option" : "argument", argv[i]);
        return acmc_usage_error("health", err);
    }
    const char *paths[2] = {"/v2/health/live", "/v2/health/ready"};
    long st[2] = {0, 0};
    double ms[2] = {0, 0};
    char url[1200], err[1400];
    for (int k = 0; k < 2; k++) {
        acmc_resp r;
        snprintf(url, sizeof url, "%s%s", c.server, paths[k]);
        int rc = acmc_http(url, NULL, NULL, 0, NULL, c.timeout_s, &r, err, sizeof err);
        if (rc) {
            fprintf(stderr, "acm health: %s\n", err);
            return rc;
        }
        st[k] = r.status, ms[k] = r.seconds * 1e3;
        acmc_resp_free(&r);
    }
    int live = st[0] == 200, ready = st[1] == 200;
    if (c.json) {
        json_t *o = json_pack("{s:s, s:b, s:b, s:i, s:i, s:f, s:f}", "server", c.server, "live", live, "ready", ready,
                              "live_status", (int)st[0], "ready_status", (int)st[1], "live_ms", ms[0], "ready_ms", ms[1]);
        if (o) json_dumpf(o, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
        putchar('\n');
        json_decref(o);
    }
    else
        printf("%s: live %s (%ld, %.2f ms), ready %s (%ld, %.2f ms)\n", c.server, live ? "yes" : "no", st[0], ms[0],
               ready ? "yes" : "no", st[1], ms[1]);
    return live && ready ? 0 : ACMC_EXIT_SERVER;
}

/* ---- models --------------------------------------------------------------------------------------------------------- */

static const char *const models_help =
    "usage: acm models [options] [NAME...]\n"
    "Server metadata (GET /v2) and the OIP metadata of each named model (GET /v2/models/NAME): versions, platform,\n"
    "inputs, outputs, labels, image size, ACM modules, beta_min, dense FLOPs. OIP v2 has no route that lists the\n"
    "served models, so name them (default: " ACMC_DEFAULT_MODEL ").\n\n" CMD_COMMON_HELP;

static void cmd__print_tensors(const char *what, json_t *arr) {
    size_t i, d;
    json_t *t, *x;
    printf("  %s:", what);
    json_array_foreach(arr, i, t) {
        printf("%s %s %s [", i ? "," : "", cmd__s(t, "name"),
               cmd__s(t, "datatype"));
        json_array_foreach(json_object_get(t, "shape"), d, x) printf("%s%lld", d ? "," : "", (long long)json_integer_value(x));
        printf("]");
    }
    printf("\n");
}

int acmc_cmd_models(int argc, char **argv) {
    acmc_common c;
    acmc_common_defaults(&c);
    const char **names = calloc((size_t)argc + 1, sizeof *names);
    int n = 0;
    if (!names) return ACMC_EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        int m = acmc_common_opt(&c, "models", argc, argv, &i);
        if (m < 0) {
            free(names);
            return -m;
        }
        if (m) continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(models_help, stdout);
            free(names);
            return 0;
        }
        if (argv[i][0] == '-' || strpbrk(argv[i], "/?#% ")) {
            char err[512];
            snprintf(err, sizeof err, "%s '%s'", argv[i][0] == '-' ? "unknown option" : "not a model name:", argv[i]);
            free(names);
            return acmc_usage_error("models", err);
        }
        names[n++] = argv[i];
    }
    if (!n) names[n++] = ACMC_DEFAULT_MODEL;
    char url[1400], err[4096];
    acmc_resp r;
    snprintf(url, sizeof url, "%s/v2", c.server);
    int rc = acmc_http(url, NULL, NULL, 0, NULL, c.timeout_s, &r, err, sizeof err);
    json_t *server = NULL, *models = json_array();
    if (!rc && r.status != 200) {
        char se[900];
        acmc_server_error(&r, se, sizeof se);
        snprintf(err, sizeof err, "%s: the server answered %s", url, se);
        rc = ACMC_EXIT_SERVER;
    } else if (!rc && !(server = json_loadb(r.body.data, r.body.len, 0, NULL))) {
        snprintf(err, sizeof err, "%s: the answer is not JSON", url);
        rc = ACMC_EXIT_SERVER;
    }
    acmc_resp_free(&r);
    if (rc) {
        fprintf(stderr, "acm models: %s\n", err);
        json_decref(models);
        free(names);
        return rc;
    }
    int worst = 0;
    if (!c.json)
        printf("%s: %s %s\n", c.server, cmd__s(server, "name"),
               cmd__s(server, "version"));
    for (int k = 0; k < n; k++) {
        json_t *j = NULL;
        snprintf(url, sizeof url, "%s/v2/models/%s", c.server, names[k]);
        rc = acmc_http(url, NULL, NULL, 0, NULL, c.timeout_s, &r, err, sizeof err);
        if (!rc && r.status != 200) {
            char se[900];
            acmc_server_error(&r, se, sizeof se);
            snprintf(err, sizeof err, "model %s: the server answered %s", names[k], se);
            rc = ACMC_EXIT_SERVER;
        } else if (!rc && !(j = json_loadb(r.body.data, r.body.len, 0, NULL))) {
            snprintf(err, sizeof err, "model %s: the answer is not JSON", names[k]);
            rc = ACMC_EXIT_SERVER;
        }
        acmc_resp_free(&r);
        if (rc) {
            fprintf(stderr, "acm models: %s\n", err);
            if (rc > worst) worst = rc;
            if (rc == ACMC_EXIT_UNREACHABLE) break;
            continue;
        }
        if (c.json) {
            json_array_append_new(models, j);
            continue;
        }
        json_t *x;
        size_t i;
        printf("%s (platform %s)\n  versions:", cmd__s(j, "name"),
               cmd__s(j, "platform"));
        json_array_foreach(json_object_get(j, "versions"), i, x) printf(" %s", json_is_string(x) ? json_string_value(x) : "?");
        printf("\n");
        cmd__print_tensors("inputs", json_object_get(j, "inputs"));
        cmd__print_tensors("outputs", json_object_get(j, "outputs"));
        printf("  image %lld x %lld, %lld channel(s); %lld ACM modules, beta_min %g, %.4g FLOPs dense; default policy "
               "%s, max batch %lld\n  labels:",
               (long long)json_integer_value(json_object_get(j, "image_size")),
               (long long)json_integer_value(json_object_get(j, "image_size")),
               (long long)json_integer_value(json_object_get(j, "channels")),
               (long long)json_integer_value(json_object_get(j, "acm_modules")),
               json_number_value(json_object_get(j, "beta_min")), json_number_value(json_object_get(j, "flops_dense")),
               cmd__s(j, "default_policy"),
               (long long)json_integer_value(json_object_get(j, "max_batch")));
        json_array_foreach(json_object_get(j, "labels"), i, x) printf("%s %s", i ? "," : "", json_is_string(x) ? json_string_value(x) : "?");
        printf("\n");
        json_decref(j);
    }
    if (c.json) {
        json_t *o = json_pack("{s:s, s:o, s:o}", "url", c.server, "server", server, "models", models);
        json_dumpf(o, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(o);
    } else {
        json_decref(server);
        json_decref(models);
    }
    free(names);
    return worst;
}
