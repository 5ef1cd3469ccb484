/* SPDX-License-Identifier: MIT */
/*
 * kwheel's KM runtime for a statically linked interpreter: the registration
 * objects converted by `kwheel km` call km_dl_register from their
 * constructors, and dlopen/dlsym/dlerror/dlclose (wrapped with
 * -Wl,--wrap=...) find them there. Also the TLS helpers the converted code
 * calls: every converted object's TLS is static TLS of the executable, so
 * both return an offset from the thread pointer.
 * Compiled by `kwheel km --link-python`; KW_DL_DEBUG=1 logs each call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	const char *name;
	void **addr; /* holds the symbol's address */
} km_dl_symbol_t;

typedef struct {
	char *name;  /* file name */
	char *id;    /* wheel-relative path */
	km_dl_symbol_t *symtable;
} km_dl_lib_reg_t;

void km_dl_register(km_dl_lib_reg_t *reg);
void *__wrap_dlopen(const char *path, int flags);
void *__wrap_dlsym(void *handle, const char *name);
char *__wrap_dlerror(void);
int __wrap_dlclose(void *handle);
void *__real_dlopen(const char *path, int flags);
void *__real_dlsym(void *handle, const char *name);

#define KW_MAX_LIBS 4096
static km_dl_lib_reg_t *libs[KW_MAX_LIBS];
static int n_libs;
static char errbuf[512];
static int have_err;

static int debug(void)
{
	static int d = -1;

	if (d < 0) {
		const char *e = getenv("KW_DL_DEBUG");

		d = e && *e && strcmp(e, "0") != 0;
	}
	return d;
}

void km_dl_register(km_dl_lib_reg_t *reg)
{
	if (n_libs < KW_MAX_LIBS) {
		libs[n_libs++] = reg;
	}
	if (debug()) {
		fprintf(stderr, "kw_dl: registered %s\n", reg->id);
	}
}

/* Does path end with "/" + id (or equal it)? The import system passes absolute paths. */
static int suffix_match(const char *path, const char *id)
{
	size_t lp = strlen(path), li = strlen(id);

	return lp >= li && strcmp(path + lp - li, id) == 0 && (lp == li || path[lp - li - 1] == '/');
}

void *__wrap_dlopen(const char *path, int flags)
{
	const char *base;
	km_dl_lib_reg_t *hit = NULL;
	int i, n = 0;

	(void)flags;
	if (!path) {
		/* The program itself: dlsym on it searches every registered object. */
		return (void *)&libs;
	}
	for (i = 0; i < n_libs; i++) {
		if (suffix_match(path, libs[i]->id)) {
			hit = libs[i];
			break;
		}
	}
	if (!hit) {
		base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
		for (i = 0; i < n_libs; i++) {
			if (strcmp(base, libs[i]->name) == 0) {
				hit = libs[i];
				n++;
			}
		}
		if (n > 1) {
			hit = NULL; /* two objects of that name: only the path can tell */
		}
	}
	if (debug()) {
		fprintf(stderr, "kw_dl: dlopen(%s) -> %s\n", path, hit ? hit->id : "not converted");
	}
	if (!hit) {
		snprintf(errbuf, sizeof(errbuf), "%s: not converted into this interpreter (kwheel km)", path);
		have_err = 1;
	}
	return hit;
}

static void *lookup(km_dl_lib_reg_t *lib, const char *name)
{
	km_dl_symbol_t *s;

	for (s = lib->symtable; s && s->name; s++) {
		if (strcmp(s->name, name) == 0) {
			return (void *)s->addr;
		}
	}
	return NULL;
}

void *__wrap_dlsym(void *handle, const char *name)
{
	void *p = NULL;
	int i;

	if (handle == (void *)&libs) {
		for (i = 0; i < n_libs && !p; i++) {
			p = lookup(libs[i], name);
		}
	} else if (handle) {
		p = lookup(handle, name);
	}
	if (!p) {
		snprintf(errbuf, sizeof(errbuf), "undefined symbol: %s", name);
		have_err = 1;
	}
	return p;
}

char *__wrap_dlerror(void)
{
	if (!have_err) {
		return NULL;
	}
	have_err = 0;
	return errbuf;
}

int __wrap_dlclose(void *handle)
{
	(void)handle;
	return 0;
}

/*
 * kw_tls_get_addr(tls_index *ti): the converted pair holds the variable's
 * offset from the thread pointer in its second word.
 * kw_tlsdesc_static: a TLS descriptor's function, called with %rax pointing
 * at the descriptor, returns that offset.
 */
__asm__(".text\n"
	".globl kw_tls_get_addr\n"
	".type kw_tls_get_addr, @function\n"
	"kw_tls_get_addr:\n"
	"\tmov %fs:0, %rax\n"
	"\tadd 8(%rdi), %rax\n"
	"\tret\n"
	".size kw_tls_get_addr, .-kw_tls_get_addr\n"
	".globl kw_tlsdesc_static\n"
	".type kw_tlsdesc_static, @function\n"
	"kw_tlsdesc_static:\n"
	"\tmov 8(%rax), %rax\n"
	"\tret\n"
	".size kw_tlsdesc_static, .-kw_tlsdesc_static\n");
