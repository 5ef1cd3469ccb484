/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include "kwheel/policy.h"
void kw_policy_set_free(struct kw_policy_set *set) { free(set); }
