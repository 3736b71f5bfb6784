/*
 * libhealth: dependency checks, /health and /ready endpoints and graceful
 * shutdown for long-running C services on container platforms.
 *
 * Every public symbol starts with health_ or HEALTH_.  Every prototype says
 * which thread may call it:
 *   - "before start": only between health_new() and health_start(), from the
 *     thread that owns the handle;
 *   - "any thread":   from any thread, at any time while the handle exists;
 *   - "async-signal-safe": also from inside a signal handler.
 *
 * Names: health_<verb> acts on the handle (health_new, health_start,
 * health_wait...); health_<family>_<verb> acts on one family of things
 * (health_check_add, health_gate_open, health_answer_render,
 * health_redis_options_init).  docs/guide.md, "Naming", lists the families;
 * tests/names.sh holds every export to it.
 *
 * Functions that can fail return 0 on success or a negative HEALTH_E* code
 * and take a health_error_t pointer last (it may be NULL) into which a
 * readable message is written.  The few other conventions: health_probe()
 * and health_probe_with() return an exit status (0 or 1, with a reason
 * buffer); health_wait() returns the shutdown's exit code;
 * health_check_foreach() returns a count; health_drain_fd() a descriptor;
 * health_status(), health_port(), health_agent_port() and
 * health_drain_active() return what they name.
 *
 * The header is in sections, in this order: core (errors, options, the
 * handle), checks, built-in checkers, shutdown, liveness and readiness
 * controls, observability (the answers, listeners, the health port's
 * descriptors), probe, deprecated names.
 */
#ifndef HEALTH_H
#define HEALTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HEALTH_VERSION_MAJOR 0
#define HEALTH_VERSION_MINOR 2
#define HEALTH_VERSION_PATCH 0
#define HEALTH_VERSION_STRING "0.2.0"

#if defined(HEALTH_BUILDING) && defined(__GNUC__)
#define HEALTH_EXPORT __attribute__((visibility("default")))
#else
#define HEALTH_EXPORT
#endif

#if defined(__GNUC__)
#define HEALTH_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define HEALTH_PRINTF(f, a)
#endif

/* Marks a name kept for one minor release (see "Deprecated names"). */
#if defined(__GNUC__) && !defined(HEALTH_COMPAT_BUILDING)
#define HEALTH_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define HEALTH_DEPRECATED(msg)
#endif

/* ------------------------------------------------------------------ */
/* Core: errors and version                                           */
/* ------------------------------------------------------------------ */

/* One list generates the codes, health_strerror() and health_err_name(). */
#define HEALTH_ERRNO_MAP(XX)                                           \
  XX(EINVAL, -1, "invalid argument")                                   \
  XX(ENOMEM, -2, "out of memory")                                      \
  XX(ESTATE, -3, "not allowed in the handle's current state")          \
  XX(EEXIST, -4, "a check or hook with that name already exists")      \
  XX(ENOENT, -5, "no such check")                                      \
  XX(ESYS, -6, "system call failed")                                   \
  XX(EHTTP, -7, "HTTP server could not be started")                    \
  XX(ENOTSUP, -8, "feature not compiled into this build of libhealth") \
  XX(ETIMEDOUT, -9, "timed out")                                       \
  XX(EURL, -10, "malformed URL or connection string")                  \
  XX(ETLS, -11, "TLS configuration error")                             \
  XX(EFORKED, -12, "the handle belongs to the parent process (called after fork())")

enum health_errno {
  HEALTH_OK = 0,
#define HEALTH_XX_(name, val, text) HEALTH_##name = (val),
  HEALTH_ERRNO_MAP(HEALTH_XX_)
#undef HEALTH_XX_
};

#define HEALTH_ERROR_TEXT_LENGTH 256

/* Caller-owned error detail. */
typedef struct health_error {
  int code;                            /* the HEALTH_E* code, or 0 */
  char text[HEALTH_ERROR_TEXT_LENGTH]; /* NUL-terminated message */
} health_error_t;

/**
 * The fixed message for an error code ("unknown error" for unknown codes).
 * Any thread.
 * @param code a HEALTH_E* code.
 * @return a static string.
 */
HEALTH_EXPORT const char *health_strerror(int code);

/**
 * The symbolic name of an error code ("HEALTH_EINVAL"), or "HEALTH_UNKNOWN".
 * Any thread.
 */
HEALTH_EXPORT const char *health_err_name(int code);

/**
 * The run-time library version as "MAJOR.MINOR.PATCH". Any thread.
 */
HEALTH_EXPORT const char *health_version(void);

/* ------------------------------------------------------------------ */
/* Core: options                                                      */
/* ------------------------------------------------------------------ */

/*
 * `health_options_t.port = HEALTH_PORT_OFF` (HEALTH_PORT=off) runs without
 * the library's HTTP thread: the application serves the answers itself
 * through health_answer_render().  health_port() then returns 0.
 */
#define HEALTH_PORT_OFF 65536u

/** How much a response body says. The status code is always right. */
typedef enum health_detail {
  HEALTH_DETAIL_FULL = 0,   /* every check with its output */
  HEALTH_DETAIL_STATUS = 1, /* {"status":"pass"} only */
  HEALTH_DETAIL_TOKEN = 2   /* full only with "Authorization: Bearer <token>" */
} health_detail_t;

typedef enum health_log_level {
  HEALTH_LOG_DEBUG = 0,
  HEALTH_LOG_INFO = 1,
  HEALTH_LOG_WARN = 2,
  HEALTH_LOG_ERROR = 3,
  HEALTH_LOG_OFF = 4
} health_log_level_t;

/**
 * Log sink. `json_line` is one complete JSON object without a newline.
 * Called from library threads; must be thread-safe and must not call back
 * into the library.  The default writes the line and "\n" to stderr with a
 * single write().
 */
typedef void (*health_log_fn)(health_log_level_t level, const char *json_line, void *arg);

/*
 * Library options.  Fill with health_options_init(), change fields, pass to
 * health_new(), which copies every string; the struct may be freed after.
 * Environment variable names are given beside each field; see
 * health_options_from_env().
 *
 * Every options struct of this header must be filled by its *_init()
 * function before its fields are changed.  The init function sets
 * `init_stamp` to a private value; every function taking the struct
 * refuses one without it with HEALTH_EINVAL and a message naming the init
 * function ("health_check_options_t was not initialised: call
 * health_check_options_init() first").  Where a function accepts NULL
 * for the struct, NULL still means all defaults.  Why: several defaults
 * are not zero (port 8081, handle_signals 1, a check's critical 1, the
 * disk and memory thresholds...) and a zero there has a meaning of its own
 * (pick a free port, no signals, a non-critical check, no threshold), so
 * `= {0}` plus the fields one sets would silently run with different
 * settings; refusing it is the only answer that stays true when a later
 * release adds a field.  The struct
 * may be copied once filled.  The reserved space after the stamp must stay
 * zero: a function given a struct with a reserved field set returns
 * HEALTH_EINVAL too (ABI policy: a later field takes reserved space, and an
 * older library must not silently ignore it).
 */
typedef struct health_options {
  /* HTTP endpoint */
  const char *address; /* HEALTH_ADDRESS, default "0.0.0.0"; "::" for IPv6 */
  /* HEALTH_PORT, default 8081; 0 picks a free port; off = HEALTH_PORT_OFF (no HTTP thread) */
  unsigned port;
  health_detail_t detail;          /* HEALTH_DETAIL full|status|token, default full */
  const char *detail_token;        /* HEALTH_DETAIL_TOKEN, required for HEALTH_DETAIL_TOKEN */
  const char *service_id;          /* HEALTH_SERVICE_ID, "serviceId" in the body; default none */
  const char *service_version;     /* HEALTH_SERVICE_VERSION, "version" in the body */
  const char *description;         /* HEALTH_DESCRIPTION, "description" in the body */
  unsigned max_connections;        /* HEALTH_MAX_CONNECTIONS, default 128 */
  unsigned max_connections_per_ip; /* HEALTH_MAX_CONNECTIONS_PER_IP, default 32 (0 = no limit) */
  /* HEALTH_CONNECTION_TIMEOUT, idle/slow connection cut-off, default 10 s */
  unsigned connection_timeout_s;
  /* HEALTH_MAX_OUTPUT, a check's output is cut to this, 16-4096, default 512 */
  unsigned max_output_bytes;

  /* Check defaults (each check may override) */
  unsigned check_interval_ms; /* HEALTH_CHECK_INTERVAL_MS, default 5000 */
  unsigned check_timeout_ms;  /* HEALTH_CHECK_TIMEOUT_MS, default 2000 */
  unsigned failure_threshold; /* HEALTH_FAILURE_THRESHOLD, default 2 */
  unsigned success_threshold; /* HEALTH_SUCCESS_THRESHOLD, default 1 */

  /* Shutdown */
  /* HEALTH_HANDLE_SIGNALS off|chain|replace (0|1|2), default chain: SIGTERM and SIGINT start
   * the shutdown (HEALTH_SIGNALS_*) */
  int handle_signals;
  /* HEALTH_DRAIN_MS, readiness fails this long before hooks run, default 15000 */
  unsigned drain_ms;
  /* HEALTH_DRAIN_MIN_MS, drain may end early after this once nothing is in flight; default
   * HEALTH_DRAIN_MIN_UNSET = drain_ms (never early); above drain_ms: HEALTH_EINVAL */
  unsigned drain_min_ms;
  /* HEALTH_HOOK_TIMEOUT_MS, default per-hook timeout, default 5000 */
  unsigned hook_timeout_ms;
  /* HEALTH_SHUTDOWN_DEADLINE_MS, hard bound on the sequence, default 25000 */
  unsigned shutdown_deadline_ms;
  /* HEALTH_EXIT 0|1, default 1: the library calls _exit() with the exit code */
  int exit_on_shutdown;

  /* Logging */
  health_log_level_t log_level; /* HEALTH_LOG_LEVEL debug|info|warn|error|off, default info */
  health_log_fn log_fn;         /* default: stderr */
  void *log_arg;
  uintptr_t init_stamp; /* written by the init function; never set it */
  void *reserved[3];    /* must stay zero: room for later fields (ABI) */
} health_options_t;

