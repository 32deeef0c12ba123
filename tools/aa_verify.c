/*-------------------------------------------------------------------------
 *
 * aa_verify.c
 *		The offline verifier of agentauth audit exports.
 *
 *		Reads the lines written by agentauth.export_audit() and, optionally,
 *		a digest kept outside the database (agentauth.audit_head()), and
 *		checks the hash chain with no database at all: every record is
 *		re-encoded from its fields in the canonical encoding, version 1
 *		(README, "The audit log"), hashed with SHA-256 after the previous
 *		record's hash, and compared.
 *
 *		This program is deliberately independent of the extension: plain C
 *		and libc, its own SHA-256 and its own JSON reader, written from the
 *		published encoding only, so a bug in the extension's chain code
 *		cannot hide itself here.
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

static void
sha256_block(sha256_ctx *c, const unsigned char *p)
{
	uint32_t	w[64];
	uint32_t	a, b, d, e, f, g, h, cc;
	int			i;

	for (i = 0; i < 16; i++)
		w[i] = ((uint32_t) p[4 * i] << 24) | ((uint32_t) p[4 * i + 1] << 16) |
			((uint32_t) p[4 * i + 2] << 8) | (uint32_t) p[4 * i + 3];
	for (i = 16; i < 64; i++)
	{
		uint32_t	s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t	s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = c->h[0];
	b = c->h[1];
	cc = c->h[2];
	d = c->h[3];
	e = c->h[4];
	f = c->h[5];
	g = c->h[6];
	h = c->h[7];
	for (i = 0; i < 64; i++)
	{
		uint32_t	S1 = ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25);
		uint32_t	ch = (e & f) ^ (~e & g);
		uint32_t	t1 = h + S1 + ch + sha256_k[i] + w[i];
		uint32_t	S0 = ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22);
		uint32_t	maj = (a & b) ^ (a & cc) ^ (b & cc);
		uint32_t	t2 = S0 + maj;

		h = g;
		g = f;
		f = e;
		e = d + t1;
		d = cc;
		cc = b;
		b = a;
		a = t1 + t2;
	}
	c->h[0] += a;
	c->h[1] += b;
	c->h[2] += cc;
	c->h[3] += d;
	c->h[4] += e;
	c->h[5] += f;
	c->h[6] += g;
	c->h[7] += h;
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
	while (n > 0)
	{
		size_t		take;

		if (c->nbuf == 0 && n >= 64)
		{
			sha256_block(c, p);
			p += 64;
			n -= 64;
			continue;
		}
		take = 64 - c->nbuf;
		if (take > n)
			take = n;
		memcpy(c->buf + c->nbuf, p, take);
		c->nbuf += take;
		p += take;
		n -= take;
		if (c->nbuf == 64)
		{
			sha256_block(c, c->buf);
			c->nbuf = 0;
		}
	}
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
} jval;

typedef struct
{
	const char *p;
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

static void
jfree(jval *v)
{
	size_t		k;

	if (v->type == J_STR)
		free(v->s);
	if (v->type == J_ARR || v->type == J_OBJ)
	{
		for (k = 0; k < v->n; k++)
		{
			jfree(&v->items[k]);
			if (v->type == J_OBJ)
				free(v->keys[k]);
		}
		free(v->items);
		free(v->keys);
	}
	memset(v, 0, sizeof(*v));
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
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

static bool
jparse_string(jparser *jp, char **out, size_t *outlen)
{
	/* the decoded string is never longer than its JSON form */
	const char *q = jp->p + 1;
	char	   *buf;
	size_t		len = 0;

	while (q < jp->end && *q != '"')
		q += (*q == '\\' && q + 1 < jp->end) ? 2 : 1;
	buf = xrealloc(NULL, (size_t) (q - jp->p) + 1);

	jp->p++;					/* opening quote */
	for (;;)
	{
		unsigned char c;

		if (jp->p >= jp->end)
		{
			free(buf);
			return jfail(jp, "unterminated string");
		}
		c = (unsigned char) *jp->p++;
		if (c == '"')
			break;
		if (c < 0x20)
		{
			free(buf);
			return jfail(jp, "control character in string");
		}
		if (c != '\\')
		{
			buf[len++] = (char) c;
			continue;
		}
		if (jp->p >= jp->end)
		{
			free(buf);
			return jfail(jp, "unterminated escape");
		}
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
					unsigned	cp,
								lo;

					if (!jread_hex4(jp, &cp))
					{
						free(buf);
						return false;
					}
					if (cp >= 0xD800 && cp <= 0xDBFF)
					{
						if (jp->end - jp->p < 6 || jp->p[0] != '\\' || jp->p[1] != 'u')
						{
							free(buf);
							return jfail(jp, "lone surrogate in \\u escape");
						}
						jp->p += 2;
						if (!jread_hex4(jp, &lo))
						{
							free(buf);
							return false;
						}
						if (lo < 0xDC00 || lo > 0xDFFF)
						{
							free(buf);
							return jfail(jp, "bad surrogate pair in \\u escape");
						}
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					}
					else if (cp >= 0xDC00 && cp <= 0xDFFF)
					{
						free(buf);
						return jfail(jp, "lone surrogate in \\u escape");
					}
					if (cp == 0)
					{
						free(buf);
						return jfail(jp, "\\u0000 cannot be part of a text value");
					}
					put_utf8(buf, &len, cp);
					break;
				}
			default:
				free(buf);
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
						{
							free(key);
							return jfail(jp, "expected ':'");
						}
						jp->p++;
					}
					if (v->n == v->cap)
					{
						v->cap = v->cap ? v->cap * 2 : 8;
						v->items = xrealloc(v->items, v->cap * sizeof(jval));
						if (obj)
							v->keys = xrealloc(v->keys, v->cap * sizeof(char *));
					}
					if (obj)
						v->keys[v->n] = key;
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

