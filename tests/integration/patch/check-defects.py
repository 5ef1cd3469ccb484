#!/usr/bin/env python3
"""`kwheel patch` defects patchelf does not have, one section each, all checked against real oracles.

  - the replaced file keeps its owner and group (set-uid dropped if it cannot);
  - -o through a symbolic link replaces the link's target and keeps the link;
    -o to a character device writes through it instead of replacing the node;
  - --set-rpath on a DT_RPATH file writes DT_RUNPATH unless --force-rpath;
  - --shrink-rpath keeps only the first directory that provides each library;
  - growing an executable with a large .bss adds about what it writes, and
    the program still runs;
  - successive growing edits reuse kwheel's own segment: one PT_LOAD, not one each.
"""
import os
import re
import shutil
import stat
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


def elflint_clean(p):
    return run(["eu-elflint", "--gnu-ld", p]).stdout.strip() == "No errors"


def loads(p):
    return [l for l in run(["readelf", "-lW", p]).stdout.splitlines() if l.strip().startswith("LOAD")]


def build_lib(tmp, name, extra=()):
    out = os.path.join(tmp, name)
    r = run(["cc", "-shared", "-fPIC", "-O1", os.path.join(SRC, "libkwfix.c"), "-lz", "-o", out,
             "-Wl,-soname," + name] + list(extra))
    check(r.returncode == 0, f"{name} compiles " + r.stderr)
    return out


def files_section(tmp, lib):
    # Owner and group of the file replaced (in place), and of an existing -o target.
    if os.geteuid() == 0:
        p = os.path.join(tmp, "owned.so")
        shutil.copy(lib, p)
        os.chown(p, 65534, 65534)
        os.chmod(p, 0o755)
        r = kw("--set-rpath", "/owned" * 80, p)
        st = os.stat(p)
        check(r.returncode == 0 and (st.st_uid, st.st_gid) == (65534, 65534) and stat.S_IMODE(st.st_mode) == 0o755,
              f"in-place edit keeps owner, group and mode ({st.st_uid}:{st.st_gid} {oct(st.st_mode)})")
        o = os.path.join(tmp, "owned-out.so")
        shutil.copy(lib, o)
        os.chown(o, 65534, 65533)
        r = kw("--set-soname", "libo.so", "-o", o, lib)
        st = os.stat(o)
        check(r.returncode == 0 and (st.st_uid, st.st_gid) == (65534, 65533) and "[libo.so]" in readelf_d(o),
              f"-o over an existing file keeps its owner and group ({st.st_uid}:{st.st_gid})")
    else:
        print("skip owner checks: not root")

    # A symbolic link: in place and as -o, the link stays, its target changes.
    real = os.path.join(tmp, "real.so")
    link = os.path.join(tmp, "link.so")
    shutil.copy(lib, real)
    os.symlink("real.so", link)
    r = kw("--set-rpath", "/via/link" * 50, link)
    check(r.returncode == 0 and os.path.islink(link) and "/via/link" in readelf_d(real),
          f"in-place edit through a symlink edits the target, keeps the link ({r.stderr.strip()})")
    link2 = os.path.join(tmp, "link2.so")
    os.symlink("real.so", link2)
    r = kw("--set-soname", "libvia.so", "-o", link2, lib)
    check(r.returncode == 0 and os.path.islink(link2) and "[libvia.so]" in readelf_d(real),
          f"-o to a symlink writes its target, keeps the link ({r.stderr.strip()})")
    check(not [f for f in os.listdir(tmp) if ".kwheel-" in f], "no temporary left beside them")

    # A character device (a private node of /dev/null's kind): written through, the node stays.
    if os.geteuid() == 0:
        null = os.path.join(tmp, "null")
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        r = kw("--set-rpath", "/dev/null/x" * 40, "-o", null, lib)
        check(r.returncode == 0 and stat.S_ISCHR(os.lstat(null).st_mode),
              f"-o to a character device writes through, the node stays ({r.returncode} {r.stderr.strip()})")
    # A private link of /dev/stdout's kind, to the pipe that is standard output here.
    out = os.path.join(tmp, "stdout")
    os.symlink("/proc/self/fd/1", out)
    r = subprocess.run([KWHEEL, "patch", "--set-soname", "libstdout.so", "-o", out, lib], capture_output=True)
    check(r.returncode == 0 and r.stdout[:4] == b"\x7fELF" and b"libstdout.so" in r.stdout and os.path.islink(out),
          "-o through a link to a pipe writes the ELF into the pipe")
    # A directory at the output path: refused, one line, exit 2.
    d = os.path.join(tmp, "adir")
    os.mkdir(d)
    r = kw("--set-soname", "x", "-o", d, lib)
    check(r.returncode == 2 and "not a regular file" in r.stderr and os.path.isdir(d), "-o to a directory refused")


def dyn_tags(p):
    return re.findall(r"\((RPATH|RUNPATH)\)\s+Library (?:rpath|runpath): \[(.*)\]", readelf_d(p))


