#!/usr/bin/env python3
"""`kwheel patch --in-place`: the edit written into the file itself, the same bytes as the atomic way.

For every shared object of the corpus sysroot and of the system's library directory (the first 100, by
name) and three edit sets (a growing --set-rpath with --replace-needed, --remove-rpath, a longer
--set-soname):
  - the file edited in place is byte for byte what `-o` writes from the same input (cmp);
  - it is the same inode: a hard link to it shows the edit, and its mode, owner and a user extended
    attribute are what they were;
  - `eu-elflint --gnu-ld` reports no error the input did not have, and what loaded before (ctypes)
    still loads.
And the failures, each leaving the file's bytes as they were: a refused edit (a cut ELF file, exit 2),
--in-place with --output (a usage error), a growing edit that cannot extend the file (RLIMIT_FSIZE at
its size: the appended bytes are cut off again), and a running program (ETXTBSY).
usage: check-in-place.py KWHEEL CORPUS
"""
import glob
import os
import resource
import signal
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run  # noqa: E402

KWHEEL, CORPUS = sys.argv[1], sys.argv[2]
LONG = "$ORIGIN/../" + "/".join("an-in-place-directory-%d" % i for i in range(10)) + ":$ORIGIN"


def shared_objects():
    out = []
    dirs = [os.path.join(CORPUS, "sysroot", "usr", "lib", "x86_64-linux-gnu"), "/usr/lib/x86_64-linux-gnu"]
    for d in dirs:
        picked = []
        for p in sorted(glob.glob(os.path.join(d, "*.so*"))):
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                h = f.read(18)
            if h[:4] == b"\x7fELF" and h[16] == 3:
                picked.append(p)
        out += picked[:100]
    return out


def needed(path):
    d = run(["readelf", "-dW", path]).stdout
    for line in d.splitlines():
        if "(NEEDED)" in line:
            return line.split("[", 1)[1].rstrip("]")
    return None


def elflint_errors(path):
    r = run(["eu-elflint", "--gnu-ld", "-q", path])
    return set(line.replace(path, "F") for line in r.stdout.splitlines())


def loads(path):
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(path))
    return run(["/usr/bin/python3", "-c", "import ctypes,sys; ctypes.CDLL(sys.argv[1])", path], env=env).returncode == 0


def main():
    libs = shared_objects()
    check(len(libs) >= 80, f"{len(libs)} shared objects to edit")
    with tempfile.TemporaryDirectory() as tmp:
        bad = []
        for i, src in enumerate(libs):
            n = needed(src)
            edits = [["--set-rpath", LONG] + (["--replace-needed", n, "kwtest-" + n] if n else []),
                     ["--remove-rpath"],
                     ["--set-soname", "libkwheel-in-place-test-with-a-long-soname.so.%d" % i]]
            for k, ops in enumerate(edits):
                work = os.path.join(tmp, f"{i}-{k}")
                os.makedirs(work)
                f = os.path.join(work, os.path.basename(src))
                shutil.copyfile(src, f)
                os.chmod(f, 0o751)
                os.link(f, f + ".link")
                try:
                    os.setxattr(f, "user.kwheel-test", b"kept")
                    xattr = True
                except OSError:
                    xattr = False
                before = os.stat(f)
                ref = os.path.join(work, "ref")
                r1 = run([KWHEEL, "patch"] + ops + ["-o", ref, src])
                r2 = run([KWHEEL, "patch", "--in-place"] + ops + [f])
                after = os.stat(f)
                what = f"{os.path.basename(src)} {ops[0]}"
                if r1.returncode != 0 or r2.returncode != 0:
                    bad.append(f"{what}: exit {r1.returncode}/{r2.returncode} {r1.stderr.strip()}{r2.stderr.strip()}")
                    continue
                with open(f, "rb") as a, open(ref, "rb") as b, open(f + ".link", "rb") as c:
                    got, want, link = a.read(), b.read(), c.read()
                if got != want:
                    bad.append(f"{what}: in place differs from -o")
                elif link != got:
                    bad.append(f"{what}: the hard link does not show the edit")
                elif (after.st_ino, after.st_mode, after.st_uid, after.st_gid) != \
                        (before.st_ino, before.st_mode, before.st_uid, before.st_gid):
                    bad.append(f"{what}: inode, mode or owner changed")
                elif xattr and os.getxattr(f, "user.kwheel-test") != b"kept":
                    bad.append(f"{what}: the extended attribute was lost")
                elif k == 0 and elflint_errors(f) - elflint_errors(src):
                    bad.append(f"{what}: new eu-elflint errors {sorted(elflint_errors(f) - elflint_errors(src))[:2]}")
                elif k != 0 and loads(src) and not loads(f):
                    bad.append(f"{what}: loaded before, not after")
                shutil.rmtree(work)
        check(not bad, f"{3 * len(libs)} edits in place: the bytes of -o, same inode, mode, owner, xattr; "
                       f"elflint clean, still loads {bad[:3]}")

        src = os.path.realpath("/usr/lib/x86_64-linux-gnu/libz.so.1")
        f = os.path.join(tmp, "libz.so.1")

        # A refused edit: a cut file stays as it was.
        with open(src, "rb") as a:
            cut = a.read()[:3000]
        with open(f, "wb") as o:
            o.write(cut)
        r = run([KWHEEL, "patch", "--in-place", "--set-rpath", LONG, f])
        with open(f, "rb") as a:
            check(r.returncode == 2 and a.read() == cut and r.stderr.count("\n") == 1,
                  f"a cut ELF file: exit 2, one line, file unchanged ({r.returncode}: {r.stderr.strip()})")

        # Not with --output.
        shutil.copyfile(src, f)
        r = run([KWHEEL, "patch", "--in-place", "--set-rpath", LONG, "-o", f + ".out", f])
        with open(f, "rb") as a, open(src, "rb") as b:
            check(r.returncode != 0 and a.read() == b.read() and not os.path.exists(f + ".out"),
                  f"--in-place with --output: refused ({r.returncode}), nothing written")

        # A growing edit that cannot extend the file: the tail is cut off again.
        size = os.path.getsize(f)

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, size + 100))
        r = subprocess.run([KWHEEL, "patch", "--in-place", "--set-rpath", LONG * 4, f], capture_output=True,
                           text=True, preexec_fn=limit)
        with open(f, "rb") as a, open(src, "rb") as b:
            check(r.returncode != 0 and a.read() == b.read(),
                  f"no room to grow (RLIMIT_FSIZE): an error ({r.returncode}: {r.stderr.strip()}), file unchanged")

        # A running program cannot be written in place; replacing it still works.
        prog = os.path.join(tmp, "sleep")
        shutil.copyfile("/bin/sleep", prog)
        os.chmod(prog, 0o755)
        with open(prog, "rb") as a:
            orig = a.read()
        p = subprocess.Popen([prog, "30"])
        try:
            r = run([KWHEEL, "patch", "--in-place", "--set-rpath", LONG, prog])
            with open(prog, "rb") as a:
                check(r.returncode != 0 and "busy" in r.stderr and a.read() == orig,
                      f"a running program: refused in place ({r.stderr.strip()}), unchanged")
            r = run([KWHEEL, "patch", "--set-rpath", LONG, prog])
            check(r.returncode == 0 and LONG in run(["readelf", "-dW", prog]).stdout,
                  "a running program: replaced by the default way")
        finally:
            p.kill()
            p.wait()
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
