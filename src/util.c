/*-------------------------------------------------------------------------
 *
 * util.c
 *		Small helpers every module uses: caller checks, argument checks,
 *		SHA-256.
 *
 *		Caller checks use GetOuterUserId(): the role the client is acting as
 *		(its login, or what it SET ROLE to), which a SECURITY DEFINER
 *		function does not change.  Inside our SECURITY DEFINER functions
 *		GetUserId() is the extension owner, so it cannot be used for this.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "agentauth.h"

PG_FUNCTION_INFO_V1(aa_require_role_sql);

bool
aa_has_role(const char *role)
{
	Oid			roleid = get_role_oid(role, true);

	if (!OidIsValid(roleid))
		return false;
	return has_privs_of_role(GetOuterUserId(), roleid);
}

void
aa_require_role(const char *role)
{
	if (!aa_has_role(role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied: role \"%s\" is not a member of %s",
						GetUserNameFromId(GetOuterUserId(), false), role),
				 errhint("Grant %s to the role that calls this function.", role)));
}

/*
 * agentauth._require_role(role text): the caller check of our SQL-language
 * SECURITY DEFINER functions.
 */
Datum
aa_require_role_sql(PG_FUNCTION_ARGS)
{
	char	   *role;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("role must not be null")));
	role = text_to_cstring(PG_GETARG_TEXT_PP(0));
	aa_require_role(role);
	PG_RETURN_VOID();
}

/*
 * Fetch a text argument, refusing NULL (when required), empty strings and
 * input longer than maxlen characters.  Returns NULL for an allowed NULL.
 */
char *
aa_text_arg(FunctionCallInfo fcinfo, int argno, const char *what,
			bool required, int maxlen)
{
	char	   *s;
	int			len;

	if (PG_ARGISNULL(argno))
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", what)));
		return NULL;
	}
	s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	len = pg_mbstrlen(s);
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	if (len > maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is too long", what),
				 errdetail("It has %d characters; the limit is %d.", len, maxlen)));
	return s;
}

/*
 * SHA-256 with PostgreSQL's own implementation.  One context is created
 * per call here; the audit writer keeps its own for the hot path.
 */
void
aa_sha256(const unsigned char *data, size_t len, unsigned char *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, data, len) < 0 ||
		pg_cryptohash_final(ctx, out, PG_SHA256_DIGEST_LENGTH) < 0)
	{
		pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256")));
	}
	pg_cryptohash_free(ctx);
}

/*
 * Is the extension installed in this database, and are we in a state where
 * its catalogs can be read?
 */
bool
aa_extension_ready(void)
{
	if (!IsTransactionState())
		return false;
	if (creating_extension)
		return false;
	return OidIsValid(get_extension_oid("agentauth", true));
}

/*
 * The extension's own queries run as a superuser (or the table owner), in
 * the caller's backend, where the caller chose search_path.  Everything in
 * them is schema-qualified, but a type name is also looked up in pg_temp
 * when the path lists it first: a caller's domain pg_temp.text with a CHECK
 * calling the caller's function would run that function as the superuser.
 * So every such query runs with search_path pinned as our SECURITY DEFINER
 * functions pin it.  Returns the GUC nest level for aa_unpin_search_path();
 * an error in between is undone by (sub)transaction abort, like a
 * function's SET clause.
 */
int
aa_pin_search_path(void)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

void
aa_unpin_search_path(int nest)
{
	AtEOXact_GUC(true, nest);
}

PG_FUNCTION_INFO_V1(aa_check_install);

/*
 * agentauth._check_install(): run by the install script.  The extension
 * lives in exactly one database, agentauth.database, where its audit writer
 * works.
 */
Datum
aa_check_install(PG_FUNCTION_ARGS)
{
	const char *db = get_database_name(MyDatabaseId);

	if (db == NULL || aa_database == NULL || strcmp(db, aa_database) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentauth can only be installed in database \"%s\"",
						aa_database ? aa_database : ""),
				 errdetail("This is database \"%s\".", db ? db : "?"),
				 errhint("Set agentauth.database in postgresql.conf to the database that holds the protected tables, and restart the server.")));
	PG_RETURN_VOID();
}
