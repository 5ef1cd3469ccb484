/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>
#include <libdeflate.h>
#include <uninorm.h>
#include <unicase.h>
#include <zip.h>
#include <zlib.h>

#include "internal.h"
#include "rawzip.h"
#include "kwheel/util.h"

/*
 * Ratios are judged only past this much of one member: a few hundred
 * megabytes of zeros are an odd but real member (and cost no memory, see
 * kw_wheel_map); past 512 MiB at that ratio it is a bomb.
 */
#define BOMB_MIN_SIZE (UINT64_C(512) << 20)
#define CHUNK (256 * 1024)
/*
 * Deflated members up to this size are inflated by libdeflate in one call
 * (about twice zlib's speed), from their compressed bytes read whole into
 * memory; larger ones stream through libzip, so the memory a read costs
 * stays bounded by this, whatever the member's size.
 */
#define WHOLE_MAX (UINT64_C(32) << 20)

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

zip_t *kw_wheel_zip(struct kw_wheel *w)
{
	return w->zip;
}

void kw_wheel_free(struct kw_wheel *w)
{
	size_t i;

	if (!w) {
		return;
	}
	if (w->zip) {
		zip_discard(w->zip);
	}
	for (i = 0; i < w->n_members; i++) {
		free(w->members[i].name);
	}
	free(w->members);
	free(w->by_name);
	free(w->inflated_of);
	free(w->data_off);
	if (w->fd >= 0) {
		close(w->fd);
	}
	pthread_mutex_destroy(&w->lock);
	free(w->path);
	free(w->label);
	free(w->dist_info);
	kw_wheel_name_release(&w->name);
	free(w);
}

const char *kw_wheel_path(const struct kw_wheel *w) { return w->path; }
const struct kw_wheel_name *kw_wheel_name(const struct kw_wheel *w) { return &w->name; }
const char *kw_wheel_dist_info(const struct kw_wheel *w) { return w->dist_info; }
size_t kw_wheel_member_count(const struct kw_wheel *w) { return w->n_members; }

const struct kw_wheel_member *kw_wheel_member(const struct kw_wheel *w, size_t i)
{
	return i < w->n_members ? &w->members[i] : NULL;
}

const char *kw_wheel_name_problem(const char *name)
{
	const char *p = name;

	if (!*name) {
		return "empty name";
	}
	if (name[0] == '/') {
		return "absolute path";
	}
	if (strchr(name, '\\')) {
		return "backslash in name";
	}
	if (isalpha((unsigned char)name[0]) && name[1] == ':') {
		return "drive letter in name";
	}
	for (; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			return "control character in name";
		}
	}
	p = name;
	for (;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			return "path escapes the wheel";
		}
		if (n == 1 && p[0] == '.') {
			return "'.' component in name";
		}
		if (n == 0 && e) {
			return "empty component in name";
		}
		if (!e) {
			break;
		}
		p = e + 1;
	}
	return NULL;
}

/* Sort members by name without shared state: through pointers, then back to indexes. */
static int cmp_name(const void *a, const void *b)
{
	return strcmp((*(struct kw_wheel_member *const *)a)->name, (*(struct kw_wheel_member *const *)b)->name);
}

static int sorted_index(const struct kw_wheel *w, int (*cmp)(const void *, const void *), size_t *out)
{
	struct kw_wheel_member **ptrs = kw_calloc(w->n_members ? w->n_members : 1, sizeof(*ptrs));
	size_t i;

	if (!ptrs) {
		return KW_ENOMEM;
	}
	for (i = 0; i < w->n_members; i++) {
		ptrs[i] = &w->members[i];
	}
	qsort(ptrs, w->n_members, sizeof(*ptrs), cmp);
	for (i = 0; i < w->n_members; i++) {
		out[i] = (size_t)(ptrs[i] - w->members);
	}
	free(ptrs);
	return 0;
}

long kw_wheel_find(const struct kw_wheel *w, const char *name)
{
	size_t lo = 0, hi = w->n_members;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(w->members[w->by_name[mid]].name, name);

		if (c == 0) {
			return (long)w->by_name[mid];
		}
		if (c < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return -1;
}

/* Distribution names compare case-insensitively with runs of '-', '_', '.' folded. */
static bool same_project(const char *a, size_t an, const char *b, size_t bn)
{
	size_t i = 0, k = 0;

	while (i < an && k < bn) {
		bool sa = a[i] == '-' || a[i] == '_' || a[i] == '.';
		bool sb = b[k] == '-' || b[k] == '_' || b[k] == '.';

		if (sa && sb) {
			while (i < an && (a[i] == '-' || a[i] == '_' || a[i] == '.')) {
				i++;
			}
			while (k < bn && (b[k] == '-' || b[k] == '_' || b[k] == '.')) {
				k++;
			}
			continue;
		}
		if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[k])) {
			return false;
		}
		i++;
		k++;
	}
	return i == an && k == bn;
}

