/*
 * tls.h — the certificate in force for acmd's TLS handshakes (server/tls.c): loaded from --tls-cert/--tls-key,
 * replaced on SIGHUP, handed to libmicrohttpd through a GnuTLS certificate callback. I/O thread only.
 */
#ifndef ACMD_TLS_H
#define ACMD_TLS_H

#include <stddef.h>

#include <gnutls/abstract.h>

typedef struct acmd_tls acmd_tls;

/* A certificate chain and its private key from PEM files, checked to belong together; NULL with the message. */
acmd_tls *acmd_tls_load(const char *cert_path, const char *key_path, char *err, size_t errlen);
/* "subject ..., serial ..., expires ..." of its server certificate, for the log. */
const char *acmd_tls_describe(const acmd_tls *t);
/* t becomes the certificate in force (new handshakes get it); the one before is freed once no connection can hold
 * it. Takes ownership. */
void acmd_tls_install(acmd_tls *t);
/* The certificate in force (NULL before the first acmd_tls_install). */
const acmd_tls *acmd_tls_in_force(void);
/* A connection started / ended (MHD's connection notifications): what acmd_tls_conn_close must be given back. */
void *acmd_tls_conn_open(void);
void acmd_tls_conn_close(void *held);
/* Replaced certificates still kept for connections that may hold them (tests and the log). */
long acmd_tls_retired(void);
/* Everything, after the daemon stopped. */
void acmd_tls_free_all(void);
/* For MHD_OPTION_HTTPS_CERT_CALLBACK: the certificate in force. */
int acmd_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
                      unsigned int *pcert_length, gnutls_privkey_t *privkey);

#endif
