#!/usr/bin/env python3
"""`kwheel patch --rename-dynamic-symbols` and `--clear-symbol-version`, with the loader as oracle.

Built here with gcc; readelf, eu-elflint, patchelf and running the programs (real ld.so) are the oracles:
  - an export renamed in a library and the import renamed in its program: the program runs, lazily and
    with LD_BIND_NOW, with the library's lookup going through .gnu.hash (the default) or .hash alone
    (--hash-style=sysv) or both; renaming the library alone makes the program fail (the check can fail);
  - 2000 exports renamed in a library and its PIE (patchelf's own scenario), which reorders .dynsym for
    .gnu.hash: the program runs with LD_BIND_NOW, the relocations name the new symbols, and renaming back
    gives the original symbol table and relocations;
  - imports of a copy of the system's libz renamed to wrappers in a library added as DT_NEEDED (no
    LD_PRELOAD): a zlib program's allocations go through the wrappers; the versions are kept, and with
    --clear-symbol-version the import is unversioned (readelf -V) and it still runs;
  - readelf --dyn-syms shows the new names; eu-elflint --gnu-ld has no message the input had not;
    patchelf renames the same way where it can (Debian's 0.14 cannot: then the expected names are the oracle);
  - the map file's errors, and the options under patchelf's name.
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, failures, run  # noqa: E402

KWHEEL = sys.argv[1]

LIB_C = r"""
int kw_answer(void) { return 42; }
int kw_other(int x) { return x + 1; }
const char *kw_greet(void) { return "hello"; }
"""
MAIN_C = r"""
#include <stdio.h>
int kw_answer(void); int kw_other(int); const char *kw_greet(void);
int main(void) { printf("%d %d %s\n", kw_answer(), kw_other(1), kw_greet()); return 0; }
"""
WRAP_C = r"""
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>
static int mallocs, frees;
void *kwwrap_malloc(size_t n) { mallocs++; return malloc(n); }
void kwwrap_free(void *p) { if (p) frees++; free(p); }
__attribute__((destructor)) static void report(void)
{
	char b[64];
	int n = snprintf(b, sizeof(b), "wrapped %d mallocs %d frees\n", mallocs, frees);
	write(1, b, (size_t)n);
}
"""
ZPROG_C = r"""
#include <stdio.h>
#include <string.h>
#include <zlib.h>
int main(void)
{
	static unsigned char in[100000], out[200000], back[100000];
	uLongf n = sizeof(out), m = sizeof(back);
	memset(in, 'k', sizeof(in));
	if (compress2(out, &n, in, sizeof(in), 9) != Z_OK || uncompress(back, &m, out, n) != Z_OK ||
	    m != sizeof(in) || memcmp(in, back, m) != 0)
		return 1;
	puts("zlib ok");
	fflush(stdout);
	return 0;
}
"""


def kw(*args):
    return run([KWHEEL, "patch"] + list(args))


def cc(tmp, src, out, *flags):
    c = os.path.join(tmp, os.path.basename(out) + ".c")
    with open(c, "w") as f:
        f.write(src)
    r = run(["gcc", "-w", "-O1", c, "-o", out] + list(flags))
    if not check(r.returncode == 0, f"gcc builds {os.path.basename(out)} {r.stderr.strip()}"):
        raise SystemExit(1)
    return out


def elflint(p):
    out = run(["eu-elflint", "--gnu-ld", p]).stdout
    return {re.sub(r"0x[0-9a-f]+|\d+", "N", l) for l in out.splitlines() if l.strip() and "No errors" not in l}


def no_new_elflint(orig, new):
    extra = elflint(new) - elflint(orig)
    return not extra, sorted(extra)[:3]


def dynsyms(p):
    """(index, name with version, defined) of each dynamic symbol, as readelf shows them."""
    out = []
    for line in run(["readelf", "--dyn-syms", "-W", p]).stdout.splitlines():
        m = re.match(r"\s*(\d+): \S+\s+\d+\s+\S+\s+\S+\s+\S+\s+(\S+)\s*(\S*)", line)
        if m and m.group(3):
            out.append((int(m.group(1)), m.group(3), m.group(2) != "UND"))
    return out


def names(p):
    return sorted((n, d) for _, n, d in dynsyms(p))


def reloc_names(p):
    """Symbol names of the relocations, in table order (version dropped), as patchelf's test reads them."""
    out = []
    for line in run(["readelf", "-W", "-r", p]).stdout.splitlines():
        f = line.split()
        if len(f) >= 5 and re.match(r"^[0-9a-f]{8,}$", f[0]):
            out.append(f[4].split("@")[0])
    return out


