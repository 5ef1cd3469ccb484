/* SPDX-License-Identifier: MIT */
/* Wheel file names: {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "kwheel/util.h"
#include "kwheel/wheel.h"

void kw_wheel_name_release(struct kw_wheel_name *n)
{
	size_t i;

	if (!n) {
		return;
	}
	free(n->distribution);
	free(n->version);
	free(n->build);
	free(n->python);
	free(n->abi);
	free(n->platform);
	for (i = 0; i < n->n_platforms; i++) {
		free(n->platforms[i]);
	}
	free(n->platforms);
	memset(n, 0, sizeof(*n));
}

static bool tag_chars_ok(const char *s)
{
	if (!*s) {
		return false;
	}
	for (; *s; s++) {
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '+' && *s != '!') {
			return false;
		}
	}
	return true;
}

int kw_wheel_parse_name(const char *filename, struct kw_wheel_name *out, struct kw_error *err)
{
	struct kw_strv parts = { 0 };
	struct kw_wheel_name n;
	const char *base = strrchr(filename, '/');
	char *stem = NULL;
	size_t len, i, k = 0;
	int rc = KW_EFORMAT;

	memset(&n, 0, sizeof(n));
	base = base ? base + 1 : filename;
	len = strlen(base);
	if (len < 5 || strcmp(base + len - 4, ".whl") != 0) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': not a wheel file name (no .whl)", base);
		goto out;
	}
	stem = kw_strndup(base, len - 4);
	if (!stem || kw_strv_split(&parts, stem, '-')) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	if (parts.n != 5 && parts.n != 6) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': a wheel file name has 5 or 6 dash-separated parts, not %zu",
				  base, parts.n);
		goto out;
	}
	for (i = 0; i < parts.n; i++) {
		if (!tag_chars_ok(parts.v[i])) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': part %zu ('%s') is empty or has invalid characters",
					  base, i + 1, parts.v[i]);
			goto out;
		}
	}
	if (parts.n == 6 && !isdigit((unsigned char)parts.v[2][0])) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': build tag '%s' must start with a digit", base, parts.v[2]);
		goto out;
	}
	n.distribution = kw_strdup(parts.v[k++]);
	n.version = kw_strdup(parts.v[k++]);
	if (parts.n == 6) {
		n.build = kw_strdup(parts.v[k++]);
	}
	n.python = kw_strdup(parts.v[k++]);
	n.abi = kw_strdup(parts.v[k++]);
	n.platform = kw_strdup(parts.v[k++]);
	if (!n.distribution || !n.version || (parts.n == 6 && !n.build) || !n.python || !n.abi || !n.platform) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	{
		struct kw_strv plats = { 0 };

		if (kw_strv_split(&plats, n.platform, '.')) {
			kw_strv_release(&plats);
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
		n.platforms = plats.v;
		n.n_platforms = plats.n;
		for (i = 0; i < n.n_platforms; i++) {
			if (!n.platforms[i][0]) {
				rc = kw_error_set(err, KW_EFORMAT, "'%s': empty platform tag in '%s'", base, n.platform);
				goto out;
			}
		}
	}
	*out = n;
	memset(&n, 0, sizeof(n));
	rc = 0;
out:
	kw_wheel_name_release(&n);
	kw_strv_release(&parts);
	free(stem);
	return rc;
}
