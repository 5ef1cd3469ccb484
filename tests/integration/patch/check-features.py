#!/usr/bin/env python3
"""patchelf 0.18's features in `kwheel patch`, and its command line under patchelf's name.

Built from fixtures/patch/*.c; readelf, eu-elflint and running the program are the oracles:
  - --set-interpreter shorter (in place) and longer (moved) than the old path: the program runs
    with the new path (a link to the real loader), eu-elflint clean;
  - --set-os-abi / --print-os-abi, --set-execstack / --clear-execstack / --print-execstack
    against readelf's header and PT_GNU_STACK;
  - --add-debug-tag (DT_DEBUG), --no-default-lib (DF_1_NODEFLIB), --page-size (new segment's p_align);
  - a dropped search path leaves no copy in the file (as with patchelf, for nix);
  - @FILE arguments, an argument larger than the kernel's per-argument limit;
  - a library whose PT_DYNAMIC was removed (its .dynamic section left): edited through the section;
  - invoked as patchelf: options after files, prints before edits, --version, exit 1 on errors;
  - no fsync by default, one per new file with --fsync (strace).
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run  # noqa: E402

KWHEEL = sys.argv[1]
SRC = os.path.join(os.environ.get("KW_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                   "fixtures", "patch")


def kw(*args, **kwargs):
    return run([KWHEEL, "patch"] + list(args), **kwargs)


def elflint_clean(p):
    return run(["eu-elflint", "--gnu-ld", p]).stdout.strip() == "No errors"


def interp_of(p):
    m = re.search(r"interpreter: (.*)\]", run(["readelf", "-lW", p]).stdout)
    return m.group(1) if m else None


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-patch-features-")
    try:
        exe = os.path.join(tmp, "prog")
        r = run(["cc", "-O1", "-DBSS_MIB=1", os.path.join(SRC, "bss.c"), "-o", exe])
        check(r.returncode == 0, "program compiles " + r.stderr)
        lib = os.path.join(tmp, "libkwfix.so")
        r = run(["cc", "-shared", "-fPIC", "-O1", os.path.join(SRC, "libkwfix.c"), "-lz", "-o", lib])
        check(r.returncode == 0, "library compiles " + r.stderr)
        real = os.path.realpath(interp_of(exe))

        # --set-interpreter: a shorter path (in place) and a longer one (moved to the new segment)
        short = os.path.join(tmp, "ld")
        os.symlink(real, short)
        long_dir = os.path.join(tmp, "a-long-directory-name" * 8)
        os.makedirs(long_dir)
        longp = os.path.join(long_dir, "ld-linux.so")
        os.symlink(real, longp)
        for name, path in (("short", short), ("long", longp)):
            out = os.path.join(tmp, "prog-" + name)
            r = kw("-v", "--set-interpreter", path, "-o", out, exe)
            if not check(r.returncode == 0 and os.path.exists(out), f"--set-interpreter {name} succeeds {r.stderr}"):
                continue
            rr = run([out])
            check(interp_of(out) == path and rr.returncode == 0 and rr.stdout == "bss 1\n",
                  f"--set-interpreter {name}: PT_INTERP is the new path and the program runs "
                  f"({r.stderr.strip()} {rr.stderr.strip()})")
            check(elflint_clean(out), f"--set-interpreter {name}: eu-elflint clean")
            p = kw("--print-interpreter", out)
            check(p.stdout.strip() == path, "--print-interpreter reads it back")
        r = kw("--set-interpreter", "/x", "-o", os.path.join(tmp, "x.so"), lib)
        check(r.returncode == 2 and "PT_INTERP" in r.stderr, "--set-interpreter on a library without PT_INTERP refused")

        # OS ABI and the stack
        out = os.path.join(tmp, "abi")
        r = kw("--set-os-abi", "FreeBSD", "-o", out, exe)
        h = run(["readelf", "-hW", out]).stdout
        check(r.returncode == 0 and re.search(r"OS/ABI:\s+UNIX - FreeBSD", h), "--set-os-abi FreeBSD, as readelf reads it")
        check(kw("--print-os-abi", out).stdout == "FreeBSD\n", "--print-os-abi FreeBSD")
        check(kw("--set-os-abi", "Plan 9", out).returncode == 3, "an unknown OS ABI is a usage error")
        for flag, want in (("--set-execstack", "RWE"), ("--clear-execstack", "RW ")):
            r = kw(flag, out)
            m = re.search(r"GNU_STACK.*(RWE|RW )", run(["readelf", "-lW", out]).stdout)
            check(r.returncode == 0 and m and m.group(1) == want, f"{flag}: PT_GNU_STACK flags {m and m.group(1)!r}")
        check(kw("--print-execstack", out).stdout == "execstack: -\n", "--print-execstack after clearing")

        # Dynamic flags and page size
        out = os.path.join(tmp, "flags.so")
        r = kw("--add-debug-tag", "--no-default-lib", "--page-size", "65536", "--set-rpath", "/p" * 300, "-o", out, lib)
        d = run(["readelf", "-dW", out]).stdout
        check(r.returncode == 0 and "(DEBUG)" in d and re.search(r"\(FLAGS_1\).*NODEFLIB", d),
              "--add-debug-tag and --no-default-lib: DT_DEBUG and DF_1_NODEFLIB")
        aligns = [int(l.split()[-1], 16) for l in run(["readelf", "-lW", out]).stdout.splitlines()
                  if l.strip().startswith("LOAD")]
        check(aligns[-1] == 65536, f"--page-size 65536: the new segment is aligned so ({aligns})")
        check(elflint_clean(out), "flags and page size: eu-elflint clean")

        # @FILE, with an argument longer than one argument may be (MAX_ARG_STRLEN, 128 KiB)
        argf = os.path.join(tmp, "rpath.txt")
        big = ":".join(f"/opt/dir-{i:06d}" for i in range(20000))
        with open(argf, "w") as f:
            f.write(big)
        out = os.path.join(tmp, "big.so")
        r = kw("--set-rpath", "@" + argf, "-o", out, lib)
        check(r.returncode == 0 and kw("--print-rpath", out).stdout == big + "\n" and elflint_clean(out),
              f"@FILE: a {len(big)}-byte search path set from a file")
        r = kw("--set-rpath", "@" + os.path.join(tmp, "missing"), lib)
        check(r.returncode == 2 and "missing" in r.stderr, "@FILE that does not exist: an error naming it")

        # An old search path leaves no trace (nix scans files for store paths): the moved .dynstr's
        # old copy is cleared, and the old path in the new copy is overwritten with X.
        oldp = os.path.join(tmp, "libold.so")
        r = run(["cc", "-shared", "-fPIC", os.path.join(SRC, "libkwfix.c"), "-lz", "-o", oldp,
                 "-Wl,-rpath,/nix/store/old-unique-path-0123"])
        out = os.path.join(tmp, "libnew.so")
        kw("--set-rpath", "/nix/store/new-path-" + "x" * 200, "-o", out, oldp)
        strs = run(["strings", "-a", out]).stdout
        check("old-unique-path-0123" not in strs and "XXXXXXXXXXXXXXXXXXXX" in strs and elflint_clean(out),
              "the dropped search path is gone from the file, overwritten with X")
        check(strs.count("kwfix_zversion") == 2, "the moved .dynstr is in the file once (beside .strtab)")

        # PT_DYNAMIC gone, .dynamic section left: edited through the section
        nodyn = os.path.join(tmp, "nodyn.so")
        b = bytearray(open(lib, "rb").read())
        phoff, phnum = int.from_bytes(b[0x20:0x28], "little"), int.from_bytes(b[0x38:0x3a], "little")
        for i in range(phnum):
            at = phoff + 56 * i
            if int.from_bytes(b[at:at + 4], "little") == 2:  # PT_DYNAMIC -> PT_NULL
                b[at:at + 4] = (0).to_bytes(4, "little")
        open(nodyn, "wb").write(b)
        r = kw("--set-soname", "libnodyn.so", "--set-rpath", "/q" * 100, nodyn)
        d = run(["objdump", "-p", nodyn]).stdout  # objdump reads the section (readelf wants PT_DYNAMIC)
        check(r.returncode == 0 and re.search(r"SONAME\s+libnodyn.so", d) and re.search(r"RUNPATH\s+/q/q", d),
              f"file without PT_DYNAMIC edited through .dynamic ({r.stderr.strip()})")

        # Under patchelf's name
        pe = os.path.join(tmp, "patchelf")
        shutil.copy(KWHEEL, pe)
        r = run([pe, "--version"])
        check(r.returncode == 0 and r.stdout.startswith("patchelf 0.18"), "patchelf --version")
        work = os.path.join(tmp, "pe.so")
        shutil.copy(lib, work)
        r = run([pe, work, "--set-soname", "libpe.so", "--print-soname"])
        check(r.returncode == 0 and r.stdout == "" and "[libpe.so]" in run(["readelf", "-dW", work]).stdout,
              "patchelf: options after the file; a print shows the file before the edit")
        check(run([pe, "--print-soname", work]).stdout == "libpe.so\n", "patchelf: --print-soname after it")
        r = run([pe, "--set-rpath", "/x", os.path.join(tmp, "nonexistent")])
        check(r.returncode == 1 and r.stderr.strip(), "patchelf: an error exits 1")
        r = run([pe])
        check(r.returncode == 1 and "patchelf" in r.stderr, "patchelf: no file prints its usage, exit 1")
        r = run([pe, "--replace-needed", "libz.so.1", "libzz.so.1", "--output", os.path.join(tmp, "pe2.so"), lib])
        check(r.returncode == 0 and "[libzz.so.1]" in run(["readelf", "-dW", os.path.join(tmp, "pe2.so")]).stdout,
              "patchelf: --replace-needed OLD NEW and --output")

        # durability: by default no fsync (as patchelf); --fsync syncs each new file, its temporary, once
        if shutil.which("strace"):
            asan = ":".join(o for o in [os.environ.get("ASAN_OPTIONS", ""), "detect_leaks=0"] if o)
            for flag, want in (([], 0), (["--fsync"], 2)):
                a, b = os.path.join(tmp, "sync-a.so"), os.path.join(tmp, "sync-b.so")
                shutil.copyfile(lib, a)
                shutil.copyfile(lib, b)
                trace = os.path.join(tmp, "trace")
                r = run(["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", trace, KWHEEL, "patch"] +
                        flag + ["--set-rpath", "/x" * 200, a, b], env=dict(os.environ, ASAN_OPTIONS=asan))
                synced = re.findall(r"f(?:data)?sync\(\d+<([^>]*)>", open(trace).read())
                check(r.returncode == 0 and len(synced) == want and all(".kwheel-" in p for p in synced),
                      f"{' '.join(flag) or 'no --fsync'}: {want} syncs, of the temporaries (got {synced})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
