/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "kwheel/elf.h"

#include "fuzz-common.h"

/* The sink only exists so reads cannot be optimised away. */
static volatile uint8_t fz_sink;

void fz_touch(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t acc = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		acc ^= b[i];
	}
	fz_sink ^= acc;
}

size_t fz_split(const uint8_t *data, size_t size, uint8_t sep, struct fz_part *parts, size_t max)
{
	size_t n = 0, start = 0, i;

	for (i = 0; i < size && n + 1 < max; i++) {
		if (data[i] == sep) {
			parts[n].p = data + start;
			parts[n].len = i - start;
			n++;
			start = i + 1;
		}
	}
	parts[n].p = data + start;
	parts[n].len = size - start;
	return n + 1;
}

char *fz_strdup_part(const struct fz_part *part)
{
	char *s = malloc(part->len + 1);

	if (!s) {
		abort();
	}
	if (part->len) {
		memcpy(s, part->p, part->len);
	}
	s[part->len] = '\0';
	return s;
}

static void touch_str(const char *s)
{
	if (s) {
		fz_touch(s, strlen(s) + 1);
	}
}

/* A NULL-terminated array with its count: both must agree. */
static void touch_strv(char *const *v, size_t n)
{
	size_t i;

	if (!v) {
		if (n != 0) {
			abort();
		}
		return;
	}
	for (i = 0; i < n; i++) {
		if (!v[i]) {
			abort();
		}
		touch_str(v[i]);
	}
	if (v[n] != NULL) {
		abort();
	}
}

void fz_walk_elf(const struct kw_elf_info *info)
{
	size_t i;

	fz_touch(info, sizeof(*info));
	touch_str(info->interp);
	touch_strv(info->needed, info->n_needed);
	touch_str(info->soname);
	touch_str(info->rpath);
	touch_str(info->runpath);
	if (info->n_verneed && !info->verneed) {
		abort();
	}
	for (i = 0; i < info->n_verneed; i++) {
		touch_str(info->verneed[i].file);
		touch_strv(info->verneed[i].versions, info->verneed[i].n_versions);
	}
	if (info->n_verdef && !info->verdef) {
		abort();
	}
	for (i = 0; i < info->n_verdef; i++) {
		touch_str(info->verdef[i]);
	}
	if (info->n_syms && !info->syms) {
		abort();
	}
	for (i = 0; i < info->n_syms; i++) {
		const struct kw_elf_sym *s = &info->syms[i];

		touch_str(s->name);
		touch_str(s->version);
		fz_touch(s, sizeof(*s));
	}
	if (info->n_reloc_types && !info->reloc_types) {
		abort();
	}
	for (i = 0; i < info->n_reloc_types; i++) {
		/* Documented as distinct and sorted. */
		if (i > 0 && info->reloc_types[i - 1] >= info->reloc_types[i]) {
			abort();
		}
		touch_str(kw_elf_reloc_str(info->machine, info->reloc_types[i]));
	}
	touch_str(kw_elf_arch(info));
	touch_str(kw_elf_machine_str(info->machine));
	if (!kw_elf_compatible(info, info)) {
		/* Only unknown OSABIs may make an object incompatible with itself; not an error. */
		fz_touch(&info->osabi, 1);
	}
	if (info->n_syms > 0 && info->syms[0].name) {
		const struct kw_elf_sym *s = kw_elf_find_sym(info, info->syms[0].name);

		if (!s) {
			abort();
		}
		touch_str(s->name);
	}
}
