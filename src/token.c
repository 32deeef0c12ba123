/*-------------------------------------------------------------------------
 *
 * token.c
 *		Token secrets: generation, format check and hashing.
 *
 *		A secret is "aat_" followed by the base64url encoding, without
 *		padding, of 32 bytes from pg_strong_random(): 47 characters
 *		(PostgreSQL's base64 with its two URL-unsafe characters translated).
 *		The database stores only SHA-256 of the secret's text (the same value
 *		as pgcrypto's digest(secret, 'sha256')), so a copy of the database, a
 *		dump or a backup yields no usable token.
 *
 *		Also the small SQL doors the install script's SQL functions need:
 *		_has_role() and _bump_generation().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"
#include "common/sha2.h"
#include "utils/builtins.h"

#include "agentauth.h"

PG_FUNCTION_INFO_V1(aa_new_secret);
PG_FUNCTION_INFO_V1(aa_secret_hash);
PG_FUNCTION_INFO_V1(aa_has_role_sql);
PG_FUNCTION_INFO_V1(aa_bump_generation_sql);

#define SECRET_PREFIX		"aat_"
#define SECRET_BYTES		32		/* 256 bits */
#define SECRET_LEN		(4 + 43)	/* "aat_" + base64url(32 bytes) */
#define B64_LEN		44			/* base64 of SECRET_BYTES, with one '=' */
#define BODY_LEN	(SECRET_LEN - 4)

/*
 * base64url without padding is base64 with '-' for '+', '_' for '/' and the
 * trailing '=' left out: PostgreSQL's pg_b64_encode() and pg_b64_decode()
 * do the work, this file only translates.
 */
static void
secret_encode(const unsigned char *raw, char *body)
{
	char		b64[B64_LEN + 1];

	if (pg_b64_encode((const char *) raw, SECRET_BYTES, b64, B64_LEN) != B64_LEN)
		elog(ERROR, "could not encode a token secret");
	Assert(b64[B64_LEN - 1] == '=');
	for (int i = 0; i < BODY_LEN; i++)
		body[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	body[BODY_LEN] = '\0';
}

/*
 * Is s a well-formed secret?  Checks length, prefix and alphabet, and that
 * the unused low bits of the last character are zero (so each 32-byte value
 * has exactly one spelling): the body must decode to 32 bytes that encode
 * back to it.  Anything of the wrong length is refused before it is looked
 * at.
 */
bool
aa_secret_well_formed(const char *s, int len)
{
	const char *body;
	char		b64[B64_LEN];
	unsigned char raw[SECRET_BYTES + 2];
	char		again[BODY_LEN + 1];
	bool		ok = true;

	if (len != SECRET_LEN || strncmp(s, SECRET_PREFIX, 4) != 0)
		return false;
	body = s + 4;
	for (int i = 0; i < BODY_LEN; i++)
	{
		char		c = body[i];

		/* '+', '/' and '=' are base64's, not base64url's */
		if (c == '+' || c == '/' || c == '=')
			ok = false;
		b64[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	b64[B64_LEN - 1] = '=';
	if (!ok ||
		pg_b64_decode(b64, B64_LEN, (char *) raw, sizeof(raw)) != SECRET_BYTES)
		return false;
	secret_encode(raw, again);
	explicit_bzero(raw, sizeof(raw));
	return memcmp(again, body, BODY_LEN) == 0;
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
	unsigned char raw[SECRET_BYTES];
	char		out[SECRET_LEN + 1];

	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random token secret")));
	memcpy(out, SECRET_PREFIX, 4);
	secret_encode(raw, out + 4);
	Assert(strlen(out) == SECRET_LEN);
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
