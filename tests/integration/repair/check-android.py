#!/usr/bin/env python3
"""kwheel show and repair on an Android wheel (android_<api>_<abi>), against readelf, eu-elflint and auditwheel.

usage: check-android.py KWHEEL CORPUS

The corpus wheel spam-0.1.0-cp313-cp313-android_24_arm64_v8a needs
libc++_shared.so (from the NDK: corpus android/ldpaths) and libpython3.13.so.
Android keeps the wheel's tag and its libpython DT_NEEDED; repair grafts
libc++_shared.so into spam.libs/ and sets DT_RUNPATH (never DT_RPATH, which
Android's loader ignores). Copies retagged to other API levels, written here,
check the choice of policy by level. auditwheel's own repair of the wheel is
compared when it can run (python3-pyelftools, python3-packaging and a
patchelf >= 0.14.5: KW_PATCHELF or KW_AW_CACHE/bin/patchelf); otherwise that
part says SKIP and the rest still decides.
"""
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, record_digest, run, sha, write_wheel  # noqa: E402

KWHEEL, CORPUS = sys.argv[1:3]
ANDROID = os.path.join(CORPUS, "wheels", "auditwheel", "android")
WHEEL = os.path.join(ANDROID, "spam-0.1.0-cp313-cp313-android_24_arm64_v8a.whl")
LDPATH = os.path.join(ANDROID, "ldpaths", "arg")
MODULE = "spam.cpython-313-aarch64-linux-android.so"
REFERENCE = os.environ.get("KW_REFERENCE") or os.path.join(CORPUS, "reference")
PY = "/usr/bin/python3"