def write_map(path, pairs):
    with open(path, "w") as f:
        for a, b in pairs:
            f.write(f"{a} {b}\n")
    return path


def versym_of(p, sym):
    """The .gnu.version entry of the dynamic symbol named sym (readelf -V), or None."""
    idx = [i for i, n, _ in dynsyms(p) if n.split("@")[0] == sym]
    if not idx:
        return None
    vals = {}
    for line in run(["readelf", "-V", "-W", p]).stdout.splitlines():
        m = re.match(r"\s*([0-9a-f]+):((?:\s+\S+\s+\([^)]*\)h?)+)", line)
        if m:
            base = int(m.group(1), 16)
            for k, e in enumerate(re.findall(r"(\S+)\s+\(([^)]*)\)", m.group(2))):
                vals[base + k] = e
    return vals.get(idx[0])


def patchelf_renames():
    r = run(["patchelf", "--help"])
    return "--rename-dynamic-symbols" in (r.stdout + r.stderr)


def small_pair(tmp):
    """An export renamed in the library and the import in its program, per hash style."""
    mp = write_map(os.path.join(tmp, "small.map"), [("kw_answer", "kw_renamed_answer_xyz"), ("kw_greet", "kw_hi")])
    for style in ("gnu", "sysv", "both"):
        d = os.path.join(tmp, style)
        out = os.path.join(d, "out")
        os.makedirs(out)
        lib = cc(d, LIB_C, os.path.join(d, "libkwsym.so"), "-shared", "-fPIC", f"-Wl,--hash-style={style}")
        prog = cc(d, MAIN_C, os.path.join(d, "prog"), f"-L{d}", "-lkwsym", f"-Wl,--hash-style={style}",
                  "-Wl,-rpath,$ORIGIN")
        sections = run(["readelf", "-SW", lib]).stdout
        check((".gnu.hash" in sections) == (style != "sysv") and (" .hash" in sections) == (style != "gnu"),
              f"{style}: the library has the hash tables asked for")
        r1 = kw("--rename-dynamic-symbols", mp, "-o", os.path.join(out, "libkwsym.so"), lib)
        r2 = kw("--rename-dynamic-symbols", mp, "-o", os.path.join(out, "prog"), prog)
        check(r1.returncode == 0 and r2.returncode == 0, f"{style}: renamed {r1.stderr.strip()} {r2.stderr.strip()}")
        for env in ({}, {"LD_BIND_NOW": "1"}):
            rr = run([os.path.join(out, "prog")], env=dict(os.environ, **env))
            check(rr.returncode == 0 and rr.stdout == "42 2 hello\n",
                  f"{style}: the program runs with the renamed export {env} ({rr.stderr.strip()})")
        got = names(os.path.join(out, "libkwsym.so"))
        check(("kw_renamed_answer_xyz", True) in got and ("kw_hi", True) in got and ("kw_other", True) in got
              and not any(n in ("kw_answer", "kw_greet") for n, _ in got), f"{style}: readelf --dyn-syms: new names")
        got = names(os.path.join(out, "prog"))
        check(("kw_renamed_answer_xyz", False) in got and ("kw_hi", False) in got,
              f"{style}: the program imports the new names")
        for f in ("libkwsym.so", "prog"):
            ok, extra = no_new_elflint(os.path.join(d, f), os.path.join(out, f))
            check(ok, f"{style}: eu-elflint --gnu-ld on {f}: nothing new {extra}")
        # The library alone renamed: its old name is gone, so the program cannot run (the check can fail).
        neg = os.path.join(d, "neg")
        os.makedirs(neg)
        shutil.copy(os.path.join(out, "libkwsym.so"), neg)
        shutil.copy(prog, neg)
        rr = run([os.path.join(neg, "prog")])
        check(rr.returncode != 0 and "kw_answer" in rr.stderr or "kw_greet" in rr.stderr,
              f"{style}: only the library renamed: the program fails to find the old name")


