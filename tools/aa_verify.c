/*-------------------------------------------------------------------------
 *
 * aa_verify.c
 *		The offline verifier of agentauth audit exports.
 *
 *		Reads the lines written by agentauth.export_audit() and, optionally,
 *		a digest kept outside the database (agentauth.audit_head()), and
 *		checks the hash chain with no database at all: every record is
 *		re-encoded from its fields in the canonical encoding, version 1
 *		(README, "The audit log"), or a unit of a statement's records from
 *		its fields and entries in version 2, hashed with SHA-256 after the
 *		previous record's hash, and compared.
 *
 *		This program is deliberately independent of the extension: plain C
 *		and libc, its own SHA-256 and its own JSON reader, written from the
 *		published encoding only, so a bug in the extension's chain code
 *		cannot hide itself here.
 *
 *		It reads about a million records per CPU second: SHA-256 uses the
 *		CPU's SHA instructions where it has them (x86-64; an unrolled
 *		portable version otherwise), strings are decoded in place in the
 *		line, and a line's values live in an arena reset for the next line.
 *
 *		usage: aa_verify [-d DIGEST | -D DIGEST_FILE] [-q] [EXPORT_FILE | -]
 *		exit:  0 intact; 1 not intact (first bad seq printed); 2 usage or I/O
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L	/* getline */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define EXIT_INTACT		0
#define EXIT_BROKEN		1
#define EXIT_USAGE		2
#define MAX_DEPTH		8

/* ---------------------------------------------------------------------
 * SHA-256 (FIPS 180-4)
 * ---------------------------------------------------------------------
 */
typedef struct
{
	uint32_t	h[8];
	uint64_t	len;			/* bytes hashed */
	unsigned char buf[64];
	size_t		nbuf;
} sha256_ctx;

static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

/*
 * The compression function in portable C, unrolled: the 16-word message
 * schedule rolls in place and the eight working variables rotate by
 * renaming, not by copying.
 */
#define BSIG0(x)	(ROR32(x, 2) ^ ROR32(x, 13) ^ ROR32(x, 22))
#define BSIG1(x)	(ROR32(x, 6) ^ ROR32(x, 11) ^ ROR32(x, 25))
#define SSIG0(x)	(ROR32(x, 7) ^ ROR32(x, 18) ^ ((x) >> 3))
#define SSIG1(x)	(ROR32(x, 17) ^ ROR32(x, 19) ^ ((x) >> 10))
#define CH(x, y, z)		((z) ^ ((x) & ((y) ^ (z))))
#define MAJ(x, y, z)	(((x) & (y)) | ((z) & ((x) | (y))))
#define W_NEXT(i) \
	(w[(i) & 15] += SSIG1(w[((i) - 2) & 15]) + w[((i) - 7) & 15] + SSIG0(w[((i) - 15) & 15]))
#define ROUND(a, b, c, d, e, f, g, h, i, wi) \
	do { \
		uint32_t	t1_ = (h) + BSIG1(e) + CH(e, f, g) + sha256_k[i] + (wi); \
		(d) += t1_; \
		(h) = t1_ + BSIG0(a) + MAJ(a, b, c); \
	} while (0)
#define ROUND8(i, W) \
	do { \
		ROUND(a, b, cc, d, e, f, g, h, (i) + 0, W((i) + 0)); \
		ROUND(h, a, b, cc, d, e, f, g, (i) + 1, W((i) + 1)); \
		ROUND(g, h, a, b, cc, d, e, f, (i) + 2, W((i) + 2)); \
		ROUND(f, g, h, a, b, cc, d, e, (i) + 3, W((i) + 3)); \
		ROUND(e, f, g, h, a, b, cc, d, (i) + 4, W((i) + 4)); \
		ROUND(d, e, f, g, h, a, b, cc, (i) + 5, W((i) + 5)); \
		ROUND(cc, d, e, f, g, h, a, b, (i) + 6, W((i) + 6)); \
		ROUND(b, cc, d, e, f, g, h, a, (i) + 7, W((i) + 7)); \
	} while (0)
#define W_LOAD(i)	(w[i])

static void
sha256_blocks_portable(uint32_t *state, const unsigned char *p, size_t nblocks)
{
	for (; nblocks > 0; nblocks--, p += 64)
	{
		uint32_t	w[16];
		uint32_t	a = state[0], b = state[1], cc = state[2], d = state[3],
					e = state[4], f = state[5], g = state[6], h = state[7];
		int			i;

		for (i = 0; i < 16; i++)
			w[i] = ((uint32_t) p[4 * i] << 24) | ((uint32_t) p[4 * i + 1] << 16) |
				((uint32_t) p[4 * i + 2] << 8) | (uint32_t) p[4 * i + 3];
		ROUND8(0, W_LOAD);
		ROUND8(8, W_LOAD);
		for (i = 16; i < 64; i += 16)
		{
			ROUND8(i, W_NEXT);
			ROUND8(i + 8, W_NEXT);
		}
		state[0] += a;
		state[1] += b;
		state[2] += cc;
		state[3] += d;
		state[4] += e;
		state[5] += f;
		state[6] += g;
		state[7] += h;
	}
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(AA_VERIFY_PORTABLE_SHA)
#define HAVE_SHA_NI 1
#include <cpuid.h>
#include <immintrin.h>

/*
 * The same function with the x86 SHA extensions (a CPU instruction, not a
 * library), used when the CPU has them: four times faster here.  Each
 * iteration does four rounds; the message schedule is the standard one
 * (sha256msg1/msg2 over the last four groups of four words).
 */
__attribute__((target("sha,sse4.1,ssse3")))
static void
sha256_blocks_shani(uint32_t *state, const unsigned char *p, size_t nblocks)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i		tmp = _mm_loadu_si128((const __m128i *) &state[0]);
	__m128i		st1 = _mm_loadu_si128((const __m128i *) &state[4]);
	__m128i		st0;

	tmp = _mm_shuffle_epi32(tmp, 0xB1); /* CDAB */
	st1 = _mm_shuffle_epi32(st1, 0x1B); /* EFGH */
	st0 = _mm_alignr_epi8(tmp, st1, 8); /* ABEF */
	st1 = _mm_blend_epi16(st1, tmp, 0xF0);	/* CDGH */

	for (; nblocks > 0; nblocks--, p += 64)
	{
		__m128i		save0 = st0,
					save1 = st1;
		__m128i		m[4];
		int			i;

		for (i = 0; i < 16; i++)
		{
			__m128i		wk;

			if (i < 4)
				m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *) (p + 16 * i)), bswap);
			else
			{
				__m128i		t = _mm_sha256msg1_epu32(m[i & 3], m[(i - 3) & 3]);

				t = _mm_add_epi32(t, _mm_alignr_epi8(m[(i - 1) & 3], m[(i - 2) & 3], 4));
				m[i & 3] = _mm_sha256msg2_epu32(t, m[(i - 1) & 3]);
			}
			wk = _mm_add_epi32(m[i & 3], _mm_loadu_si128((const __m128i *) &sha256_k[4 * i]));
			st1 = _mm_sha256rnds2_epu32(st1, st0, wk);
			st0 = _mm_sha256rnds2_epu32(st0, st1, _mm_shuffle_epi32(wk, 0x0E));
		}
		st0 = _mm_add_epi32(st0, save0);
		st1 = _mm_add_epi32(st1, save1);
	}

	tmp = _mm_shuffle_epi32(st0, 0x1B); /* FEBA */
	st1 = _mm_shuffle_epi32(st1, 0xB1); /* DCHG */
	st0 = _mm_blend_epi16(tmp, st1, 0xF0);	/* DCBA */
	st1 = _mm_alignr_epi8(st1, tmp, 8); /* ABEF */
	_mm_storeu_si128((__m128i *) &state[0], st0);
	_mm_storeu_si128((__m128i *) &state[4], st1);
}

