/* SPDX-License-Identifier: MIT */
/* *.dist-info/WHEEL and *.dist-info/RECORD. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kwheel/util.h"

#define META_MAX (1u << 20)   /* a WHEEL file is a few lines; refuse megabytes */
#define RECORD_MAX (64u << 20)

void kw_wheel_meta_release(struct kw_wheel_meta *meta)
{
	size_t i;

	if (!meta) {
		return;
	}
	free(meta->wheel_version);
	free(meta->generator);
	free(meta->build);
	for (i = 0; i < meta->n_tags; i++) {
		free(meta->tags[i]);
	}
	free(meta->tags);
	memset(meta, 0, sizeof(*meta));
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t') {
		s++;
	}
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) {
		*--e = '\0';
	}
	return s;
}

/* pip's email parser takes the first of two headers, a last-wins reader the last: refuse both. */
static int dup_header(struct kw_error *err, const char *key, unsigned lineno)
{
	return kw_error_set(err, KW_EHOSTILE, "WHEEL: %s appears twice (again on line %u); pip would take the first",
			    key, lineno);
}

int kw_wheel_parse_meta(const char *text, size_t len, struct kw_wheel_meta *meta, struct kw_error *err)
{
	struct kw_wheel_meta m;
	struct kw_strv tags = { 0 };
	char *copy = NULL, *line, *next;
	unsigned lineno = 0;
	bool have_purelib = false;
	int rc = KW_EFORMAT;

	memset(&m, 0, sizeof(m));
	if (memchr(text, '\0', len)) {
		return kw_error_set(err, KW_EFORMAT, "WHEEL: NUL byte in the file");
	}
	copy = kw_strndup(text, len);
	if (!copy) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	for (line = copy; line; line = next) {
		char *colon, *key, *val, *nl = strchr(line, '\n');
		char **slot = NULL;

		next = nl ? nl + 1 : NULL;
		if (nl) {
			*nl = '\0';
		}
		if (!nl && !*line) {
			break; /* the final newline */
		}
		lineno++;
		if (!*trim(line)) {
			/* A blank line ends the headers (RFC 822); anything after is a body. */
			break;
		}
		if (*line == ' ' || *line == '\t') {
			/* A folded continuation: no field kwheel reads is ever folded. */
			continue;
		}
		colon = strchr(line, ':');
		if (!colon) {
			rc = kw_error_set(err, KW_EFORMAT, "WHEEL: line %u is not 'Key: value'", lineno);
			goto out;
		}
		*colon = '\0';
		key = trim(line);
		val = trim(colon + 1);
		if (strcasecmp(key, "Wheel-Version") == 0) {
			slot = &m.wheel_version;
		} else if (strcasecmp(key, "Generator") == 0) {
			slot = &m.generator;
		} else if (strcasecmp(key, "Build") == 0) {
			slot = &m.build;
		} else if (strcasecmp(key, "Root-Is-Purelib") == 0) {
			if (strcasecmp(val, "true") == 0) {
				m.root_is_purelib = true;
			} else if (strcasecmp(val, "false") != 0) {
				rc = kw_error_set(err, KW_EFORMAT, "WHEEL: Root-Is-Purelib is '%s', not true or false", val);
				goto out;
			}
			if (have_purelib) {
				rc = dup_header(err, key, lineno);
				goto out;
			}
			have_purelib = true;
		} else if (strcasecmp(key, "Tag") == 0) {
			if (kw_strv_push(&tags, val)) {
				rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				goto out;
			}
		}
		if (slot && *slot) {
			rc = dup_header(err, key, lineno);
			goto out;
		}
		if (slot) {
			*slot = kw_strdup(val);
			if (!*slot) {
				rc = kw_error_set(err, KW_ENOMEM, "out of memory");
				goto out;
			}
		}
	}
	if (!m.wheel_version) {
		rc = kw_error_set(err, KW_EFORMAT, "WHEEL: no Wheel-Version");
		goto out;
	}
	if (strtol(m.wheel_version, NULL, 10) != 1 || strncmp(m.wheel_version, "1.", 2) != 0) {
		rc = kw_error_set(err, KW_EUNSUPPORTED, "WHEEL: Wheel-Version %s is not supported (1.x is)",
				  m.wheel_version);
		goto out;
	}
	if (!have_purelib) {
		rc = kw_error_set(err, KW_EFORMAT, "WHEEL: no Root-Is-Purelib");
		goto out;
	}
	m.tags = tags.v;
	m.n_tags = tags.n;
	memset(&tags, 0, sizeof(tags));
	*meta = m;
	memset(&m, 0, sizeof(m));
	rc = 0;
out:
	kw_strv_release(&tags);
	kw_wheel_meta_release(&m);
	free(copy);
	return rc;
}