def many_syms(tmp):
    """patchelf's scenario: every export of a 2000-symbol library, in it and its PIE, then back."""
    d = os.path.join(tmp, "many")
    os.makedirs(d)
    lib = cc(d, "".join(f"void f{i}(void) {{}}\n" for i in range(1, 2001)), os.path.join(d, "libmany.so"),
             "-shared", "-fPIC")
    main = "int main(void) {\n" + "".join(f"void f{i}(void); f{i}();\n" for i in range(1, 2001)) + "return 0; }\n"
    prog = cc(d, main, os.path.join(d, "many-main"), "-pie", "-fPIE", f"-L{d}", "-lmany")
    pairs = [(f"f{i}", f"f{i}_special_suffix") for i in range(1, 2001)]
    mp = write_map(os.path.join(d, "map"), pairs)
    rmp = write_map(os.path.join(d, "rmap"), [(b, a) for a, b in pairs])
    env = os.path.join(d, "env")
    os.makedirs(env)
    r = kw("--rename-dynamic-symbols", mp, "-o", os.path.join(env, "libmany.so"), lib)
    r2 = kw("--rename-dynamic-symbols", mp, "-o", os.path.join(env, "many-main"), prog)
    check(r.returncode == 0 and r2.returncode == 0, f"2000 renames {r.stderr.strip()} {r2.stderr.strip()}")
    before = [(i, n) for i, n, dd in dynsyms(lib) if dd and n.startswith("f")]
    after = {n: i for i, n, dd in dynsyms(os.path.join(env, "libmany.so")) if dd}
    moved = sum(1 for i, n in before if after.get(n + "_special_suffix") != i)
    check(moved > 1000, f".dynsym reordered for .gnu.hash ({moved} of {len(before)} exports moved)")
    rr = run([os.path.join(env, "many-main")], env=dict(os.environ, LD_BIND_NOW="1", LD_LIBRARY_PATH=env))
    check(rr.returncode == 0, f"the PIE runs against the renamed library with LD_BIND_NOW ({rr.stderr.strip()[:200]})")
    want = [n + "_special_suffix" if re.fullmatch(r"f\d+", n) else n for n in reloc_names(prog)]
    check(reloc_names(os.path.join(env, "many-main")) == want, "the program's relocations name the new symbols")
    want = [n + "_special_suffix" if re.fullmatch(r"f\d+", n) else n for n in reloc_names(lib)]
    check(reloc_names(os.path.join(env, "libmany.so")) == want, "the library's relocations follow its reordering")
    for f in ("libmany.so", "many-main"):
        ok, extra = no_new_elflint(os.path.join(d, f), os.path.join(env, f))
        check(ok, f"eu-elflint --gnu-ld on renamed {f}: nothing new {extra}")
    back = os.path.join(d, "libback.so")
    r = kw("--rename-dynamic-symbols", rmp, "-o", back, os.path.join(env, "libmany.so"))
    check(r.returncode == 0 and names(back) == names(lib) and reloc_names(back) == reloc_names(lib),
          "renamed back: the original symbols and relocations")
    check(run(["readelf", "-SW", back]).stdout.count(".dynstr") == 1 and
          os.path.getsize(back) == os.path.getsize(os.path.join(env, "libmany.so")),
          "renamed back: the old names are reused, the file does not grow")
    # One rename among 2000 still reorders .dynsym, but few of its blocks hold a renamed name: what the
    # writer copies from the old file must not include a block the reordering or the new hash tables wrote.
    one = write_map(os.path.join(d, "map1"), [("f1", "f1_special_suffix")])
    env1 = os.path.join(d, "env1")
    os.makedirs(env1)
    shutil.copy(lib, os.path.join(env1, "libmany.so"))
    r = kw("--rename-dynamic-symbols", one, os.path.join(env1, "libmany.so"))
    r2 = kw("--rename-dynamic-symbols", one, "-o", os.path.join(env1, "many-main"), prog)
    rr = run([os.path.join(env1, "many-main")], env=dict(os.environ, LD_BIND_NOW="1", LD_LIBRARY_PATH=env1))
    check(r.returncode == 0 and r2.returncode == 0 and rr.returncode == 0,
          f"one rename among 2000, in place: the PIE runs with LD_BIND_NOW ({r.stderr.strip()} {rr.stderr.strip()[:200]})")
    ok, extra = no_new_elflint(lib, os.path.join(env1, "libmany.so"))
    check(ok, f"eu-elflint --gnu-ld after one rename among 2000: nothing new {extra}")
    # The patchelf oracle, where the installed patchelf can rename.
    if patchelf_renames():
        pe = os.path.join(d, "libpe.so")
        run(["patchelf", "--rename-dynamic-symbols", mp, "--output", pe, lib])
        check(names(pe) == names(os.path.join(env, "libmany.so")), "patchelf renames to the same symbol table")
    else:
        exp = sorted((n + "_special_suffix" if dd and re.fullmatch(r"f\d+", n) else n, dd) for n, dd in names(lib))
        check(names(os.path.join(env, "libmany.so")) == exp,
              "the symbol table is the expected one (the installed patchelf cannot rename: no oracle)")


