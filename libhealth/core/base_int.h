/*
 * The bottom of the library's private headers: utilities every layer may
 * use (time, errors, buffers, numbers, logs, redaction, option values,
 * name resolution) and the handle's shared core (core/core.c: the lock, the
 * state version and its observers).  Nothing here knows a subsystem.
 * Included by every other private header; see health_int.h for the map.
 */
#ifndef HEALTH_BASE_INT_H
#define HEALTH_BASE_INT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "health.h"
#include "core/stamp.h"  /* the options structs' init stamp */
#include "core/thread.h" /* thread creation, monotonic condvars (core/thread.c) */

struct health__check;

#define HEALTH__NAME_MAX 64
#define HEALTH__OUTPUT_MAX 4096 /* upper bound of max_output_bytes */

/* ---- time (core/time.c) ---- */
uint64_t health__now_ms(void); /* CLOCK_MONOTONIC, milliseconds */
uint64_t health__now_us(void); /* CLOCK_MONOTONIC, microseconds */
/* CLOCK_MONOTONIC_COARSE in ms: cheaper, never ahead of health__now_ms(),
 * behind it by at most one scheduler tick.  For the request path. */
uint64_t health__now_ms_coarse(void);
int64_t health__wall_ms(void); /* CLOCK_REALTIME, milliseconds since the epoch */
/* "2026-11-22T10:00:00.123Z" into buf (at least 32 bytes). */
void health__rfc3339(int64_t wall_ms, char *buf, size_t len);

/* ---- options (core/env.c) ---- */
/* Range and cross-field checks shared by health_new() and
 * health_options_from_env(); `env` words messages for variables. */
int health__options_validate(const health_options_t *o, int env, health_error_t *err);
/* A variable's value by name, or NULL when unset: getenv() for the
 * library's *_from_env() calls, a file's container environment for
 * health-lint, so both read settings through one parser. */
typedef const char *(*health__lookup_fn)(const char *name, void *arg);
const char *health__env_lookup(const char *name, void *arg); /* getenv(name) */
/* health_options_from_env() with `lookup` in place of getenv(); the strings
 * the options point to are the lookup's, which must outlive them. */
int health__options_from_lookup(health_options_t *opts, health__lookup_fn lookup, void *arg,
                                health_error_t *err);
/* health_serve_options_from_env() (http/paths.c) and health_controls_from_env()
 * (controls/controls_env.c) with `lookup` in place of getenv(). */
int health__serve_options_from_lookup(health_serve_options_t *o, health__lookup_fn lookup,
                                      void *arg, health_error_t *err);
int health__controls_from_lookup(health_t *h, health__lookup_fn lookup, void *arg,
                                 health_error_t *err);
/* health__controls_from_lookup() in two steps: parse and validate
 * (nothing changes), then apply (fails only out of memory or after start). */
typedef struct {
  unsigned deadline, port, weight;
  int has_deadline, has_port, has_weight;
  const char *address; /* the lookup's, or NULL */
} health__controls_env_t;
int health__controls_env_parse(const health_t *h, health__lookup_fn lookup, void *arg,
                               health__controls_env_t *c, health_error_t *err);
int health__controls_env_apply(health_t *h, const health__controls_env_t *c, health_error_t *err);
/* health_fleet_options_from_env() (engine/jitter.c) with `lookup`. */
int health__fleet_options_from_lookup(health_fleet_options_t *opts, health__lookup_fn lookup,
                                      void *arg, health_error_t *err);
/* HEALTH_NOFILE_MAX (http/guard_nofile.c): *set 0 when unset, else *max as
 * health_fds_set_limit() takes it. */
int health__nofile_from_lookup(health__lookup_fn lookup, void *arg, int *set, unsigned long *max,
                               health_error_t *err);
/* The handle's current paths as serve options (http/paths.c). */
void health__serve_options_get(const health_t *h, health_serve_options_t *o);
/* health_config_from_env() (config.c) with `lookup` for the values and
 * `names` (environ's shape: "NAME" or "NAME=VALUE", NULL-ended) for the
 * variables there are: HEALTH_CHECK_* and the unknown ones. */
int health__config_from_lookup(health_t *h, health__lookup_fn lookup, void *arg,
                               const char *const *names, health_error_t *err);

