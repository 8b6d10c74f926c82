#!/usr/bin/env python3
"""Module dependency check (run by `make check`; docs/architecture.md §6, "Modules and
what they may reach").

A folder of src/ is a module. This reads two graphs from the source tree and
fails when either has an edge the rules below do not allow:

  includes   every `#include "X/..."` in src/M/ (any depth) is an edge M -> X;
             a module never includes another module's internal header
             (X/internal.h, X/sub/internal.h, X/*_internal.h); and the external
             headers a module compiles against, followed through the headers of
             src/ it includes, must not be ones its rules forbid (libkiln must
             not see jansson, the service's libraries, ...).
  meson      in src/M/meson.build, a use of a variable another module's
             meson.build defines (X_dep, X_lib, X_src, ...) or a path into
             another module ('../X/file.c', compiled into M) is an edge M -> X;
             a use of an external dependency (dependency('pkg'),
             cc.find_library('name')) must not be one M's rules forbid.
             Statements that only add to the CLI (cli_src += ..., cli_deps +=
             ...) are edges of the CLI, which may use every module. A file of
             another module compiled into M (by path or through that module's
             X_src list) is held to M's rules for external headers: libkiln
             compiles evidence's producers, so they must not see jansson.

Usage: scripts/check-deps.py [ROOT]   (ROOT: the project, default: this checkout)
Exit 0 when every edge is allowed; 1 with one line per forbidden edge; 2 when
the tree has a module without rules (add it to ALLOWED below, with a reason in
docs/architecture.md).
"""
import os
import re
import sys

# Which modules each module may reach (includes and meson). The CLI reaches
# every module; nothing reaches the CLI.
ALLOWED = {
    "common": set(),
    "crypto": {"common"},
    "casclient": {"common", "crypto"},
    "console": {"common", "crypto"},
    "pf": {"common", "crypto"},
    "evidence": {"common", "crypto"},
    "policy": {"common", "crypto"},
    "las": {"common", "crypto", "evidence"},
    "cas": {"common", "crypto", "evidence", "policy"},
    "runtime": {"common", "crypto", "pf", "evidence", "casclient", "console"},
    "cli": None,  # everything
}

# External libraries a module must not use (meson: pkg-config or library
# names; headers: the #include <...> names). The runtime is loaded into every
# attested program: no YAML parser, database or event loop in it, and libkiln
# (not the supervisor, which is part of the CLI) links no jansson.
SERVICE_LIBS = {"yaml-0.1", "sqlite3", "libevent", "libevent_openssl", "libevent_pthreads",
                "libpq", "fuse3"}
SERVICE_HEADERS = ("yaml.h", "sqlite3.h", "event2/", "libpq-fe.h", "fuse")
FORBIDDEN_EXTERNAL = {
    "common": SERVICE_LIBS | {"jansson"},
    "crypto": SERVICE_LIBS | {"jansson"},
    "casclient": SERVICE_LIBS | {"jansson"},
    "console": SERVICE_LIBS | {"jansson"},
    "pf": SERVICE_LIBS | {"jansson"},
    "evidence": SERVICE_LIBS,
    "policy": SERVICE_LIBS - {"yaml-0.1"},
    "las": SERVICE_LIBS,
    "cas": {"fuse3"},
    "runtime": SERVICE_LIBS | {"jansson"},
    "cli": set(),
}
FORBIDDEN_HEADERS = {
    "common": SERVICE_HEADERS + ("jansson.h",),
    "crypto": SERVICE_HEADERS + ("jansson.h",),
    "casclient": SERVICE_HEADERS + ("jansson.h",),
    "console": SERVICE_HEADERS + ("jansson.h",),
    "pf": SERVICE_HEADERS + ("jansson.h",),
    "evidence": SERVICE_HEADERS,
    "policy": tuple(h for h in SERVICE_HEADERS if h != "yaml.h"),
    "las": SERVICE_HEADERS,
    "cas": ("fuse",),
    "runtime": SERVICE_HEADERS + ("jansson.h",),
    "cli": (),
}

INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"]+)[>"]', re.M)
SOURCE_EXT = (".c", ".h", ".def")


def module_of(rel):
    """'runtime/sys/open.c' -> 'runtime'."""
    return rel.split("/", 1)[0]


