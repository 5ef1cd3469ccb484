#!/usr/bin/env python3
"""`kwheel km` on real wheels at scale: what the static interpreter needs beyond one small wheel.

usage: check-km-scale.py KWHEEL CORPUS SYSROOT_ROOT GROUP
GROUP is one of:
  order   lxml from the corpus (libexslt -> libxslt -> libxml2 -> libicuuc ...,
          converted with --deps): the archive holds every library after each
          library it needs, readelf's DT_NEEDED of the original files being
          the oracle, and an EXSLT transform prints the same under the static
          interpreter (no .so mapped) as under /usr/bin/python3
  soname  cffi_backend and pyyaml from the corpus with --deps: cffi's ABI mode
          opens libyaml by its SONAME (libyaml-0.so.2, the file being
          libyaml-0.so.2.0.9) and calls into it through the converted libffi
  shared  numpy from the corpus and scipy built from Debian's python3-scipy
          (tools/deb2wheel, cached): both need BLAS, LAPACK, gfortran and
          quadmath; the static interpreter holds one copy of each (nm's
          __kw_img_<tag> symbols, one registration each) and runs numpy and
          scipy (whose import needs ctypes, so _ctypes and libffi built in)
  runtime fixtures/km/runtime/kmrt.cc linked against the host's libunwind.so.8
          (weak _Unwind_*) and libbsd.so.0 (arc4random, closefrom), both
          converted with --deps: C++ exceptions are caught (the runtime's
          unwinder registers .eh_frame), and readelf shows the interpreter's
          _Unwind_RaiseException, arc4random_uniform and closefrom in .text,
          not in a converted image
  global  fixtures/km/global: a package imports its core module RTLD_GLOBAL
          and the next module calls the core's exports with no DT_NEEDED
          (readelf the oracle): show's verdict puts the core in library mode
          and says why, the link succeeds, and the output is the loader's
  stdlib  cffi_backend from the corpus with --deps, and the interpreter's
          lib-dynload modules that need libffi, OpenSSL, sqlite, bz2, lzma,
          ncurses, readline, nsl, dbm, uuid: all twelve import and work as
          under /usr/bin/python3, and libffi (the wheel's and _ctypes') is
          linked once; OpenSSL's legacy provider, which libcrypto loads by
          path from its MODULESDIR, is converted with it (md4 and ripemd160
          with an OPENSSL_CONF that activates it)
  once    numpy from the corpus and fixtures/km/shared/kmblas.c (linked
          against the sysroot's reference BLAS and LAPACK) in one run with
          --deps: the libraries both need (libblas, liblapack, libgfortran,
          libquadmath, as the
          manifests of each wheel converted alone show) are delinked once:
          the second wheel's objects are the first's (one inode), byte for
          byte what converting it alone writes (registration included), its
          manifest and km's output say so, each registers once, and both
          wheels compute under the static interpreter as under
          /usr/bin/python3
  agree   every wheel of the corpus (and the Debian-built ones in the cache):
          kwheel km --deps converts exactly the wheels show's KM verdict
          calls convertible, and refuses the others with the verdict's
          first reason
  plugins cryptography built from Debian's python3-cryptography (cached) and
          cffi_backend, with the host's OpenSSL converted (--deps): show's
          verdict names libcrypto's plugins (legacy.so among them) instead
          of a generic dlopen warning, and Blowfish, which cryptography
          gets from the legacy provider libcrypto loads by path, encrypts
          the same under the static interpreter
  many    one static interpreter holding every Debian wheel of the corpus plus
          scipy, cryptography (with cffi_backend), pandas (with pytz),
          Pillow, gevent and greenlet (with zope.interface, zope.event and
          objgraph, which their modules import), pyzmq and psycopg2, all
          libraries converted against the sysroot with the ~50 Debian
          library packages they need added (libjpeg to libpq, OpenSSL,
          Kerberos, GnuTLS, libsodium, ...): every extension module that
          imports under /usr/bin/python3 imports in it, each library is
          delinked once however many wheels need it, and a smoke script
          (numpy to psycopg2: image codecs and text layout, greenlets and
          c-ares, CURVE-encrypted ZeroMQ over TCP, libpq's error) prints the
          same
Debian wheels and the extra sysroot libraries they need are built once into
$KW_KM_CACHE (default /tmp/kwheel-km-cache; the .deb files in
$KWHEEL_DEB_CACHE when set); without network and cache the group fails,
saying which input it could not get.
Each group converts, links a static CPython and compares its output with
/usr/bin/python3 loading the real .so files.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, write_wheel  # noqa: E402

KWHEEL, CORPUS, SYSROOT, GROUP = sys.argv[1:5]
PY = "/usr/bin/python3"
DEB = os.path.join(CORPUS, "wheels", "debian")
SYSLIB = ":".join(os.path.join(SYSROOT, d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu",
                                                     "usr/lib/x86_64-linux-gnu/blas",
                                                     "usr/lib/x86_64-linux-gnu/lapack"))


CACHE = os.environ.get("KW_KM_CACHE", "/tmp/kwheel-km-cache")
DEB2WHEEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools", "deb2wheel")
DEBS = os.environ.get("KWHEEL_DEB_CACHE") or os.path.join(CACHE, "debs")


def skip(why):
    # Loudly: a group that cannot get its inputs has not passed.
    print(f"FAIL inputs missing: {why}")
    sys.exit(1)


def debian_wheel(spec, prefix):
    """The wheel tools/deb2wheel builds from spec, built once into the cache."""
    out = os.path.join(CACHE, "wheels")
    found = [f for f in os.listdir(out) if f.startswith(prefix + "-")] if os.path.isdir(out) else []
    if not found:
        r = run(PY, DEB2WHEEL, "--cache", DEBS, "-q", out, spec)
        found = [f for f in os.listdir(out) if f.startswith(prefix + "-")] if os.path.isdir(out) else []
        if r.returncode != 0 or not found:
            skip(f"cannot build {spec} with tools/deb2wheel ({r.stderr.strip()[-200:]})")
    return os.path.join(out, sorted(found)[-1])


def sysroot_with(name, packages):
    """The test sysroot plus the libraries of some Debian packages (apt-get download, dpkg-deb -x), cached."""
    # Named after the package list too: a longer list is another sysroot, not a stale one.
    root = os.path.join(CACHE, f"sysroot-{name}-{hashlib.sha256(' '.join(packages).encode()).hexdigest()[:8]}")
    if os.path.isdir(root):
        return root
    debs = DEBS
    os.makedirs(debs, exist_ok=True)
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(SYSROOT, tmp, symlinks=True)
    for p in packages:
        have = [f for f in os.listdir(debs) if f.startswith(p + "_") and f.endswith(".deb")]
        if not have:
            r = run("apt-get", "download", p, cwd=debs)
            have = [f for f in os.listdir(debs) if f.startswith(p + "_") and f.endswith(".deb")]
            if r.returncode != 0 or not have:
                skip(f"cannot download {p} ({r.stderr.strip()[-200:]})")
        r = run("dpkg-deb", "-x", os.path.join(debs, sorted(have)[-1]), tmp)
        check(r.returncode == 0, f"dpkg-deb unpacks {p}")
    os.rename(tmp, root)
    return root


def libpath(root):
    return ":".join(os.path.join(root, d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu",
                                                    "usr/lib/x86_64-linux-gnu/blas",
                                                    "usr/lib/x86_64-linux-gnu/lapack"))


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


def compare(tmp, wheels, interp, script, dyn_env=None, both_env=None):
    """The script's output under /usr/bin/python3 with the real .so files and under interp with them emptied."""
    dyn, sta = os.path.join(tmp, "site-dyn"), os.path.join(tmp, "site-static")
    install(wheels, dyn, False)
    install(wheels, sta, True)
    env = dict(os.environ, PYTHONPATH=dyn, **(dyn_env or {}), **(both_env or {}))
    env.pop("PYTHONHOME", None)
    a = run(PY, "-c", script, env=env)
    env = {"PYTHONHOME": "/usr", "PYTHONPATH": sta, "PATH": os.environ.get("PATH", "/usr/bin"), **(both_env or {})}
    b = run(interp, "-c", script + "\nprint('maps', sum('.so' in l for l in open('/proc/self/maps')))", env=env)
    check(a.returncode == 0 and a.stdout.strip(), f"the real .so files run the script ({a.stderr.strip()[-400:]})")
    check(b.returncode == 0, f"the static interpreter runs the script ({b.stderr.strip()[-400:]})")
    out_a, out_b = a.stdout.strip().splitlines(), b.stdout.strip().splitlines()
    check(out_b[-1:] == ["maps 0"], f"no shared object is mapped in the static interpreter ({out_b[-1:]})")
    check(out_a == out_b[:-1], f"same output from the converted objects as from the real .so files "
                               f"({out_a[:3]} / {out_b[:3]})")
    return out_a