/*
 * handle_signals: what health_start() does with SIGTERM and SIGINT.
 *   HEALTH_SIGNALS_OFF      leaves them alone: the application calls
 *                           health_shutdown() (async-signal-safe) from its
 *                           own handler, signalfd or event-loop callback.
 *   HEALTH_SIGNALS_CHAIN    (default) installs the library's handler; a
 *                           handler the application installed before is
 *                           kept and runs after the library's (its
 *                           sa_handler or, with SA_SIGINFO, sa_sigaction;
 *                           SIG_DFL and SIG_IGN: nothing runs), logged as
 *                           "signal_chained".
 *   HEALTH_SIGNALS_REPLACE  installs the library's handler alone; a
 *                           handler found is logged ("signal_replaced")
 *                           and no longer runs.
 * A handler installed after health_start() that replaces the library's is
 * noticed within a second: one warn line ("signal_handler_replaced") and
 * libhealth_signal_handler_replaced{signal="SIGTERM"} 1 in /metrics; from
 * then on that signal starts no shutdown unless that handler calls
 * health_shutdown().  health_stop() puts back what was there before start,
 * unless the handler was replaced meanwhile (then it is left alone).
 */
#define HEALTH_SIGNALS_OFF 0
#define HEALTH_SIGNALS_CHAIN 1
#define HEALTH_SIGNALS_REPLACE 2

/**
 * Fill `opts` with the defaults.
 * It also sets `init_stamp`: every function taking the struct refuses one
 * that did not go through here (HEALTH_EINVAL naming this function), so
 * `= {0}` never stands for the defaults.  Any thread.
 */
HEALTH_EXPORT void health_options_init(health_options_t *opts);

/**
 * Override fields of `opts` from HEALTH_* environment variables.  Unset or
 * empty variables leave fields unchanged.  A malformed value is rejected with
 * HEALTH_EINVAL and a message naming the variable; `opts` is then left
 * entirely unchanged.  String fields point into the environment (copied later
 * by health_new()).  Before start (reads the environment).  Prefer
 * health_config_from_env(), which reads every family of variables.
 * @param opts options filled by health_options_init().
 * @param err  optional error detail.
 * @return 0 or HEALTH_EINVAL.
 */
HEALTH_EXPORT int health_options_from_env(health_options_t *opts, health_error_t *err);

/**
 * The default of health_options_t.drain_min_ms: "not set", so the drain
 * never ends early and lasts drain_ms, whatever drain_ms is set to (by the
 * program or by HEALTH_DRAIN_MS).  Any other value must not exceed
 * drain_ms (HEALTH_EINVAL otherwise).
 */
#define HEALTH_DRAIN_MIN_UNSET 0xFFFFFFFFu

/* ------------------------------------------------------------------ */
/* Core: the handle                                                   */
/* ------------------------------------------------------------------ */

typedef struct health health_t;

/**
 * Create a handle.  Validates and copies `opts` (NULL = defaults).
 * Any thread.
 * @param out receives the handle.
 * @return 0, HEALTH_EINVAL or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_new(health_t **out, const health_options_t *opts, health_error_t *err);

/**
 * Configure the handle from every HEALTH_* environment variable it knows.
 * One call reads them all: the options of health_options_t (applied to the
 * handle's options and validated again as health_new() does), the fleet
 * (HEALTH_JITTER, HEALTH_KEEP_CONNECTIONS), the paths (HEALTH_READY_PATH,
 * HEALTH_LIVE_PATH, HEALTH_METRICS_PATH), the controls
 * (HEALTH_STARTUP_DEADLINE_MS, HEALTH_AGENT_*), the checks (HEALTH_CHECK_*,
 * as health_check_add_from_env()) and HEALTH_NOFILE_MAX.  This is the one
 * to use: the library reads no variable on its own, and the older
 * *_from_env() calls each read one family.  Call it right after
 * health_new(), before adding checks and hooks: the defaults it sets
 * (check interval, timeout, thresholds, hook timeout) apply to those added
 * after it.  A variable overrides what the program set before the call; a
 * setter called after it overrides the variable.
 *
 * All or nothing: every variable is parsed and validated before anything
 * changes; a malformed or out-of-range value (or a failed check
 * registration) is an error whose message names the variable, and the
 * handle is then as before the call.  Unset or empty variables change
 * nothing.  A HEALTH_* variable the library does not know (a typo such as
 * HEALTH_DRAIN_MSS) is not an error, since other software may use the
 * prefix: a successful call logs it at warn level by name ("env_unknown").
 * Strings are copied.  Before start; from the thread that configures the handle.
 * @return 0, HEALTH_EINVAL, HEALTH_EURL, HEALTH_ETLS, HEALTH_EEXIST,
 *         HEALTH_ESTATE, HEALTH_EFORKED, HEALTH_ENOMEM or HEALTH_ENOTSUP.
 */
HEALTH_EXPORT int health_config_from_env(health_t *h, health_error_t *err);

/**
 * Start the check scheduler, the HTTP server and (unless disabled) the
 * signal handling.  Options and the check list freeze here.  The shutdown
 * plan (drain, early end, each hook's budget, deadline) is derived first:
 * an impossible one is HEALTH_EINVAL naming the fields and leaves the
 * handle unstarted; the plan is logged ("shutdown_plan"), with a warn line
 * ("shutdown_plan_risk") for each hook the deadline may cut.  What the
 * shutdown needs is made here (a hook thread and a deadline watchdog
 * thread), so SIGTERM needs no free descriptor, thread or memory.  The
 * checks start last: a start that fails has run no check, told no listener
 * and left no thread.
 *
 * Signals: unless health_options_t.handle_signals is 0, this installs
 * process-wide handlers for SIGTERM and SIGINT that start the shutdown
 * sequence (as health_shutdown() does); handle_signals and the signal
 * options beside it in health_options_t say what becomes of a handler
 * the application installed before.  With handle_signals = 0 no signal
 * disposition is touched and the application calls health_shutdown()
 * itself.  Before start; call once.
 * @return 0, HEALTH_EINVAL, HEALTH_ESTATE, HEALTH_EHTTP, HEALTH_ESYS or
 *         HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_start(health_t *h, health_error_t *err);

/*
 * fork().  A handle belongs to the process that created it.  In a child of
 * fork() (a pre-fork worker, a helper process) the child's copy is inert:
 * health_start(), health_wait(), health_answer_render(), health_check_find(),
 * health_check_foreach(), health_ready_release(), health_ready_hold(), the
 * registration and setting calls (the health_*_add and health_*_set calls,
 * health_heartbeat_add(), health_heartbeat_remove(), health_gate_open(),
 * health_drain_notify(), health_config_from_env(), health_controls_from_env(),
 * health_agent_set_weight()) return HEALTH_EFORKED; health_status()
 * returns HEALTH_FAIL (the child has no checks of its own);
 * health_drain_fd() returns -1; health_shutdown(), health_inflight_begin()
 * and health_inflight_end(), health_stop() and health_free() do nothing
 * (health_free() in a child releases nothing: the memory is a copy of the
 * parent's, the threads, locks and checker connections are the parent's;
 * the process's exit returns it).  None of them takes a lock, so a lock
 * another parent thread held at fork() never blocks a child.  At fork()
 * (a pthread_atfork handler) the child closes its copies of the health
 * port's and the agent port's listening sockets and of the library's
 * pipes, and gets back the SIGTERM/SIGINT dispositions the application had
 * before health_start(): a signal to a child never reaches the parent.  A
 * handle the child creates itself is an ordinary handle.  Pre-fork
 * workers report their liveness through a shared heartbeat
 * (health_heartbeat_shared_add()).
 */

/**
 * Stop everything the handle started: HTTP server, scheduler, signal
 * thread.  Waits for check runs in progress up to their deadlines; a run
 * that hangs beyond that is abandoned (its thread is detached).  Idempotent.
 * A shutdown sequence the watchdog gave up on (exit_on_shutdown 0: a drain
 * callback or a hook run on the sequence's thread that never returns) is
 * waited for one second more; then nothing is stopped and the handle is
 * left running until the process exits (logged "stop_incomplete"), since
 * that thread may still use all of it.
 * Any thread except the library's own (not from a callback or hook).
 */
HEALTH_EXPORT void health_stop(health_t *h);

/**
 * Stop (if needed) and free the handle.  Any thread except the library's
 * own; after it returns `h` is gone.  After a health_stop() that left the
 * handle running (see there), it frees nothing.
 */
