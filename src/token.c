/*-------------------------------------------------------------------------
 *
 * token.c
 *		Token secrets: generation, format check and hashing.
 *
 *		A secret is "aat_" followed by the base64url encoding, without
 *		padding, of 32 bytes from pg_strong_random(): 47 characters.  The
 *		database stores only SHA-256 of the secret's text (the same value as
 *		pgcrypto's digest(secret, 'sha256')), so a copy of the database, a
 *		dump or a backup yields no usable token.
 *
 *		Also the small SQL doors the install script's SQL functions need:
 *		_has_role() and _bump_generation().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/sha2.h"
#include "utils/builtins.h"

#include "agentauth.h"

PG_FUNCTION_INFO_V1(aa_new_secret);
PG_FUNCTION_INFO_V1(aa_secret_hash);
PG_FUNCTION_INFO_V1(aa_has_role_sql);
PG_FUNCTION_INFO_V1(aa_bump_generation_sql);

static const char b64url[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/*
 * Encode len bytes as base64url without padding into out (NUL-terminated);
 * out must hold (len * 4 + 2) / 3 + 1 bytes.
 */
static void
base64url_encode(const unsigned char *in, int len, char *out)
{
	int			i;
	char	   *p = out;

	for (i = 0; i + 2 < len; i += 3)
	{
		uint32		v = (in[i] << 16) | (in[i + 1] << 8) | in[i + 2];

		*p++ = b64url[(v >> 18) & 63];
		*p++ = b64url[(v >> 12) & 63];
		*p++ = b64url[(v >> 6) & 63];
		*p++ = b64url[v & 63];
	}
	if (len - i == 1)
	{
		uint32		v = in[i] << 16;

		*p++ = b64url[(v >> 18) & 63];
		*p++ = b64url[(v >> 12) & 63];
	}
	else if (len - i == 2)
	{
		uint32		v = (in[i] << 16) | (in[i + 1] << 8);

		*p++ = b64url[(v >> 18) & 63];
		*p++ = b64url[(v >> 12) & 63];
		*p++ = b64url[(v >> 6) & 63];
	}
	*p = '\0';
}

/*
 * Is s a well-formed secret?  Checks length, prefix and alphabet, and that
 * the unused low bits of the last character are zero (so each 32-byte value
 * has exactly one spelling).  Constant work for every input of the right
 * length; anything else is refused before it is looked at.
 */
bool
aa_secret_well_formed(const char *s, int len)
{
	const char *body;
	bool		ok = true;

	if (len != AA_SECRET_LEN || strncmp(s, AA_SECRET_PREFIX, 4) != 0)
		return false;
	body = s + 4;
	for (int i = 0; i < AA_SECRET_LEN - 4; i++)
	{
		char		c = body[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_'))
			ok = false;
	}
	if (ok)
	{
		/* 32 bytes = 42 characters + one carrying 4 bits and 2 zero bits */
		const char *pos = strchr(b64url, body[AA_SECRET_LEN - 5]);

		if (pos == NULL || ((pos - b64url) & 3) != 0)
			ok = false;
	}
	return ok;
}

/* SHA-256 of the secret's text */
void
aa_secret_digest(const char *s, int len, unsigned char *out)
{
	aa_sha256((const unsigned char *) s, len, out);
}

/*
 * agentauth._new_secret() RETURNS text
 */
Datum
aa_new_secret(PG_FUNCTION_ARGS)
{
	unsigned char raw[AA_SECRET_BYTES];
	char		out[AA_SECRET_LEN + 1];

	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random token secret")));
	memcpy(out, AA_SECRET_PREFIX, 4);
	base64url_encode(raw, sizeof(raw), out + 4);
	Assert(strlen(out) == AA_SECRET_LEN);
	explicit_bzero(raw, sizeof(raw));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * agentauth._secret_hash(secret text) RETURNS bytea
 */
Datum
aa_secret_hash(PG_FUNCTION_ARGS)
{
	text	   *secret = PG_GETARG_TEXT_PP(0);
	bytea	   *result = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);

	aa_secret_digest(VARDATA_ANY(secret), VARSIZE_ANY_EXHDR(secret),
					 (unsigned char *) VARDATA(result));
	SET_VARSIZE(result, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	PG_RETURN_BYTEA_P(result);
}

/*
 * agentauth._has_role(role text) RETURNS boolean: is the calling role
 * (GetOuterUserId(), unchanged by SECURITY DEFINER) a member of role?
 */
Datum
aa_has_role_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(aa_has_role(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

/*
 * agentauth._bump_generation() RETURNS void
 */
Datum
aa_bump_generation_sql(PG_FUNCTION_ARGS)
{
	aa_generation_bump_at_commit();
	PG_RETURN_VOID();
}