def dynamic(path):
    """(SONAME, [DT_NEEDED]) of a file, from readelf."""
    r = run("readelf", "-dW", path)
    soname = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", r.stdout)
    return soname.group(1) if soname else None, re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)


LXML_SCRIPT = r"""
from lxml import etree
doc = etree.XML("<a><b>1</b><b>2</b></a>")
xsl = etree.XML('''<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
  xmlns:str="http://exslt.org/strings" xmlns:math="http://exslt.org/math" extension-element-prefixes="str math">
  <xsl:template match="/"><r><xsl:value-of select="str:padding(3, '-')"/>
  <xsl:value-of select="math:max(//b)"/></r></xsl:template></xsl:stylesheet>''')
print(str(etree.XSLT(xsl)(doc)).strip())
print(etree.tostring(etree.fromstring("<x y='1'>\u00e9</x>"), encoding="unicode"))
"""


def order(tmp):
    whl = os.path.join(DEB, "lxml-4.9.2-cp311-cp311-linux_x86_64.whl")
    out, interp = convert_and_link(tmp, [whl], "--deps", "--root", SYSROOT)
    if failures:
        return
    with open(os.path.join(out, "lxml.km.json")) as f:
        man = json.load(f)
    # The oracle: readelf on the files the objects came from (the wheel's members, the sysroot's libraries).
    site = os.path.join(tmp, "site-dyn")
    install([whl], site, False)
    seen, names, backward, edges = set(), [], [], 0
    for o in man["objects"]:
        path = os.path.join(site, o["path"]) if o["in_wheel"] else SYSROOT + o["path"]
        soname, needed = dynamic(path)
        names.append(soname or os.path.basename(o["path"]))
    by_name = set(names)
    for o, name in zip(man["objects"], names):
        path = os.path.join(site, o["path"]) if o["in_wheel"] else SYSROOT + o["path"]
        for n in dynamic(path)[1]:
            if n in by_name:
                edges += 1
                if n not in seen:
                    backward.append(f"{name} -> {n}")
        seen.add(name)
    check(edges >= 10 and "libexslt.so.0" in by_name,
          f"oracle: readelf shows {edges} dependency edges among the {len(names)} objects, libexslt among them")
    check(not backward, f"every object comes after each library it needs ({backward})")
    check(names.index("libxslt.so.1") < names.index("libexslt.so.0") and
          names.index("libicudata.so.72") < names.index("libicuuc.so.72"),
          f"libxslt before libexslt, libicudata before libicuuc ({names})")
    # Archive members in the same order: the order the static link runs their constructors.
    r = run("ar", "t", os.path.join(out, "liblxml.km.a"))
    check([os.path.basename(m) for m in r.stdout.split()] == [o["object"] for o in man["objects"]],
          "the archive's members are in the manifest's order")
    out_a = compare(tmp, [whl], interp, LXML_SCRIPT, {"LD_LIBRARY_PATH": SYSLIB})
    check(len(out_a) == 3 and "---2" in out_a[1], f"the EXSLT transform ran ({out_a})")


