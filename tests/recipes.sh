#!/bin/sh
# The deploy recipes parse, and their numbers agree with each other and with
# the library's defaults, read from libhealth/core/env.c (health_options_init) and
# the demo's source, so that changing a default breaks this test until the
# recipes and the docs follow:
#
#   deploy/Dockerfile               stages, non-root USER, HEALTHCHECK with health-probe
#   deploy/ecs/task-definition.json healthCheck in ECS's ranges, stopTimeout, secrets
#   deploy/ecs/target-group.json    ALB health check on /ready, port 8081
#   deploy/k8s/deployment.yaml      probes, terminationGracePeriodSeconds
#   docs/operations.md              the timing-budget table
#   docs/environment.md             the defaults of the variables table
#
# The timing budget itself (drain >= the load balancer's notice time, drain
# + the demo's hook timeouts <= shutdown deadline < stopTimeout /
# terminationGracePeriodSeconds, probe paths and timeouts) is health-lint's
# (tools/, rules HL001-HL008), run here over each recipe with the demo's
# hooks (--hook), so this test and users' CI apply the same arithmetic, the
# library's own.
#
# Needs python3; the Kubernetes YAML needs PyYAML (Debian: python3-yaml),
# without which that part is skipped (a failure with
# HEALTH_TEST_REQUIRE_SERVERS=1).
set -u
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
if ! command -v python3 >/dev/null 2>&1; then
  if [ "${HEALTH_TEST_REQUIRE_SERVERS:-0}" = 1 ]; then echo "recipes: FAIL: python3 not found"; exit 1; fi
  echo "recipes: SKIP: python3 not found"
  exit 77
fi
lint=${top_builddir:-.}/health-lint
[ -x "$lint" ] || { echo "recipes: FAIL: $lint not built"; exit 1; }
exec python3 - "$srcdir" "${HEALTH_TEST_REQUIRE_SERVERS:-0}" "$lint" <<'PYEOF'
import json, os, re, shlex, subprocess, sys

src, require, lint_tool = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
failures = []
passed = [0]


def ok(cond, what):
    if cond:
        passed[0] += 1
    else:
        failures.append(what)
        print("recipes: FAIL: " + what)
    return cond


