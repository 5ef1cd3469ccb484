/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "kwheel/kwheel.h"

int kw_error_set(struct kw_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err) {
		return code;
	}
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void kw_error_prefix(struct kw_error *err, const char *fmt, ...)
{
	char prefix[KW_ERROR_MSG_MAX];
	char old[KW_ERROR_MSG_MAX];
	va_list ap;

	if (!err) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
}

const char *kw_status_str(int code)
{
	switch (code) {
	case KW_OK: return "ok";
	case KW_ENOMEM: return "out of memory";
	case KW_EIO: return "i/o error";
	case KW_EFORMAT: return "malformed input";
	case KW_EUNSUPPORTED: return "unsupported";
	case KW_ENOTFOUND: return "not found";
	case KW_EHOSTILE: return "refused as unsafe";
	case KW_EINVAL: return "invalid argument";
	case KW_ELIMIT: return "limit exceeded";
	case KW_EINTERNAL: return "internal error";
	case KW_EPOLICY: return "cannot meet the policy";
	case KW_EREQUEST: return "request does not apply";
	}
	return "unknown error";
}
