#!/usr/bin/env python3
"""Every `kwheel patch` operation on every ELF shared object of the corpus.

For each object (the wheels' extensions, other-architecture testsimple
builds included, and the libraries of the corpus sysroot) and each operation:
  - `readelf -d` shows exactly the requested entries (the rest unchanged);
  - Debian's patchelf, given the same operation, yields the same NEEDED,
    SONAME and search path entries;
  - `eu-elflint --gnu-ld` reports no error the input did not already have;
  - x86-64 objects that the real loader could load before still load after.
Usage: check-patch.py KWHEEL CORPUS SYSROOT_ROOT [--quick]
"""
import os
import re
import shutil
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import run  # noqa: E402

KWHEEL, CORPUS, SYSROOT = sys.argv[1], sys.argv[2], sys.argv[3]
QUICK = "--quick" in sys.argv
LONG = "$ORIGIN/../" + "/".join(["a-rather-long-directory-name-%d" % i for i in range(12)]) + ":$ORIGIN"
STR_TAGS = ("NEEDED", "SONAME", "RPATH", "RUNPATH")


def dynamic(path):
    """[(tag, value)] of the string-valued dynamic entries, in order."""
    out = run(["readelf", "-dW", path]).stdout
    ents = []
    for line in out.splitlines():
        m = re.match(r"\s*0x[0-9a-f]+ \((\w+)\)\s+(.*)", line)
        if m and m.group(1) in STR_TAGS:
            v = re.search(r"\[(.*)\]", m.group(2))
            ents.append((m.group(1), v.group(1) if v else m.group(2)))
    return ents


def elflint_errors(path):
    out = run(["eu-elflint", "--gnu-ld", path]).stdout
    # Messages carry offsets and section numbers that shift when a segment is added; the kind is what matters.
    errs = set()
    for line in out.splitlines():
        if line.strip() and "No errors" not in line:
            errs.add(re.sub(r"0x[0-9a-f]+|\d+", "N", line))
    return errs


def loads(path, libdirs):
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(libdirs))
    r = run(["/usr/bin/python3", "-c", "import ctypes,sys; ctypes.CDLL(sys.argv[1])", path], env=env)
    return r.returncode == 0, r.stderr.strip().splitlines()[-1:] if r.returncode else ""


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def elf_kind(path):
    h = run(["readelf", "-hW", path]).stdout
    typ = re.search(r"Type:\s+(\w+)", h)
    mach = re.search(r"Machine:\s+(.*)", h)
    return (typ.group(1) if typ else "?"), (mach.group(1).strip() if mach else "?")


def collect(tmp):
    files = []
    for root, _, names in os.walk(os.path.join(CORPUS, "wheels")):
        for n in sorted(names):
            if not n.endswith(".whl"):
                continue
            with zipfile.ZipFile(os.path.join(root, n)) as z:
                for m in z.infolist():
                    if m.is_dir():
                        continue
                    data = z.read(m)
                    if data[:4] != b"\x7fELF":
                        continue
                    d = os.path.join(tmp, "in", n, os.path.dirname(m.filename))
                    os.makedirs(d, exist_ok=True)
                    p = os.path.join(d, os.path.basename(m.filename))
                    with open(p, "wb") as f:
                        f.write(data)
                    files.append(p)
    for root, _, names in os.walk(SYSROOT):
        for n in sorted(names):
            p = os.path.join(root, n)
            if ".so" in n and not os.path.islink(p) and os.path.isfile(p) and is_elf(p):
                files.append(p)
    return sorted(files)


def ops_for(dyn):
    needed = [v for t, v in dyn if t == "NEEDED"]
    ops = [
        ("set-rpath-long", ["--set-rpath", LONG], ["--set-rpath", LONG]),
        ("set-rpath-short", ["--set-rpath", "$ORIGIN"], ["--set-rpath", "$ORIGIN"]),
        ("add-rpath", ["--add-rpath", "/opt/kw/lib"], ["--add-rpath", "/opt/kw/lib"]),
        ("remove-rpath", ["--remove-rpath"], ["--remove-rpath"]),
        ("force-rpath", ["--force-rpath", "--set-rpath", "$ORIGIN/x.libs"],
         ["--force-rpath", "--set-rpath", "$ORIGIN/x.libs"]),
        ("set-soname", ["--set-soname", "libkw-0123abcd.so.1"], ["--set-soname", "libkw-0123abcd.so.1"]),
        ("add-needed", ["--add-needed", "libkw-added.so.1"], ["--add-needed", "libkw-added.so.1"]),
    ]
    ops = [(n, k, [p]) for n, k, p in ops]
    if needed:
        first = needed[0]
        new = "libkw-" + first.replace(".so", "-89abcdef.so")
        ops.append(("replace-needed", ["--replace-needed", first, new], [["--replace-needed", first, new]]))
        ops.append(("combo", ["--set-rpath", LONG, "--replace-needed", first, new, "--set-soname", "libkw-combo.so"],
                    [["--set-rpath", LONG], ["--replace-needed", first, new], ["--set-soname", "libkw-combo.so"]]))
        ops.append(("remove-needed", ["--remove-needed", needed[-1]], [["--remove-needed", needed[-1]]]))
    return ops


