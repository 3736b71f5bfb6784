/* Helpers shared by the Check suites: raw HTTP and sockets over loopback,
 * waiting on conditions, throwaway servers started by the tests/ scripts,
 * log capture, running a suite. */
#ifndef TESTHELP_H
#define TESTHELP_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "health.h"

typedef struct th_response {
  int status; /* HTTP status, or -1 when nothing parsable came back */
  char *head; /* status line + headers, NUL-terminated */
  char *body; /* NUL-terminated (may contain NULs before body_len) */
  size_t body_len;
} th_response_t;

/* Monotonic milliseconds. */
uint64_t th_now_ms(void);

/* Send `raw` (raw_len bytes) to 127.0.0.1:port and read the whole answer
 * (until Content-Length is satisfied or the peer closes), within timeout_ms.
 * `head_only`: the request is HEAD (no body follows the headers).
 * Returns 0, or -1 on a connect/IO error or timeout. */
int th_http_raw(unsigned port, const char *raw, size_t raw_len, int head_only, unsigned timeout_ms,
                th_response_t *out);

/* "METHOD path HTTP/1.1" with Host and Connection: close. */
int th_http(unsigned port, const char *method, const char *path, th_response_t *out);

/* Value of a header (case-insensitive name) copied into buf; NULL if absent. */
const char *th_header(const th_response_t *r, const char *name, char *buf, size_t len);

void th_response_free(th_response_t *r);

/* Poll `cond(arg)` every millisecond or so until it returns non-zero or
 * timeout_ms passes.  Returns 1 if the condition became true. */
int th_wait_until(int (*cond)(void *arg), void *arg, unsigned timeout_ms);

/* A loopback listener that accepts (the kernel completes the handshake) and
 * never answers.  Returns the fd (close it to stop) and sets *port. */
int th_blackhole(unsigned *port);

/* 1 if `s` equals one of the '|'-separated `alternatives`. */
int th_one_of(const char *s, const char *alternatives);
/* 1 if `s` contains one of the '|'-separated `alternatives`. */
int th_has_one_of(const char *s, const char *alternatives);

/* A loopback listener on its own thread that misbehaves with every
 * client: it reads the client's first message and answers `reply` (if not
 * NULL: a server of the wrong protocol), then closes, with a reset (RST)
 * if `rst`.  *port receives its port.  NULL on failure. */
typedef struct th_peer th_peer_t;
th_peer_t *th_peer_start(const char *reply, size_t len, int rst, unsigned *port);
void th_peer_stop(th_peer_t *p);

/* This process's own mount namespace (once; needs root, and no thread
 * may have started: call from a Check test, which runs in a fresh fork). */
int th_private_mounts(char *why, size_t len);

/* Bind-mount a file holding `content` over `target` (e.g. /etc/hosts), in
 * the private mount namespace.  0, or -1 with the reason in why. */
int th_mount_file(const char *target, const char *content, char *why, size_t len);

/* Make name lookups in this process hang: a private mount namespace in
 * which /etc/resolv.conf names a loopback UDP socket that never answers.
 * Needs root; call before any thread starts (Check's forked test child).
 * Returns that socket (keep it open), or -1 with the reason in why. */
int th_hang_dns(char *why, size_t len);

/* Answer every query waiting on that name server with REFUSED; returns how
 * many. */
int th_dns_refuse(int fd);

/* Refuse queries until the lookups stuck on the name server have returned
 * and their threads are gone (this process single-threaded again), for at
 * most timeout_ms: call after health_free(). */
void th_dns_unhang(int fd, unsigned timeout_ms);

/* Run `$top_srcdir/tests/<script> <args>` through /bin/sh, capturing its
 * standard output (trailing newline stripped) into out.  Returns the exit
 * status (0 = success, 77 = skip, other = failure). */
int th_script(const char *script, const char *args, char *out, size_t outlen);

/* A fresh temporary directory (caller frees). */
char *th_tmpdir(const char *tag);

/* 1 if HEALTH_TEST_REQUIRE_SERVERS is set (CI): a missing server is a
 * failure instead of a skip. */
int th_require_servers(void);

/* Multiplier for timing margins and deadlines: HEALTH_TEST_TIME_SCALE
 * (1-1000, default 1).  scripts/valgrind.sh sets it, since everything runs
 * 20-50 times slower there.  Only margins scale; what a test asserts stays
 * the same. */
unsigned th_time_scale(void);

/* A timing margin or deadline of `ms` milliseconds, scaled. */
#define TS(ms) ((unsigned)(ms)*th_time_scale())

/* 1 when running under valgrind (RUNNING_ON_VALGRIND where <valgrind/valgrind.h>
 * exists, or HEALTH_TEST_VALGRIND set non-zero by scripts/valgrind.sh). */
int th_under_valgrind(void);

/* th_connect_from() timeout: wait for the handshake without a limit. */
#define TH_FOREVER ((unsigned)-1)

/* Non-blocking fd connected from src (127.0.0.x, NULL: any) to 127.0.0.1:port, or -1. */
int th_connect_from(const char *src, unsigned port, unsigned timeout_ms);

/* Send all len bytes within timeout_ms: 0, or -1 on close/reset by the peer or timeout. */
int th_send_all(int fd, const void *buf, size_t len, unsigned timeout_ms);

/* HTTP status of `METHOD path` (th_http()), or -1. */
int th_status(unsigned port, const char *method, const char *path);

/* What th_status_is() waits for: GET path on port answering want. */
typedef struct th_want {
  unsigned port;
  const char *path;
  int want;
} th_want_t;

/* th_wait_until() condition: GET arg->path answers arg->want (arg: th_want_t *). */
int th_status_is(void *arg);

/* Count the process's threads now: th_single_thread() then waits for the
 * threads started after this call (the library's, a resolver's) to exit,
 * not for the runtime's own (ThreadSanitizer keeps a background thread).
 * Call it before a test creates its first handle or hung resolver; only
 * the first call in a process counts. */
void th_threads_mark(void);

/* th_wait_until() condition: no thread is left but those counted by
 * th_threads_mark() in this process (only the main thread when there is no
 * mark), or /proc cannot tell. */
int th_single_thread(void *arg);

/* health_log_fn: append the line to the captured log (and stderr if HEALTH_TEST_LOG). */
void th_capture_log(health_log_level_t level, const char *line, void *arg);

/* 1 if the captured log contains s. */
int th_log_contains(const char *s);

/* How many times s occurs in the captured log. */
int th_log_count(const char *s);

/* How many lines were captured. */
size_t th_log_lines(void);

/* The captured log text, NULL when empty (for failure messages only). */
const char *th_log_text(void);

/* Empty the captured log. */
void th_log_clear(void);

/* Run and free suite s (fork CK_FORK_GETENV: Check's default); returns the failures. */
int th_run_suite(Suite *s, enum print_output mode, enum fork_status fork);

/* 1 (printing "prog: note") if server script status rc is 77 and servers are optional. */
int th_server_skip(int rc, const char *prog, const char *note);

/* rm -rf dir, printing "prog: could not remove dir" to stderr on failure. */
void th_remove_dir(const char *prog, const char *dir);

#endif
