#!/usr/bin/env python3
"""The resolver's work stays bounded on hostile inputs, and it probes each path once.

usage: check-bounds.py KWHEEL CASE
  quadratic  an ELF with a 1024-entry RPATH and 200 missing DT_NEEDED (built
             here with gcc and kwheel patch) is audited by show and lddtree
             in seconds; a wheel of 30 such members exceeds the lookup limit:
             exit 2, one error line; a 350-library OpenCV closure (when the
             system has OpenCV) is well within it
  stat-once  a closure of 40 libraries behind symlinks, over RPATH dirs
             that exist, do not exist and alias each other: kwheel finds what
             ldd finds, and strace shows no path stat'ed or read twice
  ldsoconf   ld.so.conf files under --root that all include each other are
             each read once: a library in the last one's directory is found,
             quickly, with each file opened once
  fifo       a FIFO as the file, and FIFOs named like the libraries in the
             search directories: "not a regular file" for the first, the next
             directory's library for the others, and nothing hangs
  skip       an object needing six libraries over three RPATH directories
             whose first (and for some the second) file of each name is an
             object of another class or machine: the search passes them by
             as ldd does, also when the parses one node's names need run
             side by side
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, write_wheel  # noqa: E402

KWHEEL, CASE = sys.argv[1], sys.argv[2]
SYSLIB = "/usr/lib/x86_64-linux-gnu"


def traced_env():
    """LeakSanitizer cannot run under ptrace: an ASan build is traced without it."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    return dict(os.environ, ASAN_OPTIONS=(asan + ":" if asan else "") + "detect_leaks=0")