/* SHA, SSSE3 and SSE4.1, asked of the CPU itself */
static bool
cpu_has_sha_ni(void)
{
	unsigned	a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 9)) || !(c & (1u << 19)))
		return false;
	if (__get_cpuid_max(0, NULL) < 7)
		return false;
	__cpuid_count(7, 0, a, b, c, d);
	return (b & (1u << 29)) != 0;
}
#endif

static void (*sha256_blocks) (uint32_t *state, const unsigned char *p, size_t nblocks) =
	sha256_blocks_portable;

static void
sha256_choose(void)
{
#ifdef HAVE_SHA_NI
	if (cpu_has_sha_ni())
		sha256_blocks = sha256_blocks_shani;
#endif
}

static void
sha256_init(sha256_ctx *c)
{
	static const uint32_t iv[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
	};

	memcpy(c->h, iv, sizeof(iv));
	c->len = 0;
	c->nbuf = 0;
}

static void
sha256_update(sha256_ctx *c, const unsigned char *p, size_t n)
{
	c->len += n;
	if (c->nbuf > 0)
	{
		size_t		take = 64 - c->nbuf;

		if (take > n)
			take = n;
		memcpy(c->buf + c->nbuf, p, take);
		c->nbuf += take;
		p += take;
		n -= take;
		if (c->nbuf < 64)
			return;
		sha256_blocks(c->h, c->buf, 1);
		c->nbuf = 0;
	}
	if (n >= 64)
	{
		sha256_blocks(c->h, p, n / 64);
		p += n - n % 64;
		n %= 64;
	}
	memcpy(c->buf, p, n);
	c->nbuf = n;
}

static void
sha256_final(sha256_ctx *c, unsigned char out[32])
{
	uint64_t	bits = c->len * 8;
	unsigned char pad[72];
	size_t		npad;
	int			i;

	npad = (c->nbuf < 56) ? 56 - c->nbuf : 120 - c->nbuf;
	memset(pad, 0, sizeof(pad));
	pad[0] = 0x80;
	for (i = 0; i < 8; i++)
		pad[npad + i] = (unsigned char) (bits >> (56 - 8 * i));
	sha256_update(c, pad, npad + 8);
	for (i = 0; i < 8; i++)
	{
		out[4 * i] = (unsigned char) (c->h[i] >> 24);
		out[4 * i + 1] = (unsigned char) (c->h[i] >> 16);
		out[4 * i + 2] = (unsigned char) (c->h[i] >> 8);
		out[4 * i + 3] = (unsigned char) c->h[i];
	}
}

/* ---------------------------------------------------------------------
 * A small JSON reader: enough for one export line (objects, arrays,
 * strings, integers, true, false, null), strict about everything else.
 * ---------------------------------------------------------------------
 */
typedef enum
{
	J_NULL, J_BOOL, J_INT, J_STR, J_ARR, J_OBJ
} jtype;

typedef struct jval
{
	jtype		type;
	bool		b;
	int64_t		i;
	char	   *s;				/* J_STR: bytes, NUL-terminated (no NUL inside) */
	size_t		slen;
	size_t		n;				/* J_ARR / J_OBJ: number of items */
	size_t		cap;			/* allocated items */
	struct jval *items;
	char	  **keys;			/* J_OBJ */
	size_t	   *keylens;		/* J_OBJ: the keys' lengths */
} jval;

typedef struct
{
	char	   *p;				/* the line, decoded in place */
	const char *end;
	char		err[200];
} jparser;

static void *
xrealloc(void *p, size_t n)
{
	void	   *r = realloc(p, n ? n : 1);

	if (r == NULL)
	{
		fprintf(stderr, "aa_verify: out of memory\n");
		exit(EXIT_USAGE);
	}
	return r;
}

/*
 * The parsed values of one line live in an arena that is reset for the
 * next line: no malloc or free per string or member.  Blocks never move,
 * so pointers into the arena stay valid until the reset; after a reset the
 * largest block is kept, so a file of similar lines allocates nothing.
 */
typedef struct arena_block
{
	struct arena_block *next;
	size_t		cap;
	size_t		used;
	union
	{
		char		c[1];
		int64_t		align_i;
		void	   *align_p;
	}			data;
} arena_block;

static arena_block *arena = NULL;

static void *
aalloc(size_t n)
{
	void	   *r;

	n = (n + 7) & ~(size_t) 7;
	if (arena == NULL || arena->cap - arena->used < n)
	{
		size_t		cap = arena ? arena->cap * 2 : 64 * 1024;
		arena_block *b;

		while (cap < n)
			cap *= 2;
		b = xrealloc(NULL, offsetof(arena_block, data) + cap);
		b->next = arena;
		b->cap = cap;
		b->used = 0;
		arena = b;
	}
	r = arena->data.c + arena->used;
	arena->used += n;
	return r;
}

