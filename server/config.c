/*
 * config.c — acmd's options: one table (ACMD_OPTIONS in acmd.h) gives the flags, the --config file's keys, --help and
 * --print-config. The file is JSON:
 *   {"listen": "127.0.0.1:8080", "workers": 2, ...,            any option, '-' or '_' in its name
 *    "models": [{"name": "fmnist", "path": "models/x.safetensors",
 *                "max_batch": 16, "default_policy": "mean", "default_budget": 0.5,
 *                "beta_floor": 0.3}]}                                     per-model settings (optional)
 * Flags are applied in order: a later flag overrides an earlier one and the file at the point --config appears;
 * --model NAME=PATH adds a model (or replaces the path of one the file named); --beta-floor NAME=BETA sets a model's
 * budget floor (its beta_min from the model file unless set).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acmd.h"

enum { OPT_STR, OPT_INT, OPT_DBL };
typedef struct {
    const char *name, *metavar, *def, *help;
    int type;
    size_t off;
} cfg__opt;

static const cfg__opt cfg__opts[] = {
#define X(type, name, metavar, def, help) {#name, metavar, def, help, OPT_##type, offsetof(acmd_config, name)},
    ACMD_OPTIONS(X)
#undef X
};
#define CFG__N (sizeof cfg__opts / sizeof cfg__opts[0])

static int cfg__fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* "max-batch" and "max_batch" name the same option. */
static const cfg__opt *cfg__find(const char *name, size_t n) {
    for (size_t i = 0; i < CFG__N; i++) {
        const char *o = cfg__opts[i].name;
        if (strlen(o) != n) continue;
        size_t k = 0;
        while (k < n && (o[k] == name[k] || (o[k] == '_' && name[k] == '-'))) k++;
        if (k == n) return &cfg__opts[i];
    }
    return NULL;
}

static int cfg__set(acmd_config *c, const cfg__opt *o, const char *v, char *err, size_t errlen) {
    char *p = (char *)c + o->off, *end;
    errno = 0;
    switch (o->type) {
    case OPT_STR:
        if (strlen(v) >= 512) return cfg__fail(err, errlen, "--%s: value too long", o->name);
        strcpy(p, v);
        return 0;
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end) return cfg__fail(err, errlen, "--%s: not an integer: \"%s\"", o->name, v);
        memcpy(p, &x, sizeof x);
        return 0;
    }
    default: {
        double x = strtod(v, &end);
        if (errno || end == v || *end) return cfg__fail(err, errlen, "--%s: not a number: \"%s\"", o->name, v);
        memcpy(p, &x, sizeof x);
        return 0;
    }
    }
}

void acmd_config_defaults(acmd_config *c) {
    memset(c, 0, sizeof *c);
    char err[64];
    for (size_t i = 0; i < CFG__N; i++) cfg__set(c, &cfg__opts[i], cfg__opts[i].def, err, sizeof err);
}

static acmd_model_conf *cfg__model(acmd_config *c, const char *name, char *err, size_t errlen) {
    for (int i = 0; i < c->n_models; i++)
        if (strcmp(c->models[i].name, name) == 0) return &c->models[i];
    if (c->n_models >= ACMD_MAX_MODELS) {
        cfg__fail(err, errlen, "at most %d models", ACMD_MAX_MODELS);
        return NULL;
    }
    if (!*name || strlen(name) >= sizeof c->models[0].name) {
        cfg__fail(err, errlen, "model name \"%s\" is empty or too long", name);
        return NULL;
    }
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
            cfg__fail(err, errlen, "model name \"%s\": use letters, digits, '-', '_', '.'", name);
            return NULL;
        }
    acmd_model_conf *m = &c->models[c->n_models++];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->default_budget = -1;
    m->beta_floor = -1;
    return m;
}

