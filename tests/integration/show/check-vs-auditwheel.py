#!/usr/bin/env python3
"""`kwheel show --json` against `auditwheel show --json`, wheel by wheel.

usage: check-vs-auditwheel.py KWHEEL SOURCE_ROOT CORPUS

auditwheel is the reference for the keys the two reports share. It runs from
its source tarball (unpacked here into a temporary directory) on Debian's
python3-pyelftools and python3-packaging; nothing is skipped: a missing
module or tarball is a failure. Every wheel of corpus/wheels/auditwheel and
corpus/wheels/debian, and wheels built here from fixtures/show, goes through
both tools; the shared keys must agree except where DIFFERENCES below names
the wheel (its path below corpus/wheels, or fixture/NAME) and key and says why kwheel deliberately answers otherwise (such a
listed difference must still be one: a stale entry fails too). kwheel's
report reduced to auditwheel's keys must validate against auditwheel's
show-schema.json.
"""
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, write_wheel  # noqa: E402

KWHEEL, SRC, CORPUS = sys.argv[1:4]
REF = os.environ.get("KW_REFERENCE") or os.path.join(CORPUS, "reference")
PY = "/usr/bin/python3"
FIXTURES = os.path.join(SRC, "fixtures", "show")

SHARED = ["overall_tag", "sym_tag", "pyfpe", "ucs2", "unsupported_isa", "versioned_symbols", "external_libs",
          "policy_upgrades"]

# Where kwheel answers otherwise on purpose: (wheel file name, key) -> why. "*" as the key: auditwheel
# gives no verdict at all (an error) where kwheel gives one.
DIFFERENCES = {
    ("auditwheel/glibc/testsimple-0.0.1-cp313-cp313-linux_armv5l.whl", "*"):
        "auditwheel knows no armv5l policy and calls the wheel not a platform wheel; kwheel audits it "
        "(linux_armv5l, no policy exists for the arch)",
    ("auditwheel/glibc/testsimple-0.0.1-cp313-cp313-linux_mips64.whl", "*"):
        "auditwheel has no mips64 policy and calls the wheel not a platform wheel; kwheel audits it as "
        "linux_mips64",
    ("auditwheel/musllinux_1_2/testsimple-0.0.1-cp310-cp310-linux_x86_64.whl", "*"):
        "the module links no libc and its name says -linux-gnu (CPython 3.10 on musl used that suffix); "
        "auditwheel stops ('couldn't detect libc'), kwheel takes the wheel's libc family from its "
        "members and falls back to glibc",
    ("auditwheel/musllinux_1_2/testsimple-0.0.1-cp312-cp312-linux_armv6l.whl", "overall_tag"):
        "the module's Tag_CPU_arch is ARMv6: kwheel keeps the wheel's armv6l (an armv7l tag would shut out "
        "the armv6 hosts it runs on, and no policy exists for armv6l); auditwheel takes every EABI5 "
        "hard-float object for armv7l",
    ("auditwheel/musllinux_1_2/testsimple-0.0.1-cp312-cp312-linux_armv6l.whl", "sym_tag"):
        "armv6l, as overall_tag",
    ("fixture/purelib-1.0-cp311-cp311-linux_x86_64.whl", "*"):
        "an ELF file under <dist>.data/purelib/: auditwheel stops with an error; kwheel gives the verdict "
        "linux_x86_64 and names the member among the refusals repair reads",
    ("fixture/otherarch-1.0-cp311-cp311-linux_x86_64.whl", "*"):
        "an aarch64 module in a wheel named for x86_64: auditwheel ignores the member and then calls the "
        "wheel not a platform wheel; kwheel judges the code (linux_aarch64, the claimed linux_x86_64 "
        "not satisfied) with a refusal naming the member and both architectures",
}


def fail_hard(what):
    print("FAIL " + what, flush=True)
    sys.exit(1)