HEALTH_EXPORT void health_free(health_t *h);

/**
 * The TCP port the HTTP server listens on (useful with port 0).
 * Any thread, after start.
 * @return the port, or 0 if not started.
 */
HEALTH_EXPORT unsigned health_port(const health_t *h);

/* ------------------------------------------------------------------ */
/* Checks                                                             */
/* ------------------------------------------------------------------ */

typedef enum health_status {
  HEALTH_PASS = 0,
  HEALTH_WARN = 1,
  HEALTH_FAIL = 2,
  HEALTH_PENDING = 3 /* reported by health_check_find() before the first result */
} health_status_t;

/** Which endpoints a check belongs to (a bit set). */
#define HEALTH_READINESS 1u
#define HEALTH_LIVENESS 2u

/* The result a check callback fills in; owned by the library. */
typedef struct health_result health_result_t;

/**
 * A check.  Runs on a library worker thread; must report through the
 * health_result_* functions before returning.  A callback that returns
 * without setting a status is reported as failed.  Runs of the same check
 * never overlap; different checks run concurrently on a pool of at most 64
 * threads (more than 64 checks hung at once make the others wait in the
 * queue, and they too are reported as timed out at their deadlines).
 */
typedef void (*health_check_fn)(health_result_t *result, void *arg);

/**
 * Set the status and an optional printf-style output message (NULL for
 * none).  Output is truncated to max_output_bytes. From the check callback.
 */
HEALTH_EXPORT void health_result_set(health_result_t *r, health_status_t status, const char *fmt,
                                     ...) HEALTH_PRINTF(3, 4);

/**
 * Report an observed value with its unit ("ms", "connections"...).
 * From the check callback.
 */
HEALTH_EXPORT void health_result_observe(health_result_t *r, double value, const char *unit);

/**
 * Milliseconds left before this run's deadline (0 once it has passed).
 * From the check callback.
 */
HEALTH_EXPORT unsigned health_result_remaining_ms(const health_result_t *r);

/*
 * Per-check options.  health_check_options_init() sets every numeric field
 * to 0, which means "the handle's default", critical to 1 and endpoints to
 * HEALTH_READINESS.
 */
typedef struct health_check_options {
  unsigned interval_ms;
  unsigned timeout_ms;
  unsigned failure_threshold; /* consecutive failures before it counts as failed */
  unsigned success_threshold; /* consecutive passes before it recovers */
  int critical; /* 1: fail -> 503; 0: fail -> "warn", still 200; anything else: HEALTH_EINVAL */
  unsigned endpoints;         /* HEALTH_READINESS and/or HEALTH_LIVENESS */
  const char *component_type; /* "componentType", default "component" */
  const char *measurement;    /* key is "<name>:<measurement>", default "responseTime"; 1-64 of
                                 [A-Za-z0-9._-] (no ':') */
  const char *component_id;   /* "componentId", default none */
  uintptr_t init_stamp;       /* written by the init function; never set it */
  void *reserved[3];          /* must stay zero: room for later fields (ABI) */
} health_check_options_t;

/**
 * Fill `o` with the defaults.
 * It also sets `init_stamp`: every function taking the struct refuses one
 * that did not go through here (HEALTH_EINVAL naming this function), so
 * `= {0}` never stands for the defaults.  Any thread.
 */
HEALTH_EXPORT void health_check_options_init(health_check_options_t *o);

/**
 * Register a check.  `name` must be 1-64 characters of [A-Za-z0-9._-] and
 * unique.  If this fails, `fn` will never be called.  Before start.
 * @param opts NULL for defaults.
 * @param free_arg called with `arg` when the handle is freed (may be NULL);
 *        if a run of this check hung past health_free(), it is called on
 *        that worker thread once the run returns, after health_free().
 * @return 0, HEALTH_EINVAL, HEALTH_EEXIST, HEALTH_ESTATE or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_check_add(health_t *h, const char *name, health_check_fn fn, void *arg,
                                   void (*free_arg)(void *arg), const health_check_options_t *opts,
                                   health_error_t *err);

/* What health_check_find() reports about one check. */
typedef struct health_check_info {
  health_status_t status;      /* effective status after thresholds */
  health_status_t last_status; /* raw status of the last completed run */
  uint64_t runs;               /* completed runs, including timed-out ones */
  unsigned consecutive_failures;
  unsigned consecutive_successes;
  int running; /* a run is in progress */
  int has_observed;
  double observed_value;
  char observed_unit[16];
  char output[HEALTH_ERROR_TEXT_LENGTH];
  void *reserved[4]; /* zero; room for later fields (ABI) */
} health_check_info_t;

/**
 * Copy the current state of one check.  Any thread.
 * @param err optional error detail ("no check named ...").
 * @return 0, HEALTH_ENOENT (no check of that name), HEALTH_EINVAL (a NULL
 *         argument) or HEALTH_EFORKED.
 */
HEALTH_EXPORT int health_check_find(health_t *h, const char *name, health_check_info_t *out,
                                    health_error_t *err);

/**
 * Overall readiness and liveness as the endpoints would report them.
 * Any thread.
 * @param endpoint HEALTH_READINESS or HEALTH_LIVENESS.
 * @return HEALTH_PASS, HEALTH_WARN or HEALTH_FAIL.
 */
HEALTH_EXPORT health_status_t health_status(health_t *h, unsigned endpoint);

/**
 * Call `fn` for every registered check in registration order, with a copy
 * of its state taken just before the call (no lock is held during it).
 * `fn` returns 0 to go on, non-zero to stop.  Any thread.
 * @return the number of checks visited, or HEALTH_EINVAL.
 */
HEALTH_EXPORT int health_check_foreach(health_t *h,
                                       int (*fn)(const char *name, const health_check_info_t *info,
                                                 void *arg),
                                       void *arg);

/* ------------------------------------------------------------------ */
/* Built-in checkers                                                  */
/* ------------------------------------------------------------------ */

typedef struct health_postgres_options {
  const char *query;    /* default "SELECT 1" */
  int require_writable; /* fail on a read-only node (replica / read-only) */
  uintptr_t init_stamp; /* written by the init function; never set it */
  void *reserved[3];    /* must stay zero: room for later fields (ABI) */
} health_postgres_options_t;

/**
 * Fill `o` with the defaults.
 * It also sets `init_stamp`: every function taking the struct refuses one
 * that did not go through here (HEALTH_EINVAL naming this function), so
 * `= {0}` never stands for the defaults.  Any thread.
 */
HEALTH_EXPORT void health_postgres_options_init(health_postgres_options_t *o);

/**
 * Register a PostgreSQL check.  `conninfo` is a libpq keyword/value string
 * or a postgres:// / postgresql:// URL; it is parsed (and rejected if
 * malformed) now, and the password never appears in any output.  One
 * connection is kept and reused between runs (health_fleet_set() can make
 * every run connect, check and close instead); failed connection attempts
 * are retried with jittered backoff, never later than one interval.  componentType "datastore",
 * observedValue the round trip in ms.  Every phase ends at the check's
 * deadline, the name lookup included: host names are resolved by the
 * checker (on each reconnect) and given to libpq as hostaddr, every address
 * tried in turn; with hostaddr or a service file, libpq resolves as told.
 * Before start.
 * @return 0, HEALTH_EURL, HEALTH_EINVAL, HEALTH_EEXIST, HEALTH_ESTATE,
 *         HEALTH_ENOMEM or HEALTH_ENOTSUP (built without libpq).
 */
HEALTH_EXPORT int health_postgres_add(health_t *h, const char *name, const char *conninfo,
                                      const health_postgres_options_t *pg,
                                      const health_check_options_t *opts, health_error_t *err);

typedef struct health_redis_options {
  const char *ca_file;         /* PEM bundle to verify the server; default system store */
  const char *ca_dir;          /* hashed CA directory */
  const char *cert_file;       /* client certificate (mutual TLS) */
  const char *key_file;        /* client key */
  const char *tls_server_name; /* name to verify and send as SNI; default the URL's host */
  int insecure_skip_verify;    /* do not verify the server (logged loudly) */
  int require_master;          /* fail unless ROLE says master */
  uintptr_t init_stamp;        /* written by the init function; never set it */
  void *reserved[3];           /* must stay zero: room for later fields (ABI) */
} health_redis_options_t;

/**
 * Fill `o` with the defaults.
 * It also sets `init_stamp`: every function taking the struct refuses one
 * that did not go through here (HEALTH_EINVAL naming this function), so
 * `= {0}` never stands for the defaults.  Any thread.
 */
HEALTH_EXPORT void health_redis_options_init(health_redis_options_t *o);

/**
 * Register a Redis check.  `url` is redis://[[user]:password@]host[:port][/db]
 * or rediss:// for TLS.  Malformed URLs and unreadable TLS files are
 * rejected now.  Runs PING (and ROLE if required) over one kept connection
 * (or a new one per run: health_fleet_set()); failed connection attempts
 * are retried with jittered backoff, never later than one interval.
 * Before start.
 * @return 0, HEALTH_EURL, HEALTH_ETLS, HEALTH_EINVAL, HEALTH_EEXIST,
 *         HEALTH_ESTATE, HEALTH_ENOMEM or HEALTH_ENOTSUP.
 */
