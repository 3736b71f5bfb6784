#!/usr/bin/env python3
"""Lint the repository's Markdown the way GitHub renders it.

Fails (exit 1, one line per defect: FILE:LINE: what) on:
  - a table row whose cell count differs from its header's (GitHub drops
    the extra cells or pads the missing ones: a row silently renders wrong);
  - a line that looks like a table row ("| ... |") but belongs to no table
    (a paragraph or blank line inside a table turns the rest into text);
  - a link to a file of the repository that does not exist;
  - a link to an anchor (#heading) that no heading of the target file makes.
Fenced code blocks are skipped.  Usage: markdown.py FILE.md...
"""
import os
import re
import sys

DELIM = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def cells(line):
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    n, i = 1, 0
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == "|":
            n += 1
        i += 1
    return n


def slug(heading):
    h = heading.strip().lower()
    h = re.sub(r"[`*_]", "", h)
    h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h)
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def lines_outside_code(path):
    fence = None
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = re.match(r"^\s*(```|~~~)", line)
            if m:
                if fence is None:
                    fence = m.group(1)
                elif m.group(1) == fence:
                    fence = None
                continue
            if fence is None:
                yield no, line


def anchors(path, cache={}):
    if path not in cache:
        seen, out = {}, set()
        for _, line in lines_outside_code(path):
            m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                s = slug(m.group(1))
                k = seen.get(s, 0)
                seen[s] = k + 1
                out.add(s if k == 0 else "%s-%d" % (s, k))
        cache[path] = out
    return cache[path]


def lint(path):
    errs = []
    rows = list(lines_outside_code(path))
    ncols = None
    prev_no = None
    for idx, (no, line) in enumerate(rows):
        is_row = line.lstrip().startswith("|")
        contiguous = prev_no is not None and no == prev_no + 1
        if ncols is not None and not (is_row and contiguous):
            ncols = None
        if is_row:
            nxt = rows[idx + 1] if idx + 1 < len(rows) else None
            if ncols is None:
                if nxt and nxt[0] == no + 1 and DELIM.match(nxt[1]):
                    ncols = cells(line)
                    if cells(nxt[1]) != ncols:
                        errs.append("%s:%d: delimiter row has %d cells, header %d" % (path, nxt[0], cells(nxt[1]), ncols))
                elif not DELIM.match(line):
                    errs.append("%s:%d: table row outside a table (a blank line or paragraph inside a table?)" % (path, no))
            elif not DELIM.match(line) and cells(line) != ncols:
                errs.append("%s:%d: row has %d cells, its table %d" % (path, no, cells(line), ncols))
        prev_no = no
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # http:, https:, mailto:
            file_part, _, frag = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if file_part and not os.path.exists(dest):
                errs.append("%s:%d: link to a missing file: %s" % (path, no, target))
            elif frag and dest.endswith(".md") and frag not in anchors(dest):
                errs.append("%s:%d: link to a missing anchor: %s" % (path, no, target))
    return errs


def main(paths):
    errs = []
    for p in paths:
        errs += lint(p)
    for e in errs:
        print(e)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
