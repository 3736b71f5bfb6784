#!/usr/bin/env python3
"""Make debian/libhealthN.symbols from libhealth/libhealth.map and tests/exports.txt.

Every exported symbol (tests/exports.txt) gets the version node of the map
that exports it (a node that names it, else the one with the health_*
wildcard) and the release that introduced that node, read from the node's
comment: `LIBHEALTH_1 { /* since 0.2.0 */`.  The soname comes from the
libtool -version-info in configure.ac (CURRENT - AGE).

Usage: scripts/gen-symbols.py [--write | --check]
  (no option) print the file; --write writes it; --check exits 1, with a
  diff, when the committed file differs.
"""
import difflib
import os
import re
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg):
    sys.stderr.write("gen-symbols: %s\n" % msg)
    sys.exit(1)


def read(rel):
    with open(os.path.join(TOP, rel), encoding="utf-8") as f:
        return f.read()


def soname_major():
    m = re.search(r"AC_SUBST\(\[HEALTH_LT_VERSION\], \[(\d+):(\d+):(\d+)\]\)", read("configure.ac"))
    if not m:
        fail("configure.ac: no AC_SUBST([HEALTH_LT_VERSION], [C:R:A])")
    return int(m.group(1)) - int(m.group(3))


def nodes():
    text = read("libhealth/libhealth.map")
    # The header comment first: it may show a node as an example.
    text = re.sub(r"\A\s*/\*.*?\*/", "", text, flags=re.S)
    found = []
    for m in re.finditer(r"(LIBHEALTH_[0-9.]+)\s*\{([^}]*)\}", text):
        name, body = m.group(1), m.group(2)
        since = re.match(r"\s*/\*\s*since\s+([0-9][0-9A-Za-z.+~]*)\s*\*/", body)
        if not since:
            fail("libhealth/libhealth.map: node %s has no /* since X.Y.Z */ comment after its {" % name)
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        glob = re.search(r"global:(.*?)(local:|$)", body, flags=re.S)
        names = [n.strip() for n in (glob.group(1) if glob else "").split(";") if n.strip()]
        found.append((name, since.group(1), names))
    if not found:
        fail("libhealth/libhealth.map: no LIBHEALTH_* node")
    return found


def generate():
    major = soname_major()
    table = nodes()
    wildcard = [n for n in table if "health_*" in n[2]]
    if len(wildcard) != 1:
        fail("libhealth/libhealth.map: want exactly one node with health_*, found %d" % len(wildcard))
    exports = [s for s in read("tests/exports.txt").split() if s]
    lines = []
    for name, since, _ in table:
        lines.append("%s@%s %s" % (name, name, since))
    for sym in exports:
        node = next((n for n in table if sym in n[2]), wildcard[0])
        lines.append("%s@%s %s" % (sym, node[0], node[1]))
    listed = {s for n in table for s in n[2] if s != "health_*"}
    unknown = sorted(listed - set(exports))
    if unknown:
        fail("named in libhealth/libhealth.map but not in tests/exports.txt: " + " ".join(unknown))
    head = [
        "libhealth.so.%d libhealth%d #MINVER#" % (major, major),
        "* Build-Depends-Package: libhealth-dev",
    ]
    return "\n".join(head + [" " + l for l in sorted(lines)]) + "\n", "debian/libhealth%d.symbols" % major


def main():
    text, rel = generate()
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "--write":
        with open(os.path.join(TOP, rel), "w", encoding="utf-8") as f:
            f.write(text)
    elif mode == "--check":
        path = os.path.join(TOP, rel)
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        if old != text:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True), rel, "generated"))
            fail("%s is not what libhealth/libhealth.map and tests/exports.txt give: run scripts/gen-symbols.py --write" % rel)
        print("gen-symbols: %s lists the %d symbols that libhealth/libhealth.map and tests/exports.txt give" % (rel, len(text.splitlines()) - 2))
    elif mode == "":
        sys.stdout.write(text)
    else:
        fail("usage: gen-symbols.py [--write | --check]")


main()