HEALTH_EXPORT int health_redis_add(health_t *h, const char *name, const char *url,
                                   const health_redis_options_t *redis,
                                   const health_check_options_t *opts, health_error_t *err);

/*
 * Every checker below bounds every phase of a run by the check's timeout,
 * the name lookup included, and says which phase failed and why
 * ("timeout after 2000 ms (connect)", "connect failed: connection refused",
 * "HTTP 503 (expected 200-299)").  Outputs never contain host names, paths
 * or credentials; the debug log has the target with any password masked.
 */

/**
 * Register a TCP check.  A connection to `target` is opened and closed on
 * every run: it proves that something accepts connections on the port.
 * componentType "component", observedValue the connect time in ms.
 * Before start.
 * @param target "host:port", "[v6]:port" or "tcp://host:port".
 * @return 0, HEALTH_EURL, HEALTH_EINVAL, HEALTH_EEXIST, HEALTH_ESTATE or
 *         HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_tcp_add(health_t *h, const char *name, const char *target,
                                 const health_check_options_t *opts, health_error_t *err);

/* Options of an HTTP(S) check; fill with health_http_options_init(). */
typedef struct health_http_options {
  const char *method;     /* "GET" (default) or "HEAD" */
  unsigned status_min;    /* accepted status range, default 200 */
  unsigned status_max;    /* default 299 */
  const char *expect;     /* text the body must contain (GET only); default none */
  unsigned max_redirects; /* redirects followed (0-10); default 0: a 3xx is judged by the range */
  const char *ca_file;    /* https: PEM bundle to verify the server; default system store */
  const char *ca_dir;     /* https: hashed CA directory */
  const char *cert_file;  /* https: client certificate (mutual TLS) */
  const char *key_file;   /* https: client key */
  const char *tls_server_name; /* https: name to verify and send as SNI; default the URL's host */
  int insecure_skip_verify;    /* https: do not verify the server (logged loudly) */
  uintptr_t init_stamp;        /* written by the init function; never set it */
  void *reserved[3];           /* must stay zero: room for later fields (ABI) */
} health_http_options_t;

/**
 * Fill `o` with the defaults.
 * It also sets `init_stamp`: every function taking the struct refuses one
 * that did not go through here (HEALTH_EINVAL naming this function), so
 * `= {0}` never stands for the defaults.  Any thread.
 */
HEALTH_EXPORT void health_http_options_init(health_http_options_t *o);

/**
 * Register an HTTP(S) upstream check.  One request per run on a fresh
 * connection (HTTP/1.0 with Host, so never chunked), the status must be
 * in the range and, with `expect`, the body (its first 64 KiB) must
 * contain the text.  user:password in the URL is sent as Basic
 * authentication and never shown.  componentType "component",
 * observedValue the response time in ms.  Before start.
 * @param url http://[user:password@]host[:port][/path][?query] or https://.
 * @return 0, HEALTH_EURL, HEALTH_ETLS, HEALTH_EINVAL, HEALTH_EEXIST,
 *         HEALTH_ESTATE, HEALTH_ENOMEM or HEALTH_ENOTSUP (https:// in a
 *         build without OpenSSL).
 */
HEALTH_EXPORT int health_http_add(health_t *h, const char *name, const char *url,
                                  const health_http_options_t *http,
                                  const health_check_options_t *opts, health_error_t *err);

/* Options of a disk check; fill with health_disk_options_init().  A
 * threshold of 0 is off; the status is the worst of all thresholds. */
typedef struct health_disk_options {
  double warn_free_percent;        /* warn below this % of free space; default 10 */
  double fail_free_percent;        /* fail below; default 5 */
  uint64_t warn_free_bytes;        /* warn below this many free bytes; default 0 */
  uint64_t fail_free_bytes;        /* fail below; default 0 */
  double warn_free_inodes_percent; /* warn below this % of free inodes; default 10 */
  double fail_free_inodes_percent; /* fail below; default 5 */
  int write_probe;                 /* create, write, remove a file there on every run */
  uintptr_t init_stamp;            /* written by the init function; never set it */
  void *reserved[3];               /* must stay zero: room for later fields (ABI) */
} health_disk_options_t;

/**
 * Fill `o` with the defaults.
 * It also sets `init_stamp`: every function taking the struct refuses one
 * that did not go through here (HEALTH_EINVAL naming this function), so
 * `= {0}` never stands for the defaults.  Any thread.
 */
HEALTH_EXPORT void health_disk_options_init(health_disk_options_t *o);

/**
 * Register a disk check on the file system holding `path`.  It reads
 * statvfs(): the space and inodes available to unprivileged users.  componentType "system",
 * measurement "utilization", observedValue the free space in percent.
 * A file system that hangs is reported at the check's deadline.
 * Before start.
 * @return 0, HEALTH_EINVAL (no such directory, bad thresholds),
 *         HEALTH_EEXIST, HEALTH_ESTATE or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_disk_add(health_t *h, const char *name, const char *path,
                                  const health_disk_options_t *disk,
                                  const health_check_options_t *opts, health_error_t *err);

/* Options of a memory check; fill with health_memory_options_init(). */
typedef struct health_memory_options {
  double warn_percent;      /* warn at this % of the limit; default 80 */
  double fail_percent;      /* fail at; default 90 */
  const char *cgroup_dir;   /* cgroup directory to read memory.max and
                               memory.events from (cgroup v1:
                               memory.limit_in_bytes, memory.oom_control);
                               default this process's memory cgroup, v1 or
                               v2 (and the lowest limit of its parents) */
  health_status_t oom_kill; /* status when memory.events counts a new OOM
                               kill since the previous run: HEALTH_WARN
                               (default), HEALTH_FAIL, or HEALTH_PASS to ignore */
  uintptr_t init_stamp;     /* written by the init function; never set it */
  void *reserved[3];        /* must stay zero: room for later fields (ABI) */
} health_memory_options_t;

/**
 * Fill `o` with the defaults.
 * It also sets `init_stamp`: every function taking the struct refuses one
 * that did not go through here (HEALTH_EINVAL naming this function), so
 * `= {0}` never stands for the defaults.  Any thread.
 */
HEALTH_EXPORT void health_memory_options_init(health_memory_options_t *o);

/**
 * Register a memory check against the container's limit.  This process's
 * resident memory is compared with cgroup v2 memory.max (cgroup v1:
 * memory.limit_in_bytes), and new OOM kills in the container
 * (memory.events or memory.oom_control oom_kill) are reported.  Without a
 * limit it passes and reports the resident size; when no memory cgroup can
 * be found its output says why the limit cannot be seen.  componentType "system", measurement
 * "utilization", observedValue percent of the limit.  Before start.
 * @return 0, HEALTH_EINVAL, HEALTH_EEXIST, HEALTH_ESTATE or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_memory_add(health_t *h, const char *name,
                                    const health_memory_options_t *mem,
                                    const health_check_options_t *opts, health_error_t *err);

/* Options of a file descriptor check; fill with health_fds_options_init(). */
typedef struct health_fds_options {
  double warn_percent;  /* warn at this % of RLIMIT_NOFILE; default 80 */
  double fail_percent;  /* fail at; default 90 */
  uintptr_t init_stamp; /* written by the init function; never set it */
  void *reserved[3];    /* must stay zero: room for later fields (ABI) */
} health_fds_options_t;

/**
 * Fill `o` with the defaults.
 * It also sets `init_stamp`: every function taking the struct refuses one
 * that did not go through here (HEALTH_EINVAL naming this function), so
 * `= {0}` never stands for the defaults.  Any thread.
 */
HEALTH_EXPORT void health_fds_options_init(health_fds_options_t *o);

/**
 * Register a check of this process's open file descriptors against its
 * soft RLIMIT_NOFILE.  componentType "system", measurement "utilization",
 * observedValue percent of the limit.  Before start.
 * @return 0, HEALTH_EINVAL, HEALTH_EEXIST, HEALTH_ESTATE or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_fds_add(health_t *h, const char *name, const health_fds_options_t *fds,
                                 const health_check_options_t *opts, health_error_t *err);

/**
 * Register the checks described by HEALTH_CHECK_* variables.  Each
 * HEALTH_CHECK_<NAME>=<target> is a check: the target's scheme picks the
 * checker (tcp://, http://, https://, disk:/path, memory:, fds:,
 * postgresql:// or postgres://, redis:// or rediss://),
 * HEALTH_CHECK_<NAME>_<OPTION> variables set its options, and the check
 * is named <name> in lower case.
 *
 * Options of every check: INTERVAL_MS, TIMEOUT_MS, FAILURE_THRESHOLD,
 * SUCCESS_THRESHOLD (whole numbers), CRITICAL, READINESS, LIVENESS (1/0,
 * true/false, yes/no, on/off).  http(s): METHOD (GET or HEAD), STATUS (200,
 * 200-399 or 2xx), EXPECT (text), MAX_REDIRECTS (0-10).  https and
 * rediss: CA_FILE, CA_DIR, CERT_FILE, KEY_FILE, SERVER_NAME,
 * INSECURE_SKIP_VERIFY.  postgresql: QUERY, REQUIRE_WRITABLE.  redis:
 * REQUIRE_MASTER.  disk: WARN and FAIL, a percentage of free space (10%)
 * or a free size (bytes, or a number and one of K, M, G, T, powers of
 * 1024: 500M, 1.5G; nothing else), INODES_WARN, INODES_FAIL (percent),
 * WRITE_PROBE.  memory and fds: WARN and FAIL (percent); memory also
 * CGROUP_DIR and OOM_KILL (warn, fail or ignore).  Given thresholds
 * replace both defaults.
 *
 * All or nothing: on any malformed variable nothing is registered and the
 * message names the variable (never echoing a URL that holds a password).
 * HEALTH_CHECK_INTERVAL_MS and HEALTH_CHECK_TIMEOUT_MS are the handle's
 * defaults (health_options_from_env()), not checks.  Before start.
 * health_config_from_env() does this with every other variable.
 * @param added optional: receives the number of checks registered.
 * @return 0, HEALTH_EINVAL, HEALTH_EURL, HEALTH_ETLS, HEALTH_EEXIST,
 *         HEALTH_ESTATE, HEALTH_ENOMEM or HEALTH_ENOTSUP.
 */
