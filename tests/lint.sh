#!/bin/sh
# health-lint over its corpus (tests/lint/expect: each case's exit status and
# rule ids), in text and in JSON (parsed with Python's json module), over
# the project's own deploy/ recipes (which must pass), and the ECS inputs
# against botocore's ECS model when python3-botocore is installed.
#
# HEALTH_LINT_WRAPPER runs the tool under another program, e.g.
#   HEALTH_LINT_WRAPPER='valgrind -q --leak-check=full --errors-for-leak-kinds=all --error-exitcode=99'
set -u
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${top_builddir:-.}
tool=$builddir/health-lint
[ -x "$tool" ] || { echo "lint: FAIL: $tool not built"; exit 1; }
if ! command -v python3 >/dev/null 2>&1; then
  if [ "${HEALTH_TEST_REQUIRE_SERVERS:-0}" = 1 ]; then echo "lint: FAIL: python3 not found"; exit 1; fi
  echo "lint: SKIP: python3 not found"
  exit 77
fi
exec python3 - "$srcdir" "$tool" "${HEALTH_LINT_WRAPPER:-}" <<'PYEOF'
import glob, json, os, re, shlex, subprocess, sys

src, tool, wrapper = sys.argv[1], sys.argv[2], shlex.split(sys.argv[3])
corpus = os.path.join(src, "tests", "lint")
failures, passed = [], [0]


def ok(cond, what):
    if cond:
        passed[0] += 1
    else:
        failures.append(what)
        print("lint: FAIL: " + what)
    return cond


def run(args):
    p = subprocess.run(wrapper + [tool] + args, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, LC_ALL="C"))
    return p.returncode, p.stdout, p.stderr


VALUED = ("--env", "--hook", "--format")


def arguments(words):
    out, prev = [], ""
    for w in words:
        out.append(w if w.startswith("-") or prev in VALUED else os.path.join(corpus, w))
        prev = w
    return out


def files_of(args):
    return [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] not in VALUED)]


single = set()
cases = 0
with open(os.path.join(corpus, "expect"), encoding="utf-8") as f:
    lines = [(n, l.split()) for n, l in enumerate(f, 1) if l.strip() and not l.startswith("#")]
for n, words in lines:
    cases += 1
    code, rules = int(words[0]), [] if words[1] == "-" else words[1].split(",")
    args = arguments(words[2:])
    name = "expect:%d (%s)" % (n, " ".join(words[2:]))
    if code == 1 and len(rules) == 1:
        single.add(rules[0])
    rc, out, err = run(args)
    ok(rc == code, "%s: exit %d, expected %d\n%s%s" % (name, rc, code, out, err))
    if "--format" in args:
        continue
    got = sorted(set(re.findall(r"^\S+?:(?:\d+:)? (HL\d{3}): ", out, re.M)))
    if code != 2:
        ok(got == rules, "%s: rules %s, expected %s\n%s" % (name, got, rules, out))
        ok(len(out.splitlines()) == len(re.findall(r"^\S+?:(?:\d+:)? HL\d{3}: .*; fix: ", out, re.M)),
           "%s: a line is not FILE[:LINE]: RULE: message; fix: ...\n%s" % (name, out))
        ok(err == "", "%s: wrote to stderr: %s" % (name, err))
    else:
        ok(out == "", "%s: wrote problems for an input it could not read: %s" % (name, out))
        names = [os.path.basename(a) for a in files_of(args)]
        ok(err.startswith("health-lint: ") and ("usage:" in err or any(x in err for x in names)),
           "%s: the message does not name the file: %r" % (name, err))
        if any(x in err for x in names) and "cannot open" not in err:
            ok(re.search(r"\S+:\d+: ", err) is not None, "%s: the message gives no line: %r" % (name, err))
    # The same case in JSON: valid, and the same problems.
    rc, out, err = run(["--format", "json"] + args)
    ok(rc == code, "%s --format json: exit %d, expected %d" % (name, rc, code))
    if code == 2:
        continue
    try:
        doc = json.loads(out)
    except ValueError as e:
        ok(False, "%s --format json: not JSON (%s): %r" % (name, e, out))
        continue
    probs = doc.get("problems", [])
    ok(doc.get("count") == len(probs), "%s --format json: count %r for %d problems" % (name, doc.get("count"), len(probs)))
    ok(sorted({p.get("rule") for p in probs}) == rules, "%s --format json: rules differ from text" % name)
    for p in probs:
        ok(all(isinstance(p.get(k), str) and p[k] for k in ("file", "rule", "title", "message", "fix")),
           "%s --format json: an incomplete problem %r" % (name, p))
        ok(p.get("file") in files_of(args), "%s --format json: file %r is not an input" % (name, p.get("file")))
        ok(isinstance(p.get("line", 1), int) and p.get("line", 1) > 0, "%s --format json: bad line %r" % (name, p))

for r in ("HL%03d" % i for i in range(1, 9)):
    ok(r in single, "tests/lint/expect has no input that fails %s alone" % r)

