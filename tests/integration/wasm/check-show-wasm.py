#!/usr/bin/env python3
"""kwheel show on wasm wheels, against wabt's wasm-objdump and against repairs made by hand.

    check-show-wasm.py KWHEEL CORPUS

- The three corpus wasm wheels: every side module's sections (kind, payload
  offset, size, custom name), dylink.0 MEM_INFO and NEEDED, and import and
  export counts in `show --json` equal what `wasm-objdump -h` and
  `wasm-objdump -x -j dylink.0` print (wasm-objdump 1.0.32 does not print
  RUNTIME_PATH, so runtime paths are checked against wheels whose runtime
  paths this script wrote itself).
- Shapely: NEEDED not found without a library path; with --library-path the
  closure libgeos_c.so -> libgeos.so.3.10.3 resolves there; the hand
  repair's libraries resolve inside the wheel through RUNTIME_PATH and
  nothing is external.
- Findings: a module that does not parse, a dylink.0 that is not first, an
  ELF member, a cp311 extension in a cp310 wheel: exit 1 and the reason.
Fails without wasm-objdump (tools/deps installs wabt): nothing is skipped.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import check, failures, write_wheel  # noqa: E402

import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "shapely_check", os.path.join(os.path.dirname(os.path.abspath(__file__)), "check-pyodide-shapely.py"))
shapely_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shapely_check)

KINDS = {"elem": "element", "datacount": "datacount"}


def objdump(path):
    """(sections, dylink dict, import count, export count) as wasm-objdump prints them."""
    h = subprocess.run(["wasm-objdump", "-h", path], capture_output=True, text=True, check=True).stdout
    secs, counts = [], {}
    for line in h.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1].startswith("start=0x"):
            kind = parts[0].lower()
            kind = KINDS.get(kind, kind)
            start = int(parts[1][len("start=0x"):], 16)
            size = int(parts[3][len("(size=0x"):-1], 16)
            name = line.split('"')[1] if kind == "custom" else None
            secs.append((kind, start, size, name))
            if "count:" in line:
                counts[kind] = int(line.rsplit("count:", 1)[1])
    x = subprocess.run(["wasm-objdump", "-x", "-j", "dylink.0", path], capture_output=True, text=True,
                       check=True).stdout
    dl, needed, in_needed = {}, [], False
    for line in x.splitlines():
        s = line.strip()
        for key in ("mem_size", "mem_p2align", "table_size", "table_p2align"):
            if s.startswith(f"- {key}"):
                dl[key] = int(s.split(":")[1])
        if s.startswith("- needed_dynlibs"):
            in_needed = True
            continue
        if in_needed and s.startswith("- "):
            needed.append(s[2:])
        elif in_needed:
            in_needed = False
    dl["needed"] = needed
    return secs, dl, counts.get("import", 0), counts.get("export", 0)


def show(kwheel, *args):
    r = subprocess.run([kwheel, "show", *args], capture_output=True, text=True)
    if "runtime error:" in r.stderr or "Sanitizer" in r.stderr:
        check(False, f"no sanitizer report from show {' '.join(args)}: {r.stderr.strip()[-300:]}")
    return r.returncode, r.stdout, r.stderr


def corpus_vs_objdump(kwheel, corpus, tmp):
    wheels = sorted(os.path.join(corpus, "wheels", "emscripten", w)
                    for w in os.listdir(os.path.join(corpus, "wheels", "emscripten")) if w.endswith(".whl"))
    check(len(wheels) == 3, f"three corpus wasm wheels ({len(wheels)})")
    for w in wheels:
        name = os.path.basename(w)
        rc, out, err = show(kwheel, "--json", w)
        rep = json.loads(out)
        # As for ELF wheels: 1 when a library is not found (Shapely's GEOS without --library-path), else 0
        missing = [k for k, v in rep.get("external_libs", {}).items() if v is None]
        want_rc = 1 if missing else 0
        check(rc == want_rc, f"{name}: show --json exits {want_rc} ({rc}, missing {missing}, {err.strip()})")
        check(rep["arch"] == "wasm32" and rep["tags_ok"] and rep["overall_tag"] == rep["name"]["platforms"][0],
              f"{name}: wasm32, its platform tag consistent")
        members = {m["name"]: m for m in rep["members"]}
        with zipfile.ZipFile(w) as z:
            wasm = [i.filename for i in z.infolist() if z.read(i)[:4] == b"\0asm"]
            check(sorted(wasm) == sorted(members), f"{name}: the members are the {len(wasm)} wasm members")
            for mname in wasm:
                path = os.path.join(tmp, "m.wasm")
                with open(path, "wb") as f:
                    f.write(z.read(mname))
                secs, dl, n_imp, n_exp = objdump(path)
                m = members.get(mname, {})
                wm = m.get("wasm") or {}
                got = [(s["kind"], s["start"], s["size"], s["name"]) for s in wm.get("sections", [])]
                ok = (got == secs and m.get("needed") == dl["needed"] and wm.get("memory_size") == dl.get("mem_size")
                      and wm.get("memory_align") == dl.get("mem_p2align") and wm.get("table_size") == dl.get("table_size")
                      and wm.get("table_align") == dl.get("table_p2align") and wm.get("imports") == n_imp
                      and wm.get("exports") == n_exp)
                check(ok, f"{name}: {mname} agrees with wasm-objdump ({len(secs)} sections, needed {dl['needed']}, "
                          f"{n_imp} imports, {n_exp} exports)")
        rc, out, err = show(kwheel, "-v", w)
        check(rc == want_rc and "Pyodide releases" in out and "0.22 (Python 3.10" in out,
              f"{name}: the text report names the Pyodide releases for Python 3.10")


def shapely_resolution(kwheel, corpus, tmp):
    src = os.path.join(corpus, shapely_check.SHAPELY)
    libdir = os.path.join(corpus, "wheels", "emscripten", "libs")
    rep = json.loads(show(kwheel, "--json", src)[1])
    check(rep["external_libs"] == {"libgeos_c.so": None}, f"unrepaired, no library path: libgeos_c.so not found "
                                                          f"({rep['external_libs']})")
    rep = json.loads(show(kwheel, "--json", "--library-path", libdir, src)[1])
    want = {"libgeos_c.so": os.path.join(libdir, "libgeos_c.so"),
            "libgeos.so.3.10.3": os.path.join(libdir, "libgeos.so.3.10.3")}
    check(rep["external_libs"] == want, f"unrepaired, --library-path: the GEOS closure resolves there ({rep['external_libs']})")
    by = {l["soname"]: l["needed_by"] for l in rep["libraries"]}
    check(by.get("libgeos.so.3.10.3") == [os.path.join(libdir, "libgeos_c.so")],
          f"libgeos.so.3.10.3 is needed by libgeos_c.so ({by})")
    hand = shapely_check.hand_repair(src, libdir, os.path.join(tmp, os.path.basename(src)))
    rc, out, err = show(kwheel, "--json", "--library-path", libdir, hand)
    rep = json.loads(out)
    members = {m["name"]: m for m in rep["members"]}
    check(rc == 0 and rep["external_libs"] == {},
          f"hand-repaired: nothing external, exit 0 ({rep['external_libs']}, rc {rc})")
    sp = members["shapely/speedups/_speedups.cpython-310-wasm32-emscripten.so"]
    check(sp["runpath"] == "$ORIGIN/../../Shapely.libs" and sp["wasm"]["runtime_path"] == ["$ORIGIN/../../Shapely.libs"],
          f"hand-repaired: the extension's RUNTIME_PATH as written ({sp['runpath']})")
    check(members["Shapely.libs/libgeos_c.so"]["runpath"] == "$ORIGIN", "hand-repaired: libgeos_c.so's RUNTIME_PATH $ORIGIN")
    rc, out, err = show(kwheel, "-v", hand)
    check("libgeos_c.so => Shapely.libs/libgeos_c.so (in the wheel, by its runtime path)" in out
          and "libgeos.so.3.10.3 => Shapely.libs/libgeos.so.3.10.3 (in the wheel" in out,
          "hand-repaired: the text report resolves both libraries in the wheel")
    # Grafted for Pyodide 0.22-0.27 (Shapely.libs/, no RUNTIME_PATH): found in the wheel, by that convention only
    os.mkdir(os.path.join(tmp, "graft-only"))
    graft = shapely_check.hand_repair(src, libdir, os.path.join(tmp, "graft-only", os.path.basename(src)),
                                      runtime_path=False)
    rc, out, err = show(kwheel, "--json", graft)
    check(rc == 0 and json.loads(out)["external_libs"] == {},
          f"graft-only, no library path: nothing external, exit 0 (rc {rc}, {out[:200]})")
    rc, out, err = show(kwheel, "-v", graft)
    check("libgeos_c.so => Shapely.libs/libgeos_c.so (in the wheel, found only by Pyodide 0.22-0.27's .libs/" in out,
          f"graft-only: the text report says only the .libs/ convention finds libgeos_c.so ({out[-400:]})")
    rc, out, err = show(kwheel, graft)
    lines = out.strip().splitlines()
    check(rc == 0 and "platform: emscripten_3_1_14_wasm32" in out and "Pyodide 0.22-0.27's .libs/ search" in out
          and "Shapely.libs/libgeos_c.so" in out and "not an ELF" not in out and len(lines) <= 12,
          f"graft-only: the short text names the platform and the libraries found by .libs/ alone in "
          f"{len(lines)} lines ({out.strip()})")
    rc, out, err = show(kwheel, src)
    check(rc == 1 and "libgeos_c.so => not found" in out and "Pyodide releases" in out and "not an ELF" not in out,
          f"unrepaired: the short text names the library to vendor and the Pyodide releases ({out.strip()})")


def findings(kwheel, corpus, tmp):
    with zipfile.ZipFile(os.path.join(corpus, shapely_check.SHAPELY)) as z:
        good = z.read("shapely/speedups/_speedups.cpython-310-wasm32-emscripten.so")
    size = good[9]  # the corpus module's dylink.0 size is one LEB byte (0x20)
    first_end = 10 + size
    # A type section (empty) moved before dylink.0.
    not_first = good[:8] + b"\x01\x01\x00" + good[8:first_end] + good[first_end:]
    elf = open(shutil.which("true"), "rb").read()
    cases = [
        ("truncated", {"pkg/m.cpython-310-wasm32-emscripten.so": good[:40]}, "run past the end of the module"),
        ("dylink.0 not first", {"pkg/m.cpython-310-wasm32-emscripten.so": not_first}, "not the first section"),
        ("ELF member", {"pkg/m.cpython-310-wasm32-emscripten.so": good, "pkg/x.so": elf}, "ELF file in a wasm wheel"),
        ("cp311 suffix", {"pkg/m.cpython-311-wasm32-emscripten.so": good}, "built for CPython 3.11"),
    ]
    meta = {"pkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
                                       b"Tag: cp310-cp310-emscripten_3_1_14_wasm32\n",
            "pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n"}
    for what, files, msg in cases:
        files = {**files, **meta}
        path = write_wheel(os.path.join(tmp, "pkg-1.0-cp310-cp310-emscripten_3_1_14_wasm32.whl"), files)
        rc, out, err = show(kwheel, "-v", path)
        check(rc == 1 and msg in out, f"finding '{what}': exit 1, '{msg}' said (rc {rc}: {out.strip()[-200:]} {err.strip()})")
        os.unlink(path)


def main():
    kwheel, corpus = sys.argv[1], os.path.realpath(sys.argv[2])
    if not shutil.which("wasm-objdump"):
        # tools/deps installs it: without the oracle the test has not passed
        print("FAIL wasm-objdump not found (tools/deps installs wabt)")
        return 1
    with tempfile.TemporaryDirectory(prefix="kw-show-wasm-") as tmp:
        corpus_vs_objdump(kwheel, corpus, tmp)
        shapely_resolution(kwheel, corpus, tmp)
        findings(kwheel, corpus, tmp)
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
