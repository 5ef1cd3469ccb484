#!/usr/bin/env python3
"""`kwheel show` and `kwheel repair` on real wheels at real scale, with pip and the loader as oracles.

usage: check-scale.py KWHEEL CORPUS CASE
CASE is one of:
  pygame   (integration) Debian's python3-pygame as a wheel: 38 extension
           modules, 70 libraries to vendor
  opencv   (slow) python3-opencv: one extension, about 340 libraries
  torch    (slow) python3-torch: 14 ELF members, about 270 libraries, the
           biggest 120 MB (libtorch_cpu); its modules are dlopen()ed, not
           initialized (their init needs files the Debian package links in)
  bigelf   (slow) a wheel built here whose extension is a 120 MB ELF file of
           random data that needs liblz4; its repair peaks below 48 MiB of RSS
Debian wheels are made with tools/deb2wheel (.debs cached in
$KWHEEL_DEB_CACHE, else in the build directory); their runtime libraries must
be installed (tools/deps installs python3-pygame, `tools/deps --slow` the
others). Each wheel: `show` names what must be vendored; `repair` grafts it
all (run from an ASan build, any report fails the run); `show` on the result
finds nothing left outside; `pip install --no-index` accepts it; no installed
ELF names a grafted library by its old name or has a path outside $ORIGIN;
every extension module imports with /usr/bin/python3 and its library path
cleared; /proc/self/maps then holds every grafted copy from <dist>.libs/, and
the loader's log (LD_DEBUG=files) shows that nothing installed loaded a grafted
library's original as a DT_NEEDED and no symbol bound across a grafted copy
and the system.
"""
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, record_digest, run  # noqa: E402