int acmd_config_load_file(acmd_config *c, const char *path, char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return cfg__fail(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = cfg__fail(err, errlen, "%s: not a JSON object", path);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "models") == 0) {
            if (!json_is_array(v)) {
                rc = cfg__fail(err, errlen, "%s: models must be an array", path);
                goto out;
            }
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                const char *name = json_string_value(json_object_get(e, "name"));
                const char *mp = json_string_value(json_object_get(e, "path"));
                if (!name || !mp) {
                    rc = cfg__fail(err, errlen, "%s: models[%zu] needs \"name\" and \"path\" strings", path, i);
                    goto out;
                }
                acmd_model_conf *m = cfg__model(c, name, err, errlen);
                if (!m) {
                    rc = -1;
                    goto out;
                }
                snprintf(m->path, sizeof m->path, "%s", mp);
                json_t *mb = json_object_get(e, "max_batch"), *dp = json_object_get(e, "default_policy"),
                       *db = json_object_get(e, "default_budget"), *bf = json_object_get(e, "beta_floor");
                if (mb) m->max_batch = (int)json_integer_value(mb);
                if (dp) snprintf(m->default_policy, sizeof m->default_policy, "%s", json_string_value(dp) ? json_string_value(dp) : "?");
                if (db) m->default_budget = json_number_value(db);
                if (bf) m->beta_floor = json_is_number(bf) ? json_number_value(bf) : -2; /* -2: refused by validate */
            }
            continue;
        }
        const cfg__opt *o = cfg__find(key, strlen(key));
        if (!o) {
            rc = cfg__fail(err, errlen, "%s: unknown option \"%s\"", path, key);
            goto out;
        }
        char buf[512];
        if (json_is_string(v)) snprintf(buf, sizeof buf, "%s", json_string_value(v));
        else if (json_is_integer(v)) snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v)) snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
        else {
            rc = cfg__fail(err, errlen, "%s: \"%s\" must be a string or a number", path, key);
            goto out;
        }
        if ((rc = cfg__set(c, o, buf, err, errlen))) goto out;
    }
out:
    json_decref(root);
    return rc;
}

int acmd_config_parse(acmd_config *c, int argc, char **argv, char *err, size_t errlen) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            c->help = 1;
            continue;
        }
        if (strcmp(a, "--print-config") == 0) {
            c->print_config = 1;
            continue;
        }
        if (strcmp(a, "--print-api") == 0) {
            c->print_api = 1;
            continue;
        }
        if (strcmp(a, "--hash-key") == 0 || strncmp(a, "--hash-key=", 11) == 0) {
            const char *v = a[10] == '=' ? a + 11 : i + 1 < argc ? argv[++i] : NULL;
            if (!v || !*v || strlen(v) >= sizeof c->hash_key)
                return cfg__fail(err, errlen, "--hash-key wants the key's NAME (1..63 bytes)");
            snprintf(c->hash_key, sizeof c->hash_key, "%s", v);
            continue;
        }
        if (strncmp(a, "--", 2) != 0) return cfg__fail(err, errlen, "unexpected argument \"%s\" (see --help)", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) return cfg__fail(err, errlen, "%s needs a value", a);
            val = argv[++i];
        }
        if (n == 6 && strncmp(name, "config", 6) == 0) {
            if (acmd_config_load_file(c, val, err, errlen)) return -1;
            continue;
        }
        if (n == 5 && strncmp(name, "model", 5) == 0) {
            const char *e = strchr(val, '=');
            if (!e || e == val || !e[1]) return cfg__fail(err, errlen, "--model wants NAME=PATH, got \"%s\"", val);
            char mname[64];
            if ((size_t)(e - val) >= sizeof mname) return cfg__fail(err, errlen, "--model: name too long");
            memcpy(mname, val, (size_t)(e - val));
            mname[e - val] = 0;
            acmd_model_conf *m = cfg__model(c, mname, err, errlen);
            if (!m) return -1;
            snprintf(m->path, sizeof m->path, "%s", e + 1);
            continue;
        }
        if (n == 10 && strncmp(name, "beta-floor", 10) == 0) {
            const char *e = strchr(val, '=');
            char mname[64], *end;
            if (!e || e == val || (size_t)(e - val) >= sizeof mname)
                return cfg__fail(err, errlen, "--beta-floor wants NAME=BETA, got \"%s\"", val);
            memcpy(mname, val, (size_t)(e - val));
            mname[e - val] = 0;
            const double b = strtod(e + 1, &end);
            if (end == e + 1 || *end || !(b >= 0 && b <= 1))
                return cfg__fail(err, errlen, "--beta-floor %s: BETA must be a number in [0, 1], got \"%s\"", mname, e + 1);
            acmd_model_conf *m = cfg__model(c, mname, err, errlen);
            if (!m) return -1;
            m->beta_floor = b;
            continue;
        }
        const cfg__opt *o = cfg__find(name, n);
        if (!o) return cfg__fail(err, errlen, "unknown option --%.*s (see --help)", (int)n, name);
        if (cfg__set(c, o, val, err, errlen)) return -1;
    }
    return 0;
}

static int cfg__policy_ok(const char *p) {
    return strcmp(p, "argmax") == 0 || strcmp(p, "mean") == 0 || strcmp(p, "cap") == 0;
}

