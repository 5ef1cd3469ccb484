#!/usr/bin/env python3
"""`kwheel km` end to end: convert, link a static CPython, compare with the real loader.

usage: check-km.py KWHEEL CORPUS SYSROOT_ROOT GROUP
GROUP is one of:
  fixtures  a wheel built here from fixtures/km/ext (every TLS model, TLSDESC,
            IFUNCs, weak undefined, constructor order, threads, a vendored
            library, C++ exceptions/static init/call_once/thread_local, two
            modules of one file name): run() gives the same text under
            /usr/bin/python3 loading the real .so files and under the static
            interpreter with every .so on disk emptied; the payload wheel
            installed by pip links and runs the same; --objects (a build's
            object files renamed and registered); archive, manifest and
            negative cases
  corpus    numpy (with BLAS/LAPACK/gfortran converted), lz4 (+liblz4), yaml
            (+libyaml), msgpack, markupsafe, brotli from the corpus, resolved
            against the sysroot: the same smoke script, the same output,
            no .so mapped
"""
import json
import os
import re
import struct
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, write_wheel  # noqa: E402

KWHEEL, CORPUS, SYSROOT, GROUP = sys.argv[1:5]
SRC = os.path.join(os.environ.get("KW_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                   "fixtures", "km")
PY = "/usr/bin/python3"
PYINC = subprocess.run([PY, "-c", "import sysconfig; print(sysconfig.get_path('include'))"],
                       capture_output=True, text=True).stdout.strip()


def make_wheel(path, members, tag="cp311-cp311-linux_x86_64"):
    dist, ver = os.path.basename(path).split("-")[:2]
    di = f"{dist}-{ver}.dist-info"
    write_wheel(path, dict(members, **{
        f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {ver}\n".encode(),
        f"{di}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n".encode()}))


def install(wheels, where, empty_so):
    os.makedirs(where, exist_ok=True)
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            z.extractall(where)
    if empty_so:
        for root, _, files in os.walk(where):
            for f in files:
                if f.endswith(".so") or ".so." in f:
                    open(os.path.join(root, f), "w").close()


def convert_and_link(tmp, wheels, *opts):
    out = os.path.join(tmp, "km")
    interp = os.path.join(out, "python-km")
    r = run(KWHEEL, "km", "-o", out, "--link-python", interp, "--python", PY, *opts, *wheels)
    check(r.returncode == 0 and os.access(interp, os.X_OK),
          f"kwheel km converts {len(wheels)} wheel(s) and links a static interpreter ({r.stderr.strip()[-300:]})")
    return out, interp


def compare(tmp, wheels, interp, script, dyn_env=None):
    dyn, sta = os.path.join(tmp, "site-dyn"), os.path.join(tmp, "site-static")
    install(wheels, dyn, False)
    install(wheels, sta, True)
    env = dict(os.environ, PYTHONPATH=dyn, **(dyn_env or {}))
    env.pop("PYTHONHOME", None)
    a = run(PY, "-c", script, env=env)
    env = {"PYTHONHOME": "/usr", "PYTHONPATH": sta, "PATH": os.environ.get("PATH", "/usr/bin")}
    b = run(interp, "-c", script + "\nprint('maps', sum('.so' in l for l in open('/proc/self/maps')))", env=env)
    check(a.returncode == 0, f"the real .so files run the script ({a.stderr.strip()[-400:]})")
    check(b.returncode == 0, f"the static interpreter runs the script ({b.stderr.strip()[-400:]})")
    out_a = a.stdout.strip().splitlines()
    out_b = b.stdout.strip().splitlines()
    check(out_b[-1:] == ["maps 0"], f"no shared object is mapped in the static interpreter ({out_b[-1:]})")
    check(out_a == out_b[:-1], "same output from the converted objects as from the real .so files")
    if out_a != out_b[:-1]:
        for x, y in zip(out_a, out_b):
            if x != y:
                print(f"   real:   {x}\n   static: {y}")
    return out_a, b, sta, env


def build_fixtures(tmp):
    ext = os.path.join(SRC, "ext")

    def cc(out, *args, cxx=False):
        r = run("g++" if cxx else "gcc", "-shared", "-fPIC", "-O2", "-I" + PYINC, "-o", out, *args)
        if r.returncode:
            sys.exit("fixture build failed: " + r.stderr)
        return open(out, "rb").read()

    t = lambda n: os.path.join(tmp, n)  # noqa: E731
    so = "cpython-311-x86_64-linux-gnu.so"
    dep = cc(t("libkmdep.so"), os.path.join(ext, "kmdep.c"), "-Wl,-soname,libkmdep.so")
    link = ["-L" + tmp, "-lkmdep", "-Wl,-rpath,$ORIGIN/../kmfix.libs", "-pthread"]
    members = {
        "kmfix/__init__.py": b"",
        "kmfix/a/__init__.py": b"",
        "kmfix/b/__init__.py": b"",
        f"kmfix/_c.{so}": cc(t("c.so"), os.path.join(ext, "kmfix.c"), *link),
        f"kmfix/_desc.{so}": cc(t("desc.so"), os.path.join(ext, "kmfix.c"), "-DMODNAME=_desc",
                                "-mtls-dialect=gnu2", *link),
        f"kmfix/_relr.{so}": cc(t("relr.so"), os.path.join(ext, "kmfix.c"), "-DMODNAME=_relr",
                                "-Wl,-z,pack-relative-relocs", *link),
        f"kmfix/_cxx.{so}": cc(t("cxx.so"), os.path.join(ext, "kmcxx.cc"), "-pthread", cxx=True),
        f"kmfix/a/kmtwin.{so}": cc(t("twin1.so"), os.path.join(ext, "kmtwin.c"), "-DTWIN=1"),
        f"kmfix/b/kmtwin.{so}": cc(t("twin2.so"), os.path.join(ext, "kmtwin.c"), "-DTWIN=2"),
        "kmfix.libs/libkmdep.so": dep,
    }
    # The descriptor variant loses its section headers: only the dynamic segment is read.
    desc = bytearray(members[f"kmfix/_desc.{so}"])
    desc[0x28:0x30] = bytes(8)
    desc[0x3c:0x40] = bytes(4)
    members[f"kmfix/_desc.{so}"] = bytes(desc)
    with open(t("desc-nosections.so"), "wb") as f:
        f.write(desc)
    check("There are no sections" in run("readelf", "-SW", t("desc-nosections.so")).stdout,
          "oracle: readelf finds no section headers in the stripped variant")
    check("(RELR)" in run("readelf", "-dW", t("relr.so")).stdout, "oracle: the relr variant uses DT_RELR")
    relocs = run("readelf", "-rW", t("desc.so")).stdout
    check("R_X86_64_TLSDESC" in relocs, "oracle: the gnu2 build really uses TLS descriptors")
    relocs = run("readelf", "-rW", t("c.so")).stdout
    for r in ("R_X86_64_DTPMOD64", "R_X86_64_TPOFF64", "R_X86_64_IRELATIVE"):
        check(r in relocs, f"oracle: the C fixture has {r}")
    whl = t("kmfix-1.0-cp311-cp311-linux_x86_64.whl")
    make_wheel(whl, members)
    return whl


FIXTURE_SCRIPT = r"""
import kmfix._c as c, kmfix._desc as d, kmfix._cxx as x
import kmfix.a.kmtwin as a, kmfix.b.kmtwin as b
print("c", c.run())
print("c again", c.run())
print("desc", d.run())
import kmfix._relr as rr
print("relr", rr.run())
print("cxx", x.run())
try:
    x.fail()
except RuntimeError as e:
    print("cxx error", e)
print("twins", a.run(), b.run(), a.__file__.endswith("a/kmtwin.cpython-311-x86_64-linux-gnu.so"))
"""


def fixtures(tmp):
    whl = build_fixtures(tmp)
    out, interp = convert_and_link(tmp, [whl])
    if failures:
        return
    out_a, b, sta, env = compare(tmp, [whl], interp, FIXTURE_SCRIPT)
    check(any(l.startswith("c order=ABC ") for l in out_a), "constructor priorities ran in order (ABC)")
    check(all("text=r-xp" in l for l in out_a if l.startswith(("c ", "desc ", "relr "))),
          "the converted text is mapped read-only and executable, as the loader maps it")
    check(any("cxx error raised in C++" == l for l in out_a), "the C++ exception became a Python RuntimeError")
    check(any(l == "twins 100 200 True" for l in out_a), "two modules of one file name are told apart by path")

    # The payload wheel: pip installs it for the km platform, the link runs from its tree.
    kmw = [f for f in os.listdir(out) if f.endswith("-cp311-cp311-km_x86_64.whl")]
    check(kmw == ["kmfix-1.0-cp311-cp311-km_x86_64.whl"], f"the KM payload wheel is written ({kmw})")
    if kmw:
        r = run(KWHEEL, "show", "--json", os.path.join(out, kmw[0]))
        doc = json.loads(r.stdout) if r.stdout.strip() else {}
        check(doc.get("record", {}).get("ok") and doc.get("tag_mismatches") == []
              and doc.get("wheel_tags") == ["cp311-cp311-km_x86_64"],
              f"kwheel show finds the payload wheel's RECORD and tags consistent ({r.stdout[:200]})")
        tree = os.path.join(tmp, "payload")
        r = run(PY, "-m", "pip", "install", "-q", "--target", tree, "--no-deps", "--no-index", "--only-binary=:all:",
                "--platform", "km_x86_64", os.path.join(out, kmw[0]))
        check(r.returncode == 0, f"pip installs the payload wheel for km_x86_64 ({r.stderr.strip()[-300:]})")
        sos = [os.path.join(d, f) for d, _, fs in os.walk(tree) for f in fs if f.endswith(".so")]
        check(len(sos) == 7 and all(os.path.getsize(p) == 0 for p in sos), "every converted object is an empty stub")
        link = os.path.join("kmfix-1.0.dist-info", "km", "kmfix.km.link")
        check(os.path.exists(os.path.join(tree, link)), "the link file travels in the wheel")
        py2 = os.path.join(tmp, "python-payload")
        r = run(KWHEEL, "km", "--link-python", py2, "--python", PY, "--link-file", link, cwd=tree)
        check(r.returncode == 0, f"the interpreter links from the installed payload alone ({r.stderr.strip()[-300:]})")
        r = run(py2, "-c", FIXTURE_SCRIPT, env=dict(env, PYTHONPATH=tree))
        check(r.returncode == 0 and r.stdout.strip().splitlines() == out_a,
              f"and runs the fixtures as the real loader does ({r.stderr.strip()[-300:]})")

    # The archive: members listed by ar, lib-mode definitions in the symbol index.
    ar = os.path.join(out, "libkmfix.km.a")
    members = [os.path.basename(m) for m in run("ar", "t", ar).stdout.split()]
    check(len(members) == 7, f"ar lists one member per shared object ({members})")
    check(members[:1] and re.fullmatch(r"000-libkmdep\.so@[0-9a-f]{12}\.o", members[0]),
          f"the library comes first, named with its tag: link order is initialisation order ({members[:1]})")
    index = run("nm", "-s", ar).stdout
    check("kmdep_value in" in index, "nm -s shows the vendored library's export in the index")
    with open(os.path.join(out, "kmfix.km.json")) as f:
        man = json.load(f)
    modes = {o["id"]: o["mode"] for o in man["objects"]}
    check(modes.get("kmfix.libs/libkmdep.so") == "lib" and modes.get("kmfix/_cxx.cpython-311-x86_64-linux-gnu.so")
          == "module", f"manifest: modules and libraries in their modes ({modes})")
    cxx = [o for o in man["objects"] if o["id"].startswith("kmfix/_cxx")][0]
    check("PyInit__cxx" in cxx["exports"] and "__cxa_throw" in cxx["undefined"],
          "manifest: the C++ module's exports and imports")
    check("-lstdc++" in man["static_libs"], "manifest and link file ask for libstdc++")

    # .eh_frame registration must stay: without it the C++ exception would terminate.
    obj = os.path.join(out, "kmfix-1.0.km", [m for m in members if "_cxx" in m][0])
    relocs = run("readelf", "-rW", obj).stdout
    check("__register_frame_info" in relocs, "the C++ object's constructor registers its .eh_frame")
    check(" T __register_frame_info" in run("nm", interp).stdout or
          " T __register_frame_info" in run("nm", "-D", interp).stdout,
          "the static interpreter links the unwinder's registration function")

    # Guard: the same link with the registration reference cut (the weak symbol renamed
    # to one nobody defines) must make the C++ exception terminate the process.
    cut_dir = os.path.join(tmp, "cut")
    os.makedirs(cut_dir)
    cut = os.path.join(cut_dir, "cxx-cut.o")
    r = run("objcopy", "--redefine-sym", "__register_frame_info=kw_test_no_registration", obj, cut)
    lf = os.path.join(out, "kmfix.km.link")
    others = [os.path.join(out, "kmfix-1.0.km", m) for m in members if "_cxx" not in m]
    with open(lf) as f:
        flags = [l.strip() for l in f if l.strip() and "whole-archive" not in l and not l.strip().endswith(".a")]
    cut_link = os.path.join(cut_dir, "cut.link")
    with open(cut_link, "w") as f:
        f.write("\n".join(["-Wl,--whole-archive", cut] + others + ["-Wl,--no-whole-archive"] + flags) + "\n")
    py_cut = os.path.join(cut_dir, "python-cut")
    r2 = run(KWHEEL, "km", "--link-python", py_cut, "--python", PY, "--link-file", cut_link)
    if r.returncode == 0 and r2.returncode == 0:
        r = run(py_cut, "-c", "import kmfix._cxx as x\ntry:\n    x.fail()\nexcept RuntimeError as e:\n    print(e)",
                env=env)
        check(r.returncode != 0 and "terminate" in r.stderr,
              f"without .eh_frame registration the C++ exception terminates (rc {r.returncode})")
    else:
        check(False, f"the guard interpreter links ({r.stderr.strip()[-200:]} {r2.stderr.strip()[-200:]})")

    # An extension that was not converted gives a clear ImportError, not a crash.
    shutil.copy(os.path.join(tmp, "twin1.so"), os.path.join(sta, "kmfix", "kmstray.cpython-311-x86_64-linux-gnu.so"))
    r = run(interp, "-c", "import kmfix.kmstray", env=env)
    check(r.returncode == 1 and "ImportError" in r.stderr and "not converted" in r.stderr,
          f"importing an unconverted extension is a clear ImportError ({r.stderr.strip()[-200:]})")

    # Kontain's method: a build's object files, renamed and registered; two modules with
    # identical exports side by side, told apart by path.
    ext = os.path.join(SRC, "ext")
    objdirs = []
    for n in (1, 2):
        od = os.path.join(tmp, f"objs{n}")
        os.makedirs(od)
        r = run("gcc", "-c", "-fPIC", "-O2", "-I" + PYINC, f"-DTWIN={n}", os.path.join(ext, "kmtwin.c"),
                "-o", os.path.join(od, "kmtwin.o"))
        objdirs.append(od)
    links = []
    for n, od in zip("ab", objdirs):
        o3 = os.path.join(tmp, "objs-out-" + n)
        r = run(KWHEEL, "km", "--objects", od, "--id", f"kmfix/{n}/kmtwin.cpython-311-x86_64-linux-gnu.so", "-o", o3)
        check(r.returncode == 0, f"--objects converts a build's objects ({r.stderr.strip()[-200:]})")
        links.append(os.path.join(o3, "kmtwin.km.link"))
        renamed = run("nm", os.path.join(o3, "libkmtwin.km.a")).stdout
        check(" T PyInit_kmtwin_" in renamed and " T PyInit_kmtwin\n" not in renamed,
              "the objects' exports are renamed (nm)")
        lint_before = run("eu-elflint", "--gnu-ld", os.path.join(od, "kmtwin.o")).stdout
        renamed_obj = [os.path.join(o3, "kmtwin.objects.km", f) for f in os.listdir(os.path.join(o3, "kmtwin.objects.km"))]
        lint_after = [run("eu-elflint", "--gnu-ld", f).stdout.strip() for f in renamed_obj]
        check(len(lint_after) == 2 and all(x == lint_before.strip() for x in lint_after),
              f"eu-elflint finds nothing new in the renamed and registration objects ({lint_after})")
    py3 = os.path.join(tmp, "python-objects")
    r = run(KWHEEL, "km", "--link-python", py3, "--python", PY, "--link-file", links[0], "--link-file", links[1])
    check(r.returncode == 0, f"objects-mode archives link ({r.stderr.strip()[-200:]})")
    r = run(py3, "-c", "import kmfix.a.kmtwin as a, kmfix.b.kmtwin as b; print(a.run(), b.run())", env=env)
    check(r.stdout.strip() == "100 200", f"objects-mode modules import and stay apart ({r.stdout.strip()} {r.stderr.strip()[-200:]})")

    # An untranslatable relocation: a clear error naming it, nothing written.
    size64 = os.path.join(tmp, "size64.so")
    r = run("gcc", "-shared", "-o", size64, os.path.join(SRC, "verdict", "size64.s"))
    bad = os.path.join(tmp, "kmbad-1.0-cp311-cp311-linux_x86_64.whl")
    make_wheel(bad, {"kmbad/size64.cpython-311-x86_64-linux-gnu.so": open(size64, "rb").read()})
    o2 = os.path.join(tmp, "km-bad")
    r = run(KWHEEL, "km", "-o", o2, bad)
    lines = r.stderr.strip().splitlines()
    check(r.returncode == 1 and len(lines) == 1 and "R_X86_64_SIZE64" in lines[0] and "kmbad" in lines[0],
          f"an untranslatable relocation is one clear error ({lines})")
    check(not any(f.endswith(".a") for f in os.listdir(o2)), "no archive is written for a refused wheel")

    # A forged segment address: the image (zeros included) goes whole into the
    # object, so a hole no linker leaves is refused, not written as a 512 MiB object.
    hole = os.path.join(tmp, "hole.so")
    r = subprocess.run(["gcc", "-shared", "-fPIC", "-x", "c", "-", "-o", hole],
                       input="int hole(void) { return 1; }\n", text=True, capture_output=True)
    check(r.returncode == 0, f"builds the hole fixture ({r.stderr.strip()})")
    img = bytearray(open(hole, "rb").read())
    phoff, = struct.unpack_from("<Q", img, 32)
    phnum, = struct.unpack_from("<H", img, 56)
    last = max(phoff + 56 * i for i in range(phnum) if struct.unpack_from("<I", img, phoff + 56 * i)[0] == 1)
    for field in (16, 24):  # p_vaddr, p_paddr
        v, = struct.unpack_from("<Q", img, last + field)
        struct.pack_into("<Q", img, last + field, v + (512 << 20))
    holed = os.path.join(tmp, "kmhole-1.0-cp311-cp311-linux_x86_64.whl")
    make_wheel(holed, {"kmhole/hole.cpython-311-x86_64-linux-gnu.so": bytes(img)})
    o3 = os.path.join(tmp, "km-hole")
    r = run(KWHEEL, "km", "-o", o3, holed)
    lines = r.stderr.strip().splitlines()
    check(r.returncode != 0 and len(lines) == 1 and "hole" in lines[0] and "kmhole-1.0" in lines[0],
          f"a forged segment hole is one clear error ({lines})")
    check(not os.path.isdir(o3) or not os.listdir(o3), f"nothing is written for it ({os.listdir(o3) if os.path.isdir(o3) else []})")

    # A pure wheel needs nothing; another architecture is refused for it.
    pure = os.path.join(CORPUS, "wheels", "auditwheel", "plumbum-1.6.8-py2.py3-none-any.whl")
    mscl = os.path.join(CORPUS, "wheels", "auditwheel", "python_mscl-67.0.1.0-cp313-cp313-manylinux2014_aarch64.whl")
    o4 = os.path.join(tmp, "km-other")
    r = run(KWHEEL, "km", "-o", o4, pure)
    check(r.returncode == 0 and "nothing to convert" in r.stdout and not os.listdir(o4),
          "a pure wheel converts to nothing and writes nothing")
    r = run(KWHEEL, "km", "-o", o4, mscl)
    check(r.returncode == 1 and "aarch64" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
          f"an aarch64 wheel is refused in one line ({r.stderr.strip()})")


CORPUS_SCRIPT = r"""
import numpy as np, lz4.frame, lz4.block, yaml, msgpack, markupsafe, brotli, threading
print(np.linalg.inv(np.array([[2., 1.], [1., 3.]])).round(9).tolist())
print(np.round(np.linalg.eigvals(np.array([[4., 1.], [2., 3.]])), 9).tolist())
print(np.linalg.svd(np.arange(6.).reshape(2, 3))[1].round(9).tolist())
print(np.fft.fft(np.arange(8)).round(9).tolist())
print(np.random.default_rng(42).integers(0, 1000, 8).tolist(), np.random.default_rng(7).random(2).tolist())
with np.errstate(divide="ignore"):
    print((np.ones(3) / np.zeros(3)).tolist())
d = b"kwheel " * 5000
print(lz4.frame.decompress(lz4.frame.compress(d)) == d, lz4.block.decompress(lz4.block.compress(d)) == d)
print(yaml.load("a: [1, 2, {b: c}]", Loader=yaml.CLoader), yaml.dump({"x": [1, 2]}, Dumper=yaml.CDumper).strip())
try:
    yaml.load("a: [", Loader=yaml.CLoader)
except yaml.YAMLError as e:
    print("yaml error", type(e).__name__)
print(msgpack.unpackb(msgpack.packb({"a": [1, 2.5, "x", None]})))
print(markupsafe.escape("<b>&"), type(markupsafe.escape).__name__, brotli.decompress(brotli.compress(d)) == d)
r = []
ts = [threading.Thread(target=lambda: r.append(float(np.linalg.det(np.eye(50) * 2)))) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sorted(r))
"""


def corpus(tmp):
    deb = os.path.join(CORPUS, "wheels", "debian")
    names = ["numpy-1.24.2", "lz4-4.0.2", "pyyaml-6.0", "msgpack-1.0.3", "markupsafe-2.1.2", "brotli-1.0.9"]
    wheels = [os.path.join(deb, n + "-cp311-cp311-linux_x86_64.whl") for n in names]
    out, interp = convert_and_link(tmp, wheels, "--deps", "--root", SYSROOT)
    if failures:
        return
    lib = ":".join(os.path.join(SYSROOT, "usr/lib/x86_64-linux-gnu", d) for d in ("", "blas", "lapack"))
    out_a, *_ = compare(tmp, wheels, interp, CORPUS_SCRIPT, {"LD_LIBRARY_PATH": lib})
    check(len(out_a) >= 10, "the smoke script printed every line")
    with open(os.path.join(out, "numpy.km.json")) as f:
        man = json.load(f)
    libs = sorted(o["id"] for o in man["objects"] if o["mode"] == "lib")
    check(any(l.startswith("libblas") for l in libs) and any(l.startswith("libgfortran") for l in libs),
          f"numpy's BLAS, LAPACK and gfortran were converted in lib mode ({libs})")


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-km-")
    try:
        {"fixtures": fixtures, "corpus": corpus}[GROUP](tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
