#!/usr/bin/env python3
"""`kwheel show` inflates each ELF member once, however many trees reach it.

A wheel with three extension modules that all need the wheel's own
pkg/libshared.so (through RPATH $ORIGIN) and a library it needs in turn:
strace counts the temporary files kwheel inflates members into (one per
ELF member read: each library carries 4.2 MB of data and is stored, past
what kwheel reads into memory instead); the report still finds both libraries
inside the wheel, as readelf and the loader (ldd on the unpacked wheel) do.

usage: check-inflate-once.py KWHEEL
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, write_wheel  # noqa: E402

KWHEEL = sys.argv[1]


# Past KW_WHEEL_MAP_IN_MEMORY (4 MiB), stored members are read into a temporary file, which strace sees
# (deflated ones of up to 32 MiB are inflated whole into memory).
PAD = "__attribute__((used)) static const char pad[4200000] = { 1 };\n"


def cc(tmp, name, src, *flags):
    c = os.path.join(tmp, name + ".c")
    open(c, "w").write(PAD + src)
    out = os.path.join(tmp, name)
    r = run(["gcc", "-shared", "-fPIC", "-o", out, c, *flags])
    if r.returncode != 0:
        sys.exit(f"gcc failed: {r.stderr}")
    return open(out, "rb").read()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        files = {"pkg/libinner.so": cc(tmp, "libinner.so", "int inner(void) { return 1; }\n", "-Wl,-soname,libinner.so")}
        files["pkg/libshared.so"] = cc(tmp, "libshared.so", "int inner(void); int shared(void) { return inner(); }\n",
                                       "-Wl,-soname,libshared.so", "-L" + tmp, "-l:libinner.so", "-Wl,-rpath,$ORIGIN")
        for m in ("a", "b", "c"):
            files[f"pkg/_{m}.cpython-311-x86_64-linux-gnu.so"] = cc(
                tmp, f"_{m}.so", f"int shared(void); int PyInit__{m}(void) {{ return shared(); }}\n",
                "-L" + tmp, "-l:libshared.so", "-Wl,-rpath,$ORIGIN")
        files["pkg-1.0.dist-info/METADATA"] = b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n"
        files["pkg-1.0.dist-info/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: false\n"
                                            b"Tag: cp311-cp311-linux_x86_64\n")
        wheel = write_wheel(os.path.join(tmp, "pkg-1.0-cp311-cp311-linux_x86_64.whl"), files,
                            stored=[n for n in files if n.endswith(".so")])
        n_elf = sum(1 for d in files.values() if d[:4] == b"\x7fELF")

        # The oracle for what the trees contain: the loader, on the unpacked wheel.
        root = os.path.join(tmp, "unpacked")
        zipfile.ZipFile(wheel).extractall(root)
        ldd = run(["ldd", os.path.join(root, "pkg/_a.cpython-311-x86_64-linux-gnu.so")]).stdout
        check(re.search(r"libshared\.so => .*/unpacked/pkg/libshared\.so", ldd) is not None and
              re.search(r"libinner\.so => .*/unpacked/pkg/libinner\.so", ldd) is not None,
              "ldd finds both libraries inside the unpacked wheel")

        trace = os.path.join(tmp, "trace")
        # LeakSanitizer cannot run under a tracer (an ASan build would abort at exit): leaks are other tests' job
        asan = ":".join(o for o in [os.environ.get("ASAN_OPTIONS", ""), "detect_leaks=0"] if o)
        env = dict(os.environ, TMPDIR=tmp, ASAN_OPTIONS=asan)
        r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat", "-o", trace, KWHEEL, "show", "--json", wheel],
                           capture_output=True, text=True, env=env)
        check(r.returncode in (0, 1), f"show ran (exit {r.returncode}) {r.stderr.strip()[:200]}")
        temps = [l for l in open(trace) if ".kwheel-member-" in l and "O_CREAT" in l]
        check(len(temps) == n_elf, f"{n_elf} ELF members inflated {n_elf} times, not once per tree ({len(temps)})")
        try:
            rep = json.loads(r.stdout)
        except ValueError:
            rep = {}
        ext = rep.get("external_libs", None)
        check(ext == {}, f"both libraries resolved inside the wheel, nothing external: {ext}")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
