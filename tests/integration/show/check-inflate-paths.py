#!/usr/bin/env python3
"""Members inflated whole (libdeflate, up to 32 MiB) and streamed (libzip, larger) are checked alike.

For a small and a 40 MB deflated member: the untouched wheel verifies (its
RECORD digests, made by Python's hashlib, match what kwheel computes); a
wheel whose CRC of that member lies (central and local header alike, so only
the data can tell) is refused with exit 2 and a line naming the CRC; one
whose deflate data is cut short is refused with exit 2.

usage: check-inflate-paths.py KWHEEL
"""
import json
import os
import random
import struct
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, write_wheel  # noqa: E402

KWHEEL = sys.argv[1]


def patch_crc(path, name):
    """Flip the CRC of member name in its local header and central directory entry."""
    data = bytearray(open(path, "rb").read())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
    bad = struct.pack("<I", info.CRC ^ 0x5A5A5A5A)
    data[info.header_offset + 14:info.header_offset + 18] = bad
    i = data.find(b"PK\x01\x02")
    while i >= 0:
        n = struct.unpack_from("<H", data, i + 28)[0]
        if data[i + 46:i + 46 + n] == name.encode():
            data[i + 16:i + 20] = bad
        i = data.find(b"PK\x01\x02", i + 4)
    open(path, "wb").write(data)


def truncate_data(path, name, out):
    """Zero the second half of member name's compressed bytes: the deflate stream no longer decodes to it."""
    data = bytearray(open(path, "rb").read())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
    n, e = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + n + e
    half = info.compress_size // 2
    data[start + half:start + info.compress_size] = bytes(info.compress_size - half)
    open(out, "wb").write(data)


def main():
    rnd = random.Random(7)
    words = [bytes(rnd.choice(b"abcdefghij") for _ in range(rnd.randint(2, 8))) for _ in range(3000)]
    big = b" ".join(rnd.choice(words) for _ in range(8 << 20))[: 40 << 20]
    small = b" ".join(rnd.choice(words) for _ in range(20000))
    with tempfile.TemporaryDirectory() as tmp:
        for label, name, data in (("whole", "pkg/small.txt", small), ("streamed", "pkg/big.txt", big)):
            files = {name: data, "pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n",
                     "pkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
            good = write_wheel(os.path.join(tmp, "pkg-1.0-py3-none-any.whl"), files)
            r = run([KWHEEL, "show", "--json", good])
            rep = json.loads(r.stdout) if r.stdout.strip() else {}
            check(r.returncode == 0 and not rep.get("record_problems"),
                  f"{label}: {len(data) >> 20} MB member verifies against hashlib's RECORD (exit {r.returncode}) "
                  f"{r.stderr.strip()[:200]}")
            cut = os.path.join(tmp, "cut", "pkg-1.0-py3-none-any.whl")
            os.makedirs(os.path.dirname(cut), exist_ok=True)
            truncate_data(good, name, cut)
            r = run([KWHEEL, "show", cut])
            check(r.returncode == 2 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1,
                  f"{label}: damaged deflate data refused, one line, exit 2 ({r.returncode}: {r.stderr.strip()[:200]})")
            patch_crc(good, name)
            r = run([KWHEEL, "show", good])
            check(r.returncode == 2 and "crc" in r.stderr.lower() and r.stdout == "",
                  f"{label}: CRC that lies refused, exit 2 ({r.returncode}: {r.stderr.strip()[:200]})")
            os.unlink(good)
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