static int find_dist_info(struct kw_wheel *w, struct kw_error *err)
{
	size_t i, dlen = strlen(w->name.distribution);

	for (i = 0; i < w->n_members; i++) {
		const char *n = w->members[i].name;
		const char *slash = strchr(n, '/');
		size_t top;

		if (!slash) {
			continue;
		}
		top = (size_t)(slash - n);
		if (top < 10 || strncmp(slash - 10, ".dist-info", 10) != 0) {
			continue;
		}
		if (w->dist_info) {
			if (strlen(w->dist_info) == top && strncmp(w->dist_info, n, top) == 0) {
				continue;
			}
			return kw_error_set(err, KW_EFORMAT, "'%s': more than one .dist-info directory ('%s', '%.*s')",
					    w->label, w->dist_info, (int)top, n);
		}
		w->dist_info = kw_strndup(n, top);
		if (!w->dist_info) {
			return kw_error_set(err, KW_ENOMEM, "out of memory");
		}
	}
	if (!w->dist_info) {
		return kw_error_set(err, KW_EFORMAT, "'%s': no .dist-info directory", w->label);
	}
	{
		/* "{name}-{version}.dist-info" must name the wheel's project. */
		size_t stem = strlen(w->dist_info) - 10, nlen = 0;
		const char *dash = NULL;

		for (nlen = stem; nlen > 0; nlen--) {
			if (w->dist_info[nlen - 1] == '-') {
				dash = w->dist_info + nlen - 1;
				nlen--;
				break;
			}
		}

		if (!dash || !same_project(w->dist_info, nlen, w->name.distribution, dlen)) {
			return kw_error_set(err, KW_EFORMAT, "'%s': .dist-info directory '%s' does not match the distribution '%s'",
					    w->label, w->dist_info, w->name.distribution);
		}
	}
	return 0;
}

/* A name's identity on a file system that folds case and Unicode normalisation (macOS, Windows). */
struct fold {
	uint8_t *key;
	size_t len;
	size_t idx;
};

static int fold_cmp(const void *a, const void *b)
{
	const struct fold *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* New copy (kw_malloc) of what libunistring returned, which may be its own malloc()ed buffer. */
static uint8_t *own(uint8_t *got, uint8_t *scratch, size_t len)
{
	uint8_t *p;

	if (!got) {
		return NULL;
	}
	p = kw_malloc(len ? len : 1);
	if (p) {
		memcpy(p, got, len);
	}
	if (got != scratch) {
		free(got);
	}
	return p;
}

/* name case-folded and in NFC (new, kw_malloc), NULL on failure. */
static uint8_t *fold_key(const char *name, size_t *len)
{
	uint8_t scratch[512];
	size_t n = strlen(name), k;
	uint8_t *got;

	/*
	 * ASCII is its own NFC, and folds to lower case and to nothing else:
	 * the key libunistring would give, at a fraction of its cost. (Other
	 * names can fold into ASCII, KELVIN SIGN to "k"; they take the full
	 * path and meet these keys there.)
	 */
	for (k = 0; k < n && !(name[k] & 0x80); k++) {
	}
	if (k == n) {
		got = kw_malloc(n ? n : 1);
		for (k = 0; got && k < n; k++) {
			got[k] = (uint8_t)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] - 'A' + 'a' : name[k]);
		}
		*len = n;
		return got;
	}
	n = sizeof(scratch);
	got = u8_casefold((const uint8_t *)name, strlen(name), NULL, UNINORM_NFC, scratch, &n);

	*len = n;
	return own(got, scratch, n);
}

/* Do a and b have the same NFC form? (false if that cannot be told) */
static bool same_nfc(const char *a, const char *b)
{
	size_t al = 0, bl = 0;
	uint8_t *x = u8_normalize(UNINORM_NFC, (const uint8_t *)a, strlen(a), NULL, &al);
	uint8_t *y = u8_normalize(UNINORM_NFC, (const uint8_t *)b, strlen(b), NULL, &bl);
	bool same = x && y && al == bl && memcmp(x, y, al) == 0;

	free(x);
	free(y);
	return same;
}

/*
 * Names that are one file on a case-insensitive or normalising file system
 * overwrite each other when pip installs there: exact duplicates, names
 * that differ only in case (Unicode case folding), and names that differ
 * only in normalisation (NFC "é" and NFD "e" + U+0301, as macOS stores it).
 */
static int check_collisions(struct kw_wheel *w, struct kw_error *err)
{
	struct fold *f = kw_calloc(w->n_members ? w->n_members : 1, sizeof(*f));
	size_t i;
	int rc = 0;

	if (!f) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (i = 0; i < w->n_members; i++) {
		f[i].idx = i;
		f[i].key = fold_key(w->members[i].name, &f[i].len);
		if (!f[i].key) {
			rc = kw_error_set(err, errno == EILSEQ ? KW_EHOSTILE : KW_ENOMEM, errno == EILSEQ
					  ? "'%s': member '%s': name is not valid UTF-8" : "out of memory", w->label,
					  w->members[i].name);
			goto out;
		}
	}
	qsort(f, w->n_members, sizeof(*f), fold_cmp);
	for (i = 1; i < w->n_members; i++) {
		const char *a = w->members[f[i - 1].idx].name, *b = w->members[f[i].idx].name;

		if (fold_cmp(&f[i - 1], &f[i]) != 0) {
			continue;
		}
		if (strcmp(a, b) == 0) {
			rc = kw_error_set(err, KW_EHOSTILE, "'%s': member '%s' appears twice", w->label, a);
		} else if (same_nfc(a, b)) {
			rc = kw_error_set(err, KW_EHOSTILE, "'%s': members '%s' and '%s' differ only in Unicode normalisation "
					  "(NFC/NFD): one file where pip installs", w->label, a, b);
		} else {
			rc = kw_error_set(err, KW_EHOSTILE, "'%s': members '%s' and '%s' differ only in case", w->label, a, b);
		}
		break;
	}
out:
	for (i = 0; i < w->n_members; i++) {
		free(f[i].key);
	}
	free(f);
	return rc;
}

/*
 * libzip reads the data; our own parser has already checked the structure.
 * Both must see the same entries in the same order: the same raw names,
 * sizes, CRC and method, or what was checked is not what gets read.
 */
