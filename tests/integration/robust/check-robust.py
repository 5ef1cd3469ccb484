#!/usr/bin/env python3
"""`kwheel repair` and `kwheel show` when the world misbehaves.

usage: check-robust.py KWHEEL CORPUS SYSROOT_ROOT SCENARIO
SCENARIO is one of:
  kill       a ~60 MB wheel (the Debian lxml wheel plus big incompressible and
             compressible members, RECORD rewritten) is repaired once to time
             it, then repaired again and SIGKILLed at random moments: after
             every kill the wheel directory holds the complete wheel (the same
             bytes as the timed run) or none, and anything else there is one
             of the writer's documented hidden temporaries, never a *.whl; a
             final normal run succeeds and leaves nothing of its own behind
  diskfull   RLIMIT_FSIZE at sizes that fail grafting a library, extracting a
             member and the final wheel write (SIGXFSZ ignored, so write gives
             EFBIG), and a 2 MB tmpfs for a real ENOSPC (skipped when mounting
             is not permitted): exit 2, one stderr line naming the error, no
             *.whl, no temporary left, the inputs unchanged
  repro      same input, no SOURCE_DATE_EPOCH: two runs 2 s apart and one on
             a copy with another file mtime give the same bytes; the same
             SOURCE_DATE_EPOCH twice gives the same bytes, another one differs
             only in the time stamps of new and changed members; two wheels
             vendoring two different libraries with one SONAME get two grafted
             names and load side by side in one interpreter
  alloc      KWHEEL_FAIL_ALLOC=N (src/cli/main.c) fails the Nth allocation and
             every later one, for N = 1 .. the count of a successful run (with
             a stride past the first few hundred): `kwheel show`, `show --json`,
             `kwheel repair` and `kwheel km` (one wheel twice, the second
             reusing the first's objects; a conversion that succeeds writes
             the clean run's archive) exit 0 or 2, never by a signal, never with a
             sanitizer report, with one stderr line; a show that succeeds prints
             the clean run's report; a failed repair leaves nothing in the
             wheel directory (first 300 and last 200 N always)
Output is TAP; a known kwheel bug is a "not ok ... # TODO" line (meson reports
it as an unexpected pass once fixed, so the marker can go). Environment:
KW_SOURCE_ROOT (fixtures), KW_ROBUST_SEED (random seed of the kill scenario),
KW_ROBUST_KILLS (number of kills, default 25), KW_ROBUST_ALLOC_BUDGET (seconds
the alloc scenario aims for per command, default 15).
"""
import csv
import io
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import record_digest, sha  # noqa: E402