/* ---- errors (core/error.c) ---- */
/* Fill `err` (may be NULL) and return `code`. */
int health__err(health_error_t *err, int code, const char *fmt, ...) HEALTH_PRINTF(3, 4);
/* 0 when a public options struct went through its init function (its
 * `init_stamp` is HEALTH__INIT_STAMP) and every reserved field is zero,
 * else HEALTH_EINVAL with `err` naming the struct (`stem`_t) and its init
 * function (`stem`_init).  The stamp: `= {0}` would silently change the
 * defaults that are not zero.  The ABI policy: a field a later release adds
 * takes reserved space, so a program that sets it must not be silently
 * ignored by an older library. */
int health__reserved_check(uintptr_t stamp, void *const *reserved, size_t n, const char *stem,
                           health_error_t *err);
#define HEALTH__RESERVED_CHECK(o, stem, err)             \
  health__reserved_check((o)->init_stamp, (o)->reserved, \
                         sizeof(o)->reserved / sizeof(o)->reserved[0], stem, err)

/* ---- growable buffer (core/buf.c) ---- */
typedef struct health__buf {
  char *data;
  size_t len;
  size_t cap;
  int failed; /* an allocation failed; contents are incomplete */
} health__buf_t;

void health__buf_init(health__buf_t *b);
void health__buf_free(health__buf_t *b);
void health__buf_add(health__buf_t *b, const char *s, size_t n);
void health__buf_adds(health__buf_t *b, const char *s);
void health__buf_printf(health__buf_t *b, const char *fmt, ...) HEALTH_PRINTF(2, 3);
/* Append `s` (n bytes) as the inside of a JSON string: escapes quotes,
 * backslashes and control characters, replaces invalid UTF-8 with U+FFFD. */
void health__buf_json_str(health__buf_t *b, const char *s, size_t n);

/* ---- locale-proof numbers (core/numfmt.c) ---- */
/* Enough for any double health__fmt_double() writes, with its NUL. */
#define HEALTH__FMT_DOUBLE_LEN 32
/*
 * The shortest decimal that reads back as `v`, whatever the process locale
 * (never a ','): "0.276", "1234.568", "0.0001", "1e+300", "1e-7", "0" (also
 * for -0).  Plain notation for 1e-7 < |v| < 1e21, exponent beyond (the
 * JavaScript layout; valid JSON and Prometheus text).  Non-finite values
 * give "NaN", "+Inf", "-Inf" (Prometheus spelling; JSON has none: check
 * isfinite() first).  Writes at most len - 1 bytes and a NUL; returns the
 * full length.  Any thread; no allocation.  Every number with a fraction
 * that leaves the library goes through here.
 */
size_t health__fmt_double(double v, char *buf, size_t len);
/* Append health__fmt_double(v) to b. */
void health__buf_double(health__buf_t *b, double v);

/* ---- logging (core/log.c, core/logq.c) ---- */
/*
 * One JSON log line: {"ts":...,"mono_ms":...,"level":...,"event":...,k:v...}.
 * The variadic part is key/value pairs of C strings ending with NULL; a key
 * starting with '#' has a raw JSON value (a number), the '#' is dropped.
 * `h` may be NULL (default sink, level info).  Any thread, any lock held:
 * while the handle is started the line only goes into its queue (core/logq.c);
 * otherwise it is written on the caller's thread, bounded (core/logq.c).
 */
void health__log(const health_t *h, health_log_level_t level, const char *event, ...);
void health__logv(const health_t *h, health_log_level_t level, const char *event, va_list ap);
/* Same, with `extra` (",\"key\":value...", or NULL) added at the end. */
void health__logv_extra(const health_t *h, health_log_level_t level, const char *event,
                        const char *extra, va_list ap);
/* Append the line (no newline) to b: the formatter the calls above use. */
void health__log_format(health__buf_t *b, health_log_level_t level, const char *event,
                        const char *extra, ...);
void health__log_formatv(health__buf_t *b, health_log_level_t level, const char *event,
                         const char *extra, va_list ap);
/* Wait until every line queued so far has gone to the sink, or until the
 * monotonic time `until_mono_ms` passes.  0 written, -1 not (yet).  For the
 * shutdown sequence before _exit; any thread but the writer. */
