// Run Python code in a real Pyodide under Node, with a wheel installed first.
//
//   node pyodide-run.js PYODIDE_DIR WHEEL MODE CODE_FILE
//
// MODE is "loadPackage" (Pyodide's own wheel install, which preloads the
// wheel's shared libraries) or "unpack" (unpackArchive into site-packages:
// nothing is loaded before the code runs). Python's stdout goes to stdout;
// an error is one line "ERROR: <message>" on stdout and exit status 1.
//
// Run it from an empty directory: Emscripten 3.x loaders read a library they
// cannot find in the virtual filesystem from the host's current directory,
// which would turn a missing library into a false pass.
"use strict";
const fs = require("fs");
const path = require("path");

async function main() {
	const [dir, wheel, mode, codeFile] = process.argv.slice(2);
	const { loadPyodide } = require(path.resolve(dir, "pyodide.js"));
	const py = await loadPyodide({
		indexURL: path.resolve(dir) + "/",
		stdout: (s) => process.stdout.write(s + "\n"),
		stderr: (s) => process.stderr.write(s + "\n"),
	});
	const code = fs.readFileSync(codeFile, "utf8");
	if (mode === "loadPackage") {
		const msgs = [];
		await py.loadPackage(path.resolve(wheel), (m) => msgs.push(m), (m) => msgs.push(m));
		for (const m of msgs) {
			process.stderr.write("loadPackage: " + m + "\n");
		}
	} else if (mode === "unpack") {
		const site = py.runPython("import site; site.getsitepackages()[0]");
		// A Uint8Array: newer Pyodides refuse a Node Buffer.
		py.unpackArchive(new Uint8Array(fs.readFileSync(wheel)), "wheel", { extractDir: site });
	} else {
		throw new Error("unknown mode " + mode);
	}
	await py.runPythonAsync(code);
}

main().then(
	() => process.exit(0),
	(e) => {
		const msg = String((e && e.message) || e).split("\n").filter((l) => l.trim()).slice(-3).join(" | ");
		process.stdout.write("ERROR: " + msg + "\n");
		process.exit(1);
	}
);
