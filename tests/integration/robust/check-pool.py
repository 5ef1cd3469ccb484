#!/usr/bin/env python3
"""show -j and repair -j when threads cannot be started.

A shim preloaded into kwheel makes pthread_create fail after its first K
calls (EAGAIN, as when a process is out of memory or threads). The one
worker pool must then join only the threads that started and let the
others' share of the work go to them or to the calling thread: every
wheel is still audited or repaired, the output equals a -j 1 run's, and
nothing crashes (repair used to join threads that never started).

Usage: check-pool.py KWHEEL CORPUS SYSROOT
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run  # noqa: E402

KWHEEL, CORPUS, SYSROOT = sys.argv[1:4]
WHEELS = sorted(os.path.join(CORPUS, "wheels", "debian", w)
                for w in os.listdir(os.path.join(CORPUS, "wheels", "debian")) if w.endswith(".whl"))
LIBPATH = ":".join(os.path.join(SYSROOT, d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"))

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/*
 * Call n goes through if KW_SHIM_THREADS[n] is 's' and fails as an exhausted
 * process's would if it is 'f'; past the end, the last letter holds.
 */
int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
	static int calls;
	static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	const char *k = getenv("KW_SHIM_THREADS");
	size_t len = k ? strlen(k) : 0, n;

	if (!real) {
		real = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))dlsym(RTLD_NEXT,
											      "pthread_create");
	}
	n = (size_t)__atomic_fetch_add(&calls, 1, __ATOMIC_SEQ_CST);
	if (!len || k[n < len ? n : len - 1] == 'f') {
		return EAGAIN;
	}
	return real(t, a, fn, arg);
}
"""


def env_with(shim, k):
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    env["LD_PRELOAD"] = shim
    env["KW_SHIM_THREADS"] = str(k)
    # Under AddressSanitizer the shim stands before its runtime in the link order; that is on purpose.
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
    return env


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-pool-")
    try:
        shim = os.path.join(tmp, "shim.so")
        src = os.path.join(tmp, "shim.c")
        with open(src, "w") as f:
            f.write(SHIM)
        r = run("gcc", "-shared", "-fPIC", "-O2", "-o", shim, src, "-ldl")
        if not check(r.returncode == 0, f"the pthread_create shim builds ({r.stderr.strip()[:200]})"):
            return 1
        base = run([KWHEEL, "show", "--json", "--library-path", LIBPATH] + WHEELS)
        check(base.returncode in (0, 1) and len(base.stdout.splitlines()) == len(WHEELS),
              f"show -j 1 of {len(WHEELS)} wheels: one line each (rc {base.returncode})")
        # none start, the first only, a failure between two that start
        for k in ("f", "sf", "fsf", "sfs"):
            r = run([KWHEEL, "show", "--json", "-j", "8", "--library-path", LIBPATH] + WHEELS,
                    env=env_with(shim, k))
            # Without --ordered, lines come as wheels finish: the same lines, in any order.
            check(r.returncode == base.returncode and sorted(r.stdout.splitlines()) == sorted(base.stdout.splitlines())
                  and r.stderr == base.stderr,
                  f"show -j 8 with thread starts {k!r}: the -j 1 output (rc {r.returncode}, "
                  f"{r.stderr.strip()[-300:]})")
        out1 = os.path.join(tmp, "one")
        os.mkdir(out1)
        ref = run([KWHEEL, "repair", "--library-path", LIBPATH, "-w", out1] + WHEELS,
                  env={**os.environ, "SOURCE_DATE_EPOCH": "1600000000"})
        for k in ("f", "fs", "sfs"):
            out = os.path.join(tmp, f"j{k}")
            os.mkdir(out)
            env = env_with(shim, k)
            env["SOURCE_DATE_EPOCH"] = "1600000000"
            r = run([KWHEEL, "repair", "-j", "4", "--library-path", LIBPATH, "-w", out] + WHEELS, env=env)
            same = sorted(os.listdir(out)) == sorted(os.listdir(out1)) and all(
                open(os.path.join(out, w), "rb").read() == open(os.path.join(out1, w), "rb").read()
                for w in os.listdir(out1))
            check(r.returncode == ref.returncode and same and len(os.listdir(out)) == len(WHEELS),
                  f"repair -j 4 with thread starts {k!r}: every wheel, byte-identical to -j 1 "
                  f"(rc {r.returncode} vs {ref.returncode}, {len(os.listdir(out))} wheels; "
                  f"{r.stderr.strip()[-300:]})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