static int read_small(struct kw_wheel *w, const char *name, size_t max, unsigned char **buf, size_t *len,
		      struct kw_error *err)
{
	long idx = kw_wheel_find(w, name);

	if (idx < 0) {
		return kw_error_set(err, KW_EFORMAT, "'%s': no '%s'", w->label, name);
	}
	if (w->members[idx].size > max) {
		return kw_error_set(err, KW_ELIMIT, "'%s': '%s' is %llu bytes, too large", w->label, name,
				    (unsigned long long)w->members[idx].size);
	}
	return kw_wheel_read(w, (size_t)idx, buf, len, err);
}

int kw_wheel_read_meta(struct kw_wheel *w, struct kw_wheel_meta *meta, struct kw_error *err)
{
	unsigned char *buf = NULL;
	char *name;
	size_t len;
	int rc;

	name = kw_asprintf("%s/WHEEL", w->dist_info);
	if (!name) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	rc = read_small(w, name, META_MAX, &buf, &len, err);
	if (!rc) {
		rc = kw_wheel_parse_meta((const char *)buf, len, meta, err);
		if (rc) {
			kw_error_prefix(err, "'%s'", w->label);
		}
	}
	free(buf);
	free(name);
	return rc;
}

/* RECORD */

void kw_record_release(struct kw_record *rec)
{
	size_t i;

	if (!rec) {
		return;
	}
	for (i = 0; i < rec->n_entries; i++) {
		free(rec->entries[i].path);
		free(rec->entries[i].algo);
		free(rec->entries[i].digest);
	}
	free(rec->entries);
	for (i = 0; i < rec->n_problems; i++) {
		free(rec->problems[i].path);
		free(rec->problems[i].detail);
	}
	free(rec->problems);
	memset(rec, 0, sizeof(*rec));
}

const char *kw_record_problem_str(enum kw_record_problem_kind kind)
{
	switch (kind) {
	case KW_RECORD_NOT_LISTED: return "not-listed";
	case KW_RECORD_NO_MEMBER: return "no-such-member";
	case KW_RECORD_HASH_MISMATCH: return "hash-mismatch";
	case KW_RECORD_SIZE_MISMATCH: return "size-mismatch";
	case KW_RECORD_NO_HASH: return "no-hash";
	case KW_RECORD_BAD_HASH: return "bad-hash";
	case KW_RECORD_BAD_LINE: return "bad-line";
	case KW_RECORD_DUPLICATE: return "duplicate";
	}
	return "unknown";
}

static int add_problem(struct kw_record *rec, size_t *cap, enum kw_record_problem_kind kind,
		       const char *path, char *detail_take)
{
	struct kw_record_problem *p;

	if (kw_grow(&rec->problems, cap, rec->n_problems + 1, sizeof(*rec->problems))) {
		free(detail_take);
		return KW_ENOMEM;
	}
	p = &rec->problems[rec->n_problems];
	p->kind = kind;
	p->detail = detail_take;
	p->path = path ? kw_strdup(path) : NULL;
	if (path && !p->path) {
		free(detail_take);
		return KW_ENOMEM;
	}
	rec->n_problems++;
	return 0;
}

/* Split one CSV record at *pos into fields; quoted fields may hold commas and newlines. */
/*
 * One CSV field from text[i]: copied to out (when not NULL) as n bytes,
 * returning the index just past it. Called twice per field, to measure and
 * then to copy, so each field costs its own length rather than the rest of
 * the text. The delimiters are found with memchr, bounded by the line, so a
 * line is scanned a fixed number of times however the fields fall.
 */
