/* SPDX-License-Identifier: MIT */
/*
 * The ELF editor. A rewrite is planned in full before a byte is written:
 * the new dynamic array, where every new string goes, whether the file must
 * grow. Strings go, in order of preference, to an identical string already
 * in .dynstr, over an old string nothing else points into, or into a new
 * .dynstr appended in a new PT_LOAD. Growing never moves existing sections:
 * the program header table, the new .dynstr and (if it must grow) the new
 * .dynamic are appended in one segment aligned to the file's own largest
 * p_align, so files built for 64 KiB pages stay loadable there.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void plan_release(struct plan *p)
{
	img_release(&p->im);
	free(p->e);
	free(p->rpath_buf);
	free(p->vn);
	free(p->vn_bytes);
	free(p->dropped_ndx);
	free(p->append);
	free(p->slots);
	free(p->sw);
	plan_symbols_release(p);
}

int kw_patch_image(unsigned char *buf, size_t len, const char *name, const struct kw_patch_ops *ops,
		   struct kw_patch_result *res, struct kw_error *err)
{
	struct plan p;
	int rc;

	memset(&p, 0, sizeof(p));
	memset(res, 0, sizeof(*res));
	p.ops = ops;
	rc = img_load(&p.im, buf, len, name, err);
	if (rc == 0) {
		rc = plan_load_entries(&p, err);
	}
	if (rc == 0) {
		rc = plan_apply_ops(&p, ops, err);
	}
	if (rc == 0) {
		rc = plan_verneed_removal(&p, ops, err);
	}
	if (rc == 0) {
		rc = plan_symbols(&p, ops, err);
	}
	if (rc == 0) {
		rc = plan_place_strings(&p, err);
	}
	if (rc == 0) {
		rc = plan_build(&p, res, err);
	}
	if (rc == 0) {
		res->written = p.im.written;
		p.im.written = NULL;
	}
	plan_release(&p);
	return rc;
}

void kw_patch_result_release(struct kw_patch_result *res)
{
	free(res->tail);
	free(res->written);
	memset(res, 0, sizeof(*res));
}
