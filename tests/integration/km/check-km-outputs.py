#!/usr/bin/env python3
"""`kwheel km`'s outputs: written safely, whole or not at all, and failures said in one line.

usage: check-km-outputs.py KWHEEL

- a deep -o directory (a path of more than 600 characters): the link file in
  the payload wheel names the archive once and carries the same flags as the
  one beside the archive (they were re-read through a 512-byte line buffer)
- symlinks planted at every output name (and at the old fixed temporary
  name) pointing at a victim: the victim is untouched, the outputs are
  regular files of mode 0644
- a second run that fails after converting (its payload wheel cannot be
  written): the first run's archive, link file, manifest and objects are
  still there, byte for byte, and the link file names an existing archive
- a static link whose linker output is long: the error names the first
  undefined reference, on one line
- --objects (a build's object files) and --link-python's lib-dynload
  conversion write through no planted symlink either
"""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, write_wheel  # noqa: E402

KWHEEL = sys.argv[1]
DIST = "kmout"


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def make_wheel(tmp, path):
    """A wheel with one extension (PyInit_<stem>) that needs libm: a static flag in the link file."""
    src = os.path.join(tmp, "ext.c")
    so = os.path.join(tmp, "ext.so")
    with open(src, "w") as f:
        f.write("#include <math.h>\nvolatile double kmout_x = 2.0;\n"
                "void *PyInit__ext(void) { return (void *)(long)cos(kmout_x); }\n")
    r = run("gcc", "-shared", "-fPIC", "-O1", "-o", so, src, "-lm")
    if not check(r.returncode == 0, f"gcc builds the extension ({r.stderr.strip()[-200:]})"):
        sys.exit(1)
    di = f"{DIST}-1.0.dist-info"
    with open(so, "rb") as f:
        data = f.read()
    write_wheel(path, {
        f"{DIST}/__init__.py": b"",
        f"{DIST}/_ext.cpython-311-x86_64-linux-gnu.so": data,
        f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 1.0\n".encode(),
        f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n"})
    return path


def outputs(out):
    return {"archive": os.path.join(out, f"lib{DIST}.km.a"), "link": os.path.join(out, f"{DIST}.km.link"),
            "manifest": os.path.join(out, f"{DIST}.km.json")}


def lines(text):
    return [l for l in text.splitlines() if l]


def deep_output(tmp, whl):
    out = tmp
    while len(out) <= 620:
        out = os.path.join(out, "d" * 60)
    os.makedirs(out)
    r = run(KWHEEL, "km", "-o", out, whl)
    if not check(r.returncode == 0, f"km converts into a {len(out)}-character -o path ({r.stderr.strip()[-300:]})"):
        return
    o = outputs(out)
    with open(o["link"]) as f:
        outer = lines(f.read())
    check(outer[:3] == ["-Wl,--whole-archive", o["archive"], "-Wl,--no-whole-archive"] and "-lm" in outer,
          "the link file names the archive and asks for libm")
    kmw = [f for f in os.listdir(out) if f.endswith(".whl")]
    if not check(len(kmw) == 1, f"one payload wheel ({kmw})"):
        return
    with zipfile.ZipFile(os.path.join(out, kmw[0])) as z:
        inner = lines(z.read(f"{DIST}-1.0.dist-info/km/{DIST}.km.link").decode())
    check(inner[:3] == ["-Wl,--whole-archive", f"{DIST}-1.0.dist-info/km/lib{DIST}.km.a", "-Wl,--no-whole-archive"],
          f"the payload's link file names the installed archive once ({inner[:4]})")
    check(inner[3:] == outer[3:], "and carries exactly the flags of the one beside the archive")
    check(not any(out[:40] in l for l in inner), "and no piece of the -o path")
    # Beside its objects the archive is thin; the payload's holds the same objects' bytes (it installs alone).
    with open(o["archive"], "rb") as f:
        check(f.read(8) == b"!<thin>\n", "the archive beside the objects directory is thin")
    with zipfile.ZipFile(os.path.join(out, kmw[0])) as z:
        full = z.read(f"{DIST}-1.0.dist-info/km/lib{DIST}.km.a")
    objdir = [os.path.join(out, d) for d in os.listdir(out) if d.endswith(".km") and os.path.isdir(os.path.join(out, d))]
    objects = {}
    for d in objdir:
        for n in os.listdir(d):
            with open(os.path.join(d, n), "rb") as f:
                objects[n] = f.read()
    inside = ar_members(full)
    check(full[:8] == b"!<arch>\n" and inside == objects and len(objects) >= 1,
          f"the payload's archive holds every object of the directory, byte for byte ({sorted(inside)[:3]})")
    listed = run("ar", "t", o["archive"]).stdout.split()
    check([os.path.basename(m) for m in listed] == list(inside),
          f"the thin archive lists them in the payload archive's order ({listed[:3]})")


def ar_members(data):
    """The members of a GNU ar archive by name, in order (a plain reader, not kwheel's)."""
    pos, longnames, out = 8, b"", {}
    while pos + 60 <= len(data):
        h = data[pos:pos + 60]
        size = int(h[48:58].decode().strip())
        body = data[pos + 60:pos + 60 + size]
        name = h[:16].decode().rstrip()
        if name == "//":
            longnames = body
        elif name not in ("/", "/SYM64/"):
            if name.startswith("/"):
                off = int(name[1:])
                name = longnames[off:longnames.index(b"/\n", off)].decode()
            else:
                name = name.rstrip("/")
            out[name] = body
        pos += 60 + size + (size & 1)
    return out


def planted_symlinks(tmp, whl):
    out = os.path.join(tmp, "planted")
    os.makedirs(out)
    victim = os.path.join(tmp, "victim")
    with open(victim, "w") as f:
        f.write("precious\n")
    before = digest(victim)
    o = outputs(out)
    names = list(o.values()) + [o["archive"] + ".tmp"]
    for n in names:
        os.symlink(victim, n)
    r = run(KWHEEL, "km", "-o", out, "--no-wheel", whl)
    check(r.returncode == 0, f"km runs with symlinks at its output names ({r.stderr.strip()[-300:]})")
    check(digest(victim) == before, "the file the symlinks point at is untouched")
    for k, p in o.items():
        st = os.lstat(p)
        check(stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644,
              f"the {k} is a regular file of mode 0644 ({oct(st.st_mode)})")
    check(not [f for f in os.listdir(out) if f.startswith(".")], "no temporary is left behind")


def failed_rerun(tmp, whl):
    out = os.path.join(tmp, "rerun")
    os.makedirs(out)
    r = run(KWHEEL, "km", "-o", out, whl)
    if not check(r.returncode == 0, f"the first run converts ({r.stderr.strip()[-300:]})"):
        return
    o = outputs(out)
    objdir = os.path.join(out, f"{DIST}-1.0.km")
    snap = {p: digest(p) for p in list(o.values()) + [os.path.join(objdir, f) for f in os.listdir(objdir)]}
    wheels = sorted(f for f in os.listdir(out) if f.endswith(".whl"))
    # The same wheel with a changed module (other objects, other archive), and nowhere to put its payload wheel.
    whl2 = os.path.join(tmp, "second", os.path.basename(whl))
    os.makedirs(os.path.dirname(whl2))
    with zipfile.ZipFile(whl) as z:
        files = {n: z.read(n) for n in z.namelist() if not n.endswith("/RECORD")}
    files[f"{DIST}/__init__.py"] = b"changed = True\n"
    write_wheel(whl2, files)
    blocker = os.path.join(tmp, "not-a-dir")
    with open(blocker, "w") as f:
        f.write("a file where the wheel directory should be\n")
    r = run(KWHEEL, "km", "-o", out, "--wheel-out", blocker, whl2)
    check(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1,
          f"the second run fails with one line ({r.returncode}, {r.stderr.strip()[-300:]})")
    now = {p: digest(p) if os.path.exists(p) else None for p in snap}
    check(now == snap, "the first run's archive, link file, manifest and objects are as they were")
    with open(o["link"]) as f:
        named = lines(f.read())[1]
    check(os.path.isfile(named), "the link file names an archive that exists")
    with open(o["manifest"]) as f:
        check(json.load(f).get("archive") == o["archive"], "the manifest names the same archive")
    check(sorted(f for f in os.listdir(out) if f.endswith(".whl")) == wheels, "the payload wheel is the first run's")
    check(not [f for f in os.listdir(out) if f.startswith(".")], "no temporary is left behind")


def objects_mode(tmp):
    """--objects writes the same way: symlinks at its output names are replaced, not followed."""
    objs = os.path.join(tmp, "objs")
    out = os.path.join(tmp, "objs-out")
    os.makedirs(objs)
    os.makedirs(out)
    for name, text in (("a.c", "int m_helper(void) { return 4; }\n"),
                       ("b.c", "int m_helper(void);\nvoid *PyInit__m(void) { return (void *)(long)m_helper(); }\n")):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
        r = run("gcc", "-c", "-fPIC", "-o", os.path.join(objs, name[:-2] + ".o"), os.path.join(tmp, name))
        if not check(r.returncode == 0, f"gcc builds {name}"):
            return
    victim = os.path.join(tmp, "victim-objects")
    with open(victim, "w") as f:
        f.write("precious\n")
    before = digest(victim)
    names = [os.path.join(out, n) for n in ("lib_m.km.a", "_m.km.link", "_m.km.json", "lib_m.km.a.tmp")]
    for n in names:
        os.symlink(victim, n)
    r = run(KWHEEL, "km", "--objects", objs, "--id", "pkg/_m.cpython-311-x86_64-linux-gnu.so", "-o", out)
    check(r.returncode == 0, f"km --objects runs with symlinks at its output names ({r.stderr.strip()[-300:]})")
    check(digest(victim) == before, "--objects: the file the symlinks point at is untouched")
    check(all(stat.S_ISREG(os.lstat(n).st_mode) for n in names[:3]), "--objects: the outputs are regular files")
    try:
        with open(names[2]) as f:
            man = json.load(f)
    except ValueError:
        man = {}
    check(man.get("mode") == "objects" and "m_helper" in man.get("renamed", {}) and
          man["renamed"]["m_helper"].startswith("m_helper_"), f"--objects: the manifest lists the renamed globals "
                                                              f"({man.get('renamed')})")


def linker_error(tmp):
    src = os.path.join(tmp, "u.c")
    obj = os.path.join(tmp, "u.o")
    with open(src, "w") as f:
        f.write("extern int kw_missing_symbol(void);\nint kw_use(void) { return kw_missing_symbol(); }\n")
    r = run("gcc", "-c", src, "-o", obj)
    if not check(r.returncode == 0, "gcc builds the object with an undefined reference"):
        return
    link = os.path.join(tmp, "u.link")
    # gcc -v and long search paths: about 90 KB of output (some of it saying "werror") before the error,
    # as a real closure's warnings put the first undefined reference past byte 6,000 of 72 KB.
    with open(link, "w") as f:
        f.write("\n".join(["-v", obj, "-Wl,--undefined=kw_use"] +
                          [f"-L/nonexistent/{'p' * 200}{i}" for i in range(400)]) + "\n")
    # The interpreter's lib-dynload modules are converted beside the output first: through no planted symlink.
    victim = os.path.join(tmp, "victim-dynload")
    with open(victim, "w") as f:
        f.write("precious\n")
    before = digest(victim)
    planted = [os.path.join(tmp, n) for n in ("libdynload.km.a", "lib-dynload.km.link", "libdynload.km.a.tmp")]
    for n in planted:
        os.symlink(victim, n)
    victim_dir = os.path.join(tmp, "victim-dir")
    os.makedirs(victim_dir)
    os.symlink(victim_dir, os.path.join(tmp, "lib-dynload.km"))
    r = run(KWHEEL, "km", "--link-python", os.path.join(tmp, "python-u"), "--python", "/usr/bin/python3",
            "--link-file", link)
    if "no static library" in r.stderr:
        check(False, "libpython3.X.a for the static link (libpython3-dev, tools/deps)")
        return
    check(digest(victim) == before and all(stat.S_ISREG(os.lstat(n).st_mode) for n in planted[:2]),
          "the lib-dynload archive and link file replace the planted symlinks, the victim is untouched")
    objdir = os.path.join(tmp, "lib-dynload.km")
    check(not os.listdir(victim_dir) and not os.path.islink(objdir) and os.path.isdir(objdir)
          and any(f.endswith(".o") for f in os.listdir(objdir)),
          "the lib-dynload objects go to a directory of their own, not through a planted symlink")
    err = r.stderr.strip().splitlines()
    check(r.returncode == 2 and len(err) == 1 and "undefined reference to `kw_missing_symbol'" in err[0],
          f"the link error names the first undefined reference, on one line ({r.stderr.strip()[-300:]})")


def thin_escape(tmp):
    """A thin archive a link file names may only name files inside its own directory."""
    d = os.path.join(tmp, "thin")
    os.makedirs(os.path.join(d, "sub"))
    src, obj = os.path.join(d, "esc.c"), os.path.join(d, "esc.o")
    with open(src, "w") as f:
        f.write("int kw_esc(void) { return 1; }\n")
    r = run("gcc", "-c", src, "-o", obj)
    if not check(r.returncode == 0, "gcc builds an object beside the thin archive's directory"):
        return
    # ar stores the member relative to the archive: "../esc.o", outside sub/.
    r = run("ar", "rcT", os.path.join("sub", "libesc.km.a"), "esc.o", cwd=d)
    with open(os.path.join(d, "sub", "libesc.km.a"), "rb") as f:
        stored = f.read()
    if not check(r.returncode == 0 and b"../esc.o" in stored, "ar makes a thin archive naming ../esc.o"):
        return
    link = os.path.join(d, "esc.link")
    with open(link, "w") as f:
        f.write(os.path.join(d, "sub", "libesc.km.a") + "\n")
    out = os.path.join(d, "python-esc")
    r = run(KWHEEL, "km", "--link-python", out, "--python", "/usr/bin/python3", "--link-file", link)
    if "no static library" in r.stderr:
        return
    err = r.stderr.strip().splitlines()
    check(r.returncode == 2 and len(err) == 1 and "leaves the archive's directory" in err[0] and
          not os.path.exists(out), f"a thin member outside the archive's directory is refused, on one line ({err[-1:]})")


def main():
    tmp = tempfile.mkdtemp(prefix="kw-km-out-")
    try:
        whl = make_wheel(tmp, os.path.join(tmp, f"{DIST}-1.0-cp311-cp311-linux_x86_64.whl"))
        deep_output(tmp, whl)
        planted_symlinks(tmp, whl)
        failed_rerun(tmp, whl)
        objects_mode(tmp)
        linker_error(tmp)
        thin_escape(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
