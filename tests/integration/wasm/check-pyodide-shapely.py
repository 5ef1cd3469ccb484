#!/usr/bin/env python3
"""The corpus Shapely wheel in real Pyodide under Node: unrepaired it fails, repaired it works.

    check-pyodide-shapely.py CORPUS [--kwheel KWHEEL] [REPAIRED_WHEEL...]

The reference repair is assembled here by hand, independently of kwheel, the
way the feasibility study made it: libgeos_c.so and libgeos.so.3.10.3 grafted
into Shapely.libs/ (dependencies first in the archive), a RUNTIME_PATH
subsection appended to dylink.0 ($ORIGIN/../../Shapely.libs in the two
extension modules, $ORIGIN in libgeos_c.so), RECORD regenerated. With
--kwheel, `kwheel repair --library-path <corpus libs>` makes a repair too, and
each wheel given is checked the same way.

- Pyodide 0.22.1, loadPackage: the study's exact results, (area of the unit
  buffer, speedups enabled, the Cython module doing LineString, its length).
- Pyodide 0.28.3, unpackArchive (nothing preloaded), the extension module
  dlopened by path: GEOS is found through RUNTIME_PATH alone, since
  Shapely.libs is on no search path.
The unrepaired wheel must fail in both runs. A graft-only wheel (the libraries
in Shapely.libs/, no RUNTIME_PATH: what repairs for Pyodide 0.22-0.27 made)
works in 0.22.1 and fails in 0.28.3; kwheel repair of it, with no library path,
must find the libraries in the wheel, vendor nothing and make it work in both.
Fails without node/npm (tools/deps installs them): nothing is skipped.
"""
import json
import os
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pyodide  # noqa: E402
from testlib import check, failures, record_digest  # noqa: E402

SHAPELY = "wheels/emscripten/Shapely-1.8.2-cp310-cp310-emscripten_3_1_14_wasm32.whl"
EXPECT_022 = [3.1365484905459398, True, "shapely.speedups._speedups", 5.0]
GEOS_VERSION = "3.10.3-CAPI-1.16.1"

CODE_022 = """
import json
import shapely.speedups
from shapely.geometry import Point, LineString
import shapely.geometry.linestring as ls
print("RESULT " + json.dumps([Point(0, 0).buffer(1).area, shapely.speedups.enabled,
      ls.geos_linestring_from_py.__module__, LineString([(0, 0), (3, 4)]).length]))
"""

CODE_028 = """
import ctypes, json, os, site
sp = site.getsitepackages()[0]
print("LDPATH " + os.environ.get("LD_LIBRARY_PATH", ""))
ctypes.CDLL(sp + "/shapely/speedups/_speedups.cpython-310-wasm32-emscripten.so")
geos = ctypes.CDLL(sp + "/shapely/speedups/../../Shapely.libs/libgeos_c.so")
geos.GEOSversion.restype = ctypes.c_char_p
print("RESULT " + json.dumps(geos.GEOSversion().decode()))
"""


