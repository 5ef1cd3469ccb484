#!/usr/bin/env python3
"""Index-scale batches: --shard, --skip-done and the GNU parallel recipe (tools/show-batch).

usage: check-batch.py KWHEEL SOURCE_ROOT CORPUS

Every corpus wheel, listed in a file:
  - keys: each --json line carries the wheel's sha256 (hashlib's) and the
    version meson.build gives kwheel;
  - --shard K/N for K = 0..N-1 partitions the wheels (each in exactly one
    shard), by file name: a copy elsewhere lands in the same shard;
  - --skip-done skips exactly the wheels a file reports for this version: a
    line of another version, or one cut short, counts for nothing;
  - the recipe, run with GNU parallel (-S 2/:), is killed (SIGKILL to its
    process group) once some shards have written and before all have; a
    shard's last line is cut in half as a kill mid-write would leave it;
    the same command then resumes; the shards' complete lines name each
    wheel exactly once, and the merge equals one single-process
    `kwheel show --json` over the list.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run  # noqa: E402

KWHEEL, SRC, CORPUS = sys.argv[1:4]
RECIPE = os.path.join(SRC, "tools", "show-batch")
SHARDS = 8


def version():
    with open(os.path.join(SRC, "meson.build")) as f:
        return re.search(r"project\(.*?version:\s*'([^']+)'", f.read(), re.S).group(1)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def lines_of(path):
    """The complete JSON objects of a JSONL file (a cut line is not one)."""
    docs = []
    if not os.path.exists(path):
        return docs
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if isinstance(d, dict):
                docs.append(d)
    return docs


def kill_session(sid):
    """SIGKILL every process of session sid until none is left; how many there were."""
    seen = set()
    for _ in range(100):
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(d))
        if not pids:
            break
        for pid in pids:
            seen.add(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)
    return len(seen)


def show(args, stdin=None):
    return subprocess.run([KWHEEL, "show", "--json"] + args, input=stdin, capture_output=True, text=True)


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-batch-")
    wheels = sorted(os.path.join(root, n) for root, _, names in os.walk(os.path.join(CORPUS, "wheels"))
                    for n in names if n.endswith(".whl"))
    if not check(len(wheels) >= 30, f"the corpus holds {len(wheels)} wheels"):
        sys.exit(1)
    listing = "".join(w + "\n" for w in wheels)
    list_path = os.path.join(tmp, "list")
    with open(list_path, "w") as f:
        f.write(listing)
    single = show(["-"], listing)
    base = [json.loads(l) for l in single.stdout.splitlines()]
    check(len(base) == len(wheels), f"one single-process run: {len(base)} lines for {len(wheels)} wheels")

    # keys
    ver = version()
    by_path = {d["path"]: d for d in base}
    bad = [p for p in wheels if by_path.get(p, {}).get("sha256") != sha(p) or by_path[p].get("kwheel_version") != ver]
    check(not bad, f"every line holds the wheel's sha256 and kwheel_version {ver} (wrong: {bad[:3]})")

    # --shard partitions, by name
    seen = {}
    for k in range(3):
        r = show(["--shard", f"{k}/3", "-"], listing)
        for d in (json.loads(l) for l in r.stdout.splitlines()):
            seen.setdefault(d["path"], []).append(k)
    check(sorted(seen) == wheels and all(len(v) == 1 for v in seen.values()),
          f"--shard K/3 for K = 0, 1, 2: each wheel in exactly one shard ({len(seen)} of {len(wheels)})")
    sizes = [sum(1 for v in seen.values() if v == [k]) for k in range(3)]
    check(all(s > 0 for s in sizes), f"every shard gets wheels ({sizes})")
    moved = os.path.join(tmp, "elsewhere")
    os.makedirs(moved)
    copy = shutil.copy(wheels[0], moved)
    k0 = seen[wheels[0]][0]
    r = show(["--shard", f"{k0}/3", copy])
    check(len(r.stdout.splitlines()) == 1, "a copy in another directory lands in the same shard (by file name)")
    for arg in ("3/3", "1/0", "x/2", "1/", "-1/2", "1/2/3"):
        r = show(["--shard", arg, wheels[0]])
        check(r.returncode == 3 and r.stdout == "", f"--shard {arg}: usage error ({r.returncode})")

    # --skip-done: by sha256 and version; cut lines and other versions count for nothing
    done = os.path.join(tmp, "done.jsonl")
    half = single.stdout.splitlines()
    with open(done, "w") as f:
        f.writelines(l + "\n" for l in half[:10])
        other = json.loads(half[10])
        other["kwheel_version"] = "0.0.0-other"
        f.write(json.dumps(other) + "\n")
        f.write(half[11][: len(half[11]) // 2])
    r = show(["--skip-done", done, "-"], listing)
    got = [json.loads(l)["path"] for l in r.stdout.splitlines()]
    want = [json.loads(l)["path"] for l in half[10:]]
    check(got == want, f"--skip-done skips the 10 wheels reported, not the other version's or the cut line's "
          f"({len(got)} audited, want {len(want)})")
    r = show(["--skip-done", os.path.join(tmp, "missing.jsonl"), wheels[0]])
    check(r.returncode in (0, 1) and len(r.stdout.splitlines()) == 1, "a missing --skip-done file reports nothing done")
    r = show(["--skip-done", tmp, wheels[0]])
    check(r.returncode == 2 and tmp in r.stderr, f"an unreadable --skip-done file is an error ({r.stderr.strip()})")

    # the recipe with GNU parallel: killed midway, resumed
    if not check(shutil.which("parallel") is not None, "GNU parallel is installed (tools/deps)"):
        sys.exit(1)
    out = os.path.join(tmp, "out")
    env = dict(os.environ, KWHEEL=KWHEEL)
    env.pop("LD_LIBRARY_PATH", None)
    p = subprocess.Popen([RECIPE, "-n", str(SHARDS), "-S", "2/:", list_path, out], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    written = 0
    while time.time() < deadline and p.poll() is None:
        written = sum(len(lines_of(os.path.join(out, f"shard-{k}.jsonl"))) for k in range(SHARDS))
        if written >= 3:
            break
        time.sleep(0.005)
    finished = p.poll() is not None
    # As a machine or pod going away would: every process of the run, whatever group parallel put it in.
    killed = kill_session(p.pid)
    p.wait()
    check(killed > 1, f"SIGKILL reached the run's {killed} processes (the recipe, parallel, the shards)")
    written = sum(len(lines_of(os.path.join(out, f"shard-{k}.jsonl"))) for k in range(SHARDS))
    check(not finished and 0 < written < len(wheels),
          f"the run was killed midway: {written} of {len(wheels)} lines written")
    # A kill in the middle of a write leaves half a line: cut the longest shard's last line so.
    files = [os.path.join(out, f"shard-{k}.jsonl") for k in range(SHARDS)]
    full = max((f for f in files if os.path.exists(f)), key=lambda f: len(lines_of(f)))
    with open(full) as f:
        text = f.read()
    body = text[:-1].rsplit("\n", 1)
    last = body[-1]
    cut = (body[0] + "\n" if len(body) == 2 else "") + last[: len(last) // 2]
    with open(full, "w") as f:
        f.write(cut)
    r = subprocess.run([RECIPE, "-n", str(SHARDS), "-S", "2/:", list_path, out], env=env, capture_output=True,
                       text=True, timeout=900)
    check(r.returncode == 0, f"the same command resumes and finishes ({r.returncode}: {r.stderr.strip()[-300:]})")
    docs = [d for f in files for d in lines_of(f)]
    counts = {}
    for d in docs:
        counts[d["sha256"]] = counts.get(d["sha256"], 0) + 1
    shas = {sha(w) for w in wheels}
    check(set(counts) == shas and all(c == 1 for c in counts.values()),
          f"the shards' complete lines name each wheel exactly once ({len(docs)} lines, {len(shas)} wheels, "
          f"repeated: {[s[:12] for s, c in counts.items() if c > 1]})")
    merged = lines_of(os.path.join(out, "all.jsonl"))
    want = sorted(base, key=lambda d: d["path"])
    check(merged == want, f"the merge equals the single-process run ({len(merged)} and {len(want)} lines)")

    # A shard still being written (a run not yet gone) is not written twice: its lock refuses a second run.
    lock = subprocess.Popen(["flock", os.path.join(out, "shard-0.lock"), "sleep", "30"], start_new_session=True)
    time.sleep(0.2)
    r = subprocess.run([RECIPE, "-n", str(SHARDS), "-S", "2/:", list_path, out], env=env, capture_output=True,
                       text=True, timeout=900)
    kill_session(lock.pid)
    lock.wait()
    check(r.returncode != 0 and "shard-0" in r.stderr and lines_of(os.path.join(out, "all.jsonl")) == want,
          f"a run over a shard another run holds fails, naming it, and writes nothing twice ({r.returncode}: "
          f"{r.stderr.strip()[-200:]})")
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