def system_library(tmp):
    """Imports of a copy of the system's libz renamed to wrappers in a library added as DT_NEEDED."""
    d = os.path.join(tmp, "sys")
    os.makedirs(d)
    real = None
    for cand in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1"):
        if os.path.exists(cand):
            real = os.path.realpath(cand)
            break
    if not check(real is not None, "the system has libz.so.1"):
        return
    wrap = cc(d, WRAP_C, os.path.join(d, "libkwwrap.so"), "-shared", "-fPIC")
    prog = cc(d, ZPROG_C, os.path.join(d, "zprog"), "-lz")
    base = run([prog], env=dict(os.environ, LD_LIBRARY_PATH=d))
    check(base.stdout == "zlib ok\n", "the zlib program runs, no wrapper in sight")
    imports = {n for _, n, dd in dynsyms(real) if not dd}
    check("malloc@GLIBC_2.2.5" in imports and "free@GLIBC_2.2.5" in imports,
          "the system's libz imports malloc and free, versioned")
    mp = write_map(os.path.join(d, "map"), [("malloc", "kwwrap_malloc"), ("free", "kwwrap_free")])
    for clear in (False, True):
        out = os.path.join(d, "clear" if clear else "keep")
        os.makedirs(out)
        shutil.copy(wrap, out)
        z = os.path.join(out, "libz.so.1")
        args = ["--add-needed", "libkwwrap.so", "--rename-dynamic-symbols", mp]
        if clear:
            args += ["--clear-symbol-version", "malloc"]
        r = kw(*args, "-o", z, real)
        tag = "with --clear-symbol-version malloc" if clear else "versions kept"
        check(r.returncode == 0, f"libz: imports renamed, {tag} {r.stderr.strip()}")
        rr = run([prog], env=dict(os.environ, LD_LIBRARY_PATH=out))
        m = re.search(r"wrapped (\d+) mallocs (\d+) frees", rr.stdout)
        check(rr.returncode == 0 and rr.stdout.startswith("zlib ok\n") and m and int(m.group(1)) > 0
              and int(m.group(2)) > 0, f"libz ({tag}): zlib's allocations go through the wrappers {rr.stdout!r}")
        got = {n for _, n, dd in dynsyms(z) if not dd}
        want_malloc = "kwwrap_malloc" if clear else "kwwrap_malloc@GLIBC_2.2.5"
        check(want_malloc in got and "kwwrap_free@GLIBC_2.2.5" in got and not any(
            n.split("@")[0] in ("malloc", "free") for n in got), f"libz ({tag}): readelf --dyn-syms: {want_malloc}")
        v = versym_of(z, "kwwrap_malloc")
        check(v == ("1", "*global*") if clear else v is not None and v[1] == "GLIBC_2.2.5",
              f"libz ({tag}): readelf -V: kwwrap_malloc's version entry {v}")
        ok, extra = no_new_elflint(real, z)
        check(ok, f"libz ({tag}): eu-elflint --gnu-ld: nothing new {extra}")
    # --clear-symbol-version alone, on the program: its import of puts becomes unversioned, it still runs.
    p2 = os.path.join(d, "zprog-clear")
    check((versym_of(prog, "puts") or ("", ""))[1] == "GLIBC_2.2.5",
          f"the program imports puts@GLIBC_2.2.5 ({versym_of(prog, 'puts')})")
    r = kw("--clear-symbol-version", "puts", "--clear-symbol-version", "no_such_symbol", "-o", p2, prog)
    v = versym_of(p2, "puts")
    rr = run([p2])
    check(r.returncode == 0 and v == ("1", "*global*") and rr.stdout == "zlib ok\n",
          f"--clear-symbol-version puts: unversioned ({v}), the program runs {rr.stderr.strip()}")
    syms = [n for _, n, _ in dynsyms(p2)]
    check("puts" in syms and not any(n.startswith("puts@") for n in syms), "readelf --dyn-syms: puts without a version")
    ok, extra = no_new_elflint(prog, p2)
    check(ok, f"--clear-symbol-version: eu-elflint --gnu-ld: nothing new {extra}")


