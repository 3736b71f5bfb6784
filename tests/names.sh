#!/bin/sh
# The naming scheme of the public API (docs/guide.md, "Naming"), checked on
# every prototype of include/health.h and every name of tests/exports.txt:
#   - health_<verb> acts on the handle: only the verbs listed below;
#   - health_<family>_<verb...> acts on one family: only the families
#     listed below (a new family is added here and in the guide, on
#     purpose);
#   - every options struct health_<x>_options_t has health_<x>_options_init;
#   - a function returning int that is not one of the documented
#     exceptions takes a health_error_t * as its last parameter;
#   - a deprecated name carries HEALTH_DEPRECATED and names its successor,
#     which exists; nothing else is deprecated.
# The self-test feeds the checker names that break each rule.
srcdir=${top_srcdir:-.}
command -v python3 >/dev/null 2>&1 || { echo "names: python3 not found: skipped"; exit 77; }
exec python3 - "$srcdir/include/health.h" "$srcdir/tests/exports.txt" <<'PY'
import re, sys

HANDLE_VERBS = {"new", "free", "start", "stop", "wait", "shutdown", "status", "port",
                "probe", "version", "strerror", "err_name"}
FAMILIES = {"options", "config", "check", "result", "postgres", "redis", "tcp", "http",
            "disk", "memory", "fds", "fleet", "hook", "drain", "inflight", "heartbeat",
            "ready", "gate", "startup", "agent", "controls", "answer", "listener", "serve",
            "probe"}
# int-returning calls whose result is not a HEALTH_E* code (guide: "Naming")
NO_ERR = {"health_probe", "health_probe_with", "health_wait", "health_check_foreach",
          "health_drain_fd", "health_drain_active"}


def protos(text):
    out = []
    for m in re.finditer(r"^HEALTH_EXPORT ([^;]*);", text, re.M):
        p = " ".join(m.group(1).split())
        dep = re.search(r'HEALTH_DEPRECATED\("use (health_\w+)(\(\))?"\)', p)
        p = re.sub(r'\s*HEALTH_DEPRECATED\("[^"]*"\)', "", p)
        name = re.search(r"(health_\w+)\s*\(", p).group(1)
        ret = p[:p.index(name)].strip()
        args = p[p.index("(", p.index(name)) + 1:p.rindex(")")]
        out.append((name, ret, args, dep.group(1) if dep else None, "HEALTH_DEPRECATED" in m.group(0)))
    return out


def check(text, exports):
    errs = []
    ps = protos(text)
    names = {p[0] for p in ps}
    for name, ret, args, successor, marked in ps:
        if marked:
            if not successor:
                errs.append("%s: HEALTH_DEPRECATED without \"use health_...()\"" % name)
            elif successor not in names:
                errs.append("%s: deprecated for %s, which is not declared" % (name, successor))
            continue
        rest = name[len("health_"):]
        fam = rest.split("_")[0]
        if rest not in HANDLE_VERBS and (fam not in FAMILIES or "_" not in rest):
            errs.append("%s: neither health_<verb> on the handle (%s) nor health_<family>_<verb>"
                        " with a known family" % (name, ", ".join(sorted(HANDLE_VERBS))))
        if ret == "int" and name not in NO_ERR:
            last = args.split(",")[-1].strip()
            if not last.startswith("health_error_t *"):
                errs.append("%s: returns a HEALTH_E* code but takes no health_error_t * last" % name)
    for t in sorted(set(re.findall(r"\}\s*(health_\w+_options_t);", text))):
        init = t[:-2] + "_init"
        if init not in names:
            errs.append("%s: no %s()" % (t, init))
    for e in exports:
        if e not in names:
            errs.append("%s: exported but not declared in health.h" % e)
    for n in names:
        if n not in exports:
            errs.append("%s: declared but not in tests/exports.txt" % n)
    return errs


header, exports_file = sys.argv[1], sys.argv[2]
text = open(header).read()
exports = set(open(exports_file).read().split())

# Self-test: each of these must be caught.
bad = {
    "HEALTH_EXPORT int health_add_thing(health_t *h, health_error_t *err);": "family",
    "HEALTH_EXPORT int health_frobnicate(health_t *h, health_error_t *err);": "family",
    "HEALTH_EXPORT int health_gate_close(health_t *h, const char *name);": "health_error_t",
    "HEALTH_EXPORT int health_gate_shut(health_t *h) HEALTH_DEPRECATED(\"use health_gate_nope()\");": "not declared",
    "typedef struct health_thing_options {\n int a;\n} health_thing_options_t;": "no health_thing_options_init",
}
for snippet, want in bad.items():
    got = check(text + "\n" + snippet + "\n", exports | set(re.findall(r"(health_\w+)\s*\(", snippet)))
    if not any(want in g for g in got):
        print("names: self-test: %r was not caught (%s)" % (snippet, want), file=sys.stderr)
        sys.exit(1)

errs = check(text, exports)
for e in errs:
    print("names: " + e, file=sys.stderr)
if errs:
    sys.exit(1)
print("names: %d exports follow the scheme (self-test passed)" % len(exports))
PY
