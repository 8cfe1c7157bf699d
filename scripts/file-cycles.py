#!/usr/bin/env python3
"""Lists, per crate of the workspace, the edges between source files that `use crate::...`
(and `super::...` at a file's top level) make, and fails when the files of a crate import each
other in a circle.

Usage: scripts/file-cycles.py [--edges] [ROOT]

A crate is each `src/lib.rs`, `src/main.rs` and `src/bin/*.rs` under ROOT (default: the
repository); its files are those reached from it through `mod name;` declarations. A path
`crate::a::b::C` (or `self::b::C`, or `b::C` for a module `b` the file declares, except in a
`pub use` re-export) is attributed to the deepest file module among `a`, `a::b`, ... that exists;
an edge is kept when that file is not the file the path is written in. Exit status: 0 without a
circle, 1 with one (each circle is printed as `crate: a.rs -> b.rs -> a.rs`), 2 on bad usage.
"""

import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
MOD_DECL = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", re.M)
PATH_ATTR = re.compile(r'#\[path\s*=\s*"([^"]+)"\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(' + IDENT + r")\s*;")


def strip_comments_and_strings(src):
    """Removes comments, string and char literals (keeps line structure)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if src[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', src[i:i + 10]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            end = '"' + m.group(1)
            j = src.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", src[i:i + 4]) or (c == "'" and src.startswith("'\\u{", i)):
            j = src.find("'", i + 1 if src[i + 1] != "\\" else i + 2)
            out.append("' '")
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_use_tree(s, i):
    """Parses a use tree at s[i:] (after `crate::`); returns (list of segment lists, end)."""
    paths = []
    prefix = []
    while i < len(s):
        while i < len(s) and s[i].isspace():
            i += 1
        if i < len(s) and s[i] == "{":
            i += 1
            while True:
                while i < len(s) and (s[i].isspace() or s[i] == ","):
                    i += 1
                if i >= len(s) or s[i] == "}":
                    i += 1
                    break
                sub, i = parse_use_tree(s, i)
                paths.extend([prefix + p for p in sub])
            return paths, i
        m = re.compile(IDENT).match(s, i)
        if m:
            prefix.append(m.group(0))
            i = m.end()
            while i < len(s) and s[i].isspace():
                i += 1
            if s.startswith("::", i):
                i += 2
                continue
            # `as name` renames the last segment; the path stays
            m2 = re.compile(r"\s*as\s+" + IDENT).match(s, i)
            if m2:
                i = m2.end()
            break
        if i < len(s) and s[i] == "*":
            i += 1
            break
        break
    paths.append(prefix)
    return paths, i


def crate_roots(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("target", ".git", "node_modules", "fuzz")]
        if os.path.basename(dirpath) == "src" and os.path.exists(os.path.join(os.path.dirname(dirpath), "Cargo.toml")):
            for f in ("lib.rs", "main.rs"):
                if f in filenames:
                    yield os.path.join(dirpath, f)
            bindir = os.path.join(dirpath, "bin")
            if os.path.isdir(bindir):
                for f in sorted(os.listdir(bindir)):
                    if f.endswith(".rs"):
                        yield os.path.join(bindir, f)
    fuzz = os.path.join(root, "fuzz", "fuzz_targets")
    if os.path.isdir(fuzz):
        for f in sorted(os.listdir(fuzz)):
            if f.endswith(".rs"):
                yield os.path.join(fuzz, f)


def module_files(root_file):
    """{module path tuple: file} for the crate rooted at root_file."""
    mods = {(): root_file}
    todo = [((), root_file, True)]
    while todo:
        path, f, is_dir_owner = todo.pop()
        src = strip_comments_and_strings(open(f, encoding="utf-8").read())
        base = os.path.dirname(f) if is_dir_owner else os.path.splitext(f)[0]
        explicit = {name: p for p, name in PATH_ATTR.findall(src)}
        # only `mod x;` at the file's top level (brace depth 0) is a file module
        depth = 0
        for m in re.finditer(r"[{}]|" + MOD_DECL.pattern.replace("^", ""), src):
            tok = m.group(0)
            if tok == "{":
                depth += 1
                continue
            if tok == "}":
                depth -= 1
                continue
            if depth:
                continue
            name = m.group(1)
            if name in explicit:
                cand = [os.path.join(os.path.dirname(f), explicit[name])]
            else:
                cand = [os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")]
            for c in cand:
                if os.path.exists(c):
                    mods[path + (name,)] = c
                    todo.append((path + (name,), c, c.endswith("mod.rs")))
                    break
    return mods


def edges_of(mods):
    by_file = {f: p for p, f in mods.items()}
    edges = {}
    for f, here in by_file.items():
        src = strip_comments_and_strings(open(f, encoding="utf-8").read())
        targets = set()
        for m in re.finditer(r"\bcrate::", src):
            for seg in parse_use_tree(src, m.end())[0]:
                targets.add(tuple(seg))
        # `self::a::..` and `a::..` where `a` is a module this file declares (`mod a;`): paths
        # relative to this file's module, such as a folder module re-exporting its children
        children = set()
        if here is not None:
            for k in mods:
                if len(k) == len(here) + 1 and k[:len(here)] == here:
                    children.add(k[-1])
        for m in re.finditer(r"(?<![A-Za-z0-9_:$])(self::|(?:" + "|".join(map(re.escape, sorted(children))) + r")::)" if children else r"(?<![A-Za-z0-9_:$])self::", src):
            if not depth_is_top(src, m.start()):
                continue
            # a `pub use child::X` re-export only names the child's item (a facade); using it
            # is what counts
            line_start = src.rfind("\n", 0, m.start()) + 1
            if re.match(r"\s*pub(\([^)]*\))?\s+use\b", src[line_start:m.start() + 1]):
                continue
            start = m.start() if not m.group(1) == "self::" else m.end()
            for seg in parse_use_tree(src, start)[0]:
                targets.add(here + tuple(seg))
        # `super::` at the top level of the file (inside an inline `mod tests { .. }` it
        # names this file's own module)
        for m in re.finditer(r"\bsuper::", src):
            if here and depth_is_top(src, m.start()):
                for seg in parse_use_tree(src, m.end())[0]:
                    targets.add(here[:-1] + tuple(seg))
        out = set()
        for t in targets:
            best = None
            for k in range(len(t), -1, -1):
                if t[:k] in mods:
                    best = mods[t[:k]]
                    break
            if best and best != f:
                out.add(best)
        edges[f] = sorted(out)
    return edges


def depth_is_top(src, pos):
    """Whether pos is outside every inline `mod name { ... }` block."""
    depth_stack = []
    depth = 0
    for m in re.finditer(r"\bmod\s+" + IDENT + r"\s*\{|[{}]", src[:pos]):
        tok = m.group(0)
        if tok.startswith("mod"):
            depth += 1
            depth_stack.append(depth)
        elif tok == "{":
            depth += 1
        else:
            if depth_stack and depth_stack[-1] == depth:
                depth_stack.pop()
            depth -= 1
    return not depth_stack


def cycles(edges):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def one_circle(comp, edges):
    """A shortest circle through the component's first file, for the message."""
    start = comp[0]
    members = set(comp)
    prev = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in edges.get(v, []):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w in members and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp + [start]


def main(argv):
    show = "--edges" in argv
    args = [a for a in argv if a != "--edges"]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    root = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), ".."))
    found = 0
    for r in sorted(crate_roots(root)):
        mods = module_files(r)
        edges = edges_of(mods)
        name = os.path.relpath(r, root)
        if show:
            for f in sorted(edges):
                for t in edges[f]:
                    print(f"{name}: {os.path.relpath(f, root)} -> {os.path.relpath(t, root)}")
        for comp in cycles(edges):
            found += 1
            circle = one_circle(comp, edges)
            print(f"{name}: circle " + " -> ".join(os.path.relpath(f, root) for f in circle)
                  + f" ({len(comp)} files import each other)")
    if found:
        print(f"{found} circle(s) between files", file=sys.stderr)
        return 1
    print("no circles between files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