def leb(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def read_leb(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def add_runtime_path(mod, entry):
    """Append a RUNTIME_PATH subsection with one entry to the first section (dylink.0)."""
    assert mod[:8] == b"\0asm\1\0\0\0" and mod[8] == 0
    size, p = read_leb(mod, 9)
    end = p + size
    nlen, q = read_leb(mod, p)
    assert mod[q:q + nlen] == b"dylink.0"
    e = entry.encode()
    sub = leb(1) + leb(len(e)) + e
    payload = mod[p:end] + b"\x05" + leb(len(sub)) + sub
    return mod[:8] + b"\x00" + leb(len(payload)) + payload + mod[end:]


def hand_repair(src, libdir, dst, runtime_path=True):
    with zipfile.ZipFile(src) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    libs = {n: open(os.path.join(libdir, n), "rb").read() for n in ("libgeos.so.3.10.3", "libgeos_c.so")}
    if runtime_path:
        libs["libgeos_c.so"] = add_runtime_path(libs["libgeos_c.so"], "$ORIGIN")
    files = {f"Shapely.libs/{n}": b for n, b in libs.items()}
    record = None
    for name, data in members:
        if name.endswith(".dist-info/RECORD"):
            record = name
            continue
        if runtime_path and name.startswith("shapely/") and name.endswith("-wasm32-emscripten.so"):
            data = add_runtime_path(data, "$ORIGIN/../../Shapely.libs")
        files[name] = data
    lines = [f"{n},{record_digest(d)},{len(d)}" for n, d in files.items()] + [f"{record},,"]
    files[record] = ("\n".join(lines) + "\n").encode()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files.items():
            z.writestr(zipfile.ZipInfo(n, (2020, 1, 1, 0, 0, 0)), d)
    return dst


def check_wheel(label, wheel, repaired, repaired_028=None):
    if repaired_028 is None:
        repaired_028 = repaired
    rc, out, err = pyodide.run("0.22.1", wheel, "loadPackage", CODE_022)
    res = pyodide.result(out)
    if repaired:
        check(rc == 0 and res is not None and json.loads(res) == EXPECT_022,
              f"{label}: Pyodide 0.22.1 loadPackage gives {EXPECT_022} (got rc {rc}, {res or out.strip()[-200:]})")
    else:
        check(rc != 0 and res is None and "libgeos_c.so" in out + err,
              f"{label}: Pyodide 0.22.1 loadPackage fails for want of libgeos_c.so (rc {rc})")
    rc, out, err = pyodide.run("0.28.3", wheel, "unpack", CODE_028)
    res = pyodide.result(out)
    ldpath = pyodide.result(out, "LDPATH ") or ""
    check("Shapely.libs" not in ldpath, f"{label}: Pyodide 0.28.3 searches no Shapely.libs by LD_LIBRARY_PATH ({ldpath})")
    if repaired_028:
        check(rc == 0 and res is not None and json.loads(res) == GEOS_VERSION,
              f"{label}: Pyodide 0.28.3 finds GEOS through RUNTIME_PATH alone: {GEOS_VERSION} (got rc {rc}, "
              f"{res or out.strip()[-200:]})")
    else:
        check(rc != 0 and res is None and "_speedups" in out,
              f"{label}: Pyodide 0.28.3 cannot load the extension module (rc {rc}, {out.strip()[-160:]})")


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: check-pyodide-shapely.py CORPUS [--kwheel KWHEEL] [WHEEL...]")
    corpus = sys.argv[1]
    args = sys.argv[2:]
    kwheel = None
    if args[:1] == ["--kwheel"]:
        kwheel, args = args[1], args[2:]
    why = pyodide.missing_tools()
    if why:
        print(f"FAIL {why}")
        return 1
    src = os.path.join(corpus, SHAPELY)
    with tempfile.TemporaryDirectory(prefix="kw-shapely-") as tmp:
        check_wheel("unrepaired", src, False)
        hand = hand_repair(src, os.path.join(corpus, "wheels", "emscripten", "libs"),
                           os.path.join(tmp, os.path.basename(src)))
        check_wheel("hand-repaired", hand, True)
        os.mkdir(os.path.join(tmp, "graft-only"))
        graft_only = hand_repair(src, os.path.join(corpus, "wheels", "emscripten", "libs"),
                                 os.path.join(tmp, "graft-only", os.path.basename(src)), runtime_path=False)
        check_wheel("graft-only", graft_only, True, False)
        if kwheel:
            out = os.path.join(tmp, "kwheel-graft-only")
            os.mkdir(out)
            r = subprocess.run([kwheel, "repair", "-w", out, graft_only], capture_output=True, text=True)
            check(r.returncode == 0 and "grafted" not in r.stdout,
                  f"kwheel repair of the graft-only wheel exits 0 and vendors nothing ({r.stdout.strip()} {r.stderr.strip()})")
            fixed = os.path.join(out, os.path.basename(src))
            if r.returncode == 0:
                with zipfile.ZipFile(graft_only) as a, zipfile.ZipFile(fixed) as b:
                    check(sorted(a.namelist()) == sorted(b.namelist()),
                          "the repaired graft-only wheel has the same members (no second copy of GEOS)")
                check_wheel("kwheel graft-only", fixed, True)
        if kwheel:
            out = os.path.join(tmp, "kwheel")
            os.mkdir(out)
            r = subprocess.run([kwheel, "repair", "-w", out, "--library-path",
                                os.path.join(corpus, "wheels", "emscripten", "libs"), src],
                               capture_output=True, text=True)
            check(r.returncode == 0, f"kwheel repair --library-path exits 0 ({r.stderr.strip()})")
            args = args + [os.path.join(out, os.path.basename(src))]
        for w in args:
            check_wheel("kwheel " + os.path.basename(w) if kwheel else os.path.basename(w), w, True)
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