HEALTH_EXPORT int health_check_add_from_env(health_t *h, unsigned *added, health_error_t *err);

/* ------------------------------------------------------------------ */
/* Built-in checkers: fleets (jitter, backoff, kept connections)      */
/* ------------------------------------------------------------------ */

/**
 * How one replica of a fleet spreads its load on shared dependencies.
 * Fill with health_fleet_options_init() (the defaults below), change
 * fields, pass to health_fleet_set().  Environment variables are given
 * beside each field; see health_fleet_options_from_env().
 *
 * Bounds, for a check of interval I (see docs/operations.md, "Fleets"):
 *  - every check's first run is at start (readiness is not delayed); its
 *    second run comes at a random point of (0, I] after the first, so
 *    replicas started together fall out of step at once;
 *  - each later run starts I - U[0, I x run_jitter_percent / 100] after the
 *    previous one: never later than I, on average I x (1 - p/200);
 *  - after a failed connection attempt k (k = 0, 1, ...) the PostgreSQL and
 *    Redis checkers retry after U[0, min(I, I/4 x 2^k)] ("full jitter",
 *    capped at one interval), so a dependency that comes back is seen
 *    within one interval plus one check, never later than without backoff.
 */
typedef struct health_fleet_options {
  int initial_offset;          /* HEALTH_JITTER, default 1: random phase from the second run */
  unsigned run_jitter_percent; /* HEALTH_JITTER=<0-50>, default 10; 0 = exact intervals */
  int backoff;                 /* HEALTH_JITTER, default 1: jittered reconnect backoff */
  int keep_connections;        /* HEALTH_KEEP_CONNECTIONS 0|1, default 1: one kept
                                  connection per PostgreSQL/Redis check; 0 = connect,
                                  check and close on every run */
  unsigned long long seed;     /* default 0: seeded from getrandom(); else a fixed
                                  seed for a reproducible schedule (tests) */
  uintptr_t init_stamp;        /* written by the init function; never set it */
  void *reserved[3];           /* must stay zero: room for later fields (ABI) */
} health_fleet_options_t;

/**
 * Fill `o` with the defaults (all on, 10 %, seed 0).
 * It also sets `init_stamp`: every function taking the struct refuses one
 * that did not go through here (HEALTH_EINVAL naming this function), so
 * `= {0}` never stands for the defaults.  Any thread.
 */
HEALTH_EXPORT void health_fleet_options_init(health_fleet_options_t *o);

/**
 * Override fields of `o` from HEALTH_JITTER and HEALTH_KEEP_CONNECTIONS.
 * HEALTH_JITTER = on (defaults) | off (no random phase, exact intervals,
 * no backoff: every replica in step, the behaviour before jitter existed)
 * | a whole number 0-50 (on, with that run_jitter_percent);
 * HEALTH_KEEP_CONNECTIONS = 1/0, true/false, yes/no or on/off.
 * Unset or empty variables change nothing; a malformed value is rejected
 * with HEALTH_EINVAL naming the variable and `o` is left unchanged.
 * Before start (reads the environment).  health_config_from_env() reads
 * these with every other variable.
 * @param o   options filled by health_fleet_options_init().
 * @param err optional error detail.
 * @return 0 or HEALTH_EINVAL.
 */
HEALTH_EXPORT int health_fleet_options_from_env(health_fleet_options_t *o, health_error_t *err);

/**
 * Apply fleet options to a handle.  They concern every check of it,
 * built-in or custom (keep_connections: the PostgreSQL and Redis
 * checkers).  Without a call the defaults apply.  Before start.
 * @param h   the handle.
 * @param o   the options (NULL = defaults).
 * @param err optional error detail.
 * @return 0, HEALTH_EINVAL (run_jitter_percent above 50, a struct not
 *         filled by health_fleet_options_init(), or a non-zero reserved
 *         field) or HEALTH_ESTATE (already started).
 */
HEALTH_EXPORT int health_fleet_set(health_t *h, const health_fleet_options_t *o,
                                   health_error_t *err);

/* ------------------------------------------------------------------ */
/* Shutdown                                                           */
/* ------------------------------------------------------------------ */

/* Exit codes of the shutdown sequence. */
#define HEALTH_EXIT_OK 0           /* drained, every hook succeeded */
#define HEALTH_EXIT_HOOK_FAILED 3  /* a hook returned non-zero */
#define HEALTH_EXIT_HOOK_TIMEOUT 4 /* a hook overran its timeout and was abandoned */
#define HEALTH_EXIT_DEADLINE \
  5 /* the hard deadline fired (held by a watchdog thread, whatever blocks) */
#define HEALTH_EXIT_FORCED 6 /* a third signal forced an immediate exit */

/**
 * A flush hook.  Runs on a library thread made at start, after the drain.
 * If a hook before it was abandoned at its timeout (it keeps that thread)
 * and no new thread can be made, it runs on the shutdown thread: then its
 * timeout cannot cut it, the deadline still does.  Return 0 on success,
 * non-zero on failure.  `remaining_ms` is this hook's budget.
 */
typedef int (*health_hook_fn)(void *arg, unsigned remaining_ms);

/**
 * Register a flush hook.  Hooks run in ascending `order` (ties in
 * registration order), each under `timeout_ms` (0 = the handle's default),
 * cut by the shutdown deadline (the hook's `remaining_ms` says how much it
 * really gets; health_start() logs a warning for each hook the deadline
 * may cut).  `name` follows the check-name rules (1-64 characters of
 * [A-Za-z0-9._-]) and is unique among hooks.  Before start.
 * @return 0, HEALTH_EINVAL, HEALTH_EEXIST, HEALTH_ESTATE or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_hook_add(health_t *h, const char *name, int order, unsigned timeout_ms,
                                  health_hook_fn fn, void *arg, health_error_t *err);

/**
 * Set the drain callback.  `fn(arg)` is called once on the shutdown thread
 * when draining starts (readiness has already flipped).  It must not block
 * and must not call health_stop() or health_free().  A second call
 * replaces the callback.  A NULL `fn` is refused (the callback in place,
 * if any, stays).  Before start.
 * @param err optional error detail.
 * @return 0, HEALTH_EINVAL (`h` or `fn` NULL), HEALTH_ESTATE (after
 *         health_start(): the callback is not changed) or HEALTH_EFORKED.
 */
HEALTH_EXPORT int health_drain_notify(health_t *h, void (*fn)(void *arg), void *arg,
                                      health_error_t *err);

/**
 * A file descriptor that becomes readable when draining starts (and stays
 * readable), for an event loop to watch (poll, epoll, libevent...).  It is
 * the read end of a non-blocking, close-on-exec pipe that belongs to the
 * handle: the application must not close it, read from it or write to it
 * (a read would take away the byte that keeps it readable for every other
 * watcher).  It stays open and keeps its number until health_free(), which
 * closes it: stop watching it before that.  Any thread, after health_new().
 * @return the descriptor, or -1 when `h` is NULL.
 */
HEALTH_EXPORT int health_drain_fd(const health_t *h);

/**
 * Start the shutdown sequence, as SIGTERM would.  Async-signal-safe: an
 * application that owns its signals calls this from its own handler.
 * A call while the sequence runs counts as a repeated signal: the second
 * ends the drain window at once (the hooks still run), the third exits
 * at once with HEALTH_EXIT_FORCED, logging every hook it skips; one that
 * comes within 1 s of the previous is logged and ignored (a supervisor's
 * burst must not force an exit that skips the flush).
 */
HEALTH_EXPORT void health_shutdown(health_t *h);

/** 1 once draining has started. Any thread; async-signal-safe. */
HEALTH_EXPORT int health_drain_active(const health_t *h);

/**
 * Report a request starting / ending, so the drain may end early once
 * nothing is in flight.  Any thread; a single atomic operation each.
 */
HEALTH_EXPORT void health_inflight_begin(health_t *h);
HEALTH_EXPORT void health_inflight_end(health_t *h);

/**
 * Block until the shutdown sequence has finished (only returns when
 * exit_on_shutdown is 0), then return its exit code.  If the sequence is
 * still blocked 100 ms after the deadline (in a log sink, a drain
 * callback, a listener, a lock), returns the code it had decided or
 * HEALTH_EXIT_DEADLINE then (after a "shutdown_watchdog" log line, given at
 * most 50 ms); health_stop() and health_free() then wait one second more
 * for the sequence and leave the handle running if it is still blocked.
 * Any thread except the library's own.
 * @return the exit code (HEALTH_EXIT_*), 0 after health_stop(), or
 *         HEALTH_ESTATE at once before health_start() (nothing could end
 *         the wait), HEALTH_EINVAL for NULL.
 */
