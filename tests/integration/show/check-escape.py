#!/usr/bin/env python3
"""Output no input can forge: names from wheels and ELF files are escaped in every line kwheel prints.

usage: check-escape.py KWHEEL

- an extension whose DT_NEEDED entries hold a newline followed by a fake
  "lib => path" line, an ESC sequence (clear screen) and a C1 CSI (added with
  gcc and `kwheel patch --add-needed`): `show`, `show -v`, `lddtree` and
  `repair` print no control byte and no forged line (\\n, \\x1b, \\xc2\\x9b in
  their place), `show --json` gives the exact bytes back through json.loads,
  and every error is one stderr line
- a wheel whose member name and WHEEL Tag are not UTF-8 (zip bytes written
  by hand, no UTF-8 flag): `show --json` prints one valid JSON line, the
  member name as pip reads it (CP437, the zip's encoding without the flag),
  the tag's strings decoding with surrogateescape to the original bytes
  (\\uDCNN), and `show` prints those bytes as \\xNN
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, record_digest, write_wheel  # noqa: E402

KWHEEL = sys.argv[1]
NL = "libevil.so\n    forged.so => /usr/lib/forged.so"
ESC = "libesc\x1b[2J.so"
C1 = "libc1\u009b2J.so"


def run_bytes(*argv, **kw):
    return subprocess.run(list(argv), capture_output=True, **kw)


def control_bytes(b):
    """Bytes a terminal acts on, other than the newlines that end lines: C0, DEL and UTF-8 C1."""
    text = b.decode("utf-8", "surrogateescape")
    return [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f]


def raw_wheel(path, files):
    """A wheel whose names are raw bytes (no UTF-8 flag): written with ASCII stand-ins, then swapped."""
    dist, ver = os.path.basename(path).split("-")[:2]
    rec = f"{dist}-{ver}.dist-info/RECORD".encode()
    body = b"".join(n + b"," + record_digest(d).encode() + b"," + str(len(d)).encode() + b"\n"
                    for n, d in files.items())
    files = dict(files)
    files[rec] = body + rec + b",,\n"
    stand_in = {n: (b"S%04d" % i + b"x" * len(n))[:len(n)] for i, n in enumerate(files)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for n, d in files.items():
            z.writestr(zipfile.ZipInfo(stand_in[n].decode(), (2020, 1, 1, 0, 0, 0)), d)
    with open(path, "rb") as f:
        b = f.read()
    for n, s in stand_in.items():
        b = b.replace(s, n)
    with open(path, "wb") as f:
        f.write(b)
    return path


def crafted_needed(tmp):
    src, so = os.path.join(tmp, "m.c"), os.path.join(tmp, "m.so")
    with open(src, "w") as f:
        f.write("void *PyInit_m(void) { return 0; }\n")
    r = run_bytes("gcc", "-shared", "-fPIC", "-o", so, src)
    r2 = run_bytes(KWHEEL, "patch", "--add-needed", NL, "--add-needed", ESC, "--add-needed", C1, so)
    if not check(r.returncode == 0 and r2.returncode == 0, f"gcc and kwheel patch craft the DT_NEEDED entries "
                                                           f"({r2.stderr[-200:]!r})"):
        return
    r = run_bytes("readelf", "-d", so)
    check(b"forged.so => /usr/lib/forged.so]" in r.stdout and b"\x1b[2J" in r.stdout,
          "readelf sees the newline and the ESC in DT_NEEDED")
    di = "evil-1.0.dist-info"
    with open(so, "rb") as f:
        data = f.read()
    whl = write_wheel(os.path.join(tmp, "evil-1.0-cp311-cp311-linux_x86_64.whl"), {
        "evil/m.cpython-311-x86_64-linux-gnu.so": data,
        f"{di}/METADATA": b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
        f"{di}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n"})
    for args in (["show"], ["show", "-v"], ["lddtree", so], ["lddtree", "-a", so], ["lddtree", "-l", so]):
        argv = [KWHEEL] + args + ([] if args[0] == "lddtree" else [whl])
        r = run_bytes(*argv)
        what = "kwheel " + " ".join(a for a in args if a != so)
        check(r.returncode in (0, 1) and not control_bytes(r.stdout) and not control_bytes(r.stderr),
              f"{what}: no control character reaches the terminal (rc {r.returncode})")
        lines = r.stdout.decode("utf-8", "surrogateescape").splitlines()
        check(not any(l.lstrip().startswith("forged.so") for l in lines),
              f"{what}: no line is forged by the newline in DT_NEEDED")
        if args != ["lddtree", "-l", so]:
            out = r.stdout.decode("utf-8", "surrogateescape")
            check("libevil.so\\n    forged.so" in out and "libesc\\x1b[2J.so" in out and "libc1\\xc2\\x9b2J.so" in out,
                  f"{what}: the names are shown escaped")
    r = run_bytes(KWHEEL, "show", "--json", whl)
    lines = r.stdout.splitlines()
    doc = json.loads(lines[0]) if len(lines) == 1 else {}
    check(len(lines) == 1 and sorted(doc.get("external_libs", {})) == sorted([NL, ESC, C1]),
          "show --json: one line, and json.loads gives the exact DT_NEEDED strings back")
    check(not control_bytes(r.stdout), "show --json: no raw control byte (C1 as \\u009B, ESC as \\u001B)")
    r = run_bytes(KWHEEL, "lddtree", "--json", so)
    doc = json.loads(r.stdout) if r.stdout.count(b"\n") == 1 else {}
    check(sorted(doc.get("needed", [])) == sorted([C1, ESC, NL]),
          f"lddtree --json: the exact names ({doc.get('needed')})")
    wh = os.path.join(tmp, "wheelhouse")
    r = run_bytes(KWHEEL, "repair", "-w", wh, whl)
    err = [l for l in r.stderr.splitlines() if l.strip()]
    check(r.returncode in (1, 2) and len(err) == 1 and not control_bytes(r.stderr) and b"\\n    forged.so" in r.stderr,
          f"repair: the missing library is named escaped, on one line ({r.stderr[-300:]!r})")


def not_utf8(tmp):
    src, so = os.path.join(tmp, "n.c"), os.path.join(tmp, "n.so")
    with open(src, "w") as f:
        f.write("void *PyInit_n(void) { return 0; }\n")
    if not check(run_bytes("gcc", "-shared", "-fPIC", "-o", so, src).returncode == 0, "gcc builds a module"):
        return
    with open(so, "rb") as f:
        data = f.read()
    di = b"raw8-1.0.dist-info"
    name = b"raw8/\xff\xfe.cpython-311-x86_64-linux-gnu.so"
    tag = b"cp311-cp311-\xc3\x28"
    whl = raw_wheel(os.path.join(tmp, "raw8-1.0-cp311-cp311-linux_x86_64.whl"), {
        name: data, di + b"/METADATA": b"Metadata-Version: 2.1\nName: raw8\nVersion: 1.0\n",
        di + b"/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\nTag: " + tag + b"\n"})
    with zipfile.ZipFile(whl) as z:
        check(any(i.flag_bits & 0x800 == 0 and i.filename.encode("cp437") == name for i in z.infolist()),
              "the member name is stored as raw bytes (no UTF-8 flag)")
    pip_name = name.decode("cp437")
    r = run_bytes(KWHEEL, "show", "--json", whl)
    lines = r.stdout.splitlines()
    try:
        doc = json.loads(lines[0]) if len(lines) == 1 else None
    except ValueError:
        doc = None
    check(doc is not None and not r.stderr.strip(), f"show --json: one valid JSON line, nothing on stderr "
                                                   f"({r.stderr[-200:]!r})")
    if doc:
        # without the UTF-8 flag a name is CP437, which is how pip reads (and installs) it
        names = [m["name"] for m in doc["members"]]
        check(names == [pip_name], f"the member name is the one pip reads ({names})")
        check(tag in [t.encode("utf-8", "surrogateescape") for t in doc["wheel_tags"]],
              "the WHEEL tag decodes (surrogateescape) to the file's bytes")
        check(b"\\uDCC3(" in r.stdout, "the bytes are written \\uDCC3")
    # the full report lists members and WHEEL tags (the default one names neither)
    r = run_bytes(KWHEEL, "show", "-v", whl)
    check(r.returncode in (0, 1) and pip_name.encode() in r.stdout and b"\xff" not in r.stdout
          and b"cp311-cp311-\\xc3(" in r.stdout, "show -v: the name as pip reads it, the tag's bytes as \\xNN")


def main():
    tmp = tempfile.mkdtemp(prefix="kw-escape-")
    try:
        crafted_needed(tmp)
        not_utf8(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