SONAME_SCRIPT = r"""
import _cffi_backend as B
lib = B.load_library("libyaml-0.so.2")
p_char = B.new_pointer_type(B.new_primitive_type("char"))
p_int = B.new_pointer_type(B.new_primitive_type("int"))
ver = lib.load_function(B.new_function_type((), p_char, False), "yaml_get_version_string")
nums = lib.load_function(B.new_function_type((p_int, p_int, p_int), B.new_void_type(), False),
                         "yaml_get_version")
a, b, c = (B.newp(p_int, 0) for _ in range(3))
nums(a, b, c)
print(B.string(ver()).decode(), a[0], b[0], c[0])
import yaml
print(yaml.load("k: [1, 2]", Loader=yaml.CLoader))
"""


def soname(tmp):
    wheels = [os.path.join(DEB, n + "-cp311-cp311-linux_x86_64.whl") for n in ("cffi_backend-1.15.1", "pyyaml-6.0")]
    out, interp = convert_and_link(tmp, wheels, "--deps", "--root", SYSROOT)
    if failures:
        return
    with open(os.path.join(out, "pyyaml.km.json")) as f:
        ids = [o["id"] for o in json.load(f)["objects"] if o["mode"] == "lib"]
    check(ids == ["libyaml-0.so.2.0.9"], f"oracle: libyaml converts from a file named other than its SONAME ({ids})")
    libyaml = os.path.join(SYSROOT, "usr/lib/x86_64-linux-gnu/libyaml-0.so.2.0.9")
    check(dynamic(libyaml)[0] == "libyaml-0.so.2", "oracle: readelf gives libyaml's SONAME libyaml-0.so.2")
    out_a = compare(tmp, wheels, interp, SONAME_SCRIPT, {"LD_LIBRARY_PATH": SYSLIB})
    check(len(out_a) == 2 and out_a[0].startswith("0.2."), f"dlopen by SONAME finds the converted library ({out_a})")


NUMPY_SCRIPT = r"""
import numpy as np
import scipy.integrate, scipy.linalg, scipy.optimize, scipy.sparse.linalg, scipy.special
print(np.linalg.inv(np.array([[2., 1.], [1., 3.]])).round(9).tolist())
print(np.linalg.svd(np.arange(6.).reshape(2, 3))[1].round(9).tolist())
print(round(float(scipy.linalg.det(np.array([[2., 1.], [1., 3.]]))), 9))
print(scipy.optimize.minimize(lambda x: ((x - 3) ** 2).sum(), np.zeros(2), method="L-BFGS-B").x.round(5).tolist())
print(round(float(scipy.special.gamma(4.5)), 9), round(scipy.integrate.quad(np.sin, 0, np.pi)[0], 9))
print(scipy.sparse.linalg.spsolve(scipy.sparse.csc_matrix(np.eye(3) * 2), np.ones(3)).tolist())
"""


def shared(tmp):
    numpy = os.path.join(DEB, "numpy-1.24.2-cp311-cp311-linux_x86_64.whl")
    scipy = debian_wheel("python3-scipy", "scipy")
    root = sysroot_with("scipy", ["liblbfgsb0"])
    out, interp = convert_and_link(tmp, [numpy, scipy], "--deps", "--root", root)
    if failures:
        return
    libs, reused = {}, []
    for dist in ("numpy", "scipy"):
        with open(os.path.join(out, dist + ".km.json")) as f:
            objs = json.load(f)["objects"]
        libs[dist] = {o["symbol_tag"]: o["id"] for o in objs if o["mode"] == "lib"}
        reused += [o["symbol_tag"] for o in objs if o["reused_from"]]
    both = sorted(set(libs["numpy"]) & set(libs["scipy"]))
    check(len(both) == 4, f"oracle: both wheels' archives hold BLAS, LAPACK, gfortran, quadmath "
                          f"({[libs['numpy'][t] for t in both]})")
    check(sorted(reused) == both, f"each is delinked once, for numpy, and reused for scipy ({reused})")
    syms = run("nm", interp).stdout
    counts = {t: len(re.findall(rf" __kw_img_{t}$", syms, re.M)) for t in both}
    check(all(c == 1 for c in counts.values()), f"nm: one image of each shared library in the interpreter ({counts})")
    env = {"PYTHONHOME": "/usr", "KW_DL_DEBUG": "1", "PATH": os.environ.get("PATH", "/usr/bin")}
    r = run(interp, "-c", "pass", env=env)
    regs = re.findall(r"^kw_dl: registered (\S+)$", r.stderr, re.M)
    dup = sorted({x for x in regs if regs.count(x) > 1})
    check(r.returncode == 0 and "libblas.so.3" in regs and not dup, f"each library registers once ({dup})")
    compare(tmp, [numpy, scipy], interp, NUMPY_SCRIPT, {"LD_LIBRARY_PATH": libpath(root)})


