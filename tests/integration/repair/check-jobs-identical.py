#!/usr/bin/env python3
"""`kwheel repair -j N` writes the bytes `-j 1` writes, though one wheel's grafts and members are worked on N threads.

Every corpus Debian wheel (its libraries from the corpus sysroot) and a big wheel (testlib.big_wheel: 14 ELF members whose closure of about 45
libraries is grafted, ICU's 30 MB data among them) are repaired with -j 1, 2 and 4 (SOURCE_DATE_EPOCH
fixed): each output wheel is the same file (cmp), each report the same text, and the big one still
loads: every grafted ELF member's closure resolves inside the unpacked wheel (ldd finds no host path
outside the wheel for a grafted name).

usage: check-jobs-identical.py KWHEEL CORPUS
"""
import filecmp
import glob
import os
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import big_wheel, check, failures, run  # noqa: E402

KWHEEL, CORPUS = sys.argv[1], sys.argv[2]
# The Debian wheels' libraries come from the corpus sysroot, not from whatever the host has installed.
LIBPATH = ":".join(os.path.join(CORPUS, "sysroot", d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"))


def main():
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    wheels = sorted(glob.glob(os.path.join(CORPUS, "wheels", "debian", "*.whl")))
    with tempfile.TemporaryDirectory() as tmp:
        big = big_wheel(os.path.join(tmp, "bigpkg-1.0-cp311-cp311-linux_x86_64.whl"))
        for w in wheels + [big]:
            name = os.path.basename(w)
            outs = {}
            for j in (1, 2, 4):
                d = os.path.join(tmp, f"j{j}-{name}")
                r = run([KWHEEL, "repair", "-j", str(j), "--library-path", LIBPATH, "-w", d, w], env=env)
                made = sorted(os.listdir(d)) if os.path.isdir(d) else []
                outs[j] = (r.returncode, r.stdout.replace(d, "OUT"), made, d)
            one = outs[1]
            ok = one[0] == 0 and len(one[2]) == 1
            for j in (2, 4):
                ok = ok and outs[j][:3] == one[:3] and filecmp.cmp(os.path.join(outs[j][3], outs[j][2][0]),
                                                                 os.path.join(one[3], one[2][0]), shallow=False)
            check(ok, f"{name}: -j 2 and -j 4 write -j 1's wheel (cmp) and report ({one[2]})")
        d = os.path.join(tmp, f"j4-{os.path.basename(big)}")
        out = os.path.join(d, os.listdir(d)[0])
        root = os.path.join(tmp, "unpacked")
        with zipfile.ZipFile(out) as z:
            z.extractall(root)
            grafted = {os.path.basename(n) for n in z.namelist() if n.startswith("bigpkg.libs/")}
        bad = []
        for so in sorted(glob.glob(os.path.join(root, "bigpkg", "*.so"))):
            r = run(["ldd", so])
            for line in r.stdout.splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[1] == "=>" and parts[0] in grafted and not parts[2].startswith(root):
                    bad.append(f"{os.path.basename(so)}: {line.strip()}")
        check(len(grafted) > 40 and not bad, f"-j 4's big wheel: {len(grafted)} grafted libraries, each member "
              f"binds them inside the wheel (ldd) {bad[:3]}")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
