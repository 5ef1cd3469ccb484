#!/usr/bin/env python3
"""`kwheel repair` end to end, with pip, the real loader and eu-elflint as oracles.

usage: check-repair.py KWHEEL CORPUS SYSROOT_ROOT GROUP
GROUP is one of:
  debian    every wheel of corpus/wheels/debian, resolved against the sysroot:
            repaired, installed with pip --no-index into a target, each
            extension imported and exercised in a subprocess whose library
            path does not hold the sysroot, /proc/self/maps shows the grafted
            copies; kwheel show on the result: target tag, nothing external;
            eu-elflint adds no error to any patched member; unchanged members
            keep their compressed bytes; a second run gives the same bytes
  auditwheel  testzlib is refused (black-listed zcalloc/zcfree from libz, which the
            system's libz does not export) and cffi-1.5.0 too (a UCS2 build),
            writing nothing; a pure wheel is refused (exit 1) unless
            --allow-pure-python-wheel
  edge      a wheel built here from fixtures/repair: two libraries with one
            SONAME, a library needing a grafted one, two top-level packages, an
            RPATH into the wheel kept and one out of it dropped; --exclude;
            SOURCE_DATE_EPOCH; a library not found (its directory removed)
"""
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, sha, write_wheel  # noqa: E402

KWHEEL, CORPUS, SYSROOT, GROUP = sys.argv[1:5]
SRC = os.path.join(os.environ.get("KW_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                   "fixtures", "repair")
PY = "/usr/bin/python3"
LIBPATH = ":".join(os.path.join(SYSROOT, d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"))
def clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONPATH")}
    return env


def repair(wheel, out, *extra, env=None):
    return run([KWHEEL, "repair", "--json", "-w", out] + list(extra) + [wheel], env=env)


def show_json(wheel, *extra):
    r = run([KWHEEL, "show", "--json"] + list(extra) + [wheel])
    return json.loads(r.stdout.splitlines()[0]) if r.stdout.strip() else {}


def elflint_errs(path):
    out = run(["eu-elflint", "--gnu-ld", path]).stdout
    return {re.sub(r"0x[0-9a-f]+|\d+", "N", l) for l in out.splitlines() if l.strip() and "No errors" not in l}


def pip_install(wheel, target):
    r = run([PY, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check", "--quiet",
             "--target", target, wheel])
    return r


SMOKE = {
    "lxml": "from lxml import etree; assert etree.tostring(etree.fromstring('<a><b>x</b></a>')) == b'<a><b>x</b></a>'",
    "pyyaml": "import yaml; assert yaml.load('a: [1, 2]', Loader=yaml.CSafeLoader) == {'a': [1, 2]}",
    "lz4": "import lz4.frame, lz4.block; d = b'kwheel' * 1000; assert lz4.frame.decompress(lz4.frame.compress(d)) == d",
    "msgpack": "import msgpack; assert msgpack.unpackb(msgpack.packb({'a': [1, 2]})) == {'a': [1, 2]}",
    "numpy": "import numpy as np; a = np.array([[2.0, 1.0], [1.0, 3.0]]); assert np.allclose(np.linalg.inv(a) @ a, np.eye(2))",
    "brotli": "import brotli; assert brotli.decompress(brotli.compress(b'kwheel' * 100)) == b'kwheel' * 100",
    "ujson": "import ujson; assert ujson.loads(ujson.dumps({'a': 1})) == {'a': 1}",
    "markupsafe": "import markupsafe; assert str(markupsafe.escape('<a>')) == '&lt;a&gt;'",
    "cffi_backend": "import _cffi_backend as b; assert b.newp(b.new_pointer_type(b.new_primitive_type('int')), 5)[0] == 5",
}


def module_names(wheel):
    names = []
    with zipfile.ZipFile(wheel) as z:
        for n in z.namelist():
            m = re.match(r"(.*)\.cpython-311-x86_64-linux-gnu\.so$", n)
            if m and ".libs/" not in n and ".data/" not in n:
                names.append(m.group(1).replace("/", "."))
    return names


def raw_same(src, dst, name):
    """Same compressed bytes: compare the stored data of a member in both archives."""
    def raw(path):
        with zipfile.ZipFile(path) as z:
            info = z.getinfo(name)
        with open(path, "rb") as f:
            f.seek(info.header_offset + 26)
            n, e = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
            f.seek(info.header_offset + 30 + n + e)
            return info.compress_type, f.read(info.compress_size)
    return raw(src) == raw(dst)


def group_debian(tmp):
    wheels = sorted(os.path.join(CORPUS, "wheels", "debian", w) for w in os.listdir(os.path.join(CORPUS, "wheels", "debian"))
                    if w.endswith(".whl"))
    check(len(wheels) >= 9, f"{len(wheels)} Debian wheels found")
    for wheel in wheels:
        dist = os.path.basename(wheel).split("-")[0]
        out = os.path.join(tmp, "out-" + dist)
        os.makedirs(out)
        r = repair(wheel, out, "--library-path", LIBPATH)
        if not check(r.returncode == 0, f"{dist}: repaired ({r.stderr.strip()[:300]})"):
            continue
        res = json.loads(r.stdout)
        new = res["output"]
        check(os.path.basename(new).endswith(res["tag"] + ".whl"), f"{dist}: file name carries {res['tag']}")
        with zipfile.ZipFile(new) as z:
            names = z.namelist()
            wheel_meta = z.read([n for n in names if n.endswith(".dist-info/WHEEL")][0]).decode()
            check(all(f"-{t}" in wheel_meta for t in res["tag"].split(".")), f"{dist}: WHEEL Tag lines carry the new tags")
            grafted = [g["dest"] for g in res["grafted"]]
            check(all(g in names for g in grafted), f"{dist}: grafted libraries are members")
            if grafted:
                sb = [n for n in names if n.endswith(".dist-info/sboms/kwheel.cdx.json")]
                ok = bool(sb)
                if ok:
                    doc = json.loads(z.read(sb[0]))
                    # the wheel first; libraries from the sysroot belong to no installed package: named by SONAME
                    ok = doc["bomFormat"] == "CycloneDX" and doc["components"][0]["name"] == dist and sorted(
                        c["name"] for c in doc["components"][1:]) == sorted(g["soname"] for g in res["grafted"])
                check(ok, f"{dist}: SBOM names every grafted library")
        # unchanged members are copied as stored
        with zipfile.ZipFile(wheel) as z:
            orig = [n for n in z.namelist() if not n.endswith(("/RECORD", "/WHEEL")) and n not in res["patched"]]
        check(all(raw_same(wheel, new, n) for n in orig), f"{dist}: {len(orig)} unchanged members keep their compressed bytes")
        # kwheel show: the target tag, nothing external left to vendor
        sj = show_json(new, "--library-path", LIBPATH)
        check(sj.get("sym_tag") in res["tag"].split(".") and sj.get("external_libs") == {} and sj.get("record", {}).get("ok"),
              f"{dist}: show says {sj.get('sym_tag')}, external {sj.get('external_libs')}, RECORD ok")
        # eu-elflint: no new error in any patched member or grafted library
        ex_in, ex_out = os.path.join(tmp, "x-in-" + dist), os.path.join(tmp, "x-out-" + dist)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(ex_in)
        with zipfile.ZipFile(new) as z:
            z.extractall(ex_out)
        bad = [m for m in res["patched"] if elflint_errs(os.path.join(ex_out, m)) - elflint_errs(os.path.join(ex_in, m))]
        bad += [g["dest"] for g in res["grafted"]
                if elflint_errs(os.path.join(ex_out, g["dest"])) - elflint_errs(os.path.join(SYSROOT, g["source"].lstrip("/"))
                                                                            if not os.path.isabs(g["source"]) or not os.path.exists(g["source"])
                                                                            else g["source"])]
        check(not bad, f"{dist}: eu-elflint adds no error ({bad[:3]})")
        # install and import without the sysroot anywhere on the library path
        target = os.path.join(tmp, "t-" + dist)
        pr = pip_install(new, target)
        if not check(pr.returncode == 0, f"{dist}: pip install --no-index accepts it ({pr.stderr.strip()[:200]})"):
            continue
        mods = module_names(new)
        code = ("import importlib, sys\n"
                f"sys.path.insert(0, {target!r})\n"
                f"for m in {mods!r}:\n"
                "    importlib.import_module(m)\n"
                f"{SMOKE.get(dist, 'pass')}\n"
                "print(open('/proc/self/maps').read())\n")
        ir = run([PY, "-c", code], cwd=tmp, env=clean_env())
        maps = ir.stdout
        libs_used = all(os.path.basename(g) in maps for g in grafted)
        no_sysroot = SYSROOT not in maps
        check(ir.returncode == 0 and libs_used and no_sysroot,
              f"{dist}: {len(mods)} modules import and work from the grafted copies ({ir.stderr.strip()[-300:]})")
        # same input, same output
        out2 = os.path.join(tmp, "again-" + dist)
        os.makedirs(out2)
        r2 = repair(wheel, out2, "--library-path", LIBPATH)
        check(r2.returncode == 0 and sha(json.loads(r2.stdout)["output"]) == sha(new), f"{dist}: a second run gives the same bytes")


def copied_but_modes(src, dst):
    """DST is SRC byte for byte, except central directory modes made 0644/0755 (group-writable ones too)."""
    a, b = open(src, "rb").read(), open(dst, "rb").read()
    if len(a) != len(b):
        return False
    allowed = set()
    with zipfile.ZipFile(dst) as z:
        infos = z.infolist()
        if any((i.external_attr >> 16) & 0o7777 not in (0, 0o644, 0o755) for i in infos):
            return False
    pos = a.find(b"PK\x01\x02")
    while pos >= 0:
        allowed.update(range(pos + 38, pos + 42))
        pos = a.find(b"PK\x01\x02", pos + 4)
    return all(i in allowed for i in range(len(a)) if a[i] != b[i])


def group_auditwheel(tmp):
    aw = os.path.join(CORPUS, "wheels", "auditwheel")
    out = os.path.join(tmp, "out")
    os.makedirs(out)
    tz = os.path.join(aw, "testzlib-0.0.1-cp310-cp310-linux_x86_64.whl")
    r = repair(tz, out)
    # The import binds zcalloc/zcfree from libz; a vendored libz (the system's) does not define them.
    dyn = run(["readelf", "--dyn-syms", "-W", os.path.realpath("/lib/x86_64-linux-gnu/libz.so.1")]).stdout
    exported = {l.split()[-1].split("@")[0] for l in dyn.splitlines() if " UND " not in l and len(l.split()) >= 8}
    check("zcalloc" not in exported and "inflate" in exported, "the system's libz does not export zcalloc")
    check(r.returncode == 1 and "black-listed symbols" in r.stdout and "zcalloc" in r.stdout and not os.listdir(out),
          f"testzlib: refused for its black-listed symbols, nothing written ({r.stdout.strip()[:200]})")
    r = repair(os.path.join(aw, "cffi-1.5.0-cp27-none-linux_x86_64.whl"), out)
    check(r.returncode == 1 and "UCS2" in r.stdout and not os.listdir(out),
          f"cffi-1.5.0: refused as a UCS2 build, nothing written ({r.stdout.strip()[:200]})")
    # a pure wheel: refused with auditwheel's status, copied on request
    pure = os.path.join(aw, "plumbum-1.6.8-py2.py3-none-any.whl")
    r = repair(pure, out)
    check(r.returncode == 1 and "not a platform wheel" in r.stdout and not os.listdir(out),
          f"pure wheel: refused with exit 1 ({r.returncode} {r.stdout.strip()[:200]})")
    r = repair(pure, out, "--allow-pure-python-wheel")
    res = json.loads(r.stdout) if r.returncode == 0 else {}
    check(res.get("action") == "copied" and "pure" in (res.get("note") or "") and copied_but_modes(pure, res["output"]),
          "pure wheel with --allow-pure-python-wheel: reported and copied unchanged but for sane member modes")
    # emscripten: repaired as a wasm wheel (tests/integration/wasm); numpy's side modules need nothing
    em = os.path.join(CORPUS, "wheels", "emscripten", "numpy-1.22.4-cp310-cp310-emscripten_3_1_14_wasm32.whl")
    r = run([KWHEEL, "repair", "-w", out, em])
    check(r.returncode == 0 and "no external library to vendor: copied" in r.stdout,
          f"emscripten wheel with nothing to vendor copied ({r.stdout.strip()} {r.stderr.strip()})")


def build_edge(tmp):
    """A wheel with two top-level packages whose extensions need two different libkwdup.so.1."""
    b = os.path.join(tmp, "build")
    dirs = {k: os.path.join(b, k) for k in ("A", "B", "C")}
    for d in dirs.values():
        os.makedirs(d)
    cc = ["cc", "-shared", "-fPIC", "-O1"]
    steps = [
        cc + [os.path.join(SRC, "kwbase.c"), "-o", os.path.join(dirs["C"], "libkwbase.so.1"), "-Wl,-soname,libkwbase.so.1"],
    ]
    for v, d in (("1", "A"), ("2", "B")):
        steps.append(cc + [f"-DVARIANT={v}", os.path.join(SRC, "kwdup.c"), "-o", os.path.join(dirs[d], "libkwdup.so.1"),
                           "-Wl,-soname,libkwdup.so.1", "-L" + dirs["C"], "-l:libkwbase.so.1",
                           "-Wl,-rpath," + dirs["C"], "-Wl,--enable-new-dtags"])
    inc = run([PY, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"]).stdout.strip()
    exts = {
        "pkg_a/ext_a.cpython-311-x86_64-linux-gnu.so": ("ext_a", "A", ["-Wl,-rpath,$ORIGIN/_inner:" + dirs["A"]]),
        "pkg_b/sub/ext_b.cpython-311-x86_64-linux-gnu.so": ("ext_b", "B", ["-Wl,-rpath," + dirs["B"]]),
    }
    for rel, (mod, d, extra) in exts.items():
        out = os.path.join(b, "tree", rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        # DT_RPATH (the old tag) so the extension's path also serves libkwdup's own lookups
        steps.append(cc + [f"-DMODNAME={mod}", "-I" + inc, os.path.join(SRC, "kwext.c"), "-o", out,
                           "-L" + dirs[d], "-l:libkwdup.so.1", "-Wl,--disable-new-dtags"] + extra)
    for s in steps:
        r = run(s)
        if r.returncode != 0:
            raise SystemExit("fixture build failed: " + " ".join(s) + "\n" + r.stderr)
    files = {rel: open(os.path.join(b, "tree", rel), "rb").read() for rel in exts}
    files["pkg_a/__init__.py"] = b""
    files["pkg_a/_inner/README.txt"] = b"kept\n"
    files["pkg_b/__init__.py"] = b""
    files["pkg_b/sub/__init__.py"] = b""
    files["pkg_b/data.bin"] = os.urandom(1 << 20)
    di = "kwdemo-1.0.dist-info"
    files[f"{di}/METADATA"] = b"Metadata-Version: 2.1\nName: kwdemo\nVersion: 1.0\n"
    files[f"{di}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: kwheel-tests\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n"
    files[f"{di}/top_level.txt"] = b"pkg_a\npkg_b\n"
    return write_wheel(os.path.join(tmp, "kwdemo-1.0-cp311-cp311-linux_x86_64.whl"), files), b


def group_edge(tmp):
    wheel, build = build_edge(tmp)
    h_in = sha(wheel)
    out = os.path.join(tmp, "out")
    os.makedirs(out)
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    r = repair(wheel, out, env=env)
    if not check(r.returncode == 0, f"edge wheel repaired ({r.stderr.strip()})"):
        return
    res = json.loads(r.stdout)
    check(sha(wheel) == h_in, "input untouched")
    sonames = sorted(g["soname"] for g in res["grafted"])
    check(sonames == ["libkwbase.so.1", "libkwdup.so.1", "libkwdup.so.1"],
          f"two libkwdup.so.1 grafted apart, libkwbase once ({sonames})")
    dests = [g["dest"] for g in res["grafted"]]
    check(len(set(dests)) == 3 and all(d.startswith("kwdemo.libs/") for d in dests), f"unique names in kwdemo.libs/ ({dests})")
    x = os.path.join(tmp, "x")
    with zipfile.ZipFile(res["output"]) as z:
        z.extractall(x)
    da = run(["readelf", "-dW", os.path.join(x, "pkg_a/ext_a.cpython-311-x86_64-linux-gnu.so")]).stdout
    db = run(["readelf", "-dW", os.path.join(x, "pkg_b/sub/ext_b.cpython-311-x86_64-linux-gnu.so")]).stdout
    check("[$ORIGIN/_inner:$ORIGIN/../kwdemo.libs]" in da and build not in da,
          "pkg_a: in-wheel $ORIGIN entry kept, outside path dropped, libs dir added")
    check("[$ORIGIN/../../kwdemo.libs]" in db, "pkg_b/sub: path to the libs dir from two levels down")
    na = re.findall(r"\[(libkwdup-[0-9a-f]{8}\.so\.1)\]", da)
    nb = re.findall(r"\[(libkwdup-[0-9a-f]{8}\.so\.1)\]", db)
    check(na and nb and na != nb, f"each extension needs its own libkwdup copy ({na}, {nb})")
    for d in dests:
        if "libkwdup" in d:
            dd = run(["readelf", "-dW", os.path.join(x, d)]).stdout
            check(re.search(r"\[libkwbase-[0-9a-f]{8}\.so\.1\]", dd) and "[$ORIGIN]" in dd and build not in dd,
                  f"{d}: needs the grafted libkwbase through $ORIGIN")
    # reproducible: same SOURCE_DATE_EPOCH, same bytes; another one, other time stamps
    out2 = os.path.join(tmp, "out2")
    os.makedirs(out2)
    r2 = repair(wheel, out2, env=env)
    check(r2.returncode == 0 and sha(json.loads(r2.stdout)["output"]) == sha(res["output"]), "same input and epoch: same bytes")
    out3 = os.path.join(tmp, "out3")
    os.makedirs(out3)
    r3 = repair(wheel, out3, env=dict(os.environ, SOURCE_DATE_EPOCH="1600000000"))
    check(r3.returncode == 0 and sha(json.loads(r3.stdout)["output"]) != sha(res["output"]), "another epoch: other time stamps")
    # the build directories go away: only the grafted copies can serve
    shutil.rmtree(build)
    target = os.path.join(tmp, "t")
    pr = pip_install(res["output"], target)
    check(pr.returncode == 0, f"pip install accepts it ({pr.stderr.strip()[:200]})")
    ir = run([PY, "-c", f"import sys; sys.path.insert(0, {target!r}); import pkg_a.ext_a as a, pkg_b.sub.ext_b as b; "
                        "print(a.value(), b.value())"], cwd=tmp, env=clean_env())
    check(ir.stdout.strip() == "107 207", f"both extensions load their own copy: {ir.stdout.strip()} {ir.stderr.strip()[-200:]}")
    # --exclude leaves a library external
    out4 = os.path.join(tmp, "out4")
    os.makedirs(out4)
    wheel2, build2 = build_edge(os.path.join(tmp, "again"))
    r4 = repair(wheel2, out4, "--exclude", "libkwbase*")
    res4 = json.loads(r4.stdout) if r4.returncode == 0 else {}
    check(res4.get("excluded") == ["libkwbase.so.1"] and all(g["soname"] != "libkwbase.so.1" for g in res4.get("grafted", [])),
          "--exclude libkwbase* leaves it external")
    # a library that cannot be found: named with who needs it, nothing written
    wheel3, build3 = build_edge(os.path.join(tmp, "gone"))
    shutil.rmtree(os.path.join(build3, "C"))
    out5 = os.path.join(tmp, "out5")
    os.makedirs(out5)
    r5 = run([KWHEEL, "repair", "-w", out5, wheel3])
    check(r5.returncode == 1 and "not found: libkwbase.so.1 (needed by libkwdup.so.1)" in r5.stderr and not os.listdir(out5),
          f"a missing library is named with who needs it, nothing written ({r5.stderr.strip()})")


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-repair-")
    try:
        {"debian": group_debian, "auditwheel": group_auditwheel, "edge": group_edge}[GROUP](tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
