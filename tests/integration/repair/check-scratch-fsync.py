#!/usr/bin/env python3
"""kwheel repair makes only its output durable, not the scratch files it deletes.

Repairs Debian's lxml wheel (nine libraries grafted from the corpus sysroot)
under strace: every fsync/fdatasync must be of the new wheel being written
(its private temporary in the output directory), none of a file in the work
directory, which is deleted when the repair ends. The repaired wheel still
verifies (kwheel show: nothing external left, RECORD clean) and pip accepts it.

usage: check-scratch-fsync.py KWHEEL CORPUS
"""
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run  # noqa: E402

KWHEEL, CORPUS = sys.argv[1:3]
LIBPATH = ":".join(os.path.join(CORPUS, "sysroot", d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"))


def main():
    wheel = os.path.join(CORPUS, "wheels", "debian", "lxml-4.9.2-cp311-cp311-linux_x86_64.whl")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        trace = os.path.join(tmp, "trace")
        # LeakSanitizer cannot run under a tracer (an ASan build would abort at exit): leaks are other tests' job
        asan = ":".join(o for o in [os.environ.get("ASAN_OPTIONS", ""), "detect_leaks=0"] if o)
        r = run(["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", trace,
                 KWHEEL, "repair", "--library-path", LIBPATH, "-w", out, wheel], env=dict(os.environ, ASAN_OPTIONS=asan))
        check(r.returncode == 0, f"repair ran (exit {r.returncode}) {r.stderr.strip()[-200:]}")
        synced = re.findall(r"f(?:data)?sync\(\d+<([^>]*)>", open(trace).read())
        scratch = [p for p in synced if ".kwheel-work-" in p]
        check(synced and not scratch, f"only the output is synced ({len(synced)} calls, "
                                      f"{len(scratch)} of scratch files: {scratch[:2]})")
        new = [os.path.join(out, f) for f in os.listdir(out) if f.endswith(".whl")] if os.path.isdir(out) else []
        check(len(new) == 1, "one repaired wheel")
        if new:
            s = run([KWHEEL, "show", "--json", new[0]])
            rep = json.loads(s.stdout) if s.stdout.strip() else {}
            check(s.returncode == 0 and rep.get("external_libs") == {} and not rep.get("record_problems"),
                  f"the repaired wheel has nothing external and a clean RECORD (exit {s.returncode})")
            p = run(["/usr/bin/python3", "-m", "pip", "install", "--no-index", "--no-deps", "--quiet",
                     "--disable-pip-version-check", "--target", os.path.join(tmp, "t"), new[0]])
            check(p.returncode == 0, f"pip install --no-index accepts it {p.stderr.strip()[-200:]}")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
