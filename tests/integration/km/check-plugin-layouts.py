#!/usr/bin/env python3
"""The KM verdict finds a library's compiled-in plugin paths whatever the library's layout.

A library that imports dlopen and names a directory of plugins in its bytes is built by gcc four ways:
the path in .rodata with code kept apart (the x86_64 default: .rodata in a read-only segment of its own),
the same with -z noseparate-code (.rodata inside the executable segment, as older linkers lay it out),
and the path in a writable char array (.data) with either layout. Each is found by --library-path from a
wheel's extension and shown with --json: the verdict of each must name the plugin, and readelf is the
oracle that the layouts are what they claim.

usage: check-plugin-layouts.py KWHEEL
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, write_wheel  # noqa: E402

KWHEEL = sys.argv[1]

HOST = r"""
#include <dlfcn.h>
%s
void *kwplug_open(void) { return dlopen(plugdir, RTLD_NOW); }
"""
EXT = r"""
void *kwplug_open(void);
void *PyInit_kwext(void) { return kwplug_open(); }
"""


def gcc(*args):
    r = run("gcc", "-shared", "-fPIC", "-O1", *args)
    check(r.returncode == 0, f"gcc {' '.join(a for a in args if not a.startswith('/'))} ({r.stderr.strip()[:200]})")


def segments(path):
    """(flags, holds .rodata) of each PT_LOAD, from readelf -lW's program headers and section mapping."""
    out = run("readelf", "-lW", path).stdout
    head, mapping = out.split("Program Headers:")[1].split("Section to Segment mapping:")
    phdrs = [l.split() for l in head.splitlines() if l.strip() and not l.strip().startswith(("Type", "["))]
    secs = {}
    for l in mapping.splitlines():
        t = l.split()
        if t and t[0].isdigit():
            secs[int(t[0])] = t[1:]
    return [("".join(t[6:-1]), ".rodata" in secs.get(i, [])) for i, t in enumerate(phdrs) if t[0] == "LOAD"]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        plugdir = os.path.join(tmp, "plugins")
        os.makedirs(plugdir)
        src = os.path.join(tmp, "p.c")
        open(src, "w").write("int kwplug_entry(void) { return 1; }\n")
        gcc("-o", os.path.join(plugdir, "kwp.so"), src)
        cases = {
            "separate": ('static const char plugdir[] = "%s";' % plugdir, []),
            "noseparate": ('static const char plugdir[] = "%s";' % plugdir, ["-Wl,-z,noseparate-code"]),
            "data": ('char plugdir[] = "%s";' % plugdir, []),
            "data-noseparate": ('char plugdir[] = "%s";' % plugdir, ["-Wl,-z,noseparate-code"]),
        }
        for name, (decl, ld) in cases.items():
            libdir = os.path.join(tmp, name)
            os.makedirs(libdir)
            hsrc = os.path.join(libdir, "host.c")
            open(hsrc, "w").write(HOST % decl)
            lib = os.path.join(libdir, "libkwhost.so.1")
            gcc("-o", lib, "-Wl,-soname,libkwhost.so.1", *ld, hsrc, "-ldl")
            esrc = os.path.join(libdir, "ext.c")
            open(esrc, "w").write(EXT)
            ext = os.path.join(libdir, "kwext.cpython-311-x86_64-linux-gnu.so")
            gcc("-o", ext, esrc, lib)
            segs = segments(lib)
            alone = any(f == "R" for f, _ in segs)
            check(alone != ("noseparate" in name),
                  f"{name}: readelf shows {'no' if 'noseparate' in name else 'a'} read-only segment apart from "
                  f"the code ({segs})")
            whl = os.path.join(libdir, "kwext-1.0-cp311-cp311-linux_x86_64.whl")
            write_wheel(whl, {
                "kwext.cpython-311-x86_64-linux-gnu.so": open(ext, "rb").read(),
                "kwext-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: kwext\nVersion: 1.0\n",
                "kwext-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
                                             b"Tag: cp311-cp311-linux_x86_64\n",
            })
            r = run(KWHEEL, "show", "--json", "--library-path", libdir, whl)
            try:
                objs = {os.path.basename(o["name"]): o for o in json.loads(r.stdout)["km"]["objects"]}
                warnings = objs["libkwhost.so.1"]["warnings"]
            except (ValueError, KeyError) as e:
                check(False, f"{name}: show --json gives libkwhost.so.1 a KM verdict ({e}; {r.stderr.strip()[:200]})")
                continue
            want = os.path.join(plugdir, "kwp.so")
            check(any(w.startswith("loads plugins by path") and want in w for w in warnings),
                  f"{name}: the verdict names the plugin {want} ({warnings})")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
