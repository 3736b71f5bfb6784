#!/usr/bin/env python3
"""Generate the section-3 reference pages from include/health.h.

The header is the one place where the API is documented: every exported
prototype carries a comment saying what it does, on which thread it may be
called, what it returns.  This script turns each HEALTH_EXPORT prototype into
a man page in docs/man/ (NAME, LIBRARY, SYNOPSIS, DESCRIPTION, the types it
takes, THREAD CONTEXT, RETURN VALUE, SEE ALSO), so the pages cannot drift from
the header.  The pages are committed (building and installing them needs no
Python); tests/man.sh regenerates them into a temporary directory and fails
if they differ, lints them with `mandoc -T lint`, and checks that every
exported symbol has its page.

Usage: scripts/gen-man.py [HEADER] [OUTDIR]
"""

import os
import re
import sys

HEADER = sys.argv[1] if len(sys.argv) > 1 else "include/health.h"
OUTDIR = sys.argv[2] if len(sys.argv) > 2 else "docs/man"


def version(text):
    m = re.search(r'#define HEALTH_VERSION_STRING "([^"]+)"', text)
    return m.group(1) if m else "0"


def roff_escape(s):
    s = s.replace("\\", "\\e")
    out = []
    for line in s.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


def strip_comment(c):
    """The text of a /** ... */ or /* ... */ comment, one paragraph per blank line."""
    c = re.sub(r"^/\*\*?", "", c.strip())
    c = re.sub(r"\*/$", "", c)
    lines = []
    for line in c.split("\n"):
        line = re.sub(r"^\s*\* ?", "", line)
        lines.append(line.rstrip())
    return "\n".join(lines).strip()


def parse(text):
    """Yield (section, comment, [prototypes]) for every exported prototype."""
    section = "General"
    items = []
    pos = 0
    # Tokens: section banners, comments, exported prototypes, typedefs.
    tok = re.compile(
        r"(?P<banner>/\* -{10,} \*/\n/\* (?P<title>[^\n]*?)\s*\*/\n/\* -{10,} \*/)"
        r"|(?P<comment>/\*.*?\*/)"
        r"|(?P<proto>^HEALTH_EXPORT [^;]*;)",
        re.S | re.M,
    )
    last_comment = None
    last_comment_end = -1
    for m in tok.finditer(text):
        if m.group("banner"):
            section = m.group("title").strip()
            last_comment = None
        elif m.group("comment"):
            last_comment = m.group("comment")
            last_comment_end = m.end()
        else:
            proto = " ".join(m.group("proto").split())
            proto = proto.replace("HEALTH_EXPORT ", "")
            proto = re.sub(r'\s*HEALTH_DEPRECATED\("[^"]*"\)', "", proto)
            between = text[last_comment_end:m.start()] if last_comment else ""
            # A comment applies to the prototypes that follow it directly.
            if last_comment and re.fullmatch(r"(\s|HEALTH_EXPORT[^;]*;)*", between):
                doc = strip_comment(last_comment)
            else:
                doc = ""
            items.append((section, doc, proto))
    return items


def proto_name(proto):
    m = re.search(r"(\w+)\s*\(", proto)
    return m.group(1)


def types_used(proto, text):
    """Public struct/enum typedefs a prototype takes, with their definitions."""
    found = []
    for t in re.findall(r"\b(health_\w+_t)\b", proto):
        if t in ("health_t", "health_error_t", "health_result_t") or t in [f[0] for f in found]:
            continue
        m = re.search(r"typedef (struct|enum) \w+ \{[^}]*\} " + re.escape(t) + ";", text)
        if m:
            found.append((t, m.group(0)))
            continue
        m = re.search(r"typedef [^;{]*\(\*" + re.escape(t.replace("_t", "")) + r"?\w*\)\([^;]*;", text, re.S)
        m = m or re.search(r"typedef [^;{]*\b" + re.escape(t) + r"\b[^;]*;", text, re.S)
        if m:
            found.append((t, m.group(0)))
    return found


def thread_context(doc):
    d = doc.lower()
    ctx = []
    if "async-signal-safe" in d:
        ctx.append("Async-signal-safe: may also be called from a signal handler.")
    if "any thread" in d:
        ctx.append("Any thread, unless the description narrows it.")
    if "before start" in d:
        ctx.append("Before start: only between health_new(3) and health_start(3), from the thread that owns the handle.")
    if "from the check callback" in d:
        ctx.append("Only from inside the check callback that received the result.")
    return ctx or ["See the description."]