def setup_auditwheel(tmp):
    """Unpack auditwheel's source and the metadata it asks for; fail (never skip) on anything missing."""
    for mod in ("elftools", "packaging", "jsonschema"):
        p = run(PY, "-c", f"import {mod}")
        if p.returncode != 0:
            fail_hard(f"{PY} cannot import {mod} (install python3-pyelftools python3-packaging "
                      f"python3-jsonschema: tools/deps)")
    tarball = os.path.join(REF, "auditwheel-86154d1.tar.gz")
    if not os.path.exists(tarball):
        fail_hard(f"auditwheel's source is missing: {tarball}")
    with tarfile.open(tarball) as t:
        # Python 3.11 has no extraction filter: refuse anything but plain files and directories inside tmp.
        for m in t.getmembers():
            if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in m.name.split("/"):
                fail_hard(f"{tarball}: unexpected member {m.name!r}")
        t.extractall(tmp)
    tops = [d for d in os.listdir(tmp) if os.path.isdir(os.path.join(tmp, d, "src", "auditwheel"))]
    if len(tops) != 1:
        fail_hard(f"unexpected layout of {tarball}: {os.listdir(tmp)}")
    meta = os.path.join(tmp, "meta", "auditwheel-6.8.1.dist-info")
    os.makedirs(meta)
    with open(os.path.join(meta, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\nName: auditwheel\nVersion: 6.8.1\n")
    return os.path.join(tmp, tops[0], "src") + ":" + os.path.join(tmp, "meta")


def auditwheel_show(pythonpath, wheel, extra=()):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = pythonpath
    # --allow-pure-python-wheel: a pure wheel gets {"pure": true} instead of an error, as in kwheel.
    p = subprocess.run([PY, "-m", "auditwheel", "show", "--json", "--allow-pure-python-wheel", *extra, wheel], capture_output=True, text=True,
                       env=env, timeout=600)
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1]}


def kwheel_show(wheel, extra=()):
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    p = subprocess.run([KWHEEL, "show", "--json", *extra, wheel], capture_output=True, text=True, env=env,
                       timeout=600)
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    # A sanitizer's report (ASan build) or any warning is a failure too.
    check(p.stderr == "", f"kwheel show {' '.join(extra)} {os.path.basename(wheel)}: nothing on stderr "
          f"({p.stderr.strip()[:300]})")
    if len(lines) != 1:
        return {"error": f"exit {p.returncode}, {len(lines)} lines, stderr {p.stderr.strip()[:200]}"}
    return json.loads(lines[0])


def same_files(paths):
    """external_libs with every path canonical: auditwheel follows the last component's symlinks only
    (/lib/x86_64-linux-gnu/libz.so.1.2.13 on a merged-/usr system), kwheel all of them (/usr/lib/...);
    both name the same file."""
    if not isinstance(paths, dict):
        return paths
    return {k: (os.path.realpath(v) if v else v) for k, v in paths.items()}


def reduce(kw):
    """kwheel's report cut down to auditwheel's keys, with auditwheel's conventions (empty entries left out)."""
    if "error" in kw:
        return {"version": kw.get("version"), "wheel": kw.get("wheel"), "error": kw["error"]}
    if kw.get("pure"):
        return {"version": kw["version"], "wheel": kw["wheel"], "pure": True}
    out = {"version": kw["version"], "wheel": kw["wheel"], "pure": False}
    for k in SHARED:
        if k in kw:
            out[k] = kw[k]
    ups = {}
    for tag, entry in (kw.get("policy_upgrades") or {}).items():
        e = {}
        if entry.get("libs_to_eliminate"):
            e["libs_to_eliminate"] = sorted(entry["libs_to_eliminate"])
        if entry.get("blacklisted_symbols"):
            e["blacklisted_symbols"] = {k: sorted(v) for k, v in sorted(entry["blacklisted_symbols"].items())}
        if e:
            ups[tag] = e
    out["policy_upgrades"] = ups
    return out


