/* SPDX-License-Identifier: MIT */
/*
 * fuzz-km: the KM converter's input side. Byte 0 holds flags (bit 0: lib
 * mode, bit 1: no W^X), the rest is a shared object. kw_km_delink writes a
 * relocatable object; when it succeeds, that object must be one a linker
 * can read: libelf opens it, every section lies in the file, every
 * relocation names a symbol of the table and lands inside its section.
 */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kwheel/km.h"

#include "fuzz-common.h"

static void fail(const char *what) __attribute__((noreturn));

static void fail(const char *what)
{
	fprintf(stderr, "fuzz-km: %s\n", what);
	abort();
}

static void check_object(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char *buf;
	struct stat st;
	long len;
	Elf *e;
	Elf_Scn *scn = NULL;
	size_t nsyms = 0;
	GElf_Ehdr eh;

	/* Mapped, not read: the image goes whole into the object, and copying it back was most of a run. */
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0 ||
	    (buf = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
		fail("cannot read the object back");
	}
	close(fd);
	len = (long)st.st_size;
	e = elf_memory((char *)buf, (size_t)len);
	if (!e || !gelf_getehdr(e, &eh) || eh.e_type != ET_REL || eh.e_machine != EM_X86_64) {
		fail("the object is not an x86-64 ET_REL libelf reads");
	}
	while ((scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh)) {
			fail("unreadable section header");
		}
		if (sh.sh_type != SHT_NOBITS && (sh.sh_offset > (uint64_t)len || sh.sh_size > (uint64_t)len - sh.sh_offset)) {
			fail("a section lies outside the file");
		}
		if (sh.sh_type == SHT_SYMTAB && sh.sh_entsize) {
			nsyms = sh.sh_size / sh.sh_entsize;
		}
	}
	while ((scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh, target;
		Elf_Data *d;
		size_t i;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA) {
			continue;
		}
		if (!gelf_getshdr(elf_getscn(e, sh.sh_info), &target) || !(d = elf_getdata(scn, NULL))) {
			fail("a relocation section without its target");
		}
		for (i = 0; i < sh.sh_size / sizeof(Elf64_Rela); i++) {
			GElf_Rela r;

			if (!gelf_getrela(d, (int)i, &r)) {
				fail("unreadable relocation");
			}
			if (GELF_R_SYM(r.r_info) >= nsyms) {
				fail("a relocation names a symbol past the table");
			}
			unsigned type = (unsigned)GELF_R_TYPE(r.r_info);
			/* PC32 and PLT32 patch 4 bytes, the rest 8. */
			uint64_t width = type == R_X86_64_PC32 || type == R_X86_64_PLT32 ? 4 : 8;

			if (r.r_offset > target.sh_size || target.sh_size - r.r_offset < width) {
				fail("a relocation lands outside its section");
			}
		}
	}
	elf_end(e);
	munmap(buf, (size_t)len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct kw_km_converted res;
	struct kw_error err = { 0 };
	unsigned flags;

	if (size < 1) {
		return 0;
	}
	if (!path[0]) {
		/* tmpfs when there is one: an object is written for every input. */
		const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

		snprintf(path, sizeof(path), "%.40s/fz-km-%ld.o", dir, (long)getpid());
		elf_version(EV_CURRENT);
	}
	flags = data[0];
	if (kw_km_delink(data + 1, size - 1, "fz.so", "pkg/fz.so", (flags & 1) ? KW_KM_LIB : KW_KM_MODULE,
			 (flags & 2) ? KW_KM_NO_WX : 0, path, &res, &err) == 0) {
		check_object(path);
		kw_km_converted_release(&res);
		unlink(path);
	} else if (!err.msg[0]) {
		fail("an error without a message");
	} else if (access(path, F_OK) == 0) {
		fail("a failed conversion left its output");
	}
	return 0;
}
