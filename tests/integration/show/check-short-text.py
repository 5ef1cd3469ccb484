#!/usr/bin/env python3
"""`kwheel show`'s default text against `auditwheel show`'s, wheel by wheel.

usage: check-short-text.py KWHEEL SOURCE_ROOT CORPUS

auditwheel (run from its source tarball, as check-vs-auditwheel.py does) is
the reference for what a person reads. For every corpus wheel auditwheel
reports on, kwheel's default text must be about as short (no longer than
auditwheel's, or 12 lines) and no corpus report longer than auditwheel's
longest, and must say the same things first, in auditwheel's order:
  1. the tag the wheel is consistent with (auditwheel's "consistent with the
     following platform tag");
  2. the tag repair reaches (auditwheel's "This constrains the platform tag
     to") and the libraries it vendors for it (auditwheel's --json
     libs_to_eliminate for that tag);
  3. the symbol versions that keep the next more compatible tag out of
     reach, by library and version: from auditwheel's --json
     versioned_symbols and the ceilings of auditwheel's own policy file.
`kwheel show -v` must still hold the per-policy detail ("why not a more
compatible tag") the default leaves out.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import check, failures  # noqa: E402

spec = importlib.util.spec_from_file_location("vs_aw", os.path.join(HERE, "check-vs-auditwheel.py"))
vs_aw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vs_aw)

KWHEEL, SRC, CORPUS = sys.argv[1:4]
PY = "/usr/bin/python3"
FLOOR = 12


def aw_text(pythonpath, wheel):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = pythonpath
    p = subprocess.run([PY, "-m", "auditwheel", "show", wheel], capture_output=True, text=True, env=env, timeout=600)
    return p.returncode, p.stdout


def kw_text(wheel, *extra):
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    p = subprocess.run([KWHEEL, "show", *extra, wheel], capture_output=True, text=True, env=env, timeout=600)
    return p.returncode, p.stdout


def policies(arch):
    """auditwheel's manylinux policies for arch, most compatible first."""
    with open(os.path.join(vs_aw.REF, "manylinux-policy.json")) as f:
        pol = json.load(f)
    return sorted((p for p in pol if p["name"] != "linux" and arch in p["symbol_versions"]),
                  key=lambda p: -p["priority"])


def blocking(aw_json, arch):
    """(lib, version) pairs above the ceilings of the policy just more compatible than sym_tag."""
    pols = policies(arch)
    names = [f"{p['name']}_{arch}" for p in pols]
    tag = aw_json.get("sym_tag")
    if tag not in names or names.index(tag) == 0:
        return None, set()
    p = pols[names.index(tag) - 1]
    ceil = p["symbol_versions"][arch]
    out = set()
    for lib, vers in aw_json.get("versioned_symbols", {}).items():
        for v in vers:
            prefix, _, num = v.partition("_")
            if prefix in ceil and num not in ceil[prefix]:
                out.add((lib, v))
    return names[names.index(tag) - 1], out


def parse_kw(text):
    lines = text.splitlines()
    got = {"tag": None, "reach": None, "vendor": [], "blocked_for": None, "blocked": set(), "order": []}
    section = None
    for line in lines[1:]:
        m = re.match(r"^  consistent with: (\S+)$", line)
        if m:
            got["tag"] = m.group(1)
            got["order"].append("tag")
            section = None
            continue
        m = re.match(r"^  (?:repair reaches|symbol versions allow): ([^,\s]+)", line)
        if m:
            got["reach"] = m.group(1)
            got["order"].append("reach")
            section = "vendor"
            continue
        m = re.match(r"^  too new for (\S+):$", line)
        if m:
            got["blocked_for"] = m.group(1)
            got["order"].append("blocked")
            section = "blocked"
            continue
        if not line.startswith("    "):
            section = None
            continue
        if section == "vendor":
            m = re.match(r"^    (\S+) => ", line)
            if m:
                got["vendor"].append(m.group(1))
        elif section == "blocked":
            m = re.match(r"^    (\S+) (\S+): ", line)
            if m:
                got["blocked"].add((m.group(1), m.group(2)))
    return got


