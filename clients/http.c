/*
 * http.c — one request at a time over libcurl's easy interface (classify, health, models), the server URL check
 * (libcurl's URL parser), and the server's error bodies ({"error": "message"}, docs/API.md) turned into one line.
 * No redirects are followed and nothing is retried: what the server says is what the user sees.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "acmc.h"

int acmc_buf_append(acmc_buf *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d, b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

void acmc_buf_free(acmc_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int acmc_server_url(char *out, size_t n, const char *server, char *err, size_t errlen) {
    CURLU *u = curl_url();
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return ACMC_EXIT_FAIL;
    }
    int rc = ACMC_EXIT_USAGE;
    char *scheme = NULL, *host = NULL, *query = NULL;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, server, 0);
    if (uc) snprintf(err, errlen, "--server: '%s' is not a URL (%s)", server, curl_url_strerror(uc));
    else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) || (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")))
        snprintf(err, errlen, "--server: '%s': only http:// and https:// URLs", server);
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) || !*host)
        snprintf(err, errlen, "--server: '%s' has no host", server);
    else if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK)
        snprintf(err, errlen, "--server: '%s': a base URL takes no query", server);
    else {
        size_t l = strlen(server);
        while (l && server[l - 1] == '/') l--;
        if (l + 1 > n) snprintf(err, errlen, "--server: URL too long");
        else {
            memcpy(out, server, l);
            out[l] = 0;
            rc = 0;
        }
    }
    curl_free(scheme), curl_free(host), curl_free(query);
    curl_url_cleanup(u);
    return rc;
}

static size_t http__write(char *p, size_t size, size_t nmemb, void *ud) {
    acmc_buf *b = ud;
    return acmc_buf_append(b, p, size * nmemb) ? 0 : size * nmemb;
}

/* --api-key / ACM_API_KEY: sent as "Authorization: Bearer KEY" with every request ("": none). */
static char http__auth[600];

int acmc_set_api_key(const char *key, char *err, size_t errlen) {
    if (!key || !*key) return http__auth[0] = 0, 0;
    for (const char *p = key; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return snprintf(err, errlen, "--api-key: a key is visible ASCII without spaces"), -1;
    if (strlen(key) > 512) return snprintf(err, errlen, "--api-key: longer than 512 bytes"), -1;
    snprintf(http__auth, sizeof http__auth, "Authorization: Bearer %s", key);
    return 0;
}

const char *acmc_auth_header(void) { return http__auth[0] ? http__auth : NULL; }

int acmc_http(const char *url, const char *const *headers, const void *body, size_t len, const char *content_type,
              double timeout_s, acmc_resp *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return ACMC_EXIT_FAIL;
    }
    struct curl_slist *h = NULL, *t;
    char ct[256], eb[CURL_ERROR_SIZE] = "";
    int rc = 0;
    if (body) {
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type ? content_type : "application/octet-stream");
        if (!(t = curl_slist_append(h, ct))) rc = ACMC_EXIT_FAIL;
        else h = t;
        if (!rc && !(t = curl_slist_append(h, "Expect:"))) rc = ACMC_EXIT_FAIL; /* no 100-continue round trip */
        else if (!rc) h = t;
    }
    if (!rc && http__auth[0]) {
        if (!(t = curl_slist_append(h, http__auth))) rc = ACMC_EXIT_FAIL;
        else h = t;
    }
    for (int i = 0; !rc && headers && headers[i]; i++) {
        if (!(t = curl_slist_append(h, headers[i]))) rc = ACMC_EXIT_FAIL;
        else h = t;
    }
    if (rc) {
        snprintf(err, errlen, "out of memory");
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        return rc;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http__write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, eb);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "acm/" ACMC_VERSION);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_s * 1000));
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &out->seconds);
        if (!out->body.data && acmc_buf_append(&out->body, "", 0)) cc = CURLE_OUT_OF_MEMORY;
    }
    if (cc == CURLE_OUT_OF_MEMORY || cc == CURLE_WRITE_ERROR) {
        snprintf(err, errlen, "out of memory reading the answer of %s", url);
        rc = ACMC_EXIT_FAIL;
    } else if (cc != CURLE_OK) {
        snprintf(err, errlen, "cannot reach %s: %s", url, eb[0] ? eb : curl_easy_strerror(cc));
        rc = ACMC_EXIT_UNREACHABLE;
    }
    if (rc) acmc_resp_free(out);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

void acmc_resp_free(acmc_resp *r) { acmc_buf_free(&r->body); }

const char *acmc_status_reason(long s) {
    switch (s) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
    }
}

void acmc_server_error(const acmc_resp *r, char *out, size_t n) {
    const char *msg = NULL;
    json_t *j = r->body.data ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
    if (j && json_is_string(json_object_get(j, "error"))) msg = json_string_value(json_object_get(j, "error"));
    int k = snprintf(out, n, "%ld%s%s", r->status, *acmc_status_reason(r->status) ? " " : "",
                     acmc_status_reason(r->status));
    if (k < 0 || (size_t)k >= n) {
        json_decref(j);
        return;
    }
    if (msg) snprintf(out + k, n - (size_t)k, ": %s", msg);
    else if (r->body.len) {
        /* not our error format (a proxy's page?): its first line, printable characters only */
        char line[200];
        size_t m = 0;
        for (size_t i = 0; i < r->body.len && m + 1 < sizeof line && r->body.data[i] != '\n'; i++)
            line[m++] = isprint((unsigned char)r->body.data[i]) ? r->body.data[i] : '?';
        line[m] = 0;
        snprintf(out + k, n - (size_t)k, ": %s", line);
    }
    json_decref(j);
}