def is_internal(path):
    base = os.path.basename(path)
    return base == "internal.h" or base.endswith("_internal.h")


class Checker:
    def __init__(self, root):
        self.root = root
        self.src = os.path.join(root, "src")
        self.errors = []
        self.unknown = []
        self.includes = {}   # 'mod/x.h' -> [(kind, name)], kind '"' or '<'

    def modules(self):
        return sorted(d for d in os.listdir(self.src)
                      if os.path.isdir(os.path.join(self.src, d)))

    def allowed(self, mod, other):
        rule = ALLOWED[mod]
        return other == mod or rule is None or other in rule

    def edge_error(self, where, mod, other, what):
        reach = ALLOWED[mod]
        may = ", ".join(sorted(reach)) if reach else "no other module"
        self.errors.append(f"{where}: {mod} {what} {other} (a {mod} file may reach: {may})")

    # ---- includes -----------------------------------------------------------
    def read_includes(self, rel):
        if rel not in self.includes:
            try:
                with open(os.path.join(self.src, rel), encoding="utf-8",
                          errors="replace") as f:
                    text = f.read()
            except OSError:
                text = ""
            self.includes[rel] = [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
                                  for m in INCLUDE.finditer(text)]
        return self.includes[rel]

    def external_headers(self, rel, seen):
        """External <...> headers rel compiles against, through src/ headers."""
        out = []
        if rel in seen:
            return out
        seen.add(rel)
        for kind, name, _ in self.read_includes(rel):
            if kind == "<":
                out.append((name, rel))
            elif os.path.isfile(os.path.join(self.src, name)):
                out.extend(self.external_headers(name, seen))
        return out

    def check_includes(self, mod):
        base = os.path.join(self.src, mod)
        for dirpath, _, files in os.walk(base):
            for fn in sorted(files):
                if not fn.endswith(SOURCE_EXT):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, fn), self.src)
                for kind, name, line in self.read_includes(rel):
                    where = f"src/{rel}:{line}"
                    if kind != '"':
                        continue
                    if name.startswith(".") or "/../" in name:
                        self.errors.append(f'{where}: #include "{name}" leaves the '
                                           f"module by a relative path")
                        continue
                    if "/" not in name:
                        continue
                    other = module_of(name)
                    if other not in ALLOWED:
                        continue  # not a module of src/ (a system header in quotes)
                    if not self.allowed(mod, other):
                        self.edge_error(where, mod, f'{other} (#include "{name}")', "includes")
                    elif other != mod and is_internal(name):
                        self.errors.append(f'{where}: {mod} includes "{name}", an internal '
                                           f"header of {other} (use its public header)")
                self.check_headers(rel, mod, f"src/{rel}: {mod}")

    def check_headers(self, rel, mod, who):
        """External headers src/rel compiles against that mod must not use."""
        bad = FORBIDDEN_HEADERS.get(mod, ())
        for hdr, via in self.external_headers(rel, set()):
            if any(hdr == b or (b.endswith("/") and hdr.startswith(b)) or
                   (b == "fuse" and hdr.startswith("fuse")) for b in bad):
                how = "" if via == rel else f" through src/{via}"
                self.errors.append(f"{who} compiles against <{hdr}>{how}, which {mod} "
                                   f"must not use")

    # ---- meson --------------------------------------------------------------
    @staticmethod
    def statements(text):
        """Top-level meson statements (comments removed, continued lines joined
        while brackets are open)."""
        out, cur, depth, line0 = [], [], 0, 1
        for n, line in enumerate(text.splitlines(), 1):
            line = re.sub(r"#.*", "", re.sub(r"'(?:[^'\\]|\\.)*'",
                                            lambda m: m.group(0).replace("#", "\0"), line))
            line = line.replace("\0", "#")
            if not cur:
                line0 = n
            cur.append(line)
            depth += line.count("(") + line.count("[") - line.count(")") - line.count("]")
            if depth <= 0:
                s = " ".join(cur).strip()
                if s:
                    out.append((line0, s))
                cur, depth = [], 0
        return out

    def check_meson(self, mods):
        defined = {}    # variable -> module whose meson.build assigns it
        external = {}   # variable -> external library name
        sources = {}    # X_src variable -> [(module, file)] (files('...') and other lists)
        top = os.path.join(self.root, "meson.build")
        files = {m: os.path.join(self.src, m, "meson.build") for m in mods}
        parsed = {}
        for m, path in [(None, top)] + sorted(files.items()):
            try:
                with open(path, encoding="utf-8") as f:
                    parsed[m] = self.statements(f.read())
            except OSError:
                parsed[m] = []
            for _, s in parsed[m]:
                a = re.match(r"(\w+)\s*=\s*(.*)", s)
                if not a:
                    continue
                var, rhs = a.group(1), a.group(2)
                d = re.match(r"dependency\(\s*'([^']+)'", rhs)
                lib = re.search(r"\.find_library\(\s*'([^']+)'", rhs)
                if d:
                    external[var] = d.group(1)
                elif lib:
                    external[var] = "lib" + lib.group(1)
                elif m is not None and var not in ("cli_src", "cli_deps"):
                    defined.setdefault(var, m)
            for _, s in parsed[m]:
                a = re.match(r"(\w+_src)\s*\+?=\s*(.*)", s)
                if m is None or not a or a.group(1) == "cli_src":
                    continue
                lst = sources.setdefault(a.group(1), [])
                rhs = a.group(2)
                for f in re.findall(r"files\(([^)]*)\)", rhs):
                    for name in re.findall(r"'([^']+)'", f):
                        path = os.path.normpath(os.path.join(m, name))
                        lst.append((module_of(path), path))
                for ident in re.findall(r"\b([a-z_][a-z0-9_]*_src)\b", rhs):
                    if ident != a.group(1):
                        lst.extend(sources.get(ident, []))
        for m in mods:
            where = f"src/{m}/meson.build"
            for line, s in parsed[m]:
                if re.match(r"(cli_src|cli_deps)\s*\+?=", s):
                    continue  # the CLI's own edges
                if re.match(r"(if|elif|else|endif|foreach|endforeach)\b", s):
                    continue  # a condition links nothing; its body is checked
                foreign = []
                for path in re.findall(r"'\.\./([a-z_]+/[^']*)'", s):
                    other = module_of(path)
                    if other in ALLOWED and not self.allowed(m, other):
                        self.edge_error(f"{where}:{line}", m,
                                        f"{other} (compiles '../{other}/...')", "builds")
                    foreign.append(path)
                for ident in re.findall(r"\b([a-z_][a-z0-9_]*_src)\b", s):
                    if defined.get(ident) not in (None, m):
                        foreign += [f for mod_, f in sources.get(ident, []) if mod_ != m]
                for path in sorted(set(foreign)):
                    if path.endswith((".c", ".h")):
                        self.check_headers(path, m, f"{where}:{line}: {m} builds src/{path}: "
                                           f"it")
                for ident in re.findall(r"\b([a-z_][a-z0-9_]*)\b", s):
                    other = defined.get(ident)
                    if other and not self.allowed(m, other):
                        self.edge_error(f"{where}:{line}", m, f"{other} ({ident})", "uses")
                    lib = external.get(ident)
                    if lib and (lib in FORBIDDEN_EXTERNAL.get(m, set()) or
                                (lib.startswith("libevent") and
                                 "libevent" in FORBIDDEN_EXTERNAL.get(m, set()))):
                        self.errors.append(f"{where}:{line}: {m} uses {lib} ({ident}), which "
                                           f"{m} must not link")

    def run(self):
        mods = self.modules()
        self.unknown = [m for m in mods if m not in ALLOWED]
        known = [m for m in mods if m in ALLOWED]
        for m in known:
            self.check_includes(m)
        self.check_meson(known)
        return self.unknown, sorted(set(self.errors))


def main(argv):
    root = os.path.abspath(argv[1] if len(argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    if not os.path.isdir(os.path.join(root, "src")):
        print(f"check-deps: {root}/src: not a directory", file=sys.stderr)
        return 2
    unknown, errors = Checker(root).run()
    for m in unknown:
        print(f"check-deps: src/{m}/ is a module without rules: add it to ALLOWED in "
              f"scripts/check-deps.py", file=sys.stderr)
    for e in errors:
        print(f"check-deps: {e}", file=sys.stderr)
    if unknown:
        return 2
    if errors:
        print(f"check-deps: {len(errors)} forbidden dependencies", file=sys.stderr)
        return 1
    print(f"check-deps: {len(ALLOWED) - 1} modules, every include and meson edge allowed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