def dynamic(path):
    """readelf's view of the dynamic section: {tag: [values]}."""
    out = {}
    for line in run("readelf", "-dW", path).stdout.splitlines():
        m = re.match(r"\s*0x[0-9a-f]+ \((\w+)\)\s+.*?\[(.*)\]\s*$", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def elflint(path):
    """eu-elflint's complaints with section and segment numbers left out (they move when a file is edited)."""
    p = run("eu-elflint", "--gnu-ld", path)
    return {re.sub(r"\[ *\d+\]|phdr\[\d+\]|offset \d+", "#", line) for line in p.stdout.splitlines() if line.strip()}


def unpack(whl, dest):
    os.makedirs(dest)
    with zipfile.ZipFile(whl) as z:
        z.extractall(dest)
        return z.namelist()


def record_ok(whl):
    with zipfile.ZipFile(whl) as z:
        rec = [n for n in z.namelist() if n.endswith(".dist-info/RECORD")][0]
        rows = [line.split(",") for line in z.read(rec).decode().splitlines() if line]
        listed = {r[0] for r in rows}
        good = all(r[0] == rec or (r[1] == record_digest(z.read(r[0])) and int(r[2]) == len(z.read(r[0])))
                   for r in rows)
        return good and listed == set(z.namelist())


def retag(tmp, api, abi="arm64_v8a"):
    """The corpus wheel under another API level or ABI (file name and WHEEL's Tag), RECORD rewritten."""
    plat = f"android_{api}_{abi}"
    files = {}
    with zipfile.ZipFile(WHEEL) as z:
        for n in z.namelist():
            if n.endswith("/RECORD"):
                continue
            data = z.read(n)
            if n.endswith("/WHEEL"):
                data = data.replace(b"android_24_arm64_v8a", plat.encode())
            files[n] = data
    return write_wheel(os.path.join(tmp, f"spam-0.1.0-cp313-cp313-{plat}.whl"), files)


def show(whl, *extra):
    p = run(KWHEEL, "show", "--json", *extra, whl)
    try:
        return json.loads(p.stdout.splitlines()[0]), p
    except (ValueError, IndexError):
        return {}, p


def auditwheel(tmp):
    """A command line and environment running the reference auditwheel, or None and why not."""
    tar = os.path.join(REFERENCE, "auditwheel-86154d1.tar.gz")
    if not os.path.exists(tar):
        return None, "no auditwheel reference tree"
    if run(PY, "-c", "import elftools, packaging").returncode != 0:
        return None, "python3-pyelftools or python3-packaging missing"
    patchelf = None
    for cand in [os.environ.get("KW_PATCHELF"), os.path.join(os.environ.get("KW_AW_CACHE", tmp), "bin", "patchelf"),
                 shutil.which("patchelf")]:
        if cand and os.path.exists(cand):
            v = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", run(cand, "--version").stdout)
            if v and tuple(int(x or 0) for x in v.groups()) >= (0, 14, 5):
                patchelf = cand
                break
    if not patchelf:
        return None, "no patchelf >= 0.14.5 (KW_PATCHELF, or repair-parity-auditwheel builds one into KW_AW_CACHE)"
    with tarfile.open(tar) as t:
        for m in t.getmembers():
            if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in m.name.split("/"):
                return None, f"{tar}: unexpected member {m.name!r}"
        t.extractall(tmp)
    tree = [os.path.join(tmp, d) for d in os.listdir(tmp) if d.startswith("auditwheel-")][0]
    meta = os.path.join(tmp, "meta", "auditwheel-6.8.1.dist-info")
    os.makedirs(meta)
    with open(os.path.join(meta, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\nName: auditwheel\nVersion: 6.8.1\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = os.path.join(tree, "src") + ":" + os.path.dirname(meta)
    env["PATH"] = os.path.dirname(patchelf) + ":" + env.get("PATH", "")
    return ([PY, "-m", "auditwheel"], env), None


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-android-")
    try:
        # ---- show: the policy by API level, the tag kept, libpython no constraint
        doc, p = show(WHEEL)
        check(doc.get("libc") == "bionic" and doc.get("sym_tag") == "android_24_arm64_v8a" and doc.get("note") is None,
              f"show: judged by the android policy under the wheel's own tag ({doc.get('libc')}, {doc.get('sym_tag')})")
        check(doc.get("drop_needed") == [] and list(doc.get("policy_upgrades", {})) == ["android_24_arm64_v8a"] and
              doc["policy_upgrades"]["android_24_arm64_v8a"]["libs_to_eliminate"] == ["libc++_shared.so"],
              f"show: only libc++_shared.so stands in the way, libpython does not ({doc.get('policy_upgrades')})")
        for api, want in [(25, "android_25_arm64_v8a"), (21, "android_21_arm64_v8a"), (30, "android_30_arm64_v8a")]:
            d, _ = show(retag(tmp, api), "--library-path", LDPATH)
            check(d.get("sym_tag") == want and list(d.get("policy_upgrades", {})) == [want],
                  f"show android_{api}: the highest policy at or below level {api}, under its own tag ({d.get('sym_tag')})")
        d, p = show(retag(tmp, 20))
        check(d.get("note") and "API level" in d["note"] and d.get("libc") is None,
              f"show android_20: below the oldest policy, no policy ({d.get('note')})")

        # An aarch64 module in a wheel named for Android's x86_64 ABI: the audit names it, repair refuses.
        wrong = retag(tmp, 24, "x86_64")
        d, _ = show(wrong, "--library-path", LDPATH)
        check(any("aarch64" in r and "x86_64" in r for r in d.get("refusals", [])),
              f"show android_24_x86_64 holding aarch64 code: a refusal names both ({d.get('refusals')})")
        p = run(KWHEEL, "repair", "--ldpaths", LDPATH, "-w", os.path.join(tmp, "kwx"), wrong)
        check(p.returncode == 1 and "aarch64" in p.stderr, f"repair android_24_x86_64: refused ({p.stderr.strip()[:200]})")

        # ---- repair
        out = os.path.join(tmp, "kw")
        p = run(KWHEEL, "repair", "--ldpaths", LDPATH, "-w", out, WHEEL)
        names = sorted(os.listdir(out)) if os.path.isdir(out) else []
        check(p.returncode == 0 and names == [os.path.basename(WHEEL)],
              f"repair: exit 0, the wheel's name unchanged ({p.returncode}, {names}, {p.stderr.strip()[:200]})")
        if names != [os.path.basename(WHEEL)]:
            return
        whl = os.path.join(out, names[0])
        check(record_ok(whl), "repair: RECORD lists every member with its digest and size")
        x = os.path.join(tmp, "kw-x")
        members = unpack(whl, x)
        graft = f"libc++_shared-{sha(os.path.join(LDPATH, 'libc++_shared.so'))[:8]}.so"
        libs = sorted(n for n in members if n.startswith("spam.libs/"))
        check(libs == ["spam.libs/" + graft], f"repair: libc++_shared.so grafted as spam.libs/{graft} ({libs})")
        with open(os.path.join(x, "spam-0.1.0.dist-info", "WHEEL")) as f:
            tags = [line.split(":", 1)[1].strip() for line in f if line.startswith("Tag:")]
        check(tags == ["cp313-cp313-android_24_arm64_v8a"], f"repair: WHEEL's tag unchanged ({tags})")
        dm = dynamic(os.path.join(x, MODULE))
        check(dm.get("RUNPATH") == ["$ORIGIN/spam.libs"] and "RPATH" not in dm,
              f"repair: DT_RUNPATH $ORIGIN/spam.libs and no DT_RPATH ({dm.get('RUNPATH')}, {dm.get('RPATH')})")
        check(dm.get("NEEDED") == ["libm.so", "libpython3.13.so", graft, "libdl.so", "libc.so"],
              f"repair: libpython kept, libc++_shared.so renamed in place ({dm.get('NEEDED')})")
        dl = dynamic(os.path.join(x, "spam.libs", graft)) if libs else {}
        check(dl.get("SONAME") == [graft] and "RPATH" not in dl and "RUNPATH" not in dl,
              f"repair: the graft's SONAME is its new name ({dl.get('SONAME')})")
        orig = os.path.join(tmp, "orig.so")
        with zipfile.ZipFile(WHEEL) as z, open(orig, "wb") as f:
            f.write(z.read(MODULE))
        for path, base in [(os.path.join(x, MODULE), orig),
                           (os.path.join(x, "spam.libs", graft), os.path.join(LDPATH, "libc++_shared.so"))]:
            extra = elflint(path) - elflint(base)
            check(libs and not extra, f"eu-elflint {os.path.basename(path)}: nothing the input lacks ({sorted(extra)[:3]})")

        # RUNPATH is read from API level 24 on: below it nothing can be grafted; without the NDK path neither.
        p = run(KWHEEL, "repair", "--ldpaths", LDPATH, "-w", os.path.join(tmp, "kw21"), retag(tmp, 21))
        d21 = os.path.join(tmp, "kw21")
        check(p.returncode == 1 and "API level 24" in p.stderr and not (os.path.isdir(d21) and os.listdir(d21)),
              f"repair android_21: refused, RUNPATH needs level 24 ({p.returncode}, {p.stderr.strip()[:200]})")
        p = run(KWHEEL, "repair", "--ldpaths", LDPATH, "-w", os.path.join(tmp, "kw25"), retag(tmp, 25))
        got = sorted(os.listdir(os.path.join(tmp, "kw25"))) if p.returncode == 0 else []
        check(got == ["spam-0.1.0-cp313-cp313-android_25_arm64_v8a.whl"],
              f"repair android_25: the tag stays android_25 ({p.returncode}, {got})")

        # ---- auditwheel's repair of the same wheel
        runner, why = auditwheel(os.path.join(tmp, "aw-tree"))
        if not runner:
            print(f"SKIP auditwheel side by side: {why}")
            return
        cmd, env = runner
        aout = os.path.join(tmp, "aw")
        p = run(cmd + ["repair", "--ldpaths", LDPATH, "-w", aout, WHEEL], env=env)
        anames = sorted(os.listdir(aout)) if os.path.isdir(aout) else []
        check(p.returncode == 0 and anames == names, f"auditwheel: same wheel name ({anames}, {p.stderr.strip()[-200:]})")
        if anames != names:
            return
        ax = os.path.join(tmp, "aw-x")
        amembers = unpack(os.path.join(aout, anames[0]), ax)
        # kwheel adds an SBOM of what it grafted; auditwheel writes none for this wheel.
        # Directory entries (auditwheel writes them) are no members.
        mine = sorted(n for n in members if "/sboms/" not in n and not n.endswith("/"))
        amembers = [n for n in amembers if not n.endswith("/")]
        check(sorted(amembers) == mine, f"auditwheel: same members ({sorted(set(amembers) ^ set(mine))})")
        da = dynamic(os.path.join(ax, MODULE))
        check(da.get("RUNPATH") == dm.get("RUNPATH") and da.get("RPATH") == dm.get("RPATH") and
              da.get("NEEDED") == dm.get("NEEDED"),
              f"auditwheel: same RUNPATH and DT_NEEDED ({da.get('RUNPATH')}, {da.get('NEEDED')})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


main()
print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