def expected(dyn, name, args):
    """The string entries the operation should leave, by kwheel's documented rules."""
    tags = [t for t, _ in dyn]
    path_tag = "RUNPATH" if "RUNPATH" in tags else "RPATH" if "RPATH" in tags else "RUNPATH"
    cur = next((v for t, v in dyn if t == path_tag), None)
    out = list(dyn)

    def set_path(value, tag):
        nonlocal out
        idx = [i for i, (t, _) in enumerate(out) if t in ("RPATH", "RUNPATH")]
        keep = [e for e in out if e[0] not in ("RPATH", "RUNPATH")]
        if value is None:
            out = keep
            return
        at = idx[0] if idx else len(keep)
        if not idx:
            at = max([i + 1 for i, (t, _) in enumerate(keep) if t in ("NEEDED", "SONAME")] or [0])
        keep.insert(min(at, len(keep)), (tag, value))
        out = keep

    # A search path written is DT_RUNPATH without --force-rpath, a DT_RPATH converted (as patchelf does).
    if name.startswith("set-rpath"):
        set_path(args[1], "RUNPATH")
    elif name == "add-rpath":
        set_path((cur + ":" if cur else "") + args[1], "RUNPATH")
    elif name == "remove-rpath":
        set_path(None, path_tag)
    elif name == "force-rpath":
        set_path(args[2], "RPATH")
    elif name == "set-soname":
        if "SONAME" in tags:
            out = [(t, args[1] if t == "SONAME" else v) for t, v in out]
        else:
            at = max([i + 1 for i, (t, _) in enumerate(out) if t == "NEEDED"] or [0])
            out.insert(at, ("SONAME", args[1]))
    elif name == "add-needed":
        at = tags.index("NEEDED") if "NEEDED" in tags else 0
        out.insert(at, ("NEEDED", args[1]))
    elif name == "replace-needed":
        out = [(t, args[2] if t == "NEEDED" and v == args[1] else v) for t, v in out]
    elif name == "remove-needed":
        out = [(t, v) for t, v in out if not (t == "NEEDED" and v == args[1])]
    elif name == "combo":
        out = [(t, args[4] if t == "NEEDED" and v == args[3] else v) for t, v in out]
        dyn2 = out
        out = expected(dyn2, "set-rpath", args[:2])
        out = expected(out, "set-soname", ["--set-soname", args[6]])
    return out


def comparable(ents):
    """patchelf orders new entries its own way; the tags and their values must agree."""
    needed = [v for t, v in ents if t == "NEEDED"]
    soname = [v for t, v in ents if t == "SONAME"]
    # The search path the loader uses: DT_RUNPATH if there is one (patchelf may keep a DT_RPATH beside it).
    runpath = [("RUNPATH", v) for t, v in ents if t == "RUNPATH"]
    path = runpath or [("RPATH", v) for t, v in ents if t == "RPATH"]
    return needed, soname, path


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-patch-")
    failures = []
    n_files = n_ops = n_loaded = n_grew = 0
    try:
        files = collect(tmp)
        if QUICK:
            files = files[::4]
        libdirs = [os.path.join(SYSROOT, "usr/lib/x86_64-linux-gnu"), os.path.join(SYSROOT, "lib/x86_64-linux-gnu")]
        for path in files:
            typ, mach = elf_kind(path)
            if typ != "DYN":
                continue
            n_files += 1
            dyn = dynamic(path)
            base_errs = elflint_errors(path)
            x86 = mach.startswith("Advanced Micro Devices X86-64")
            loaded_before = loads(path, libdirs)[0] if x86 else False
            for name, kargs, pargs in ops_for(dyn):
                n_ops += 1
                work = os.path.join(tmp, "work")
                shutil.rmtree(work, ignore_errors=True)
                os.makedirs(work)
                kout = os.path.join(work, os.path.basename(path))
                pout = os.path.join(work, "pe-" + os.path.basename(path))
                r = run([KWHEEL, "patch", "-v", "-o", kout] + kargs + [path])
                tag = f"{os.path.relpath(path, tmp)} [{name}]"
                if r.returncode != 0:
                    failures.append(f"{tag}: kwheel patch failed: {r.stderr.strip()}")
                    continue
                n_grew += "grown" in r.stderr
                got = dynamic(kout)
                want = expected(dyn, name, kargs)
                if got != want:
                    failures.append(f"{tag}: dynamic entries {got} != expected {want}")
                shutil.copy(path, pout)
                # one patchelf call per edit: its option parser mixes up several edits of different kinds
                for g in pargs:
                    pr = run(["patchelf"] + g + [pout])
                    if pr.returncode != 0:
                        break
                if pr.returncode == 0:
                    pe = dynamic(pout)
                    a, b = comparable(got), comparable(pe)
                    if name == "add-needed":
                        # patchelf appends new DT_NEEDED entries at the front as well; order of the rest kept
                        a = (sorted(a[0]), a[1], a[2])
                        b = (sorted(b[0]), b[1], b[2])
                    if a != b:
                        failures.append(f"{tag}: differs from patchelf: kwheel {a} patchelf {b}")
                new_errs = elflint_errors(kout) - base_errs
                if new_errs:
                    failures.append(f"{tag}: new eu-elflint errors: {sorted(new_errs)[:3]}")
                if x86 and loaded_before and name not in ("add-needed", "remove-needed"):
                    if name in ("replace-needed", "combo"):
                        # the renamed library is provided under its new name
                        first = [v for t, v in dyn if t == "NEEDED"][0]
                        new = kargs[kargs.index("--replace-needed") + 2]
                        for d in libdirs + ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"]:
                            if os.path.exists(os.path.join(d, first)):
                                os.symlink(os.path.realpath(os.path.join(d, first)), os.path.join(work, new))
                                break
                    ok, why = loads(kout, libdirs + [work])
                    n_loaded += ok
                    if not ok:
                        failures.append(f"{tag}: loaded before, not after: {why}")
        print(f"{n_files} objects, {n_ops} operations, {n_grew} grew a segment, {n_loaded} patched files loaded")
        for f in failures:
            print("FAIL", f)
        if n_files < 20:
            print("FAIL too few objects found: corpus missing?")
            return 1
        return 1 if failures else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
