"""What the integration scripts share: result lines, subprocesses, digests and test wheels.

A script imports it after putting tests/integration on sys.path (each is run
by path from its own directory).
"""
import base64
import hashlib
import os
import subprocess
import zipfile

failures = []


def check(cond, what):
    """One result line; a failure is remembered for the script's exit status."""
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def run(*argv, **kw):
    """Run argv (one list, or the words as arguments), capturing its output as text."""
    if len(argv) == 1 and isinstance(argv[0], (list, tuple)):
        argv = argv[0]
    return subprocess.run(list(argv), capture_output=True, text=True, **kw)


def sha(path):
    """Hex SHA-256 of a file, read in pieces (some are hundreds of megabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def record_digest(data):
    """A RECORD line's digest field for these bytes."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(path, files, date_time=(2020, 1, 1, 0, 0, 0), stored=()):
    """Write FILES (name -> bytes, in order) as the wheel PATH, with a RECORD listing every member.

    The .dist-info directory is the one the file name implies; fixed dates keep the bytes reproducible.
    Members named in STORED are stored, the others deflated.
    """
    dist, ver = os.path.basename(path).split("-")[:2]
    rec = f"{dist}-{ver}.dist-info/RECORD"
    lines = [f"{n},{record_digest(data)},{len(data)}" for n, data in files.items()] + [f"{rec},,"]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in list(files.items()) + [(rec, "\n".join(lines).encode() + b"\n")]:
            info = zipfile.ZipInfo(n, date_time)
            info.external_attr = 0o644 << 16
            z.writestr(info, data, zipfile.ZIP_STORED if n in stored else zipfile.ZIP_DEFLATED)
    return path


# Libraries of the host that become members of big_wheel (those present); their own needs get grafted.
BIG_WHEEL_LIBS = ["libxml2.so.2", "libicui18n.so.72", "libarchive.so.13", "libcurl.so.4", "libgnutls.so.30",
                  "libsqlite3.so.0", "libfreetype.so.6", "libtiff.so.6", "libgio-2.0.so.0", "libzip.so.4",
                  "libjansson.so.4", "libyaml-0.so.2", "libelf.so.1", "libpng16.so.16"]


def big_wheel(path, n_py=600, text_mb=40):
    """A wheel that is most of a batch's work in one: many ELF members (host libraries, needing others that
    repair grafts, ICU's 30 MB data among them), a text member past the 32 MiB whole-inflate limit, a stored
    member and n_py small modules. Members run in parallel inside it; the result must not depend on it.
    """
    import random
    libdir = "/usr/lib/x86_64-linux-gnu"
    dist, ver = os.path.basename(path).split("-")[:2]
    files = {}
    for i, lib in enumerate(l for l in BIG_WHEEL_LIBS if os.path.exists(os.path.join(libdir, l))):
        files[f"{dist}/_m{i:02d}.cpython-311-x86_64-linux-gnu.so"] = open(os.path.join(libdir, lib), "rb").read()
    rnd = random.Random(17)
    words = [bytes(rnd.choice(b"abcdefghij") for _ in range(rnd.randint(2, 8))) for _ in range(3000)]
    files[f"{dist}/data/big.txt"] = b" ".join(rnd.choice(words) for _ in range(text_mb << 18))[: text_mb << 20]
    for i in range(n_py):
        files[f"{dist}/mod{i:04d}.py"] = b"X = %d\n" % i + b"# " + b" ".join(rnd.choice(words) for _ in range(200))
    files[f"{dist}-{ver}.dist-info/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {ver}\n".encode()
    files[f"{dist}-{ver}.dist-info/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
                                               b"Tag: cp311-cp311-linux_x86_64\n")
    write_wheel(path, files)
    # One member stored, not deflated: read by its own path.
    stored = f"{dist}/data/stored.bin"
    blob = bytes(rnd.getrandbits(8) for _ in range(1 << 20))
    with zipfile.ZipFile(path) as z:
        items = [(i, z.read(i)) for i in z.infolist()]
    rec = f"{dist}-{ver}.dist-info/RECORD"
    with zipfile.ZipFile(path, "w") as z:
        for info, data in items:
            if info.filename == rec:
                data = data.rstrip(b"\n") + f"\n{stored},{record_digest(blob)},{len(blob)}\n".encode()
                z.writestr(info, data, zipfile.ZIP_DEFLATED)
                si = zipfile.ZipInfo(stored, (2020, 1, 1, 0, 0, 0))
                si.external_attr = 0o644 << 16
                z.writestr(si, blob, zipfile.ZIP_STORED)
            else:
                z.writestr(info, data, zipfile.ZIP_DEFLATED)
    return path
