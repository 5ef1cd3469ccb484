#!/usr/bin/env python3
"""`kwheel km -j N` writes the bytes `-j 1` writes, though one wheel's objects are delinked and its archive's
symbols read on N threads.

Every corpus Debian wheel (its libraries from the corpus sysroot) is converted with --deps in one run with
-j 1, 2 and 4 (so later wheels reuse earlier wheels' objects while their own convert): each run's report, and
each output file (archives, link files, objects; manifests with the output directory's name put back) are
the same bytes. binutils' `ar t` and `nm -s` are the oracle of each archive: its members are the objects of
its directory, in order, and its index names each member's defined globals.

usage: check-jobs-identical.py KWHEEL CORPUS
"""
import filecmp
import glob
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run  # noqa: E402

KWHEEL, CORPUS = sys.argv[1], sys.argv[2]
LIBPATH = ":".join(os.path.join(CORPUS, "sysroot", d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"))


def tree(d):
    """Every file under d, relative, sorted."""
    out = []
    for root, _, files in os.walk(d):
        out += [os.path.relpath(os.path.join(root, f), d) for f in files]
    return sorted(out)


def same_file(a, b, da, db):
    if a.endswith(".km.json") or a.endswith(".km.link"):
        with open(a) as fa, open(b) as fb:
            return fa.read().replace(da, "OUT") == fb.read().replace(db, "OUT")
    return filecmp.cmp(a, b, shallow=False)


def main():
    wheels = sorted(glob.glob(os.path.join(CORPUS, "wheels", "debian", "*.whl")))
    check(len(wheels) >= 5, f"{len(wheels)} Debian corpus wheels")
    with tempfile.TemporaryDirectory() as tmp:
        outs = {}
        for j in (1, 2, 4):
            d = os.path.join(tmp, f"j{j}")
            r = run([KWHEEL, "km", "-j", str(j), "--deps", "--no-wheel", "--library-path", LIBPATH, "-o", d] + wheels)
            outs[j] = (r.returncode, r.stdout.replace(d, "OUT"), r.stderr.replace(d, "OUT"), d)
        one = outs[1]
        files = tree(one[3])
        check(one[0] == 0 and sum(f.endswith(".km.a") for f in files) >= 5,
              f"-j 1 converts every wheel: rc {one[0]}, {len(files)} files {one[2][-300:]}")
        for j in (2, 4):
            o = outs[j]
            check(o[:3] == one[:3], f"-j {j}: the report and exit code of -j 1")
            differ = [f for f in files if not os.path.exists(os.path.join(o[3], f))
                      or not same_file(os.path.join(one[3], f), os.path.join(o[3], f), one[3], o[3])]
            check(tree(o[3]) == files and not differ, f"-j {j}: -j 1's {len(files)} files, byte for byte {differ[:3]}")
        d = outs[4][3]
        n_archives = 0
        for a in sorted(glob.glob(os.path.join(d, "lib*.km.a"))):
            stem = os.path.basename(a)[3:-len(".km.a")]
            objdir = [p for p in glob.glob(os.path.join(d, "*.km")) if os.path.isdir(p)
                      and os.path.basename(p).rsplit("-", 1)[0] == stem]
            if len(objdir) != 1:
                continue
            n_archives += 1
            # A thin archive beside its objects: ar names each member by its path there.
            listed = run(["ar", "t", a]).stdout.split()
            members = [os.path.basename(m) for m in listed]
            with open(a, "rb") as f:
                check(f.read(8) == b"!<thin>\n", f"{os.path.basename(a)}: a thin archive")
            check(members == sorted(os.listdir(objdir[0])) and
                  all(os.path.samefile(m, os.path.join(objdir[0], b)) for m, b in zip(listed, members)),
                  f"{os.path.basename(a)}: ar t lists its directory's objects in order ({len(members)})")
            index = {}
            for line in run(["nm", "-s", a]).stdout.splitlines():
                if " in " in line and not line.startswith(" "):
                    sym, mem = line.rsplit(" in ", 1)
                    index.setdefault(os.path.basename(mem), set()).add(sym)
            bad = []
            for m in members:
                defined = {p[2] for p in (ln.split() for ln in run(["nm", "-g", "--defined-only",
                                                                      os.path.join(objdir[0], m)]).stdout.splitlines())
                           if len(p) == 3}
                if defined != index.get(m, set()):
                    bad.append(m)
            check(not bad, f"{os.path.basename(a)}: nm -s's index names each member's defined globals {bad[:3]}")
        check(n_archives >= 5, f"{n_archives} archives checked with ar and nm")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
