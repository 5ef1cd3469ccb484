/* SPDX-License-Identifier: MIT */
/* The one way kwheel runs another program (gcc, python, strip). */
/* pipe2: close-on-exec from the start, no window for another thread's spawn to inherit the pipe. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <spawn.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kwheel/util.h"

extern char **environ;

/* What is kept of a program's stderr: enough for any first error, bounded against a chatty tool. */
#define ERR_KEEP (1u << 20)

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/*
 * Read both pipes until both are at end of file, so a child that fills one
 * while we wait on the other cannot deadlock. Returns 0 or an errno.
 */
static int drain(int *out_fd, struct kw_buf *out, int *err_fd, struct kw_buf *errtext)
{
	char chunk[1 << 14];

	while (*out_fd >= 0 || *err_fd >= 0) {
		struct pollfd p[2] = { { *out_fd, POLLIN, 0 }, { *err_fd, POLLIN, 0 } };
		int i;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR) {
				continue;
			}
			return errno;
		}
		for (i = 0; i < 2; i++) {
			int *fd = i ? err_fd : out_fd;
			struct kw_buf *b = i ? errtext : out;
			ssize_t n;

			if (*fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
				continue;
			}
			n = read(*fd, chunk, sizeof(chunk));
			if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
				continue;
			}
			if (n <= 0) {
				close_fd(fd);
				continue;
			}
			if (!b || (i && b->len >= ERR_KEEP)) {
				continue; /* not wanted, or enough kept: read on so the child is never blocked */
			}
			kw_buf_append_n(b, chunk, (size_t)n);
		}
	}
	return 0;
}

/* Does the line (not NUL-terminated) say what went wrong? */
static bool is_error_line(const char *l, size_t n)
{
	static const char *const keys[] = { "error:", "undefined reference", "multiple definition", "cannot find" };
	size_t i, k;

	for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		size_t kl = strlen(keys[k]);

		for (i = 0; kl <= n && i <= n - kl; i++) {
			if (strncasecmp(l + i, keys[k], kl) == 0) {
				return true;
			}
		}
	}
	return false;
}

char *kw_run_first_errors(const char *text, size_t len, size_t max_lines)
{
	struct kw_buf b = { 0 };
	const char *first = NULL;
	size_t pos = 0, first_len = 0, got = 0;

	while (pos < len && got < max_lines) {
		const char *l = text + pos, *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;

		pos += n + (nl ? 1 : 0);
		while (n && (l[n - 1] == '\r' || l[n - 1] == ' ')) {
			n--;
		}
		if (!n) {
			continue;
		}
		if (!first) {
			first = l;
			first_len = n;
		}
		if (is_error_line(l, n)) {
			if (got++) {
				kw_buf_append(&b, "; ");
			}
			kw_buf_append_n(&b, l, n);
		}
	}
	/* Nothing says "error": the first thing it said is still better than nothing. */
	if (!got && first) {
		kw_buf_append_n(&b, first, first_len);
	}
	return kw_buf_take(&b);
}

int kw_run(char *const *argv, struct kw_buf *out, struct kw_buf *errtext, struct kw_error *err)
{
	posix_spawn_file_actions_t fa;
	bool fa_ready = false;
	int opipe[2] = { -1, -1 }, epipe[2] = { -1, -1 }, st = 0, e, rc = KW_EINTERNAL;
	struct kw_buf own_err = { 0 };
	pid_t pid = -1;

	if (!errtext) {
		errtext = &own_err;
	}
	/* Close-on-exec: a program another thread starts meanwhile must not hold our pipes open. */
	if ((out && pipe2(opipe, O_CLOEXEC) != 0) || pipe2(epipe, O_CLOEXEC) != 0) {
		rc = kw_error_set(err, KW_EIO, "cannot run %s: %s", argv[0], strerror(errno));
		goto out;
	}
	e = posix_spawn_file_actions_init(&fa);
	fa_ready = e == 0;
	if (!e) {
		e = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	}
	if (!e && out) {
		e = posix_spawn_file_actions_adddup2(&fa, opipe[1], 1);
	}
	if (!e) {
		e = posix_spawn_file_actions_adddup2(&fa, epipe[1], 2);
	}
	if (!e) {
		e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	}
	if (e) {
		pid = -1;
		rc = kw_error_set(err, e == ENOMEM ? KW_ENOMEM : KW_EIO, "cannot run %s: %s", argv[0], strerror(e));
		goto out;
	}
	close_fd(&opipe[1]);
	close_fd(&epipe[1]);
	e = drain(&opipe[0], out, &epipe[0], errtext);
	close_fd(&opipe[0]);
	close_fd(&epipe[0]);
	/* Reap the child whatever happened to the pipes, and say exactly how it ended. */
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			rc = kw_error_set(err, KW_EIO, "cannot wait for %s: %s", argv[0], strerror(errno));
			pid = -1;
			goto out;
		}
	}
	pid = -1;
	if (e) {
		rc = kw_error_set(err, KW_EIO, "cannot read the output of %s: %s", argv[0], strerror(e));
		goto out;
	}
	if (WIFSIGNALED(st)) {
		rc = kw_error_set(err, KW_EIO, "%s killed by signal %d (%s)", argv[0], WTERMSIG(st),
				  strsignal(WTERMSIG(st)));
		goto out;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char *lines = kw_run_first_errors(errtext->s ? errtext->s : "", errtext->len, 3);

		rc = kw_error_set(err, KW_EIO, "%s failed (exit status %d)%s%s", argv[0],
				  WIFEXITED(st) ? WEXITSTATUS(st) : -1, lines && *lines ? ": " : "",
				  lines ? lines : "");
		free(lines);
		goto out;
	}
	if ((out && out->failed) || errtext->failed) {
		rc = kw_error_set(err, KW_ENOMEM, "out of memory reading the output of %s", argv[0]);
		goto out;
	}
	rc = 0;
out:
	if (fa_ready) {
		posix_spawn_file_actions_destroy(&fa);
	}
	close_fd(&opipe[0]);
	close_fd(&opipe[1]);
	close_fd(&epipe[0]);
	close_fd(&epipe[1]);
	kw_buf_release(&own_err);
	return rc;
}