KWHEEL, CORPUS, SYSROOT, SCENARIO = sys.argv[1:5]
SRC = os.path.join(os.environ.get("KW_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "..")),
                   "fixtures", "repair")
PY = "/usr/bin/python3"
LIBPATH = ":".join(os.path.join(SYSROOT, d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"))
LXML = os.path.join(CORPUS, "wheels", "debian", "lxml-4.9.2-cp311-cp311-linux_x86_64.whl")
PYYAML = os.path.join(CORPUS, "wheels", "debian", "pyyaml-6.0-cp311-cp311-linux_x86_64.whl")
TESTZLIB = os.path.join(CORPUS, "wheels", "auditwheel", "testzlib-0.0.1-cp310-cp310-linux_x86_64.whl")
CFFI_BACKEND = os.path.join(CORPUS, "wheels", "debian", "cffi_backend-1.15.1-cp311-cp311-linux_x86_64.whl")
# The hidden temporaries kwheel repair may leave when killed (src/repair/repair.c
# work directory, src/wheel/writer.c per-worker deflate files, libzip's own
# temporary next to one of those while zip_close() writes it, and the wheel),
# each named after the pid of the run; the next run removes those of dead runs.
TEMP_NAMES = [re.compile(r"^\.kwheel-work-\d+-[A-Za-z0-9]{6}$"),
              re.compile(r"^\.kwheel-z\d+-\d+-[A-Za-z0-9]{6}(\.[A-Za-z0-9]{6})?$"),
              re.compile(r"^\..+\.whl\.kwheel-\d+-[A-Za-z0-9]{6}$")]
SANITIZER = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer")
failures = []
n_checks = 0


def check(cond, what, todo=None):
    """One TAP line. TODO marks a known kwheel bug: reported, not counted; meson flags it once it passes."""
    global n_checks
    n_checks += 1
    what = what.replace("\n", " ").replace("#", "%23")
    print(f"{'ok' if cond else 'not ok'} {n_checks} - {what}" + (f" # TODO {todo}" if todo else ""), flush=True)
    if not cond and not todo:
        failures.append(what)
    return cond


def skip(what):
    global n_checks
    n_checks += 1
    print(f"ok {n_checks} # skip {what}", flush=True)


def note(what):
    print("# " + what, flush=True)


def kw_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD", "SOURCE_DATE_EPOCH",
                                                            "KWHEEL_FAIL_ALLOC")}
    env["PIP_ROOT_USER_ACTION"] = "ignore"
    lsan = os.path.join(os.environ.get("KW_SOURCE_ROOT", ""), "tools", "lsan.supp")
    if os.path.exists(lsan):
        env.setdefault("LSAN_OPTIONS", f"suppressions={lsan}:print_suppressions=0")
    env.update(extra)
    return env


def spawn(fn, args, **kw):
    """fn(args, **kw), retried while the binary cannot be executed: a shared build tree may relink it."""
    for attempt in range(40):
        try:
            return fn(args, **kw)
        except (PermissionError, FileNotFoundError, OSError) as e:
            if attempt == 39 or getattr(e, "filename", None) != args[0]:
                raise
            time.sleep(0.25)


def run(args, env=None, **kw):
    return spawn(subprocess.run, args, capture_output=True, text=True, env=env or kw_env(), **kw)


def wheel_problem(path):
    """None if PATH opens with zipfile, testzip() is clean and RECORD lists every member with its hash and size."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            if bad is not None:
                return f"testzip: bad member {bad}"
            names = [n for n in z.namelist() if not n.endswith("/")]
            recs = [n for n in names if re.fullmatch(r"[^/]+\.dist-info/RECORD", n)]
            if len(recs) != 1:
                return f"{len(recs)} RECORD files"
            rows = {}
            for row in csv.reader(io.StringIO(z.read(recs[0]).decode())):
                if row:
                    rows[row[0]] = row
            if set(rows) != set(names):
                return f"RECORD and members differ: {sorted(set(rows) ^ set(names))[:5]}"
            for n in names:
                if n == recs[0]:
                    continue
                data = z.read(n)
                if rows[n][1] != record_digest(data) or rows[n][2] != str(len(data)):
                    return f"RECORD line of {n} does not match"
    except Exception as e:  # noqa: BLE001 - any failure to read is the answer
        return f"{type(e).__name__}: {e}"
    return None


def leftovers(d):
    """(unexpected names, documented temporaries) in wheel directory D, *.whl excluded."""
    if not os.path.isdir(d):
        return [], []
    odd, temps = [], []
    for n in os.listdir(d):
        if n.endswith(".whl"):
            continue
        (temps if any(p.match(n) for p in TEMP_NAMES) else odd).append(n)
    return odd, temps


def du(d, names):
    total = 0
    for n in names:
        p = os.path.join(d, n)
        if os.path.isdir(p):
            for root, _, files in os.walk(p):
                total += sum(os.lstat(os.path.join(root, f)).st_size for f in files)
        else:
            total += os.lstat(p).st_size
    return total


def km_sha(out):
    """km's outputs for pyyaml: the thin archive and the objects its paths name, in one digest."""
    objs = [os.path.join(out, "pyyaml-6.0.km", n) for n in sorted(os.listdir(os.path.join(out, "pyyaml-6.0.km")))] \
        if os.path.isdir(os.path.join(out, "pyyaml-6.0.km")) else []
    return [sha(p) for p in [os.path.join(out, "libpyyaml.km.a")] + objs]


def wheels_in(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".whl")) if os.path.isdir(d) else []


