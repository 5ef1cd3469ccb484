#!/usr/bin/env python3
"""`kwheel show -j N` says byte for byte what `-j 1` says, though a wheel's members are read on N threads.

Each corpus wheel (Debian, auditwheel's, Emscripten's) and a big wheel (testlib.big_wheel: 14 ELF members,
a 40 MB streamed member, a stored one, 600 modules) is shown as text, verbose text and JSON with -j 1, 2
and 4: stdout, stderr and the exit status must be the same. So must the whole batch with --ordered, and
the refusal of the big wheel with one member's CRC made to lie (the first bad member in wheel order is
the one named, whichever thread reads it first).

usage: check-jobs-identical.py KWHEEL CORPUS
"""
import glob
import os
import struct
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import big_wheel, check, failures, run  # noqa: E402

KWHEEL, CORPUS = sys.argv[1], sys.argv[2]


def lie_crc(path, names, out):
    """Flip the CRC of each member of names in its local header and central directory entry."""
    data = bytearray(open(path, "rb").read())
    with zipfile.ZipFile(path) as z:
        infos = [z.getinfo(n) for n in names]
    for info in infos:
        bad = struct.pack("<I", info.CRC ^ 0x5A5A5A5A)
        data[info.header_offset + 14:info.header_offset + 18] = bad
        i = data.find(b"PK\x01\x02")
        while i >= 0:
            n = struct.unpack_from("<H", data, i + 28)[0]
            if data[i + 46:i + 46 + n] == info.filename.encode():
                data[i + 16:i + 20] = bad
            i = data.find(b"PK\x01\x02", i + 4)
    open(out, "wb").write(data)


def same(label, argv):
    """Run argv with -j 1, 2, 4: every run must give -j 1's bytes."""
    runs = {j: run([KWHEEL, "show", "-j", str(j)] + argv) for j in (1, 2, 4)}
    one = runs[1]
    ok = all((r.returncode, r.stdout, r.stderr) == (one.returncode, one.stdout, one.stderr) for r in runs.values())
    check(ok and one.returncode in (0, 1, 2) and (one.stdout or one.stderr),
          f"{label}: -j 2 and -j 4 give -j 1's output byte for byte (exit {one.returncode}, "
          f"{len(one.stdout)} bytes)")
    return one


def main():
    wheels = sorted(glob.glob(os.path.join(CORPUS, "wheels", "**", "*.whl"), recursive=True))
    with tempfile.TemporaryDirectory() as tmp:
        big = big_wheel(os.path.join(tmp, "bigpkg-1.0-cp311-cp311-linux_x86_64.whl"))
        for w in wheels + [big]:
            name = os.path.basename(w)
            for mode in ([], ["-v"], ["--json"]):
                same(f"{name} {' '.join(mode) or 'text'}", mode + [w])
        r = same("the batch, --json --ordered", ["--json", "--ordered"] + wheels + [big])
        check(len(r.stdout.splitlines()) == len(wheels) + 1, "the batch: one JSON line per wheel")
        with zipfile.ZipFile(big) as z:
            elf = [i.filename for i in z.infolist() if i.filename.endswith(".so")]
        bad = os.path.join(tmp, "bad", os.path.basename(big))
        os.makedirs(os.path.dirname(bad))
        lie_crc(big, [elf[3], elf[-1], f"bigpkg/data/big.txt"], bad)
        r = same("big wheel, three members whose CRC lies", [bad])
        check(r.returncode == 2 and "crc" in r.stderr.lower() and elf[3] in r.stderr,
              f"the first lying member in wheel order is named ({r.stderr.strip()[:200]})")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