static int cross_check(struct kw_wheel *w, const struct rawzip *z, const struct raw **by_cd, size_t i,
		       const zip_stat_t *zs, struct kw_error *err)
{
	const struct raw *r = by_cd[i];

	if (!r || strcmp(zs->name, r->raw_name) != 0 || zs->size != r->size || zs->comp_size != r->comp_size ||
	    zs->crc != r->crc || zs->comp_method != r->method) {
		return kw_error_set(err, KW_EHOSTILE, "'%s': libzip and the central directory disagree on member %zu (%s)",
				    w->label, i, r ? r->name : "missing");
	}
	(void)z;
	return 0;
}

/*
 * libzip's consistency check refuses encrypted and exotic members with a
 * generic "inconsistent": name the member and the reason when our own read
 * of the directory can.
 */
static bool explain_refusal(struct kw_wheel *w, const struct rawzip *z, struct kw_error *err, int *rc)
{
	size_t i;

	for (i = 0; i < z->n; i++) {
		const struct raw *r = &z->e[i];

		if (r->flags & ZFLAG_ENCRYPTED || r->method == 99) {
			*rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': member '%s' is encrypted%s", w->label, r->name,
					   r->method == 99 ? " (compression method 99, AES)" : "");
			return true;
		}
		if (r->method != ZIP_CM_STORE && r->method != ZIP_CM_DEFLATE &&
		    !zip_compression_method_supported(r->method, 0)) {
			*rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': member '%s' uses unsupported compression method %u",
					   w->label, r->name, r->method);
			return true;
		}
	}
	return false;
}

int kw_wheel_open(struct kw_ctx *ctx, const char *path, struct kw_wheel **out, struct kw_error *err)
{
	struct kw_wheel *w = NULL;
	struct rawzip z = { .fd = -1 };
	const struct raw **by_cd = NULL;
	zip_error_t zerr;
	zip_int64_t n;
	int zep = 0, rc = KW_ENOMEM;
	size_t i;
	struct stat st;

	*out = NULL;
	w = kw_calloc(1, sizeof(*w));
	if (w) {
		pthread_mutex_init(&w->lock, NULL);
	}
	if (!w || !(w->path = kw_strdup(path)) || !(w->label = kw_strdup(base_name(path)))) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	w->ctx = ctx;
	w->fd = -1;
	rc = kw_wheel_parse_name(path, &w->name, err);
	if (rc) {
		goto out;
	}
	if (stat(path, &st) != 0) {
		rc = kw_error_set(err, KW_EIO, "cannot open '%s': %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': not a regular file", path);
		goto out;
	}
	/* Our parser first: it refuses every archive two zip readers could read differently. */
	rc = rawzip_open(&z, path, err);
	if (rc) {
		goto out;
	}
	if ((uint64_t)z.n > ctx->limits.max_members) {
		rc = kw_error_set(err, KW_ELIMIT, "'%s': %zu members, over the limit", w->label, z.n);
		goto out;
	}
	/*
	 * libzip reads the file our parser checked, through its descriptor: opened
	 * again by path, a file renamed over the wheel in between would be read
	 * unchecked. zip_fdopen reads through a dup of its own, and takes the
	 * descriptor only on success.
	 */
	/* The archive rawzip checked, kept for whole reads (without it every read goes through libzip). */
	w->fd = fcntl(z.fd, F_DUPFD_CLOEXEC, 0);
	w->zip = zip_fdopen(z.fd, ZIP_CHECKCONS, &zep);
	if (w->zip) {
		z.fd = -1;
	} else {
		zip_error_init_with_code(&zerr, zep);
		if (zep == ZIP_ER_EXISTS) {
			rc = kw_error_set(err, KW_EHOSTILE, "'%s': duplicate member names", w->label);
		} else if (zep == ZIP_ER_OPEN || zep == ZIP_ER_READ || zep == ZIP_ER_SEEK) {
			rc = kw_error_set(err, KW_EIO, "cannot read '%s': %s", path, zip_error_strerror(&zerr));
		} else if (!explain_refusal(w, &z, err, &rc)) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': not a valid zip archive: %s", w->label,
					  zip_error_strerror(&zerr));
		}
		zip_error_fini(&zerr);
		goto out;
	}
	n = zip_get_num_entries(w->zip, 0);
	if (n < 0 || (uint64_t)n != z.n) {
		rc = kw_error_set(err, KW_EHOSTILE, "'%s': central directory holds %zu entries, libzip sees %lld", w->label,
				  z.n, (long long)n);
		goto out;
	}
	w->members = kw_calloc(z.n ? z.n : 1, sizeof(*w->members));
	w->by_name = kw_calloc(z.n ? z.n : 1, sizeof(*w->by_name));
	w->inflated_of = kw_calloc(z.n ? z.n : 1, sizeof(*w->inflated_of));
	w->data_off = kw_calloc(z.n ? z.n : 1, sizeof(*w->data_off));
	by_cd = kw_calloc(z.n ? z.n : 1, sizeof(*by_cd));
	if (!w->members || !w->by_name || !w->inflated_of || !w->data_off || !by_cd) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < z.n; i++) {
		by_cd[z.e[i].cd_index] = &z.e[i];
	}
	for (i = 0; i < z.n; i++) {
		struct kw_wheel_member *m = &w->members[i];
		const struct raw *r = by_cd[i];
		zip_stat_t zs;
		zip_uint8_t opsys;
		zip_uint32_t attr;
		const char *why;
		const char *name;

		if (zip_stat_index(w->zip, i, ZIP_FL_ENC_RAW, &zs) != 0) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': member %zu: %s", w->label, i, zip_strerror(w->zip));
			goto out;
		}
		if (!zs.name || !(zs.valid & ZIP_STAT_SIZE) || !(zs.valid & ZIP_STAT_COMP_SIZE)) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': member %zu has no name or size", w->label, i);
			goto out;
		}
		/* libzip's names are C strings: a NUL inside one would cut it short unseen. */
		if (r && r->name_len != strlen(r->raw_name)) {
			rc = kw_error_set(err, KW_EHOSTILE, "'%s': member '%s...': NUL byte in its name", w->label, r->name);
			goto out;
		}
		/* libzip gives an AES member the method of its extra field: say what it is before comparing. */
		if (r->flags & ZFLAG_ENCRYPTED || r->method == 99) {
			rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': member '%s' is encrypted%s", w->label, r->name,
					  r->method == 99 ? " (compression method 99, AES)" : "");
			goto out;
		}
		rc = cross_check(w, &z, by_cd, i, &zs, err);
		if (rc) {
			goto out;
		}
		/* The name as pip sees it: UTF-8, or CP437 decoded. */
		name = r->name;
		why = kw_wheel_name_problem(name);
		if (why) {
			rc = kw_error_set(err, KW_EHOSTILE, "'%s': member '%s': %s", w->label, name, why);
			goto out;
		}
		if ((zs.valid & ZIP_STAT_ENCRYPTION_METHOD) && zs.encryption_method != ZIP_EM_NONE) {
			rc = kw_error_set(err, KW_EHOSTILE, "'%s': member '%s' is encrypted", w->label, name);
			goto out;
		}
		if (r->flags & (ZFLAG_PATCHED | ZFLAG_STRONG)) {
			rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': member '%s' is %s (flags %#x), which pip cannot read",
					  w->label, name, r->flags & ZFLAG_STRONG ? "strongly encrypted" : "patch data",
					  r->flags);
			goto out;
		}
		if (zs.comp_method != ZIP_CM_STORE && zs.comp_method != ZIP_CM_DEFLATE &&
		    !zip_compression_method_supported(zs.comp_method, 0)) {
			rc = kw_error_set(err, KW_EUNSUPPORTED, "'%s': member '%s' uses unsupported compression method %u",
					  w->label, name, zs.comp_method);
			goto out;
		}
		if (zip_file_get_external_attributes(w->zip, i, 0, &opsys, &attr) == 0 &&
		    opsys == ZIP_OPSYS_UNIX) {
			unsigned mode = attr >> 16;

			if ((mode & S_IFMT) && !S_ISREG(mode) && !S_ISDIR(mode)) {
				rc = kw_error_set(err, KW_EHOSTILE, "'%s': member '%s' is a %s, not a regular file",
						  w->label, name, S_ISLNK(mode) ? "symbolic link" : "special file");
				goto out;
			}
		}
		m->name = kw_strdup(name);
		if (!m->name) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory");
			goto out;
		}
		m->size = zs.size;
		m->comp_size = zs.comp_size;
		m->crc = zs.crc;
		m->mtime = (zs.valid & ZIP_STAT_MTIME) ? (int64_t)zs.mtime : 0;
		m->method = zs.comp_method;
		m->is_dir = name[strlen(name) - 1] == '/';
		m->index = i;
		w->data_off[i] = r->data_off;
		w->n_members++;
	}
	if (sorted_index(w, cmp_name, w->by_name)) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	rc = check_collisions(w, err);
	if (rc) {
		goto out;
	}
	rc = find_dist_info(w, err);
	if (rc) {
		goto out;
	}
	*out = w;
	w = NULL;
	rc = 0;
