#!/usr/bin/env python3
"""`kwheel repair` does what `auditwheel repair` does; pip, the loader, readelf and dpkg are the oracles.

usage: check-parity.py KWHEEL CORPUS SYSROOT_ROOT GROUP
GROUP is one of:
  tags      corpus wheels: --plat X keeps X and adds the more compatible tag
            reached (auditwheel's main_repair: abis = best + aliases, then X +
            aliases, unless --only-plat), file name platforms sorted and the
            plain linux tag dropped (wheeltools.add_platforms); --plat auto and
            $AUDITWHEEL_PLAT; a tag too old and an unknown --plat refused;
            pip installs the result and its modules import
  options   -z / $AUDITWHEEL_ZIP_COMPRESSION_LEVEL, --no-update-tags, --patcher,
            --ldpaths and $AUDITWHEEL_LD_LIBRARY_PATH, --disable-isa-ext-check,
            a missing input
  exclude   --exclude by name and by path glob leaves the library and what only
            it needs external; the result still imports with them on the path
  partial   a module whose DT_RPATH also finds the libraries its in-wheel
            library needs (inherited DT_RPATH): repaired, installed, imported
  scripts   an ELF program in <dist>.data/scripts/ runs from a venv after
            pip install, through the launcher that replaces it
  libpython a module linked against libpython3.11: the DT_NEEDED goes, nothing
            is grafted, the tag is the one the same module without libpython
            gets; installed and imported
  refusals  ELF code of another architecture than the file name's, a shared
            library under .data/purelib/: refused, nothing written
  sbom      the SBOM of a wheel repaired against the host names the Debian
            package of the grafted libffi (as dpkg-query says), auditwheel's form
  auditwheel  (slow) the real auditwheel side by side, when it can run here
            (python3-pyelftools, python3-packaging, a patchelf >= 0.14.5 on PATH
            or built from the reference tree into the build directory): the same
            file names for the corpus wheels and every --plat, the same WHEEL
            tags, the same SBOM components
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, sha, write_wheel  # noqa: E402

KWHEEL, CORPUS, SYSROOT, GROUP = sys.argv[1:5]
SRC = os.path.join(os.environ.get("KW_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                   "fixtures", "repair")
PY = "/usr/bin/python3"
LIBPATH = ":".join(os.path.join(SYSROOT, d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"))
DEBIAN = os.path.join(CORPUS, "wheels", "debian")
REFERENCE = os.path.join(CORPUS, "reference")
INC = "/usr/include/python3.11"


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONPATH") and not k.startswith("AUDITWHEEL_")}
    env.update(extra)
    return env


def repair(wheel, out, *extra, env=None):
    return run([KWHEEL, "repair", "--json", "-w", out] + list(extra) + [wheel], env=env or clean_env())


def result(r):
    try:
        return json.loads(r.stdout.splitlines()[0]) if r.returncode == 0 else {}
    except (ValueError, IndexError):
        return {}


def fresh(tmp, name):
    d = os.path.join(tmp, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def corpus(dist):
    return [os.path.join(DEBIAN, w) for w in os.listdir(DEBIAN) if w.startswith(dist + "-") and w.endswith(".whl")][0]


def platforms(path):
    return os.path.basename(path)[:-4].split("-")[-1].split(".")


def wheel_tags(path):
    with zipfile.ZipFile(path) as z:
        text = z.read([n for n in z.namelist() if n.endswith(".dist-info/WHEEL")][0]).decode()
    return [l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("Tag:")]


def aliases(tag):
    """A policy's tag and its legacy alias (PEP 600's table), as auditwheel writes them together."""
    legacy = {"manylinux_2_5": "manylinux1", "manylinux_2_12": "manylinux2010", "manylinux_2_17": "manylinux2014"}
    base = tag[:-len("_x86_64")]
    return [tag] + ([legacy[base] + "_x86_64"] if base in legacy else [])


def policy_of(tag):
    """manylinux_2_17_x86_64 or manylinux2014_x86_64 -> (2, 17)."""
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    m = re.match(r"manylinux_(\d+)_(\d+)_", tag)
    return (int(m.group(1)), int(m.group(2))) if m else legacy[tag.split("_")[0]]


def pip_target(wheel, target):
    return run([PY, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check", "--quiet",
                "--target", target, wheel])


def imports(target, code, env=None):
    return run([PY, "-c", f"import sys; sys.path.insert(0, {target!r})\n" + code], env=env or clean_env(),
               cwd=os.path.dirname(target))


def cc(*argv):
    r = run(["cc", "-O1"] + list(argv))
    if r.returncode != 0:
        raise SystemExit("fixture build failed: cc " + " ".join(argv) + "\n" + r.stderr)


def dist_info(dist, ver="1.0"):
    di = f"{dist}-{ver}.dist-info"
    return {f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {ver}\n".encode(),
            f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: kwheel-tests\nRoot-Is-Purelib: false\n"
                           b"Tag: cp311-cp311-linux_x86_64\n"}


def build_chain(b, variant, rpath=True):
    """libkwbase.so.1 and libkwdup.so.1 (which needs it) in b; returns b."""
    os.makedirs(b, exist_ok=True)
    cc("-shared", "-fPIC", os.path.join(SRC, "kwbase.c"), "-o", os.path.join(b, "libkwbase.so.1"),
       "-Wl,-soname,libkwbase.so.1")
    cc("-shared", "-fPIC", f"-DVARIANT={variant}", os.path.join(SRC, "kwdup.c"), "-o", os.path.join(b, "libkwdup.so.1"),
       "-Wl,-soname,libkwdup.so.1", "-L" + b, "-l:libkwbase.so.1", *(["-Wl,-rpath," + b] if rpath else []))
    return b


def readelf_d(path):
    return run(["readelf", "-dW", path]).stdout


# ---- tags ---------------------------------------------------------------

PLATS = ["manylinux_2_5_x86_64", "manylinux2014_x86_64", "manylinux_2_24_x86_64", "manylinux_2_28_x86_64",
         "manylinux_2_31_x86_64", "manylinux_2_34_x86_64", "manylinux_2_35_x86_64", "manylinux_2_39_x86_64"]
SMOKE = {
    "lz4": ["lz4.frame", "import lz4.frame; d = b'kw' * 500; assert lz4.frame.decompress(lz4.frame.compress(d)) == d"],
    "markupsafe": ["markupsafe._speedups", "import markupsafe; assert str(markupsafe.escape('<a>')) == '&lt;a&gt;'"],
    "ujson": ["ujson", "import ujson; assert ujson.loads(ujson.dumps({'a': 1})) == {'a': 1}"],
}


def group_tags(tmp):
    for dist in ("lz4", "markupsafe", "ujson"):
        wheel = corpus(dist)
        out = fresh(tmp, "auto-" + dist)
        auto = result(repair(wheel, out, "--library-path", LIBPATH))
        if not check(auto, f"{dist}: repaired with the best tag"):
            continue
        best = [t for t in platforms(auto["output"]) if t.startswith("manylinux")]
        check(platforms(auto["output"]) == sorted(best) and "linux_x86_64" not in best,
              f"{dist}: file name platforms sorted, the plain linux tag gone ({best})")
        best_pol = policy_of(best[0])
        r = repair(wheel, fresh(tmp, "pa-" + dist), "--library-path", LIBPATH, "--plat", "auto")
        check(result(r).get("output", "").endswith(os.path.basename(auto["output"])), f"{dist}: --plat auto is the best")
        for plat in PLATS:
            out = fresh(tmp, f"{dist}-{plat}")
            r = repair(wheel, out, "--library-path", LIBPATH, "--plat", plat)
            res = result(r)
            if policy_of(plat) < best_pol:
                check(r.returncode == 1 and "cannot reach" in r.stdout and not os.listdir(out),
                      f"{dist} --plat {plat}: more compatible than reachable, refused, nothing written")
                continue
            want = sorted(set(best) | set(aliases(plat) if "manylinux_" in plat else
                                              aliases("manylinux_2_17_x86_64")))
            got = platforms(res["output"]) if res else None
            check(got == want, f"{dist} --plat {plat}: tagged {got}, want {want}")
            tags = wheel_tags(res["output"]) if res else []
            order = []
            for t in aliases([t for t in best if t.startswith("manylinux_")][0]) + \
                    aliases(plat if "manylinux_" in plat else "manylinux_2_17_x86_64"):
                order += [t] if t not in order else []
            check(tags == [f"cp311-cp311-{t}" for t in order],
                  f"{dist} --plat {plat}: WHEEL Tag lines best first, then the requested ({tags})")
            r2 = repair(wheel, fresh(tmp, f"e-{dist}-{plat}"), "--library-path", LIBPATH,
                        env=clean_env(AUDITWHEEL_PLAT=plat))
            check(os.path.basename(result(r2).get("output", "")) == os.path.basename(res.get("output", "-")),
                  f"{dist}: AUDITWHEEL_PLAT={plat} is --plat's default")
            ro = result(repair(wheel, fresh(tmp, f"o-{dist}-{plat}"), "--library-path", LIBPATH, "--plat", plat,
                               "--only-plat"))
            want_only = sorted(aliases(plat)) if "manylinux_" in plat else sorted(aliases("manylinux_2_17_x86_64"))
            check(ro and platforms(ro["output"]) == want_only, f"{dist} --plat {plat} --only-plat: {want_only}")
        # the wheel a --plat above the host's glibc gives still installs here: it keeps the best tag
        res = result(repair(wheel, fresh(tmp, "hi-" + dist), "--library-path", LIBPATH, "--plat",
                            "manylinux_2_39_x86_64"))
        target = os.path.join(tmp, "t-" + dist)
        pr = pip_target(res["output"], target) if res else None
        check(pr is not None and pr.returncode == 0, f"{dist}: pip installs the --plat 2_39 result on a 2.36 host "
                                                     f"({pr.stderr.strip()[:200] if pr else ''})")
        mod, code = SMOKE[dist]
        ir = imports(target, f"import {mod}\n{code}\n")
        check(ir.returncode == 0, f"{dist}: it imports and works ({ir.stderr.strip()[-200:]})")
    # a wheel tagged "any" that holds ELF code: "any" gives way, and the wheel becomes platlib
    wheel = any_wheel(tmp)
    res = result(repair(wheel, fresh(tmp, "any")))
    meta = root_is_purelib(res["output"]) if res else None
    check(res and platforms(res["output"]) == ["manylinux1_x86_64", "manylinux_2_5_x86_64"] and meta == "false",
          f"py3-none-any with ELF code: retagged {res.get('tag')}, Root-Is-Purelib {meta}")
    if res:
        shutil.rmtree(os.path.join(tmp, "anychain"))
        target = os.path.join(tmp, "t-any")
        pr = pip_target(res["output"], target)
        ir = imports(target, "import ctypes, os; l = ctypes.CDLL(os.path.join(sys.path[0], 'kwany', 'libkwdup.so.1')); "
                             "print(l.kwdup_value())")
        check(pr.returncode == 0 and ir.stdout.strip() == "607", f"it installs and its library loads ({ir.stderr[-200:]})")
    r = repair(corpus("lz4"), fresh(tmp, "bad"), "--plat", "manylinux_9_99_x86_64")
    check(r.returncode == 3 and "--plat" in r.stderr and not os.listdir(os.path.join(tmp, "bad")),
          f"an unknown --plat is a usage error, exit 3 ({r.returncode})")
    r = repair(corpus("lz4"), fresh(tmp, "bad2"), env=clean_env(AUDITWHEEL_PLAT="bogus"))
    check(r.returncode == 3, "an unknown AUDITWHEEL_PLAT is a usage error too")


def root_is_purelib(path):
    with zipfile.ZipFile(path) as z:
        text = z.read([n for n in z.namelist() if n.endswith(".dist-info/WHEEL")][0]).decode()
    return "".join(l.split(":", 1)[1].strip().lower() for l in text.splitlines() if l.startswith("Root-Is-Purelib:"))


def any_wheel(tmp):
    """py3-none-any, but with an ELF library that needs an external one."""
    b = build_chain(os.path.join(tmp, "anychain"), 6)
    files = {"kwany/__init__.py": b"", "kwany/libkwdup.so.1": open(os.path.join(b, "libkwdup.so.1"), "rb").read()}
    files.update(dist_info("kwany"))
    files["kwany-1.0.dist-info/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: kwheel-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    return write_wheel(os.path.join(tmp, "kwany-1.0-py3-none-any.whl"), files)


# ---- options ------------------------------------------------------------

def stored_types(path, prefix):
    with zipfile.ZipFile(path) as z:
        return {i.compress_type for i in z.infolist() if i.filename.startswith(prefix)}


def group_options(tmp):
    wheel = corpus("lz4")
    for how, extra, env in (("-z 0", ["-z", "0"], None),
                            ("AUDITWHEEL_ZIP_COMPRESSION_LEVEL=0", [], clean_env(AUDITWHEEL_ZIP_COMPRESSION_LEVEL="0"))):
        res = result(repair(wheel, fresh(tmp, "z"), "--library-path", LIBPATH, *extra, env=env))
        check(res and res["grafted"] and stored_types(res["output"], "lz4.libs/") == {zipfile.ZIP_STORED},
              f"{how}: the grafted libraries are stored, not deflated")
    res = result(repair(wheel, fresh(tmp, "z9"), "--library-path", LIBPATH, "-z", "9"))
    check(res and stored_types(res["output"], "lz4.libs/") == {zipfile.ZIP_DEFLATED}, "-z 9 deflates them")
    r = repair(wheel, fresh(tmp, "zbad"), "-z", "10")
    check(r.returncode == 3, "-z 10 is a usage error")
    # --no-update-tags: grafted and relinked, name and WHEEL as they were
    out = fresh(tmp, "nut")
    res = result(repair(wheel, out, "--library-path", LIBPATH, "--no-update-tags"))
    check(res and os.path.basename(res["output"]) == os.path.basename(wheel) and res["grafted"]
          and wheel_tags(res["output"]) == wheel_tags(wheel),
          f"--no-update-tags: libraries grafted, file name and WHEEL tags kept ({res.get('output')})")
    if res:
        target = os.path.join(tmp, "t-nut")
        pr = pip_target(res["output"], target)
        ir = imports(target, "import lz4.frame; assert lz4.frame.decompress(lz4.frame.compress(b'x' * 99)) == b'x' * 99")
        check(pr.returncode == 0 and ir.returncode == 0, f"--no-update-tags: installs and imports ({ir.stderr[-200:]})")
    # RECORD.jws and RECORD.p7s sign the old RECORD: dropped, as auditwheel unsigns a wheel it repairs
    with zipfile.ZipFile(wheel) as z:
        files = {n: z.read(n) for n in z.namelist() if not n.endswith(".dist-info/RECORD")}
        di = [n for n in z.namelist() if n.endswith(".dist-info/RECORD")][0][:-len("RECORD")]
    files[di + "RECORD.jws"] = b'{"signatures": []}'
    files[di + "RECORD.p7s"] = b"not a real signature"
    signed = write_wheel(os.path.join(fresh(tmp, "signed-in"), os.path.basename(wheel)), files)
    res = result(repair(signed, fresh(tmp, "signed"), "--library-path", LIBPATH))
    if check(res and res["grafted"], "a signed wheel is repaired"):
        with zipfile.ZipFile(res["output"]) as z:
            names = z.namelist()
            record = z.read(di + "RECORD").decode()
        check(not any(n.endswith((".jws", ".p7s")) for n in names) and ".jws" not in record and ".p7s" not in record,
              f"the signatures of the old RECORD are dropped ({[n for n in names if n.startswith(di)]})")
        target = os.path.join(tmp, "t-signed")
        pr = pip_target(res["output"], target)
        ir = imports(target, "import lz4.frame; assert lz4.frame.decompress(lz4.frame.compress(b'y' * 9)) == b'y' * 9")
        check(pr.returncode == 0 and ir.returncode == 0, f"the unsigned wheel installs and imports ({ir.stderr[-200:]})")
    # --patcher: accepted, said to be ignored
    r = run([KWHEEL, "repair", "-w", fresh(tmp, "pat"), "--library-path", LIBPATH, "--patcher", "patchelf", wheel])
    check(r.returncode == 0 and "--patcher" in r.stderr and "ignored" in r.stderr, "--patcher accepted with a note on stderr")
    # --ldpaths replaces the default directories; AUDITWHEEL_LD_LIBRARY_PATH adds to the search
    res = result(repair(wheel, fresh(tmp, "ldp"), "--ldpaths", LIBPATH))
    check(res and all(g["source"].startswith(SYSROOT) for g in res["grafted"]) and res["grafted"],
          "--ldpaths: libraries found and grafted from the given directories")
    r = repair(wheel, fresh(tmp, "ldp0"), "--ldpaths", os.path.join(tmp, "nothing-here"))
    check(r.returncode == 1 and "not found" in r.stdout, "--ldpaths: the default directories are no longer searched")
    res = result(repair(wheel, fresh(tmp, "awl"), env=clean_env(AUDITWHEEL_LD_LIBRARY_PATH=LIBPATH)))
    check(res and res["grafted"] and all(g["source"].startswith(SYSROOT) for g in res["grafted"]),
          "AUDITWHEEL_LD_LIBRARY_PATH: searched before the system directories")
    res = result(repair(wheel, fresh(tmp, "isa"), "--library-path", LIBPATH, "--disable-isa-ext-check"))
    check(bool(res), "--disable-isa-ext-check accepted")
    # a missing input: said so, whatever its name
    for name in ("no-such.whl", "no-such.txt", "nodir/x"):
        r = run([KWHEEL, "repair", "-w", fresh(tmp, "miss"), os.path.join(tmp, name)])
        check(r.returncode == 2 and "no such file" in r.stderr and "file name" not in r.stderr,
              f"missing '{name}': 'no such file', exit 2 ({r.stderr.strip()})")


# ---- exclude ------------------------------------------------------------

def ext_wheel(tmp, dist, libdir, mod="kwx", extra=()):
    tree = os.path.join(tmp, "tree-" + dist)
    os.makedirs(tree, exist_ok=True)
    so = os.path.join(tree, f"{mod}.so")
    cc("-shared", "-fPIC", f"-DMODNAME={mod}", "-I" + INC, os.path.join(SRC, "kwext.c"), "-o", so,
       "-L" + libdir, "-l:libkwdup.so.1", *extra)
    files = {f"{dist}/__init__.py": b"", f"{dist}/{mod}.cpython-311-x86_64-linux-gnu.so": open(so, "rb").read()}
    files.update(dist_info(dist))
    return write_wheel(os.path.join(tmp, f"{dist}-1.0-cp311-cp311-linux_x86_64.whl"), files)


def group_exclude(tmp):
    b = build_chain(os.path.join(tmp, "chain"), 5)
    wheel = ext_wheel(tmp, "kwexcl", b, extra=["-Wl,-rpath," + b])
    base = result(repair(wheel, fresh(tmp, "all")))
    check(sorted(g["soname"] for g in base.get("grafted", [])) == ["libkwbase.so.1", "libkwdup.so.1"],
          "without --exclude both libraries are grafted")
    for how, pat in (("by name", "libkwdup.so.*"), ("by resolved path", b + "/*dup*")):
        out = fresh(tmp, "ex")
        res = result(repair(wheel, out, "--exclude", pat))
        check(res and res["grafted"] == [] and res["excluded"] == ["libkwdup.so.1"]
              and res["excluded_deps"] == ["libkwbase.so.1"],
              f"--exclude {how}: libkwdup left external and libkwbase, which only it needs ({res})")
        if not res:
            continue
        x = os.path.join(tmp, "x-ex")
        shutil.rmtree(x, ignore_errors=True)
        with zipfile.ZipFile(res["output"]) as z:
            z.extractall(x)
        d = readelf_d(os.path.join(x, "kwexcl", "kwx.cpython-311-x86_64-linux-gnu.so"))
        check("[libkwdup.so.1]" in d and not any(n.startswith("kwexcl.libs/") for n in zipfile.ZipFile(res["output"]).namelist()),
              f"--exclude {how}: the module still needs libkwdup.so.1 by its name, no libraries directory")
        target = os.path.join(tmp, "t-ex")
        shutil.rmtree(target, ignore_errors=True)
        pr = pip_target(res["output"], target)
        ir = imports(target, "import kwexcl.kwx as m; print(m.value())", env=clean_env(LD_LIBRARY_PATH=b))
        check(pr.returncode == 0 and ir.stdout.strip() == "507",
              f"--exclude {how}: installed, it imports with the external libraries on the path ({ir.stderr[-200:]})")
        text = run([KWHEEL, "repair", "-w", fresh(tmp, "ext"), "--exclude", pat, wheel]).stdout
        check("left external (--exclude): libkwdup.so.1" in text and "libkwbase.so.1" in text,
              "the text report names what was left out")
    # A vendored library that an allowed system library needs too: the loader maps both copies (as
    # libGLdispatch under libGL): said, and --exclude keeps one
    t = build_chain(os.path.join(tmp, "twice"), 5)
    gl = os.path.join(tmp, "twice-gl.c")
    open(gl, "w").write("int kwdup_value(void);\nint kwgl(void) { return kwdup_value(); }\n")
    cc("-shared", "-fPIC", gl, "-o", os.path.join(t, "libGL.so.1"), "-Wl,-soname,libGL.so.1", "-L" + t,
       "-l:libkwdup.so.1", "-Wl,-rpath," + t)
    wheel = ext_wheel(tmp, "kwtwice", t, extra=["-Wl,--no-as-needed", "-l:libGL.so.1", "-Wl,-rpath," + t])
    res = result(repair(wheel, fresh(tmp, "twice-out")))
    want = [{"soname": "libkwbase.so.1", "loaded_by": ["libGL.so.1"]},
            {"soname": "libkwdup.so.1", "loaded_by": ["libGL.so.1"]}]
    check(res and res.get("loaded_twice") == want, f"vendored and loaded by libGL too: said ({res.get('loaded_twice')})")
    if res:
        target = os.path.join(tmp, "t-twice")
        pr = pip_target(res["output"], target)
        ir = imports(target, "import kwtwice.kwx as m; m.value(); "
                             "print(len(set(l.split()[-1] for l in open('/proc/self/maps') if 'libkwdup' in l)))",
                     env=clean_env(LD_LIBRARY_PATH=t))
        check(pr.returncode == 0 and ir.stdout.strip() == "2",
              f"the oracle agrees: the process maps two libkwdup files ({ir.stdout.strip()} {ir.stderr[-200:]})")
    text = run([KWHEEL, "repair", "-w", fresh(tmp, "twice-text"), wheel]).stdout
    check("warning: libkwdup.so.1 is vendored, but libGL.so.1" in text and "--exclude libkwdup.so.1" in text,
          "the text report warns and names the way out")
    res = result(repair(wheel, fresh(tmp, "twice-ex"), "--exclude", "libkwdup.so.1"))
    check(res and res.get("loaded_twice") == [] and res["excluded"] == ["libkwdup.so.1"],
          f"--exclude: one copy, no warning ({res.get('loaded_twice')})")


# ---- partial resolution ---------------------------------------------------

def group_partial(tmp):
    b = build_chain(os.path.join(tmp, "p"), 3, rpath=False)
    so = os.path.join(tmp, "pext.so")
    cc("-shared", "-fPIC", "-DMODNAME=pext", "-I" + INC, os.path.join(SRC, "kwext.c"), "-o", so,
       "-L" + b, "-l:libkwdup.so.1", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/lib")
    files = {"kwpart/__init__.py": b"",
             "kwpart/pext.cpython-311-x86_64-linux-gnu.so": open(so, "rb").read(),
             "kwpart/lib/libkwdup.so.1": open(os.path.join(b, "libkwdup.so.1"), "rb").read(),
             "kwpart/lib/libkwbase.so.1": open(os.path.join(b, "libkwbase.so.1"), "rb").read()}
    files.update(dist_info("kwpart"))
    wheel = write_wheel(os.path.join(tmp, "kwpart-1.0-cp311-cp311-linux_x86_64.whl"), files)
    shutil.rmtree(b)
    # the oracle first: as it is, the wheel works (libkwbase comes through the module's DT_RPATH)
    t0 = os.path.join(tmp, "t0")
    pip_target(wheel, t0)
    ir = imports(t0, "import kwpart.pext as m; print(m.value())")
    check(ir.stdout.strip() == "307", f"the wheel as built imports: inherited DT_RPATH finds libkwbase ({ir.stderr[-200:]})")
    lt = run([KWHEEL, "lddtree", os.path.join(t0, "kwpart", "pext.cpython-311-x86_64-linux-gnu.so")]).stdout
    check("libkwbase.so.1 => " + os.path.join(t0, "kwpart", "lib", "libkwbase.so.1") in lt, "kwheel lddtree resolves it so")
    res = result(repair(wheel, fresh(tmp, "out")))
    check(res and res["grafted"] == [], f"repaired: nothing to graft, nothing 'not found' ({res})")
    if res:
        t1 = os.path.join(tmp, "t1")
        pr = pip_target(res["output"], t1)
        ir = imports(t1, "import kwpart.pext as m; print(m.value())")
        check(pr.returncode == 0 and ir.stdout.strip() == "307", f"the repaired wheel installs and imports ({ir.stderr[-200:]})")


# ---- scripts ------------------------------------------------------------

def group_scripts(tmp):
    b = build_chain(os.path.join(tmp, "s"), 1)
    prog = os.path.join(tmp, "kwprog")
    cc(os.path.join(SRC, "kwprog.c"), "-o", prog, "-L" + b, "-l:libkwdup.so.1", "-Wl,-rpath," + b)
    files = {"kwscr/__init__.py": b"", "kwscr-1.0.data/scripts/kwprog": open(prog, "rb").read()}
    files.update(dist_info("kwscr"))
    wheel = write_wheel(os.path.join(tmp, "kwscr-1.0-cp311-cp311-linux_x86_64.whl"), files)
    res = result(repair(wheel, fresh(tmp, "out")))
    check(res and res.get("scripts_moved") == ["kwscr-1.0.data/scripts/kwprog -> kwscr.scripts/kwprog"],
          f"the ELF program is moved into the package ({res.get('scripts_moved')})")
    if not res:
        return
    with zipfile.ZipFile(res["output"]) as z:
        launcher = z.read("kwscr-1.0.data/scripts/kwprog")
        mode = z.getinfo("kwscr-1.0.data/scripts/kwprog").external_attr >> 16
        moved = z.read("kwscr.scripts/kwprog")
    check(launcher.startswith(b"#!python\n") and b"kwscr.scripts/kwprog" in launcher and mode & 0o111,
          "its place holds an executable Python launcher")
    x = os.path.join(tmp, "moved")
    open(x, "wb").write(moved)
    check("[$ORIGIN/../kwscr.libs]" in readelf_d(x), "the moved program finds the libraries from its new place")
    shutil.rmtree(b)
    venv = os.path.join(tmp, "venv")
    run([PY, "-m", "venv", "--without-pip", venv])
    pr = run([PY, "-m", "pip", "--python", os.path.join(venv, "bin", "python"), "install", "--no-index", "--no-deps",
              "--disable-pip-version-check", "--quiet", res["output"]])
    check(pr.returncode == 0, f"pip installs it into a venv ({pr.stderr.strip()[:200]})")
    rr = run([os.path.join(venv, "bin", "kwprog")], env=clean_env())
    check(rr.returncode == 0 and rr.stdout.strip() == "kwprog 107",
          f"the installed command runs with the vendored library ({rr.stdout.strip()} {rr.stderr.strip()[-200:]})")


# ---- libpython ----------------------------------------------------------

def group_libpython(tmp):
    src = os.path.join(tmp, "lp.c")
    open(src, "w").write('#include <Python.h>\n'
                         'static struct PyModuleDef m = { PyModuleDef_HEAD_INIT, "kwlp", NULL, -1, NULL, NULL, NULL, NULL, NULL };\n'
                         'PyMODINIT_FUNC PyInit_kwlp(void) { return PyModule_Create(&m); }\n')
    wheels = {}
    for dist, extra in (("kwlp", ["-lpython3.11"]), ("kwnolp", [])):
        so = os.path.join(tmp, dist + ".so")
        cc("-shared", "-fPIC", "-I" + INC, src, "-o", so, *extra)
        files = {"kwlp.cpython-311-x86_64-linux-gnu.so": open(so, "rb").read()}
        files.update(dist_info(dist))
        wheels[dist] = write_wheel(os.path.join(tmp, f"{dist}-1.0-cp311-cp311-linux_x86_64.whl"), files)
    check("[libpython3.11.so.1.0]" in readelf_d(os.path.join(tmp, "kwlp.so")), "the fixture needs libpython3.11.so.1.0")
    res = result(repair(wheels["kwlp"], fresh(tmp, "out")))
    ref = result(repair(wheels["kwnolp"], fresh(tmp, "ref")))
    check(res and res["grafted"] == [] and res["libpython_removed"] == ["kwlp.cpython-311-x86_64-linux-gnu.so: libpython3.11.so.1.0"],
          f"nothing grafted, the libpython entry removed and said ({res})")
    check(res and ref and platforms(res["output"]) == platforms(ref["output"]),
          f"the tag is the one the module gets without libpython ({res.get('tag')} / {ref.get('tag')})")
    if not res:
        return
    x = os.path.join(tmp, "x")
    with zipfile.ZipFile(res["output"]) as z:
        z.extractall(x)
    d = readelf_d(os.path.join(x, "kwlp.cpython-311-x86_64-linux-gnu.so"))
    check("libpython" not in d, "readelf: no libpython in the repaired module")
    text = run([KWHEEL, "repair", "-w", fresh(tmp, "txt"), wheels["kwlp"]]).stdout
    check("removed DT_NEEDED" in text and "libpython3.11.so.1.0" in text, "the text report says so")
    target = os.path.join(tmp, "t")
    pr = pip_target(res["output"], target)
    ir = imports(target, "import kwlp; print(kwlp.__name__)")
    check(pr.returncode == 0 and ir.stdout.strip() == "kwlp", f"installs and imports ({ir.stderr.strip()[-200:]})")


# ---- refusals -----------------------------------------------------------

def group_refusals(tmp):
    arm = os.path.join(CORPUS, "wheels", "auditwheel", "glibc", "testsimple-0.0.1-cp313-cp313-linux_aarch64.whl")
    with zipfile.ZipFile(arm) as z:
        so = z.read("testsimple.cpython-313-aarch64-linux-gnu.so")
    files = {"testsimple.cpython-311-x86_64-linux-gnu.so": so}
    files.update(dist_info("kwarch"))
    wheel = write_wheel(os.path.join(tmp, "kwarch-1.0-cp311-cp311-linux_x86_64.whl"), files)
    t = os.path.join(tmp, "t")
    pip_target(wheel, t)
    ir = imports(t, "import ctypes; ctypes.CDLL(sys.path[0] + '/testsimple.cpython-311-x86_64-linux-gnu.so')")
    check(ir.returncode != 0, "oracle: the loader cannot load that member on x86_64")
    out = fresh(tmp, "out")
    r = repair(wheel, out)
    check(r.returncode == 1 and "aarch64" in r.stdout and "linux_x86_64" in r.stdout and not os.listdir(out),
          f"aarch64 code in an x86_64 wheel: refused, not retagged ({r.stdout.strip()[:200]})")
    b = build_chain(os.path.join(tmp, "c"), 2)
    pure_so = os.path.join(tmp, "kwx.so")
    cc("-shared", "-fPIC", "-DMODNAME=kwx", "-I" + INC, os.path.join(SRC, "kwext.c"), "-o", pure_so,
       "-L" + b, "-l:libkwdup.so.1", "-Wl,-rpath," + b)
    files = {"kwpl-1.0.data/purelib/kwx.cpython-311-x86_64-linux-gnu.so": open(pure_so, "rb").read()}
    files.update(dist_info("kwpl"))
    wheel = write_wheel(os.path.join(tmp, "kwpl-1.0-cp311-cp311-linux_x86_64.whl"), files)
    r = repair(wheel, out)
    check(r.returncode == 1 and "purelib" in r.stdout and not os.listdir(out),
          f"a shared library under .data/purelib/: refused ({r.stdout.strip()[:200]})")


# ---- sbom ---------------------------------------------------------------

def dpkg_owner(path):
    for p in (path, os.path.realpath(path)):
        r = run(["dpkg-query", "-S", p])
        if r.returncode == 0:
            pkg = r.stdout.split(":")[0]
            ver = run(["dpkg-query", "-W", "-f=${Version}", pkg]).stdout.strip()
            return pkg, ver
    return None


def group_sbom(tmp):
    if not shutil.which("dpkg-query"):
        check(True, "no dpkg here: nothing to compare")
        return
    wheel = corpus("cffi_backend")
    res = result(repair(wheel, fresh(tmp, "out")))
    if not check(res and res["grafted"], "cffi_backend repaired against the host's libffi"):
        return
    with zipfile.ZipFile(res["output"]) as z:
        doc = json.loads(z.read("cffi_backend-1.15.1.dist-info/sboms/kwheel.cdx.json"))
    name = os.path.basename(res["output"])
    wpurl = f"pkg:pypi/cffi_backend@1.15.1?file_name={name}"
    top = {"type": "library", "bom-ref": wpurl, "name": "cffi_backend", "version": "1.15.1", "purl": wpurl}
    check(doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.4" and doc["version"] == 1,
          "CycloneDX 1.4, version 1")
    check(doc["components"][0] == top and doc["metadata"]["component"] == top,
          f"the wheel first, with its purl and file name ({doc['components'][0]})")
    distro = dict(re.findall(r'^([A-Z_]+)="?([^"\n]*)"?$', open("/etc/os-release").read(), re.M)).get("ID")
    for g, c in zip(res["grafted"], doc["components"][1:]):
        own = dpkg_owner("/lib/x86_64-linux-gnu/" + os.path.basename(g["source"])) or dpkg_owner(g["source"])
        want = f"pkg:deb/{distro}/{own[0]}@{own[1]}" if own else None
        check(own and c.get("purl") == want and c["name"] == own[0] and c["version"] == own[1]
              and c["bom-ref"].startswith(want + "#") and set(c) == set(top),
              f"{g['soname']}: its Debian package as dpkg-query says ({c.get('purl')} / {want})")
    refs = [c["bom-ref"] for c in doc["components"]]
    check(doc["dependencies"] == [{"ref": wpurl, "dependsOn": refs[1:]}] + [{"ref": r} for r in refs[1:]],
          "one dependency entry per component, the wheel's naming every library")
    # another root: its own dpkg database and os-release, dpkg-query --admindir as the oracle
    root = os.path.join(tmp, "root")
    lib = os.path.join(root, "usr", "lib", "x86_64-linux-gnu")
    build_chain(lib, 4, rpath=False)
    admin = os.path.join(root, "var", "lib", "dpkg")
    os.makedirs(os.path.join(admin, "info"))
    os.makedirs(os.path.join(admin, "updates"))
    os.makedirs(os.path.join(root, "etc"))
    open(os.path.join(root, "etc", "os-release"), "w").write('NAME="KW OS"\nID="kwos"\n')
    open(os.path.join(admin, "info", "libkwdup1.list"), "w").write("/.\n/usr\n/usr/lib/x86_64-linux-gnu/libkwdup.so.1\n")
    para = ("Package: {p}\nStatus: {s}\nPriority: optional\nSection: libs\nInstalled-Size: 10\n"
            "Maintainer: Nobody <nobody@example.org>\nArchitecture: amd64\nVersion: {v}\nDescription: test\n")
    open(os.path.join(admin, "status"), "w").write(
        para.format(p="libkwold", s="deinstall ok config-files", v="0.1-1") + "\n" +
        para.format(p="libkwdup1", s="install ok installed", v="1:2.0+x-1"))
    wheel = ext_wheel(tmp, "kwroot", lib)
    res = result(repair(wheel, fresh(tmp, "rout"), "--root", root, "--no-default-paths", "--library-path",
                        "/usr/lib/x86_64-linux-gnu"))
    if not check(res and len(res["grafted"]) == 2, f"a wheel repaired against --root ({res})"):
        return
    with zipfile.ZipFile(res["output"]) as z:
        doc = json.loads(z.read("kwroot-1.0.dist-info/sboms/kwheel.cdx.json"))
    q = run(["dpkg-query", "--admindir=" + admin, "-S", "/usr/lib/x86_64-linux-gnu/libkwdup.so.1"]).stdout
    pkg = q.split(":")[0]
    ver = run(["dpkg-query", "--admindir=" + admin, "-W", "-f=${Version}", pkg]).stdout.strip()
    by = {c["name"]: c for c in doc["components"][1:]}
    want = "pkg:deb/kwos/" + pkg + "@" + ver.replace(":", "%3A").replace("+", "%2B")
    check(pkg == "libkwdup1" and by.get(pkg, {}).get("purl") == want and by[pkg]["version"] == ver,
          f"--root: libkwdup.so.1 is {want}, from the root's dpkg database ({by.get(pkg, {}).get('purl')})")
    base = by.get("libkwbase.so.1", {})
    check(base.get("hashes", [{}])[0].get("content") == sha(os.path.join(lib, "libkwbase.so.1")) and "purl" not in base,
          "--root: a library no package owns is named by SONAME with its sha256")


# ---- auditwheel side by side (slow) ---------------------------------------

def auditwheel_runner(tmp):
    """A command line that runs the reference auditwheel here, or None with the reason."""
    tar = os.path.join(REFERENCE, "auditwheel-86154d1.tar.gz")
    if not os.path.exists(tar):
        return None, "no auditwheel reference tree"
    if run([PY, "-c", "import elftools, packaging"]).returncode != 0:
        return None, "python3-pyelftools or python3-packaging missing"
    patchelf = None
    for cand in [os.environ.get("KW_PATCHELF"), shutil.which("patchelf"),
                 os.path.join(os.environ.get("KW_AW_CACHE", tmp), "bin", "patchelf")]:
        if cand and os.path.exists(cand):
            v = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", run([cand, "--version"]).stdout)
            if v and tuple(int(x or 0) for x in v.groups()) >= (0, 14, 5):
                patchelf = cand
                break
    cache = os.environ.get("KW_AW_CACHE")
    ptar = os.path.join(REFERENCE, "patchelf-0.18.0.tar.gz")
    if not patchelf and cache and os.path.exists(ptar) and shutil.which("autoreconf") and shutil.which("g++"):
        # Built once into the build directory from the reference tree (a few minutes), then reused.
        work = os.path.join(tmp, "patchelf-src")
        os.makedirs(work)
        with tarfile.open(ptar) as t:
            t.extractall(work)
        top = os.path.join(work, os.listdir(work)[0])
        for step in (["./bootstrap.sh"], ["./configure", "--prefix=" + cache], ["make"], ["make", "install"]):
            if run(["nice"] + step, cwd=top).returncode != 0:
                return None, "building patchelf 0.18 failed at " + step[0]
        patchelf = os.path.join(cache, "bin", "patchelf")
    if not patchelf:
        return None, "no patchelf >= 0.14.5 (set KW_PATCHELF)"
    with tarfile.open(tar) as t:
        t.extractall(tmp)
    tree = [os.path.join(tmp, d) for d in os.listdir(tmp) if d.startswith("auditwheel-")][0]
    meta = os.path.join(tmp, "meta", "auditwheel-6.8.1.dist-info")
    os.makedirs(meta)
    open(os.path.join(meta, "METADATA"), "w").write("Metadata-Version: 2.1\nName: auditwheel\nVersion: 6.8.1\n")
    env = clean_env(PYTHONPATH=os.path.join(tree, "src") + ":" + os.path.dirname(meta),
                    PATH=os.path.dirname(patchelf) + ":" + os.environ.get("PATH", ""))
    return ([PY, "-m", "auditwheel"], env), None


def group_auditwheel(tmp):
    runner, why = auditwheel_runner(tmp)
    if not runner:
        # Its inputs are the corpus' reference/ and what tools/deps installs: missing, the group fails.
        print(f"FAIL auditwheel cannot run here: {why}")
        sys.exit(1)
    cmd, env = runner
    wheels = sorted(os.path.join(DEBIAN, w) for w in os.listdir(DEBIAN) if w.endswith(".whl"))
    for wheel in wheels:
        dist = os.path.basename(wheel).split("-")[0]
        for plat in ["auto"] + PLATS + ["manylinux_2_41_x86_64"]:
            a, k = fresh(tmp, "aw"), fresh(tmp, "kw")
            ra = run(cmd + ["repair", "--plat", plat, "-w", a, wheel], env=dict(env, LD_LIBRARY_PATH=LIBPATH))
            rk = repair(wheel, k, "--plat", plat, "--library-path", LIBPATH)
            na, nk = sorted(os.listdir(a)), sorted(n for n in os.listdir(k) if n.endswith(".whl"))
            check(na == nk and (ra.returncode == 0) == (rk.returncode == 0),
                  f"{dist} --plat {plat}: auditwheel {ra.returncode} {na}, kwheel {rk.returncode} {nk}")
            if na and na == nk:
                check(wheel_tags(os.path.join(a, na[0])) == wheel_tags(os.path.join(k, nk[0])),
                      f"{dist} --plat {plat}: the same WHEEL Tag lines")
    wheel = any_wheel(tmp)
    a, k = fresh(tmp, "aw"), fresh(tmp, "kw")
    run(cmd + ["repair", "-w", a, wheel], env=env)
    run([KWHEEL, "repair", "-w", k, wheel], env=clean_env())
    na, nk = sorted(os.listdir(a)), sorted(n for n in os.listdir(k) if n.endswith(".whl"))
    check(na == nk and na and root_is_purelib(os.path.join(a, na[0])) == root_is_purelib(os.path.join(k, nk[0])),
          f"py3-none-any with ELF code: the same name and Root-Is-Purelib ({na} {nk})")
    for dist in ("cffi_backend",):
        a, k = fresh(tmp, "aw"), fresh(tmp, "kw")
        run(cmd + ["repair", "-w", a, corpus(dist)], env=env)
        res = result(repair(corpus(dist), k))
        if not check(os.listdir(a) and res, f"{dist}: both repair it against the host"):
            continue
        with zipfile.ZipFile(os.path.join(a, os.listdir(a)[0])) as z:
            da = json.loads(z.read([n for n in z.namelist() if n.endswith("auditwheel.cdx.json")][0]))
        with zipfile.ZipFile(res["output"]) as z:
            dk = json.loads(z.read([n for n in z.namelist() if n.endswith("kwheel.cdx.json")][0]))
        strip = lambda c: {k2: v for k2, v in c.items() if k2 != "bom-ref"}  # noqa: E731 (a digest of a path string)
        check([strip(c) for c in da["components"][1:]] == [strip(c) for c in dk["components"][1:]]
              and da["components"][0] == dk["components"][0] and len(da["dependencies"]) == len(dk["dependencies"]),
              f"{dist}: the same SBOM components ({[c.get('purl') for c in dk['components']]})")


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-parity-")
    try:
        {"tags": group_tags, "options": group_options, "exclude": group_exclude, "partial": group_partial,
         "scripts": group_scripts, "libpython": group_libpython, "refusals": group_refusals, "sbom": group_sbom,
         "auditwheel": group_auditwheel}[GROUP](tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