def rewrite_wheel(src, dst, extra, stored=()):
    """Copy wheel SRC to DST with the members of dict EXTRA added and RECORD rewritten."""
    with zipfile.ZipFile(src) as z:
        files = {n: (z.read(n), z.getinfo(n)) for n in z.namelist() if not n.endswith("/")}
    rec = [n for n in files if re.fullmatch(r"[^/]+\.dist-info/RECORD", n)][0]
    del files[rec]
    for n, data in extra.items():
        info = zipfile.ZipInfo(n, (2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        files[n] = (data, info)
    lines = [f"{n},{record_digest(data)},{len(data)}" for n, (data, _) in files.items()] + [f"{rec},,"]
    files[rec] = ("\n".join(lines).encode() + b"\n", zipfile.ZipInfo(rec, (2020, 1, 1, 0, 0, 0)))
    with zipfile.ZipFile(dst, "w") as z:
        for n, (data, info) in files.items():
            method = zipfile.ZIP_STORED if n in stored else zipfile.ZIP_DEFLATED
            z.writestr(info, data, compress_type=method, compresslevel=1)


def big_wheel(tmp):
    rnd = random.Random(1)
    words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(2000)]
    text = b" ".join(rnd.choice(words) for _ in range(180000))  # ~1 MB of word salad, deflates ~2.5:1
    extra, stored = {}, set()
    for i in range(6):
        n = f"lxml/_robust/noise-{i}.bin"
        extra[n] = os.urandom(8 << 20)
        stored.add(n)
    for i in range(4):
        k = (i * 99991) % len(text)
        extra[f"lxml/_robust/text-{i}.txt"] = (text[k:] + text[:k]) * 6
    dst = os.path.join(tmp, os.path.basename(LXML))
    rewrite_wheel(LXML, dst, extra, stored)
    return dst


def repair_args(wheel, out, *extra):
    return [KWHEEL, "repair", "-w", out, "--library-path", LIBPATH] + list(extra) + [wheel]


def fast_repair_args(wheel, out):
    """Deflate level 1: the same stages, half the time to kill in."""
    return repair_args(wheel, out, "--zip-compression-level", "1")


def scenario_kill(tmp):
    t0 = time.monotonic()
    wheel = big_wheel(tmp)
    check(wheel_problem(wheel) is None, f"built input {os.path.getsize(wheel) >> 20} MB in "
                                        f"{time.monotonic() - t0:.1f} s, RECORD consistent")
    ref_dir = os.path.join(tmp, "ref")
    t0 = time.monotonic()
    r = run(fast_repair_args(wheel, ref_dir))
    full = time.monotonic() - t0
    ref = wheels_in(ref_dir)
    if not check(r.returncode == 0 and len(ref) == 1,
                 f"a full run succeeds in {full:.2f} s ({r.stderr.strip()[:300]})"):
        return
    ref_sha = sha(os.path.join(ref_dir, ref[0]))
    prob = wheel_problem(os.path.join(ref_dir, ref[0]))
    check(prob is None, f"its output {ref[0]} is a valid wheel ({prob})")
    check(leftovers(ref_dir) == ([], []), "a completed run leaves no temporary")
    check("%" not in r.stderr and "\r" not in r.stderr, "no progress line when stderr is not a terminal")

    # On a terminal a wheel this size gets a progress line, cleared when done; same bytes.
    import pty
    tty_dir = os.path.join(tmp, "tty")
    os.makedirs(tty_dir)
    master, slave = pty.openpty()
    p = spawn(subprocess.Popen, fast_repair_args(wheel, tty_dir), stdout=subprocess.DEVNULL, stderr=slave,
              env=kw_env())
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    p.wait()
    os.close(master)
    text = seen.decode(errors="replace")
    got = wheels_in(tty_dir)
    check(p.returncode == 0 and got == ref and sha(os.path.join(tty_dir, got[0])) == ref_sha,
          "on a terminal the repair writes the same wheel")
    check("writing" in text and "%" in text and text.rstrip("\r\n").endswith("\x1b[K"),
          f"on a terminal it shows a progress line and clears it ({text[-120:]!r})")
    seed = int(os.environ.get("KW_ROBUST_SEED", str(random.SystemRandom().randrange(1 << 30))))
    kills = int(os.environ.get("KW_ROBUST_KILLS", "25"))
    note(f"seed {seed} (KW_ROBUST_SEED), {kills} kills over [0, {full:.2f}] s")
    rnd = random.Random(seed)
    out = os.path.join(tmp, "out")
    complete = empty = 0
    bad_wheels, bad_names, foreign = [], [], []
    for i in range(kills):
        delay = rnd.uniform(0, full)
        p = spawn(subprocess.Popen, fast_repair_args(wheel, out), stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL, env=kw_env())
        try:
            p.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
        whls = wheels_in(out)
        for w in whls:
            if w != ref[0]:
                bad_names.append(w)
            path = os.path.join(out, w)
            if sha(path) != ref_sha:
                bad_wheels.append(f"kill {i} at {delay:.2f} s: {w}: {wheel_problem(path) or 'valid, other bytes'}")
            os.unlink(path)
        if whls:
            complete += 1
        else:
            empty += 1
        odd, _ = leftovers(out)
        foreign += [f"kill {i} at {delay:.2f} s: {n}" for n in odd if not any(n in f for f in foreign)]
    check(not bad_wheels, f"after each of {kills} kills the wheel is complete and the same bytes, or absent "
                          f"({complete} complete, {empty} none) {bad_wheels[:3]}")
    check(not bad_names, f"no other *.whl name ever appears {bad_names[:3]}")
    odd, temps = leftovers(out)
    check(not foreign, f"anything else left is a documented hidden temporary (.kwheel-work-*, .kwheel-z*, "
                       f".<name>.whl.kwheel-*) {foreign[:3]}")
    note(f"killed runs left {len(temps)} temporaries, {du(out, temps) >> 20} MB: {sorted(temps)[:4]}")
    t0 = time.monotonic()
    r = run(fast_repair_args(wheel, out))
    whls = wheels_in(out)
    check(r.returncode == 0 and whls == ref and sha(os.path.join(out, ref[0])) == ref_sha,
          f"a normal rerun among the leftovers succeeds in {time.monotonic() - t0:.2f} s with the same bytes "
          f"({r.stderr.strip()[:300]})")
    odd2, temps2 = leftovers(out)
    check(not temps2 and odd2 == odd, f"the rerun removed every temporary the killed runs left ({temps2[:4]})")


def limited(fsize):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return pre


def one_error_line(stderr, words):
    lines = [l for l in stderr.splitlines() if l.strip()]
    return len(lines) == 1 and any(w in lines[0] for w in words) and not SANITIZER.search(stderr)


def scenario_diskfull(tmp):
    # lxml: its grafted libraries are the biggest files; pyyaml padded with a 2 MB stored member that is
    # copied as is: the wheel is the biggest file, so a limit just under it fails the final write
    lxml = os.path.join(tmp, os.path.basename(LXML))
    shutil.copy(LXML, lxml)
    padded = os.path.join(tmp, os.path.basename(PYYAML))
    rewrite_wheel(PYYAML, padded, {"yaml/_robust/noise.bin": os.urandom(2 << 20)}, {"yaml/_robust/noise.bin"})
    inputs = [(w, sha(w), os.stat(w)) for w in (lxml, padded)]
    stages = set()
    for wheel, _, _ in inputs:
        dist = os.path.basename(wheel).split("-")[0]
        ok_run = run(repair_args(wheel, os.path.join(tmp, "ref-" + dist)))
        ref = wheels_in(os.path.join(tmp, "ref-" + dist))
        if not check(ok_run.returncode == 0 and len(ref) == 1, f"{dist}: without a limit the repair succeeds"):
            return
        size = os.path.getsize(os.path.join(tmp, "ref-" + dist, ref[0]))
        # from "the first temporary cannot grow" to "only the last bytes of the wheel do not fit"
        # 200000: between libyaml (grafted, 133 kB) and _yaml.so (extracted, 208 kB)
        for fsize in sorted({1, 64 << 10, 200000, 1 << 20, 4 << 20, size // 2, size - 1}):
            if fsize >= size:
                continue
            out = os.path.join(tmp, f"out-{dist}-{fsize}")
            os.makedirs(out)
            r = spawn(subprocess.run, repair_args(wheel, out), capture_output=True, text=True, env=kw_env(),
                      preexec_fn=limited(fsize))
            odd, temps = leftovers(out)
            check(r.returncode == 2 and one_error_line(r.stderr, ("File too large",)),
                  f"{dist}: RLIMIT_FSIZE {fsize}: exit {r.returncode}, one line naming the error: "
                  f"{r.stderr.strip()[:300]!r}")
            check(not wheels_in(out) and not odd and not temps,
                  f"{dist}: RLIMIT_FSIZE {fsize}: nothing left in the wheel directory {wheels_in(out) + odd + temps}")
            stages.add("grafting a library" if "grafting" in r.stderr
                       else "extracting a member" if "member '" in r.stderr or "/member-" in r.stderr
                       else "deflating" if ".kwheel-z" in r.stderr
                       else "writing the wheel" if re.search(re.escape(out) + r"/[^/' ]+\.whl'", r.stderr)
                       else "in the work directory" if ".kwheel-work-" in r.stderr else r.stderr.strip()[:80])
    note(f"failures hit while: {sorted(stages)}")
    check({"grafting a library", "extracting a member", "writing the wheel"} <= stages,
          "the limits hit grafting, extracting and the final write")
    for wheel, h_in, st_in in inputs:
        st = os.stat(wheel)
        check(sha(wheel) == h_in and (st.st_size, st.st_mtime_ns) == (st_in.st_size, st_in.st_mtime_ns),
              f"{os.path.basename(wheel)}: the input is unchanged (sha256, size, mtime)")
    # a real ENOSPC: lxml runs out while grafting, the padded pyyaml while writing the wheel
    mnt = os.path.join(tmp, "tmpfs")
    os.makedirs(mnt)
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], capture_output=True, text=True)
    if m.returncode != 0:
        skip(f"ENOSPC on a 2 MB tmpfs: cannot mount ({m.stderr.strip()[:200]})")
        return
    try:
        for wheel, h_in, _ in inputs:
            dist = os.path.basename(wheel).split("-")[0]
            out = os.path.join(mnt, "wheelhouse-" + dist)
            r = run(repair_args(wheel, out))
            odd, temps = leftovers(out)
            check(r.returncode == 2 and one_error_line(r.stderr, ("No space left",)),
                  f"{dist}: 2 MB tmpfs: exit {r.returncode}, one line naming ENOSPC: {r.stderr.strip()[:300]!r}")
            check(not wheels_in(out) and not odd and not temps,
                  f"{dist}: 2 MB tmpfs: nothing left in the wheel directory {wheels_in(out) + odd + temps}")
            check(du(mnt, os.listdir(mnt)) == 0, f"{dist}: 2 MB tmpfs: all space given back")
            check(sha(wheel) == h_in, f"{dist}: the input is still unchanged")
            shutil.rmtree(out, ignore_errors=True)
    finally:
        subprocess.run(["umount", mnt])


def zip_entries(path):
    with zipfile.ZipFile(path) as z:
        return {i.filename: (i.date_time, i.CRC, i.compress_size) for i in z.infolist()}


def describe_diff(a, b):
    ea, eb = zip_entries(a), zip_entries(b)
    if set(ea) != set(eb):
        return f"member lists differ: {sorted(set(ea) ^ set(eb))[:5]}", False
    content = [n for n in ea if ea[n][1:] != eb[n][1:]]
    stamps = [n for n in ea if ea[n][0] != eb[n][0]]
    if content:
        return f"contents differ: {content[:5]}", False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        da, db = fa.read(), fb.read()
    where = next((i for i in range(min(len(da), len(db))) if da[i] != db[i]), None)
    return (f"{len(stamps)} of {len(ea)} members differ only in their time stamp "
            f"({ea[stamps[0]][0] if stamps else ''} vs {eb[stamps[0]][0] if stamps else ''}: {stamps[:4]}), "
            f"first differing byte at {where}"), True


def build_dup_wheels(tmp):
    """Two wheels, kwone and kwtwo, each vendoring its own libkwdup.so.1 (variants 1 and 2)."""
    b = os.path.join(tmp, "build")
    dirs = {k: os.path.join(b, k) for k in ("A", "B", "C")}
    for d in dirs.values():
        os.makedirs(d)
    cc = ["cc", "-shared", "-fPIC", "-O1"]
    steps = [cc + [os.path.join(SRC, "kwbase.c"), "-o", os.path.join(dirs["C"], "libkwbase.so.1"),
                   "-Wl,-soname,libkwbase.so.1"]]
    for v, d in (("1", "A"), ("2", "B")):
        steps.append(cc + [f"-DVARIANT={v}", os.path.join(SRC, "kwdup.c"), "-o", os.path.join(dirs[d], "libkwdup.so.1"),
                           "-Wl,-soname,libkwdup.so.1", "-L" + dirs["C"], "-l:libkwbase.so.1",
                           "-Wl,-rpath," + dirs["C"], "-Wl,--enable-new-dtags"])
    inc = run([PY, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"]).stdout.strip()
    wheels = []
    for dist, mod, d in (("kwone", "ext_a", "A"), ("kwtwo", "ext_b", "B")):
        so = os.path.join(b, f"{mod}.so")
        steps.append(cc + [f"-DMODNAME={mod}", "-I" + inc, os.path.join(SRC, "kwext.c"), "-o", so,
                           "-L" + dirs[d], "-l:libkwdup.so.1", "-Wl,--disable-new-dtags", "-Wl,-rpath," + dirs[d]])
        wheels.append((dist, mod, so))
    for s in steps:
        r = run(s)
        if r.returncode != 0:
            raise SystemExit("fixture build failed: " + " ".join(s) + "\n" + r.stderr)
    out = []
    for dist, mod, so in wheels:
        di = f"{dist}-1.0.dist-info"
        files = {f"{dist}/__init__.py": b"", f"{dist}/{mod}.cpython-311-x86_64-linux-gnu.so": open(so, "rb").read(),
                 f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n".encode(),
                 f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: kwheel-tests\nRoot-Is-Purelib: false\n"
                                b"Tag: cp311-cp311-linux_x86_64\n"}
        lines = [f"{n},{record_digest(data)},{len(data)}" for n, data in files.items()] + [f"{di}/RECORD,,"]
        files[f"{di}/RECORD"] = "\n".join(lines).encode() + b"\n"
        path = os.path.join(tmp, f"{dist}-1.0-cp311-cp311-linux_x86_64.whl")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for n, data in files.items():
                z.writestr(zipfile.ZipInfo(n, (2020, 1, 1, 0, 0, 0)), data)
        out.append(path)
    return out, b


def scenario_repro(tmp):
    wheel = os.path.join(tmp, os.path.basename(PYYAML))
    shutil.copy(PYYAML, wheel)

    def once(tag, path=wheel, **env):
        out = os.path.join(tmp, "out-" + tag)
        r = run(repair_args(path, out), env=kw_env(**env))
        w = wheels_in(out)
        check(r.returncode == 0 and len(w) == 1, f"{tag}: repaired ({r.stderr.strip()[:200]})")
        return os.path.join(out, w[0]) if w else None

    if shutil.which("faketime"):
        note("faketime is installed but not needed: kwheel never reads the clock (see below)")
    else:
        note("faketime is not installed: the runs are 2 s apart and one input has another file mtime instead")
    a = once("unset-1")
    time.sleep(2.2)
    b = once("unset-2")
    moved = os.path.join(tmp, "moved", os.path.basename(wheel))
    os.makedirs(os.path.dirname(moved))
    shutil.copy(wheel, moved)
    os.utime(moved, (1234567890, 1234567890))
    c = once("unset-mtime", moved)
    if a and b and c:
        check(sha(a) == sha(b), "no SOURCE_DATE_EPOCH: two runs 2 s apart give the same bytes")
        check(sha(a) == sha(c), "no SOURCE_DATE_EPOCH: another input file mtime gives the same bytes")
        check(os.path.getsize(a) > 0 and wheel_problem(a) is None, "and the output is a valid wheel")
    s1 = once("sde-1700000000", SOURCE_DATE_EPOCH="1700000000")
    time.sleep(1.1)
    s2 = once("sde-1700000000-again", SOURCE_DATE_EPOCH="1700000000")
    s3 = once("sde-1600000000", SOURCE_DATE_EPOCH="1600000000")
    if s1 and s2 and s3:
        check(sha(s1) == sha(s2), "SOURCE_DATE_EPOCH=1700000000 twice: the same bytes")
        what, only_stamps = describe_diff(s1, s3)
        note("SOURCE_DATE_EPOCH 1700000000 vs 1600000000: " + what)
        check(sha(s1) != sha(s3) and only_stamps, "another SOURCE_DATE_EPOCH: only time stamps of new members differ")
        z1 = zip_entries(s1)
        stamps = {v[0] for v in z1.values()}
        note(f"time stamps in the SOURCE_DATE_EPOCH=1700000000 output: {sorted(stamps)}")
        check((2023, 11, 14, 22, 13, 20) in stamps, "new members are dated SOURCE_DATE_EPOCH (2023-11-14 22:13:20)")
    if a and s1:
        what, _ = describe_diff(a, s1)
        note("unset vs SOURCE_DATE_EPOCH=1700000000: " + what)
    # two libraries, one SONAME, two wheels
    (w1, w2), build = build_dup_wheels(os.path.join(tmp, "dup"))
    out = os.path.join(tmp, "out-dup")
    names = {}
    for w in (w1, w2):
        r = run([KWHEEL, "repair", "--json", "-w", out, w])
        res = [__import__("json").loads(l) for l in r.stdout.splitlines() if l.strip()]
        if check(r.returncode == 0 and res, f"{os.path.basename(w)}: repaired ({r.stderr.strip()[:200]})"):
            names[os.path.basename(w)] = {g["soname"]: os.path.basename(g["dest"]) for g in res[0]["grafted"]}
    dups = [n.get("libkwdup.so.1") for n in names.values()]
    check(len(dups) == 2 and None not in dups and dups[0] != dups[1],
          f"two different libkwdup.so.1 get two grafted names {dups}")
    shutil.rmtree(build)
    target = os.path.join(tmp, "site")
    for w in wheels_in(out):
        pr = run([PY, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check", "--quiet",
                  "--target", target, os.path.join(out, w)])
        check(pr.returncode == 0, f"pip installs {w} ({pr.stderr.strip()[:200]})")
    ir = run([PY, "-c", f"import sys; sys.path.insert(0, {target!r}); import kwone.ext_a as a, kwtwo.ext_b as b; "
                        "print(a.value(), b.value())"], cwd=tmp)
    check(ir.stdout.strip() == "107 207",
          f"both load their own copy in one interpreter: {ir.stdout.strip()} {ir.stderr.strip()[-200:]}")


def scenario_alloc(tmp):
    budget = float(os.environ.get("KW_ROBUST_ALLOC_BUDGET", "15"))
    cases = [("show", lambda out: [KWHEEL, "show", TESTZLIB]),
             ("show-json", lambda out: [KWHEEL, "show", "--json", TESTZLIB]),
             # testzlib is refused (black-listed symbols); cffi_backend grafts the host's libffi, whose
             # package the SBOM looks up in dpkg's database
             ("repair", lambda out: [KWHEEL, "repair", "-w", out, CFFI_BACKEND]),
             ("repair-pyyaml", lambda out: repair_args(PYYAML, out)),
             # the same wheel twice: the second conversion reuses the first's objects (src/km/cache.c)
             ("km-twice", lambda out: [KWHEEL, "km", "--no-wheel", "--deps", "--library-path", LIBPATH, "-o", out,
                                       PYYAML, PYYAML])]
    for name, argv in cases:
        out = os.path.join(tmp, name + "-count")
        t0 = time.monotonic()
        r = run(argv(out), env=kw_env(KWHEEL_FAIL_ALLOC="0"))
        each = time.monotonic() - t0
        m = re.search(r"kwheel: debug: (\d+) allocations", r.stderr)
        if not check(r.returncode == 0 and m, f"{name}: a run without failure succeeds and reports its count "
                                              f"({r.stderr.strip()[-200:]})"):
            continue
        count = int(m.group(1))
        clean_out = r.stdout
        # repair's clean wheel: a run that succeeds despite a failed allocation must write the same bytes
        clean_wheel = None
        if name.startswith("repair") and len(wheels_in(out)) == 1:
            clean_wheel = (wheels_in(out)[0], sha(os.path.join(out, wheels_in(out)[0])))
        if name.startswith("km"):
            clean_wheel = km_sha(out)
        # every N in the first 300 (context, options, archive setup) and the last 200 (output, result,
        # cleanup); then a stride through the middle that fits what is left of the budget
        head, tail = min(count, 300), max(min(count, 300) + 1, count - 200)
        bad_rc, bad_msg, san, left, hidden_ok, differs = [], [], [], [], [], []

        def one(n):
            out = os.path.join(tmp, f"{name}-{n}")
            r = run(argv(out), env=kw_env(KWHEEL_FAIL_ALLOC=str(n)))
            if r.returncode not in (0, 2):
                bad_rc.append((n, r.returncode, r.stderr.strip()[-160:]))
            if SANITIZER.search(r.stderr):
                san.append((n, r.stderr[:2000]))
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            # km goes on to the next wheel after one fails: a line per wheel
            if r.returncode == 2 and not 1 <= len(lines) <= (2 if name.startswith("km") else 1):
                bad_msg.append((n, lines[:3]))
            if name.startswith("km"):
                if r.returncode == 0 and km_sha(out) != clean_wheel:
                    differs.append(n)
                shutil.rmtree(out, ignore_errors=True)
            if name.startswith("show") and r.returncode == 0 and r.stdout != clean_out:
                differs.append(n)
            if name.startswith("repair"):
                if r.returncode != 0:
                    if wheels_in(out) or any(leftovers(out)):
                        left.append((n, wheels_in(out) + sum(leftovers(out), [])))
                elif n <= count:
                    w = wheels_in(out)
                    prob = wheel_problem(os.path.join(out, w[0])) if len(w) == 1 else f"{w}"
                    if prob:
                        hidden_ok.append((n, prob))
                    elif clean_wheel and (w[0], sha(os.path.join(out, w[0]))) != clean_wheel:
                        differs.append(n)
                shutil.rmtree(out, ignore_errors=True)

        t0 = time.monotonic()
        ns = list(range(1, head + 1)) + list(range(tail, count + 2))
        for n in ns:
            one(n)
        avg = (time.monotonic() - t0) / len(ns)
        middle = max(100, int((budget - (time.monotonic() - t0)) / avg))
        stride = max(1, (tail - head) // middle)
        for n in range(head + 1, tail, stride):
            one(n)
            ns.append(n)
        took = time.monotonic() - t0
        fails = sum(1 for n in ns if n <= count)
        check(not bad_rc, f"{name}: {len(ns)} runs (N = 1..{count}, stride {stride}, {took:.1f} s) exit 0 or 2, "
                          f"never by a signal {bad_rc[:3]}")
        check(not san, f"{name}: no sanitizer report {[s[0] for s in san[:5]]}")
        for n, text in san[:2]:
            note(f"N={n}: " + text.replace("\n", "\n# "))
        check(not bad_msg, f"{name}: every failure says one line {bad_msg[:3]}")
        if name.startswith("show"):
            check(not differs, f"{name}: every run that succeeds prints the clean run's report (N = {differs[:5]})")
        if name.startswith("km"):
            check(clean_wheel and not differs, f"{name}: every conversion that succeeds writes the clean run's "
                                               f"archive, byte for byte (N = {differs[:5]})")
        if name.startswith("repair"):
            check(not left, f"{name}: a failed repair leaves nothing in the wheel directory "
                            f"(N = {[n for n, _ in left]}: {left[:1]})")
            check(not hidden_ok, f"{name}: a repair that swallowed an allocation failure still wrote a valid wheel "
                                 f"{hidden_ok[:3]}")
            check(clean_wheel and not differs, f"{name}: every repair that succeeds writes the clean run's wheel, "
                                               f"byte for byte (N = {differs[:5]})")
        note(f"{name}: {count} allocations, {fails} runs had one fail, {each * 1000:.0f} ms a run")


def scenario_concurrent(tmp):
    """Several runs repairing the same wheel into one directory at once, some killed: one good wheel."""
    pure = os.path.join(CORPUS, "wheels", "auditwheel", "plumbum-1.6.8-py2.py3-none-any.whl")
    cases = [("pyyaml", lambda out: repair_args(PYYAML, out)),
             ("pure copy", lambda out: [KWHEEL, "repair", "--allow-pure-python-wheel", "-w", out, pure])]
    rng = random.Random(1234)
    for name, argv in cases:
        bad, rcs = [], []
        for rnd in range(4):
            out = os.path.join(tmp, f"{name.replace(' ', '-')}-{rnd}")
            os.makedirs(out)
            procs = [spawn(subprocess.Popen, argv(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           env=kw_env()) for _ in range(6)]
            # kill two of the six at a random moment of their run
            time.sleep(rng.uniform(0.0, 0.3))
            for p in procs[:2]:
                p.kill()
            for p in procs:
                p.wait()
                rcs.append(p.returncode)
            whl = wheels_in(out)
            odd, temps = leftovers(out)
            prob = wheel_problem(os.path.join(out, whl[0])) if len(whl) == 1 else f"{len(whl)} wheels"
            if prob or odd:
                bad.append((rnd, prob, odd))
            # the four that ran to their end succeeded; a later run sweeps what the killed ones left
            if any(rc != 0 for rc in rcs[-4:]):
                bad.append((rnd, "exit codes", rcs[-6:]))
            r = run(argv(out))
            odd, temps = leftovers(out)
            if r.returncode != 0 or temps or odd or len(wheels_in(out)) != 1:
                bad.append((rnd, "rerun", r.returncode, temps, odd))
        check(not bad, f"{name}: 6 concurrent runs, 2 killed, 4 rounds: one complete wheel, the rest exit 0, a "
                       f"rerun leaves no temporary {bad[:2]}")


def main():
    tmp = tempfile.mkdtemp(prefix=f"kwheel-robust-{SCENARIO}-")
    t0 = time.monotonic()
    try:
        {"kill": scenario_kill, "diskfull": scenario_diskfull, "repro": scenario_repro,
         "alloc": scenario_alloc, "concurrent": scenario_concurrent}[SCENARIO](tmp)
    finally:
        subprocess.run(["umount", os.path.join(tmp, "tmpfs")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"1..{n_checks}")
    print(f"# {SCENARIO}: {len(failures)} failures in {time.monotonic() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