out:
	free(by_cd);
	rawzip_close(&z);
	kw_wheel_free(w);
	return rc;
}

/*
 * Judge done bytes of member i against the limits: what is really
 * inflated (ahead: what inflating it whole would come to, counted nowhere).
 */
static int count_locked(struct kw_wheel *w, size_t i, uint64_t done, bool ahead, struct kw_error *err)
{
	const struct kw_limits *lim = &w->ctx->limits;
	const struct kw_wheel_member *m = &w->members[i];
	uint64_t more = done > w->inflated_of[i] ? done - w->inflated_of[i] : 0;

	if (done > lim->max_member_size) {
		return kw_error_set(err, KW_ELIMIT, "'%s': member '%s' %s more than the limit of %llu bytes (zip bomb)",
				    w->label, m->name, ahead ? "is declared to inflate to" : "inflates to",
				    (unsigned long long)lim->max_member_size);
	}
	if (done > BOMB_MIN_SIZE && (m->comp_size == 0 || done / m->comp_size > lim->max_ratio)) {
		return kw_error_set(err, KW_EHOSTILE, "'%s': member '%s' %s more than %llu times (zip bomb)", w->label,
				    m->name, ahead ? "is declared to expand" : "expands",
				    (unsigned long long)lim->max_ratio);
	}
	/* Reading a member again costs time, not a new share of the total. */
	if (more > lim->max_total_size || w->inflated > lim->max_total_size - more) {
		return kw_error_set(err, KW_ELIMIT, "'%s': members %s more than %llu bytes in all (zip bomb)", w->label,
				    ahead ? "would add up to" : "inflate to", (unsigned long long)lim->max_total_size);
	}
	if (!ahead) {
		w->inflated += more;
		w->inflated_of[i] = done;
	}
	return 0;
}