def split_doc(doc):
    """(description paragraphs, params, return text)."""
    desc, params, ret = [], [], []
    cur = None
    for line in doc.split("\n"):
        s = line.strip()
        if s.startswith("@param"):
            parts = s.split(None, 2)
            params.append([parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else ""])
            cur = params[-1]
        elif s.startswith("@return"):
            ret.append(s[len("@return"):].strip())
            cur = ret
        elif cur is not None and s:
            if cur is ret:
                ret.append(s)
            else:
                cur[1] += " " + s
        else:
            cur = None
            desc.append(line)
    return "\n".join(desc).strip(), params, " ".join(ret).strip()


def synopsis(proto):
    proto = re.sub(r"\s*HEALTH_PRINTF\([^)]*\)", "", proto).rstrip(";").strip()
    m = re.match(r"(.*?)\b(\w+)\s*\((.*)\)$", proto, re.S)
    ret, name, args = m.group(1).strip(), m.group(2), m.group(3)
    out = [".Ft %s" % ret, ".Fo %s" % name]
    depth, cur, parts = 0, "", []
    for ch in args:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    for a in parts:
        out.append('.Fa "%s"' % a)
    out.append(".Fc")
    return out


def text_lines(p):
    """One sentence per line, as mdoc wants; backquotes dropped."""
    p = re.sub(r"\s+", " ", p.replace("`", "")).strip()
    return roff_escape(re.sub(r"([.;:]) (?=[A-Z(])", r"\1\n", p))


def page(name, section, doc, proto, siblings, text, ver):
    desc, params, ret = split_doc(doc)
    brief = desc.split(".")[0].replace("\n", " ").strip() if desc else name
    brief = re.sub(r"\s+", " ", brief)
    out = []
    out.append('.Dd $Mdocdate$'.replace("$Mdocdate$", "November 27, 2026"))
    out.append(".Dt %s 3" % name.upper())
    out.append(".Os")
    out.append(".Sh NAME")
    out.append(".Nm %s" % name)
    out.append(".Nd %s" % roff_escape(brief[0].lower() + brief[1:] if brief else name))
    out.append(".Sh LIBRARY")
    out.append("libhealth (-lhealth, or pkg-config --libs libhealth)")
    out.append(".Sh SYNOPSIS")
    out.append(".In health.h")
    out.extend(synopsis(proto))
    out.append(".Sh DESCRIPTION")
    paras = [p for p in re.split(r"\n\s*\n", desc) if p.strip()] or ["See the header."]
    for i, p in enumerate(paras):
        if i:
            out.append(".Pp")
        out.append(text_lines(p))
    if params:
        out.append(".Pp")
        out.append("Parameters:")
        out.append(".Bl -tag -width Ds")
        for pn, pd in params:
            out.append(".It Fa %s" % pn)
            out.append(text_lines(pd) or "(see above)")
        out.append(".El")
    for tname, tdef in types_used(proto, text):
        out.append(".Pp")
        out.append(".Vt %s" % tname)
        out.append("is defined as:")
        out.append(".Bd -literal -offset indent")
        out.append(roff_escape(tdef))
        out.append(".Ed")
    out.append(".Sh THREAD CONTEXT")
    for i, c in enumerate(thread_context(doc)):
        if i:
            out.append(".Pp")
        out.append(text_lines(c))
    out.append(".Sh RETURN VALUES")
    if ret:
        out.append(text_lines(ret))
    elif proto.startswith("void "):
        out.append("None.")
    else:
        out.append("See the description.")
    # Only a function that takes a health_error_t writes a message into one.
    if "HEALTH_E" in ret and "health_error_t *" in proto:
        out.append(".Pp")
        out.append("Where an")
        out.append(".Vt health_error_t *")
        out.append("is accepted, a readable message is written into it;")
        out.append(".Xr health_strerror 3")
        out.append("names every code.")
    out.append(".Sh SEE ALSO")
    refs = sorted(["libhealth 3"] + ["%s 3" % s for s in siblings if s != name][:12])
    for i, r in enumerate(refs):
        n, sec = r.split()
        out.append(".Xr %s %s%s" % (n, sec, " ," if i < len(refs) - 1 else ""))
    return "\n".join(out) + "\n"


def main():
    with open(HEADER) as f:
        text = f.read()
    ver = version(text)
    items = parse(text)
    by_section = {}
    for section, doc, proto in items:
        by_section.setdefault(section, []).append(proto_name(proto))
    os.makedirs(OUTDIR, exist_ok=True)
    names = sorted(proto_name(p) for _, _, p in items)
    with open(os.path.join(OUTDIR, "pages.am"), "w") as f:
        f.write("# Generated by scripts/gen-man.py from include/health.h: do not edit.\n")
        f.write("MAN3_PAGES = \\\n")
        f.write(" \\\n".join("\tdocs/man/%s.3" % n for n in names) + "\n")
    for section, doc, proto in items:
        name = proto_name(proto)
        with open(os.path.join(OUTDIR, name + ".3"), "w") as f:
            f.write(page(name, section, doc, proto, by_section[section], text, ver))


if __name__ == "__main__":
    main()