/* parse one whole line as a JSON object; on failure err says why */
static bool
jparse_line(const char *line, size_t len, jval *v, char *err, size_t errlen)
{
	jparser		jp;

	jp.p = line;
	jp.end = line + len;
	jp.err[0] = '\0';
	if (!jparse_value(&jp, v, 0))
	{
		snprintf(err, errlen, "not valid JSON: %s", jp.err);
		jfree(v);
		return false;
	}
	jskip_ws(&jp);
	if (jp.p != jp.end)
	{
		snprintf(err, errlen, "not valid JSON: text after the object");
		jfree(v);
		return false;
	}
	if (v->type != J_OBJ)
	{
		snprintf(err, errlen, "not a JSON object");
		jfree(v);
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
		if (strcmp(obj->keys[k], key) == 0)
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
bb_put(bytebuf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap)
	{
		b->cap = (b->len + n) * 2 + 256;
		b->data = xrealloc(b->data, b->cap);
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void
bb_byte(bytebuf *b, unsigned char c)
{
	bb_put(b, &c, 1);
}

static void
bb_be(bytebuf *b, uint64_t v, int nbytes)
{
	int			k;

	for (k = nbytes - 1; k >= 0; k--)
		bb_byte(b, (unsigned char) (v >> (8 * k)));
}

/* kinds of fields: the column types of agentauth.audit_log */
#define K_BIGINT	'i'
#define K_TSTZ		'T'
#define K_UUID		'u'
#define K_TEXT		't'
#define K_JSONB		'j'
#define K_TEXTARR	'A'
#define K_UUIDARR	'U'

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

/*
 * The slot of a record member: 0..NFIELDS-1 the fields, then prev_hash and
 * row_hash; -1 for anything else.  hint: where the export puts it.
 */
static int
member_index(const char *key, size_t hint)
{
	size_t		k;

	if (hint < NFIELDS && strcmp(key, record_fields[hint].name) == 0)
		return (int) hint;
	for (k = 0; k < NFIELDS; k++)
		if (strcmp(key, record_fields[k].name) == 0)
			return (int) k;
	if (strcmp(key, "prev_hash") == 0)
		return NFIELDS;
	if (strcmp(key, "row_hash") == 0)
		return NFIELDS + 1;
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
	bb_byte(b, (unsigned char) tag);
	bb_be(b, (uint64_t) v->slen, 4);
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
			bb_byte(b, (unsigned char) (kind == K_BIGINT ? 'i' : 'T'));
			bb_be(b, (uint64_t) v->i, 8);
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
			if (v->type != J_ARR || v->n > UINT32_MAX)
				break;
			bb_byte(b, 'a');
			bb_be(b, (uint64_t) v->n, 4);
			for (k = 0; k < v->n; k++)
			{
				const jval *e = &v->items[k];

				if (e->type == J_NULL)
					bb_byte(b, 0x00);
				else if (e->type == J_STR && kind == K_TEXTARR)
					encode_text(b, 't', e);
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
	jfree(&d);
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
	jval	   *slot[NFIELDS + 2];
	int64_t		purge_seq = 0;
	unsigned char purge_hash[32];
	int64_t		anchor_confirmed_by = 0;
	char		err[256];
	char		hx[65];
	int			i;

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
				jfree(&obj);
				return fail(1, lineno, "the first line is not an agentauth export header");
			}
			if (ver->i != 1)
			{
				fprintf(stderr, "aa_verify: export format version %" PRId64 " is not supported (this program reads version 1)\n", ver->i);
				return EXIT_USAGE;
			}
			if (fs->i < 1 || !parse_hash(an->s, an->slen, anchor))
			{
				jfree(&obj);
				return fail(1, lineno, "bad header: first_seq or anchor malformed");
			}
			first_seq = expect = fs->i;
			memcpy(prev, anchor, 32);
			if (first_seq == 1)
			{
				static const unsigned char zero[32];

				if (memcmp(anchor, zero, 32) != 0)
				{
					jfree(&obj);
					return fail(1, lineno, "the anchor of seq 1 must be 32 zero bytes");
				}
			}
			have_header = true;
			jfree(&obj);
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
				jfree(&obj);
				return fail(expect, lineno, "malformed end line");
			}
			if (ls->i > expect - 1)
			{
				jfree(&obj);
				return fail(expect, lineno, "records %" PRId64 "..%" PRId64 " are missing before the end line",
							expect, ls->i);
			}
			if (rc->i != count || ls->i != expect - 1 || memcmp(head, prev, 32) != 0)
			{
				jfree(&obj);
				return fail(expect, lineno, "the end line does not match the records (%" PRId64 " records, last seq %" PRId64 ")",
							count, expect - 1);
			}
			have_end = true;
			jfree(&obj);
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
			int			k = member_index(obj.keys[f], f);

			if (k < 0 || slot[k] != NULL)
			{
				char		msg[200];

				snprintf(msg, sizeof(msg), "member \"%.100s\" %s", obj.keys[f],
						 k < 0 ? "is not part of a record" : "occurs twice");
				jfree(&obj);
				return fail(expect, lineno, "%s", msg);
			}
			slot[k] = &obj.items[f];
		}
		v = slot[0];
		if (v == NULL || v->type != J_INT)
		{
			jfree(&obj);
			return fail(expect, lineno, "record without a seq");
		}
		if (v->i != expect)
		{
			int64_t		s = v->i;

			jfree(&obj);
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
				jfree(&obj);
				return fail(expect, lineno, "field \"%s\" is missing", record_fields[f].name);
			}
			if (!encode_field(&enc, record_fields[f].name, record_fields[f].kind, v,
							  err, sizeof(err)))
			{
				jfree(&obj);
				return fail(expect, lineno, "%s", err);
			}
		}
		v = slot[NFIELDS];
		if (v == NULL || v->type != J_STR || !parse_hash(v->s, v->slen, stored_prev))
		{
			jfree(&obj);
			return fail(expect, lineno, "prev_hash is missing or not 64 hex digits");
		}
		v = slot[NFIELDS + 1];
		if (v == NULL || v->type != J_STR || !parse_hash(v->s, v->slen, stored_row))
		{
			jfree(&obj);
			return fail(expect, lineno, "row_hash is missing or not 64 hex digits");
		}
		/* a purge record names the anchor of what it kept: remember it */
		v = slot[2];				/* event */
		is_purge = (v->type == J_STR && strcmp(v->s, "audit_purged") == 0);
		if (is_purge)
			is_purge = purge_anchor(slot[20], &purge_seq, purge_hash);	/* detail */
		jfree(&obj);

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
			if (dg.digest_has_seq && dg.digest_seq == expect)
			{
				if (memcmp(computed, dg.digest, 32) != 0)
					return fail(expect, lineno, "record %" PRId64 " does not match the digest", expect);
				dg.digest_matched = true;
				dg.digest_matched_seq = expect;
			}
			else if (!dg.digest_has_seq && memcmp(computed, dg.digest, 32) == 0)
			{
				dg.digest_matched = true;
				dg.digest_matched_seq = expect;
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
		expect++;
		count++;
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