static size_t csv_field(const char *text, size_t len, size_t i, char *out, size_t *n_out)
{
	size_t n = 0;
	const char *p, *nl, *comma;

	if (i < len && text[i] == '"') {
		i++;
		while (i < len) {
			size_t run;

			p = memchr(text + i, '"', len - i);
			run = (p ? (size_t)(p - text) : len) - i;
			if (out) {
				memcpy(out + n, text + i, run);
			}
			n += run;
			i += run;
			if (i >= len) {
				break;
			}
			/* text[i] is a quote: doubled, it stands for one; alone, it ends the quoted part. */
			if (i + 1 < len && text[i + 1] == '"') {
				if (out) {
					out[n] = '"';
				}
				n++;
				i += 2;
				continue;
			}
			i++;
			break;
		}
	}
	if (i < len) {
		size_t end, run;

		nl = memchr(text + i, '\n', len - i);
		end = nl ? (size_t)(nl - text) : len;
		comma = memchr(text + i, ',', end - i);
		if (comma) {
			end = (size_t)(comma - text);
		}
		run = end - i;
		if (out) {
			memcpy(out + n, text + i, run);
		}
		n += run;
		i = end;
	}
	*n_out = n;
	return i;
}

static int csv_row(const char *text, size_t len, size_t *pos, struct kw_strv *fields)
{
	size_t i = *pos;

	for (;;) {
		size_t n, end = csv_field(text, len, i, NULL, &n);
		char *field = kw_malloc(n + 1);

		if (!field) {
			return KW_ENOMEM;
		}
		(void)csv_field(text, len, i, field, &n);
		i = end;
		if (n > 0 && field[n - 1] == '\r' && (i >= len || text[i] == '\n')) {
			n--;
		}
		field[n] = '\0';
		if (kw_strv_push_take(fields, field)) {
			free(field);
			return KW_ENOMEM;
		}
		if (i < len && text[i] == ',') {
			i++;
			continue;
		}
		if (i < len) {
			i++; /* the newline */
		}
		*pos = i;
		return 0;
	}
}

static bool b64url_ok(const char *s)
{
	for (; *s; s++) {
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_')) {
			return false;
		}
	}
	return true;
}

static bool unsafe_record_path(const char *p)
{
	const char *c;

	if (p[0] == '/' || strchr(p, '\\') || (p[0] && p[1] == ':')) {
		return true;
	}
	for (c = p; (c = strstr(c, "..")) != NULL; c += 2) {
		if ((c == p || c[-1] == '/') && (c[2] == '\0' || c[2] == '/')) {
			return true;
		}
	}
	return false;
}

int kw_record_parse(const char *text, size_t len, struct kw_record *rec, struct kw_error *err)
{
	size_t pos = 0, ecap = 0, pcap = 0;
	unsigned lineno = 0;
	int rc = 0;

	memset(rec, 0, sizeof(*rec));
	while (pos < len) {
		struct kw_strv f = { 0 };
		struct kw_record_entry e = { 0 };
		char *eq;

		lineno++;
		if (csv_row(text, len, &pos, &f)) {
			kw_strv_release(&f);
			rc = KW_ENOMEM;
			goto fail;
		}
		if (f.n == 1 && f.v[0][0] == '\0') {
			kw_strv_release(&f);
			continue;
		}
		if (f.n != 3 || f.v[0][0] == '\0' || unsafe_record_path(f.v[0])) {
			rc = add_problem(rec, &pcap, KW_RECORD_BAD_LINE, f.n ? f.v[0] : NULL,
					 kw_asprintf("line %u: %s", lineno,
						     f.n != 3 ? "not three fields" : "unsafe path"));
			kw_strv_release(&f);
			if (rc) {
				goto fail;
			}
			continue;
		}
		e.size = -1;
		e.path = f.v[0];
		f.v[0] = NULL;
		if (f.v[1][0]) {
			eq = strchr(f.v[1], '=');
			if (eq) {
				*eq = '\0';
				e.algo = kw_strdup(f.v[1]);
				e.digest = kw_strdup(eq + 1);
				if (!e.algo || !e.digest) {
					free(e.path);
					free(e.algo);
					free(e.digest);
					kw_strv_release(&f);
					rc = KW_ENOMEM;
					goto fail;
				}
			} else {
				e.algo = kw_strdup("");
				e.digest = kw_strdup(f.v[1]);
			}
		}
		if (f.v[2][0]) {
			char *end;
			long long sz = strtoll(f.v[2], &end, 10);

			e.size = (*end || sz < 0) ? -2 : sz;
		}
		kw_strv_release(&f);
		if (kw_grow(&rec->entries, &ecap, rec->n_entries + 1, sizeof(*rec->entries))) {
			free(e.path);
			free(e.algo);
			free(e.digest);
			rc = KW_ENOMEM;
			goto fail;
		}
		rec->entries[rec->n_entries++] = e;
	}
	return 0;
fail:
	kw_record_release(rec);
	return kw_error_set(err, rc, "out of memory");
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct kw_record_entry *)a)->path, ((const struct kw_record_entry *)b)->path);
}

