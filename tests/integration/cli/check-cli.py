#!/usr/bin/env python3
"""The `kwheel` command as a user meets it: messages, exit codes, options.

usage: check-cli.py KWHEEL SOURCE_ROOT GROUP
GROUP is one of:
  messages  option errors name the option and what is wrong with it (a missing
            argument is not an "unknown option"); options may follow the
            wheels; a missing directory is named whole; an unreadable wheel is
            reported as unreadable, not as a bad zip; --plat for another
            architecture or libc is a usage error (exit 3) and writes nothing;
            repair names every missing library at once (readelf gives the
            DT_NEEDED entries it must name); show exits 1 when a library is
            not found and 0 when all are (as the README says)
  version   --version names the version meson.build gives the project
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, write_wheel  # noqa: E402

KWHEEL, SRC, GROUP = sys.argv[1:4]


def project_version():
    with open(os.path.join(SRC, "meson.build")) as f:
        m = re.search(r"project\(.*?version:\s*'([^']+)'", f.read(), re.S)
    return m.group(1)


def build_module(tmp, needed):
    """An extension module m.so needing the sonames given, and its wheel (gcc + the linker as builders)."""
    src = os.path.join(tmp, "m.c")
    with open(src, "w") as f:
        f.write("int PyInit_m(void) { return 0; }\n")
    so = os.path.join(tmp, "m.cpython-311-x86_64-linux-gnu.so")
    stubs = []
    for soname in needed:
        stub = os.path.join(tmp, soname)
        r = run("gcc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", stub, "-x", "c", "/dev/null")
        assert r.returncode == 0, r.stderr
        stubs.append(stub)
    r = run(["gcc", "-shared", "-fPIC", "-Wl,--no-as-needed", "-o", so, src] + stubs)
    assert r.returncode == 0, r.stderr
    for stub in stubs:
        os.unlink(stub)
    whl = os.path.join(tmp, "m-1.0-cp311-cp311-linux_x86_64.whl")
    with open(so, "rb") as f:
        data = f.read()
    write_wheel(whl, {
        "m.cpython-311-x86_64-linux-gnu.so": data,
        "m-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n",
        "m-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: m\nVersion: 1.0\n",
    })
    return whl, so


def readelf_needed(path):
    out = run("readelf", "-dW", path).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def usage_line(r, cmd):
    """The one message line of a usage error (the hint line after it aside)."""
    lines = r.stderr.splitlines()
    return lines[0] if lines else ""


def group_messages():
    tmp = tempfile.mkdtemp(prefix="kwheel-cli-")
    whl, so = build_module(os.path.join(tmp), [])

    # option errors: getopt's own wording is not printed, ours names the option
    cases = [
        (["show", "-j"], "option '-j' needs an argument"),
        (["show", "--jobs"], "option '--jobs' needs an argument"),
        (["repair", "-w"], "option '-w' needs an argument"),
        (["repair", "--plat"], "option '--plat' needs an argument"),
        (["km", "-o"], "option '-o' needs an argument"),
        (["lddtree", "--root"], "option '--root' needs an argument"),
        (["show", "--json=yes", whl], "option '--json' takes no argument"),
        (["show", "--bogus", whl], "unknown option '--bogus'"),
        (["show", "-x", whl], "unknown option '-x'"),
        (["patch", "--bogus", so], "unknown option '--bogus'"),
    ]
    for argv, want in cases:
        r = run([KWHEEL] + argv)
        first = usage_line(r, argv[0])
        check(r.returncode == 3 and first == f"kwheel {argv[0]}: {want}" and len(r.stderr.splitlines()) == 2
              and r.stdout == "",
              f"{' '.join(argv)}: exit 3, one line '{want}' ({r.returncode}: {r.stderr.strip()!r})")

    # options after the wheels, as auditwheel takes them
    out = os.path.join(tmp, "after")
    r = run(KWHEEL, "repair", whl, "-w", out)
    made = sorted(os.listdir(out)) if os.path.isdir(out) else []
    ok = len(made) == 1 and zipfile.ZipFile(os.path.join(out, made[0])).testzip() is None
    check(r.returncode == 0 and ok and not os.path.exists(os.path.join(os.getcwd(), "wheelhouse", made[0] if made else "x")),
          f"repair WHEEL -w DIR: -w after the wheel is an option, the wheel goes to DIR ({r.returncode}: {made})")
    r = run(KWHEEL, "show", whl, "--json")
    check(r.returncode == 0 and json.loads(r.stdout).get("wheel") == os.path.basename(whl),
          "show WHEEL --json: --json after the wheel is an option")
    r = run(KWHEEL, "patch", so, "--print-needed")
    check(r.returncode == 3, f"patch keeps its operands after the options (--replace-needed takes two words) ({r.returncode})")

    # a missing directory is named whole, text and JSON; so is a missing file
    missing = os.path.join(tmp, "nodir") + "/"
    for argv in (["show", missing], ["show", "--json", missing], ["repair", "-w", out, missing],
                 ["km", "-o", os.path.join(tmp, "km"), missing]):
        r = run([KWHEEL] + argv)
        check(r.returncode == 2 and f"'{missing}'" in r.stderr and "''" not in r.stderr + r.stdout
              and "No such file or directory" in r.stderr and r.stdout == "",
              f"{argv[0]} {'--json ' if '--json' in argv else ''}DIR/ (missing): the directory named ({r.stderr.strip()!r})")
    gone = os.path.join(tmp, "gone-1.0-py3-none-any.whl")
    r = run(KWHEEL, "show", gone)
    check(r.returncode == 2 and f"'{gone}'" in r.stderr and "no such file" in r.stderr,
          f"show on a missing wheel: the path named, 'no such file' ({r.stderr.strip()!r})")

    # an unreadable wheel: a permission problem, not a bad archive (as an unprivileged user when root)
    locked = os.path.join(tmp, "locked")
    os.makedirs(locked)
    os.chmod(tmp, 0o755)
    lw = os.path.join(locked, os.path.basename(whl))
    with open(whl, "rb") as f, open(lw, "wb") as g:
        g.write(f.read())
    os.chmod(locked, 0o755)
    os.chmod(lw, 0)
    pre = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    lout = os.path.join(tmp, "lockedout")
    os.makedirs(lout)
    os.chmod(lout, 0o777)
    for cmd in (["show"], ["show", "--json"], ["repair", "-w", lout]):
        r = run(pre + [KWHEEL] + cmd + [lw])
        text = r.stderr + r.stdout
        check(r.returncode == 2 and "Permission denied" in text and "zip" not in text,
              f"{' '.join(cmd[:2])} on an unreadable wheel: 'Permission denied', not a zip complaint ({text.strip()!r})")

    # --plat for another architecture or libc family: usage, nothing written
    for plat in ("manylinux2014_aarch64", "musllinux_1_2_x86_64", "bogus_tag"):
        o = os.path.join(tmp, "plat-" + plat)
        os.makedirs(o)
        r = run(KWHEEL, "repair", "-w", o, "--plat", plat, whl)
        check(r.returncode == 3 and plat in r.stderr and not os.listdir(o),
              f"repair --plat {plat} on an x86_64 glibc wheel: exit 3, nothing written ({r.returncode}: {r.stderr.strip()!r})")

    # every missing library named at once, readelf giving the names
    sub = os.path.join(tmp, "two")
    os.makedirs(sub)
    whl2, so2 = build_module(sub, ["libkwgone1.so.1", "libkwgone2.so.7", "libkwgone3.so.2"])
    gone_libs = [n for n in readelf_needed(so2) if n.startswith("libkwgone")]
    o = os.path.join(sub, "out")
    r = run(KWHEEL, "repair", "-w", o, whl2)
    check(len(gone_libs) == 3 and r.returncode == 1 and len(r.stderr.splitlines()) == 1
          and all(n in r.stderr for n in gone_libs) and not os.listdir(o),
          f"repair names all {len(gone_libs)} missing libraries on one line, exit 1, nothing written ({r.stderr.strip()!r})")
    r = run(KWHEEL, "repair", "--json", "-w", o, whl2)
    err = json.loads(r.stdout).get("error", "") if r.stdout.strip() else ""
    check(r.returncode == 1 and all(n in err for n in gone_libs), f"repair --json: the error names all of them ({err!r})")

    # show: a library not found is a negative verdict (exit 1); all found: 0
    r = run(KWHEEL, "show", whl2)
    check(r.returncode == 1 and all(f"{n} => not found" in r.stdout for n in gone_libs),
          f"show exits 1 when libraries are not found ({r.returncode})")
    r = run(KWHEEL, "show", "--json", whl2)
    libs = json.loads(r.stdout).get("external_libs", {}) if r.stdout.strip() else {}
    check(r.returncode == 1 and all(libs.get(n, "") is None for n in gone_libs), "show --json: the same exit 1")
    r = run(KWHEEL, "show", whl)
    check(r.returncode == 0, f"show exits 0 when every library is found ({r.returncode})")


def group_version():
    r = run(KWHEEL, "--version")
    want = f"kwheel {project_version()}"
    check(r.returncode == 0 and r.stdout == want + "\n", f"--version prints '{want}' ({r.stdout!r})")
    r = run(KWHEEL, "-V")
    check(r.returncode == 0 and r.stdout == want + "\n", "-V too")


def main():
    {"messages": group_messages, "version": group_version}[GROUP]()
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