def compare(name, aw, kw, validator):
    red = reduce(kw)
    errs = list(validator.iter_errors(red))
    check(not errs, f"{name}: kwheel's report, reduced to auditwheel's keys, fits show-schema.json"
          + (f" ({errs[0].message} at {list(errs[0].path)})" if errs else ""))
    if (name, "*") in DIFFERENCES:
        check("error" in aw and "error" not in kw,
              f"{name}: auditwheel gives no verdict, kwheel does (listed: {DIFFERENCES[(name, '*')][:60]}...)")
        return
    if "error" in aw or "error" in kw:
        check("error" in aw and "error" in kw, f"{name}: both give a verdict or both refuse "
              f"(auditwheel: {aw.get('error', 'verdict')}; kwheel: {kw.get('error', 'verdict')})")
        return
    if aw.get("pure") or red.get("pure"):
        check(aw.get("pure") == red.get("pure"), f"{name}: both call it pure")
        return
    for k in SHARED:
        same = aw.get(k) == red.get(k) or (k == "external_libs" and same_files(aw.get(k)) == same_files(red.get(k)))
        if (name, k) in DIFFERENCES:
            why = DIFFERENCES[(name, k)]
            check(not same, f"{name}: {k} differs as listed ({why[:70]}...)")
            continue
        check(same, f"{name}: {k} agrees" + ("" if same else f" (auditwheel {json.dumps(aw.get(k))[:600]}, "
                                                            f"kwheel {json.dumps(red.get(k))[:600]})"))


def build_fixture_wheels(tmp):
    """Extension modules the corpus lacks, packed as linux_x86_64 wheels: (wheel path, extra show args, checks)."""
    inc = run(PY, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])").stdout.strip()
    cc = ["cc", "-shared", "-fPIC", "-O1"]
    builds = {
        "blackstrong": cc + [os.path.join(FIXTURES, "blackweak.c"), "-lz"],
        "blackweak": cc + ["-DWEAK", os.path.join(FIXTURES, "blackweak.c"), "-lz"],
        "pylink": cc + ["-I" + inc, os.path.join(FIXTURES, "pylink.c"), "-lpython3.11"],
        "isa": cc + ["-march=x86-64-v3", "-Wl,-z,x86-64-v3", os.path.join(FIXTURES, "isa.c")],
    }
    wheels = {}
    os.makedirs(tmp)
    for mod, argv in builds.items():
        so = os.path.join(tmp, f"{mod}.cpython-311-x86_64-linux-gnu.so")
        src_mod = "blackweak" if mod.startswith("black") else mod
        p = run(argv + ["-o", so, f"-Wl,-soname,{os.path.basename(so)}"])
        if p.returncode != 0:
            fail_hard(f"cannot build fixture {mod}: {p.stderr.strip()[:300]}")
        data = open(so, "rb").read()
        wname = f"{mod}-1.0-cp311-cp311-linux_x86_64.whl"
        wheel_text = (f"Wheel-Version: 1.0\nGenerator: kwheel-tests\nRoot-Is-Purelib: false\n"
                      f"Tag: cp311-cp311-linux_x86_64\n").encode()
        files = {
            f"{src_mod}.cpython-311-x86_64-linux-gnu.so": data,
            f"{mod}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {mod}\nVersion: 1.0\n".encode(),
            f"{mod}-1.0.dist-info/WHEEL": wheel_text,
        }
        wheels[mod] = write_wheel(os.path.join(tmp, wname), files)
    # The same module under purelib, and an aarch64 build (from the corpus) in a wheel named for x86_64.
    meta = {
        "purelib-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: purelib\nVersion: 1.0\n",
        "purelib-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: kwheel-tests\nRoot-Is-Purelib: false\n"
                                       b"Tag: cp311-cp311-linux_x86_64\n",
    }
    so = open(os.path.join(tmp, "blackweak.cpython-311-x86_64-linux-gnu.so"), "rb").read()
    wheels["purelib"] = write_wheel(os.path.join(tmp, "purelib-1.0-cp311-cp311-linux_x86_64.whl"), {
        "purelib-1.0.data/purelib/blackweak.cpython-311-x86_64-linux-gnu.so": so, **meta})
    with zipfile.ZipFile(os.path.join(CORPUS, "wheels", "auditwheel", "glibc",
                                      "testsimple-0.0.1-cp313-cp313-linux_aarch64.whl")) as z:
        name = next(n for n in z.namelist() if n.endswith(".so"))
        arm = z.read(name)
    wheels["otherarch"] = write_wheel(os.path.join(tmp, "otherarch-1.0-cp311-cp311-linux_x86_64.whl"), {
        "testsimple.cpython-311-x86_64-linux-gnu.so": arm,
        **{k.replace("purelib", "otherarch"): v.replace(b"purelib", b"otherarch") for k, v in meta.items()}})
    return wheels