/* The digests RECORD may use: "sha256 or better" from hashlib's guaranteed set. */
struct hasher {
	bool wide;
	struct kw_sha256 s256;
	struct kw_sha512 s512;
};

static bool hasher_init(struct hasher *h, const char *algo, size_t *digest_len)
{
	if (strcmp(algo, "sha256") == 0) {
		h->wide = false;
		kw_sha256_init(&h->s256);
		*digest_len = 32;
	} else if (strcmp(algo, "sha384") == 0 || strcmp(algo, "sha512") == 0) {
		h->wide = true;
		kw_sha512_init(&h->s512, algo[3] == '3');
		*digest_len = algo[3] == '3' ? 48 : 64;
	} else {
		return false;
	}
	return true;
}

static int hash_chunk(void *ud, const void *data, size_t len)
{
	struct hasher *h = ud;

	if (h->wide) {
		kw_sha512_update(&h->s512, data, len);
	} else {
		kw_sha256_update(&h->s256, data, len);
	}
	return 0;
}

static void hasher_final(struct hasher *h, unsigned char out[64])
{
	if (h->wide) {
		kw_sha512_final(&h->s512, out);
	} else {
		kw_sha256_final(&h->s256, out);
	}
}

static bool unsigned_ok(const struct kw_wheel *w, const char *path)
{
	/* RECORD cannot hash itself, nor can its signatures. */
	size_t dl = strlen(w->dist_info);

	if (strncmp(path, w->dist_info, dl) != 0 || path[dl] != '/') {
		return false;
	}
	path += dl + 1;
	return !strcmp(path, "RECORD") || !strcmp(path, "RECORD.jws") || !strcmp(path, "RECORD.p7s");
}

/* The first RECORD line of a member (entries sorted), or NULL. */
static struct kw_record_entry *entry_of(struct kw_record *rec, const char *name)
{
	struct kw_record_entry key = { 0 }, *e;

	key.path = (char *)name;
	e = rec->n_entries ? bsearch(&key, rec->entries, rec->n_entries, sizeof(*rec->entries), cmp_entry) : NULL;
	while (e && e > rec->entries && strcmp(e[-1].path, name) == 0) {
		e--;
	}
	return e;
}

/* One member's digest, made on the pool into its own slot. */
struct member_hash {
	const char *algo;      /* the algorithm its RECORD line names; NULL: not hashed here */
	unsigned char d[64];
	int rc;
	struct kw_error err;
};

struct hashes {
	struct kw_wheel *w;
	struct member_hash *h;
};

static int hash_member(void *ud, size_t i)
{
	struct hashes *hs = ud;
	struct member_hash *mh = &hs->h[i];
	struct hasher sha;
	size_t dlen;

	if (!mh->algo || !hasher_init(&sha, mh->algo, &dlen)) {
		return 0;
	}
	mh->rc = kw_wheel_stream(hs->w, i, hash_chunk, &sha, &mh->err);
	if (!mh->rc) {
		hasher_final(&sha, mh->d);
	}
	return mh->rc;
}