/* a larger copy of an arena allocation (the old one stays until reset) */
static void *
arealloc(void *old, size_t oldn, size_t n)
{
	void	   *r = aalloc(n);

	if (oldn > 0)
		memcpy(r, old, oldn);
	return r;
}

static void
arena_reset(void)
{
	while (arena != NULL && arena->next != NULL)
	{
		arena_block *next = arena->next;

		/* keep the newest block: it is the largest */
		arena->next = next->next;
		free(next);
	}
	if (arena != NULL)
		arena->used = 0;
}

static bool
jfail(jparser *jp, const char *fmt,...)
{
	va_list		ap;

	if (jp->err[0] == '\0')
	{
		va_start(ap, fmt);
		vsnprintf(jp->err, sizeof(jp->err), fmt, ap);
		va_end(ap);
	}
	return false;
}

static void
jskip_ws(jparser *jp)
{
	while (jp->p < jp->end &&
		   (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
		jp->p++;
}

/* the bytes that end the plain run of a JSON string: quote, backslash, controls */
static bool str_special[256];

/* the value of a hex digit, -1 for anything else (filled by char_classes_init) */
static signed char hex_digit[256];

static void
char_classes_init(void)
{
	int			c;

	for (c = 0; c < 256; c++)
		str_special[c] = (c == '"' || c == '\\' || c < 0x20);
	for (c = 0; c < 256; c++)
		hex_digit[c] = (c >= '0' && c <= '9') ? c - '0' :
			(c >= 'a' && c <= 'f') ? c - 'a' + 10 :
			(c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
}

static inline int
hexval(int c)
{
	return hex_digit[c & 0xFF];
}

static bool
jread_hex4(jparser *jp, unsigned *out)
{
	unsigned	v = 0;
	int			k;

	if (jp->end - jp->p < 4)
		return jfail(jp, "short \\u escape");
	for (k = 0; k < 4; k++)
	{
		int			h = hexval((unsigned char) jp->p[k]);

		if (h < 0)
			return jfail(jp, "bad \\u escape");
		v = v * 16 + (unsigned) h;
	}
	jp->p += 4;
	*out = v;
	return true;
}

static void
put_utf8(char *buf, size_t *len, unsigned cp)
{
	if (cp < 0x80)
		buf[(*len)++] = (char) cp;
	else if (cp < 0x800)
	{
		buf[(*len)++] = (char) (0xC0 | (cp >> 6));
		buf[(*len)++] = (char) (0x80 | (cp & 0x3F));
	}
	else if (cp < 0x10000)
	{
		buf[(*len)++] = (char) (0xE0 | (cp >> 12));
		buf[(*len)++] = (char) (0x80 | ((cp >> 6) & 0x3F));
		buf[(*len)++] = (char) (0x80 | (cp & 0x3F));
	}
	else
	{
		buf[(*len)++] = (char) (0xF0 | (cp >> 18));
		buf[(*len)++] = (char) (0x80 | ((cp >> 12) & 0x3F));
		buf[(*len)++] = (char) (0x80 | ((cp >> 6) & 0x3F));
		buf[(*len)++] = (char) (0x80 | (cp & 0x3F));
	}
}

/*
 * The first byte at or after q (before end) that is a quote, a backslash
 * or a control character; end if none.  With SSE2 (every x86-64 CPU),
 * sixteen bytes at a time.
 */
static inline char *
plain_run(char *q, const char *end)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i bslash = _mm_set1_epi8('\\');
	const __m128i ctl = _mm_set1_epi8(0x1F);

	while (end - q >= 16)
	{
		__m128i		x = _mm_loadu_si128((const __m128i *) q);
		__m128i		hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote),
													_mm_cmpeq_epi8(x, bslash)),
									   _mm_cmpeq_epi8(_mm_max_epu8(x, ctl), ctl));
		int			mask = _mm_movemask_epi8(hit);

		if (mask != 0)
			return q + __builtin_ctz((unsigned) mask);
		q += 16;
	}
#endif
	while (q < end && !str_special[(unsigned char) *q])
		q++;
	return q;
}

/*
 * A string, decoded in place: the line is ours, and a decoded string is
 * never longer than its JSON form, so it is written over itself (from its
 * first byte, after the opening quote) and NUL-terminated there.
 */