int acmd_config_validate(const acmd_config *c, char *err, size_t errlen) {
    if (c->n_models < 1) return cfg__fail(err, errlen, "no model: give --model NAME=PATH (or models in --config)");
    if (!strchr(c->listen, ':')) return cfg__fail(err, errlen, "--listen wants ADDRESS:PORT, got \"%s\"", c->listen);
    if (!c->tls_cert[0] != !c->tls_key[0]) return cfg__fail(err, errlen, "--tls-cert and --tls-key go together");
    if (c->metrics_auth != 0 && c->metrics_auth != 1) return cfg__fail(err, errlen, "--metrics-auth must be 0 or 1");
    if (c->metrics_auth && !c->auth_file[0]) return cfg__fail(err, errlen, "--metrics-auth 1 needs --auth-file");
    if (c->workers < 0 || c->workers > 256) return cfg__fail(err, errlen, "--workers must be in 0..256");
    if (c->blas_threads < 1 || c->blas_threads > 256) return cfg__fail(err, errlen, "--blas-threads must be in 1..256");
    char berr[256];
    if (acm_backend_check(c->backend, berr, sizeof berr)) return cfg__fail(err, errlen, "--backend: %s", berr);
    if (c->worker_nice < 0 || c->worker_nice > 19) return cfg__fail(err, errlen, "--worker-nice must be in 0..19");
    if (c->max_batch < 1 || c->max_batch > 1024) return cfg__fail(err, errlen, "--max-batch must be in 1..1024");
    if (c->stream_batch < 1 || c->stream_batch > 1024) return cfg__fail(err, errlen, "--stream-batch must be in 1..1024");
    if (!(c->stream_gather_ms >= 0 && c->stream_gather_ms <= 60000))
        return cfg__fail(err, errlen, "--stream-gather-ms must be in [0, 60000]");
    if (c->batch_delay_us < 0) return cfg__fail(err, errlen, "--batch-delay-us must be >= 0");
    if (c->max_queue < 1) return cfg__fail(err, errlen, "--max-queue must be >= 1");
    if (c->max_body_bytes < 1024) return cfg__fail(err, errlen, "--max-body-bytes must be >= 1024");
    if (c->max_buffered_bytes < 0 || (c->max_buffered_bytes > 0 && c->max_buffered_bytes < c->max_body_bytes))
        return cfg__fail(err, errlen, "--max-buffered-bytes must be 0 (no limit) or >= --max-body-bytes (%ld)",
                         c->max_body_bytes);
    if (c->max_image_pixels < 1) return cfg__fail(err, errlen, "--max-image-pixels must be >= 1");
    if (!(c->max_audio_seconds > 0 && c->max_audio_seconds <= 86400))
        return cfg__fail(err, errlen, "--max-audio-seconds must be in (0, 86400]");
    if (c->max_decode_bytes < (8L << 20)) /* a PNG decode alone may keep 4 MiB of ancillary chunks */
        return cfg__fail(err, errlen, "--max-decode-bytes must be >= 8388608");
    if (c->max_connections < 1) return cfg__fail(err, errlen, "--max-connections must be >= 1");
    if (c->max_per_ip < -1) return cfg__fail(err, errlen, "--max-per-ip must be >= 0, or -1 for the default");
    if (!(c->request_timeout > 0)) return cfg__fail(err, errlen, "--request-timeout must be > 0");
    if (!(c->exit_timeout >= 0)) return cfg__fail(err, errlen, "--exit-timeout must be >= 0");
    if (!(c->drain_grace_s >= 0)) return cfg__fail(err, errlen, "--drain-grace-s must be >= 0");
    if (!cfg__policy_ok(c->default_policy)) return cfg__fail(err, errlen, "--default-policy: argmax, mean or cap");
    if (strcmp(c->request_policy, "cap") && strcmp(c->request_policy, "mean"))
        return cfg__fail(err, errlen, "--request-policy: cap or mean");
    if (!(c->default_budget > 0 && c->default_budget <= 1)) return cfg__fail(err, errlen, "--default-budget: (0, 1]");
    if (!(c->default_deadline_ms > 0 && c->default_deadline_ms <= 3600000))
        return cfg__fail(err, errlen, "--default-deadline-ms: (0, 3600000]");
    if (c->min_client_urgency < 0 || c->min_client_urgency > 7) return cfg__fail(err, errlen, "--min-client-urgency: 0..7");
    if (!(c->aging_ms >= 0)) return cfg__fail(err, errlen, "--aging-ms must be >= 0");
    if (!(c->cost_forgetting >= 0.5 && c->cost_forgetting <= 1)) return cfg__fail(err, errlen, "--cost-forgetting: 0.5..1");
    if (strcmp(c->log_format, "json") && strcmp(c->log_format, "text"))
        return cfg__fail(err, errlen, "--log-format: json or text");
    if (strcmp(c->log_level, "error") && strcmp(c->log_level, "warn") && strcmp(c->log_level, "info") &&
        strcmp(c->log_level, "debug"))
        return cfg__fail(err, errlen, "--log-level: error, warn, info or debug");
    for (int i = 0; i < c->n_models; i++) {
        const acmd_model_conf *m = &c->models[i];
        if (!m->path[0]) return cfg__fail(err, errlen, "model %s has no path", m->name);
        if (m->max_batch < 0 || m->max_batch > 1024) return cfg__fail(err, errlen, "model %s: max_batch in 0..1024", m->name);
        if (m->default_policy[0] && !cfg__policy_ok(m->default_policy))
            return cfg__fail(err, errlen, "model %s: default_policy: argmax, mean or cap", m->name);
        if (m->default_budget >= 0 && !(m->default_budget > 0 && m->default_budget <= 1))
            return cfg__fail(err, errlen, "model %s: default_budget in (0, 1]", m->name);
        if (m->beta_floor != -1 && !(m->beta_floor >= 0 && m->beta_floor <= 1))
            return cfg__fail(err, errlen, "model %s: beta_floor must be a number in [0, 1]", m->name);
    }
    return 0;
}

