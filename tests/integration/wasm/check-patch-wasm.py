#!/usr/bin/env python3
"""kwheel patch on a wasm side module (the corpus speedups extension).

    check-patch-wasm.py KWHEEL CORPUS

--set-rpath gives exactly the bytes of this suite's own Python splice;
--print-rpath/--print-needed read back what was written; --replace-needed,
--add-rpath, --remove-rpath, --remove-needed each change only what they
name (wasm-validate accepts every result, everything after dylink.0 is
unchanged); -o leaves the input alone; --set-soname is refused (exit 2),
and a truncated module is one line naming the file, exit 2, untouched.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import check, failures  # noqa: E402

_spec = importlib.util.spec_from_file_location("shapely_check", os.path.join(HERE, "check-pyodide-shapely.py"))
sc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sc)


def tail(mod):
    size, p = sc.read_leb(mod, 9)
    return mod[p + size:]


def main():
    kwheel, corpus = sys.argv[1], sys.argv[2]
    with zipfile.ZipFile(os.path.join(corpus, sc.SHAPELY)) as z:
        orig = z.read("shapely/speedups/_speedups.cpython-310-wasm32-emscripten.so")

    def kp(*args):
        return subprocess.run([kwheel, "patch", *args], capture_output=True, text=True)

    with tempfile.TemporaryDirectory(prefix="kw-patch-wasm-") as tmp:
        f = os.path.join(tmp, "m.so")
        open(f, "wb").write(orig)
        r = kp("--print-rpath", "--print-needed", f)
        check(r.returncode == 0 and r.stdout == "\nlibgeos_c.so\n", f"prints no runtime path and the NEEDED ({r.stdout!r})")
        out = os.path.join(tmp, "o.so")
        r = kp("-o", out, "--set-rpath", "$ORIGIN/../../Shapely.libs", f)
        check(r.returncode == 0 and open(f, "rb").read() == orig, f"-o leaves the input alone ({r.stderr.strip()})")
        check(open(out, "rb").read() == sc.add_runtime_path(orig, "$ORIGIN/../../Shapely.libs"),
              "--set-rpath: the bytes of the independent splice")
        r = kp("--print-rpath", out)
        check(r.stdout == "$ORIGIN/../../Shapely.libs\n", f"--print-rpath reads it back ({r.stdout!r})")
        steps = [
            (["--replace-needed", "libgeos_c.so", "libgeos_c-0123abcd.so"], "--print-needed", "libgeos_c-0123abcd.so\n"),
            (["--add-rpath", "$ORIGIN"], "--print-rpath", "$ORIGIN/../../Shapely.libs:$ORIGIN\n"),
            (["--remove-rpath"], "--print-rpath", "\n"),
            (["--add-needed", "libx.so"], "--print-needed", "libx.so\nlibgeos_c-0123abcd.so\n"),
            (["--remove-needed", "libx.so"], "--print-needed", "libgeos_c-0123abcd.so\n"),
        ]
        for edit, pr, want in steps:
            r = kp(*edit, out)
            got = kp(pr, out).stdout
            data = open(out, "rb").read()
            ok = r.returncode == 0 and got == want and tail(data) == tail(orig)
            if shutil.which("wasm-validate"):
                ok = ok and subprocess.run(["wasm-validate", "--enable-all", out], capture_output=True).returncode == 0
            check(ok, f"{' '.join(edit)}: {pr} gives {want!r} ({got!r}), rest of the module unchanged, valid")
        before = open(out, "rb").read()
        r = kp("--set-soname", "x", out)
        check(r.returncode == 2 and "SONAME" in r.stderr and open(out, "rb").read() == before,
              f"--set-soname refused ({r.returncode}, {r.stderr.strip()})")
        bad = os.path.join(tmp, "bad.so")
        open(bad, "wb").write(orig[:30])
        r = kp("--set-rpath", "$ORIGIN", bad)
        check(r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1 and "bad.so" in r.stderr
              and open(bad, "rb").read() == orig[:30], f"truncated module: one line, exit 2, untouched ({r.stderr.strip()})")
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
