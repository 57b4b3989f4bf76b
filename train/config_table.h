/*
 * config_table.h — the machinery behind the `acm-train` configuration files (base_config.c, speech_config.c): a
 * table of keys (name, kind, offset into the configuration struct, bounds, help line) from which one JSON object is
 * parsed onto the struct, the struct is written back as JSON (checkpoints), and --help prints every key with its
 * default. Each configuration keeps its own table, defaults and cross-key checks; this file only walks tables.
 */
#ifndef ACM_TRAIN_CONFIG_TABLE_H
#define ACM_TRAIN_CONFIG_TABLE_H

#include <stddef.h>

#include <jansson.h>

typedef enum { ACMT_KEY_INT, ACMT_KEY_I64, ACMT_KEY_DBL, ACMT_KEY_STR } acmt_key_kind;

/* One key: an int, int64_t or double within [lo, hi], or a char array of str_size bytes (see apply). */
typedef struct {
    const char *key;
    acmt_key_kind kind;
    size_t off;
    double lo, hi;
    const char *help;
} acmt_config_key;

/* Applies the keys of a JSON object onto the struct at c (string keys hold at most str_size - 1 bytes). Returns 0, or
 * -1 with a message naming the key (unknown key, wrong type, out of bounds); keys before the bad one stay applied. */
int acmt_config_keys_apply(const acmt_config_key *keys, int n, void *c, size_t str_size, const json_t *o, char *err,
                           size_t errlen);
/* Every key of the struct at c as a JSON object (new reference). */
json_t *acmt_config_keys_json(const acmt_config_key *keys, int n, const void *c);
/* Prints the table of keys with the defaults read from the struct at defaults, the default column def_width wide. */
void acmt_config_keys_help(const acmt_config_key *keys, int n, const void *defaults, int def_width);

#endif