def kwheel_own(fx):
    """What kwheel adds for repair (refusals, drop_needed, per-member ISA), checked on its own."""
    aw_dir = os.path.join(CORPUS, "wheels", "auditwheel")
    tz = kwheel_show(os.path.join(aw_dir, "testzlib-0.0.1-cp310-cp310-linux_x86_64.whl"))
    ups = tz.get("policy_upgrades", {})
    check(any("depends on black-listed symbols" in r and "zcalloc" in r and "zcfree" in r
              for r in tz.get("refusals", [])), f"testzlib: a refusal names zcalloc, zcfree ({tz.get('refusals')})")
    check(ups and all("libz.so.1" not in u.get("libs_to_eliminate", []) for u in ups.values()),
          "testzlib: no policy vendors libz.so.1 to cure the black-listed imports")
    weak = kwheel_show(fx["blackweak"])
    check(weak.get("refusals") == [] and weak.get("overall_tag", "").startswith("manylinux_"),
          f"blackweak: weak references to zcalloc/zcfree count for nothing ({weak.get('overall_tag')}, "
          f"{weak.get('refusals')})")
    strong = kwheel_show(fx["blackstrong"])
    check(strong.get("overall_tag") == "linux_x86_64" and len(strong.get("refusals", [])) == 1,
          f"blackstrong: linux_x86_64 and one refusal ({strong.get('refusals')})")
    py = kwheel_show(fx["pylink"])
    check(py.get("drop_needed") == [{"member": "pylink.cpython-311-x86_64-linux-gnu.so",
                                     "soname": "libpython3.11.so.1.0"}],
          f"pylink: the libpython DT_NEEDED is listed for removal ({py.get('drop_needed')})")
    check(py.get("refusals") == [] and py.get("sym_tag", "").startswith("manylinux_"),
          f"pylink: libpython neither refuses nor constrains the tag ({py.get('sym_tag')})")
    # libpython3.11 needs libm, libz and libexpat (readelf -d); the module itself only libc and libpython.
    own = {"libc.so.6", "libpython3.11.so.1.0", "ld-linux-x86-64.so.2"}
    listed = {lib["soname"] for lib in py.get("libraries", [])}
    check(listed == own, f"pylink: what libpython needs is not walked ({sorted(listed)})")
    isa = kwheel_show(fx["isa"])
    check(isa.get("unsupported_isa") is True and isa["members"][0].get("isa") == "x86_64_v3" and
          any("x86_64_v3" in r for r in isa.get("refusals", [])),
          f"isa: x86_64_v3 member, refused ({isa.get('refusals')})")
    off = kwheel_show(fx["isa"], ["--disable-isa-ext-check"])
    check(off.get("unsupported_isa") is False and off.get("refusals") == [] and
          off.get("overall_tag", "").startswith("manylinux_"),
          f"isa --disable-isa-ext-check: judged as baseline ({off.get('overall_tag')})")
    # repair takes the same flag: refused without it (auditwheel exits 1 too), repaired to the baseline with it.
    out = tempfile.mkdtemp(prefix="kwheel-isa-")
    try:
        r = run(KWHEEL, "repair", "-w", out, fx["isa"])
        check(r.returncode == 1 and "x86_64_v3" in r.stderr and not os.listdir(out),
              f"isa: repair refuses an x86-64-v3 module (rc {r.returncode}: {r.stderr.strip()[:200]})")
        r = run(KWHEEL, "repair", "--disable-isa-ext-check", "-w", out, fx["isa"])
        made = os.listdir(out)
        check(r.returncode == 0 and len(made) == 1 and off.get("overall_tag", "?") in made[0],
              f"isa: repair --disable-isa-ext-check tags it as show does, {off.get('overall_tag')} "
              f"(rc {r.returncode}: {made} "
              f"{r.stderr.strip()[:200]})")
    finally:
        subprocess.run(["rm", "-rf", out])
    pl = kwheel_show(fx["purelib"])
    check(pl.get("overall_tag") == "linux_x86_64" and any("purelib" in r for r in pl.get("refusals", [])),
          f"purelib: linux_x86_64, refused ({pl.get('refusals')})")
    oa = kwheel_show(fx["otherarch"])
    # The code is aarch64, so is the verdict; the name's linux_x86_64 is a tag the wheel does not satisfy.
    check(oa.get("overall_tag") == "linux_aarch64" and oa.get("bad_tags") == ["linux_x86_64"] and
          any("testsimple.cpython-311-x86_64-linux-gnu.so" in r and "aarch64" in r and "x86_64" in r
              for r in oa.get("refusals", [])),
          f"otherarch: refused, naming the member and both architectures ({oa.get('refusals')})")
    cffi = kwheel_show(os.path.join(aw_dir, "cffi-1.5.0-cp27-none-linux_x86_64.whl"))
    check(cffi.get("ucs2") is True and any("UCS2" in r for r in cffi.get("refusals", [])),
          f"cffi cp27: a UCS2 build, refused ({cffi.get('refusals')})")
    for name in ("aarch64", "x86_64"):
        w = os.path.join(aw_dir, "musllinux_1_2", f"testsimple-0.0.1-cp312-cp312-linux_{name}.whl")
        m = kwheel_show(w)
        check(m.get("overall_tag") == f"musllinux_1_2_{name}" and
              f"musllinux_1_1_{name}" in m.get("policy_upgrades", {}),
              f"musl {name}: musllinux_1_2, musllinux_1_1 listed with its reason ({m.get('overall_tag')})")


