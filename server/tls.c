/*
 * tls.c — the certificate and private key that acmd hands to each TLS handshake, replaced on SIGHUP.
 *
 * libmicrohttpd 0.9.75 parses MHD_OPTION_HTTPS_MEM_CERT/KEY once, at start. Instead acmd gives it a GnuTLS
 * certificate callback (MHD_OPTION_HTTPS_CERT_CALLBACK, a gnutls_certificate_retrieve_function2): every handshake
 * asks for the certificate in force, which acmd_tls_install() replaces. A reload therefore changes what new
 * handshakes see and nothing else: open connections keep the session they negotiated.
 *
 * Lifetime. GnuTLS keeps the pointers the callback returned for the session's life without owning them, so a
 * replaced certificate stays allocated while a connection may hold it. A connection can only hold a certificate
 * that was in force at some point between its start and its handshake, so each certificate counts the connections
 * that started while it was in force (acmd_tls_conn_open/close, from MHD's connection notifications), and a
 * replaced one is freed once it and every older one count zero: oldest first, so that an old connection which
 * shook hands after a later reload keeps that later certificate alive too.
 *
 * Threads: all of this runs on the I/O thread (MHD runs inside the libuv loop; SIGHUP is a uv_signal), so nothing is
 * locked. One TLS server per process: the GnuTLS callback takes no argument of ours, so the certificate in force is
 * a file-static pointer.
 *
 * Not done here: checking dates (an expired certificate is served; a verifying client refuses it), OCSP, SNI.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tls.h"

struct acmd_tls {
    gnutls_pcert_st *pcert;  /* [n]: the chain, the server's certificate first */
    unsigned n;
    gnutls_privkey_t key;
    long opened;             /* connections that started while this was in force and are still open */
    struct acmd_tls *next;   /* replaced ones, oldest first */
    char desc[300];          /* "subject CN=..., serial ..., expires ..." for the log */
};

static acmd_tls *tls__current;           /* handed to new handshakes */
static acmd_tls *tls__old, **tls__old_tail = &tls__old; /* replaced, still possibly held by a connection */

static void tls__free(acmd_tls *t) {
    if (!t) return;
    for (unsigned i = 0; i < t->n; i++) gnutls_pcert_deinit(&t->pcert[i]);
    free(t->pcert);
    if (t->key) gnutls_privkey_deinit(t->key);
    free(t);
}

/* A whole file, NUL-terminated, as a GnuTLS datum (data malloc'd), or -1 with the message. */
static int tls__slurp(gnutls_datum_t *d, const char *path, const char *what, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    long n = -1;
    d->data = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (d->data = malloc((size_t)n + 1)) && fread(d->data, 1, (size_t)n, f) == (size_t)n) {
        d->data[n] = 0;
        d->size = (unsigned)n;
        fclose(f);
        return 0;
    }
    snprintf(err, errlen, "%s %s: %s", what, path, f ? "cannot read" : strerror(errno));
    free(d->data);
    d->data = NULL;
    if (f) fclose(f);
    return -1;
}

/* The key id of a public key (SHA-1 of its SubjectPublicKeyInfo), to check that the key is the certificate's. */
static int tls__key_id(gnutls_pubkey_t pub, unsigned char id[64], size_t *n) {
    *n = 64;
    return gnutls_pubkey_get_key_id(pub, 0, id, n);
}