/* count_locked under the wheel's lock: readers of other members count into the same total. */
static int count_inflated(struct kw_wheel *w, size_t i, uint64_t done, bool ahead, struct kw_error *err)
{
	int rc;

	pthread_mutex_lock(&w->lock);
	rc = count_locked(w, i, done, ahead, err);
	pthread_mutex_unlock(&w->lock);
	return rc;
}

/* The error of the callback that took member i's bytes, with the member named. */
static int taker_failed(const struct kw_wheel *w, size_t i, int rc, struct kw_error *err)
{
	return kw_error_set(err, rc, "'%s': member '%s': %s", w->label, w->members[i].name, kw_status_str(rc));
}

/* The end of member i: exactly its declared size, neither short nor long. */
static int check_size(const struct kw_wheel *w, size_t i, uint64_t total, struct kw_error *err)
{
	const struct kw_wheel_member *m = &w->members[i];

	if (total == m->size) {
		return 0;
	}
	return kw_error_set(err, KW_EHOSTILE, "'%s': member '%s' inflates to %llu bytes, not the declared %llu",
			    w->label, m->name, (unsigned long long)total, (unsigned long long)m->size);
}

/*
 * The next got bytes of member i, streamed (*total so far): never past the
 * declared size, counted against the limits (locked: the caller holds the
 * wheel's lock), then handed to cb.
 */
static int take_piece(struct kw_wheel *w, size_t i, const unsigned char *p, size_t got, uint64_t *total, bool locked,
		      kw_wheel_chunk_fn cb, void *ud, struct kw_error *err)
{
	const struct kw_wheel_member *m = &w->members[i];
	int rc;

	if (got > m->size - *total) {
		return kw_error_set(err, KW_EHOSTILE, "'%s': member '%s' inflates to more than its declared %llu bytes",
				    w->label, m->name, (unsigned long long)m->size);
	}
	*total += got;
	rc = locked ? count_locked(w, i, *total, false, err) : count_inflated(w, i, *total, false, err);
	if (rc) {
		return rc;
	}
	rc = cb(ud, p, got);
	return rc ? taker_failed(w, i, rc, err) : 0;
}

/* Can member i be inflated in one call (inflate_whole)? Deflated, at most WHOLE_MAX either way. */
static bool whole_ok(const struct kw_wheel *w, const struct kw_wheel_member *m)
{
	return w->fd >= 0 && m->method == ZIP_CM_DEFLATE && m->size > 0 && m->size <= WHOLE_MAX &&
	       m->comp_size <= WHOLE_MAX;
}

/*
 * Member i (whole_ok) inflated in one call into *out, a new buffer of its
 * size plus a NUL: the same checks as the streaming paths (exact size, CRC,
 * limits), made on the whole.
 */
static int inflate_whole(struct kw_wheel *w, size_t i, unsigned char **res, struct kw_error *err)
{
	const struct kw_wheel_member *m = &w->members[i];
	struct libdeflate_decompressor *inflater = NULL;
	unsigned char *in = NULL, *out = NULL;
	size_t got = 0;
	enum libdeflate_result r;
	int rc = KW_ENOMEM;

	*res = NULL;
	in = kw_malloc(m->comp_size ? (size_t)m->comp_size : 1);
	out = kw_malloc((size_t)m->size + 1);
	/* One per read: reads of other members run on other threads at the same time. */
	inflater = libdeflate_alloc_decompressor();
	if (!in || !out || !inflater) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	if (pread_all(w->fd, in, (size_t)m->comp_size, w->data_off[i]) != 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot read member '%s': %s", w->label, m->name, strerror(errno));
		goto out;
	}
	r = libdeflate_deflate_decompress(inflater, in, (size_t)m->comp_size, out, (size_t)m->size, &got);
	if (r == LIBDEFLATE_INSUFFICIENT_SPACE) {
		rc = kw_error_set(err, KW_EHOSTILE, "'%s': member '%s' inflates to more than its declared %llu bytes",
				  w->label, m->name, (unsigned long long)m->size);
		goto out;
	}
	if (r != LIBDEFLATE_SUCCESS) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': cannot read member '%s': invalid or truncated deflate data",
				  w->label, m->name);
		goto out;
	}
	rc = check_size(w, i, got, err);
	if (rc) {
		goto out;
	}
	if (libdeflate_crc32(0, out, got) != m->crc) {
		rc = kw_error_set(err, KW_EHOSTILE, "'%s': cannot read member '%s': CRC error", w->label, m->name);
		goto out;
	}
	rc = count_inflated(w, i, got, false, err);
	if (rc) {
		goto out;
	}
	out[got] = '\0';
	*res = out;
	out = NULL;
out:
	libdeflate_free_decompressor(inflater);
	free(in);
	free(out);
	return rc;
}

/* Member i (whole_ok) inflated in one call and handed to cb in CHUNK pieces. */
static int stream_whole(struct kw_wheel *w, size_t i, kw_wheel_chunk_fn cb, void *ud, struct kw_error *err)
{
	unsigned char *out;
	size_t off, len = (size_t)w->members[i].size;
	int rc = inflate_whole(w, i, &out, err);

	for (off = 0; !rc && off < len; off += CHUNK) {
		rc = cb(ud, out + off, len - off < CHUNK ? len - off : CHUNK);
		if (rc) {
			taker_failed(w, i, rc, err);
		}
	}
	free(out);
	return rc;
}

/*
 * Member i (stored or deflated, of any size) read by pread from the
 * archive and inflated by zlib CHUNK bytes at a time: bounded memory, no
 * state shared with reads of other members. Same checks as the libzip
 * path: never more than the declared size, exactly that size, the CRC.
 */
