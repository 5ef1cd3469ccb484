#!/usr/bin/env python3
"""The KM verdict of `kwheel show`, against readelf as the oracle.

usage: check-verdict.py KWHEEL CORPUS SYSROOT_ROOT

Builds a wheel from fixtures/km/verdict (a text-relocating module, one with a
dynamic R_X86_64_SIZE64, one importing dladdr/dl_iterate_phdr/dlopen, a C++
STB_GNU_UNIQUE export, old and non-default symbol versions, a module whose
library is in the wheel's .libs and another nowhere, a plain one) and checks
each object's verdict, then real corpus wheels (numpy, an aarch64 wheel).
"""
import json
import os
import shutil
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, write_wheel  # noqa: E402

KWHEEL, CORPUS, SYSROOT = sys.argv[1:4]
SRC = os.path.join(os.environ.get("KW_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                   "fixtures", "km", "verdict")
SCHEMA = os.path.join(os.path.dirname(SRC), "..", "..", "man", "kwheel-show.schema.json")
def readelf(*args):
    return run("readelf", "-W", *args).stdout


def show(wheel, *opts):
    r = run(KWHEEL, "show", "--json", *opts, wheel)
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        print(r.stdout, r.stderr)
        raise
    try:
        import jsonschema
        with open(SCHEMA) as f:
            jsonschema.validate(doc, json.load(f))
    except ImportError:
        pass
    return r.returncode, doc


def obj(doc, name):
    for o in doc["km"]["objects"]:
        if o["name"] == name:
            return o
    raise KeyError(name)


def mentions(texts, *words):
    return any(all(w in t for w in words) for t in texts)


def build(tmp):
    def cc(out, *args):
        r = run("gcc", "-shared", "-fPIC", "-O1", "-o", out, *args)
        if r.returncode:
            sys.exit("fixture build failed: " + r.stderr)
        return out

    s = lambda n: os.path.join(SRC, n)  # noqa: E731
    t = lambda n: os.path.join(tmp, n)  # noqa: E731
    cc(t("libkwvhelper.so"), s("helper.c"), "-Wl,-soname,libkwvhelper.so")
    os.mkdir(t("elsewhere"))
    cc(t("elsewhere/libkwvgone.so"), s("gone.c"), "-Wl,-soname,libkwvgone.so")
    mods = {
        "textrel": cc(t("textrel.so"), s("textrel.s"), "-Wl,-z,notext"),
        "size64": cc(t("size64.so"), s("size64.s")),
        "dlfuncs": cc(t("dlfuncs.so"), s("dlfuncs.c"), "-ldl"),
        "unique": cc(t("unique.so"), "-xc++", s("unique.cc")),
        "versions": cc(t("versions.so"), s("versions.c"), "-Wl,--version-script=" + s("versions.map")),
        "needslib": cc(t("needslib.so"), s("needslib.c"), "-L" + tmp, "-L" + t("elsewhere"), "-lkwvhelper", "-lkwvgone",
                       "-Wl,-rpath,$ORIGIN/../kmverdict.libs"),
        "plain": cc(t("plain.so"), s("plain.c")),
    }
    whl = t("kmverdict-1.0-cp311-cp311-linux_x86_64.whl")
    members = {f"kmverdict/{m}.cpython-311-x86_64-linux-gnu.so": p for m, p in mods.items()}
    members["kmverdict.libs/libkwvhelper.so"] = t("libkwvhelper.so")
    r = run("gcc", "-O1", "-o", t("tool"), s("tool.c"))
    if r.returncode:
        sys.exit("fixture build failed: " + r.stderr)
    members["kmverdict/bin/tool"] = t("tool")
    members["kmverdict/__init__.py"] = None
    files = {}
    for name, path in members.items():
        files[name] = b""
        if path:
            with open(path, "rb") as f:
                files[name] = f.read()
    files["kmverdict-1.0.dist-info/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
                                              b"Tag: cp311-cp311-linux_x86_64\n")
    write_wheel(whl, files)
    return whl, mods


def fixtures(tmp):
    whl, mods = build(tmp)
    rc, doc = show(whl)
    km = doc["km"]
    M = lambda m: f"kmverdict/{m}.cpython-311-x86_64-linux-gnu.so"  # noqa: E731

    o = obj(doc, M("textrel"))
    check("TEXTREL" in readelf("-d", mods["textrel"]), "oracle: readelf shows TEXTREL in the textrel fixture")
    check(not o["convertible"] and mentions(o["reasons"], "DT_TEXTREL"), f"text relocations refuse ({o['reasons']})")

    o = obj(doc, M("size64"))
    check("R_X86_64_SIZE64" in readelf("-r", mods["size64"]), "oracle: readelf shows a dynamic R_X86_64_SIZE64")
    check(not o["convertible"] and mentions(o["reasons"], "R_X86_64_SIZE64"),
          f"an untranslatable relocation is named ({o['reasons']})")

    o = obj(doc, M("dlfuncs"))
    syms = readelf("--dyn-syms", mods["dlfuncs"])
    for f in ("dladdr", "dl_iterate_phdr", "dlopen"):
        check(f" {f}" in syms, f"oracle: readelf shows the import of {f}")
        check(mentions(o["warnings"], "imports " + f), f"{f} import is a warning")
    check(o["convertible"] and o["mode"] == "module", "loader introspection does not block conversion")

    o = obj(doc, M("unique"))
    check("UNIQUE" in readelf("--dyn-syms", mods["unique"]), "oracle: readelf shows a UNIQUE symbol")
    check(o["convertible"] and mentions(o["warnings"], "STB_GNU_UNIQUE", "_ZN7counterIiE1nE"),
          f"STB_GNU_UNIQUE exports are a warning naming the symbol ({o['warnings']})")

    o = obj(doc, M("versions"))
    syms = readelf("--dyn-syms", mods["versions"])
    check("memcpy@GLIBC_2.2.5" in syms and "api@KW_1.0" in syms, "oracle: readelf shows both versions")
    check(mentions(o["warnings"], "old, non-default", "memcpy@GLIBC_2.2.5"),
          f"an import of an old version is a warning ({o['warnings']})")
    check(mentions(o["warnings"], "exports non-default", "api@KW_1.0"),
          "an export of a non-default version is a warning")
    check(not mentions(o["warnings"], "api@KW_2.0"), "the default version is not reported")

    o = obj(doc, M("needslib"))
    check(not o["convertible"] and mentions(o["reasons"], "libkwvgone.so", "not found"),
          f"an unresolvable dependency refuses ({o['reasons']})")
    check(not mentions(o["reasons"], "libkwvhelper"), "the library in .libs is found")
    o = obj(doc, "kmverdict.libs/libkwvhelper.so")
    check(o["in_wheel"] and o["mode"] == "lib" and o["convertible"], "the vendored library converts in lib mode")

    o = obj(doc, M("plain"))
    check(o["convertible"] and o["mode"] == "module" and not o["warnings"] and not o["reasons"],
          "the control module converts without warnings")

    o = obj(doc, "kmverdict/bin/tool")
    check(o["executable"] and not o["convertible"] and mentions(km["warnings"], "kmverdict/bin/tool"),
          f"a program in the wheel is reported as a warning, not a blocker ({o['reasons']})")
    check(not km["convertible"] and len(km["reasons"]) == 3 and not km["needs_deps"],
          f"the wheel is refused for exactly three objects ({km['reasons']})")

    # With the missing library on the path it is found outside the wheel: converted with --deps.
    rc, doc = show(whl, "--library-path", os.path.join(tmp, "elsewhere"))
    o = obj(doc, M("needslib"))
    check(o["convertible"], "with the library path the dependency resolves")
    ext = [x for x in doc["km"]["objects"] if not x["in_wheel"]]
    check(len(ext) == 1 and ext[0]["soname"] == "libkwvgone.so" and ext[0]["mode"] == "lib"
          and doc["km"]["needs_deps"], f"the external library is a lib-mode object to convert ({ext})")

    text = run(KWHEEL, "show", whl).stdout
    check("KM: not convertible" in text and "R_X86_64_SIZE64" in text, "the text report gives the KM verdict")


def corpus():
    numpy = os.path.join(CORPUS, "wheels", "debian", "numpy-1.24.2-cp311-cp311-linux_x86_64.whl")
    if os.path.exists(numpy):
        rc, doc = show(numpy, "--root", SYSROOT)
        km = doc["km"]
        check(km["convertible"] and km["needs_deps"], "numpy converts, with its BLAS/LAPACK libraries")
        ext = sorted(os.path.basename(o["name"]) for o in km["objects"] if not o["in_wheel"])
        want = sorted(os.path.basename(l["realpath"] or "") for l in doc["libraries"]
                      if l["soname"] in ("libblas.so.3", "liblapack.so.3", "libgfortran.so.5", "libquadmath.so.0"))
        check(len(want) == 4 and all(want), f"oracle: the sysroot holds numpy's four external libraries ({want})")
        check(ext == want, f"the libraries to convert are numpy's external ones ({ext})")
        um = obj(doc, "numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so")
        with tempfile.TemporaryDirectory() as t:
            with zipfile.ZipFile(numpy) as z:
                path = z.extract(um["name"], t)
            syms = readelf("--dyn-syms", path)
        check((" dladdr" in syms) == mentions(um["warnings"], "imports dladdr"),
              "numpy's dladdr warning matches readelf")
        check(("UNIQUE" in syms) == mentions(um["warnings"], "STB_GNU_UNIQUE"),
              "numpy's STB_GNU_UNIQUE warning matches readelf")
    mscl = os.path.join(CORPUS, "wheels", "auditwheel", "python_mscl-67.0.1.0-cp313-cp313-manylinux2014_aarch64.whl")
    if os.path.exists(mscl):
        rc, doc = show(mscl)
        check(not doc["km"]["convertible"] and mentions(doc["km"]["reasons"], "aarch64", "x86_64 only"),
              "an aarch64 wheel is refused for its architecture")
    pure = os.path.join(CORPUS, "wheels", "auditwheel", "plumbum-1.6.8-py2.py3-none-any.whl")
    if os.path.exists(pure):
        rc, doc = show(pure)
        check(doc["km"]["convertible"] and not doc["km"]["objects"], "a pure wheel needs no conversion")


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-km-verdict-")
    try:
        fixtures(tmp)
        corpus()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