def read(rel):
    with open(os.path.join(src, rel), encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------- defaults
env_c = read("libhealth/core/env.c")
m = re.search(r"void health_options_init\s*\([^)]*\)\s*\{(.*?)\n\}", env_c, re.S)
ok(m is not None, "health_options_init not found in libhealth/core/env.c")
init = m.group(1) if m else ""
field_var = {
    "port": "HEALTH_PORT",
    "check_interval_ms": "HEALTH_CHECK_INTERVAL_MS",
    "check_timeout_ms": "HEALTH_CHECK_TIMEOUT_MS",
    "failure_threshold": "HEALTH_FAILURE_THRESHOLD",
    "drain_ms": "HEALTH_DRAIN_MS",
    "hook_timeout_ms": "HEALTH_HOOK_TIMEOUT_MS",
    "shutdown_deadline_ms": "HEALTH_SHUTDOWN_DEADLINE_MS",
}
defaults = {}
for field, var in field_var.items():
    fm = re.search(r"\bo->%s\s*=\s*(\d+)\s*;" % field, init)
    if ok(fm is not None, "default for %s not found in health_options_init" % field):
        defaults[var] = int(fm.group(1))
demo_c = read("examples/demo-service.c")
pm = re.search(r'env_port\("PORT",\s*(\d+)', demo_c)
ok(pm is not None, "the demo's default PORT not found in examples/demo-service.c")
app_port = int(pm.group(1)) if pm else 8080
health_port = defaults.get("HEALTH_PORT", 8081)
# The demo's flush hooks and their timeouts (0 = the default hook timeout).
hooks = re.findall(r'health_hook_add\(\s*\w+\s*,\s*"([^"]+)"\s*,\s*-?\d+\s*,\s*(\d+)\s*,', demo_c)
ok(len(hooks) > 0, "no health_hook_add() calls found in examples/demo-service.c")
print("recipes: library defaults: " + ", ".join("%s=%d" % kv for kv in sorted(defaults.items()))
      + "; demo PORT=%d; demo hooks: %s" % (app_port, ", ".join("%s %s ms" % h for h in hooks)))

# The environment reference table, where it lists a variable, agrees.
readme = read("docs/environment.md")
listed = 0
for var, val in defaults.items():
    row = re.search(r"^\|\s*`%s`\s*\|\s*`?(\d+)`?\s*\|" % var, readme, re.M)
    if row:
        listed += 1
        ok(int(row.group(1)) == val,
           "docs/environment.md says %s defaults to %s, libhealth/core/env.c says %d" % (var, row.group(1), val))
ok(listed > 0, "docs/environment.md: no table row gives a default of libhealth/core/env.c")


def effective(env):
    """The options a container gets: library defaults overlaid with env."""
    eff = dict(defaults)
    for k, v in env.items():
        if k.startswith("HEALTH_") and k in defaults:
            if ok(re.fullmatch(r"\d+", str(v)) is not None, "%s=%r is not a plain number" % (k, v)):
                eff[k] = int(v)
    return eff


def check_env(where, env):
    """Timing variables set in a recipe spell out the library defaults."""
    for k, v in env.items():
        if k in defaults and re.fullmatch(r"\d+", str(v)):
            ok(int(v) == defaults[k],
               "%s sets %s=%s but the library default is %d (update the recipe and docs/environment.md together)"
               % (where, k, v, defaults[k]))
    ok(str(env.get("PORT", app_port)) == str(app_port), "%s: PORT is not %d" % (where, app_port))
    for secret in ("DATABASE_URL", "REDIS_URL"):
        ok(secret not in env, "%s: %s is a plain environment value; it must come from a secret" % (where, secret))


def lint(where, rels):
    """health-lint over recipe files, with the demo's flush hooks."""
    args = [lint_tool]
    for _, t in hooks:
        args += ["--hook", t]
    p = subprocess.run(args + [os.path.join(src, r) for r in rels], capture_output=True, text=True,
                       timeout=120)
    ok(p.returncode == 0, "%s: health-lint %s exits %d:\n%s%s" % (where, " ".join(rels), p.returncode,
                                                                 p.stdout, p.stderr))


def probe_argv(argv, where):
    """health-probe [--timeout MS] URL -> (timeout_ms, port, path)."""
    ok(len(argv) >= 2 and argv[0] == "/usr/local/bin/health-probe",
       "%s: the health check does not run /usr/local/bin/health-probe: %r" % (where, argv))
    timeout = 2000
    if "--timeout" in argv:
        i = argv.index("--timeout")
        ok(i + 1 < len(argv) and re.fullmatch(r"\d+", argv[i + 1] or "") is not None,
           "%s: --timeout needs a number of ms" % where)
        timeout = int(argv[i + 1]) if i + 1 < len(argv) and argv[i + 1].isdigit() else 0
    url = argv[-1]
    um = re.fullmatch(r"http://(127\.0\.0\.1|localhost|\[::1\]):(\d+)(/\S*)", url)
    ok(um is not None, "%s: probe URL %r is not http://127.0.0.1:PORT/path" % (where, url))
    if not um:
        return timeout, 0, ""
    return timeout, int(um.group(2)), um.group(3)


# -------------------------------------------------------------- Dockerfile
lines, cur = [], ""
for raw in read("deploy/Dockerfile").splitlines():
    s = raw.strip()
    if not cur and (not s or s.startswith("#")):
        continue
    if s.startswith("#"):
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    lines.append((cur + s).strip())
    cur = ""
stages = []
for ln in lines:
    word, _, rest = ln.partition(" ")
    word = word.upper()
    if word == "FROM":
        stages.append({"from": rest.strip(), "ins": []})
    elif ok(bool(stages), "Dockerfile: %s before FROM" % word):
        stages[-1]["ins"].append((word, rest.strip()))
ok(len(stages) >= 2, "Dockerfile: not multi-stage (%d FROM lines)" % len(stages))
if len(stages) >= 2:
    build, final = stages[0], stages[-1]
    bm = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", build["from"], re.I)
    ok(bm is not None and bm.group(1).startswith("debian:12"),
       "Dockerfile: the build stage is not 'FROM debian:12... AS name'")
    bname = bm.group(2) if bm else "build"
    runs = " ".join(r for w, r in build["ins"] if w == "RUN")
    for step in ("./bootstrap", "./configure", "make", "make install DESTDIR="):
        ok(step in runs, "Dockerfile: the build stage does not run %s" % step)
    for pkg in ("libmicrohttpd-dev", "libpq-dev", "libhiredis-dev", "libssl-dev", "libyaml-dev"):
        ok(pkg in runs, "Dockerfile: the build stage does not install %s" % pkg)
    ok(re.match(r"(gcr\.io/distroless/\S*debian12\S*|debian:12-slim)(\s|$)", final["from"]) is not None,
       "Dockerfile: the final stage is not distroless (Debian 12) or debian:12-slim: %s" % final["from"])
    fins = final["ins"]
    users = [r for w, r in fins if w == "USER"]
    ok(bool(users), "Dockerfile: the final stage sets no USER")
    if users:
        u = users[-1].split(":")[0]
        ok(u not in ("root", "0", ""), "Dockerfile: the final USER is root")
    ok(any(w == "COPY" and ("--from=" + bname) in r for w, r in fins),
       "Dockerfile: the final stage copies nothing from the %s stage" % bname)
    ok(not any(w == "RUN" and "apt-get" in r for w, r in fins),
       "Dockerfile: the final stage runs apt-get (keep it minimal)")
    ok(("STOPSIGNAL", "SIGTERM") in fins, "Dockerfile: no STOPSIGNAL SIGTERM")
    exposed = set()
    for w, r in fins:
        if w == "EXPOSE":
            exposed.update(p.split("/")[0] for p in r.split())
    ok({str(app_port), str(health_port)} <= exposed,
       "Dockerfile: EXPOSE %s, expected %d and %d" % (sorted(exposed), app_port, health_port))
    hcs = [r for w, r in fins if w == "HEALTHCHECK"]
    ok(len(hcs) == 1, "Dockerfile: expected one HEALTHCHECK in the final stage")
    if hcs:
        hm = re.fullmatch(r"((?:--\S+=\S+\s+)*)CMD\s+(\[.*\])", hcs[0])
        ok(hm is not None, "Dockerfile: HEALTHCHECK is not 'HEALTHCHECK [options] CMD [exec form]'")
        if hm:
            opts = dict(o.lstrip("-").split("=", 1) for o in hm.group(1).split())
            argv = json.loads(hm.group(2))
            t, port, path = probe_argv(argv, "Dockerfile HEALTHCHECK")
            ok(port == health_port, "Dockerfile: HEALTHCHECK probes port %d, not %d" % (port, health_port))
            ok(path == "/health", "Dockerfile: HEALTHCHECK should probe /health (liveness), not %s" % path)
            hto = opts.get("timeout", "30s")
            tm = re.fullmatch(r"(\d+)s", hto)
            ok(tm is not None and t < int(tm.group(1)) * 1000,
               "Dockerfile: the probe's --timeout %d ms is not below HEALTHCHECK --timeout=%s" % (t, hto))
    envs = {}
    for w, r in fins:
        if w == "ENV":
            for tok in shlex.split(r):
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    envs[k] = v
    check_env("Dockerfile ENV", envs)
    vols = []
    for w, r in fins:
        if w == "VOLUME":
            vols += json.loads(r) if r.startswith("[") else r.split()
    flush_dir = os.path.dirname(envs.get("FLUSH_FILE", ""))
    ok(flush_dir in vols, "Dockerfile: FLUSH_FILE's directory %r is not a VOLUME" % flush_dir)
    ents = [r for w, r in fins if w in ("ENTRYPOINT", "CMD")]
    ok(any("demo-service" in e for e in ents), "Dockerfile: the final stage does not run demo-service")
    docker_volumes = vols
    lint("Dockerfile", ["deploy/Dockerfile"])
else:
    docker_volumes, flush_dir = [], ""

# ----------------------------------------------------------- ECS task def
try:
    td = json.loads(read("deploy/ecs/task-definition.json"))
except ValueError as e:
    td = None
    ok(False, "deploy/ecs/task-definition.json is not valid JSON: %s" % e)
try:
    tg = json.loads(read("deploy/ecs/target-group.json"))
except ValueError as e:
    tg = None
    ok(False, "deploy/ecs/target-group.json is not valid JSON: %s" % e)

if tg is not None:
    res = [r for r in tg.get("Resources", {}).values()
           if r.get("Type") == "AWS::ElasticLoadBalancingV2::TargetGroup"]
    ok(len(res) == 1, "target-group.json: expected one AWS::ElasticLoadBalancingV2::TargetGroup")
    if res:
        p = res[0].get("Properties", {})
        ok(p.get("HealthCheckPath") == "/ready", "ALB: health check path is not /ready")
        ok(str(p.get("HealthCheckPort")) == str(health_port), "ALB: health check port is not %d" % health_port)
        ok(p.get("Port") == app_port, "ALB: traffic port is not %d" % app_port)
        iv, to = p.get("HealthCheckIntervalSeconds", 30), p.get("HealthCheckTimeoutSeconds", 5)
        ht, ut = p.get("HealthyThresholdCount", 5), p.get("UnhealthyThresholdCount", 2)
        ok(5 <= iv <= 300, "ALB: interval %s outside 5-300 s" % iv)
        ok(2 <= to <= 120 and to < iv, "ALB: timeout %s outside 2-120 s or not below the interval" % to)
        ok(2 <= ht <= 10, "ALB: healthy threshold %s outside 2-10" % ht)
        ok(2 <= ut <= 10, "ALB: unhealthy threshold %s outside 2-10" % ut)
        ok(str(p.get("Matcher", {}).get("HttpCode", "200")) == "200", "ALB: matcher is not 200")
        attrs = {a.get("Key"): a.get("Value") for a in p.get("TargetGroupAttributes", [])}
        dd = attrs.get("deregistration_delay.timeout_seconds")
        ok(dd is not None and str(dd).isdigit() and 0 <= int(dd) <= 3600,
           "ALB: deregistration_delay.timeout_seconds missing or outside 0-3600")

if td is not None:
    cds = td.get("containerDefinitions", [])
    ok(len(cds) >= 1, "task definition: no containerDefinitions")
    ok(td.get("networkMode") == "awsvpc", "task definition: networkMode is not awsvpc")
    c = next((d for d in cds if d.get("essential", True)), cds[0] if cds else {})
    hc = c.get("healthCheck", {})
    cmd = hc.get("command", [])
    ok(cmd[:1] == ["CMD"], "ECS healthCheck: use the CMD (exec) form; distroless has no shell for CMD-SHELL")
    t, port, path = probe_argv(cmd[1:], "ECS healthCheck")
    ok(port == health_port, "ECS healthCheck probes port %d, not %d" % (port, health_port))
    ok(path == "/health", "ECS healthCheck should probe /health (liveness), not %s" % path)
    iv, to, rt, sp = hc.get("interval", 30), hc.get("timeout", 5), hc.get("retries", 3), hc.get("startPeriod", 0)
    ok(5 <= iv <= 300, "ECS healthCheck interval %s outside 5-300 s" % iv)
    ok(2 <= to <= 60, "ECS healthCheck timeout %s outside 2-60 s" % to)
    ok(1 <= rt <= 10, "ECS healthCheck retries %s outside 1-10" % rt)
    ok(0 <= sp <= 300, "ECS healthCheck startPeriod %s outside 0-300 s" % sp)
    ok(t < to * 1000, "ECS: the probe's --timeout %d ms is not below healthCheck timeout %d s" % (t, to))
    stop = c.get("stopTimeout")
    ok(isinstance(stop, int) and 2 <= stop <= 120, "ECS stopTimeout %r missing or outside 2-120 s" % stop)
    ports = {pm.get("containerPort") for pm in c.get("portMappings", [])}
    ok({app_port, health_port} <= ports, "ECS portMappings %s lack %d or %d" % (sorted(ports), app_port, health_port))
    env = {e["name"]: e["value"] for e in c.get("environment", [])}
    secrets = {s["name"]: s["valueFrom"] for s in c.get("secrets", [])}
    for name in ("DATABASE_URL", "REDIS_URL"):
        ok(name in secrets and secrets[name].startswith("arn:aws:secretsmanager:"),
           "ECS: %s does not come from a Secrets Manager ARN" % name)
    check_env("ECS environment", env)
    ok(str(env.get("HEALTH_PORT", health_port)) == str(health_port), "ECS: HEALTH_PORT is not %d" % health_port)
    effective(env)
    lint("ECS", ["deploy/ecs/task-definition.json", "deploy/ecs/target-group.json"])
    mounts = [m.get("containerPath") for m in c.get("mountPoints", [])]
    fdir = os.path.dirname(env.get("FLUSH_FILE", ""))
    ok(fdir in mounts, "ECS: FLUSH_FILE's directory is not a mounted volume (readonlyRootFilesystem)")
    ok(fdir in docker_volumes,
       "ECS: the flush volume %r is not a VOLUME in the Dockerfile (ECS would mount it root-owned)" % fdir)

# -------------------------------------------------------------- Kubernetes
try:
    import yaml
except ImportError:
    yaml = None
if yaml is None:
    msg = "PyYAML not installed (Debian: python3-yaml): deploy/k8s/deployment.yaml not checked"
    if require:
        ok(False, msg)
    else:
        print("recipes: SKIP part: " + msg)
else:
    try:
        docs = [d for d in yaml.safe_load_all(read("deploy/k8s/deployment.yaml")) if d]
    except yaml.YAMLError as e:
        docs = []
        ok(False, "deploy/k8s/deployment.yaml is not valid YAML: %s" % e)
    deps = [d for d in docs if d.get("kind") == "Deployment"]
    ok(len(deps) == 1, "deployment.yaml: expected one Deployment")
    if deps:
        spec = deps[0]["spec"]["template"]["spec"]
        c = spec["containers"][0]
        named = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
        ok(app_port in named.values() and health_port in named.values(),
           "k8s: container ports %s lack %d or %d" % (sorted(named.values()), app_port, health_port))

        def probe(kind, want_path):
            pr = c.get(kind)
            if not ok(pr is not None and "httpGet" in pr, "k8s: no httpGet %s" % kind):
                return {}
            g = pr["httpGet"]
            port = named.get(g.get("port"), g.get("port"))
            ok(g.get("path") == want_path, "k8s: %s asks %s, not %s" % (kind, g.get("path"), want_path))
            ok(port == health_port, "k8s: %s asks port %s, not %d" % (kind, port, health_port))
            ok(pr.get("timeoutSeconds", 1) >= 1, "k8s: %s timeoutSeconds below 1" % kind)
            return pr

        probe("livenessProbe", "/health")
        probe("readinessProbe", "/ready")
        probe("startupProbe", "/health")
        env = {e["name"]: e.get("value") for e in c.get("env", []) if "value" in e}
        for name in ("DATABASE_URL", "REDIS_URL"):
            ok(any(e["name"] == name and "secretKeyRef" in e.get("valueFrom", {}) for e in c.get("env", [])),
               "k8s: %s does not come from a Secret" % name)
        check_env("k8s env", env)
        effective(env)
        pre = c.get("lifecycle", {}).get("preStop")
        ok(pre is None, "k8s: a preStop hook is set; the library drains itself (see the comment in the file)")
        lint("k8s", ["deploy/k8s/deployment.yaml"])
        ok(spec.get("securityContext", {}).get("runAsNonRoot") is True, "k8s: runAsNonRoot is not true")
        mounts = [m.get("mountPath") for m in c.get("volumeMounts", [])]
        ok(os.path.dirname(env.get("FLUSH_FILE", "")) in mounts,
           "k8s: FLUSH_FILE's directory is not a mounted volume (readOnlyRootFilesystem)")

# ------------------------------------------------------- docs/operations.md
doc = read("docs/operations.md")
for var, val in defaults.items():
    rows = [ln for ln in doc.splitlines() if ln.startswith("|") and "`%s`" % var in ln]
    forms = {str(val)}
    if var.endswith("_MS"):
        forms |= {"%g s" % (val / 1000.0), "%d ms" % val}
    ok(any(any(re.search(r"(?<![\d.])%s(?![\d.])" % re.escape(f), ln) for f in forms) for ln in rows),
       "docs/operations.md (Running on ECS / Kubernetes / Docker): no table row gives `%s` its default %d" % (var, val))
if td is not None and isinstance(td["containerDefinitions"][0].get("stopTimeout"), int):
    st = td["containerDefinitions"][0]["stopTimeout"]
    ok(re.search(r"stopTimeout[^|\n]*\|[^\n]*\b%d s\b" % st, doc) is not None,
       "docs/operations.md (Running on ECS / Kubernetes / Docker): the table does not give stopTimeout as %d s" % st)

if failures:
    print("recipes: %d of %d checks failed" % (len(failures), len(failures) + passed[0]))
    sys.exit(1)
print("recipes: all %d checks passed" % passed[0])
PYEOF