HEALTH_EXPORT int health_wait(health_t *h);

/* ------------------------------------------------------------------ */
/* Liveness and readiness controls                                    */
/* ------------------------------------------------------------------ */

/* Heartbeats, manual readiness, startup gates, HAProxy agent-check. */

/*
 * A heartbeat proves that an application thread still makes progress.
 * Register it with a maximum age and beat it from the thread's loop; when
 * it has not been beaten for longer than its maximum age, liveness fails
 * (and readiness too) with "<name>:heartbeat" in the body naming it and
 * its age, and systemd's WATCHDOG=1 stops; the next beat recovers it.
 * Ages are measured by a library thread that looks at every heartbeat each
 * max_age/4 (at most every 50 ms), so a stuck loop is reported within its
 * maximum age plus that period.  While draining, stale heartbeats no longer
 * fail liveness (an application may stop its loops when the drain starts).
 */
typedef struct health_heartbeat health_heartbeat_t;

/**
 * Register a heartbeat.  Registering counts as a beat (time before
 * health_start() does not count).  Any thread, before or after start.
 * @param name 1-64 characters of [A-Za-z0-9._-], unique among heartbeats;
 *        the body key is "<name>:heartbeat".
 * @param max_age_ms 100 ms to 24 h.
 * @param out receives the heartbeat, valid until health_heartbeat_remove()
 *        or health_free().
 * @return 0, HEALTH_EINVAL (also beyond 1024 heartbeats), HEALTH_EEXIST,
 *         HEALTH_ESTATE (stopped), HEALTH_ESYS or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_heartbeat_add(health_t *h, const char *name, unsigned max_age_ms,
                                       health_heartbeat_t **out, health_error_t *err);

/**
 * Beat: "this thread made progress".  One relaxed atomic increment: no
 * lock, no system call, a few nanoseconds (bench/heartbeat.sh).  Any
 * thread; async-signal-safe.  NULL is ignored.
 */
HEALTH_EXPORT void health_heartbeat_beat(health_heartbeat_t *hb);

/**
 * Unregister and free a heartbeat (a thread that ends removes its own);
 * nobody may beat it afterwards.  Any thread.
 * @param err optional error detail.
 * @return 0, HEALTH_EINVAL (NULL), HEALTH_ENOENT (already removed) or
 *         HEALTH_EFORKED.
 */
HEALTH_EXPORT int health_heartbeat_remove(health_heartbeat_t *hb, health_error_t *err);

/*
 * Shared heartbeats, for pre-forked workers: a worker process proves it
 * still makes progress to the master that owns the handle.  The master
 * creates one before health_start() and before fork() (it is an anonymous
 * shared mapping the workers inherit), with one slot per worker; after
 * each fork() it attaches the worker's pid to the worker's slot; each
 * worker beats its slot from its loop.  The master's liveness and
 * readiness fail (check `name`, "<name>:workers" in the body) when an
 * attached slot has not been beaten for longer than max_age_ms, or at once
 * when its pid no longer exists (the worker exited and was reaped).  The
 * master detaches a slot it stops on purpose (a worker being replaced, the
 * end of the drain).  Slots not attached are not looked at.  The mapping
 * is released with the handle (health_free() in the master, after the
 * workers are gone).
 */
typedef struct health_heartbeat_shared health_heartbeat_shared_t;

/**
 * Create a shared heartbeat of `slots` slots, checked every max_age_ms/4.
 * Before start, before fork().
 * @param name the check's name (1-64 characters of [A-Za-z0-9._-], unique
 *        among checks).
 * @param slots 1 to 4096 (one per worker).
 * @param max_age_ms 100 ms to 24 h.
 * @param out receives the shared heartbeat, valid until health_free().
 * @return 0, HEALTH_EINVAL, HEALTH_EEXIST, HEALTH_ESTATE (started),
 *         HEALTH_EFORKED, HEALTH_ESYS (mmap) or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_heartbeat_shared_add(health_t *h, const char *name, unsigned slots,
                                              unsigned max_age_ms, health_heartbeat_shared_t **out,
                                              health_error_t *err);

/**
 * Beat slot `slot`: one relaxed atomic increment in shared memory, no lock,
 * no system call.  In the worker process that owns the slot (one beating
 * process per slot); async-signal-safe.  A NULL heartbeat or a slot out of
 * range is ignored.
 */
HEALTH_EXPORT void health_heartbeat_shared_beat(health_heartbeat_shared_t *s, unsigned slot);

/**
 * Watch slot `slot` as the worker `pid` (the master, right after fork()
 * returned the pid).  Attaching a new pid starts its age afresh.  Any
 * thread of the master; async-signal-safe (one atomic store) when `err`
 * is NULL (a message is formatted with vsnprintf()).
 * @param err optional error detail; NULL in a signal handler.
 * @return 0 or HEALTH_EINVAL (NULL, slot out of range, pid <= 0).
 */
HEALTH_EXPORT int health_heartbeat_shared_attach(health_heartbeat_shared_t *s, unsigned slot,
                                                 pid_t pid, health_error_t *err);

/**
 * Stop watching slot `slot` (a worker stopped on purpose).  Any thread of
 * the master; async-signal-safe when `err` is NULL.
 * @param err optional error detail; NULL in a signal handler.
 * @return 0 or HEALTH_EINVAL (NULL, slot out of range).
 */
HEALTH_EXPORT int health_heartbeat_shared_detach(health_heartbeat_shared_t *s, unsigned slot,
                                                 health_error_t *err);

/**
 * Take the service out of readiness now, with a reason (cache warm-up, a
 * maintenance switch, a full work queue): /ready answers 503 with
 * "output":"not ready: <reason>" from the next request on, the HAProxy
 * agent says "down #not ready: <reason>", and systemd gets STATUS=.
 * Liveness is unaffected.  Calling again replaces the reason.  Any thread.
 * @param reason up to 256 printable characters; NULL or "" for "not ready".
 * @return 0, HEALTH_EINVAL or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_ready_hold(health_t *h, const char *reason, health_error_t *err);

/**
 * Undo health_ready_hold(): readiness is again what the checks, gates
 * and heartbeats say.  Any thread.
 * @param err optional error detail.
 * @return 0, HEALTH_EINVAL (NULL handle) or HEALTH_EFORKED.
 */
HEALTH_EXPORT int health_ready_release(health_t *h, health_error_t *err);

/**
 * Add a startup gate: readiness fails ("<name>:startup" in the body) until
 * health_gate_open() opens it (migrations done, cache loaded).  With a
 * startup deadline, a gate still closed that long after health_start() also
 * fails liveness, so the platform restarts a service that never finishes
 * starting.  Before start.
 * @param name 1-64 characters of [A-Za-z0-9._-], unique among gates.
 * @return 0, HEALTH_EINVAL, HEALTH_EEXIST, HEALTH_ESTATE or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_gate_add(health_t *h, const char *name, health_error_t *err);

/**
 * Open a gate (opening an open gate does nothing).  Any thread.
 * @param err optional error detail ("no gate named ...").
 * @return 0, HEALTH_EINVAL, HEALTH_ENOENT or HEALTH_EFORKED.
 */
HEALTH_EXPORT int health_gate_open(health_t *h, const char *name, health_error_t *err);

/**
 * How long after health_start() every gate must be open before liveness
 * fails (HEALTH_STARTUP_DEADLINE_MS).  Before start.
 * @param deadline_ms 0 (none, the default) to 86400000.
 * @return 0, HEALTH_EINVAL or HEALTH_ESTATE.
 */
HEALTH_EXPORT int health_startup_set_deadline(health_t *h, unsigned deadline_ms,
                                              health_error_t *err);

/*
 * HAProxy agent-check responder, off by default.  HAProxy connects to the
 * agent port every agent-inter and reads one line: "up ready" (with " N%"
 * when a weight is set) while ready and alive, "down #<reason>" when not,
 * "drain #draining" during the drain window.  health_agent_options_init()
 * zeroes every field and sets the init stamp; reserved fields must stay
 * zero.
 */
typedef struct health_agent_options {
  const char *address;  /* HEALTH_AGENT_ADDRESS; NULL: the health port's address */
  unsigned port;        /* HEALTH_AGENT_PORT; 0 picks a free port (health_agent_port()) */
  unsigned weight;      /* HEALTH_AGENT_WEIGHT: percent sent with "up", 1-256; 0 sends none */
  uintptr_t init_stamp; /* written by the init function; never set it */
  void *reserved[3];    /* must stay zero: room for later fields (ABI) */
} health_agent_options_t;

/**
 * Fill `o` with the defaults.
 * It also sets `init_stamp`: every function taking the struct refuses one
 * that did not go through here (HEALTH_EINVAL naming this function), so
 * `= {0}` never stands for the defaults.  Any thread.
 */
HEALTH_EXPORT void health_agent_options_init(health_agent_options_t *o);

