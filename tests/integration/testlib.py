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


def write_wheel(path, files, date_time=(2020, 1, 1, 0, 0, 0)):
    """Write FILES (name -> bytes, in order) as the wheel PATH, with a RECORD listing every member.

    The .dist-info directory is the one the file name implies; fixed dates keep the bytes reproducible.
    """
    dist, ver = os.path.basename(path).split("-")[:2]
    rec = f"{dist}-{ver}.dist-info/RECORD"
    lines = [f"{n},{record_digest(data)},{len(data)}" for n, data in files.items()] + [f"{rec},,"]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in list(files.items()) + [(rec, "\n".join(lines).encode() + b"\n")]:
            info = zipfile.ZipInfo(n, date_time)
            info.external_attr = 0o644 << 16
            z.writestr(info, data, zipfile.ZIP_DEFLATED)
    return path
