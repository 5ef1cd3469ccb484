#!/usr/bin/env python3
"""kwheel repair on wasm wheels, checked byte by byte against independent oracles.

    check-repair-wasm.py KWHEEL CORPUS

The corpus Shapely wheel repaired with --library-path:
- the two GEOS libraries grafted into Shapely.libs/ under their own names,
  libgeos.so.3.10.3 before libgeos_c.so (dependencies first), libgeos.so
  byte for byte, every member that was not edited byte for byte;
- each edited module equal to the splice this suite's own Python writer
  makes (check-pyodide-shapely.py's add_runtime_path): RUNTIME_PATH
  $ORIGIN/../../Shapely.libs in both extensions, $ORIGIN in libgeos_c.so;
- RECORD right for every member (hashlib), wasm-validate on every module,
  the file name and WHEEL unchanged, two runs byte-identical;
- --hash-names: <stem>-<first 8 hex of sha256>.so... names, NEEDED rewritten;
- --exclude leaves libgeos_c.so and what only it needs out;
- refusals: a library not found (exit 1, nothing written), --strip (exit 2),
  a legacy 'dylink' module (exit 1); numpy (no NEEDED) copied as it is.
"""
import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import check, failures, write_wheel  # noqa: E402

_spec = importlib.util.spec_from_file_location("shapely_check", os.path.join(HERE, "check-pyodide-shapely.py"))
sc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sc)

SPEEDUPS = "shapely/speedups/_speedups.cpython-310-wasm32-emscripten.so"
VECTORIZED = "shapely/vectorized/_vectorized.cpython-310-wasm32-emscripten.so"


def repair(kwheel, out, *args, json_out=True):
    os.makedirs(out, exist_ok=True)
    r = subprocess.run([kwheel, "repair", *(["--json"] if json_out else []), "-w", out, *args],
                       capture_output=True, text=True)
    # Under the sanitizer build a UBSan report does not change the exit status: look for it.
    if "runtime error:" in r.stderr or "Sanitizer" in r.stderr:
        check(False, f"no sanitizer report from repair {' '.join(args)}: {r.stderr.strip()[-300:]}")
    return r


