/*-------------------------------------------------------------------------
 *
 * glob.c
 *		Glob patterns with the semantics of Redis's MATCH (stringmatchlen):
 *		"*" any run of bytes, "?" one byte, "[abc]", "[^a-z]" classes,
 *		"\x" a literal x.  Matching is byte-wise, as in Redis, so that both
 *		stores select the same keys.
 *
 * Unlike Redis, which reads an unterminated "[" or a trailing "\" in some
 * lenient way, such patterns are rejected: they are almost always mistakes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cache_ext.h"

/*
 * Walk the class that starts after "[" (and "^") at pat[i], the way Redis
 * reads it: "\\x" is a literal x, "a-z" a range (even "a-]"), the first
 * other "]" closes it.  Returns the index of that "]", or -1 if there is
 * none; with c not NULL, sets *match when *c is a member.  Like Redis, range
 * ends compare as (signed) char, so that both stores agree on "[a-\xe9]".
 */
static int
class_walk(const char *pat, int patlen, int i, const char *c, bool *match)
{
	while (i < patlen)
	{
		signed char lo;
		signed char hi;

		if (pat[i] == '\\' && i + 1 < patlen)
			lo = hi = (signed char) pat[++i];
		else if (pat[i] == ']')
			return i;
		else if (i + 2 < patlen && pat[i + 1] == '-')
		{
			lo = Min((signed char) pat[i], (signed char) pat[i + 2]);
			hi = Max((signed char) pat[i], (signed char) pat[i + 2]);
			i += 2;
		}
		else
			lo = hi = (signed char) pat[i];
		if (c && (signed char) *c >= lo && (signed char) *c <= hi)
			*match = true;
		i++;
	}
	return -1;
}

bool
cache_glob_valid(const char *pat, int patlen)
{
	for (int i = 0; i < patlen; i++)
	{
		if (pat[i] == '\\')
		{
			if (++i >= patlen)
				return false;
		}
		else if (pat[i] == '[')
		{
			i++;
			if (i < patlen && pat[i] == '^')
				i++;
			i = class_walk(pat, patlen, i, NULL, NULL);
			if (i < 0)
				return false;
		}
	}
	return true;
}

/*
 * Does the single-byte token at pat[*pi] (a literal, "?", "\x" or a class)
 * match c?  Advances *pi past the token.  The pattern is known valid.
 */
static bool
token_matches(const char *pat, int patlen, int *pi, const char *c)
{
	int			i = *pi;

	switch (pat[i])
	{
		case '?':
			*pi = i + 1;
			return true;
		case '\\':
			*pi = i + 2;
			return pat[i + 1] == *c;
		case '[':
			{
				bool		negate = (pat[i + 1] == '^');
				bool		match = false;

				*pi = class_walk(pat, patlen, i + 1 + negate, c, &match) + 1;
				return match != negate;
			}
		default:
			*pi = i + 1;
			return pat[i] == *c;
	}
}

/*
 * Every token but "*" consumes exactly one byte, so remembering only the
 * last "*" and retrying from one byte further is enough: O(len * patlen),
 * where naive recursion is exponential in the number of stars.
 */
bool
cache_glob_match(const char *pat, int patlen, const char *str, int len)
{
	int			pi = 0;
	int			si = 0;
	int			star_pi = -1;
	int			star_si = 0;

	while (si < len)
	{
		int			next = pi;

		if (pi < patlen && pat[pi] == '*')
		{
			star_pi = ++pi;
			star_si = si;
			continue;
		}
		if (pi < patlen && token_matches(pat, patlen, &next, &str[si]))
		{
			pi = next;
			si++;
			continue;
		}
		if (star_pi < 0)
			return false;
		pi = star_pi;
		si = ++star_si;
	}
	while (pi < patlen && pat[pi] == '*')
		pi++;
	return pi == patlen;
}
