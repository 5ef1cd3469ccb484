#!/usr/bin/env python3
"""Run one data-driven integration case: tests/integration/<area>/cases/<case>/.

Files in a case directory:
  args           the kwheel arguments, shell words; @CORPUS@, @SYSROOT_LIBPATH@,
                 @FIXTURES@ and @TMP@ are substituted
  rc             the expected exit code
  stdin          (optional) fed to kwheel on standard input, substituted too
  expected.json  (optional) a JSON list: the output's JSON lines, each matched
                 as a subset (objects: listed keys only; lists: same length)
  expected.out   (optional) lines that must each occur in standard output
  expected.err   (optional) lines that must each occur in standard error
  absent.out     (optional) lines that must not occur in standard output
Every JSON line kwheel prints for `show --json` is validated against
man/kwheel-show.schema.json.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile


def subst(text, env):
    for k, v in env.items():
        text = text.replace(k, v)
    return text


def match(exp, got, where):
    if isinstance(exp, dict):
        if not isinstance(got, dict):
            return f"{where}: expected an object, got {got!r}"
        for k, v in exp.items():
            if k not in got:
                return f"{where}: missing key {k!r}"
            err = match(v, got[k], f"{where}.{k}")
            if err:
                return err
        return None
    if isinstance(exp, list):
        if not isinstance(got, list) or len(got) != len(exp):
            return f"{where}: expected {exp!r}, got {got!r}"
        for i, (e, g) in enumerate(zip(exp, got)):
            err = match(e, g, f"{where}[{i}]")
            if err:
                return err
        return None
    if exp != got:
        return f"{where}: expected {exp!r}, got {got!r}"
    return None


def main():
    case, kwheel, src = sys.argv[1], sys.argv[2], sys.argv[3]
    corpus = os.environ.get("KW_CORPUS") or os.path.join(src, "build", "corpus")
    corpus = os.path.realpath(corpus)
    tmp = tempfile.mkdtemp(prefix="kwheel-case-")
    sysroot = os.path.join(os.environ.get("KW_BUILD_ROOT", "."), "fixtures", "sysroot", "root")
    env = {
        "@CORPUS@": corpus,
        "@SYSROOT_LIBPATH@": f"{sysroot}/usr/lib/x86_64-linux-gnu:{sysroot}/lib/x86_64-linux-gnu",
        "@SYSROOT@": sysroot,
        "@FIXTURES@": os.path.join(os.environ.get("KW_BUILD_ROOT", "."), "fixtures"),
        "@TMP@": tmp,
    }

    def read(name):
        p = os.path.join(case, name)
        return subst(open(p).read(), env) if os.path.exists(p) else None

    try:
        args = shlex.split(read("args"))
        want_rc = int(read("rc").strip())
        stdin = read("stdin")
        penv = dict(os.environ)
        penv.pop("LD_LIBRARY_PATH", None)
        p = subprocess.run([kwheel] + args, input=(stdin or "").encode(), capture_output=True,
                           timeout=300, env=penv)
        out, err = p.stdout.decode(), p.stderr.decode()
        problems = []
        if p.returncode != want_rc:
            problems.append(f"exit code {p.returncode}, expected {want_rc}")
        if "--json" in args and args and args[0] == "show":
            schema_path = os.path.join(src, "man", "kwheel-show.schema.json")
            try:
                import jsonschema
                schema = json.load(open(schema_path))
                validator = jsonschema.Draft202012Validator(schema)
            except ImportError:
                validator = None
                problems.append("python3-jsonschema is not installed")
            lines = [json.loads(l) for l in out.splitlines() if l.strip()]
            for i, obj in enumerate(lines):
                if validator:
                    for e in validator.iter_errors(obj):
                        problems.append(f"line {i}: schema: {e.message} at {list(e.path)}")
        exp = read("expected.json")
        if exp is not None:
            lines = [json.loads(l) for l in out.splitlines() if l.strip()]
            e = match(json.loads(exp), lines, "output")
            if e:
                problems.append(e)
        for fname, text, must in (("expected.out", out, True), ("expected.err", err, True),
                                  ("absent.out", out, False)):
            want = read(fname)
            if want is None:
                continue
            for line in want.splitlines():
                if line and (line in text) != must:
                    problems.append(f"{fname}: {'missing' if must else 'unwanted'} line {line!r}")
        if problems:
            print(f"case {os.path.basename(case)}: kwheel {shlex.join(args)}")
            for pr in problems:
                print("  " + pr)
            print("--- stdout\n" + out[:6000] + "\n--- stderr\n" + err[:3000])
            return 1
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
