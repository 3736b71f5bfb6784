/*
 * Reconnect backoff for the checkers that keep a connection (PostgreSQL,
 * Redis, and any later one): after failed attempt k the next one comes
 * after U[0, min(I, I/4 x 2^k)] from the start of the failed run ("full
 * jitter"), I the check's interval.
 *
 * Why full jitter: after a database restart every replica's attempt fails
 * at about the same time; a fixed retry delay would keep them together,
 * a random one in [0, bound] spreads them evenly.  Why a cap of one
 * interval: a dependency that comes back is then seen within one interval
 * plus one check, never later than without backoff, and a check keeps
 * running at least once per interval (its result never goes stale).
 */
#include "health_int.h"

unsigned health__backoff_cap(unsigned interval_ms, unsigned failures) {
  uint64_t base = interval_ms / 4 ? interval_ms / 4 : 1;
  uint64_t cap = failures >= 32 ? (uint64_t)interval_ms : base << failures;
  if (cap > interval_ms) cap = interval_ms;
  return cap ? (unsigned)cap : 1;
}

void health__backoff_failed(health__backoff_t *b, health_result_t *r) {
  unsigned k = b->failures;
  if (b->failures < 64) b->failures++;
  if (!r || !r->h || !r->h->fleet.backoff || !r->interval_ms) return;
  r->retry_ms =
      (unsigned)health__rand_below(r->h, (uint64_t)health__backoff_cap(r->interval_ms, k) + 1);
  r->retry_set = 1;
}

void health__backoff_reset(health__backoff_t *b) { b->failures = 0; }