static bool
jparse_string(jparser *jp, char **out, size_t *outlen)
{
	char	   *buf = jp->p + 1;
	char	   *q = buf;
	size_t		len;

	/* the plain run: no quote, backslash or control character */
	q = plain_run(q, jp->end);
	len = (size_t) (q - buf);
	if (q < jp->end && *q == '"')
	{
		/* the common case: the bytes between the quotes, as they are */
		*q = '\0';
		jp->p = q + 1;
		*out = buf;
		*outlen = len;
		return true;
	}

	/* escapes (or an error): decode the rest, writing behind the reader */
	jp->p = q;
	for (;;)
	{
		unsigned char c;

		if (jp->p >= jp->end)
			return jfail(jp, "unterminated string");
		c = (unsigned char) *jp->p++;
		if (c == '"')
			break;
		if (c < 0x20)
			return jfail(jp, "control character in string");
		if (c != '\\')
		{
			buf[len++] = (char) c;
			continue;
		}
		if (jp->p >= jp->end)
			return jfail(jp, "unterminated escape");
		c = (unsigned char) *jp->p++;
		switch (c)
		{
			case '"':
			case '\\':
			case '/':
				buf[len++] = (char) c;
				break;
			case 'b':
				buf[len++] = '\b';
				break;
			case 'f':
				buf[len++] = '\f';
				break;
			case 'n':
				buf[len++] = '\n';
				break;
			case 'r':
				buf[len++] = '\r';
				break;
			case 't':
				buf[len++] = '\t';
				break;
			case 'u':
				{
					unsigned	cp = 0,
								lo = 0;

					if (!jread_hex4(jp, &cp))
					return false;
					if (cp >= 0xD800 && cp <= 0xDBFF)
					{
						if (jp->end - jp->p < 6 || jp->p[0] != '\\' || jp->p[1] != 'u')
						return jfail(jp, "lone surrogate in \\u escape");
						jp->p += 2;
						if (!jread_hex4(jp, &lo))
						return false;
						if (lo < 0xDC00 || lo > 0xDFFF)
						return jfail(jp, "bad surrogate pair in \\u escape");
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					}
					else if (cp >= 0xDC00 && cp <= 0xDFFF)
					return jfail(jp, "lone surrogate in \\u escape");
					if (cp == 0)
					return jfail(jp, "\\u0000 cannot be part of a text value");
					put_utf8(buf, &len, cp);
					break;
				}
			default:
				return jfail(jp, "bad escape \\%c", c);
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return true;
}

static bool jparse_value(jparser *jp, jval *v, int depth);

static bool
jparse_int(jparser *jp, jval *v)
{
	bool		neg = false;
	uint64_t	acc = 0;
	const char *start;

	if (*jp->p == '-')
	{
		neg = true;
		jp->p++;
	}
	start = jp->p;
	while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
	{
		unsigned	d = (unsigned) (*jp->p - '0');

		if (acc > (UINT64_MAX - d) / 10)
			return jfail(jp, "number out of range");
		acc = acc * 10 + d;
		jp->p++;
	}
	if (jp->p == start)
		return jfail(jp, "bad number");
	if (jp->p - start > 1 && *start == '0')
		return jfail(jp, "number with a leading zero");
	if (jp->p < jp->end && (*jp->p == '.' || *jp->p == 'e' || *jp->p == 'E'))
		return jfail(jp, "number is not an integer");
	if (neg ? acc > (uint64_t) INT64_MAX + 1 : acc > (uint64_t) INT64_MAX)
		return jfail(jp, "number out of range");
	v->type = J_INT;
	if (neg)
		v->i = (acc == (uint64_t) INT64_MAX + 1) ? INT64_MIN : -(int64_t) acc;
	else
		v->i = (int64_t) acc;
	return true;
}

static bool
jparse_word(jparser *jp, const char *w)
{
	size_t		n = strlen(w);

	if ((size_t) (jp->end - jp->p) < n || memcmp(jp->p, w, n) != 0)
		return jfail(jp, "unexpected character '%c'", *jp->p);
	jp->p += n;
	return true;
}

static bool
jparse_value(jparser *jp, jval *v, int depth)
{
	memset(v, 0, sizeof(*v));
	if (depth > MAX_DEPTH)
		return jfail(jp, "nested too deeply");
	jskip_ws(jp);
	if (jp->p >= jp->end)
		return jfail(jp, "unexpected end of line");
	switch (*jp->p)
	{
		case '"':
			v->type = J_STR;
			return jparse_string(jp, &v->s, &v->slen);
		case 'n':
			v->type = J_NULL;
			return jparse_word(jp, "null");
		case 't':
			v->type = J_BOOL;
			v->b = true;
			return jparse_word(jp, "true");
		case 'f':
			v->type = J_BOOL;
			return jparse_word(jp, "false");
		case '[':
		case '{':
			{
				bool		obj = (*jp->p == '{');
				char		close = obj ? '}' : ']';

				v->type = obj ? J_OBJ : J_ARR;
				jp->p++;
				jskip_ws(jp);
				if (jp->p < jp->end && *jp->p == close)
				{
					jp->p++;
					return true;
				}
				for (;;)
				{
					char	   *key = NULL;
					size_t		keylen;

					jskip_ws(jp);
					if (obj)
					{
						if (jp->p >= jp->end || *jp->p != '"')
							return jfail(jp, "expected a key");
						if (!jparse_string(jp, &key, &keylen))
							return false;
						jskip_ws(jp);
						if (jp->p >= jp->end || *jp->p != ':')
							return jfail(jp, "expected ':'");
						jp->p++;
					}
					if (v->n == v->cap)
					{
						v->cap = v->cap ? v->cap * 2 : obj ? 32 : 8;
						v->items = arealloc(v->items, v->n * sizeof(jval), v->cap * sizeof(jval));
						if (obj)
							{
							v->keys = arealloc(v->keys, v->n * sizeof(char *), v->cap * sizeof(char *));
							v->keylens = arealloc(v->keylens, v->n * sizeof(size_t), v->cap * sizeof(size_t));
						}
					}
					if (obj)
					{
						v->keys[v->n] = key;
						v->keylens[v->n] = keylen;
					}
					v->n++;
					if (!jparse_value(jp, &v->items[v->n - 1], depth + 1))
						return false;
					jskip_ws(jp);
					if (jp->p < jp->end && *jp->p == ',')
					{
						jp->p++;
						continue;
					}
					if (jp->p < jp->end && *jp->p == close)
					{
						jp->p++;
						return true;
					}
					return jfail(jp, "expected ',' or '%c'", close);
				}
			}
		default:
			if (*jp->p == '-' || (*jp->p >= '0' && *jp->p <= '9'))
				return jparse_int(jp, v);
			return jfail(jp, "unexpected character '%c'", *jp->p);
	}
}

/*
 * parse one whole line as a JSON object; on failure err says why.  The
 * line's strings are decoded in place: the values point into it.
 */
static bool
jparse_line(char *line, size_t len, jval *v, char *err, size_t errlen)
{
	jparser		jp;

	jp.p = line;
	jp.end = line + len;
	jp.err[0] = '\0';
	if (!jparse_value(&jp, v, 0))
	{
		snprintf(err, errlen, "not valid JSON: %s", jp.err);
		return false;
	}
	jskip_ws(&jp);
	if (jp.p != jp.end)
	{
		snprintf(err, errlen, "not valid JSON: text after the object");
		return false;
	}
	if (v->type != J_OBJ)
	{
		snprintf(err, errlen, "not a JSON object");
		return false;
	}
	return true;
}

/* the member of an object, or NULL; *dup set when the key occurs twice */
static jval *
jget(jval *obj, const char *key, bool *dup)
{
	jval	   *found = NULL;
	size_t		k;

	for (k = 0; k < obj->n; k++)
		if (obj->keys[k][0] == key[0] && strcmp(obj->keys[k], key) == 0)
		{
			if (found != NULL && dup != NULL)
				*dup = true;
			found = &obj->items[k];
		}
	return found;
}

/* ---------------------------------------------------------------------
 * The canonical record encoding, version 1
 * ---------------------------------------------------------------------
 */
typedef struct
{
	unsigned char *data;
	size_t		len;
	size_t		cap;
} bytebuf;

static void
bb_grow(bytebuf *b, size_t n)
{
	b->cap = (b->len + n) * 2 + 256;
	b->data = xrealloc(b->data, b->cap);
}

static inline void
bb_put(bytebuf *b, const void *p, size_t n)
{
	if (b->cap - b->len < n)
		bb_grow(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static inline void
bb_byte(bytebuf *b, unsigned char c)
{
	if (b->cap == b->len)
		bb_grow(b, 1);
	b->data[b->len++] = c;
}

/* tag and a big-endian number of nbytes bytes */
static inline void
bb_tag_be(bytebuf *b, unsigned char tag, uint64_t v, int nbytes)
{
	unsigned char *o;
	int			k;

	if (b->cap - b->len < (size_t) nbytes + 1)
		bb_grow(b, (size_t) nbytes + 1);
	o = b->data + b->len;
	o[0] = tag;
	for (k = 0; k < nbytes; k++)
		o[1 + k] = (unsigned char) (v >> (8 * (nbytes - 1 - k)));
	b->len += (size_t) nbytes + 1;
}

/* kinds of fields: the column types of agentauth.audit_log */
#define K_BIGINT	'i'
#define K_TSTZ		'T'
#define K_UUID		'u'
#define K_TEXT		't'
#define K_JSONB		'j'
#define K_TEXTARR	'A'
#define K_UUIDARR	'U'
#define K_INTARR	'I'			/* a unit's kinds and row counts */
#define K_JSONBARR	'J'			/* a unit's authorities */

/*
 * A unit (encoding version 2): the members after row_hash that hold its
 * entries, each element encoded after the 21 fields as the fields are
 * (kinds and row counts as bigints).
 */
static const struct
{
	const char *name;
	char		kind;
}			entry_fields[] = {
	{"entry_kinds", K_INTARR},
	{"entry_patients", K_TEXTARR},
	{"entry_row_counts", K_INTARR},
	{"entry_authorities", K_JSONBARR},
};
#define NENTRY		4

static const struct
{
	const char *name;
	char		kind;
}			record_fields[] = {
	{"seq", K_BIGINT},
	{"logged_at", K_TSTZ},
	{"event", K_TEXT},
	{"principal", K_UUID},
	{"principal_name", K_TEXT},
	{"db_role", K_TEXT},
	{"token", K_UUID},
	{"on_behalf_of", K_TEXT},
	{"delegation_chain", K_UUIDARR},
	{"purpose", K_TEXT},
	{"patient", K_TEXT},
	{"relation", K_TEXT},
	{"columns", K_TEXTARR},
	{"data_classes", K_TEXTARR},
	{"action", K_TEXT},
	{"row_count", K_BIGINT},
	{"authority", K_JSONB},
	{"outcome", K_TEXT},
	{"statement", K_TEXT},
	{"client", K_TEXT},
	{"detail", K_JSONB},
};
#define NFIELDS (sizeof(record_fields) / sizeof(record_fields[0]))

/* the lengths of the names of record_fields (filled by fields_init) */
static size_t field_name_len[NFIELDS];

static void
fields_init(void)
{
	size_t		k;

	for (k = 0; k < NFIELDS; k++)
		field_name_len[k] = strlen(record_fields[k].name);
}

static inline bool
is_field(const char *key, size_t keylen, size_t k)
{
	const char *name = record_fields[k].name;
	size_t		i;

	if (keylen != field_name_len[k])
		return false;
	for (i = 0; i < keylen; i++)	/* short: no call to memcmp */
		if (key[i] != name[i])
			return false;
	return true;
}

/*
 * The slot of a record member: 0..NFIELDS-1 the fields, then prev_hash and
 * row_hash; -1 for anything else.  hint: where the export puts it.
 */
static int
member_index(const char *key, size_t keylen, size_t hint)
{
	size_t		k;

	if (hint < NFIELDS && is_field(key, keylen, hint))
		return (int) hint;
	for (k = 0; k < NFIELDS; k++)
		if (is_field(key, keylen, k))
			return (int) k;
	if (keylen == 9 && memcmp(key, "prev_hash", 9) == 0)
		return NFIELDS;
	if (keylen == 8 && memcmp(key, "row_hash", 8) == 0)
		return NFIELDS + 1;
	for (k = 0; k < NENTRY; k++)
		if (keylen == strlen(entry_fields[k].name) &&
			memcmp(key, entry_fields[k].name, keylen) == 0)
			return (int) (NFIELDS + 2 + k);
	return -1;
}

/* parse a uuid in its canonical 8-4-4-4-12 form (either case) */
static bool
parse_uuid(const char *s, size_t len, unsigned char out[16])
{
	size_t		k,
				o = 0;

	if (len != 36)
		return false;
	for (k = 0; k < 36; k++)
	{
		if (k == 8 || k == 13 || k == 18 || k == 23)
		{
			if (s[k] != '-')
				return false;
			continue;
		}
		if (hexval((unsigned char) s[k]) < 0 || hexval((unsigned char) s[k + 1]) < 0)
			return false;
		out[o++] = (unsigned char) (hexval((unsigned char) s[k]) * 16 +
									hexval((unsigned char) s[k + 1]));
		k++;
	}
	return o == 16;
}

/* exactly 64 hex digits -> 32 bytes */
static bool
parse_hash(const char *s, size_t len, unsigned char out[32])
{
	size_t		k;

	if (len != 64)
		return false;
	for (k = 0; k < 32; k++)
	{
		int			hi = hexval((unsigned char) s[2 * k]);
		int			lo = hexval((unsigned char) s[2 * k + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[k] = (unsigned char) (hi * 16 + lo);
	}
	return true;
}

static void
hex32(const unsigned char h[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";
	int			k;

	for (k = 0; k < 32; k++)
	{
		out[2 * k] = digits[h[k] >> 4];
		out[2 * k + 1] = digits[h[k] & 15];
	}
	out[64] = '\0';
}

static void
encode_text(bytebuf *b, char tag, const jval *v)
{
	bb_tag_be(b, (unsigned char) tag, (uint64_t) v->slen, 4);
	bb_put(b, v->s, v->slen);
}

/*
 * Append one field's encoding; false (with err) when the JSON value does
 * not have the field's type.
 */
static bool
encode_field(bytebuf *b, const char *name, char kind, const jval *v,
			 char *err, size_t errlen)
{
	unsigned char u[16];
	size_t		k;

	if (v->type == J_NULL)
	{
		bb_byte(b, 0x00);
		return true;
	}
	switch (kind)
	{
		case K_BIGINT:
		case K_TSTZ:
			if (v->type != J_INT)
				break;
			bb_tag_be(b, (unsigned char) (kind == K_BIGINT ? 'i' : 'T'), (uint64_t) v->i, 8);
			return true;
		case K_UUID:
			if (v->type != J_STR || !parse_uuid(v->s, v->slen, u))
				break;
			bb_byte(b, 'u');
			bb_put(b, u, 16);
			return true;
		case K_TEXT:
			if (v->type != J_STR)
				break;
			encode_text(b, 't', v);
			return true;
		case K_JSONB:
			if (v->type != J_STR)
				break;
			encode_text(b, 'j', v);
			return true;
		case K_TEXTARR:
		case K_UUIDARR:
		case K_INTARR:
		case K_JSONBARR:
			if (v->type != J_ARR || v->n > UINT32_MAX)
				break;
			bb_tag_be(b, 'a', (uint64_t) v->n, 4);
			for (k = 0; k < v->n; k++)
			{
				const jval *e = &v->items[k];

				if (e->type == J_NULL)
					bb_byte(b, 0x00);
				else if (e->type == J_INT && kind == K_INTARR)
					bb_tag_be(b, 'i', (uint64_t) e->i, 8);
				else if (e->type == J_STR && kind == K_JSONBARR)
					encode_text(b, 'j', e);
				else if (e->type == J_STR && kind == K_TEXTARR)
					encode_text(b, 't', e);
				else if (kind == K_INTARR || kind == K_JSONBARR)
				{
					snprintf(err, errlen, "element %zu of \"%s\" has the wrong type", k + 1, name);
					return false;
				}
				else if (e->type == J_STR && parse_uuid(e->s, e->slen, u))
				{
					bb_byte(b, 'u');
					bb_put(b, u, 16);
				}
				else
				{
					snprintf(err, errlen, "element %zu of \"%s\" has the wrong type", k + 1, name);
					return false;
				}
			}
			return true;
	}
	snprintf(err, errlen, "field \"%s\" has the wrong type", name);
	return false;
}

/*
 * The detail of an audit_purged record, {"cut_seq": N, "cut_hash": "<hex>",
 * ...}: the first seq kept and the hash it links to.  False when the detail
 * does not say.
 */
static bool
purge_anchor(const jval *detail, int64_t *seq, unsigned char hash[32])
{
	jval		d;
	jval	   *cs,
			   *ch;
	char		err[256];
	bool		ok;

	if (detail == NULL || detail->type != J_STR)
		return false;
	if (!jparse_line(detail->s, detail->slen, &d, err, sizeof(err)))
		return false;
	cs = jget(&d, "cut_seq", NULL);
	ch = jget(&d, "cut_hash", NULL);
	ok = (cs != NULL && cs->type == J_INT && ch != NULL && ch->type == J_STR &&
		  parse_hash(ch->s, ch->slen, hash));
	if (ok)
		*seq = cs->i;
	return ok;
}

/* ---------------------------------------------------------------------
 * The verification
 * ---------------------------------------------------------------------
 */
typedef struct
{
	bool		has_digest;
	bool		digest_has_seq;
	int64_t		digest_seq;
	unsigned char digest[32];
	bool		digest_matched;
	int64_t		digest_matched_seq;
} digest_t;

static bool quiet = false;

static int
fail(int64_t seq, long lineno, const char *fmt,...)
{
	va_list		ap;

	printf("aa_verify: FAILED: first bad seq %" PRId64 ": ", seq);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (lineno > 0)
		printf(" (line %ld)", lineno);
	printf("\n");
	return EXIT_BROKEN;
}

/* parse "[SEQ(:||, |space)]HEX" with an optional \x before HEX */
static bool
parse_digest(const char *arg, digest_t *d)
{
	char	   *s = strdup(arg);
	char	   *p = s,
			   *e,
			   *hex;
	size_t		n;

	if (s == NULL)
		return false;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	n = strlen(p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r'))
		p[--n] = '\0';
	hex = p;
	e = strpbrk(p, ":|, \t");
	d->digest_has_seq = false;
	if (e != NULL)
	{
		char	   *endp;
		long long	v;

		*e = '\0';
		errno = 0;
		v = strtoll(p, &endp, 10);
		if (errno != 0 || endp == p || *endp != '\0' || v < 1)
		{
			free(s);
			return false;
		}
		d->digest_has_seq = true;
		d->digest_seq = (int64_t) v;
		hex = e + 1;
		while (*hex == ' ' || *hex == '\t')
			hex++;
	}
	if (hex[0] == '\\' && hex[1] == 'x')
		hex += 2;
	if (!parse_hash(hex, strlen(hex), d->digest))
	{
		free(s);
		return false;
	}
	free(s);
	d->has_digest = true;
	return true;
}

static char *
read_digest_file(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char	   *line = NULL;
	size_t		cap = 0;

	if (f == NULL)
	{
		fprintf(stderr, "aa_verify: cannot open digest file \"%s\": %s\n", path, strerror(errno));
		exit(EXIT_USAGE);
	}
	if (getline(&line, &cap, f) < 0)
	{
		fprintf(stderr, "aa_verify: digest file \"%s\" is empty\n", path);
		exit(EXIT_USAGE);
	}
	fclose(f);
	return line;
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: aa_verify [-d DIGEST | -D DIGEST_FILE] [-q] [EXPORT_FILE | -]\n"
			"\n"
			"Checks an export of agentauth.export_audit() offline: every record is\n"
			"re-encoded and re-hashed and the chain followed from the export's anchor.\n"
			"\n"
			"  -d DIGEST       the chain head kept outside the database, as SEQ:HEX\n"
			"                  (audit_head() seq and row_hash) or HEX alone\n"
			"  -D DIGEST_FILE  read DIGEST from the first line of a file\n"
			"  -q              print nothing when intact\n"
			"\n"
			"exit status: 0 intact, 1 not intact (the first bad seq is printed),\n"
			"2 usage or I/O error\n");
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	const char *digest_arg = NULL;
	FILE	   *in;
	digest_t	dg;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		got;
	long		lineno = 0;
	bool		have_header = false,
				have_end = false;
	int64_t		first_seq = 0,
				expect = 0,
				count = 0;
	unsigned char anchor[32],
				prev[32];
	bytebuf		enc = {NULL, 0, 0};
	bool		is_purge;
	jval	   *slot[NFIELDS + 2 + NENTRY];
	int64_t		nrec;
	int64_t		purge_seq = 0;
	unsigned char purge_hash[32];
	int64_t		anchor_confirmed_by = 0;
	char		err[256];
	char		hx[65];
	int			i;

	sha256_choose();
	char_classes_init();
	fields_init();
	memset(&dg, 0, sizeof(dg));
	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
			digest_arg = argv[++i];
		else if (strcmp(argv[i], "-D") == 0 && i + 1 < argc)
			digest_arg = read_digest_file(argv[++i]);
		else if (strcmp(argv[i], "-q") == 0)
			quiet = true;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
		{
			usage();
			return EXIT_INTACT;
		}
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
		{
			usage();
			return EXIT_USAGE;
		}
		else if (path == NULL)
			path = argv[i];
		else
		{
			usage();
			return EXIT_USAGE;
		}
	}
	if (digest_arg != NULL && !parse_digest(digest_arg, &dg))
	{
		fprintf(stderr, "aa_verify: bad digest \"%s\": expected SEQ:HEX or HEX (64 hex digits)\n",
				digest_arg);
		return EXIT_USAGE;
	}
	if (path == NULL || strcmp(path, "-") == 0)
		in = stdin;
	else if ((in = fopen(path, "r")) == NULL)
	{
		fprintf(stderr, "aa_verify: cannot open \"%s\": %s\n", path, strerror(errno));
		return EXIT_USAGE;
	}

	while ((got = getline(&line, &cap, in)) >= 0)
	{
		size_t		len = (size_t) got;
		jval		obj;
		bool		dup = false;
		jval	   *v;
		unsigned char stored_prev[32],
					stored_row[32],
					computed[32];
		sha256_ctx	ctx;
		size_t		f;

		lineno++;
		arena_reset();			/* the values of the line before */
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;			/* blank lines (psql's trailing one) */
		if (memchr(line, '\0', len) != NULL)
			return fail(have_header ? expect : 1, lineno, "NUL byte in the export");
		if (have_end)
			return fail(expect, lineno, "text after the end line");

		if (!jparse_line(line, len, &obj, err, sizeof(err)))
		{
			if (!have_header)
				return fail(1, lineno, "bad header line: %s", err);
			return fail(expect, lineno, "%s", err);
		}

		if (!have_header)
		{
			jval	   *ver = jget(&obj, "agentauth_export", &dup);
			jval	   *fs = jget(&obj, "first_seq", &dup);
			jval	   *an = jget(&obj, "anchor", &dup);

			if (ver == NULL || ver->type != J_INT || fs == NULL || fs->type != J_INT ||
				an == NULL || an->type != J_STR || dup || obj.n != 3)
			{
				return fail(1, lineno, "the first line is not an agentauth export header");
			}
			if (ver->i != 1 && ver->i != 2)
			{
				fprintf(stderr, "aa_verify: export format version %" PRId64 " is not supported (this program reads versions 1 and 2)\n", ver->i);
				return EXIT_USAGE;
			}
			if (fs->i < 1)
			{
				return fail(fs->i, lineno, "the export begins at seq %" PRId64 ": a record below seq 1 is stored, and the log starts at 1",
							fs->i);
			}
			if (!parse_hash(an->s, an->slen, anchor))
			{
				return fail(1, lineno, "bad header: first_seq or anchor malformed");
			}
			first_seq = expect = fs->i;
			memcpy(prev, anchor, 32);
			if (first_seq == 1)
			{
				static const unsigned char zero[32];

				if (memcmp(anchor, zero, 32) != 0)
				{
					return fail(1, lineno, "the anchor of seq 1 must be 32 zero bytes");
				}
			}
			have_header = true;
			continue;
		}

		if (jget(&obj, "end", NULL) != NULL)
		{
			jval	   *e = jget(&obj, "end", &dup);
			jval	   *rc = jget(&obj, "records", &dup);
			jval	   *ls = jget(&obj, "last_seq", &dup);
			jval	   *hd = jget(&obj, "head", &dup);
			unsigned char head[32];

			if (e->type != J_BOOL || !e->b || rc == NULL || rc->type != J_INT ||
				ls == NULL || ls->type != J_INT || hd == NULL || hd->type != J_STR ||
				!parse_hash(hd->s, hd->slen, head) || dup || obj.n != 4)
			{
				return fail(expect, lineno, "malformed end line");
			}
			if (ls->i > expect - 1)
			{
				return fail(expect, lineno, "records %" PRId64 "..%" PRId64 " are missing before the end line",
							expect, ls->i);
			}
			if (rc->i != count || ls->i != expect - 1 || memcmp(head, prev, 32) != 0)
			{
				return fail(expect, lineno, "the end line does not match the records (%" PRId64 " records, last seq %" PRId64 ")",
							count, expect - 1);
			}
			have_end = true;
			continue;
		}

		/*
		 * A record: sort its members into their slots (the export writes
		 * them in order, so the hint usually hits), its seq first, to say
		 * which one is bad.
		 */
		memset(slot, 0, sizeof(slot));
		for (f = 0; f < obj.n; f++)
		{
			int			k = member_index(obj.keys[f], obj.keylens[f], f);

			if (k < 0 || slot[k] != NULL)
			{
				char		msg[200];

				snprintf(msg, sizeof(msg), "member \"%.100s\" %s", obj.keys[f],
						 k < 0 ? "is not part of a record" : "occurs twice");
				return fail(expect, lineno, "%s", msg);
			}
			slot[k] = &obj.items[f];
		}
		v = slot[0];
		if (v == NULL || v->type != J_INT)
		{
			return fail(expect, lineno, "record without a seq");
		}
		if (v->i != expect)
		{
			int64_t		s = v->i;

			if (s < expect)
				return fail(expect, lineno, "found seq %" PRId64 " where seq %" PRId64 " belongs: a record repeated or out of order",
							s, expect);
			if (count == 0)
				return fail(expect, lineno, "the export should start at seq %" PRId64 " but starts at seq %" PRId64,
							expect, s);
			return fail(expect, lineno, "record %" PRId64 " is missing (found seq %" PRId64 ")", expect, s);
		}

		enc.len = 0;
		bb_byte(&enc, 0x01);	/* format version */
		for (f = 0; f < NFIELDS; f++)
		{
			v = slot[f];
			if (v == NULL)
			{
				return fail(expect, lineno, "field \"%s\" is missing", record_fields[f].name);
			}
			if (!encode_field(&enc, record_fields[f].name, record_fields[f].kind, v,
							  err, sizeof(err)))
			{
				return fail(expect, lineno, "%s", err);
			}
		}
		/* a unit: version 2, its entries after the fields, n records */
		nrec = 1;
		v = slot[NFIELDS + 2];
		if (v != NULL && v->type != J_NULL)
		{
			if (v->type != J_ARR || v->n < 1)
				return fail(expect, lineno, "entry_kinds is not a non-empty array");
			nrec = (int64_t) v->n;
			enc.data[0] = 0x02;
			for (f = 0; f < NENTRY; f++)
			{
				size_t		k;

				v = slot[NFIELDS + 2 + f];
				if (v == NULL)
					return fail(expect, lineno, "member \"%s\" of a unit is missing", entry_fields[f].name);
				/* the unit's shape: n entries in each array, kinds 0..5, a patient and rows each */
				if (v->type != J_ARR || (int64_t) v->n != nrec)
					return fail(expect, lineno, "\"%s\" does not hold the unit's %" PRId64 " entries",
								entry_fields[f].name, nrec);
				for (k = 0; k < v->n && f < 3; k++)
				{
					const jval *e = &v->items[k];

					if (e->type == J_NULL || (f == 0 && (e->type != J_INT || e->i < 0 || e->i > 5)))
						return fail(expect, lineno, "element %zu of \"%s\" is not a valid entry",
									k + 1, entry_fields[f].name);
				}
				if (!encode_field(&enc, entry_fields[f].name, entry_fields[f].kind, v,
								  err, sizeof(err)))
					return fail(expect, lineno, "%s", err);
			}
		}
		else
		{
			for (f = 1; f < NENTRY; f++)
				if (slot[NFIELDS + 2 + f] != NULL && slot[NFIELDS + 2 + f]->type != J_NULL)
					return fail(expect, lineno, "member \"%s\" without entry_kinds", entry_fields[f].name);
		}
		v = slot[NFIELDS];
		if (v == NULL || v->type != J_STR || !parse_hash(v->s, v->slen, stored_prev))
		{
			return fail(expect, lineno, "prev_hash is missing or not 64 hex digits");
		}
		v = slot[NFIELDS + 1];
		if (v == NULL || v->type != J_STR || !parse_hash(v->s, v->slen, stored_row))
		{
			return fail(expect, lineno, "row_hash is missing or not 64 hex digits");
		}
		/* a purge record names the anchor of what it kept: remember it */
		v = slot[2];				/* event */
		is_purge = (v->type == J_STR && strcmp(v->s, "audit_purged") == 0);
		if (is_purge)
			is_purge = purge_anchor(slot[20], &purge_seq, purge_hash);	/* detail */

		if (memcmp(stored_prev, prev, 32) != 0)
			return fail(expect, lineno, "prev_hash does not link to the hash of the record before");
		sha256_init(&ctx);
		sha256_update(&ctx, prev, 32);
		sha256_update(&ctx, enc.data, enc.len);
		sha256_final(&ctx, computed);
		if (memcmp(computed, stored_row, 32) != 0)
			return fail(expect, lineno, "record changed: its fields do not hash to its row_hash");

		if (dg.has_digest && !dg.digest_matched)
		{
			if (dg.digest_has_seq && dg.digest_seq >= expect && dg.digest_seq < expect + nrec)
			{
				if (memcmp(computed, dg.digest, 32) != 0)
					return fail(expect, lineno, "record %" PRId64 " does not match the digest", expect);
				dg.digest_matched = true;
				dg.digest_matched_seq = dg.digest_seq;
			}
			else if (!dg.digest_has_seq && memcmp(computed, dg.digest, 32) == 0)
			{
				dg.digest_matched = true;
				dg.digest_matched_seq = expect + nrec - 1;
			}
		}
		if (is_purge && purge_seq == first_seq)
		{
			if (memcmp(purge_hash, anchor, 32) != 0)
				return fail(first_seq, lineno, "the anchor is not the chain head that the audit_purged record seq %" PRId64 " kept",
							expect);
			anchor_confirmed_by = expect;
		}
		memcpy(prev, computed, 32);
		expect += nrec;
		count += nrec;
	}
	if (ferror(in))
	{
		fprintf(stderr, "aa_verify: read error: %s\n", strerror(errno));
		return EXIT_USAGE;
	}
	if (!have_header)
		return fail(1, 0, "empty export: no header line");
	if (!have_end)
		return fail(expect, 0, "the export ends without its end line: truncated after seq %" PRId64,
					expect - 1);
	if (dg.has_digest && !dg.digest_matched)
	{
		/* the digest may also name the anchor itself */
		if (!dg.digest_has_seq && memcmp(anchor, dg.digest, 32) == 0)
		{
			dg.digest_matched = true;
			dg.digest_matched_seq = first_seq - 1;
		}
		else if (dg.digest_has_seq && dg.digest_seq < first_seq)
			return fail(first_seq, 0, "the digest names seq %" PRId64 ", before this export's first record; export from an earlier seq to check it",
						dg.digest_seq);
		else if (dg.digest_has_seq)
			return fail(expect, 0, "the chain ends at seq %" PRId64 " but the digest names seq %" PRId64 ": records were removed from the tail",
						expect - 1, dg.digest_seq);
		else
			return fail(expect, 0, "the digest matches no record: records were removed from the tail, or the chain was rewritten");
	}

	if (!quiet)
	{
		if (count == 0)
			printf("aa_verify: OK: no records after seq %" PRId64 "\n", first_seq - 1);
		else
			printf("aa_verify: OK: %" PRId64 " records, seq %" PRId64 "..%" PRId64 ", chain intact\n",
				   count, first_seq, expect - 1);
		hex32(anchor, hx);
		if (first_seq == 1)
			printf("  anchor: seq 1 follows 32 zero bytes (the start of the log)\n");
		else
		{
			printf("  anchor: %s, the row_hash of seq %" PRId64 " (not in this export)\n",
				   hx, first_seq - 1);
			if (anchor_confirmed_by > 0)
				printf("          confirmed by the audit_purged record seq %" PRId64 "\n",
					   anchor_confirmed_by);
			else
				printf("          taken as given: check it against an earlier export\n");
		}
		hex32(prev, hx);
		printf("  head:   seq %" PRId64 " %s\n", expect - 1, hx);
		if (dg.has_digest)
			printf("  digest: matches seq %" PRId64 "\n", dg.digest_matched_seq);
		else
			printf("  digest: none given; without one a removed tail cannot be detected\n");
	}
	free(line);
	free(enc.data);
	if (in != stdin)
		fclose(in);
	return EXIT_INTACT;
}