/**
 * Turn the agent responder on (the options are copied).  Before start.
 * @return 0, HEALTH_EINVAL, HEALTH_ESTATE or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_agent_set(health_t *h, const health_agent_options_t *o,
                                   health_error_t *err);

/**
 * Change the weight the agent sends with "up" (for example lower under
 * load).  Any thread.
 * @param percent 0 (send none) or 1-256.
 * @param err optional error detail.
 * @return 0, HEALTH_EINVAL or HEALTH_EFORKED.
 */
HEALTH_EXPORT int health_agent_set_weight(health_t *h, unsigned percent, health_error_t *err);

/**
 * The TCP port the agent listens on.  Any thread, after start.
 * @return the port, or 0 when the agent is off or not started.
 */
HEALTH_EXPORT unsigned health_agent_port(const health_t *h);

/**
 * Apply the settings of this section found in the environment:
 * HEALTH_STARTUP_DEADLINE_MS, HEALTH_AGENT_PORT (set: the agent is on),
 * HEALTH_AGENT_ADDRESS and HEALTH_AGENT_WEIGHT (these two need the agent
 * on).  Unset or empty variables change nothing; a malformed value is
 * HEALTH_EINVAL naming the variable, and then nothing changes.  Before
 * start (reads the environment).  health_config_from_env() reads these
 * with every other variable.
 * @return 0, HEALTH_EINVAL, HEALTH_ESTATE or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_controls_from_env(health_t *h, health_error_t *err);

/* ------------------------------------------------------------------ */
/* Observability: the answers, listeners, the health port             */
/* ------------------------------------------------------------------ */

/** health_answer_render(): the Prometheus answer (/metrics on the health port). */
#define HEALTH_METRICS 4u

/*
 * Paths on the health port.  Fill with health_serve_options_init(), change
 * fields, pass to health_serve_set(), which copies the strings.
 * A path is 1-128 printable characters starting with '/', without '?',
 * '#', spaces or '%'; the three must differ.  While a path keeps its
 * default, its alias (/readyz, /livez) is served too.
 */
typedef struct health_serve_options {
  const char *ready_path;   /* HEALTH_READY_PATH, default "/ready" */
  const char *live_path;    /* HEALTH_LIVE_PATH, default "/health" */
  const char *metrics_path; /* HEALTH_METRICS_PATH, default "/metrics"; "off" (or "") serves none */
  uintptr_t init_stamp;     /* written by the init function; never set it */
  void *reserved[3];        /* must stay zero: room for later fields (ABI) */
} health_serve_options_t;

/**
 * Fill `o` with the defaults.
 * It also sets `init_stamp`: every function taking the struct refuses one
 * that did not go through here (HEALTH_EINVAL naming this function), so
 * `= {0}` never stands for the defaults.  Any thread.
 */
HEALTH_EXPORT void health_serve_options_init(health_serve_options_t *o);

/**
 * Override fields of `o` from HEALTH_READY_PATH, HEALTH_LIVE_PATH and
 * HEALTH_METRICS_PATH (unset or empty: unchanged).  A malformed value is
 * rejected naming the variable and `o` is left unchanged.  Strings point
 * into the environment.  Before start (reads the environment).
 * health_config_from_env() reads these with every other variable.
 * @return 0 or HEALTH_EINVAL.
 */
HEALTH_EXPORT int health_serve_options_from_env(health_serve_options_t *o, health_error_t *err);

/**
 * Set the paths served on the health port.  Before start.
 * @param o options filled by health_serve_options_init().
 * @return 0, HEALTH_EINVAL, HEALTH_ESTATE or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_serve_set(health_t *h, const health_serve_options_t *o,
                                   health_error_t *err);

/*
 * One answer rendered by health_answer_render(): what the health port would send
 * for the same request.  The body is a snapshot shared with other callers;
 * it stays valid (and unchanged) until health_answer_release().
 */
typedef struct health_answer {
  unsigned code;            /* HTTP status: 200, 503, 403 or 404 */
  const char *content_type; /* static string */
  const char *body;         /* body_len bytes, NUL-terminated */
  size_t body_len;
  void *reserved[4]; /* the library's reference to the snapshot */
} health_answer_t;

/**
 * Render the current answer of an endpoint, for an application that serves
 * /ready, /health or /metrics on its own server (with or without the
 * library's HTTP thread).  Cheap enough to call per request: bodies are
 * rendered once per change of state and shared by reference (a call that
 * finds the state unchanged takes a lock, bumps a reference count and
 * allocates nothing).  The handle's detail policy applies as on the health
 * port.  Any thread, after health_new().
 * @param what HEALTH_READINESS, HEALTH_LIVENESS or HEALTH_METRICS.
 * @param check NULL, or a check's name for the per-check view of
 *        readiness/liveness (like GET /ready?check=NAME), after start: 404
 *        for an unknown check, 403 without full detail.
 * @param authorization the request's Authorization header, or NULL (it
 *        unlocks full detail under HEALTH_DETAIL_TOKEN).
 * @param accept the request's Accept header, or NULL: metrics are in
 *        OpenMetrics 1.0 when it names application/openmetrics-text, in
 *        the Prometheus text format 0.0.4 otherwise.
 * @param out receives the answer; release it with health_answer_release().
 * @param err optional error detail.
 * @return 0, HEALTH_EINVAL, HEALTH_ENOMEM or HEALTH_EFORKED.
 */
HEALTH_EXPORT int health_answer_render(health_t *h, unsigned what, const char *check,
                                       const char *authorization, const char *accept,
                                       health_answer_t *out, health_error_t *err);

/**
 * Release an answer from health_answer_render() (idempotent; zeroes `a`).
 * Any thread; an answer may also be released after health_free().
 */
HEALTH_EXPORT void health_answer_release(health_answer_t *a);

/* What changed, as told to a status listener. */
typedef struct health_transition {
  unsigned subject;         /* 0: a check; HEALTH_READINESS or HEALTH_LIVENESS: an endpoint */
  const char *check;        /* the check's name; NULL for an endpoint */
  health_status_t from, to; /* a check's first result comes from HEALTH_PENDING */
  const char *reason;       /* the run's output, or why the endpoint changed; never NULL */
  uint64_t seq;             /* 1, 2, 3...; a gap means events were dropped */
  int64_t wall_ms;          /* when it happened, ms since the epoch */
  void *reserved[4];
} health_transition_t;

/**
 * A status listener.  Called on the library's notifier thread, one event
 * at a time, in the order the transitions happened.  `t` and its strings
 * are valid during the call only.  Must not call health_stop() or
 * health_free(); other calls are fine.  A slow listener delays only later
 * events: the engine queues them (256 at most) and never waits; when the
 * queue is full new events are dropped and counted (the next delivered
 * event's seq jumps, the metric libhealth_listener_events_dropped_total
 * grows, and a warn log line says so).
 */
typedef void (*health_listener_fn)(const health_transition_t *t, void *arg);

/**
 * Register a listener for every transition of a check's effective status
 * and of the readiness and liveness answers (draining included).  At most
 * 16 listeners.  If this fails, `fn` will never be called.  Listeners run
 * on the library's notifier thread, one event (a health_transition_t) at a
 * time, in order; the engine never waits for them: a queue holds 256
 * events, and on a full queue new events are dropped and counted (a gap in
 * `seq`).  health_stop() returns once every queued event was told.
 * Before start.
 * @return 0, HEALTH_EINVAL, HEALTH_ESTATE or HEALTH_ENOMEM.
 */
HEALTH_EXPORT int health_listener_add(health_t *h, health_listener_fn fn, void *arg,
                                      health_error_t *err);

/**
 * Ceiling for the soft RLIMIT_NOFILE.  At health_start() the library makes
 * room for its connection table (max_connections, plus a quarter and 16
 * for connections cut but not yet closed, plus 64 descriptors of margin,
 * on top of those already open): if the soft limit
 * is lower it raises it as far as needed, never above the hard limit nor
 * above `max_soft`.  If the room stays too small, the connection cap
 * shrinks to fit and a warning is logged ("connections_capped").
 * health_config_from_env() sets it from HEALTH_NOFILE_MAX (a number,
 * 0, or "hard"; the library no longer reads it at start); without either,
 * the ceiling is the hard limit.  Pass 0 to never change the limit (for instance in a process that
 * still uses select(), which fails on descriptors above 1023).
 * Before start.
 * @param max_soft the highest soft limit the library may set; 0: never raise.
 * @return 0, HEALTH_EINVAL (h NULL), HEALTH_ESTATE (already started).
 */
HEALTH_EXPORT int health_fds_set_limit(health_t *h, unsigned long max_soft, health_error_t *err);

/* ------------------------------------------------------------------ */
/* Probe                                                              */
/* ------------------------------------------------------------------ */

/**
 * GET `url` (http://host[:port][/path][?query], IPv4/IPv6 literal or name)
 * with one timeout that bounds everything: the name lookup, connecting
 * (each address in turn), sending and the whole answer.  For a service
 * binary that is its own container HEALTHCHECK.  Same as
 * health_probe_with() with default options and this timeout.  Any thread.
 * @param url        an http:// URL (https:// and user@ are refused).
 * @param timeout_ms the total time allowed; 0 means 2000.
 * @param reason     optional buffer for a one-line reason ("HTTP 200 OK",
 *                   "HTTP 503 Service Unavailable (expected 200-299)",
 *                   "timeout after 2000 ms (dns)", ...).
 * @param reason_len its size.
 * @return 0 on a 2xx answer, 1 otherwise (usable as an exit status).
 */