def rpath_section(tmp):
    # A library linked with DT_RPATH: --set-rpath writes DT_RUNPATH, as patchelf does.
    old = build_lib(tmp, "librp.so", ["-Wl,--disable-new-dtags,-rpath,/old/rpath"])
    check(dyn_tags(old) == [("RPATH", "/old/rpath")], "fixture has DT_RPATH only")
    for args, want in ((["--set-rpath", "/new"], [("RUNPATH", "/new")]),
                       (["--set-rpath", "/a/much/longer/path" * 20], [("RUNPATH", "/a/much/longer/path" * 20)]),
                       (["--add-rpath", "/more"], [("RUNPATH", "/old/rpath:/more")]),
                       (["--remove-rpath", "--set-rpath", "/r"], [("RUNPATH", "/r")]),
                       (["--force-rpath", "--set-rpath", "/f"], [("RPATH", "/f")])):
        out = os.path.join(tmp, "rp-out.so")
        r = kw(*args, "-o", out, old)
        got = dyn_tags(out)
        check(r.returncode == 0 and got == want and elflint_clean(out), f"{' '.join(args)[:40]} on DT_RPATH: {got}")
    runp = build_lib(tmp, "librn.so", ["-Wl,--enable-new-dtags,-rpath,/old/runpath"])
    out = os.path.join(tmp, "rn-out.so")
    r = kw("--force-rpath", "--set-rpath", "/f", "-o", out, runp)
    check(r.returncode == 0 and dyn_tags(out) == [("RPATH", "/f")], "--force-rpath turns DT_RUNPATH into DT_RPATH")

    # --shrink-rpath: each library counts in the first directory that provides it only.
    z = None
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64"):
        if os.path.exists(os.path.join(d, "libz.so.1")):
            z = os.path.realpath(os.path.join(d, "libz.so.1"))
            break
    dirs = [os.path.join(tmp, n) for n in ("first", "empty", "second")]
    for d in dirs:
        os.makedirs(d)
    for d in (dirs[0], dirs[2]):
        shutil.copy(z, os.path.join(d, "libz.so.1"))
    lib = build_lib(tmp, "libshrink.so", ["-Wl,-rpath," + ":".join(dirs)])
    r = kw("--shrink-rpath", lib)
    got = dyn_tags(lib)
    check(r.returncode == 0 and got == [("RUNPATH", dirs[0])],
          f"--shrink-rpath keeps only the first directory providing libz ({got})")


def phdrs(p):
    """(type, offset, vaddr, filesz, memsz) of each program header, by readelf."""
    out = []
    for l in run(["readelf", "-lW", p]).stdout.splitlines():
        w = l.split()
        if len(w) >= 7 and w[1].startswith("0x") and w[2].startswith("0x"):
            out.append((w[0], int(w[1], 16), int(w[2], 16), int(w[4], 16), int(w[5], 16)))
    return out


def phdr_where_old_kernels_look(p):
    """Kernels before 5.18 take AT_PHDR as first PT_LOAD's p_vaddr - p_offset + e_phoff: PT_PHDR must agree."""
    ph = phdrs(p)
    load = next(h for h in ph if h[0] == "LOAD")
    tab = next((h for h in ph if h[0] == "PHDR"), None)
    return tab is not None and tab[2] == load[2] - load[1] + tab[1]


def layout_section(tmp, lib):
    # Executables with a big .bss: the file grows by what the edit adds, and the program runs.
    for name, flags, mib in (("bss-nopie", ["-no-pie"], 16), ("bss-pie", ["-pie", "-fPIE"], 100)):
        exe = os.path.join(tmp, name)
        r = run(["cc", "-O1", f"-DBSS_MIB={mib}", os.path.join(SRC, "bss.c"), "-o", exe] + flags)
        check(r.returncode == 0, f"{name} compiles " + r.stderr)
        out = exe + ".out"
        r = kw("-v", "--set-rpath", "/grow" * 100, "-o", out, exe)
        ok = r.returncode == 0 and os.path.exists(out)
        grown = os.path.getsize(out) - os.path.getsize(exe) if ok else -1
        check(ok and 0 < grown < 4096, f"{name} ({mib} MiB .bss): grows by {grown} bytes ({r.stderr.strip()})")
        if not ok:
            continue
        rr = run([out])
        check(rr.returncode == 0 and rr.stdout == "bss 1\n", f"{name} runs after growing ({rr.stderr.strip()})")
        check(elflint_clean(out), f"{name}: eu-elflint clean")
        check(phdr_where_old_kernels_look(out), f"{name}: the program headers stay where pre-5.18 kernels look")

    # 30 growing edits in turn: kwheel's own segment grows, one PT_LOAD in all.
    for name, path in (("library", lib), ("executable", os.path.join(tmp, "bss-pie"))):
        work = os.path.join(tmp, "many-" + os.path.basename(path))
        shutil.copy(path, work)
        before = len(loads(work))
        rcs = [kw("--set-rpath", "/r" + "z" * (20 * i), work).returncode for i in range(1, 31)]
        after = len(loads(work))
        check(set(rcs) == {0} and after == before + 1,
              f"{name}: 30 growing edits leave {after} PT_LOADs (was {before})")
        check(elflint_clean(work), f"{name}: eu-elflint clean after 30 edits")
        check(os.path.getsize(work) - os.path.getsize(path) < 16 * 1024,
              f"{name}: 30 edits grew it by {os.path.getsize(work) - os.path.getsize(path)} bytes")
        if name == "library":
            rr = run(["/usr/bin/python3", "-c", "import ctypes,sys; print(ctypes.CDLL(sys.argv[1]).kwfix_answer())", work])
            check(rr.stdout.strip() == "42", "library loads after 30 edits " + rr.stderr.strip())
        else:
            rr = run([work])
            check(rr.returncode == 0 and phdr_where_old_kernels_look(work), "executable runs after 30 edits")


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-patch-defects-")
    try:
        lib = build_lib(tmp, "libkwfix.so")
        files_section(tmp, lib)
        rpath_section(tmp)
        layout_section(tmp, lib)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