# A problem names the settings as the file spells them, with their values.
rc, out, _ = run([os.path.join(corpus, "hl002-stoptimeout.json")])
ok("stopTimeout=20 s" in out and "HEALTH_SHUTDOWN_DEADLINE_MS=25000" in out and ":12: HL002:" in out,
   "HL002 on ECS does not name stopTimeout=20 s, HEALTH_SHUTDOWN_DEADLINE_MS=25000 and line 12: %r" % out)
rc, out, _ = run([os.path.join(corpus, "hl001-readiness-defaults.yaml")])
ok("periodSeconds=10" in out and "failureThreshold=3" in out and "HEALTH_DRAIN_MS=15000 (default)" in out,
   "HL001 does not name the probe's defaults and HEALTH_DRAIN_MS: %r" % out)
rc, out, _ = run([os.path.join(corpus, "hl008-malformed.yaml")])
# The library's own message (core/env.c), not the tool's.
ok("HEALTH_DRAIN_MS='15s' is not a whole number from 0 to 600000" in out and ":12: HL008:" in out,
   "HL008 does not carry the library's message and the line: %r" % out)
# The families health_config_from_env() reads beside the options: the fleet
# and HEALTH_NOFILE_MAX go through the same parsers.
for bad in ("HEALTH_JITTER=51", "HEALTH_NOFILE_MAX=+5"):
    rc, out, _ = run(["--env", bad, os.path.join(corpus, "good-k8s.yaml")])
    ok(rc == 1 and "HL008" in out and bad.split("=")[0] + "='" in out,
       "--env %s: no HL008 naming it: %r" % (bad, out))
# Tabs: a JSON task definition indented with tabs reads (libyaml alone
# refuses a tab where YAML indents).
for name in ("good-task-definition.json",):
    with open(os.path.join(corpus, name), encoding="utf-8") as f:
        ok("\n\t\"" in f.read(), "%s is no longer indented with tabs" % name)
with open(os.path.join(corpus, "good-tab-indented-target-groups.json"), encoding="utf-8") as f:
    ok(f.read().startswith("\t{"), "good-tab-indented-target-groups.json no longer starts with a tab")

# Our own recipes pass.
dep = os.path.join(src, "deploy")
for group in (["ecs/task-definition.json", "ecs/target-group.json"], ["k8s/deployment.yaml"]):
    rc, out, err = run([os.path.join(dep, g) for g in group])
    ok(rc == 0, "deploy/%s: exit %d\n%s%s" % (" deploy/".join(group), rc, out, err))

# The ECS inputs against botocore's model of RegisterTaskDefinition.
try:
    import botocore.session
    model = botocore.session.get_session().get_service_model("ecs")
except Exception:
    model = None


def validate(shape, value, path):
    t = shape.type_name
    if t == "structure":
        if not ok(isinstance(value, dict), "%s: not an object" % path):
            return
        for k in shape.required_members:
            ok(k in value, "%s: required member %s missing" % (path, k))
        for k, v in value.items():
            if ok(k in shape.members, "%s: unknown member %s" % (path, k)):
                validate(shape.members[k], v, path + "." + k)
    elif t == "list":
        if ok(isinstance(value, list), "%s: not a list" % path):
            for i, v in enumerate(value):
                validate(shape.member, v, "%s[%d]" % (path, i))
    elif t == "map":
        ok(isinstance(value, dict), "%s: not a map" % path)
    elif t == "string":
        ok(isinstance(value, str), "%s: not a string" % path)
        if shape.enum:
            ok(value in shape.enum, "%s: %r not one of %s" % (path, value, shape.enum))
    elif t in ("integer", "long"):
        ok(isinstance(value, int) and not isinstance(value, bool), "%s: not an integer" % path)
    elif t == "boolean":
        ok(isinstance(value, bool), "%s: not a boolean" % path)


if model is None:
    print("lint: botocore not installed (python3-botocore): ECS inputs not checked against the ECS model")
else:
    reg = model.operation_model("RegisterTaskDefinition").input_shape
    desc = model.operation_model("DescribeTaskDefinition").output_shape
    ecs = [os.path.join(dep, "ecs", "task-definition.json")]
    ecs += [f for f in glob.glob(os.path.join(corpus, "*.json"))
            if "containerDefinitions" in open(f, encoding="utf-8").read()]
    for f in sorted(ecs):
        try:
            with open(f, encoding="utf-8") as fh:
                doc = json.load(fh)
        except ValueError:
            continue  # the unparsable ones are meant to be
        shape = desc if "taskDefinition" in doc else reg
        validate(shape, doc, os.path.basename(f))
    print("lint: %d ECS inputs checked against botocore's ECS model" % len(ecs))

if failures:
    print("lint: %d of %d checks failed" % (len(failures), len(failures) + passed[0]))
    sys.exit(1)
print("lint: all %d checks passed (%d cases)" % (passed[0], cases))
PYEOF