int kw_wheel_verify_record(struct kw_wheel *w, struct kw_record *rec, struct kw_error *err)
{
	return kw_wheel_verify_record_known(w, rec, NULL, NULL, err);
}

int kw_wheel_verify_record_known(struct kw_wheel *w, struct kw_record *rec, const unsigned char (*known)[32],
				 const bool *have, struct kw_error *err)
{
	struct hashes hs = { w, NULL };
	unsigned char *buf = NULL;
	size_t len = 0, i, pcap;
	char *name = NULL;
	bool *seen = NULL;
	int rc;

	memset(rec, 0, sizeof(*rec));
	name = kw_asprintf("%s/RECORD", w->dist_info);
	if (!name) {
		return kw_error_set(err, KW_ENOMEM, "out of memory");
	}
	rc = read_small(w, name, RECORD_MAX, &buf, &len, err);
	if (rc) {
		goto out;
	}
	rc = kw_record_parse((const char *)buf, len, rec, err);
	if (rc) {
		goto out;
	}
	pcap = rec->n_problems;
	rc = KW_ENOMEM;
	/* An empty RECORD has no array at all: qsort and bsearch must not see NULL. */
	if (rec->n_entries) {
		qsort(rec->entries, rec->n_entries, sizeof(*rec->entries), cmp_entry);
	}
	seen = kw_calloc(rec->n_entries ? rec->n_entries : 1, sizeof(*seen));
	if (!seen) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	for (i = 1; i < rec->n_entries; i++) {
		if (strcmp(rec->entries[i - 1].path, rec->entries[i].path) == 0 &&
		    add_problem(rec, &pcap, KW_RECORD_DUPLICATE, rec->entries[i].path, NULL)) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
	}
	/*
	 * The members whose digest must be made are hashed first, each on the
	 * pool (ctx->pool) into its own slot; the checks below then run in
	 * member order, so the problems are the same on any number of threads.
	 */
	hs.h = kw_calloc(w->n_members ? w->n_members : 1, sizeof(*hs.h));
	if (!hs.h) {
		kw_error_set(err, rc, "out of memory");
		goto out;
	}
	for (i = 0; i < w->n_members; i++) {
		const struct kw_wheel_member *m = &w->members[i];
		struct kw_record_entry *e = m->is_dir ? NULL : entry_of(rec, m->name);
		struct hasher sha;
		size_t dlen = 0;

		if (e && e->algo && hasher_init(&sha, e->algo, &dlen) && strlen(e->digest) == (dlen * 4 + 2) / 3 &&
		    b64url_ok(e->digest) && !(known && have && have[i] && dlen == 32 && !sha.wide)) {
			hs.h[i].algo = e->algo;
		}
	}
	kw_pool_run_until(w->ctx->pool, w->n_members, hash_member, &hs);
	for (i = 0; i < w->n_members; i++) {
		const struct kw_wheel_member *m = &w->members[i];
		struct kw_record_entry key = { 0 }, *e, *end = rec->entries + rec->n_entries;
		unsigned char d[64];
		char b64[90];
		struct hasher sha;
		size_t dlen = 0;
		char *detail;
		int prc = 0;

		if (m->is_dir) {
			continue;
		}
		key.path = m->name;
		e = rec->n_entries ? bsearch(&key, rec->entries, rec->n_entries, sizeof(*rec->entries), cmp_entry) : NULL;
		if (!e) {
			if (add_problem(rec, &pcap, KW_RECORD_NOT_LISTED, m->name, NULL)) {
				kw_error_set(err, rc, "out of memory");
				goto out;
			}
			continue;
		}
		/* Duplicates were reported above; every copy counts as listed, the first is checked. */
		while (e > rec->entries && strcmp(e[-1].path, m->name) == 0) {
			e--;
		}
		for (struct kw_record_entry *c = e; c < end && strcmp(c->path, m->name) == 0; c++) {
			seen[c - rec->entries] = true;
		}
		if (!e->algo) {
			if (!unsigned_ok(w, m->name)) {
				prc = add_problem(rec, &pcap, KW_RECORD_NO_HASH, m->name, NULL);
			}
		} else if (!hasher_init(&sha, e->algo, &dlen)) {
			prc = add_problem(rec, &pcap, KW_RECORD_BAD_HASH, m->name,
					  kw_asprintf("algorithm '%s' is not accepted (sha256, sha384 or sha512 are)", e->algo));
		} else if (strlen(e->digest) != (dlen * 4 + 2) / 3 || !b64url_ok(e->digest)) {
			prc = add_problem(rec, &pcap, KW_RECORD_BAD_HASH, m->name,
					  kw_asprintf("'%s' is not an urlsafe-base64 %s digest", e->digest, e->algo));
		} else {
			if (known && have && have[i] && dlen == 32 && !sha.wide) {
				memcpy(d, known[i], 32);
			} else if (hs.h[i].rc) {
				rc = kw_error_set(err, hs.h[i].rc, "%s", hs.h[i].err.msg);
				goto out;
			} else {
				memcpy(d, hs.h[i].d, sizeof(d));
			}
			rc = KW_ENOMEM;
			kw_b64url_nopad(d, dlen, b64);
			if (strcmp(b64, e->digest) != 0) {
				detail = kw_asprintf("RECORD says %s=%s, member has %s=%s", e->algo, e->digest, e->algo, b64);
				prc = add_problem(rec, &pcap, KW_RECORD_HASH_MISMATCH, m->name, detail);
			}
		}
		if (!prc && e->size != -1 && (e->size < 0 || (uint64_t)e->size != m->size)) {
			detail = kw_asprintf("RECORD says %lld bytes, member has %llu", (long long)e->size,
					     (unsigned long long)m->size);
			prc = add_problem(rec, &pcap, KW_RECORD_SIZE_MISMATCH, m->name, detail);
		} else if (!prc && e->size == -1 && e->algo && !unsigned_ok(w, m->name)) {
			prc = add_problem(rec, &pcap, KW_RECORD_SIZE_MISMATCH, m->name,
					  kw_strdup("RECORD gives no size"));
		}
		if (prc) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
	}
	for (i = 0; i < rec->n_entries; i++) {
		if (!seen[i] && (i == 0 || strcmp(rec->entries[i - 1].path, rec->entries[i].path) != 0) &&
		    add_problem(rec, &pcap, KW_RECORD_NO_MEMBER, rec->entries[i].path, NULL)) {
			kw_error_set(err, rc, "out of memory");
			goto out;
		}
	}
	rc = 0;
out:
	if (rc) {
		kw_record_release(rec);
	}
	free(hs.h);
	free(seen);
	free(buf);
	free(name);
	return rc;
}

