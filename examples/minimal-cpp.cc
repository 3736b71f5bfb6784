// minimal-cpp: libhealth from C++ (built as C++11 and C++17 with -Wall -Wextra -pedantic -Werror).
//
// A check and a flush hook as static member functions of a class (any
// function with C linkage-compatible signature will do; no exception may
// leave a callback: the library is C), the options filled by
// health_options_init() (no designated initialisers needed), SIGTERM owned
// by the library, and main() returning health_wait()'s exit code.
// FLUSH_FILE, if set, receives "flushed" from the hook.
#include <health.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace {

class Service {
 public:
  static void check(health_result_t *r, void *arg) {
    Service *s = static_cast<Service *>(arg);
    s->runs_.fetch_add(1);
    health_result_observe(r, static_cast<double>(s->runs_.load()), "runs");
    health_result_set(r, HEALTH_PASS, nullptr);
  }

  static int flush(void *arg, unsigned budget_ms) {
    (void)arg;
    (void)budget_ms;
    const char *path = std::getenv("FLUSH_FILE");
    if (!path) return 0;
    std::FILE *f = std::fopen(path, "a");
    if (!f) return 1;
    int bad = std::fputs("flushed\n", f) < 0;
    return std::fclose(f) != 0 || bad;
  }

 private:
  std::atomic<unsigned> runs_{0};
};

}  // namespace

int main() {
  health_options_t opts;
  health_error_t err;
  health_t *h = nullptr;
  static Service service;
  health_options_init(&opts);
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = 1000;
  if (health_new(&h, &opts, &err) != 0 || health_config_from_env(h, &err) != 0 ||
      health_check_add(h, "service", &Service::check, &service, nullptr, &co, &err) != 0 ||
      health_hook_add(h, "flush", 0, 1000, &Service::flush, &service, &err) != 0 ||
      health_start(h, &err) != 0) {
    std::fprintf(stderr, "minimal-cpp: %s\n", err.text);
    return 1;
  }
  // SIGTERM drains, runs the hook and exits (HEALTH_EXIT=0: returns here).
  int code = health_wait(h);
  health_free(h);
  return code;
}