def main():
    import jsonschema

    schema = json.load(open(os.path.join(REF, "show-schema.json")))
    validator = jsonschema.Draft202012Validator(schema)
    with tempfile.TemporaryDirectory(prefix="kwheel-vs-aw-") as tmp:
        pythonpath = setup_auditwheel(os.path.join(tmp, "aw"))
        wheels = []
        for group in ("auditwheel", "debian"):
            for root, _dirs, files in os.walk(os.path.join(CORPUS, "wheels", group)):
                wheels += [os.path.join(root, f) for f in files if f.endswith(".whl")]
        check(len(wheels) >= 20, f"the corpus has its wheels ({len(wheels)})")
        for w in sorted(wheels):
            # Named by the path below corpus/wheels: glibc and musl builds share file names.
            name = os.path.relpath(w, os.path.join(CORPUS, "wheels"))
            compare(name, auditwheel_show(pythonpath, w), kwheel_show(w), validator)

        fx = build_fixture_wheels(os.path.join(tmp, "fx"))
        for mod, w in sorted(fx.items()):
            compare("fixture/" + os.path.basename(w), auditwheel_show(pythonpath, w), kwheel_show(w), validator)
        # The ISA check can be turned off in both.
        kwheel_own(fx)
        w = fx["isa"]
        compare("fixture/" + os.path.basename(w) + " --disable-isa-ext-check",
                auditwheel_show(pythonpath, w, ["--disable-isa-ext-check"]),
                kwheel_show(w, ["--disable-isa-ext-check"]), validator)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