/* ---- writing RECORD ---- */

int kw_record_text_add(struct kw_record_text *r, const char *path, const char *hash, long long size)
{
	char sz[32] = "";
	bool quote = strpbrk(path, ",\"\r\n") != NULL;
	size_t need = strlen(path) * 2 + (hash ? strlen(hash) : 0) + 40;
	const char *p;

	if (kw_grow(&r->buf, &r->cap, r->len + need + 1, 1)) {
		return KW_ENOMEM;
	}
	if (quote) {
		r->buf[r->len++] = '"';
		for (p = path; *p; p++) {
			if (*p == '"') {
				r->buf[r->len++] = '"';
			}
			r->buf[r->len++] = *p;
		}
		r->buf[r->len++] = '"';
	} else {
		memcpy(r->buf + r->len, path, strlen(path));
		r->len += strlen(path);
	}
	if (size >= 0) {
		snprintf(sz, sizeof(sz), "%lld", size);
	}
	r->len += (size_t)snprintf(r->buf + r->len, r->cap - r->len, ",%s,%s\n", hash ? hash : "", sz);
	return 0;
}

char *kw_record_digest(struct kw_sha256 *sha)
{
	unsigned char d[32];
	char b64[48];

	kw_sha256_final(sha, d);
	kw_b64url_nopad(d, 32, b64);
	return kw_asprintf("sha256=%s", b64);
}

char *kw_record_digest_buf(const void *buf, size_t len)
{
	struct kw_sha256 sha;

	kw_sha256_init(&sha);
	kw_sha256_update(&sha, buf, len);
	return kw_record_digest(&sha);
}