/* "subject CN=..., serial 0a1b..., expires 2026-12-05 10:00 UTC" of the server's certificate. */
static void tls__describe(acmd_tls *t, const gnutls_datum_t *der) {
    gnutls_x509_crt_t crt;
    snprintf(t->desc, sizeof t->desc, "(certificate not described)");
    if (gnutls_x509_crt_init(&crt)) return;
    if (!gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER)) {
        gnutls_datum_t dn = {NULL, 0};
        unsigned char serial[40];
        size_t sn = sizeof serial;
        char hex[2 * sizeof serial + 1] = "?", when[40] = "?";
        if (!gnutls_x509_crt_get_serial(crt, serial, &sn))
            for (size_t i = 0; i < sn; i++) snprintf(hex + 2 * i, 3, "%02x", serial[i]);
        const time_t exp = gnutls_x509_crt_get_expiration_time(crt);
        struct tm tm;
        if (exp != (time_t)-1 && gmtime_r(&exp, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
        const int have_dn = gnutls_x509_crt_get_dn2(crt, &dn) == 0;
        snprintf(t->desc, sizeof t->desc, "subject %s, serial %s, expires %s", have_dn ? (char *)dn.data : "?", hex, when);
        if (have_dn) gnutls_free(dn.data);
    }
    gnutls_x509_crt_deinit(crt);
}

acmd_tls *acmd_tls_load(const char *cert_path, const char *key_path, char *err, size_t errlen) {
    gnutls_datum_t cd = {NULL, 0}, kd = {NULL, 0};
    gnutls_x509_crt_t *crts = NULL;
    unsigned ncrt = 0;
    gnutls_pubkey_t kpub = NULL;
    acmd_tls *t = calloc(1, sizeof *t);
    int rc = 0;
    const char *what = "", *what_path = "";
    if (!t) return snprintf(err, errlen, "out of memory"), NULL;
    if (tls__slurp(&cd, cert_path, "--tls-cert", err, errlen) || tls__slurp(&kd, key_path, "--tls-key", err, errlen)) goto fail;
    /* the chain: every certificate in the file, the server's first (RFC 8446 4.4.2) */
    what = "--tls-cert", what_path = cert_path;
    if ((rc = gnutls_x509_crt_list_import2(&crts, &ncrt, &cd, GNUTLS_X509_FMT_PEM, GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED)) < 0)
        goto gnutls_fail;
    if (!(t->pcert = calloc(ncrt, sizeof *t->pcert))) goto oom;
    if ((rc = gnutls_pcert_import_x509_list(t->pcert, crts, &ncrt, 0)) < 0) goto gnutls_fail;
    t->n = ncrt;
    what = "--tls-key", what_path = key_path;
    if ((rc = gnutls_privkey_init(&t->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(t->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0)
        goto gnutls_fail;
    /* the key must be the certificate's: compare the key ids of the certificate's public key and the key's */
    unsigned char id1[64], id2[64];
    size_t n1, n2;
    if ((rc = gnutls_pubkey_init(&kpub)) < 0 || (rc = gnutls_pubkey_import_privkey(kpub, t->key, 0, 0)) < 0 ||
        (rc = tls__key_id(kpub, id2, &n2)) < 0 || (rc = tls__key_id(t->pcert[0].pubkey, id1, &n1)) < 0)
        goto gnutls_fail;
    if (n1 != n2 || memcmp(id1, id2, n1)) {
        snprintf(err, errlen, "--tls-key %s is not the private key of --tls-cert %s", key_path, cert_path);
        goto fail;
    }
    tls__describe(t, &t->pcert[0].cert);
    goto done;
gnutls_fail:
    snprintf(err, errlen, "%s %s: not a PEM certificate and its private key (--tls-cert %s, --tls-key %s): %s", what,
             what_path, cert_path, key_path, gnutls_strerror(rc));
    goto fail;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    tls__free(t);
    t = NULL;
done:
    if (kpub) gnutls_pubkey_deinit(kpub);
    for (unsigned i = 0; crts && i < ncrt; i++) gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    if (kd.data) memset(kd.data, 0, kd.size); /* the private key's PEM: not left in freed memory */
    free(cd.data), free(kd.data);
    return t;
}

const char *acmd_tls_describe(const acmd_tls *t) { return t ? t->desc : ""; }

const acmd_tls *acmd_tls_in_force(void) { return tls__current; }

/* Frees the replaced certificates that no open connection can hold: oldest first (file comment). */
static void tls__collect(void) {
    while (tls__old && tls__old->opened == 0) {
        acmd_tls *t = tls__old;
        tls__old = t->next;
        if (!tls__old) tls__old_tail = &tls__old;
        tls__free(t);
    }
}

void acmd_tls_install(acmd_tls *t) {
    acmd_tls *prev = tls__current;
    tls__current = t;
    if (prev) {
        prev->next = NULL;
        *tls__old_tail = prev;
        tls__old_tail = &prev->next;
    }
    tls__collect();
}

void *acmd_tls_conn_open(void) {
    if (tls__current) tls__current->opened++;
    return tls__current;
}

void acmd_tls_conn_close(void *held) {
    acmd_tls *t = held;
    if (!t) return;
    t->opened--;
    tls__collect();
}

long acmd_tls_retired(void) {
    long n = 0;
    for (const acmd_tls *t = tls__old; t; t = t->next) n++;
    return n;
}

void acmd_tls_free_all(void) {
    tls__free(tls__current);
    tls__current = NULL;
    while (tls__old) {
        acmd_tls *t = tls__old;
        tls__old = t->next;
        tls__free(t);
    }
    tls__old_tail = &tls__old;
}

/* GnuTLS asks, once per full handshake, for the certificate to send (server side: no CA names, no algorithms). */
int acmd_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
                      unsigned int *pcert_length, gnutls_privkey_t *privkey) {
    (void)session, (void)req_ca_rdn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    if (!tls__current) return -1; /* cannot happen once started: end the handshake rather than send nothing */
    *pcert = tls__current->pcert;
    *pcert_length = tls__current->n;
    *privkey = tls__current->key;
    return 0;
}
