#!/usr/bin/env python3
"""The hostile-input table: every case made by fixtures/wheels/make-hostile.py.

For each case, kwheel show (text and --json), kwheel repair and, for ELF
cases, kwheel patch on the forged member must: not crash (no signal, no
sanitizer report), finish within the time limit and a memory bound, exit
with the documented code, give one error line that names the file and the
problem, leave the input byte for byte unchanged, and write nothing but
complete wheels (here: nothing, for refused inputs).

usage: check-hostile.py KWHEEL HOSTILE_DIR
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

KWHEEL, DIR = sys.argv[1], sys.argv[2]
TIMEOUT = 60
MAX_RSS_KB = 1536 * 1024
failures = []


def check(cond, what):
    if not cond:
        print("FAIL " + what, flush=True)
        failures.append(what)
    return cond


def run(args, cwd=None):
    """Run under /usr/bin/time for the peak RSS; returns (rc, stdout, stderr, rss_kb)."""
    try:
        r = subprocess.run(["/usr/bin/time", "-f", "KWRSS %M"] + args, capture_output=True, text=True,
                           timeout=TIMEOUT, cwd=cwd, errors="replace")
    except subprocess.TimeoutExpired:
        return None, "", "timeout", 0
    err_lines = r.stderr.splitlines()
    rss = 0
    if err_lines and err_lines[-1].startswith("KWRSS "):
        rss = int(err_lines[-1].split()[1])
        err_lines = err_lines[:-1]
    if err_lines and err_lines[-1].startswith("Command "):  # /usr/bin/time's note on a signal or exit
        err_lines = err_lines[:-1]
    return r.returncode, r.stdout, "\n".join(err_lines), rss


def sane(tag, rc, err, rss):
    ok = check(rc is not None, f"{tag}: finished within {TIMEOUT} s")
    ok &= check(rc is None or rc in (0, 1, 2, 3), f"{tag}: exit code {rc} (crash?) {err[-300:]}")
    ok &= check("Sanitizer" not in err and "runtime error" not in err, f"{tag}: sanitizer report: {err[-500:]}")
    ok &= check(rss < MAX_RSS_KB, f"{tag}: peak RSS {rss} KB")
    return ok


def sha(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    with open(os.path.join(DIR, "cases.json")) as f:
        cases = json.load(f)
    check(len(cases) >= 30, f"at least 30 hostile cases ({len(cases)})")
    for c in cases:
        path = os.path.join(DIR, c["file"])
        base = os.path.basename(path)
        cid = c["id"]
        before = sha(path)
        listing = sorted(os.listdir(os.path.dirname(path)))
        word = c["word"].lower()
        refused = c["show_rc"] == 2

        rc, out, err, rss = run([KWHEEL, "show", path])
        if sane(f"{cid} show", rc, err, rss):
            if c["show_rc"] is not None:
                check(rc == c["show_rc"], f"{cid} show: exit {rc}, expected {c['show_rc']} ({err.strip()[:200]})")
            else:
                check(rc in (0, 1), f"{cid} show: exit {rc}, expected 0 or 1 ({err.strip()[:200]})")
            if refused:
                lines = err.strip().splitlines()
                check(len(lines) == 1 and base in lines[0] and word in lines[0].lower(),
                      f"{cid} show: one error line naming {base} and '{word}': {err.strip()!r}")
            elif c["show_rc"] == 1 and word:
                check(word in out.lower(), f"{cid} show: the report says '{word}'")

        rc, out, err, rss = run([KWHEEL, "show", "--json", path])
        if sane(f"{cid} show --json", rc, err, rss) and refused:
            try:
                line = json.loads(out.strip().splitlines()[0])
            except (ValueError, IndexError):
                line = {}
            check(line.get("error") and word in line["error"].lower() and line.get("error_kind"),
                  f"{cid} show --json: error line with '{word}': {out.strip()[:200]}")

        outdir = tempfile.mkdtemp(prefix="kwheel-hostile-out-")
        try:
            rc, out, err, rss = run([KWHEEL, "repair", "-w", outdir, path])
            if sane(f"{cid} repair", rc, err, rss):
                written = os.listdir(outdir)
                if refused:
                    check(rc == 2 and not written, f"{cid} repair: exit {rc} (2 expected), wrote {written}")
                    lines = err.strip().splitlines()
                    check(len(lines) == 1 and base in lines[0], f"{cid} repair: one error line naming {base}: {err.strip()!r}")
                else:
                    check(all(n.endswith(".whl") and not n.startswith(".") for n in written),
                          f"{cid} repair: only complete wheels in the output ({written})")
                    for n in written:
                        check(zipfile.ZipFile(os.path.join(outdir, n)).testzip() is None, f"{cid} repair: {n} is sound")
        finally:
            shutil.rmtree(outdir, ignore_errors=True)

        if c["kind"] == "elf" and zipfile.is_zipfile(path):
            tmp = tempfile.mkdtemp(prefix="kwheel-hostile-elf-")
            try:
                with zipfile.ZipFile(path) as z:
                    for n in z.namelist():
                        if n.endswith(".so"):
                            p = os.path.join(tmp, os.path.basename(n))
                            with open(p, "wb") as f:
                                f.write(z.read(n))
                            h = sha(p)
                            rc, out, err, rss = run([KWHEEL, "patch", "--set-rpath", "$ORIGIN/" + "x" * 300,
                                                     "--replace-needed", "libc.so.6", "libc-kw.so.6", p])
                            if sane(f"{cid} patch {n}", rc, err, rss) and rc != 0:
                                check(sha(p) == h, f"{cid} patch: refused input left unchanged")
                                check(len(err.strip().splitlines()) == 1 and os.path.basename(p) in err,
                                      f"{cid} patch: one error line naming the file: {err.strip()!r}")
                            elif rc == 0:
                                r2 = subprocess.run(["eu-elflint", "--gnu-ld", p], capture_output=True, text=True)
                                check("lint" not in r2.stderr.lower(), f"{cid} patch: elflint could read the result")
                            check(sorted(os.listdir(tmp)) == sorted(set(os.listdir(tmp))), "")
                check(not [f for f in os.listdir(tmp) if f.startswith(".")], f"{cid} patch: no temporary left")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

        check(sha(path) == before, f"{cid}: input unchanged")
        check(sorted(os.listdir(os.path.dirname(path))) == listing, f"{cid}: nothing written beside the input")
        print(("FAIL " if any(f.startswith(cid + " ") or f.startswith(cid + ":") for f in failures) else "ok   ")
              + f"{cid}: {c['what']}", flush=True)
    print(f"{len(cases)} cases, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