int health__log_flush(health_t *h, uint64_t until_mono_ms);
/* Lines the handle's sink did not take (queue full, sink stuck or gone). */
unsigned long long health__log_dropped(const health_t *h);

/* The log queue and its writer thread (core/logq.c).  new: NULL on no memory.
 * start: 0, or -1 (no thread: lines keep going out synchronously).
 * stop: waits up to a second for queued lines, then drops the rest and
 * joins the writer.  put: the line in b (moved out of b when queued).  The
 * sink (fn, arg) is called on the writer only while it runs. */
typedef struct health__logq health__logq_t;
health__logq_t *health__logq_new(health_log_fn fn, void *arg);
void health__logq_free(health__logq_t *q);
int health__logq_start(health__logq_t *q);
void health__logq_stop(health__logq_t *q);
void health__logq_put(health__logq_t *q, health_log_level_t level, health__buf_t *b);
int health__logq_flush(health__logq_t *q, uint64_t until_mono_ms);
unsigned long long health__logq_dropped(const health__logq_t *q);
/* health__logq_flush() of every started handle's queue (the test suites
 * read their captured logs after it). */
int health__log_flush_all(uint64_t until_mono_ms);

/* ---- descriptors (core/fdsafe.c) ---- */
/* Descriptors the library makes never take 0, 1 or 2, even when the
 * application's stdio is closed (a later printf would go into them).
 * health__fd_hoist: fd itself when above 2 (or negative); otherwise a
 * close-on-exec duplicate at 3 or above, fd closed; -1 (errno set, fd
 * closed) if none can be had.  health__pipe2: pipe2() with both ends
 * hoisted. */
int health__fd_hoist(int fd);
int health__pipe2(int fds[2], int flags);
/* Around a call that makes descriptors the library cannot hoist
 * (MHD_start_daemon): occupy whichever of 0-2 are closed with /dev/null,
 * then free them again.  `plugged` is int[3]. */
void health__stdio_plug(int plugged[3]);
void health__stdio_unplug(const int plugged[3]);

/* ---- identical log lines, once (core/logrepeat.c) ---- */
/*
 * One stream of lines that may repeat (a check's status lines, a checker's
 * error lines).  A line identical (same event and fields, digits aside) to
 * one of the last HEALTH__REPEAT_SLOTS distinct lines printed, within
 * HEALTH__REPEAT_WINDOW_MS of its printing, is not printed at its level: it
 * goes to debug (nowhere if it was debug) and is counted.  The next copy
 * after the window is printed with "repeated":N; health__repeat_flush()
 * prints "log_repeated" summaries of what is still counted.  A flapping
 * check (pass, fail, pass...) is caught as well as a steady repeat.
 * Zero-initialised; guarded by the caller.
 */
#define HEALTH__REPEAT_WINDOW_MS 60000
#define HEALTH__REPEAT_SLOTS 4
typedef struct health__repeat {
  struct {
    uint64_t hash;       /* 0: empty */
    uint64_t printed_ms; /* when it was last printed */
    unsigned suppressed; /* copies since */
    health_log_level_t level;
    char event[32];
  } slot[HEALTH__REPEAT_SLOTS];
  unsigned next; /* slot to reuse */
  char subject[HEALTH__NAME_MAX + 1];
} health__repeat_t;
/* Log like health__log() through the stream `r`; `subject` names what the
 * lines are about (a check name). */
void health__log_repeat(const health_t *h, health__repeat_t *r, const char *subject,
                        health_log_level_t level, const char *event, ...);
/* Print the summary of suppressed lines, if any (at stop). */
void health__repeat_flush(const health_t *h, health__repeat_t *r);

/* ---- redaction (core/redact.c) ---- */
/* Copy `url` to `out`, replacing any password (user:PASSWORD@) with "***". */
/* http/accept.c: 1 when an Accept header prefers OpenMetrics 1.0.0 to the
 * Prometheus text format 0.0.4 (RFC 9110 q-values); NULL: 0. */
int health__accept_openmetrics(const char *accept);
void health__redact_url(const char *url, char *out, size_t len);
/* Copy `text` to `out`, replacing every occurrence of `secret` (if non-empty)
 * with "***". */
