/* A small HTTP/1.x server for the checker tests, on its own thread on
 * loopback, plaintext or TLS (OpenSSL), whose behaviour a test switches
 * at any time: answer with a status and body, accept and never answer,
 * or reset the connection after reading the request. */
#ifndef TESTS_HTTPD_H
#define TESTS_HTTPD_H

#include <stddef.h>

typedef struct th_httpd th_httpd_t;

enum { TH_HTTPD_ANSWER = 0, TH_HTTPD_HANG = 1, TH_HTTPD_RESET = 2 };

/* Start on 127.0.0.1 (a free port into *port).  With cert and key (PEM
 * files), TLS; with client_ca too, a client certificate is required.
 * NULL on failure. */
th_httpd_t *th_httpd_start(const char *cert, const char *key, const char *client_ca,
                           unsigned *port);

/* How the next requests are answered.  `headers` are extra header lines,
 * each ending in "\r\n" (may be NULL). */
void th_httpd_set(th_httpd_t *s, int mode, int status, const char *headers, const char *body);

/* Requests read so far, and a copy of the last one's head. */
unsigned th_httpd_requests(th_httpd_t *s);
void th_httpd_last(th_httpd_t *s, char *buf, size_t len);

void th_httpd_stop(th_httpd_t *s);

#endif