KWHEEL, CORPUS, CASE = sys.argv[1:4]
PY = "/usr/bin/python3"
SRC = os.environ.get("KW_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BUILD = os.environ.get("KW_BUILD_ROOT", tempfile.gettempdir())
CACHE = os.environ.get("KWHEEL_DEB_CACHE") or os.path.join(BUILD, "deb-cache")

# Libraries that libraries the policy allows load themselves on bookworm: libX11 loads libxcb, which
# loads libXau and libXdmcp (libbsd, libmd); libgobject loads libffi; libglib loads libpcre2-8; libGL
# (glvnd) loads libGLX and libGLdispatch. The allowed ones stay the system's, so grafted copies of
# these would be a second instance in the process, and the loader binds one copy's symbols into the
# other: OpenCV and torch crash in libGLdispatch's constructor, called by the system's libGLX; the
# others bind across silently (the relocation check below sees each one when its --exclude goes).
# Leaving them with the library that loads them is the cure auditwheel's users apply too. kwheel
# repair warns of exactly these (loaded_twice); twice_named_by_kwheel checks that against this list.
SYSTEM_LOADED = ["libxcb.so.1", "libXau.so.6", "libXdmcp.so.6", "libbsd.so.0", "libmd.so.0", "libffi.so.8",
                 "libpcre2-8.so.0", "libGLX.so.0", "libGLdispatch.so.0"]
EXCLUDE = [a for n in SYSTEM_LOADED for a in ("--exclude", n)]

# Debian package (or A+B), the least number of libraries it must graft, extra repair arguments,
# whether the modules are only dlopen()ed (torch's module init needs torch/__init__.py, which needs
# files the Debian package links in from elsewhere and a wheel cannot hold: the loader still maps,
# relocates and initializes every library), and a smoke test run after the imports.
CASES = {
    "pygame": ("python3-pygame", 60, EXCLUDE, False,
               "import pygame; pygame.init(); s = pygame.Surface((4, 4)); s.fill((1, 2, 3)); "
               "assert tuple(s.get_at((0, 0)))[:3] == (1, 2, 3)"),
    "opencv": ("python3-opencv", 300, EXCLUDE, False,
               "import cv2, numpy as np; ok, png = cv2.imencode('.png', np.arange(16, dtype=np.uint8).reshape(4, 4)); "
               "assert ok and (cv2.imdecode(png, cv2.IMREAD_GRAYSCALE) == np.arange(16).reshape(4, 4)).all()"),
    # torch/bin/test_jit needs two test libraries Debian does not ship.
    "torch": ("python3-torch", 250, EXCLUDE + ["--exclude", "libjitbackend_test.so", "--exclude", "libbackend_with_compiler.so"],
              True, "pass"),
}


def clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONPATH")}
    # pygame.init() without a display or a sound card
    return dict(env, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")


def timed(argv, **kw):
    t0 = time.monotonic()
    r = run(argv, **kw)
    return r, time.monotonic() - t0


def installed(pkg):
    r = run(["dpkg-query", "-W", "-f=${Status}", pkg])
    return r.returncode == 0 and "install ok installed" in r.stdout


def debian_wheel(tmp, spec):
    out = os.path.join(tmp, "in")
    os.makedirs(CACHE, exist_ok=True)
    r = run([PY, os.path.join(SRC, "tools", "deb2wheel"), "-q", "--no-pip", "--cache", CACHE, out, spec])
    wheels = [os.path.join(out, w) for w in os.listdir(out) if w.endswith(".whl")] if os.path.isdir(out) else []
    if not check(r.returncode == 0 and len(wheels) == 1, f"tools/deb2wheel {spec} ({r.stderr.strip()[-300:]})"):
        return None
    return wheels[0]


def big_wheel(tmp):
    """bigdata-1.0: one extension module whose .rodata is 120 MB of random bytes, needing liblz4."""
    table = os.path.join(tmp, "table.bin")
    with open(table, "wb") as f:
        for _ in range(120):
            f.write(os.urandom(1 << 20))
    so = os.path.join(tmp, "_big.so")
    inc = run([PY, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"]).stdout.strip()
    r = run(["cc", "-shared", "-fPIC", "-O1", "-I" + inc, f"-DKW_TABLE={table}", os.path.join(SRC, "fixtures", "scale", "kwbig.c"),
             "-o", so, "-l:liblz4.so.1"])
    if not check(r.returncode == 0, f"120 MB extension built ({r.stderr.strip()[-300:]})"):
        return None, None
    files = {
        "bigdata/__init__.py": b"from ._big import table, lz4_version\n",
        "bigdata/_big.cpython-311-x86_64-linux-gnu.so": open(so, "rb").read(),
        "bigdata-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: bigdata\nVersion: 1.0\n",
        "bigdata-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: kwheel-tests\nRoot-Is-Purelib: false\n"
                                       b"Tag: cp311-cp311-linux_x86_64\n",
    }
    rec = "bigdata-1.0.dist-info/RECORD"
    lines = [f"{n},{record_digest(d)},{len(d)}" for n, d in files.items()] + [f"{rec},,"]
    wheel = os.path.join(tmp, "bigdata-1.0-cp311-cp311-linux_x86_64.whl")
    # Random bytes do not deflate: store them, as a build backend's zip would end up doing in effect.
    with zipfile.ZipFile(wheel, "w") as z:
        for n, d in list(files.items()) + [(rec, "\n".join(lines).encode() + b"\n")]:
            info = zipfile.ZipInfo(n, (2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, d, zipfile.ZIP_STORED if len(d) > (1 << 20) else zipfile.ZIP_DEFLATED)
    os.unlink(so)
    return wheel, table


def extension_modules(wheel):
    """(dotted name, member path) of every extension module outside .libs/ and .data/."""
    mods = []
    with zipfile.ZipFile(wheel) as z:
        for n in sorted(z.namelist()):
            m = re.match(r"(.*)\.cpython-311-x86_64-linux-gnu\.so$", n)
            if m and ".libs/" not in n and ".data/" not in n:
                mods.append((m.group(1).replace("/", "."), n))
    return mods


IMPORT = r"""
import ctypes, importlib, json, os, sys
target, dlopen_only, mods, smoke = sys.argv[1], sys.argv[2] == "1", json.loads(sys.argv[3]), sys.argv[4]
sys.path.insert(0, target)
files = {}
for name, member in mods:
    if dlopen_only:
        path = os.path.join(target, member)
        ctypes.CDLL(path)
        files[name] = os.path.realpath(path)
    else:
        files[name] = os.path.realpath(importlib.import_module(name).__file__)
exec(smoke)
maps = sorted({l.split(None, 5)[5].strip() for l in open("/proc/self/maps") if len(l.split(None, 5)) == 6})
print(json.dumps({"files": files, "maps": maps}))
"""


def elf_files(root):
    out = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if not os.path.islink(p):
                with open(p, "rb") as f:
                    if f.read(4) == b"\x7fELF":
                        out.append(p)
    return out


def dynamic(path):
    """readelf -d: the NEEDED names and the RPATH/RUNPATH entries of one file."""
    d = run(["readelf", "-dW", path]).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", d)
    paths = [e for m in re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[(.*)\]", d) for e in m.split(":")]
    return needed, paths


def loader_log(log_dir):
    """(name, by, how) for every object the loader took in: 'needed', 'dlopen' or 'relocation'."""
    events = []
    for n in os.listdir(log_dir):
        for line in open(os.path.join(log_dir, n), errors="replace"):
            m = re.search(r"file=(\S+) \[\d+\];\s+(needed|dynamically loaded) by (\S+) \[\d+\](\s+\(relocation dependency\))?", line)
            if m:
                events.append((m.group(1), m.group(3), "relocation" if m.group(4) else
                               "needed" if m.group(2) == "needed" else "dlopen"))
    return events


def install_and_import(tmp, new, res, dlopen_only, smoke, label):
    target = os.path.join(tmp, "target")
    r, dt = timed([PY, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check", "--quiet",
                   "--target", target, new])
    if not check(r.returncode == 0, f"{label}: pip install --no-index accepts it ({dt:.1f} s) ({r.stderr.strip()[-300:]})"):
        return
    real_target = os.path.realpath(target)
    inside = lambda p: os.path.realpath(p).startswith(real_target + os.sep)  # noqa: E731
    sonames = {g["soname"] for g in res["grafted"]}
    # Statically: nothing installed still names a grafted library by its old name, or looks outside.
    bad_needed, bad_paths = [], []
    for f in elf_files(target):
        needed, paths = dynamic(f)
        bad_needed += [f"{os.path.relpath(f, target)}: {n}" for n in needed if n in sonames]
        bad_paths += [f"{os.path.relpath(f, target)}: {p}" for p in paths if not p.startswith("$ORIGIN")]
    check(not bad_needed, f"{label}: no installed file needs a grafted library by its old name ({bad_needed[:3]})")
    check(not bad_paths, f"{label}: every RPATH/RUNPATH entry is $ORIGIN-relative ({bad_paths[:3]})")
    mods = extension_modules(new)
    log_dir = os.path.join(tmp, "ld-debug")
    os.makedirs(log_dir)
    env = dict(clean_env(), LD_DEBUG="files", LD_DEBUG_OUTPUT=os.path.join(log_dir, "log"))
    r, dt = timed([PY, "-c", IMPORT, target, "1" if dlopen_only else "0", json.dumps(mods), smoke], cwd=tmp, env=env)
    how = "load (dlopen)" if dlopen_only else "import"
    if not check(r.returncode == 0, f"{label}: {len(mods)} extension modules {how} ({dt:.1f} s) "
                                    f"(rc {r.returncode}: {r.stderr.strip()[-400:]})"):
        return
    got = json.loads(r.stdout.strip().splitlines()[-1])
    outside = [n for n, f in got["files"].items() if not inside(f)]
    check(len(got["files"]) == len(mods) and not outside, f"{label}: every module comes from the install ({outside[:3]})")
    maps = set(got["maps"])
    grafted = {os.path.join(real_target, g["dest"]) for g in res["grafted"]}
    missing = sorted(grafted - maps)
    check(not missing, f"{label}: all {len(grafted)} grafted copies are mapped ({missing[:3]})")
    # The originals are not reachable from the wheel: the loader took in no file by a grafted
    # library's old name as a DT_NEEDED of anything installed (a dlopen by name, as SDL2 does for
    # libdbus, is the program's own choice and cannot be relinked), nor bound anything installed to a file outside
    # the install that a grafted copy came from, nor anything outside to a grafted copy.
    originals = {os.path.realpath(g["source"]) for g in res["grafted"]}
    events = loader_log(log_dir)
    by_wheel = sorted({f"{n} <- {os.path.relpath(b, real_target)}" for n, b, how in events
                       if how == "needed" and n in sonames and inside(b)})
    check(not by_wheel, f"{label}: nothing installed loads a grafted library's original ({by_wheel[:3]})")
    crossed = sorted({f"{n} <- {b}" for n, b, how in events if how == "relocation" and
                      ((inside(n) and not inside(b)) or (inside(b) and os.path.realpath(n) in originals))})
    check(not crossed, f"{label}: no symbol binds across a grafted copy and the system ({len(crossed)}: {crossed[:20]})")
    mapped_originals = sorted(originals & {os.path.realpath(p) for p in maps if p.startswith("/") and os.path.exists(p)})
    if mapped_originals:
        print(f"# also mapped, loaded for the interpreter or a library the policy allows: {len(mapped_originals)}: "
              f"{[os.path.basename(p) for p in mapped_originals]}", flush=True)


def twice_named_by_kwheel(tmp, wheel, extra, label):
    """Without the SYSTEM_LOADED excludes, repair itself names those libraries as loaded twice, and no other."""
    rest, i = [], 0
    while i < len(extra):
        if extra[i] == "--exclude" and extra[i + 1] in SYSTEM_LOADED:
            i += 2
            continue
        rest.append(extra[i])
        i += 1
    out = os.path.join(tmp, "out-twice")
    os.makedirs(out)
    r, dt = timed([KWHEEL, "repair", "--json", "-w", out] + rest + [wheel])
    res = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else {}
    grafted = {g["soname"] for g in res.get("grafted", [])}
    named = sorted(t["soname"] for t in res.get("loaded_twice", []))
    want = sorted(set(SYSTEM_LOADED) & grafted)
    check(res and named == want, f"{label}: with only the other excludes ({dt:.1f} s), repair warns of exactly the "
                                 f"libraries a system library loads too ({named} vs {want})")
    shutil.rmtree(out, ignore_errors=True)


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-scale-", dir=os.environ.get("KW_SCALE_TMP"))
    try:
        table = None
        if CASE == "bigelf":
            spec, least, extra, dlopen_only, smoke = None, 1, [], False, ""
            wheel, table = big_wheel(tmp)
            smoke = ("import bigdata, hashlib; "
                     f"assert hashlib.sha256(bigdata.table()).digest() == hashlib.sha256(open({table!r}, 'rb').read()).digest(); "
                     "assert bigdata.lz4_version() >= 10900")
        else:
            spec, least, extra, dlopen_only, smoke = CASES[CASE]
            pkg = spec.split("+")[0]
            if not check(installed(pkg), f"{pkg} is installed, so repair finds its libraries (tools/deps installs it)"):
                return 1
            wheel = debian_wheel(tmp, spec)
        if not wheel:
            return 1
        label = os.path.basename(wheel)
        with zipfile.ZipFile(wheel) as z:
            members = len(z.namelist())
        print(f"# {label}: {members} members, {os.path.getsize(wheel) / 1e6:.1f} MB", flush=True)
        r, dt = timed([KWHEEL, "show", "--json", wheel])
        sj = json.loads(r.stdout.splitlines()[0]) if r.returncode in (0, 1) and r.stdout.strip() else {}
        to_vendor = sorted(sj.get("external_libs", {}))
        check(r.returncode in (0, 1) and not r.stderr.strip() and len(to_vendor) >= least,
              f"{label}: show in {dt:.1f} s names {len(to_vendor)} libraries to vendor, at least {least} "
              f"(rc {r.returncode}: {r.stderr.strip()[-600:]})")
        out = os.path.join(tmp, "out")
        os.makedirs(out)
        r, dt = timed([KWHEEL, "repair", "--json", "-w", out] + extra + [wheel])
        if not check(r.returncode == 0 and not r.stderr.strip(),
                     f"{label}: repaired in {dt:.1f} s (rc {r.returncode}: {r.stderr.strip()[-1500:]})"):
            return 1
        res = json.loads(r.stdout)
        new = res["output"]
        # left out on request, and (as auditwheel does) what only the excluded libraries need
        excluded = set(res.get("excluded") or []) | set(res.get("excluded_deps") or [])
        grafted_sonames = sorted({g["soname"] for g in res["grafted"]})
        check(grafted_sonames == sorted(set(to_vendor) - excluded),
              f"{label}: grafted {len(res['grafted'])} libraries, exactly what show named less --exclude "
              f"({sorted(set(to_vendor) - excluded - set(grafted_sonames))[:3]} {sorted(set(grafted_sonames) - set(to_vendor))[:3]})")
        print(f"# {os.path.basename(new)}: {os.path.getsize(new) / 1e6:.1f} MB, {len(res['grafted'])} grafted, "
              f"{len(res['patched'])} patched", flush=True)
        r = run([PY, "-m", "zipfile", "-t", new])
        check(r.returncode == 0, f"{label}: Python's zipfile reads every member back ({r.stdout.strip()[-200:]})")
        r, dt = timed([KWHEEL, "show", "--json", new])
        sj2 = json.loads(r.stdout.splitlines()[0]) if r.stdout.strip() else {}
        left = sorted(set(sj2.get("external_libs", {})) - excluded)
        check(r.returncode in (0, 1) and not left and sj2.get("record", {}).get("ok") and not r.stderr.strip(),
              f"{label}: show on the result ({dt:.1f} s): RECORD ok, nothing left to vendor ({left[:3]} {r.stderr.strip()[-300:]})")
        # The text report of a large repair (its buffer was once sized at 16 bytes a graft, and wrote 21).
        out_t = os.path.join(tmp, "out-text")
        os.makedirs(out_t)
        r, dt = timed([KWHEEL, "repair", "-w", out_t] + extra + [wheel])
        lines = r.stdout.splitlines()
        check(r.returncode == 0 and not r.stderr.strip() and len(lines) >= 1 and
              sum(1 for line in lines if line.startswith("  grafted ")) == len(res["grafted"]) and
              os.listdir(out_t) == [os.path.basename(new)],
              f"{label}: the text report names all {len(res['grafted'])} grafts ({dt:.1f} s, rc {r.returncode}: "
              f"{r.stderr.strip()[-300:]})")
        if CASE == "bigelf":
            # Memory must not follow the member: the editor and RECORD's hash read it a piece at a time.
            out_m = os.path.join(tmp, "out-rss")
            os.makedirs(out_m)
            r = run(["/usr/bin/time", "-f", "%M", KWHEEL, "repair", "-w", out_m] + extra + [wheel])
            tail = r.stderr.strip().splitlines()
            rss = int(tail[-1]) if tail and tail[-1].isdigit() else None
            # AddressSanitizer's shadow and quarantine add some 70 MiB of their own: there, below the member's size
            limit = 120 if "libasan" in run(["ldd", KWHEEL]).stdout else 48
            check(r.returncode == 0 and rss is not None and rss < limit * 1024,
                  f"{label}: repair of a 120 MB member peaks below {limit} MiB ({rss} KiB, rc {r.returncode})")
        if CASE != "bigelf":
            twice_named_by_kwheel(tmp, wheel, extra, label)
        install_and_import(tmp, new, res, dlopen_only, smoke, label)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