def kw(args, timeout=60, **kwargs):
    """Run kwheel; returns (CompletedProcess or None if it hung, seconds)."""
    t = time.monotonic()
    try:
        r = run([KWHEEL] + args, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - t
    return r, time.monotonic() - t


def cc(out, src_text, tmp, *flags):
    src = os.path.join(tmp, os.path.basename(out) + ".c")
    with open(src, "w") as f:
        f.write(src_text)
    r = run(["gcc", "-shared", "-fPIC", "-o", out, src] + list(flags))
    if not check(r.returncode == 0, f"gcc builds {os.path.basename(out)} {r.stderr.strip()}"):
        sys.exit(1)


def wheel_of(path, members):
    """A platform wheel with these {member name: file} and its metadata."""
    dist, ver = os.path.basename(path).split("-")[:2]
    files = {n: open(p, "rb").read() for n, p in members.items()}
    files[f"{dist}-{ver}.dist-info/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
                                              b"Tag: cp311-cp311-linux_x86_64\n")
    files[f"{dist}-{ver}.dist-info/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {ver}\n".encode()
    return write_wheel(path, files)


def quadratic(tmp):
    so = os.path.join(tmp, "crafted.so")
    rpath = ":".join(f"/nonexistent/kwheel-rp{i}" for i in range(1024))
    cc(so, "int f(void) { return 0; }\n", tmp, "-Wl,--disable-new-dtags", "-Wl,-rpath," + rpath, "-nostdlib")
    names = [f"libkwmissing{i}.so.1" for i in range(200)]
    add = []
    for n in names:
        add += ["--add-needed", n]
    r, _ = kw(["patch"] + add + [so])
    check(r is not None and r.returncode == 0, f"kwheel patch adds 200 DT_NEEDED ({r and r.stderr.strip()})")
    d = run(["readelf", "-dW", so]).stdout
    check(len(re.findall(r"\(NEEDED\)", d)) == 200 and len(re.search(r"\(RPATH\).*\[(.*)\]", d).group(1).split(":"))
          == 1024, "readelf: 200 DT_NEEDED and 1024 RPATH entries")
    whl = wheel_of(os.path.join(tmp, "crafted-1.0-cp311-cp311-linux_x86_64.whl"), {"crafted/_c.so": so})
    r, secs = kw(["show", "--json", whl])
    check(r is not None and secs < 5, f"show audits it in {secs:.1f} s (under 5)")
    if r is not None:
        missing = set(re.findall(r"libkwmissing\d+\.so\.1", r.stdout))
        check(r.returncode in (0, 1) and missing == set(names), f"show: all 200 libraries not found "
              f"({r.returncode}, {len(missing)} named, {r.stderr.strip()[:200]})")
    r, secs = kw(["lddtree", so])
    check(r is not None and secs < 5 and r.returncode == 1 and r.stdout.count("=> not found") == 200,
          f"lddtree: 200 not found in {secs:.1f} s ({r and r.returncode})")

    # 30 members of it: more lookups than any real wheel makes, a clear refusal
    many = wheel_of(os.path.join(tmp, "many-1.0-cp311-cp311-linux_x86_64.whl"),
                    {f"many/_c{i}.so": so for i in range(30)})
    r, secs = kw(["show", many])
    if check(r is not None, f"show on 30 members returns ({secs:.1f} s)"):
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 1 and "library lookups" in lines[0] and
              os.path.basename(many) in lines[0] and not r.stdout,
              f"30 members: exit 2, one line naming the wheel and the lookup limit ({r.returncode}, {lines})")
        check(secs < 20, f"30 members refused in {secs:.1f} s (under 20)")

    # a real closure is far below the limit
    cv = sorted(f for f in os.listdir(SYSLIB) if re.match(r"libopencv_\w+\.so\.\d+$", f)) \
        if os.path.isdir(SYSLIB) else []
    if cv:
        allcv = os.path.join(tmp, "cvall.so")
        cc(allcv, "int f(void) { return 0; }\n", tmp, "-Wl,--no-as-needed", *["-l:" + f for f in cv])
        n = len(run([KWHEEL, "lddtree", "-l", allcv]).stdout.splitlines())
        whl = wheel_of(os.path.join(tmp, "cvall-1.0-cp311-cp311-linux_x86_64.whl"), {"cvall/_cv.so": allcv})
        r, secs = kw(["show", whl])
        check(r is not None and r.returncode in (0, 1) and not r.stderr, f"show of an OpenCV closure of {n} "
              f"libraries passes ({r and r.returncode}, {secs:.1f} s, {r and r.stderr.strip()[:200]})")
    else:
        print("note: no OpenCV on this system, the real-closure check is left out")


def stat_once(tmp):
    if not shutil.which("strace"):
        check(False, "strace is installed (tools/deps)")
        return
    base = os.path.join(tmp, "t")
    dirs = [os.path.join(base, d) for d in ("liba", "libb", "libc")]
    for d in dirs:
        os.makedirs(d)
    os.symlink("liba", os.path.join(base, "libd"))   # a directory alias
    n = 40
    for k in reversed(range(n)):
        d = dirs[k % 3]
        deps = [f"-l:libkwb{j}.so.1" for j in range(k + 1, min(k + 4, n))]
        real = os.path.join(d, f"libkwb{k}.so.1.0")
        cc(real, f"int kwb{k}(void) {{ return {k}; }}\n", tmp, f"-Wl,-soname,libkwb{k}.so.1",
           *[f"-L{x}" for x in dirs], "-Wl,--no-as-needed", *deps)
        os.symlink(f"libkwb{k}.so.1.0", os.path.join(d, f"libkwb{k}.so.1"))
    rpath = ":".join([os.path.join(base, "nonexistent"), os.path.join(base, "libd"), dirs[1],
                        os.path.join(base, "libd", "..", "libc"), dirs[2]])
    top = os.path.join(tmp, "top.so")
    cc(top, "int top(void) { return 0; }\n", tmp, "-L" + dirs[0], "-Wl,--no-as-needed", "-l:libkwb0.so.1",
       "-Wl,--disable-new-dtags", "-Wl,-rpath," + rpath)
    ldd = run(["ldd", top], env=dict(os.environ, LD_LIBRARY_PATH=""))
    # real paths: ldd prints the RPATH entry as written ("libd/../libc"), kwheel folds it
    want = sorted(set((n, os.path.realpath(p)) for n, p in re.findall(r"(libkwb\d+\.so\.1) => (/\S+)", ldd.stdout)))
    check(len(want) == n, f"ldd resolves all {n} libraries ({len(want)})")
    log = os.path.join(tmp, "strace.log")
    r = run(["strace", "-f", "-qq", "-o", log, "-e", "trace=stat,lstat,newfstatat,statx,readlink,readlinkat,open,openat",
             KWHEEL, "lddtree", "-l", top], env=traced_env())
    got = sorted(set((os.path.basename(p), os.path.realpath(p)) for p in r.stdout.split() if "libkwb" in p))
    check(r.returncode == 0 and got == want, f"kwheel finds what ldd finds ({r.returncode}; "
          f"only kwheel {sorted(set(got) - set(want))[:3]}, only ldd {sorted(set(want) - set(got))[:3]})")
    seen = {}
    for line in open(log):
        m = re.search(r'(\w+)\((?:AT_FDCWD, )?"([^"]*)"', line)
        if not m or not m.group(2).startswith(base):
            continue
        call = "open" if m.group(1).startswith("open") else "stat" if "stat" in m.group(1) else "readlink"
        seen.setdefault((call, m.group(2)), []).append(line.strip())
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    check(seen and not twice, f"every path probed once: {len(seen)} (call, path) pairs, "
          f"{len(twice)} repeated {list(twice.items())[:2]}")
    failing = [k for k, v in seen.items() if any("ENOENT" in x for x in v)]
    check(len(failing) <= 2, f"at most the missing RPATH directory fails to stat ({failing[:4]})")


def ldsoconf(tmp):
    root = os.path.join(tmp, "root")
    confd = os.path.join(root, "etc", "ld.so.conf.d")
    os.makedirs(confd)
    with open(os.path.join(root, "etc", "ld.so.conf"), "w") as f:
        f.write("include /etc/ld.so.conf.d/*.conf\n")
    k = 10
    for i in range(k):
        with open(os.path.join(confd, f"{i:02d}.conf"), "w") as f:
            # each file includes all the others, before and after its own directory
            f.write("include /etc/ld.so.conf.d/*.conf\n" + f"/kwdir{i}\n" + "include *.conf\n")
        os.makedirs(os.path.join(root, f"kwdir{i}"))
    lib = os.path.join(root, f"kwdir{k - 1}", "libkwconf.so.1")
    cc(lib, "int kwconf(void) { return 1; }\n", tmp, "-Wl,-soname,libkwconf.so.1")
    os.makedirs(os.path.join(root, "bin"))
    top = os.path.join(root, "bin", "top.so")
    cc(top, "int top(void) { return 0; }\n", tmp, "-L" + os.path.dirname(lib), "-Wl,--no-as-needed", "-l:libkwconf.so.1")
    r, secs = kw(["lddtree", "--root", root, "/bin/top.so"], timeout=120)
    check(r is not None and secs < 5, f"{k} mutually including ld.so.conf files read in {secs:.1f} s (under 5)")
    if r is not None:
        check(f"libkwconf.so.1 => /kwdir{k - 1}/libkwconf.so.1" in r.stdout,
              f"the library in the last file's directory is found via ld.so.conf ({r.returncode}, {r.stdout.strip()})")
    if shutil.which("strace"):
        log = os.path.join(tmp, "conf.log")
        run(["strace", "-f", "-qq", "-o", log, "-e", "trace=open,openat", KWHEEL, "lddtree", "--root", root,
             "/bin/top.so"], timeout=120, env=traced_env())
        opens = [l for l in open(log) if ".conf\"" in l and "ENOENT" not in l]
        check(len(opens) == k + 1, f"each of the {k + 1} configuration files opened once ({len(opens)})")


def fifo(tmp):
    f = os.path.join(tmp, "libfifo.so")
    os.mkfifo(f)
    for args in (["lddtree", f], ["lddtree", "--json", f]):
        r, secs = kw(args, timeout=20)
        if check(r is not None, f"{' '.join(args[:-1])} on a FIFO returns"):
            lines = r.stderr.strip().splitlines()
            check(r.returncode == 2 and len(lines) == 1 and f"'{f}': not a regular file" in lines[0] and not r.stdout,
                  f"{' '.join(args[:-1])} on a FIFO: exit 2, one line 'not a regular file' ({r.returncode}, {lines})")
    r, _ = kw(["lddtree", tmp], timeout=20)
    check(r is not None and r.returncode == 2 and "not a regular file" in r.stderr, "lddtree on a directory: "
          f"'not a regular file' ({r and r.stderr.strip()})")

    # FIFOs named like the library, in the directories searched first
    first, second, good = (os.path.join(tmp, d) for d in ("first", "second", "good"))
    for d in (first, second, good):
        os.makedirs(d)
    lib = os.path.join(good, "libkwfifo.so.1")
    cc(lib, "int kwfifo(void) { return 1; }\n", tmp, "-Wl,-soname,libkwfifo.so.1")
    os.mkfifo(os.path.join(first, "libkwfifo.so.1"))
    os.makedirs(os.path.join(second, "glibc-hwcaps", "x86-64-v2"))
    os.mkfifo(os.path.join(second, "glibc-hwcaps", "x86-64-v2", "libkwfifo.so.1"))
    top = os.path.join(tmp, "top.so")
    cc(top, "int top(void) { return 0; }\n", tmp, "-L" + good, "-Wl,--no-as-needed", "-l:libkwfifo.so.1",
       "-Wl,--enable-new-dtags", "-Wl,-rpath," + ":".join((first, second, good)))
    r, secs = kw(["lddtree", top], timeout=20)
    check(r is not None and r.returncode == 0 and f"libkwfifo.so.1 => {lib}" in r.stdout,
          f"lddtree passes the FIFOs by and finds {lib} ({r and r.returncode}, {r and r.stdout.strip()})")
    whl = wheel_of(os.path.join(tmp, "fifo-1.0-cp311-cp311-linux_x86_64.whl"), {"fifo/_t.so": top})
    r, secs = kw(["show", "--json", whl], timeout=20)
    check(r is not None and r.returncode in (0, 1) and lib in r.stdout,
          f"show passes the FIFOs by ({r and r.returncode}, {secs:.1f} s, {r and r.stderr.strip()[:200]})")


def skip(tmp):
    dirs = [os.path.join(tmp, d) for d in ("d1", "d2", "d3")]
    for d in dirs:
        os.makedirs(d)
    # name -> the directory of the real library; the directories before it hold one the loader skips: the same
    # bytes marked 32-bit (e_ident[EI_CLASS]) or for aarch64 (e_machine). (A file that is no ELF object at all
    # is not skipped: the loader stops there with an error.)
    where = {"a": 1, "b": 1, "c": 0, "d": 2, "e": 2, "f": 0}
    for name, k in where.items():
        real = os.path.join(dirs[k], f"libkws{name}.so.1")
        cc(real, f"int kws{name}(void) {{ return 1; }}\n", tmp, f"-Wl,-soname,libkws{name}.so.1")
        for j in range(k):
            other = bytearray(open(real, "rb").read())
            if (j + len(name)) % 2:
                other[4] = 1
            else:
                other[18:20] = (183).to_bytes(2, "little")
            with open(os.path.join(dirs[j], f"libkws{name}.so.1"), "wb") as f:
                f.write(other)
    top = os.path.join(tmp, "top.so")
    cc(top, "int top(void) { return 0; }\n", tmp, *[f"-L{d}" for d in reversed(dirs)], "-Wl,--no-as-needed",
       *[f"-l:libkws{n}.so.1" for n in where], "-Wl,--disable-new-dtags", "-Wl,-rpath," + ":".join(dirs))
    ldd = run(["ldd", top], env=dict(os.environ, LD_LIBRARY_PATH=""))
    want = sorted(re.findall(r"(libkws\w\.so\.1) => (/\S+)", ldd.stdout))
    check(len(want) == len(where) and all(p == os.path.join(dirs[where[n[6]]], n) for n, p in want),
          f"ldd passes the objects of another class or machine by ({want})")
    r, secs = kw(["lddtree", "-l", top])
    got = sorted((os.path.basename(p), p) for p in (r.stdout.split() if r else []) if "libkws" in p)
    check(r is not None and r.returncode == 0 and got == want,
          f"kwheel lddtree finds what ldd finds ({r and r.returncode}: {got}, {r and r.stderr.strip()[:200]})")


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-bounds-")
    try:
        {"quadratic": quadratic, "stat-once": stat_once, "ldsoconf": ldsoconf, "fifo": fifo, "skip": skip}[CASE](tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
