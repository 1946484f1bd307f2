/* unit.h - the few assertions the C tests need. Failures print and count; main returns the count. */
#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_failures, unit_checks;

#define CHECK(cond) do { \
	unit_checks++; \
	if (!(cond)) { unit_failures++; fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); } \
} while (0)

/* Compare a (ptr, len) result with an expected (ptr, len), printing both on a mismatch. */
#define CHECK_BYTES(what, got, got_len, want, want_len) do { \
	unit_checks++; \
	if ((got_len) != (want_len) || memcmp((got), (want), (want_len)) != 0) { \
		unit_failures++; \
		fprintf(stderr, "%s:%d: %s differs\n  got:  %.*s\n  want: %.*s\n", __FILE__, __LINE__, (what), \
		        (int)(got_len), (const char *)(got), (int)(want_len), (const char *)(want)); \
	} \
} while (0)

/* Whether needle occurs in hay: a secret left in memory, a parameter in a URL. */
static inline int contains(const void *hay, size_t hay_len, const void *needle, size_t needle_len)
{
	for (size_t i = 0; i + needle_len <= hay_len; i++)
		if (memcmp((const char *)hay + i, needle, needle_len) == 0)
			return 1;
	return 0;
}

#define UNIT_SUMMARY(name) \
	(printf("%s: %d passed, %d failed\n", (name), unit_checks - unit_failures, unit_failures), unit_failures != 0)

#endif
