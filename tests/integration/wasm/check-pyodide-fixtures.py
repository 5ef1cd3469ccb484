#!/usr/bin/env python3
"""Side-module chains built with Debian's emcc, repaired by kwheel, loaded in real Pyodide.

    check-pyodide-fixtures.py KWHEEL

liba.so and libd.so NEED libb.so, which NEEDs libc.so; libb.so lies in one
directory, libc.so in another, and the wheel holds only fixpkg/sub/liba.so
and fixpkg/sub/libd.so. `kwheel repair --library-path D1:D2` must graft both
into fixpkg.libs/ and give liba and libd RUNTIME_PATH
$ORIGIN/../../fixpkg.libs and libb $ORIGIN. Built at -O1 (emcc writes padded
5-byte section sizes without wasm-opt) and -O2, with and without
--hash-names. In Pyodide 0.22.1 (loadPackage) and 0.28.3 (unpackArchive,
RUNTIME_PATH alone) each library must exist once: liba and libd count with
libb's counter and with libc's (through libb), so the result is
[42, 1, 2, 3, 1, 2]; a second instance would restart a counter at 1.
(ctypes cannot reach the loader's instance of a dependency in 0.28: its
dlopen normalises the path and the loader does not, so the modules the
wheel holds are the probes.) The unrepaired wheel must fail in both.
Fails without emcc, node or npm (tools/deps installs them): nothing is skipped.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import pyodide  # noqa: E402
from testlib import check, failures, write_wheel  # noqa: E402

SOURCES = {
    "c.c": "static int n;\nint c_base(void) { return 40; }\nint c_inc(void) { return ++n; }\n",
    "b.c": "int c_base(void);\nint c_inc(void);\nstatic int n;\nint b_value(void) { return c_base(); }\n"
           "int b_inc(void) { return ++n; }\nint b_c_inc(void) { return c_inc(); }\n",
    "a.c": "int b_value(void);\nint b_inc(void);\nint b_c_inc(void);\nint a_answer(void) { return b_value() + 2; }\n"
           "int a_inc(void) { return b_inc(); }\nint a_c_inc(void) { return b_c_inc(); }\n",
    "d.c": "int b_inc(void);\nint b_c_inc(void);\nint d_inc(void) { return b_inc(); }\n"
           "int d_c_inc(void) { return b_c_inc(); }\n",
}
EXPECT = [42, 1, 2, 3, 1, 2]
WHEEL = "fixpkg-1.0-py3-none-emscripten_3_1_14_wasm32.whl"

CODE = """
import ctypes, json, site
sp = site.getsitepackages()[0]
a = ctypes.CDLL(sp + "/fixpkg/sub/liba.so")
d = ctypes.CDLL(sp + "/fixpkg/sub/libd.so")
print("RESULT " + json.dumps([a.a_answer(), a.a_inc(), d.d_inc(), a.a_inc(), a.a_c_inc(), d.d_c_inc()]))
"""


def emcc(opt, cwd, *args):
    r = subprocess.run(["emcc", opt, "-fPIC", "-sSIDE_MODULE=1", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"emcc {' '.join(args)} failed: {r.stderr.strip()[-400:]}")


def build(tmp, opt):
    d = os.path.join(tmp, "build" + opt)
    for sub in ("d1", "d2"):
        os.makedirs(os.path.join(d, sub))
    for name, text in SOURCES.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    emcc(opt, d, "c.c", "-o", "d2/libc.so")
    emcc(opt, d, "b.c", "d2/libc.so", "-o", "d1/libb.so")
    emcc(opt, d, "a.c", "d1/libb.so", "-o", "liba.so")
    emcc(opt, d, "d.c", "d1/libb.so", "-o", "libd.so")
    files = {
        "fixpkg/__init__.py": b"",
        "fixpkg/sub/liba.so": open(os.path.join(d, "liba.so"), "rb").read(),
        "fixpkg/sub/libd.so": open(os.path.join(d, "libd.so"), "rb").read(),
        "fixpkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: kwheel-tests\nRoot-Is-Purelib: false\n"
                                      b"Tag: py3-none-emscripten_3_1_14_wasm32\n",
        "fixpkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: fixpkg\nVersion: 1.0\n",
    }
    os.makedirs(os.path.join(d, "in"))
    return d, write_wheel(os.path.join(d, "in", WHEEL), files)


def run_all(label, wheel, repaired):
    code = CODE
    for version, mode in (("0.22.1", "loadPackage"), ("0.28.3", "unpack")):
        rc, out, err = pyodide.run(version, wheel, mode, code)
        res = pyodide.result(out)
        got = json.loads(res) if res else None
        if repaired:
            check(rc == 0 and got == EXPECT,
                  f"{label}: Pyodide {version} {mode}: one instance of each library, {EXPECT} "
                  f"(rc {rc}, {got if got else out.strip()[-200:]})")
        else:
            check(rc != 0 and got is None and "libb.so" in out + err,
                  f"{label}: Pyodide {version} {mode} fails for want of libb.so (rc {rc})")


def main():
    kwheel = sys.argv[1]
    for tool in ("emcc",):
        if not shutil.which(tool):
            print(f"FAIL {tool} not found (tools/deps installs emscripten)")
            return 1
    why = pyodide.missing_tools()
    if why:
        print(f"FAIL {why}")
        return 1
    with tempfile.TemporaryDirectory(prefix="kw-wasm-fixtures-") as tmp:
        for opt in ("-O1", "-O2"):
            d, src = build(tmp, opt)
            show = json.loads(subprocess.run([kwheel, "show", "--json", src], capture_output=True, text=True).stdout)
            check([m["needed"] for m in show["members"]] == [["libb.so"], ["libb.so"]],
                  f"{opt}: emcc recorded the basename libb.so")
            run_all(f"{opt} unrepaired", src, False)
            for extra in ([], ["--hash-names"]):
                out = os.path.join(d, "out" + "".join(extra))
                os.makedirs(out)
                r = subprocess.run([kwheel, "repair", "--json", "-w", out, *extra, "--library-path",
                                    os.path.join(d, "d1") + ":" + os.path.join(d, "d2"), src],
                                   capture_output=True, text=True)
                ok = check(r.returncode == 0, f"{opt} {' '.join(extra)}: repaired from two directories "
                                              f"({r.stderr.strip()})")
                if not ok:
                    continue
                res = json.loads(r.stdout)
                dest = {g["soname"]: os.path.basename(g["dest"]) for g in res["grafted"]}
                check(sorted(dest) == ["libb.so", "libc.so"]
                      and {g["soname"]: os.path.dirname(g["source"]) for g in res["grafted"]}
                      == {"libb.so": os.path.realpath(os.path.join(d, "d1")),
                          "libc.so": os.path.realpath(os.path.join(d, "d2"))},
                      f"{opt}: libb from the first directory, libc from the second ({res['grafted']})")
                rep = json.loads(subprocess.run([kwheel, "show", "--json", res["output"]], capture_output=True,
                                                text=True).stdout)
                rp = {m["name"]: m["runpath"] for m in rep["members"]}
                check(rp.get("fixpkg/sub/liba.so") == "$ORIGIN/../../fixpkg.libs"
                      and rp.get("fixpkg/sub/libd.so") == "$ORIGIN/../../fixpkg.libs"
                      and rp.get(f"fixpkg.libs/{dest.get('libb.so')}") == "$ORIGIN"
                      and rp.get(f"fixpkg.libs/{dest.get('libc.so')}") is None,
                      f"{opt}: RUNTIME_PATH on liba, libd and libb only ({rp})")
                run_all(f"{opt} repaired{' ' + ' '.join(extra) if extra else ''}", res["output"], True)
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