SRC = os.path.join(os.environ.get("KW_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                   "fixtures", "km")
PYINC = subprocess.run([PY, "-c", "import sysconfig; print(sysconfig.get_path('include'))"],
                       capture_output=True, text=True).stdout.strip()
HOSTLIB = "/usr/lib/x86_64-linux-gnu"


def make_wheel(path, members):
    dist, ver = os.path.basename(path).split("-")[:2]
    di = f"{dist}-{ver}.dist-info"
    write_wheel(path, dict(members, **{
        f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {ver}\n".encode(),
        f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n"}))


def symbol_sections(path, names):
    """Section name of each symbol's definition in path, from readelf."""
    secs = {}
    for line in run("readelf", "-SW", path).stdout.splitlines():
        m = re.match(r"\s*\[\s*(\d+)\]\s+(\S+)", line)
        if m:
            secs[m.group(1)] = m.group(2)
    got = {}
    for line in run("readelf", "-sW", path).stdout.splitlines():
        f = line.split()
        if len(f) >= 8 and f[7] in names and f[6].isdigit():
            got[f[7]] = secs.get(f[6], f[6])
    return got


def extension_wheel(tmp, compiler, source, module, libs):
    """A one-module wheel (module-1.0, cp311) of source built against libs, or None (failure recorded)."""
    so = os.path.join(tmp, f"{module}.cpython-311-x86_64-linux-gnu.so")
    r = run(compiler, "-O2", "-fPIC", "-shared", "-I" + PYINC, source, "-o", so, "-Wl,--no-as-needed", *libs)
    if not check(r.returncode == 0, f"{compiler} builds the fixture ({r.stderr.strip()[-300:]})"):
        return None
    whl = os.path.join(tmp, f"{module}-1.0-cp311-cp311-linux_x86_64.whl")
    with open(so, "rb") as f:
        make_wheel(whl, {f"{module}.cpython-311-x86_64-linux-gnu.so": f.read()})
    return whl


def runtime(tmp):
    libs = [os.path.join(HOSTLIB, n) for n in ("libunwind.so.8", "libbsd.so.0")]
    if not all(os.path.exists(p) for p in libs):
        skip("libunwind8 and libbsd0 are not installed")
    whl = extension_wheel(tmp, "g++", os.path.join(SRC, "runtime", "kmrt.cc"), "kmrt", libs)
    if not whl:
        return
    out, interp = convert_and_link(tmp, [whl], "--deps")
    if failures:
        return
    unwind = [n for n in run("nm", "-D", "--defined-only", libs[0]).stdout.split() if n.startswith("_Unwind_")]
    check("_Unwind_RaiseException" in unwind, f"oracle: nm -D shows libunwind's own _Unwind_* ({len(unwind)})")
    with open(os.path.join(out, "kmrt.km.json")) as f:
        warn = {o["id"]: " ".join(o["warnings"]) for o in json.load(f)["objects"]}
    check(any(k.startswith("libunwind") and "made local" in v for k, v in warn.items()) and
          any(k.startswith("libbsd") and "made local" in v for k, v in warn.items()),
          "the manifest says which definitions were made local")
    names = ["_Unwind_RaiseException", "_Unwind_Find_FDE", "__register_frame_info", "arc4random_uniform",
             "closefrom"]
    got = symbol_sections(interp, names)
    check(set(got) == set(names) and all(v == ".text" for v in got.values()),
          f"the interpreter's unwinder and C library functions are the runtime's, in .text ({got})")
    out_a = compare(tmp, [whl], interp, "import kmrt\nprint(kmrt.run())")
    check(out_a == ["caught thrown, stoi threw, arc4random_uniform(1)=0"], f"the exceptions were caught ({out_a})")


def global_exports(tmp):
    src = os.path.join(SRC, "global")
    members = {"kmglob/__init__.py": open(os.path.join(src, "__init__.py"), "rb").read()}
    for m in ("core", "user"):
        so = os.path.join(tmp, f"{m}.cpython-311-x86_64-linux-gnu.so")
        r = run("gcc", "-O2", "-fPIC", "-shared", "-I" + PYINC, os.path.join(src, m + ".c"), "-o", so)
        if not check(r.returncode == 0, f"gcc builds {m} ({r.stderr.strip()[-300:]})"):
            return
        with open(so, "rb") as f:
            members[f"kmglob/{m}.cpython-311-x86_64-linux-gnu.so"] = f.read()
    user = os.path.join(tmp, "user.cpython-311-x86_64-linux-gnu.so")
    undef = run("nm", "-D", "--undefined-only", user).stdout
    check("kmglob_scale" in undef and "core" not in " ".join(dynamic(user)[1]),
          "oracle: nm/readelf: user imports kmglob_scale and needs no core")
    whl = os.path.join(tmp, "kmglob-1.0-cp311-cp311-linux_x86_64.whl")
    make_wheel(whl, members)
    r = run(KWHEEL, "show", "--json", whl)
    try:
        km = json.loads(r.stdout)["km"]
        objs = {o["name"].split("/")[-1].split(".")[0]: o for o in km["objects"]}
    except (ValueError, KeyError) as e:
        check(False, f"show --json gives a KM verdict ({e})")
        return
    check(km["convertible"] and objs["core"]["mode"] == "lib" and objs["user"]["mode"] == "module",
          f"the verdict converts the exporting module in library mode ({[(k, o['mode']) for k, o in objs.items()]})")
    check(any("RTLD_GLOBAL" in w and "kmglob_scale" in w and "user" in w for w in objs["core"]["warnings"]),
          f"and says why, naming the import and its user ({objs['core']['warnings']})")
    out, interp = convert_and_link(tmp, [whl])
    if failures:
        return
    out_a = compare(tmp, [whl], interp, "import kmglob\nprint(kmglob.user.scale(3), kmglob.core.calls())")
    check(out_a == ["(21, 1) 1"], f"the user module called into the core ({out_a})")


ONCE_SCRIPT = r"""
import numpy as np, kmblas
print(kmblas.dot((1.0, 2.0, 3.0), (4.0, 5.0, 6.5)), float(np.dot([1.0, 2.0, 3.0], [4.0, 5.0, 6.5])),
      kmblas.lapack_version())
print(np.linalg.solve(np.array([[3., 1.], [1., 2.]]), np.array([9., 8.])).round(9).tolist())
"""


def once(tmp):
    numpy = os.path.join(DEB, "numpy-1.24.2-cp311-cp311-linux_x86_64.whl")
    libs = [os.path.join(SYSROOT, "usr/lib/x86_64-linux-gnu", d, f"lib{d}.so.3") for d in ("blas", "lapack")]
    whl = extension_wheel(tmp, "gcc", os.path.join(SRC, "shared", "kmblas.c"), "kmblas", libs)
    if not whl:
        return
    # The oracle: each wheel converted alone, in its own run.
    alone = {}
    for dist, w in (("numpy", numpy), ("kmblas", whl)):
        o = os.path.join(tmp, "alone-" + dist)
        r = run(KWHEEL, "km", "--no-wheel", "--deps", "--root", SYSROOT, "-o", o, w)
        if not check(r.returncode == 0, f"{dist} converts alone ({r.stderr.strip()[-300:]})"):
            return
        with open(os.path.join(o, dist + ".km.json")) as f:
            alone[dist] = {x["id"]: x for x in json.load(f)["objects"] if x["mode"] == "lib"}
    both = sorted(set(alone["numpy"]) & set(alone["kmblas"]))
    check([b.split(".so")[0] for b in both] == ["libblas", "libgfortran", "liblapack", "libquadmath"],
          f"oracle: converted alone, both wheels' archives hold BLAS, LAPACK, gfortran, quadmath ({both})")
    out = os.path.join(tmp, "km")
    interp = os.path.join(out, "python-km")
    r = run(KWHEEL, "km", "--no-wheel", "--deps", "--root", SYSROOT, "-o", out, "--link-python", interp,
            "--python", PY, numpy, whl)
    if not check(r.returncode == 0, f"kwheel km converts both wheels and links ({r.stderr.strip()[-300:]})"):
        return
    check(re.search(rf"kmblas-1\.0-\S+: \d+ objects \({len(both)} reused from an earlier wheel's conversion\)",
                    r.stdout) and re.search(rf"^\d+ objects delinked, {len(both)} reused", r.stdout, re.M),
          f"km says the second wheel reused {len(both)} objects ({r.stdout.strip()[-400:]})")
    man = {}
    for dist in ("numpy", "kmblas"):
        with open(os.path.join(out, dist + ".km.json")) as f:
            man[dist] = {x["id"]: x for x in json.load(f)["objects"]}
    reused = sorted(i for i, x in man["kmblas"].items() if x["reused_from"])
    check(reused == both and all(man["kmblas"][i]["reused_from"] == os.path.basename(numpy) for i in both) and
          not any(x["reused_from"] for x in man["numpy"].values()),
          f"the manifest names numpy's conversion as the source of the shared libraries ({reused})")
    for i in both:
        mine = os.path.join(out, "kmblas-1.0.km", man["kmblas"][i]["object"])
        first = os.path.join(out, "numpy-1.24.2.km", man["numpy"][i]["object"])
        fresh = os.path.join(tmp, "alone-kmblas", "kmblas-1.0.km", alone["kmblas"][i]["object"])
        check(os.stat(mine).st_ino == os.stat(first).st_ino, f"{i}: delinked once, the same file for both wheels")
        with open(mine, "rb") as a, open(fresh, "rb") as b:
            check(a.read() == b.read(), f"{i}: the reused object is what converting kmblas alone writes")
    for dist in ("numpy", "kmblas"):
        with open(os.path.join(out, f"lib{dist}.km.a"), "rb") as a, \
                open(os.path.join(tmp, "alone-" + dist, f"lib{dist}.km.a"), "rb") as b:
            check(a.read() == b.read(), f"lib{dist}.km.a is the archive converting it alone gives")
    env = {"PYTHONHOME": "/usr", "KW_DL_DEBUG": "1", "PATH": os.environ.get("PATH", "/usr/bin")}
    regs = re.findall(r"^kw_dl: registered (\S+)$", run(interp, "-c", "pass", env=env).stderr, re.M)
    dup = sorted({x for x in regs if regs.count(x) > 1})
    check(all(regs.count(i) == 1 for i in both) and not dup, f"each shared library registers once ({dup})")
    out_a = compare(tmp, [numpy, whl], interp, ONCE_SCRIPT, {"LD_LIBRARY_PATH": SYSLIB})
    check(out_a[:1] == ["33.5 33.5 (3, 11, 0)"], f"the fixture's BLAS and LAPACK calls ran ({out_a})")


STDLIB_SCRIPT = r"""
import warnings
warnings.simplefilter("ignore")
import _ctypes, _ssl, _hashlib, _bz2, _lzma, _sqlite3, _uuid, _curses, _curses_panel, _dbm, nis, readline
import ctypes, ssl, hashlib, bz2, lzma, sqlite3, uuid, dbm.ndbm, _cffi_backend as B
print(hashlib.sha256(b"kw").hexdigest()[:16], hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 1000).hex()[:16],
      hashlib.new("sha3_256", b"kw").hexdigest()[:16])
print(ssl.OPENSSL_VERSION, ssl.create_default_context().verify_mode)
print(bz2.decompress(bz2.compress(b"x" * 100)) == b"x" * 100, lzma.decompress(lzma.compress(b"y" * 99)) == b"y" * 99)
c = sqlite3.connect(":memory:")
print(c.execute("select sqlite_version(), 6 * 7").fetchone())
print(ctypes.c_int(5).value, ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x * 2)(21), uuid.UUID(int=1))
print(type(_curses.error).__name__, readline.get_history_length(), nis.__name__)
print(B.new_primitive_type("int"), B.sizeof(B.new_primitive_type("long")))
print(hashlib.new("md4", b"kw").hexdigest(), hashlib.new("ripemd160", b"kw").hexdigest())
"""

OSSL_CNF = """openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
legacy = legacy_sect
[default_sect]
activate = 1
[legacy_sect]
activate = 1
"""


def stdlib(tmp):
    whl = os.path.join(DEB, "cffi_backend-1.15.1-cp311-cp311-linux_x86_64.whl")
    out = os.path.join(tmp, "km")
    interp = os.path.join(out, "python-km")
    r = run(KWHEEL, "km", "-o", out, "--link-python", interp, "--python", PY, "--deps", "--root", SYSROOT, whl)
    check(r.returncode == 0 and "not built in" not in r.stdout,
          f"the whole standard library is built in ({r.stdout.strip()[-300:]} {r.stderr.strip()[-300:]})")
    if failures:
        return
    dyn = [os.path.basename(m) for m in run("ar", "t", os.path.join(out, "libdynload.km.a")).stdout.split()]
    libs = sorted(m.split("-", 1)[1].split("@")[0] for m in dyn if "@" in m)
    check(any(l.startswith("libssl") for l in libs) and any(l.startswith("libffi") for l in libs),
          f"the lib-dynload archive holds the libraries the modules need ({libs})")
    tags = [m.split("@")[1][:12] for m in dyn if "@" in m and m.split("-", 1)[1].startswith("libffi")]
    syms = run("nm", interp).stdout
    counts = {t: len(re.findall(rf" __kw_img_{t}$", syms, re.M)) for t in tags}
    with open(os.path.join(out, "cffi_backend.km.json")) as f:
        wtags = [o["symbol_tag"] for o in json.load(f)["objects"] if o["id"].startswith("libffi")]
    if wtags == tags:
        check(counts == {tags[0]: 1}, f"nm: the wheel's libffi and _ctypes' are one copy ({counts})")
    else:
        check(True, "the wheel's libffi (sysroot) and the host's differ: each links once")
    legacy = [m for m in dyn if re.fullmatch(r"\d{3}-legacy\.so@[0-9a-f]{12}\.o", m)]
    check(legacy, f"libcrypto's provider legacy.so is converted with it ({[m for m in dyn if 'legacy' in m]})")
    cnf = os.path.join(tmp, "openssl.cnf")
    with open(cnf, "w") as f:
        f.write(OSSL_CNF)
    out_a = compare(tmp, [whl], interp, STDLIB_SCRIPT, {"LD_LIBRARY_PATH": SYSLIB}, {"OPENSSL_CONF": cnf})
    check(out_a[-1:] and len(out_a[-1].split()) == 2, f"the legacy provider's digests ran ({out_a[-1:]})")


def agree(tmp):
    aw = os.path.join(CORPUS, "wheels", "auditwheel")
    wheels = sorted(os.path.join(DEB, f) for f in os.listdir(DEB) if f.endswith(".whl"))
    wheels += sorted(os.path.join(aw, f) for f in os.listdir(aw) if f.endswith(".whl"))
    cached = os.path.join(CACHE, "wheels")
    if os.path.isdir(cached):
        wheels += sorted(os.path.join(cached, f) for f in os.listdir(cached) if f.endswith(".whl"))
    n_yes = n_no = 0
    for i, w in enumerate(wheels):
        r = run(KWHEEL, "show", "--json", "--root", SYSROOT, w)
        try:
            km = json.loads(r.stdout)["km"]
        except (ValueError, KeyError):
            check(False, f"show --json gives a KM verdict for {os.path.basename(w)} ({r.stderr.strip()[-200:]})")
            continue
        out = os.path.join(tmp, f"agree{i}")
        k = run(KWHEEL, "km", "--no-wheel", "--deps", "--root", SYSROOT, "-o", out, w)
        name = os.path.basename(w)
        if km["convertible"]:
            n_yes += 1
            check(k.returncode == 0, f"{name}: convertible, and km converts it ({k.stderr.strip()[-300:]})")
        else:
            n_no += 1
            first = km["reasons"][0] if km["reasons"] else ""
            check(k.returncode == 1 and first and first in k.stderr,
                  f"{name}: not convertible, and km refuses it for the same reason ({first!r} / "
                  f"{k.stderr.strip()[-200:]})")
    check(n_yes >= 9 and n_no >= 3, f"oracle: the corpus has both kinds ({n_yes} convertible, {n_no} not)")


CRYPTO_SCRIPT = r"""
import warnings
warnings.simplefilter("ignore")
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives import hashes
c = Cipher(algorithms.Blowfish(b"k" * 16), modes.ECB()).encryptor()
print((c.update(b"8 bytes!") + c.finalize()).hex())
h = hashes.Hash(hashes.SHA256())
h.update(b"kw")
print(h.finalize().hex())
"""


def plugins(tmp):
    legacy = os.path.join(HOSTLIB, "ossl-modules", "legacy.so")
    if not os.path.exists(legacy):
        skip("the host has no OpenSSL legacy provider")
    crypto = debian_wheel("python3-cryptography", "cryptography")
    wheels = [crypto, os.path.join(DEB, "cffi_backend-1.15.1-cp311-cp311-linux_x86_64.whl")]
    strings = run("strings", os.path.join(HOSTLIB, "libcrypto.so.3")).stdout.split()
    check(os.path.dirname(legacy) in strings, "oracle: strings shows libcrypto's MODULESDIR")
    r = run(KWHEEL, "show", "--json", crypto)
    try:
        objs = {o["name"]: o for o in json.loads(r.stdout)["km"]["objects"]}
    except (ValueError, KeyError) as e:
        check(False, f"show --json gives a KM verdict ({e})")
        return
    lc = [o for n, o in objs.items() if os.path.basename(n).startswith("libcrypto")]
    w = lc[0]["warnings"] if lc else []
    check(any("plugins" in x and legacy in x for x in w) and not any(x.startswith("imports dlopen") for x in w),
          f"the verdict names libcrypto's plugins, legacy.so among them ({w})")
    out, interp = convert_and_link(tmp, wheels, "--deps")
    if failures:
        return
    members = [os.path.basename(m) for m in run("ar", "t", os.path.join(out, "libcryptography.km.a")).stdout.split()]
    check(any(re.fullmatch(r"\d{3}-legacy\.so@[0-9a-f]{12}\.o", m) for m in members),
          f"legacy.so is converted into the wheel's archive ({members})")
    env = {"PYTHONHOME": "/usr", "KW_DL_DEBUG": "1", "PATH": os.environ.get("PATH", "/usr/bin")}
    regs = re.findall(r"^kw_dl: registered (\S+)$", run(interp, "-c", "pass", env=env).stderr, re.M)
    check(regs.count(legacy[1:]) == 1, f"the provider registers once, under its path ({regs.count(legacy[1:])})")
    out_a = compare(tmp, wheels, interp, CRYPTO_SCRIPT)
    check(len(out_a) == 2 and len(out_a[0]) == 16, f"Blowfish ran through the legacy provider ({out_a})")


MANY_SMOKE = r"""
import warnings
warnings.simplefilter("ignore")
import numpy as np, scipy.linalg, lxml.etree, yaml, msgpack, lz4.frame, brotli, ujson, markupsafe
from cryptography.hazmat.primitives import hashes
print(round(float(scipy.linalg.det(np.array([[2., 1.], [1., 3.]]))), 9), lxml.etree.XML("<a>1</a>").text)
print(yaml.load("[1, 2]", Loader=yaml.CLoader), msgpack.unpackb(msgpack.packb([1, "x"])), ujson.dumps({"a": 1}))
print(lz4.frame.decompress(lz4.frame.compress(b"kw" * 99)) == b"kw" * 99, brotli.decompress(brotli.compress(b"b")))
h = hashes.Hash(hashes.SHA256())
h.update(b"kw")
print(h.finalize().hex()[:16], markupsafe.escape("<&>"))
import hashlib, io
import pandas as pd
df = pd.DataFrame({"a": [1, 2, 3, 4], "b": [4.5, 5.5, None, 1.0], "c": list("xyxy")})
print(df.groupby("c").agg({"a": "sum", "b": "mean"}).to_dict(), df.describe().round(3).loc["std"].tolist())
t = pd.to_datetime(["2024-01-02 12:00", "2024-07-04 12:00"]).tz_localize("UTC").tz_convert("Europe/Paris")
print([str(x) for x in t], pd.read_csv(io.StringIO("x,y\n1,a\n2,b\n")).to_dict("list"))
print(pd.Series(np.arange(6.)).rolling(3).mean().tolist()[2:], pd.period_range("2024-01", periods=3, freq="M").tolist())
from PIL import Image, ImageDraw, ImageFilter, ImageFont, features
im = Image.new("RGB", (40, 30), "white")
ImageDraw.Draw(im).ellipse((4, 4, 30, 26), fill=(200, 30, 60))
im = im.filter(ImageFilter.GaussianBlur(2))
codecs = {}
for fmt in ("PNG", "JPEG", "WEBP", "TIFF", "JPEG2000"):
    b = io.BytesIO()
    im.save(b, fmt)
    back = Image.open(io.BytesIO(b.getvalue()))
    back.load()
    codecs[fmt] = (back.size, hashlib.sha256(back.tobytes()).hexdigest()[:12])
print(hashlib.sha256(im.tobytes()).hexdigest()[:16], codecs)
print(sorted(f for f in features.get_supported() if f != "tkinter" and features.check(f)))
f = ImageFont.truetype(FONT, 14, layout_engine=ImageFont.Layout.RAQM)
im = Image.new("L", (120, 24))
ImageDraw.Draw(im).text((2, 2), "H\u00e4llo \u05e9\u05dc\u05d5\u05dd", font=f, fill=255)
print(f.getbbox("H\u00e4llo \u05e9\u05dc\u05d5\u05dd"), hashlib.sha256(im.tobytes()).hexdigest()[:16])
import greenlet, gevent, gevent.queue
from gevent.resolver.ares import Resolver
def worker(n):
    gevent.sleep(0.001 * n)
    return n * n
print([g.value for g in gevent.joinall([gevent.spawn(worker, i) for i in range(5)])],
      gevent.get_hub().loop.__class__.__module__)
q = gevent.queue.Queue()
gevent.spawn(lambda: [q.put(i) for i in range(3)]).join()
print([q.get() for _ in range(3)], greenlet.greenlet(lambda x: x + 1).switch(41), Resolver().gethostbyname("localhost"))
import zmq
ctx = zmq.Context()
spub, ssec = zmq.curve_keypair()
cpub, csec = zmq.curve_keypair()
s = ctx.socket(zmq.REP)
s.curve_secretkey, s.curve_publickey, s.curve_server = ssec, spub, True
port = s.bind_to_random_port("tcp://127.0.0.1")
c = ctx.socket(zmq.REQ)
c.curve_secretkey, c.curve_publickey, c.curve_serverkey = csec, cpub, spub
c.connect(f"tcp://127.0.0.1:{port}")
c.send(b"ping")
s.send(s.recv() + b" pong")
print(zmq.zmq_version(), zmq.has("curve"), c.recv())
c.close()
s.close()
ctx.term()
import psycopg2, psycopg2.extensions, psycopg2.extras
print(psycopg2.__libpq_version__, psycopg2.extensions.libpq_version())
try:
    psycopg2.connect("host=/nonexistent-kw port=5432 dbname=x connect_timeout=1")
except psycopg2.OperationalError as e:
    print(type(e).__name__, str(e).splitlines()[0])
import zope.interface
class I(zope.interface.Interface):
    pass
@zope.interface.implementer(I)
class C:
    pass
print(I.providedBy(C()), zope.interface.implementedBy(C).__class__.__module__)
"""

# What the wheels' extensions need beyond the test sysroot (Pillow's codecs and text layout, gevent's libev and
# c-ares, ZeroMQ with libsodium and Kerberos, libpq with OpenSSL, LDAP and GnuTLS), and Pillow's smoke test font.
MANY_PACKAGES = """liblbfgsb0 libssl3 libc-ares2 libev4 libfreetype6 libimagequant0 libjpeg62-turbo liblcms2-2
libopenjp2-7 libpq5 libraqm0 libtiff6 libwebp7 libwebpdemux2 libwebpmux3 libxcb1 libzmq5 liblerc4 libxau6 libxdmcp6
libbrotli1 libbsd0 libdeflate0 libfribidi0 libgssapi-krb5-2 libharfbuzz0b libjbig0 libldap-2.5-0 libnorm1
libpgm-5.3-0 libpng16-16 libsodium23 libzstd1 libcom-err2 libglib2.0-0 libgnutls30 libgraphite2-3 libk5crypto3
libkrb5-3 libkrb5support0 libmd0 libsasl2-2 libgmp10 libhogweed6 libidn2-0 libkeyutils1 libnettle8 libp11-kit0
libpcre2-8-0 libtasn1-6 libunistring2 fonts-dejavu-core""".split()


def many(tmp):
    wheels = sorted(os.path.join(DEB, f) for f in os.listdir(DEB) if f.endswith(".whl"))
    wheels += [debian_wheel(spec, prefix) for spec, prefix in (
        ("python3-scipy", "scipy"), ("python3-cryptography", "cryptography"),
        ("python3-pandas+python3-pandas-lib", "pandas"), ("python3-tz", "pytz"), ("python3-pil", "pillow"),
        ("python3-gevent", "gevent"), ("python3-greenlet", "greenlet"), ("python3-zope.interface", "zope_interface"),
        ("python3-zope.event", "zope_event"), ("python3-objgraph", "objgraph"), ("python3-zmq", "pyzmq"),
        ("python3-psycopg2", "psycopg2"))]
    root = sysroot_with("many", MANY_PACKAGES)
    out, interp = convert_and_link(tmp, wheels, "--deps", "--root", root)
    if failures:
        return
    # One conversion of each library, whichever wheels need it: the manifests (one object each not reused, all of
    # them one file) and nm of the interpreter (one image each).
    objs = {}
    for f in sorted(os.listdir(out)):
        if f.endswith(".km.json"):
            with open(os.path.join(out, f)) as j:
                m = json.load(j)
            d = os.path.join(out, [x for x in os.listdir(out) if x.endswith(".km") and
                                   x.startswith(f[:-len(".km.json")] + "-")][0])
            for o in m["objects"]:
                if o["mode"] == "lib":
                    objs.setdefault(o["symbol_tag"], []).append((o, os.stat(os.path.join(d, o["object"])).st_ino))
    shared = {t: v for t, v in objs.items() if len(v) > 1}
    check(len(shared) >= 15, f"oracle: the manifests name {len(shared)} libraries that several wheels need")
    bad = [v[0][0]["id"] for v in shared.values()
           if sum(not o["reused_from"] for o, _ in v) != 1 or len({i for _, i in v}) != 1]
    check(not bad, f"each is delinked once and reused for the other wheels, one file ({bad})")
    syms = run("nm", interp).stdout
    bad = [v[0][0]["id"] for t, v in objs.items() if len(re.findall(rf" __kw_img_{t}$", syms, re.M)) != 1]
    check(not bad, f"nm: one image of each of the {len(objs)} libraries in the interpreter ({bad})")
    mods = []
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            for n in z.namelist():
                if n.endswith(".so") and ".dist-info/" not in n and ".data/" not in n:
                    mods.append(n.split(".")[0].replace("/", "."))
    script = ("import importlib, warnings\nwarnings.simplefilter('ignore')\nok = []\n"
              f"for m in {sorted(mods)!r}:\n"
              "    try:\n        importlib.import_module(m); ok.append(m)\n"
              "    except Exception as e:\n        print('no', m, type(e).__name__)\n"
              "print(len(ok), 'imported')\n")
    out_a = compare(tmp, wheels, interp, script, {"LD_LIBRARY_PATH": libpath(root)})
    check(out_a[-1:] == [f"{len(mods)} imported"], f"every one of the {len(mods)} extension modules imports "
                                                   f"under /usr/bin/python3, and so in the static one ({out_a[-3:]})")
    shutil.rmtree(os.path.join(tmp, "site-dyn"))
    shutil.rmtree(os.path.join(tmp, "site-static"))
    font = os.path.join(root, "usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    smoke = compare(tmp, wheels, interp, f"FONT = {font!r}\n" + MANY_SMOKE, {"LD_LIBRARY_PATH": libpath(root)})
    check(len(smoke) == 16 and smoke[-1] == "True zope.interface.declarations",
          f"the smoke script ran to its end ({smoke[-2:]})")
    print(f"     interpreter: {os.path.getsize(interp) / 1e6:.1f} MB, {len(mods)} extension modules")


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-km-scale-")
    try:
        {"order": order, "soname": soname, "shared": shared, "runtime": runtime, "global": global_exports, "stdlib": stdlib, "once": once, "agree": agree, "plugins": plugins, "many": many}[GROUP](tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
