/*
 * config_table.c — parsing, printing and help for the configuration key tables (see config_table.h).
 */
#include "train/config_table.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

int acmt_config_keys_apply(const acmt_config_key *keys, int n, void *c, size_t str_size, const json_t *o, char *err,
                           size_t errlen) {
    if (!json_is_object(o)) {
        snprintf(err, errlen, "configuration: not a JSON object");
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)o, key, val) {
        const acmt_config_key *f = NULL;
        for (int i = 0; i < n; i++)
            if (!strcmp(keys[i].key, key)) f = &keys[i];
        if (!f) {
            snprintf(err, errlen, "configuration: unknown key '%s'", key);
            return -1;
        }
        char *p = (char *)c + f->off;
        if (f->kind == ACMT_KEY_STR) {
            if (!json_is_string(val) || strlen(json_string_value(val)) >= str_size) {
                snprintf(err, errlen, "configuration: '%s' must be a string (under %zu bytes)", key, str_size);
                return -1;
            }
            snprintf(p, str_size, "%s", json_string_value(val));
            continue;
        }
        int integral = f->kind == ACMT_KEY_INT || f->kind == ACMT_KEY_I64;
        if (!json_is_number(val) || (integral && !json_is_integer(val))) {
            snprintf(err, errlen, "configuration: '%s' must be %s", key, integral ? "an integer" : "a number");
            return -1;
        }
        double x = json_number_value(val);
        if (x < f->lo || x > f->hi) {
            snprintf(err, errlen, "configuration: '%s' = %g outside [%g, %g]", key, x, f->lo, f->hi);
            return -1;
        }
        if (f->kind == ACMT_KEY_INT) *(int *)p = (int)json_integer_value(val);
        else if (f->kind == ACMT_KEY_I64) *(int64_t *)p = (int64_t)json_integer_value(val);
        else *(double *)p = x;
    }
    return 0;
}

json_t *acmt_config_keys_json(const acmt_config_key *keys, int n, const void *c) {
    json_t *o = json_object();
    for (int i = 0; i < n; i++) {
        const char *p = (const char *)c + keys[i].off;
        switch (keys[i].kind) {
        case ACMT_KEY_INT: json_object_set_new(o, keys[i].key, json_integer(*(const int *)p)); break;
        case ACMT_KEY_I64: json_object_set_new(o, keys[i].key, json_integer(*(const int64_t *)p)); break;
        case ACMT_KEY_DBL: json_object_set_new(o, keys[i].key, json_real(*(const double *)p)); break;
        case ACMT_KEY_STR: json_object_set_new(o, keys[i].key, json_string(p)); break;
        }
    }
    return o;
}

void acmt_config_keys_help(const acmt_config_key *keys, int n, const void *defaults, int def_width) {
    printf("configuration keys (JSON object; all optional):\n");
    for (int i = 0; i < n; i++) {
        const char *p = (const char *)defaults + keys[i].off;
        char def[1100];
        switch (keys[i].kind) {
        case ACMT_KEY_INT: snprintf(def, sizeof def, "%d", *(const int *)p); break;
        case ACMT_KEY_I64: snprintf(def, sizeof def, "%lld", (long long)*(const int64_t *)p); break;
        case ACMT_KEY_DBL: snprintf(def, sizeof def, "%g", *(const double *)p); break;
        case ACMT_KEY_STR: snprintf(def, sizeof def, "%s", p); break;
        }
        printf("  %-16s %-*s %s\n", keys[i].key, def_width, def, keys[i].help);
    }
}
