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
  install   meson install into a scratch DESTDIR: the binary, libkwheel.so
            exporting kw_* only (nm), every header of include/kwheel/,
            kwheel.pc, man pages, completions, LICENSE, no policy.json; a
            program built with pkg-config against the installed copy audits a
            corpus wheel to the tag `kwheel show --json` gives, and one calling
            a module internal does not link
  man       each command's man page (man/kwheel-CMD.1.scd) documents exactly
            the options its --help lists, its SYNOPSIS holds the --help
            synopsis, and its EXIT STATUS renders (scdoc, man) as one entry
            per code; kwheel(1) names every command
  pip       `pip wheel --no-build-isolation` (Debian's meson-python, offline)
            on a copy of the source tree gives a wheel whose scripts hold the
            kwheel binary; the binary taken from that wheel repairs it
            (libzip, libelf, jansson vendored, a manylinux tag); the copy is
            deleted, the repaired wheel goes into a fresh venv with pip
            --no-index, and the venv's kwheel (no DT_NEEDED on the host's
            libzip/libelf/jansson, ldd resolving them inside the venv) gives
            a corpus wheel the same `show --json` as the build's kwheel
  progress  show over several wheels with stderr a terminal (a pty) draws a
            progress line in work done (wheels and MB, as stat gives them),
            rising to the total and cleared at the end, and writes the same
            stdout as without a terminal; with stderr a pipe, nothing; the same
            for km --deps of numpy (auditing, bytes delinked, writing)
  completions  bash: `kwheel CMD --<TAB>` offers exactly the options of
            `kwheel CMD --help`, commands come from `kwheel --help`, a DIR
            argument completes directories only; zsh: the _arguments specs
            name the same options (zsh's completion functions stubbed)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run, write_wheel  # noqa: E402

KWHEEL, SRC, GROUP = sys.argv[1:4]
SRC = os.path.abspath(SRC)


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


def help_options(cmd):
    """The long options `kwheel CMD --help` lists, and the short ones (read here, independently of the completions)."""
    text = run(KWHEEL, cmd, "--help").stdout
    longs, shorts = set(), set()
    for line in text.splitlines():
        m = re.match(r"^  (?:(-[A-Za-z0-9]), )?\s*(--[a-z0-9-]+)", line)
        if m:
            longs.add(m.group(2))
            if m.group(1):
                shorts.add(m.group(1))
    return longs, shorts


def commands():
    text = run(KWHEEL, "--help").stdout
    block = text.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    return [l.split()[0] for l in block.splitlines() if l.strip()]


def group_completions():
    comp = os.path.join(SRC, "completions")
    tmp = tempfile.mkdtemp(prefix="kwheel-comp-")
    os.makedirs(os.path.join(tmp, "somedir"))
    open(os.path.join(tmp, "afile.whl"), "w").close()
    open(os.path.join(tmp, "notes.txt"), "w").close()

    def bash(*words):
        script = (f"source {comp}/kwheel.bash\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
                  "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n_kwheel\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
        r = run("bash", "--norc", "-c", script, cwd=tmp)
        return set(l for l in r.stdout.splitlines() if l), r

    cmds = commands()
    got, _ = bash(KWHEEL, "")
    check(len(cmds) >= 5 and got == set(cmds), f"bash: 'kwheel <TAB>' offers the commands of --help ({sorted(got)})")
    for cmd in cmds:
        longs, shorts = help_options(cmd)
        got, _ = bash(KWHEEL, cmd, "--")
        check(longs and got == longs, f"bash: 'kwheel {cmd} --<TAB>' offers exactly its --help options "
              f"(missing {sorted(longs - got)}, extra {sorted(got - longs)})")
        got, _ = bash(KWHEEL, cmd, "-")
        check(got == longs | shorts, f"bash: 'kwheel {cmd} -<TAB>' adds the short letters")
    got, _ = bash(KWHEEL, "repair", "-w", "")
    check(got == {"somedir"}, f"bash: 'repair -w <TAB>' completes directories only ({sorted(got)})")
    got, _ = bash(KWHEEL, "show", "")
    check(got == {"somedir", "afile.whl"}, f"bash: 'show <TAB>' offers wheels and directories ({sorted(got)})")
    got, _ = bash(KWHEEL, "show", "-j", "")
    check(got == set(), f"bash: 'show -j <TAB>' offers no file for a number ({sorted(got)})")

    r = run("zsh", "-n", os.path.join(comp, "_kwheel"))
    check(r.returncode == 0, f"zsh parses _kwheel ({r.stderr.strip()})")
    for cmd in cmds:
        longs, shorts = help_options(cmd)
        script = ("_arguments() { local a; for a in \"$@\"; do print -r -- \"$a\"; done }\n_files() { :; }\n"
                  f"source {comp}/_kwheel >/dev/null 2>&1\nwords=({KWHEEL} {cmd} --)\nCURRENT=3\n_kwheel\n")
        r = run("zsh", "-f", "-c", script)
        specs = [l for l in r.stdout.splitlines() if l.startswith("-") and l != "-s"]
        named = {re.match(r"^(-[-A-Za-z0-9]+)\[", l).group(1) for l in specs if re.match(r"^(-[-A-Za-z0-9]+)\[", l)}
        check(named == longs | shorts and all(re.match(r"^-[-A-Za-z0-9]+\[.*[^\\]\]", l) for l in specs),
              f"zsh: the specs for 'kwheel {cmd}' name exactly its --help options "
              f"(missing {sorted((longs | shorts) - named)}, extra {sorted(named - longs - shorts)})")


def man_section(text, name):
    m = re.search(r"^# " + name + r"\n(.*?)(?=^# |\Z)", text, re.S | re.M)
    return m.group(1) if m else ""


def plain(scd):
    """scdoc markup dropped: *bold*, _underline_, backslash escapes."""
    return " ".join(re.sub(r"\\(.)", r"\1", re.sub(r"(?<![A-Za-z0-9])[*_]|[*_](?![A-Za-z0-9])", "", scd)).split())


def group_man():
    mandir = os.path.join(SRC, "man")
    tmp = tempfile.mkdtemp(prefix="kwheel-man-")
    cmds = commands()
    with open(os.path.join(mandir, "kwheel.1.scd")) as f:
        top = f.read()
    missing = [c for c in cmds if f"kwheel-{c}*(1)" not in top and f"kwheel-{c}(1)" not in top]
    check(cmds and not missing, f"kwheel(1) refers to every command's page (missing {missing})")
    for cmd in cmds:
        page = os.path.join(mandir, f"kwheel-{cmd}.1.scd")
        if not check(os.path.exists(page), f"{cmd}: man/kwheel-{cmd}.1.scd exists"):
            continue
        with open(page) as f:
            text = f.read()
        longs, shorts = help_options(cmd)
        opts = man_section(text, "OPTIONS")
        documented = set()
        for line in opts.splitlines():
            if line.startswith("*-"):
                documented |= set(re.findall(r"(?<![\w-])(--[a-z0-9-]+|-[A-Za-z0-9])(?![\w-])", plain(line)))
        want = longs | shorts
        check(documented == want, f"{cmd}: OPTIONS documents exactly the --help options "
              f"(not in the page: {sorted(want - documented)}; not in --help: {sorted(documented - want)})")
        usage = run(KWHEEL, cmd, "--help").stdout.splitlines()[0]
        synopsis = [plain(l) for l in man_section(text, "SYNOPSIS").splitlines() if l.strip()]
        check(usage.startswith("usage: ") and usage[len("usage: "):] in synopsis,
              f"{cmd}: SYNOPSIS holds the --help synopsis ({usage!r} in {synopsis})")
        codes = re.findall(r"^\*([0-9])\*", man_section(text, "EXIT STATUS"), re.M)
        roff = subprocess.run(["scdoc"], input=text, capture_output=True, text=True)
        rendered = os.path.join(tmp, f"kwheel-{cmd}.1")
        with open(rendered, "w") as f:
            f.write(roff.stdout)
        r = run("man", "-l", rendered, env=dict(os.environ, MANPAGER="cat", MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
        out = re.sub(r".\x08", "", r.stdout)
        sect = out.split("EXIT STATUS", 1)[1] if "EXIT STATUS" in out else ""
        sect = re.split(r"^\S", sect[1:], maxsplit=1, flags=re.M)[0] if sect else ""
        heads = [(len(l) - len(l.lstrip()), l.split()[0]) for l in sect.splitlines()
                 if l.strip() and re.match(r"^\s+[0-9](\s|$)", l)]
        check(roff.returncode == 0 and codes and [c for _, c in heads] == codes and len({i for i, _ in heads}) == 1,
              f"{cmd}: EXIT STATUS renders one entry per code {codes}, all at one indent ({heads})")


def source_files():
    """The tree as a fresh clone has it: git's tracked and untracked-but-not-ignored files."""
    r = run("git", "-C", SRC, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if r.returncode == 0:
        return [f for f in r.stdout.split("\0") if f and os.path.isfile(os.path.join(SRC, f))]
    return [os.path.relpath(os.path.join(root, n), SRC) for root, dirs, names in os.walk(SRC)
            for n in names if not os.path.relpath(root, SRC).startswith(("build", ".git"))]


def group_pip():
    import shutil
    corpus = os.environ.get("KW_CORPUS") or os.path.join(SRC, "build", "corpus")
    tmp = tempfile.mkdtemp(prefix="kwheel-pip-")
    src = os.path.join(tmp, "src")
    for rel in source_files():
        os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
        shutil.copy2(os.path.join(SRC, rel), os.path.join(src, rel))
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH", "PIP_INDEX_URL")}
    dist = os.path.join(tmp, "dist")
    r = run(["/usr/bin/python3", "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
             "--disable-pip-version-check", "-w", dist, src], env=env, cwd=tmp)
    built = sorted(os.listdir(dist)) if os.path.isdir(dist) else []
    if not check(r.returncode == 0 and len(built) == 1, f"pip wheel --no-build-isolation builds one wheel ({built}: "
                 f"{(r.stdout + r.stderr).strip()[-400:]})"):
        return
    whl = os.path.join(dist, built[0])
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        script = [n for n in names if re.fullmatch(r"kwheel-[^/]+\.data/scripts/kwheel", n)]
        check(script and z.read(script[0])[:4] == b"\x7fELF", f"the wheel's scripts hold the kwheel binary ({script})")
        if not script:
            return
        own = os.path.join(tmp, "kwheel-from-wheel")
        with open(own, "wb") as f:
            f.write(z.read(script[0]))
        os.chmod(own, 0o755)
    check(built[0] == f"kwheel-{project_version()}-py3-none-linux_x86_64.whl",
          f"named for meson.build's version, not yet repaired ({built[0]})")

    # repaired by the kwheel it holds
    out = os.path.join(tmp, "wheelhouse")
    r = run([own, "repair", "-w", out, whl], env=env)
    rep = sorted(os.listdir(out)) if os.path.isdir(out) else []
    if not check(r.returncode == 0 and len(rep) == 1, f"the wheel's own kwheel repairs it ({rep}: {r.stderr.strip()[-300:]})"):
        return
    repaired = os.path.join(out, rep[0])
    check(re.fullmatch(r"kwheel-[^-]+-py3-none-manylinux_2_\d+_x86_64\.whl", rep[0]) is not None,
          f"the repaired wheel is manylinux-tagged ({rep[0]})")
    with zipfile.ZipFile(repaired) as z:
        check(z.testzip() is None, "the repaired wheel's members read back (zipfile)")
        libs = [n for n in z.namelist() if n.startswith("kwheel.libs/")]
    for lib in ("libzip", "libelf", "libjansson"):
        check(any(os.path.basename(n).startswith(lib) for n in libs), f"{lib} is vendored ({len(libs)} libraries)")
    shutil.rmtree(src)
    shutil.rmtree(dist)
    os.unlink(own)

    # a fresh venv, the build tree gone
    venv = os.path.join(tmp, "venv")
    r = run("/usr/bin/python3", "-m", "venv", venv)
    if not check(r.returncode == 0, f"python3 -m venv ({r.stderr.strip()[-200:]})"):
        return
    r = run([os.path.join(venv, "bin", "pip"), "install", "--no-index", "--disable-pip-version-check", "--quiet",
             repaired], env=env)
    if not check(r.returncode == 0, f"pip installs the repaired wheel into the venv ({r.stderr.strip()[-300:]})"):
        return
    cmd = os.path.join(venv, "bin", "kwheel")
    r = run([cmd, "--version"], env=env)
    check(r.returncode == 0 and r.stdout.strip() == f"kwheel {project_version()}", f"venv/bin/kwheel --version ({r.stdout.strip()})")
    elfs = []
    for root, _, files in os.walk(venv):
        for n in files:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF" and n == "kwheel":
                    elfs.append(p)
    check(len(elfs) == 1, f"one kwheel program in the venv ({elfs})")
    if elfs:
        needed = readelf_needed(elfs[0])
        plain = [n for n in needed if re.fullmatch(r"lib(zip|elf|jansson)\.so\.\d+", n)]
        check(not plain, f"the installed program needs no host libzip/libelf/jansson by name ({needed})")
        r = run("ldd", elfs[0], env=env)
        inside = [l for l in r.stdout.splitlines() if re.search(r"lib(zip|elf|jansson)", l)]
        check(len(inside) == 3 and all(venv in l for l in inside), f"ldd finds them inside the venv ({inside})")
    for w in ("debian/pyyaml-6.0-cp311-cp311-linux_x86_64.whl", "auditwheel/testzlib-0.0.1-cp310-cp310-linux_x86_64.whl"):
        path = os.path.join(corpus, "wheels", w)
        a = run([cmd, "show", "--json", path], env=env)
        b = run([KWHEEL, "show", "--json", path], env=env)
        check(a.returncode == b.returncode and a.stdout and json.loads(a.stdout) == json.loads(b.stdout),
              f"the venv's kwheel show --json on {os.path.basename(w)} is the build's ({a.returncode}, {a.stderr.strip()[:200]})")
    a = run([cmd, "show", repaired], env=env)
    check(a.returncode == 0 and f"consistent with: {rep[0].split('-')[-1][:-4]}" in a.stdout,
          f"and says the repaired wheel is what its name claims ({a.returncode})")


def group_progress():
    import pty
    import select
    corpus = os.environ.get("KW_CORPUS") or os.path.join(SRC, "build", "corpus")
    wdir = os.path.join(corpus, "wheels", "debian")
    wheels = sorted(os.path.join(wdir, n) for n in os.listdir(wdir) if n.endswith(".whl"))
    total_mb = sum(os.stat(w).st_size for w in wheels) >> 20
    for extra in ([], ["--json"], ["--json", "-j", "2"]):
        plain = run([KWHEEL, "show"] + extra + wheels)
        check(plain.stderr == "", f"show {' '.join(extra)}: nothing on stderr when it is a pipe ({plain.stderr[:100]!r})")
        master, slave = pty.openpty()
        p = subprocess.Popen([KWHEEL, "show"] + extra + wheels, stdout=subprocess.PIPE, stderr=slave)
        out = p.communicate(timeout=300)[0].decode()
        # The slave stays open here until the program is gone, so nothing it wrote is lost with it.
        tty = b""
        while select.select([master], [], [], 0.2)[0]:
            tty += os.read(master, 65536)
        os.close(slave)
        os.close(master)
        lines = re.findall(rb"kwheel show: (\d+) of (\d+) wheels, (\d+) of (\d+) MB \((\d+)%\)", tty)
        done = [int(a) for a, *_ in lines]
        check(lines and all(int(b) == len(wheels) and int(d) == total_mb for _, b, _, d, _ in lines)
              and done == sorted(done) and done[0] == 0 and done[-1] == len(wheels) - 1
              and [int(c) for _, _, c, _, _ in lines] == sorted(int(c) for _, _, c, _, _ in lines),
              f"show {' '.join(extra)}: the progress line counts wheels and MB up to the total ({done})")
        check(tty.endswith(b"\r\x1b[K"), f"show {' '.join(extra)}: the line is cleared at the end")
        same = out == plain.stdout if "-j" not in extra else sorted(out.splitlines()) == sorted(plain.stdout.splitlines())
        check(same and p.returncode == plain.returncode,
              f"show {' '.join(extra)}: stdout is the same with a terminal on stderr")
    km_progress(wheels)


def km_progress(wheels):
    """km --deps of numpy: per wheel, auditing, then bytes delinked up to the total, then writing."""
    import pty
    import select
    numpy = [w for w in wheels if os.path.basename(w).startswith("numpy-")]
    if not check(numpy, "the corpus has Debian's numpy wheel"):
        return
    sysroot = os.path.join(os.environ["KW_BUILD_ROOT"], "fixtures", "sysroot", "root")
    libpath = ":".join(os.path.join(sysroot, d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"))
    tmp = tempfile.mkdtemp(prefix="kwheel-km-progress-")
    try:
        def km(out, stderr):
            return subprocess.Popen([KWHEEL, "km", "--deps", "--no-wheel", "--library-path", libpath, "-o", out, numpy[0]],
                                    stdout=subprocess.PIPE, stderr=stderr, cwd=tmp)
        p = km("plain", subprocess.PIPE)
        plain_out, plain_err = p.communicate(timeout=600)
        check(p.returncode == 0 and plain_err == b"", f"km: nothing on stderr when it is a pipe ({plain_err[:100]!r})")
        master, slave = pty.openpty()
        p = km("tty", slave)
        out = p.communicate(timeout=600)[0]
        tty = b""
        while select.select([master], [], [], 0.2)[0]:
            tty += os.read(master, 65536)
        os.close(slave)
        os.close(master)
        name = re.escape(os.path.basename(numpy[0]).encode())
        phases = re.findall(rb"kwheel: " + name + rb": (auditing|converting|writing)", tty)
        pcts = [(int(a), int(b), int(c)) for a, b, c in
                re.findall(rb"kwheel: " + name + rb": converting (\d+)% \((\d+) of (\d+) MB\)", tty)]
        check(phases and phases[0] == b"auditing" and phases[-1] == b"writing" and len(pcts) > 2
              and [q for q, _, _ in pcts] == sorted(q for q, _, _ in pcts) and pcts[0][0] == 0 and pcts[-1][0] == 100
              and len({t for _, _, t in pcts}) == 1,
              f"km: the progress line goes auditing, converting 0-100% of the bytes delinked, writing ({phases[:3]} {pcts[:1]} {pcts[-1:]})")
        check(tty.endswith(b"\r\x1b[K"), "km: the line is cleared at the end")
        check(p.returncode == 0 and out.replace(b"tty/", b"plain/") == plain_out,
              "km: stdout is the same with a terminal on stderr")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def installed(dest, rel):
    return os.path.lexists(os.path.join(dest, rel.lstrip("/")))


def group_install():
    build = os.environ["KW_BUILD_ROOT"]
    corpus = os.environ.get("KW_CORPUS") or os.path.join(SRC, "build", "corpus")
    tmp = tempfile.mkdtemp(prefix="kwheel-install-")
    dest = os.path.join(tmp, "dest")
    r = run("meson", "install", "-C", build, "--destdir", dest, "--no-rebuild", "--quiet")
    if not check(r.returncode == 0, f"meson install --destdir ({r.stderr.strip()[-300:]})"):
        return
    files = {}
    for root, dirs, names in os.walk(dest):
        for n in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            full = os.path.join(root, n)
            files[os.path.relpath(full, dest)] = full

    def one(pattern):
        hits = sorted(f for f in files if re.search(pattern, f))
        return hits

    bins = one(r"(^|/)bin/kwheel$")
    check(len(bins) == 1 and os.access(files[bins[0]], os.X_OK), f"the kwheel binary is installed ({bins})")
    so = one(r"/libkwheel\.so$")
    real = one(r"/libkwheel\.so\.\d+\.\d+\.\d+$")
    soname = one(r"/libkwheel\.so\.\d+$")
    check(len(so) == 1 and len(real) == 1 and len(soname) == 1, f"libkwheel.so, its SONAME link and the file ({so + soname + real})")
    headers = sorted(os.listdir(os.path.join(SRC, "include", "kwheel")))
    inst_h = sorted(os.path.basename(f) for f in one(r"include/kwheel/[^/]+\.h$"))
    check(headers and inst_h == headers, f"every header of include/kwheel/ is installed (missing {sorted(set(headers) - set(inst_h))})")
    pcs = one(r"pkgconfig/kwheel\.pc$")
    check(len(pcs) == 1, f"kwheel.pc is installed ({pcs})")
    pages = sorted(os.path.basename(f) for f in one(r"man1/kwheel[-a-z]*\.1$"))
    want_pages = sorted(p[:-4] for p in os.listdir(os.path.join(SRC, "man")) if p.endswith(".1.scd"))
    check(pages == want_pages, f"a man page per scdoc source ({pages})")
    check(one(r"bash-completion/completions/kwheel$") and one(r"zsh/site-functions/_kwheel$"),
          "bash and zsh completions are installed")
    lic = one(r"doc/kwheel/LICENSE$")
    with open(os.path.join(SRC, "meson.build")) as f:
        meson_license = re.search(r"license:\s*'([^']+)'", f.read()).group(1)
    text = open(files[lic[0]]).read() if lic else ""
    check(meson_license == "MIT" and text.startswith("MIT License") and "Permission is hereby granted" in text,
          f"LICENSE holds the MIT text meson.build names ({meson_license})")
    check(not one(r"policy\.json$"), "no policy.json is installed (the data is compiled in)")
    if not (so and real and pcs):
        return

    # exports: kw_* only, under the library's version node
    r = run("nm", "-D", "--defined-only", files[real[0]])
    syms = [l.split()[-1].split("@")[0] for l in r.stdout.splitlines() if l.strip()]
    bad = [s for s in syms if not s.startswith("kw_") and s != "KWHEEL_0"]
    check(r.returncode == 0 and len(syms) > 50 and not bad and "kw_audit_wheel" in syms,
          f"libkwheel.so exports {len(syms)} symbols, all kw_* (others: {bad[:5]})")
    r = run("readelf", "--dyn-syms", "-W", files[real[0]])
    check("kw_audit_wheel@@KWHEEL_0" in r.stdout, "the exports carry the KWHEEL_0 version")
    ar = os.path.join(build, "libkwheel.a")
    internals = [l.split()[-1] for l in run("nm", "-g", "--defined-only", ar).stdout.splitlines()
                 if len(l.split()) == 3 and not l.split()[-1].startswith("kw_")]
    leaked = sorted(set(internals) & set(syms))
    check(internals and not leaked, f"none of the archive's {len(internals)} internal globals (img_*, rawzip_*, ...) is exported")

    # a program built against the installed copy with pkg-config
    pcdir = os.path.dirname(files[pcs[0]])
    env = dict(os.environ, PKG_CONFIG_PATH=pcdir, PKG_CONFIG_SYSROOT_DIR=dest)
    r = run("pkg-config", "--cflags", "--libs", "kwheel", env=env)
    flags = r.stdout.split()
    check(r.returncode == 0 and any(f.startswith("-I" + dest) for f in flags) and "-lkwheel" in flags,
          f"pkg-config gives the installed include and library flags ({r.stdout.strip()})")
    prog = os.path.join(tmp, "tag.c")
    with open(prog, "w") as f:
        f.write('#include <stdio.h>\n#include <kwheel/kwheel.h>\n#include <kwheel/audit.h>\n'
                'int main(int argc, char **argv)\n{\n\tstruct kw_ctx *ctx = NULL;\n\tstruct kw_audit *a = NULL;\n'
                '\tstruct kw_error err = { 0 };\n\n\t(void)argc;\n'
                '\tif (kw_ctx_new(&ctx, &err) || kw_audit_wheel(ctx, argv[1], &a, &err)) {\n'
                '\t\tfprintf(stderr, "%s\\n", err.msg);\n\t\treturn 2;\n\t}\n'
                '\tprintf("%s\\n", a->best_tag);\n\tkw_audit_free(a);\n\tkw_ctx_free(ctx);\n\treturn 0;\n}\n')
    exe = os.path.join(tmp, "tag")
    # A sanitized library needs its runtime in the program too (loaded first).
    san = os.environ.get("KW_SANITIZE", "none")
    sanflags = [f"-fsanitize={san}"] if san not in ("", "none") else []
    r = run(["cc", "-std=c11", "-Wall", "-Werror", "-o", exe, prog] + sanflags + flags, env=env)
    if not check(r.returncode == 0, f"cc builds a program with `pkg-config --cflags --libs kwheel` ({r.stderr.strip()[-300:]})"):
        return
    libdir = os.path.dirname(files[so[0]])
    renv = dict(os.environ, LD_LIBRARY_PATH=libdir)
    r = run("ldd", exe, env=renv)
    check(f"libkwheel.so.{real[0].rsplit('.so.', 1)[1].split('.')[0]} => {libdir}" in r.stdout,
          "the program loads the installed libkwheel.so (ldd)")
    for whl in ("debian/pyyaml-6.0-cp311-cp311-linux_x86_64.whl", "debian/markupsafe-2.1.2-cp311-cp311-linux_x86_64.whl",
                "auditwheel/testzlib-0.0.1-cp310-cp310-linux_x86_64.whl"):
        path = os.path.join(corpus, "wheels", whl)
        r = run(exe, path, env=renv)
        sj = run(KWHEEL, "show", "--json", path)
        want = json.loads(sj.stdout).get("overall_tag") if sj.stdout.strip() else None
        check(r.returncode == 0 and want and r.stdout.strip() == want,
              f"the program gives {os.path.basename(whl)} the tag kwheel show does ({r.stdout.strip()} / {want})")
    bad_prog = os.path.join(tmp, "internal.c")
    with open(bad_prog, "w") as f:
        f.write("struct rawzip;\nint rawzip_open(struct rawzip *z, const char *path, void *err);\n"
                "int main(void)\n{\n\treturn rawzip_open(0, \"x\", 0);\n}\n")
    r = run(["cc", "-o", os.path.join(tmp, "internal"), bad_prog] + flags, env=env)
    check(r.returncode != 0 and "rawzip_open" in r.stderr, "a program calling a module internal (rawzip_open) does not link")


def main():
    {"messages": group_messages, "version": group_version, "install": group_install,
     "completions": group_completions, "man": group_man, "pip": group_pip,
     "progress": group_progress}[GROUP]()
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
