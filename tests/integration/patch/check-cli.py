#!/usr/bin/env python3
"""`kwheel patch` as a command: layouts patchelf gets wrong, bad input, atomicity.

Builds its inputs from fixtures/patch/*.c with the system compiler:
  - a library linked for 64 KiB pages: after growth the new segment keeps
    that alignment and the library still loads;
  - a library whose section headers are removed (the loader never reads
    them): it is patched through the program headers alone;
  - an executable (PT_PHDR, PT_INTERP) given an RPATH to find its library:
    it runs;
  - in-place edits when the new string fits: same size, no new segment;
  - --print-* against readelf; bad and truncated files: one clear error line,
    exit 2, file unchanged, no temporary left behind;
  - FIFOs, directories and devices: refused at once as not regular files.
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, sha  # noqa: E402

KWHEEL = sys.argv[1]
SRC = os.path.join(os.environ.get("KW_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                   "fixtures", "patch")
def kw(*args, **kwargs):
    return run([KWHEEL, "patch"] + list(args), **kwargs)


def readelf_d(p):
    return run(["readelf", "-dW", p]).stdout


def loads_ok(lib, env_dirs=()):
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(env_dirs))
    r = run(["/usr/bin/python3", "-c",
             "import ctypes,sys; l=ctypes.CDLL(sys.argv[1]); print(l.kwfix_answer())", lib], env=env)
    return r.returncode == 0 and r.stdout.strip() == "42", r.stderr.strip()


def loads(p):
    h = run(["readelf", "-lW", p]).stdout
    return [l.split() for l in h.splitlines() if l.strip().startswith("LOAD")]


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-patch-cli-")
    try:
        lib = os.path.join(tmp, "libkwfix.so")
        lib64k = os.path.join(tmp, "libkwfix64k.so")
        cc = ["cc", "-shared", "-fPIC", "-O1", os.path.join(SRC, "libkwfix.c"), "-lz"]
        r1 = run(cc + ["-o", lib, "-Wl,-soname,libkwfix.so"])
        r2 = run(cc + ["-o", lib64k, "-Wl,-z,max-page-size=0x10000,-z,common-page-size=0x10000"])
        check(r1.returncode == 0 and r2.returncode == 0, "fixtures compile " + r1.stderr + r2.stderr)

        # --print-* against readelf
        r = kw("--print-soname", "--print-needed", lib)
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", readelf_d(lib))
        check(r.returncode == 0 and r.stdout.split("\n")[:-1] == ["libkwfix.so"] + needed,
              f"--print-soname --print-needed match readelf ({r.stdout!r})")
        r = kw("--print-interpreter", "/bin/ls")
        interp = re.search(r"interpreter: (.*)\]", run(["readelf", "-lW", "/bin/ls"]).stdout).group(1)
        check(r.stdout.strip() == interp, "--print-interpreter matches readelf")

        # 64 KiB pages: alignment of the new segment follows the file's own
        out = os.path.join(tmp, "grown64k.so")
        r = kw("-v", "--set-rpath", "/x" * 300, "-o", out, lib64k)
        segs = loads(out)
        new = segs[-1]
        off, vaddr, align = int(new[1], 16), int(new[2], 16), int(new[7], 16)
        check(r.returncode == 0 and "grown" in r.stderr, "long rpath grows the 64 KiB-page library")
        check(align == 0x10000 and off % align == vaddr % align,
              f"new PT_LOAD keeps 64 KiB alignment and congruence ({new})")
        check(run(["eu-elflint", "--gnu-ld", out]).stdout.strip() == "No errors", "eu-elflint clean on 64 KiB file")
        ok, why = loads_ok(out)
        check(ok, "64 KiB-page library loads after growth " + why)

        # In place: a shorter soname fits over the old one
        out = os.path.join(tmp, "inplace.so")
        r = kw("-v", "--set-soname", "libkw.so", "-o", out, lib)
        check("edited in place" in r.stderr and os.path.getsize(out) == os.path.getsize(lib),
              f"short soname edited in place, same size ({r.stderr.strip()})")
        check("[libkw.so]" in readelf_d(out), "new soname visible")
        ok, why = loads_ok(out)
        check(ok, "in-place edited library loads " + why)

        # Several edits in one call, one rewrite
        out = os.path.join(tmp, "multi.so")
        r = kw("--set-soname", "libkwfix-0123abcd.so", "--add-needed", "libm.so.6", "--set-rpath", "$ORIGIN/a:$ORIGIN/b",
               "--force-rpath", "-o", out, lib)
        d = readelf_d(out)
        check(r.returncode == 0 and "(RPATH)" in d and "$ORIGIN/a:$ORIGIN/b" in d and "[libm.so.6]" in d
              and "[libkwfix-0123abcd.so]" in d, "several edits in one call")
        ok, why = loads_ok(out)
        check(ok, "multi-edited library loads " + why)

        # No section headers at all: the loader does not need them, neither do we
        nosh = os.path.join(tmp, "nosh.so")
        with open(lib, "rb") as f:
            b = bytearray(f.read())
        b[0x28:0x30] = b"\0" * 8
        b[0x3c:0x40] = b"\0" * 4  # e_shnum, e_shstrndx
        with open(nosh, "wb") as f:
            f.write(b)
        out = os.path.join(tmp, "nosh-patched.so")
        r = kw("--set-rpath", "/y" * 200, "--replace-needed", "libz.so.1", "libz-kw.so.1", "-o", out, nosh)
        check(r.returncode == 0, "file without section headers patched " + r.stderr)
        zdir = os.path.join(tmp, "zdir")
        os.makedirs(zdir)
        real_z = run(["/usr/bin/python3", "-c", "import ctypes.util;print(ctypes.util.find_library('z'))"]).stdout.strip()
        for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"):
            if os.path.exists(os.path.join(d, "libz.so.1")):
                os.symlink(os.path.realpath(os.path.join(d, "libz.so.1")), os.path.join(zdir, "libz-kw.so.1"))
                break
        ok, why = loads_ok(out, [zdir])
        check(ok and real_z != "", "section-less library loads with its renamed dependency " + why)
        vn_before = run(["readelf", "-VW", lib]).stdout
        if "File: libz.so.1" in vn_before:
            # readelf needs section headers to show version needs: check on a copy that has them
            out2 = os.path.join(tmp, "vn.so")
            kw("--replace-needed", "libz.so.1", "libz-kw.so.1", "-o", out2, lib)
            vn_after = run(["readelf", "-VW", out2]).stdout
            check("File: libz-kw.so.1" in vn_after and "File: libz.so.1" not in vn_after,
                  "version needs follow the rename")

        # An executable: RPATH added after linking makes it find its library
        exe = os.path.join(tmp, "kwfix-main")
        libdir = os.path.join(tmp, "libdir")
        os.makedirs(libdir)
        shutil.copy(lib, os.path.join(libdir, "libkwfix.so"))
        r = run(["cc", "-O1", os.path.join(SRC, "main.c"), "-o", exe, "-L" + libdir, "-lkwfix"])
        check(r.returncode == 0, "executable fixture links " + r.stderr)
        before = run([exe])
        check(before.returncode != 0, "executable does not run before its RPATH is set")
        r = kw("--set-rpath", "$ORIGIN/libdir:" + "/nonexistent/dir" * 40, exe)
        after = run([exe])
        check(r.returncode == 0 and after.returncode == 0 and after.stdout.startswith("42 "),
              f"executable runs after in-place RPATH growth ({after.stderr.strip()})")
        check(run(["eu-elflint", "--gnu-ld", exe]).stdout.strip() == "No errors", "eu-elflint clean on executable")
        check(os.access(exe, os.X_OK), "mode kept on in-place rewrite")

        # Bad input: clear error, exit 2, file untouched, no temporary left
        bad_dir = os.path.join(tmp, "bad")
        os.makedirs(bad_dir)
        cases = {
            "empty.so": b"",
            "text.so": b"not an elf file at all\n",
            "trunc.so": open(lib, "rb").read()[:200],
            "phoff.so": None,
        }
        b = bytearray(open(lib, "rb").read())
        struct.pack_into("<Q", b, 0x20, len(b) + 4096)  # e_phoff past the end
        cases["phoff.so"] = bytes(b)
        for name, data in cases.items():
            p = os.path.join(bad_dir, name)
            with open(p, "wb") as f:
                f.write(data)
            h = sha(p)
            r = kw("--set-rpath", "$ORIGIN", p)
            lines = r.stderr.strip().splitlines()
            check(r.returncode == 2 and len(lines) == 1 and name in lines[0],
                  f"{name}: exit 2 and one error line naming the file ({r.returncode}, {r.stderr.strip()!r})")
            check(sha(p) == h, f"{name}: input unchanged")
        check(sorted(os.listdir(bad_dir)) == sorted(cases), "no temporary files left behind")

        # Not regular files: refused before anything could block on them (a FIFO's open
        # waits for a writer), one error line, exit 2, nothing left beside them
        odd_dir = os.path.join(tmp, "odd")
        os.makedirs(odd_dir)
        fifo = os.path.join(odd_dir, "libfifo.so")
        os.mkfifo(fifo)
        for what, path in (("FIFO", fifo), ("directory", odd_dir), ("character device", "/dev/null")):
            for args in (["--set-rpath", "$ORIGIN"], ["--print-needed"], ["--shrink-rpath"],
                         ["-o", os.path.join(tmp, "fifo-out.so"), "--set-soname", "x"]):
                try:
                    r = kw(*args, path, timeout=20)
                except subprocess.TimeoutExpired:
                    check(False, f"{what}: patch {' '.join(args)} returns (it hung)")
                    continue
                lines = r.stderr.strip().splitlines()
                check(r.returncode == 2 and len(lines) == 1 and f"'{path}': not a regular file" in lines[0]
                      and not r.stdout, f"{what}: patch {' '.join(args)}: exit 2, one line 'not a regular file' "
                      f"({r.returncode}, {r.stderr.strip()!r})")
        check(sorted(os.listdir(odd_dir)) == ["libfifo.so"] and not os.path.exists(os.path.join(tmp, "fifo-out.so")),
              "nothing written beside the FIFO or for -o")

        # Usage errors
        check(kw(lib).returncode == 3, "no operation is a usage error")
        check(kw("--replace-needed", "libz.so.1").returncode == 3, "--replace-needed needs two names")
        check(kw("-o", "x", "--set-soname", "a", lib, lib).returncode == 3, "--output takes one input")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