static int stream_pread(struct kw_wheel *w, size_t i, kw_wheel_chunk_fn cb, void *ud, struct kw_error *err)
{
	const struct kw_wheel_member *m = &w->members[i];
	bool stored = m->method == ZIP_CM_STORE;
	unsigned char *in = kw_malloc(CHUNK), *out = stored ? in : kw_malloc(CHUNK);
	uint64_t off = w->data_off[i], left = m->comp_size, total = 0;
	uLong crc = crc32(0L, Z_NULL, 0);
	z_stream zs;
	bool open_z = false, end = false;
	int rc = KW_ENOMEM;

	memset(&zs, 0, sizeof(zs));
	if (!in || !out || (!stored && inflateInit2(&zs, -MAX_WBITS) != Z_OK)) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory");
		goto out;
	}
	open_z = !stored;
	while (!end) {
		size_t got;

		if ((stored || zs.avail_in == 0) && left > 0) {
			size_t n = left < CHUNK ? (size_t)left : CHUNK;

			if (pread_all(w->fd, in, n, off) != 0) {
				rc = kw_error_set(err, KW_EIO, "'%s': cannot read member '%s': %s", w->label, m->name,
						  strerror(errno));
				goto out;
			}
			off += n;
			left -= n;
			zs.next_in = in;
			zs.avail_in = (uInt)n;
		}
		if (stored) {
			got = zs.avail_in;
			zs.avail_in = 0;
			end = left == 0;
		} else {
			int zr;

			zs.next_out = out;
			zs.avail_out = CHUNK;
			zr = inflate(&zs, Z_NO_FLUSH);
			got = CHUNK - zs.avail_out;
			end = zr == Z_STREAM_END;
			if (zr != Z_OK && zr != Z_STREAM_END && !(zr == Z_BUF_ERROR && left > 0)) {
				rc = kw_error_set(err, KW_EFORMAT,
						  "'%s': cannot read member '%s': invalid or truncated deflate data", w->label,
						  m->name);
				goto out;
			}
		}
		if (got == 0) {
			continue;
		}
		rc = take_piece(w, i, out, got, &total, false, cb, ud, err);
		if (rc) {
			goto out;
		}
		crc = crc32(crc, out, (uInt)got);
	}
	rc = check_size(w, i, total, err);
	if (rc) {
		goto out;
	}
	if (crc != m->crc) {
		rc = kw_error_set(err, KW_EHOSTILE, "'%s': cannot read member '%s': CRC error", w->label, m->name);
		goto out;
	}
	rc = 0;
out:
	if (open_z) {
		inflateEnd(&zs);
	}
	if (out != in) {
		free(out);
	}
	free(in);
	return rc;
}

/* Read exactly the declared size, proving the data neither stops short nor runs on. */
int kw_wheel_stream(struct kw_wheel *w, size_t i, kw_wheel_chunk_fn cb, void *ud, struct kw_error *err)
{
	const struct kw_wheel_member *m = kw_wheel_member(w, i);
	unsigned char *buf = NULL;
	zip_file_t *f = NULL;
	uint64_t total = 0;
	int rc = KW_ENOMEM;

	if (!m) {
		return kw_error_set(err, KW_EINVAL, "'%s': no member %zu", w->label, i);
	}
	/*
	 * Inflating exactly the declared size is the only way through: a member
	 * whose declared size already breaks a limit is refused before the
	 * work, with the verdict the work would give (a bomb if it is true, a
	 * lie if it is not). Members never read are never judged.
	 */
	rc = count_inflated(w, i, m->size, true, err);
	if (rc) {
		return rc;
	}
	if (whole_ok(w, m)) {
		return stream_whole(w, i, cb, ud, err);
	}
	if (w->fd >= 0 && (m->method == ZIP_CM_DEFLATE || m->method == ZIP_CM_STORE)) {
		return stream_pread(w, i, cb, ud, err);
	}
	buf = kw_malloc(CHUNK);
	if (!buf) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	/* libzip's archive is one reader's at a time: this member is read whole under the lock. */
	pthread_mutex_lock(&w->lock);
	f = zip_fopen_index(w->zip, m->index, 0);
	if (!f) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': cannot read member '%s': %s", w->label, m->name,
				  zip_strerror(w->zip));
		goto out;
	}
	for (;;) {
		zip_int64_t got = zip_fread(f, buf, CHUNK);

		if (got < 0) {
			zip_error_t *ze = zip_file_get_error(f);

			rc = kw_error_set(err, zip_error_code_zip(ze) == ZIP_ER_CRC ? KW_EHOSTILE : KW_EFORMAT,
					  "'%s': cannot read member '%s': %s", w->label, m->name, zip_file_strerror(f));
			goto out;
		}
		if (got == 0) {
			break;
		}
		rc = take_piece(w, i, buf, (size_t)got, &total, true, cb, ud, err);
		if (rc) {
			goto out;
		}
	}
	rc = check_size(w, i, total, err);
out:
	if (f) {
		zip_fclose(f);
	}
	pthread_mutex_unlock(&w->lock);
	free(buf);
	return rc;
}

/* A member's bytes in memory (and their sha256 when sha is set): grown as they arrive, never past the declared size. */
struct membuf {
	unsigned char *p;
	size_t len, cap, max;
	struct kw_sha256 *sha;
};

