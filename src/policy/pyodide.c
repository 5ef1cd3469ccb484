/* SPDX-License-Identifier: MIT */
/*
 * What each Pyodide release can load from a repaired wasm wheel. Measured
 * releases were run under Node 20 with the corpus Shapely wheel and with
 * side-module chains built by Emscripten (0.21.3, 0.22.1, 0.27.7, 0.28.3,
 * 314.0.5); the others are read from their loaders' source
 * (src/js/dynload.ts, load-package.ts, emsdk patches).
 *
 * 0.21 instantiates a wheel's modules locally, so a library inside the
 * wheel never gets its symbols to its dependents. 0.22 to 0.27 look in
 * <Name>.libs/ (Name: the wheel file name's first field) while loadPackage
 * preloads. From 0.28 the Emscripten loader follows RUNTIME_PATH; 0.28 and
 * 0.29 (Emscripten 4.0.9) do not normalise paths, so one library reached by
 * two spellings is instantiated twice (fixed in 314 by an emsdk patch).
 */
#include "kwheel/policy.h"

static const struct kw_pyodide_release releases[] = {
	{ "0.21", "3.10", "3.1.14", "emscripten_3_1_14_wasm32", KW_PYODIDE_LIBS_NONE, false, "0.21.3" },
	{ "0.22", "3.10", "3.1.27", "emscripten_3_1_27_wasm32", KW_PYODIDE_LIBS_DIR, false, "0.22.1" },
	{ "0.23", "3.11", "3.1.32", "emscripten_3_1_32_wasm32", KW_PYODIDE_LIBS_DIR, false, NULL },
	{ "0.24", "3.11", "3.1.45", "emscripten_3_1_45_wasm32", KW_PYODIDE_LIBS_DIR, false, NULL },
	{ "0.25", "3.11", "3.1.46", "emscripten_3_1_46_wasm32", KW_PYODIDE_LIBS_DIR, false, NULL },
	{ "0.26", "3.12", "3.1.58", "pyodide_2024_0_wasm32", KW_PYODIDE_LIBS_DIR, false, NULL },
	{ "0.27", "3.12", "3.1.58", "pyodide_2024_0_wasm32", KW_PYODIDE_LIBS_DIR, false, "0.27.7" },
	{ "0.28", "3.13", "4.0.9", "pyodide_2025_0_wasm32", KW_PYODIDE_LIBS_RUNTIME_PATH, true, "0.28.3" },
	{ "0.29", "3.13", "4.0.9", "pyodide_2025_0_wasm32", KW_PYODIDE_LIBS_RUNTIME_PATH, true, NULL },
	{ "314", "3.14", "5.0.3", NULL, KW_PYODIDE_LIBS_RUNTIME_PATH, false, "314.0.5" },
};

const struct kw_pyodide_release *kw_policy_pyodide_releases(size_t *n)
{
	*n = sizeof(releases) / sizeof(releases[0]);
	return releases;
}

const char *kw_pyodide_libs_str(enum kw_pyodide_libs libs)
{
	switch (libs) {
	case KW_PYODIDE_LIBS_NONE: return "never";
	case KW_PYODIDE_LIBS_DIR: return "loadPackage";
	case KW_PYODIDE_LIBS_RUNTIME_PATH: return "any install";
	}
	return "unknown";
}