HEALTH_EXPORT int health_probe(const char *url, unsigned timeout_ms, char *reason,
                               size_t reason_len);

/** Options of health_probe_with(); fill with health_probe_options_init(). */
typedef struct health_probe_options {
  unsigned timeout_ms;        /* total time for everything; default 2000 (0 = default) */
  const char *expect;         /* accepted status codes: "200-299" (NULL, the default),
                               * "200-399" (as Kubernetes), "200,204", "2xx,3xx" */
  const char *const *headers; /* NULL-terminated list of "Name: value" request headers,
                               * or NULL; Host, User-Agent, Accept, Connection replace
                               * the defaults, "Name:" (empty) removes one */
  uintptr_t init_stamp;       /* written by the init function; never set it */
  void *reserved[3];          /* must stay zero: room for later fields (ABI) */
} health_probe_options_t;

/**
 * Fill `o` with the defaults (timeout 2000 ms, 200-299, no extra header).
 * It also sets `init_stamp`: every function taking the struct refuses one
 * that did not go through here (a reason naming this function), so
 * `= {0}` never stands for the defaults.  Any thread.
 * @param o the options to fill.
 */
HEALTH_EXPORT void health_probe_options_init(health_probe_options_t *o);

/**
 * health_probe() with options.  The strings are only read during the call.
 * Any thread; one short-lived thread per call does a name lookup (none
 * for an IP literal), and is left to finish on its own if the timeout
 * comes first.
 * @param url        an http:// URL.
 * @param o          options, or NULL for the defaults.
 * @param reason     optional buffer for a one-line reason (also says what
 *                   is wrong with a bad URL, status list or header).
 * @param reason_len its size.
 * @return 0 when the answer's status is accepted, 1 otherwise, bad input
 *         included (usable as an exit status).
 */
HEALTH_EXPORT int health_probe_with(const char *url, const health_probe_options_t *o, char *reason,
                                    size_t reason_len);

/* ------------------------------------------------------------------ */
/* Deprecated names                                                   */
/* ------------------------------------------------------------------ */

/*
 * The names 0.2.0 replaced (docs/guide.md, "Naming"; NEWS).  Each is the
 * same function under its old name and signature; a call warns at compile
 * time and still works.  They are removed in 0.3.0.  Define
 * HEALTH_NO_DEPRECATED before including this header to hide them.
 */
#ifndef HEALTH_NO_DEPRECATED

/** Deprecated name of health_postgres_options_t. */
typedef health_postgres_options_t health_pg_options_t
    HEALTH_DEPRECATED("use health_postgres_options_t");

/** Deprecated: the old name of health_check_add(). */
HEALTH_EXPORT int health_add_check(health_t *h, const char *name, health_check_fn fn, void *arg,
                                   void (*free_arg)(void *arg), const health_check_options_t *opts,
                                   health_error_t *err) HEALTH_DEPRECATED("use health_check_add()");

/** Deprecated: the old name of health_check_find(), without its health_error_t. */
HEALTH_EXPORT int health_check_get(health_t *h, const char *name, health_check_info_t *out)
    HEALTH_DEPRECATED("use health_check_find()");

/** Deprecated: the old name of health_check_add_from_env(). */
HEALTH_EXPORT int health_add_checks_from_env(health_t *h, unsigned *added, health_error_t *err)
    HEALTH_DEPRECATED("use health_check_add_from_env()");

/** Deprecated: the old name of health_postgres_options_init(). */
HEALTH_EXPORT void health_pg_options_init(health_postgres_options_t *o)
    HEALTH_DEPRECATED("use health_postgres_options_init()");

/** Deprecated: the old name of health_postgres_add(). */
HEALTH_EXPORT int health_add_postgres(health_t *h, const char *name, const char *conninfo,
                                      const health_postgres_options_t *pg,
                                      const health_check_options_t *opts, health_error_t *err)
    HEALTH_DEPRECATED("use health_postgres_add()");

/** Deprecated: the old name of health_redis_add(). */
HEALTH_EXPORT int health_add_redis(health_t *h, const char *name, const char *url,
                                   const health_redis_options_t *redis,
                                   const health_check_options_t *opts, health_error_t *err)
    HEALTH_DEPRECATED("use health_redis_add()");

/** Deprecated: the old name of health_tcp_add(). */
HEALTH_EXPORT int health_add_tcp(health_t *h, const char *name, const char *target,
                                 const health_check_options_t *opts, health_error_t *err)
    HEALTH_DEPRECATED("use health_tcp_add()");

/** Deprecated: the old name of health_http_add(). */
HEALTH_EXPORT int health_add_http(health_t *h, const char *name, const char *url,
                                  const health_http_options_t *http,
                                  const health_check_options_t *opts, health_error_t *err)
    HEALTH_DEPRECATED("use health_http_add()");

/** Deprecated: the old name of health_disk_add(). */
HEALTH_EXPORT int health_add_disk(health_t *h, const char *name, const char *path,
                                  const health_disk_options_t *disk,
                                  const health_check_options_t *opts, health_error_t *err)
    HEALTH_DEPRECATED("use health_disk_add()");

/** Deprecated: the old name of health_memory_add(). */
HEALTH_EXPORT int health_add_memory(health_t *h, const char *name,
                                    const health_memory_options_t *mem,
                                    const health_check_options_t *opts, health_error_t *err)
    HEALTH_DEPRECATED("use health_memory_add()");

/** Deprecated: the old name of health_fds_add(). */
HEALTH_EXPORT int health_add_fds(health_t *h, const char *name, const health_fds_options_t *fds,
                                 const health_check_options_t *opts, health_error_t *err)
    HEALTH_DEPRECATED("use health_fds_add()");

/** Deprecated: the old name of health_fds_set_limit(). */
HEALTH_EXPORT int health_set_nofile_max(health_t *h, unsigned long max_soft, health_error_t *err)
    HEALTH_DEPRECATED("use health_fds_set_limit()");

/** Deprecated: the old name of health_hook_add(). */
HEALTH_EXPORT int health_add_hook(health_t *h, const char *name, int order, unsigned timeout_ms,
                                  health_hook_fn fn, void *arg, health_error_t *err)
    HEALTH_DEPRECATED("use health_hook_add()");

/** Deprecated: the old name of health_drain_notify(), without its health_error_t. */
HEALTH_EXPORT int health_on_drain(health_t *h, void (*fn)(void *arg), void *arg)
    HEALTH_DEPRECATED("use health_drain_notify()");

/** Deprecated: the old name of health_drain_active(). */
HEALTH_EXPORT int health_is_draining(const health_t *h)
    HEALTH_DEPRECATED("use health_drain_active()");

/** Deprecated: the old name of health_answer_render(), without its health_error_t. */
HEALTH_EXPORT int health_render(health_t *h, unsigned what, const char *check,
                                const char *authorization, const char *accept, health_answer_t *out)
    HEALTH_DEPRECATED("use health_answer_render()");

/** Deprecated: the old name of health_listener_add(). */
HEALTH_EXPORT int health_add_listener(health_t *h, health_listener_fn fn, void *arg,
                                      health_error_t *err)
    HEALTH_DEPRECATED("use health_listener_add()");

/** Deprecated: the old name of health_fleet_set(). */
HEALTH_EXPORT int health_set_fleet(health_t *h, const health_fleet_options_t *o,
                                   health_error_t *err) HEALTH_DEPRECATED("use health_fleet_set()");

/** Deprecated: the old name of health_serve_set(). */
HEALTH_EXPORT int health_set_serve_options(health_t *h, const health_serve_options_t *o,
                                           health_error_t *err)
    HEALTH_DEPRECATED("use health_serve_set()");

/** Deprecated: the old name of health_agent_set(). */
HEALTH_EXPORT int health_set_agent(health_t *h, const health_agent_options_t *o,
                                   health_error_t *err) HEALTH_DEPRECATED("use health_agent_set()");

/** Deprecated: the old name of health_ready_hold(). */
HEALTH_EXPORT int health_set_not_ready(health_t *h, const char *reason, health_error_t *err)
    HEALTH_DEPRECATED("use health_ready_hold()");

/** Deprecated: the old name of health_ready_release(), without its health_error_t. */
HEALTH_EXPORT int health_set_ready(health_t *h) HEALTH_DEPRECATED("use health_ready_release()");

/** Deprecated: the old name of health_gate_add(). */
HEALTH_EXPORT int health_add_gate(health_t *h, const char *name, health_error_t *err)
    HEALTH_DEPRECATED("use health_gate_add()");

/** Deprecated: the old name of health_gate_open(), without its health_error_t. */
HEALTH_EXPORT int health_open_gate(health_t *h, const char *name)
    HEALTH_DEPRECATED("use health_gate_open()");

/** Deprecated: the old name of health_startup_set_deadline(). */
HEALTH_EXPORT int health_set_startup_deadline(health_t *h, unsigned deadline_ms,
                                              health_error_t *err)
    HEALTH_DEPRECATED("use health_startup_set_deadline()");

#endif /* HEALTH_NO_DEPRECATED */

#ifdef __cplusplus
}
#endif

#endif /* HEALTH_H */
