#!/usr/bin/env python3
"""The hostile-input table: every case made by fixtures/wheels/make-hostile.py.

For each case, `kwheel show` (text and --json) must: not crash (no signal, no
sanitizer report), finish within TIMEOUT under an address-space limit, exit
with the code the table gives, and name the right problem. A refused input
(exit 2) gets exactly one error line naming the file and the problem (text:
on stderr; --json: one object with error and error_kind). The input is left
byte for byte unchanged and nothing appears beside it. `kwheel repair` must
refuse the refused inputs too, writing nothing, and write only complete
wheels otherwise; for ELF cases `kwheel patch` on each forged member must
refuse it cleanly or leave a readable object.

usage: check-hostile.py --list                      (case ids, for meson)
       check-hostile.py KWHEEL HOSTILE_DIR --table  (the table matches cases.json)
       check-hostile.py KWHEEL HOSTILE_DIR [ID...]  (run cases; all without ids)
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import sha  # noqa: E402

TIMEOUT = 10           # seconds per kwheel run
MEM_LIMIT = 2 << 30    # RLIMIT_AS of each kwheel run (not under AddressSanitizer)


def E(rc, *words, json_words=None, forbid=(), json_check=None, max_rss_mb=None, slow=1):
    """rc: the exit code of show, or a tuple of acceptable codes. words: one of
    them must appear (case-insensitive, the file name removed) in the error line
    for rc 2, in the text report otherwise. json_words: the same for the --json
    line (default: words). forbid: strings neither report may contain.
    json_check: (what, predicate on the parsed --json object). max_rss_mb: the
    most resident memory `kwheel show` may reach (its own peak, getrusage).
    slow: TIMEOUT is multiplied by it (a case that really inflates hundreds of MB)."""
    return {"rc": rc if isinstance(rc, tuple) else (rc,), "words": words,
            "json_words": (() if json_check else words) if json_words is None else json_words, "forbid": forbid,
            "json_check": json_check, "max_rss_mb": max_rss_mb, "slow": slow}


# id -> what kwheel show must answer. 2 = refused (unreadable or unsafe input),
# 1 = audited with a negative verdict (RECORD problems, a tag not satisfied,
# an unreadable ELF member), 0 = audited and fine.
TABLE = {
    # member names (zip slip)
    "name-absolute": E(2, "absolute"),
    "name-dotdot": E(2, "escapes"),
    "name-dotdot-mid": E(2, "escapes"),
    "name-backslash": E(2, "backslash"),
    "name-drive": E(2, "drive letter"),
    "name-nul": E(2, "nul byte"),
    # entry types and flags
    "symlink": E(2, "symbolic link", "symlink"),
    "device": E(2, "special file", "device"),
    "encrypted": E(2, "encrypted"),
    # libzip rejects method 99 without its AES extra field as "inconsistent":
    # the error should still say which member and why
    "method-99": E(2, "compression method 99", "aes"),
    "method-99-aes": E(2, "encrypted"),
    "method-97": E(2, "compression method 97"),
    "duplicate": E(2, "duplicate", "appears twice"),
    "case-dup": E(2, "differ only in case"),
    "case-kelvin": E(2, "differ only in case"),
    "name-nfd": E(2, "normalisation"),
    "name-bad-utf8": E(2, "not valid utf-8"),
    # pip reads the name as CP437 (no flag bit 11), and so must kwheel: RECORD, which lists that name, is right
    "name-cp437": E(0, "py3-none-any", json_check=(
        "the member is named as Python's zipfile names it",
        lambda o: o.get("record_problems", []) == [] if "record_problems" in o else True)),
    # lying headers
    "local-name-lies": E(2, "local header", "inconsistent"),
    "local-size-lies": E(2, "local header", "inconsistent"),
    "size-lies": E(2, "declared"),
    "crc-lies": E(2, "crc"),
    "local-method-lies": E(2, "local header"),
    "local-flags-lies": E(2, "local header"),
    "local-crc-lies": E(2, "local header"),
    "descriptor-missing": E(2, "data descriptor"),
    "descriptor-ok": E(0, "py3-none-any", json_words=("py3-none-any",)),
    # two readers, two wheels: refused, whichever one a reader would pick
    "eocd-in-comment": E(2, "end of central directory records", "inside the archive comment"),
    "zip64-locator-lies": E(2, "zip64"),
    "concat-shift": E(2, "between the central directory and the end record"),
    "cd-extra-entry": E(2, "more than its"),
    "prefix-data": E(2, "no member accounts for"),
    "gap-between": E(2, "no member accounts for"),
    # bombs
    "bomb-ratio": E(2, "zip bomb"),
    "bomb-declared": E(2, "limit", "zip bomb"),
    # the declared 32 GiB are never there: the first member read inflates to nothing
    "bomb-total": E(2, "crc", "declared"),
    "overlap": E(2, "overlap"),
    # broken archives
    "truncated": E(2, "not a zip archive", "truncated", "end of central directory"),
    "cd-truncated": E(2, "central directory", "inconsistent"),
    "not-zip": E(2, "not a zip archive"),
    "empty": E(2, "not a zip archive", "empty"),
    # RECORD lies: audited, negative verdict
    "record-hash": E(1, "hash-mismatch"),
    "record-size": E(1, "size-mismatch"),
    "record-missing": E(1, "not-listed"),
    "record-extra": E(1, "no-such-member"),
    "record-traversal": E(1, "unsafe path", forbid=("root:x:0:0",)),
    # metadata
    "wheel-no-version": E(2, "no wheel-version"),
    "wheel-garbage": E(2, "wheel: "),
    "wheel-dup-header": E(2, "root-is-purelib", "twice"),
    "no-dist-info": E(2, "no .dist-info"),
    "two-dist-info": E(2, "more than one .dist-info"),
    # the file name is the hostile part
    "name-too-few-parts": E(2, "5 or 6 dash-separated parts"),
    "name-bad-chars": E(2, "invalid characters"),
    "name-empty-tag": E(2, "empty platform tag"),
    "name-wrong-arch": E(1, "claims tags it does not satisfy: manylinux_2_17_aarch64",
                         json_words=('"bad_tags": ["manylinux_2_17_aarch64"]',)),
    # WHEEL's Tag lines claim py3-none-any for an x86_64 extension: the name
    # and WHEEL disagree, and WHEEL claims a tag the wheel cannot satisfy
    "name-vs-wheel-tags": E(1, "py3-none-any does not", "do not match", "does not match", "disagree",
                            "differ", json_words=("py3-none-any\"]",)),
    # forged ELF members: the wheel is read, the member is reported unreadable
    "elf-phoff-past-end": E(1, "program header"),
    "elf-phnum-huge": E(1, "program header"),
    "elf-phnum-xnum": E(1, "pn_xnum"),
    "elf-shnum-huge": E((0, 1)),  # the loader never reads section headers: fine either way
    "elf-strtab-no-nul": E(1, "string table"),
    "elf-strtab-oob": E(1, "string table"),
    "elf-needed-oob": E(1, "string table"),
    "elf-other-arch": E(1, "aarch64", json_words=('"arch": "aarch64"',)),
    "elf-zero": E((0, 1)),  # not ELF by content: a data file named .so
    "elf-truncated": E(1, "program header", "truncated"),
    "needed-loop": E((0, 1), "evil/libloopb.so", json_check=(
        "libloopa.so and libloopb.so are found in the wheel, not outside",
        lambda o: not {"libloopa.so", "libloopb.so"} & set(o["external_libs"])
        and all(x["path"] for x in o["libraries"]))),
    "rpath-5000": E((0, 1), "libkwmissing.so.1 => not found", json_check=(
        "external_libs: libkwmissing.so.1 not found", lambda o: o["external_libs"] == {"libkwmissing.so.1": None})),
    "two-dirs-elf": E(2, "end of central directory records"),
    "elf-cp437-name": E(0, "libc.so.6", json_words=("libc.so.6",)),
    # 300 MiB inflated: memory must not grow with it (members are mapped, not read into memory), and
    # a member this compressible is not a bomb
    "elf-sparse-300m": E(0, "libc.so.6", json_words=("libc.so.6",), max_rss_mb=100, slow=6),
    "origin-escape": E((0, 1), "passwd => not found", forbid=("/etc/passwd",), json_check=(
        "external_libs: passwd not found", lambda o: o["external_libs"] == {"passwd": None})),
}


def is_asan(exe):
    try:
        with open(exe, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


class Case:
    def __init__(self, kwheel, top, c):
        self.kwheel, self.c, self.exp = kwheel, c, TABLE[c["id"]]
        self.path = os.path.join(top, c["file"])
        self.dir = os.path.dirname(self.path)
        self.base = os.path.basename(self.path)
        self.fails = []
        self.asan = is_asan(kwheel)
        # an unoptimised, instrumented build hashes a large member many times slower
        self.timeout = TIMEOUT * self.exp["slow"] * (4 if self.asan and self.exp["slow"] > 1 else 1)

    def check(self, cond, what):
        print(("ok     " if cond else "not ok ") + what, flush=True)
        if not cond:
            self.fails.append(what)
        return cond

    def limits(self):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if not self.asan:
            resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))

    def run(self, args, cwd=None):
        """(rc or None on timeout, stdout, stderr), text decoded leniently."""
        try:
            r = subprocess.run([self.kwheel] + args, capture_output=True, timeout=self.timeout,
                               cwd=cwd or self.dir,
                               preexec_fn=self.limits, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None, "", "timeout"
        return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")

    def sane(self, tag, rc, err):
        ok = self.check(rc is not None, f"{tag}: finished within {self.timeout} s")
        ok = ok and self.check(rc >= 0 and rc not in (134, 139) and rc <= 3,
                               f"{tag}: exit {rc} is not a crash or a signal ({err.strip()[-300:]!r})")
        ok = self.check("Sanitizer" not in err and "runtime error" not in err,
                        f"{tag}: no sanitizer report ({err.strip()[-500:]!r})") and ok
        return ok

    def has_word(self, text, words):
        if not words:
            return True
        t = text.replace(self.base, "").replace(self.path, "").lower()
        return any(w.lower() in t for w in words)

    def show_text(self):
        exp = self.exp
        rc, out, err = self.run(["show", self.path])
        if not self.sane("show", rc, err):
            return
        self.check(rc in exp["rc"], f"show: exit {rc}, expected {'/'.join(map(str, exp['rc']))}"
                   f" (stderr {err.strip()[:300]!r}, stdout {out.strip()[:200]!r})")
        lines = err.strip().splitlines()
        if exp["rc"] == (2,):
            self.check(out == "", f"show: nothing on stdout for a refused input ({out[:200]!r})")
            if self.check(len(lines) == 1, f"show: exactly one error line ({lines!r})"):
                self.check(self.base in lines[0], f"show: the error line names {self.base!r} ({lines[0]!r})")
                self.check(self.has_word(lines[0], exp["words"]),
                           f"show: the error names the problem, one of {exp['words']} ({lines[0]!r})")
        elif rc != 2:
            self.check(err == "", f"show: nothing on stderr ({err.strip()[:300]!r})")
            # The default text is short; the full report (-v) says what the input holds.
            _, full, _ = self.run(["show", "-v", self.path])
            self.check(self.has_word(full, exp["words"]), f"show -v: the report says one of {exp['words']}"
                       f" ({full.strip()[:600]!r})")
            out += full
        for f in exp["forbid"]:
            self.check(f not in out, f"show: the report does not mention {f!r}")

    def show_json(self):
        exp = self.exp
        rc, out, err = self.run(["show", "--json", self.path])
        if not self.sane("show --json", rc, err):
            return
        self.check(rc in exp["rc"], f"show --json: exit {rc}, expected {'/'.join(map(str, exp['rc']))}"
                   f" ({out.strip()[:300]!r} {err.strip()[:200]!r})")
        lines = out.strip().splitlines()
        if not self.check(len(lines) == 1, f"show --json: exactly one line on stdout ({len(lines)})"):
            return
        try:
            obj = json.loads(lines[0])
        except ValueError as e:
            self.check(False, f"show --json: the line is JSON ({e}: {lines[0][:200]!r})")
            return
        self.check(obj.get("version") == 1 and obj.get("wheel") == self.base,
                   f"show --json: version 1 and wheel {self.base!r} ({obj.get('version')!r}, {obj.get('wheel')!r})")
        if exp["rc"] == (2,):
            self.check(err.strip() == "", f"show --json: nothing on stderr ({err.strip()[:300]!r})")
            self.check(isinstance(obj.get("error"), str) and isinstance(obj.get("error_kind"), str)
                       and obj.get("error_kind") != "ok", f"show --json: error and error_kind ({lines[0][:300]!r})")
            self.check(self.has_word(str(obj.get("error")), exp["words"]),
                       f"show --json: error names the problem, one of {exp['words']} ({obj.get('error')!r})")
        elif rc != 2:
            self.check("error" not in obj, f"show --json: no top-level error ({obj.get('error')!r})")
            self.check(self.has_word(json.dumps(obj, sort_keys=True), exp["json_words"]),
                       f"show --json: says one of {exp['json_words']} ({lines[0][:600]!r})")
            if exp["json_check"]:
                what, pred = exp["json_check"]
                try:
                    good = bool(pred(obj))
                except (KeyError, TypeError, AttributeError) as e:
                    good = False
                    what += f" ({type(e).__name__}: {e})"
                self.check(good, f"show --json: {what} ({lines[0][:600]!r})")
        for f in exp["forbid"]:
            self.check(f not in out, f"show --json: does not mention {f!r}")

    def repair(self):
        outdir = tempfile.mkdtemp(prefix="kwheel-hostile-out-")
        try:
            rc, out, err = self.run(["repair", "-w", outdir, self.path])
            if not self.sane("repair", rc, err):
                return
            written = sorted(os.listdir(outdir))
            if self.exp["rc"] == (2,):
                self.check(rc == 2 and not written, f"repair: exit {rc} (2 expected) and nothing written ({written})")
                lines = err.strip().splitlines()
                self.check(len(lines) == 1 and self.base in lines[0],
                           f"repair: one error line naming {self.base!r} ({lines!r})")
            else:
                self.check(all(n.endswith(".whl") and not n.startswith(".") for n in written),
                           f"repair: only complete wheels in the output ({written})")
                for n in written:
                    names = set()
                    try:
                        with zipfile.ZipFile(os.path.join(outdir, n)) as z:
                            bad = z.testzip()
                            names = set(z.namelist())
                    except zipfile.BadZipFile as e:
                        bad = str(e)
                    self.check(bad is None, f"repair: {n} is a sound zip ({bad})")
                    # every member keeps its name as pip reads it (CP437 names included)
                    with zipfile.ZipFile(self.path) as z:
                        kept = {x for x in z.namelist() if ".dist-info/" not in x}
                    self.check(kept <= names, f"repair: {n} keeps the members' names ({sorted(kept - names)[:3]})")
        finally:
            shutil.rmtree(outdir, ignore_errors=True)

    def patch(self):
        if not zipfile.is_zipfile(self.path):
            return
        tmp = tempfile.mkdtemp(prefix="kwheel-hostile-elf-")
        try:
            with zipfile.ZipFile(self.path) as z:
                sos = [n for n in z.namelist() if n.endswith(".so")]
                for n in sos:
                    p = os.path.join(tmp, os.path.basename(n))
                    with open(p, "wb") as f:
                        f.write(z.read(n))
            for p in sorted(os.path.join(tmp, x) for x in os.listdir(tmp)):
                tag = "patch " + os.path.basename(p)
                before = sha(p)
                rc, out, err = self.run(["patch", "--set-rpath", "$ORIGIN/" + "x" * 300,
                                         "--replace-needed", "libc.so.6", "libc-kw.so.6", p], cwd=tmp)
                if not self.sane(tag, rc, err):
                    continue
                if rc != 0:
                    self.check(sha(p) == before, f"{tag}: refused input left unchanged")
                    lines = err.strip().splitlines()
                    self.check(len(lines) == 1 and os.path.basename(p) in lines[0],
                               f"{tag}: one error line naming the file ({lines!r})")
                else:
                    r = subprocess.run(["readelf", "-W", "-d", p], capture_output=True, text=True)
                    self.check(r.returncode == 0 and "Error" not in r.stderr,
                               f"{tag}: readelf reads the result ({r.stderr.strip()[:200]!r})")
            left = [x for x in os.listdir(tmp) if x.startswith(".")]
            self.check(not left, f"patch: no temporary file left ({left})")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def peak_rss(self, args):
        """(rc, peak resident set of the kwheel child in MiB), measured in a fresh process of its own."""
        probe = ("import resource, subprocess, sys\n"
                 "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
                 "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
        r = subprocess.run([sys.executable, "-c", probe, self.kwheel] + args, capture_output=True, text=True,
                           timeout=self.timeout, cwd=self.dir)
        rc, kib = r.stdout.split()
        return int(rc), int(kib) / 1024

    def rss(self):
        limit = self.exp["max_rss_mb"]
        if self.asan:
            limit += 150  # shadow memory and the allocator's quarantine, which do not grow with the member
        rc, mib = self.peak_rss(["show", self.path])
        self.check(rc in self.exp["rc"] and mib < limit,
                   f"show: exit {rc}, peak resident memory {mib:.0f} MiB, under {limit} MiB")

    def go(self):
        c = self.c
        print(f"# {c['id']}: {c['what']}\n# {self.path}", flush=True)
        before = sha(self.path)
        listing = sorted(os.listdir(self.dir))
        self.show_text()
        self.show_json()
        self.repair()
        if self.exp["max_rss_mb"]:
            self.rss()
        if c["kind"] == "elf":
            self.patch()
        self.check(sha(self.path) == before, "the input is unchanged (sha256)")
        now = sorted(os.listdir(self.dir))
        self.check(now == listing, f"nothing appeared beside the input ({sorted(set(now) - set(listing))})")
        print(f"{'FAIL' if self.fails else 'PASS'} {c['id']}", flush=True)
        return not self.fails


def main(argv):
    if argv[1:] == ["--list"]:
        print("\n".join(TABLE))
        return 0
    if len(argv) < 3:
        sys.exit(__doc__)
    kwheel, top, ids = os.path.abspath(argv[1]), os.path.abspath(argv[2]), argv[3:]
    with open(os.path.join(top, "cases.json")) as f:
        cases = json.load(f)
    by_id = {c["id"]: c for c in cases}
    if ids == ["--table"]:
        ok = len(cases) >= 32
        print(("ok     " if ok else "not ok ") + f"at least 32 cases ({len(cases)})")
        for c in cases:
            good = c["id"] in TABLE and c.get("kind") in ("zip", "elf") and bool(c.get("what")) \
                and os.path.isfile(os.path.join(top, c["file"]))
            print(("ok     " if good else "not ok ") + f"{c['id']}: in the table, kind, what, file")
            ok &= good
        for cid in TABLE:
            if cid not in by_id:
                print(f"not ok {cid}: in the table but not generated")
                ok = False
        return 0 if ok else 1
    failed = []
    for cid in ids or [c["id"] for c in cases]:
        if cid not in by_id or cid not in TABLE:
            print(f"not ok {cid}: unknown case (generated: {cid in by_id}, in the table: {cid in TABLE})")
            failed.append(cid)
            continue
        if not Case(kwheel, top, by_id[cid]).go():
            failed.append(cid)
    if len(ids) != 1:
        print(f"{len(ids or cases)} cases, {len(failed)} failed: {' '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