def members(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def record_ok(path):
    m = dict(members(path))
    rec = [n for n in m if n.endswith(".dist-info/RECORD")][0]
    listed = {}
    for line in m[rec].decode().splitlines():
        name, digest, size = line.rsplit(",", 2)
        listed[name] = (digest, size)
    for name, data in m.items():
        if name == rec:
            continue
        want = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        if listed.get(name) != (want, str(len(data))):
            return f"{name}: RECORD says {listed.get(name)}"
    return None if set(listed) == set(m) else "RECORD lists other members"


def needed_of(mod):
    """NEEDED of a module, read with this script's own LEB walk (first section only)."""
    size, p = sc.read_leb(mod, 9)
    end = p + size
    nlen, q = sc.read_leb(mod, p)
    q += nlen
    while q < end:
        t = mod[q]
        sz, q2 = sc.read_leb(mod, q + 1)
        if t == 2:
            n, r = sc.read_leb(mod, q2)
            out = []
            for _ in range(n):
                ln, r = sc.read_leb(mod, r)
                out.append(mod[r:r + ln].decode())
                r += ln
            return out
        q = q2 + sz
    return []


def shapely_default(kwheel, corpus, tmp):
    src = os.path.join(corpus, sc.SHAPELY)
    libdir = os.path.join(corpus, "wheels", "emscripten", "libs")
    r = repair(kwheel, os.path.join(tmp, "a"), "--library-path", libdir, src)
    check(r.returncode == 0, f"Shapely repaired (rc {r.returncode}, {r.stderr.strip()})")
    res = json.loads(r.stdout)
    out = res["output"]
    check(os.path.basename(out) == os.path.basename(src) and res["tag"] == "emscripten_3_1_14_wasm32",
          f"file name and tag kept ({os.path.basename(out)}, {res['tag']})")
    check(sorted(g["dest"] for g in res["grafted"]) == ["Shapely.libs/libgeos.so.3.10.3", "Shapely.libs/libgeos_c.so"],
          f"grafted under their own names ({[g['dest'] for g in res['grafted']]})")
    old, new = dict(members(src)), members(out)
    names = [n for n, _ in new]
    check(names.index("Shapely.libs/libgeos.so.3.10.3") < names.index("Shapely.libs/libgeos_c.so"),
          "libgeos.so.3.10.3 comes before libgeos_c.so in the archive")
    # loadPackage loads a wheel's .so members in archive order: the libraries before every module
    check(names[:2] == ["Shapely.libs/libgeos.so.3.10.3", "Shapely.libs/libgeos_c.so"],
          f"the grafted libraries are the first members of the archive ({names[:3]})")
    newd = dict(new)
    libgeos = open(os.path.join(libdir, "libgeos.so.3.10.3"), "rb").read()
    libgeos_c = open(os.path.join(libdir, "libgeos_c.so"), "rb").read()
    check(newd["Shapely.libs/libgeos.so.3.10.3"] == libgeos, "libgeos.so.3.10.3 grafted byte for byte")
    check(newd["Shapely.libs/libgeos_c.so"] == sc.add_runtime_path(libgeos_c, "$ORIGIN"),
          "libgeos_c.so: the independent splice of RUNTIME_PATH $ORIGIN, nothing else")
    for m in (SPEEDUPS, VECTORIZED):
        check(newd[m] == sc.add_runtime_path(old[m], "$ORIGIN/../../Shapely.libs"),
              f"{m}: the independent splice of RUNTIME_PATH $ORIGIN/../../Shapely.libs, nothing else")
    same = [n for n in old if n not in (SPEEDUPS, VECTORIZED) and not n.endswith("RECORD")]
    check(all(newd.get(n) == old[n] for n in same), f"the {len(same)} other members byte for byte")
    check(sorted(res["patched"]) == sorted([SPEEDUPS, VECTORIZED]), f"patched lists the extensions ({res['patched']})")
    check(record_ok(out) is None, f"RECORD right for every member ({record_ok(out)})")
    if shutil.which("wasm-validate"):
        for n, data in new:
            if data[:4] == b"\0asm":
                p = os.path.join(tmp, "v.wasm")
                open(p, "wb").write(data)
                v = subprocess.run(["wasm-validate", "--enable-all", p], capture_output=True, text=True)
                check(v.returncode == 0, f"wasm-validate accepts {n} ({v.stderr.strip()[:200]})")
    r2 = repair(kwheel, os.path.join(tmp, "b"), "--library-path", libdir, src)
    check(r2.returncode == 0 and open(out, "rb").read() == open(json.loads(r2.stdout)["output"], "rb").read(),
          "two repairs give the same bytes")
    # Repairing the repaired wheel: nothing external is left, copied as it is.
    r3 = repair(kwheel, os.path.join(tmp, "c"), out)
    check(r3.returncode == 0 and json.loads(r3.stdout)["action"] == "copied", f"the repaired wheel needs nothing ({r3.stdout.strip()[:200]})")


def shapely_options(kwheel, corpus, tmp):
    src = os.path.join(corpus, sc.SHAPELY)
    libdir = os.path.join(corpus, "wheels", "emscripten", "libs")
    r = repair(kwheel, os.path.join(tmp, "h"), "--hash-names", "--library-path", libdir, src)
    check(r.returncode == 0, f"--hash-names repairs ({r.stderr.strip()})")
    res = json.loads(r.stdout)
    hc = hashlib.sha256(open(os.path.join(libdir, "libgeos_c.so"), "rb").read()).hexdigest()[:8]
    hg = hashlib.sha256(open(os.path.join(libdir, "libgeos.so.3.10.3"), "rb").read()).hexdigest()[:8]
    want = {f"Shapely.libs/libgeos_c-{hc}.so", f"Shapely.libs/libgeos-{hg}.so.3.10.3"}
    check({g["dest"] for g in res["grafted"]} == want, f"--hash-names: {want}")
    m = dict(members(res["output"]))
    check(needed_of(m[SPEEDUPS]) == [f"libgeos_c-{hc}.so"], f"--hash-names: the extension NEEDs libgeos_c-{hc}.so")
    check(needed_of(m[f"Shapely.libs/libgeos_c-{hc}.so"]) == [f"libgeos-{hg}.so.3.10.3"],
          "--hash-names: libgeos_c NEEDs the renamed libgeos")
    r = repair(kwheel, os.path.join(tmp, "x"), "--exclude", "libgeos_c*", "--library-path", libdir, src)
    res = json.loads(r.stdout) if r.returncode == 0 else {}
    check(res.get("action") == "copied" and res.get("excluded") == ["libgeos_c.so"],
          f"--exclude libgeos_c*: nothing grafted ({r.stdout.strip()[:300]})")


def refusals(kwheel, corpus, tmp):
    src = os.path.join(corpus, sc.SHAPELY)
    out = os.path.join(tmp, "r")
    r = repair(kwheel, out, src, json_out=False)
    check(r.returncode == 1 and "libgeos_c.so" in r.stderr and "not found" in r.stderr and not os.listdir(out),
          f"library not found: exit 1, said, nothing written ({r.returncode}, {r.stderr.strip()})")
    r = repair(kwheel, out, "--strip", "--library-path", os.path.join(corpus, "wheels", "emscripten", "libs"), src,
               json_out=False)
    check(r.returncode == 2 and "--strip" in r.stderr and not os.listdir(out), f"--strip refused ({r.returncode}, {r.stderr.strip()})")
    legacy = b"\0asm\1\0\0\0\x00" + bytes([7 + 14]) + b"\x06dylink" + b"\x80\x08\x02\x01\x00\x01\x07libx.so"
    meta = {"pkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: false\n"
                                       b"Tag: cp310-cp310-emscripten_3_1_14_wasm32\n",
            "pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n"}
    w = write_wheel(os.path.join(tmp, "pkg-1.0-cp310-cp310-emscripten_3_1_14_wasm32.whl"),
                    {"pkg/m.cpython-310-wasm32-emscripten.so": legacy, **meta})
    r = repair(kwheel, out, w, json_out=False)
    check(r.returncode == 1 and "legacy 'dylink'" in r.stderr and not os.listdir(out),
          f"legacy dylink module refused ({r.returncode}, {r.stderr.strip()})")
    np = os.path.join(corpus, "wheels", "emscripten", "numpy-1.22.4-cp310-cp310-emscripten_3_1_14_wasm32.whl")
    r = repair(kwheel, out, np)
    res = json.loads(r.stdout) if r.returncode == 0 else {}
    check(res.get("action") == "copied" and members(res["output"]) == members(np),
          f"numpy: nothing to vendor, copied with every member as it is ({r.stdout.strip()[:200]} {r.stderr.strip()})")


def main():
    kwheel, corpus = sys.argv[1], os.path.realpath(sys.argv[2])
    with tempfile.TemporaryDirectory(prefix="kw-repair-wasm-") as tmp:
        shapely_default(kwheel, corpus, tmp)
        shapely_options(kwheel, corpus, tmp)
        refusals(kwheel, corpus, tmp)
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