def cli(tmp):
    d = os.path.join(tmp, "cli")
    os.makedirs(d)
    lib = cc(d, LIB_C, os.path.join(d, "libkwsym.so"), "-shared", "-fPIC")
    bad = {
        "one word": "kw_answer\n",
        "a version": "kw_answer@V1 kw_x\n",
        "twice": "kw_answer a\nkw_answer b\n",
    }
    for what, text in bad.items():
        mp = os.path.join(d, "bad.map")
        with open(mp, "w") as f:
            f.write(text)
        r = kw("--rename-dynamic-symbols", mp, "-o", os.path.join(d, "x.so"), lib)
        check(r.returncode == 2 and "bad.map" in r.stderr and not os.path.exists(os.path.join(d, "x.so")),
              f"map file with {what}: refused, naming the file ({r.stderr.strip()})")
    r = kw("--rename-dynamic-symbols", os.path.join(d, "missing.map"), lib)
    check(r.returncode == 2 and "missing.map" in r.stderr, "a missing map file: an error naming it")
    # Blank lines and extra words are ignored; one rewrite with other edits; several map files add up.
    m1 = os.path.join(d, "m1")
    with open(m1, "w") as f:
        f.write("\n  kw_answer   kw_a2 trailing words\n\n")
    m2 = write_map(os.path.join(d, "m2"), [("kw_other", "kw_o2")])
    out = os.path.join(d, "out.so")
    r = kw("-v", "--set-rpath", "/opt/x", "--rename-dynamic-symbols", m1, "--rename-dynamic-symbols", m2, "-o", out, lib)
    got = names(out)
    check(r.returncode == 0 and ("kw_a2", True) in got and ("kw_o2", True) in got and
          kw("--print-rpath", out).stdout == "/opt/x\n", f"two map files and --set-rpath in one rewrite ({r.stderr.strip()})")
    nomatch = write_map(os.path.join(d, "nomatch"), [("SYMBOL_THAT_DOESNT_EXIST", "ANOTHER_NAME")])
    r = kw("-v", "--rename-dynamic-symbols", nomatch, "-o", os.path.join(d, "same.so"), lib)
    check(r.returncode == 0 and "unchanged" in r.stderr and names(os.path.join(d, "same.so")) == names(lib),
          "a map naming no symbol of the file changes nothing")
    empty = os.path.join(d, "empty.map")
    open(empty, "w").close()
    r = kw("-v", "--rename-dynamic-symbols", empty, "-o", os.path.join(d, "empty.so"), lib)
    check(r.returncode == 0 and "unchanged" in r.stderr, f"an empty map is an edit that changes nothing ({r.stderr.strip()})")
    # Under patchelf's name.
    pe = os.path.join(d, "patchelf")
    shutil.copy(KWHEEL, pe)
    mp = write_map(os.path.join(d, "pe.map"), [("kw_greet", "kw_g2")])
    out = os.path.join(d, "pe.so")
    r = run([pe, lib, "--rename-dynamic-symbols", mp, "--clear-symbol-version", "kw_other", "--output", out])
    check(r.returncode == 0 and ("kw_g2", True) in names(out), f"patchelf: --rename-dynamic-symbols {r.stderr.strip()}")
    with open(mp, "w") as f:
        f.write("kw_greet\n")
    r = run([pe, "--rename-dynamic-symbols", mp, lib])
    check(r.returncode == 1 and "pe.map" in r.stderr, "patchelf: a bad map exits 1")


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-patch-symbols-")
    try:
        small_pair(tmp)
        many_syms(tmp)
        system_library(tmp)
        cli(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