static int append(void *ud, const void *data, size_t len)
{
	struct membuf *b = ud;

	if (len > b->max - b->len) {
		return KW_EHOSTILE;
	}
	if (len >= b->cap - b->len) {
		size_t want = b->cap ? b->cap : b->max < CHUNK ? b->max + 1 : CHUNK;
		unsigned char *np;

		while (want - b->len <= len) {
			want = want > b->max / 2 ? b->max + 1 : want * 2;
		}
		np = kw_realloc(b->p, want);
		if (!np) {
			return KW_ENOMEM;
		}
		b->p = np;
		b->cap = want;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	if (b->sha) {
		kw_sha256_update(b->sha, data, len);
	}
	return 0;
}

/*
 * Member i into b (and b->sha); b->p is NUL-terminated on success. A
 * member inflated in one call is inflated straight into the buffer
 * returned: no growing copy of it piece by piece.
 */
static int read_into(struct kw_wheel *w, size_t i, struct membuf *b, struct kw_error *err)
{
	const struct kw_wheel_member *m = kw_wheel_member(w, i);
	int rc;

	if (!m) {
		return kw_error_set(err, KW_EINVAL, "'%s': no member %zu", w->label, i);
	}
	if (m->size > SIZE_MAX - 1) {
		return kw_error_set(err, KW_ELIMIT, "'%s': member '%s' is too large", w->label, m->name);
	}
	b->max = (size_t)m->size;
	if (whole_ok(w, m)) {
		/* kw_wheel_stream's refusal, ahead of the work, of a member whose declared size breaks a limit. */
		rc = count_inflated(w, i, m->size, true, err);
		if (!rc) {
			rc = inflate_whole(w, i, &b->p, err);
		}
		if (!rc) {
			b->len = (size_t)m->size;
			if (b->sha) {
				kw_sha256_update(b->sha, b->p, b->len);
			}
		}
	} else {
		rc = kw_wheel_stream(w, i, append, b, err);
	}
	if (!rc && !b->p) {
		b->p = kw_malloc(1);
		if (!b->p) {
			rc = kw_error_set(err, KW_ENOMEM, "out of memory reading '%s'", m->name);
		}
	}
	if (rc) {
		if (rc == KW_ENOMEM) {
			kw_error_set(err, KW_ENOMEM, "out of memory reading '%s'", m->name);
		}
		free(b->p);
		b->p = NULL;
		return rc;
	}
	b->p[b->len] = '\0';
	return 0;
}

int kw_wheel_read(struct kw_wheel *w, size_t i, unsigned char **out, size_t *len, struct kw_error *err)
{
	struct membuf b = { 0 };
	int rc;

	*out = NULL;
	*len = 0;
	rc = read_into(w, i, &b, err);
	if (rc) {
		return rc;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

int kw_wheel_read_sha256(struct kw_wheel *w, size_t i, unsigned char **out, size_t *len, unsigned char digest[32],
			 struct kw_error *err)
{
	struct kw_sha256 sha;
	struct membuf b = { .sha = &sha };
	int rc;

	*out = NULL;
	*len = 0;
	kw_sha256_init(&sha);
	rc = read_into(w, i, &b, err);
	if (rc) {
		return rc;
	}
	kw_sha256_final(&sha, digest);
	*out = b.p;
	*len = b.len;
	return 0;
}

/* A member on its way to a temporary file: zero chunks become holes, so bombs of zeros take no disk. */
struct to_file {
	int fd;
	uint64_t off;
	struct kw_sha256 sha;
};

static bool all_zero(const unsigned char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int write_chunk(void *ud, const void *data, size_t len)
{
	struct to_file *t = ud;
	uint64_t off = t->off;

	kw_sha256_update(&t->sha, data, len);
	t->off += len;
	if (all_zero(data, len)) {
		return 0;
	}
	return kw_pwrite_all(t->fd, data, len, off) < 0 ? KW_EIO : 0;
}

/* An unlinked temporary file in $TMPDIR (or /tmp): nothing is left behind, whatever happens next. */
static int open_unlinked(char **where)
{
	const char *dir = getenv("TMPDIR");
	char *path;
	int fd;

	if (!dir || !*dir) {
		dir = "/tmp";
	}
	*where = NULL;
	path = kw_asprintf("%s/.kwheel-member-XXXXXX", dir);
	if (!path) {
		errno = ENOMEM;
		return -1;
	}
	fd = mkstemp(path);
	if (fd >= 0) {
		unlink(path);
		free(path);
		return fd;
	}
	*where = path;
	return -1;
}

void kw_wheel_unmap(struct kw_wheel_map *map)
{
	if (map && map->base_ && map->maplen_) {
		munmap(map->base_, map->maplen_);
	} else if (map) {
		free(map->base_); /* a small member, read into memory */
	}
	if (map) {
		memset(map, 0, sizeof(*map));
	}
}

int kw_wheel_map(struct kw_wheel *w, size_t i, struct kw_wheel_map *out, unsigned char digest[32],
		 struct kw_error *err)
{
	const struct kw_wheel_member *m = kw_wheel_member(w, i);
	struct to_file t = { .fd = -1 };
	char *where = NULL;
	void *base;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!m) {
		return kw_error_set(err, KW_EINVAL, "'%s': no member %zu", w->label, i);
	}
	if (m->size > SIZE_MAX) {
		return kw_error_set(err, KW_ELIMIT, "'%s': member '%s' is too large to map", w->label, m->name);
	}
	/*
	 * A small member is read into memory: a temporary file's creation,
	 * writes, mapping and removal cost more than its pages (a wheel of a
	 * thousand small extension modules), and memory stays bounded by the
	 * limit per member read at once. So is one inflated in one call: that
	 * holds it whole in memory anyway, and the file would be a copy of it.
	 * The declared size is checked by the read, which refuses a member that
	 * inflates to more.
	 */
	if (m->size <= KW_WHEEL_MAP_IN_MEMORY || whole_ok(w, m)) {
		unsigned char *buf = NULL;
		size_t len = 0;

		rc = digest ? kw_wheel_read_sha256(w, i, &buf, &len, digest, err) : kw_wheel_read(w, i, &buf, &len, err);
		if (rc) {
			return rc;
		}
		out->data = buf;
		out->base_ = buf;
		out->len = len;
		return 0;
	}
	t.fd = open_unlinked(&where);
	if (t.fd < 0) {
		rc = where ? kw_error_set(err, KW_EIO, "'%s': member '%s': cannot create a temporary file '%s': %s",
					  w->label, m->name, where, strerror(errno))
			   : kw_error_set(err, KW_ENOMEM, "out of memory");
		free(where);
		return rc;
	}
	kw_sha256_init(&t.sha);
	rc = kw_wheel_stream(w, i, write_chunk, &t, err);
	if (rc == KW_EIO) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot write member '%s' to a temporary file: %s", w->label, m->name,
				  strerror(errno));
	}
	if (rc) {
		goto out;
	}
	/* The trailing hole, if the member ends in zeros. (It is not empty: that was read into memory.) */
	if (ftruncate(t.fd, (off_t)t.off) < 0) {
		rc = kw_error_set(err, KW_EIO, "'%s': cannot write member '%s' to a temporary file: %s", w->label, m->name,
				  strerror(errno));
		goto out;
	}
	/* Private and writable: a reader that converts in place writes its own copy of a page, never the file. */
	base = mmap(NULL, (size_t)t.off, PROT_READ | PROT_WRITE, MAP_PRIVATE, t.fd, 0);
	if (base == MAP_FAILED) {
		rc = kw_error_set(err, errno == ENOMEM ? KW_ENOMEM : KW_EIO, "'%s': cannot map member '%s': %s", w->label,
				  m->name, strerror(errno));
		goto out;
	}
	out->data = base;
	out->base_ = base;
	out->maplen_ = (size_t)t.off;
	out->len = (size_t)t.off;
	if (digest) {
		kw_sha256_final(&t.sha, digest);
	}
	rc = 0;
out:
	close(t.fd);
	return rc;
}

/* The first max bytes of member i (stored or deflated) by pread and zlib: nothing shared with other reads. */
static int head_pread(struct kw_wheel *w, size_t i, void *buf, size_t max, size_t *got, struct kw_error *err)
{
	const struct kw_wheel_member *m = &w->members[i];
	unsigned char in[4096];
	uint64_t off = w->data_off[i], left = m->comp_size;
	z_stream zs;
	int zr = Z_OK, rc = 0;

	if (max > m->size) {
		max = (size_t)m->size;
	}
	if (m->method == ZIP_CM_STORE) {
		if (max > m->comp_size || pread_all(w->fd, buf, max, off) != 0) {
			return kw_error_set(err, KW_EFORMAT, "'%s': cannot read member '%s': %s", w->label, m->name,
					    max > m->comp_size ? "truncated" : strerror(errno));
		}
		*got = max;
		return 0;
	}
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	zs.next_out = buf;
	zs.avail_out = (uInt)max;
	while (zs.avail_out > 0 && zr != Z_STREAM_END) {
		if (zs.avail_in == 0 && left > 0) {
			size_t n = left < sizeof(in) ? (size_t)left : sizeof(in);

			if (pread_all(w->fd, in, n, off) != 0) {
				rc = kw_error_set(err, KW_EIO, "'%s': cannot read member '%s': %s", w->label, m->name,
						  strerror(errno));
				break;
			}
			off += n;
			left -= n;
			zs.next_in = in;
			zs.avail_in = (uInt)n;
		}
		zr = inflate(&zs, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': cannot read member '%s': invalid or truncated deflate data",
					  w->label, m->name);
			break;
		}
	}
	*got = rc ? 0 : max - zs.avail_out;
	inflateEnd(&zs);
	return rc;
}

