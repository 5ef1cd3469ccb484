"""Real Pyodide runs for the wasm tests: the npm packages, cached, and a Node runner.

The packages come from the npm registry with `npm pack pyodide@VERSION` on
first use and are kept, unpacked, in a cache directory outside the
repository: $KW_WASM_CACHE, else wasm-cache beside the source tree (the
corpus's sibling). Several tests may fetch at once: each version is unpacked
into a private directory and renamed into place, and a lock file serialises
the fetches. Every run happens in a new empty directory (see pyodide-run.js).
"""
import fcntl
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "pyodide-run.js")


def cache_dir():
    d = os.environ.get("KW_WASM_CACHE")
    if not d:
        d = os.path.join(os.environ.get("KW_SOURCE_ROOT", os.path.join(HERE, "..", "..", "..")), "..",
                         "wasm-cache")
    d = os.path.abspath(d)
    os.makedirs(d, exist_ok=True)
    return d


def missing_tools():
    """Why Pyodide cannot run here (a sentence), or None."""
    for t in ("node", "npm"):
        if not shutil.which(t):
            return f"{t} not found (tools/deps installs it)"
    return None


def ensure(version):
    """The unpacked package directory of pyodide@version (fetched once), or raises RuntimeError."""
    cache = cache_dir()
    final = os.path.join(cache, f"pyodide-{version}", "package")
    if os.path.isfile(os.path.join(final, "pyodide.js")):
        return final
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(os.path.join(final, "pyodide.js")):
            return final
        tmp = tempfile.mkdtemp(prefix=f".pyodide-{version}.", dir=cache)
        try:
            tgz = os.path.join(cache, f"pyodide-{version}.tgz")
            if not os.path.isfile(tgz):
                r = subprocess.run(["npm", "pack", "--silent", f"pyodide@{version}"], cwd=tmp,
                                   capture_output=True, text=True, timeout=600)
                if r.returncode != 0:
                    raise RuntimeError(f"npm pack pyodide@{version} failed: {r.stderr.strip()[-300:]}")
                os.rename(os.path.join(tmp, f"pyodide-{version}.tgz"), tgz)
            r = subprocess.run(["tar", "-xzf", tgz, "-C", tmp], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"cannot unpack {tgz}: {r.stderr.strip()}")
            shutil.rmtree(os.path.dirname(final), ignore_errors=True)
            os.makedirs(os.path.dirname(final))
            os.rename(os.path.join(tmp, "package"), final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def run(version, wheel, mode, code, timeout=300):
    """Install wheel in Pyodide version (mode "loadPackage" or "unpack"), run code; (rc, stdout, stderr).

    The Node process runs in a new empty directory, so no library can come from the host's cwd.
    """
    pkg = ensure(version)
    with tempfile.TemporaryDirectory(prefix="kw-pyodide-") as empty:
        codefile = os.path.join(empty, "..", os.path.basename(empty) + ".py")
        with open(codefile, "w") as f:
            f.write(code)
        try:
            r = subprocess.run(["node", RUNNER, pkg, os.path.abspath(wheel), mode, codefile], cwd=empty,
                               capture_output=True, text=True, timeout=timeout)
        finally:
            os.unlink(codefile)
        leftovers = os.listdir(empty)
    if leftovers:
        raise RuntimeError(f"the run left files in its empty directory: {leftovers}")
    return r.returncode, r.stdout, r.stderr


def result(stdout, tag="RESULT "):
    """The text after the last line starting with tag, or None."""
    found = None
    for line in stdout.splitlines():
        if line.startswith(tag):
            found = line[len(tag):]
    return found