void acmd_config_print(const acmd_config *c, FILE *f) {
    json_t *root = json_object();
    for (size_t i = 0; i < CFG__N; i++) {
        const char *p = (const char *)c + cfg__opts[i].off;
        json_t *v;
        if (cfg__opts[i].type == OPT_STR) v = json_string(p);
        else if (cfg__opts[i].type == OPT_INT) v = json_integer(*(const long *)(const void *)p);
        else v = json_real(*(const double *)(const void *)p);
        json_object_set_new(root, cfg__opts[i].name, v);
    }
    json_t *ms = json_array();
    for (int i = 0; i < c->n_models; i++) {
        const acmd_model_conf *m = &c->models[i];
        json_t *o = json_pack("{s:s, s:s}", "name", m->name, "path", m->path);
        if (m->max_batch) json_object_set_new(o, "max_batch", json_integer(m->max_batch));
        if (m->default_policy[0]) json_object_set_new(o, "default_policy", json_string(m->default_policy));
        if (m->default_budget >= 0) json_object_set_new(o, "default_budget", json_real(m->default_budget));
        if (m->beta_floor >= 0) json_object_set_new(o, "beta_floor", json_real(m->beta_floor));
        json_array_append_new(ms, o);
    }
    json_object_set_new(root, "models", ms);
    json_dumpf(root, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)); /* 0.3, not 0.29999999999999999 */
    fputc('\n', f);
    json_decref(root);
}

/* The default (-1) keeps one remote address from holding every connection slot: a quarter of them at most, so at least
 * four clients can be served however hard one pushes. On a loopback listener every client is a local process (a
 * reverse proxy forwarding many users, a load generator), which a per-address limit would only throttle: none. */
long acmd_config_max_per_ip(const acmd_config *c) {
    if (c->max_per_ip >= 0) return c->max_per_ip;
    if (strncmp(c->listen, "127.", 4) == 0) return 0;
    return c->max_connections >= 4 ? c->max_connections / 4 : 1;
}

void acmd_config_help(FILE *f) {
    fprintf(f, "usage: acmd --model NAME=PATH [--model NAME=PATH ...] [options]\n\n"
               "  --model NAME=PATH           serve the model file PATH as NAME (repeatable)\n"
               "  --beta-floor NAME=BETA      budget floor of model NAME: below it accuracy collapses, so a deadline\n"
               "                              that cannot be met at it is 504 (default: the model file's beta_min)\n"
               "  --config FILE               JSON file with any option below and per-model settings\n"
               "  --print-config              print the effective configuration as JSON (a valid --config) and exit\n"
               "  --print-api                 print the HTTP API (docs/API.md) and exit\n"
               "  --hash-key NAME             print the --auth-file line of the key read from stdin (empty: a new\n"
               "                              random key, printed on stderr) and exit\n"
               "  --help                      this text\n\n"
               "Every option takes its value as --name VALUE or --name=VALUE:\n");
    for (size_t i = 0; i < CFG__N; i++) {
        char flag[96];
        int n = snprintf(flag, sizeof flag, "--%s", cfg__opts[i].name);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_') *p = '-';
        snprintf(flag + n, sizeof flag - (size_t)n, " %s", cfg__opts[i].metavar);
        fprintf(f, "  %-27s %s (default: %s)\n", flag, cfg__opts[i].help, cfg__opts[i].def[0] ? cfg__opts[i].def : "none");
    }
}