int kw_wheel_read_head(struct kw_wheel *w, size_t i, void *buf, size_t max, size_t *got,
		       struct kw_error *err)
{
	const struct kw_wheel_member *m = kw_wheel_member(w, i);
	zip_file_t *f;
	size_t total = 0;
	int rc = 0;

	*got = 0;
	if (!m) {
		return kw_error_set(err, KW_EINVAL, "'%s': no member %zu", w->label, i);
	}
	if (m->size == 0 || max == 0) {
		return 0;
	}
	if (w->fd >= 0 && (m->method == ZIP_CM_DEFLATE || m->method == ZIP_CM_STORE)) {
		return head_pread(w, i, buf, max, got, err);
	}
	pthread_mutex_lock(&w->lock);
	f = zip_fopen_index(w->zip, m->index, 0);
	if (!f) {
		rc = kw_error_set(err, KW_EFORMAT, "'%s': cannot read member '%s': %s", w->label, m->name,
				  zip_strerror(w->zip));
		goto out;
	}
	while (total < max) {
		zip_int64_t n = zip_fread(f, (unsigned char *)buf + total, max - total);

		if (n < 0) {
			rc = kw_error_set(err, KW_EFORMAT, "'%s': cannot read member '%s': %s", w->label, m->name,
					  zip_file_strerror(f));
			break;
		}
		if (n == 0) {
			break;
		}
		total += (size_t)n;
	}
	zip_fclose(f);
	*got = rc ? 0 : total;
out:
	pthread_mutex_unlock(&w->lock);
	return rc;
}