def main():
    tmp = tempfile.mkdtemp(prefix="kwheel-short-")
    pythonpath = vs_aw.setup_auditwheel(tmp)
    wheels = sorted(os.path.join(root, n) for root, _, names in os.walk(os.path.join(CORPUS, "wheels"))
                    for n in names if n.endswith(".whl"))
    check(len(wheels) >= 30, f"the corpus holds {len(wheels)} wheels")
    longest_aw = longest_kw = 0
    compared = 0
    for w in wheels:
        name = os.path.basename(w)
        rc_aw, aw = aw_text(pythonpath, w)
        rc_kw, kw = kw_text(w)
        n_aw, n_kw = len(aw.splitlines()), len(kw.splitlines())
        longest_kw = max(longest_kw, n_kw)
        if rc_aw != 0 or not aw.strip():
            check(n_kw <= FLOOR, f"{name}: auditwheel reports nothing, kwheel {n_kw} lines (at most {FLOOR})")
            continue
        compared += 1
        longest_aw = max(longest_aw, n_aw)
        check(n_kw <= max(n_aw, FLOOR), f"{name}: {n_kw} lines, auditwheel {n_aw}")
        flat = " ".join(aw.split())
        got = parse_kw(kw)
        rel = os.path.relpath(w, os.path.join(CORPUS, "wheels"))
        differs = [why for (wn, key), why in vs_aw.DIFFERENCES.items()
                   if wn == rel and key in ("*", "overall_tag", "sym_tag")]
        if differs:
            check(True, f"{name}: tags differ from auditwheel's on purpose: {differs[0]}")
            continue
        m = re.search(r'consistent with the following platform tag: "([^"]+)"', flat)
        check(m and got["tag"] == m.group(1) and got["order"][:1] == ["tag"],
              f"{name}: first the tag, {got['tag']} (auditwheel: {m.group(1) if m else None})")
        m = re.search(r'This constrains the platform tag to "([^"]+)"', flat)
        if not m:
            continue
        aw_json = vs_aw.auditwheel_show(pythonpath, w)
        # libpython is never vendored (repair removes the entry, the README's difference); auditwheel lists it.
        want_vendor = sorted(l for l in aw_json.get("policy_upgrades", {}).get(m.group(1), {}).get("libs_to_eliminate", [])
                             if not l.startswith("libpython"))
        ucs2 = "narrow unicode" in flat
        if got["tag"] == m.group(1):
            # consistent with the constrained tag already: the tag line says it, no repair line follows
            check(got["reach"] is None and not got["vendor"], f"{name}: already {got['tag']}, nothing to repair")
            got["order"].insert(1, "reach")
        else:
            check(got["reach"] == m.group(1),
                  f"{name}: then the tag repair reaches, {got['reach']} (auditwheel: {m.group(1)})")
        if not ucs2 and "black-listed" not in kw:
            check(sorted(got["vendor"]) == want_vendor, f"{name}: the libraries it vendors {sorted(got['vendor'])} "
                  f"(auditwheel: {want_vendor})")
        arch = aw_json["sym_tag"].split("_", 3)[-1] if aw_json.get("sym_tag", "").startswith("manylinux_") else None
        if arch:
            better, want = blocking(aw_json, arch)
            check(got["blocked_for"] == better and got["blocked"] == want,
                  f"{name}: then what keeps {better} out of reach, by library and version "
                  f"(kwheel {sorted(got['blocked'])}, from auditwheel's data {sorted(want)})")
            if better:
                check(got["order"].index("reach") < got["order"].index("blocked"),
                      f"{name}: in auditwheel's order: tag, repair, symbol versions ({got['order']})")
        _, verbose = kw_text(w, "-v")
        check("why not a more compatible tag:" in verbose and len(verbose.splitlines()) > n_kw,
              f"{name}: -v gives the per-policy detail ({len(verbose.splitlines())} lines)")
    check(compared >= 20, f"{compared} wheels compared with auditwheel's text")
    check(longest_kw <= longest_aw, f"the longest report: kwheel {longest_kw} lines, auditwheel {longest_aw}")
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