void health__redact_secret(const char *text, const char *secret, char *out, size_t len);

/* ---- shared state and its observers (core/core.c) ---- */
/* Told, with h->lock held, that something rendered changed. */
typedef void (*health__state_observer_fn)(health_t *h);
/* Told, with h->lock held, that a check's effective status moved from `prev`. */
typedef void (*health__check_observer_fn)(health_t *h, const struct health__check *c,
                                          health_status_t prev);
#define HEALTH__OBSERVERS 4
typedef struct health__core {
  atomic_uint_fast64_t version; /* bumped on every published change */
  /* registered at start by the layers above the engine, h->lock held */
  health__state_observer_fn on_state[HEALTH__OBSERVERS];
  health__check_observer_fn on_check[HEALTH__OBSERVERS];
  size_t nstate, ncheck;
  int inited; /* h->lock (core/core.c) */
  /* the log queue and its writer (core/logq.c; created with h->lock) */
  health__logq_t *logq;
  /* health.c's final free, for the last abandoned worker (engine/scheduler.c) */
  void (*free_final)(health_t *h);
} health__core_t;

enum { HEALTH__ST_NEW = 0, HEALTH__ST_STARTED, HEALTH__ST_STOPPED };

/* h->lock and the core (core/core.c): 0, or -1 (health_new() fails). */
int health__core_init(health_t *h);
void health__core_free(health_t *h);
/* The log writer thread (core/logq.c), from health_start() and health_stop():
 * start 0, or -1 with errno set. */
int health__core_start_log(health_t *h);
void health__core_stop_log(health_t *h);
/* Register observers (either may be NULL), h->lock held; -1 if full. */
int health__observe_locked(health_t *h, health__state_observer_fn on_state,
                           health__check_observer_fn on_check);
/* Tell the check observers (core/core.c, h->lock held). */
void health__check_changed_locked(health_t *h, const struct health__check *c, health_status_t prev);
/* Something rendered changed (h->lock held): bump the version, tell the
 * observers (core/core.c). */
void health__state_changed_locked(health_t *h);
/* Only the version: something rendered changed that no observer needs to
 * hear (the shutdown phase in /metrics).  Any thread, no lock. */
void health__version_bump(health_t *h);
/* "pass", "warn", "fail" or "pending" (logs, listener events). */
const char *health__status_word(health_status_t s);
/* 1 if `n` is 1-64 characters of [A-Za-z0-9._-]: check, hook and
 * measurement names (core/core.c). */
int health__valid_name(const char *n);

/* Resolve `host` (and `port`, may be NULL) for a TCP connection, giving
 * up at `deadline` (monotonic ms) while the lookup finishes on its own
 * thread (core/resolve.c).  0: *out is the list (freeaddrinfo it); 1: timed
 * out (*why is "previous lookup still running" when the lookup waited for
 * was started by an earlier call, else NULL); -1: failed, *why says why
 * (static text).  `slot` (the caller's, NULL-initialised; may be NULL)
 * keeps a lookup the caller walked away from: the next call with the same
 * name waits for it instead of starting another (with another name it
 * fails at once).  At most HEALTH__RESOLVE_MAX lookup threads run in the
 * process; past that a call fails at once. */
#define HEALTH__RESOLVE_MAX 32
struct addrinfo;
typedef struct health__dns_slot health__dns_slot_t;
int health__resolve(health__dns_slot_t **slot, const char *host, const char *port,
                    uint64_t deadline, struct addrinfo **out, const char **why);
/* Drop the slot's lookup (it finishes and frees itself); NULL is fine. */
void health__resolve_slot_free(health__dns_slot_t **slot);

/* Option values (core/env_values.c), 0 or -1: a boolean (1/0, true/false,
 * yes/no, on/off); a whole number in [lo, hi]; a percentage "85" or "85%";
 * a free amount "10%" (*is_pct) or bytes "1048576", "500M", "2GiB". */
int health__env_bool(const char *s, int *out);
int health__env_uint(const char *s, unsigned long lo, unsigned long hi, unsigned *out);
int health__env_percent(const char *s, double *out);
int health__env_amount(const char *s, double *pct, uint64_t *bytes, int *is_pct);

#endif /* HEALTH_BASE_INT_H */
