/*-------------------------------------------------------------------------
 *
 * util.c
 *		The helper layer every module shares: caller checks, argument
 *		checks, SHA-256, the action vocabulary, text arrays, jsonb objects
 *		of strings, and running the extension's own queries through SPI as
 *		a superuser with a pinned search_path.
 *
 *		Caller checks use GetOuterUserId(): the role the client is acting as
 *		(its login, or what it SET ROLE to), which a SECURITY DEFINER
 *		function does not change.  Inside our SECURITY DEFINER functions
 *		GetUserId() is the extension owner, so it cannot be used for this.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "catalog/pg_trigger.h"
#include "utils/fmgroids.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

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

/*
 * Above zero only while protected_schema.c protects a table made in a
 * protected schema, on behalf of the role that made it: the extension's
 * own call passes the agentauth_admin check of protect_table().
 */
int			aa_admin_on_behalf = 0;

void
aa_require_role(const char *role)
{
	if (aa_admin_on_behalf > 0 && strcmp(role, "agentauth_admin") == 0)
		return;
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

/*
 * A relation's name as the audit log records it: schema-qualified, each
 * part quoted only where SQL needs it -- whatever the session's
 * quote_all_identifiers (1.1, found by review: an agent's SET
 * quote_all_identifiers = on recorded "clinic"."labs", which the reports
 * that look a table up by name never matched).
 */
char *
aa_qualified_name(const char *nsp, const char *rel)
{
	bool		save = quote_all_identifiers;
	char	   *volatile name = NULL;

	quote_all_identifiers = false;
	PG_TRY();
	{
		name = quote_qualified_identifier(nsp, rel);
	}
	PG_FINALLY();
	{
		quote_all_identifiers = save;
	}
	PG_END_TRY();
	return name;
}

/*
 * Run fn(arg) in a subtransaction of its own.  On an error the
 * subtransaction is rolled back and the error returned (the caller frees
 * or rethrows it); NULL when fn returned.  The caller's memory context and
 * resource owner are as they were either way.
 */
ErrorData *
aa_in_subtransaction(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return edata;
}

/* does jsonb object d hold the string value at key? */
bool
aa_jsonb_says(Datum d, const char *key, const char *value)
{
	Jsonb	   *jb = DatumGetJsonbP(d);
	JsonbValue	k;
	JsonbValue *v;

	if (!JB_ROOT_IS_OBJECT(jb))
		return false;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
	return v != NULL && v->type == jbvString && v->val.string.len == strlen(value) &&
		memcmp(v->val.string.val, value, v->val.string.len) == 0;
}

/*
 * An instant as a record states it: ISO 8601 in UTC ("2026-12-07T08:00:00
 * +00:00" without the space), whatever the session's DateStyle and
 * TimeZone (1.1: purge_audit's record wrote its "before" in the caller's
 * DateStyle, where "07/12/2026" is July to one reader and December to
 * another).
 */
char *
aa_utc_text(TimestampTz t)
{
	static const int utc = 0;

	return JsonEncodeDateTime(NULL, TimestampTzGetDatum(t), TIMESTAMPTZOID, &utc);
}

/*
 * A background worker's settings, whatever ALTER DATABASE ... SET (which
 * the database's owner may run) or the server's configuration gave the
 * database: the worker's queries run as the bootstrap superuser, and what
 * they decide must not follow a setting someone else chose.  1.1, found by
 * review: a database owner's default_transaction_read_only = on made every
 * alert the writer raised fail, so no rule suspended an agent again; its
 * extra_float_digits changed the alerts' records.  search_path as the
 * SECURITY DEFINER functions pin it; the others at PostgreSQL's defaults,
 * TimeZone UTC.
 */
void
aa_worker_pin_settings(void)
{
	static const char *const pinned[][2] = {
		{"search_path", "pg_catalog, pg_temp"},
		{"default_transaction_read_only", "off"},
		{"default_transaction_isolation", "read committed"},
		{"default_transaction_deferrable", "off"},
		{"statement_timeout", "0"},
		{"lock_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
		{"gin_fuzzy_search_limit", "0"},
		{"standard_conforming_strings", "on"},
		{"transform_null_equals", "off"},
		{"array_nulls", "on"},
		{"extra_float_digits", "1"},
		{"DateStyle", "ISO, MDY"},
		{"IntervalStyle", "postgres"},
		{"TimeZone", "UTC"},
		{"bytea_output", "hex"},
		{"quote_all_identifiers", "off"},
		{"exit_on_error", "off"},
	};

	for (int i = 0; i < lengthof(pinned); i++)
		SetConfigOption(pinned[i][0], pinned[i][1], PGC_SUSET, PGC_S_OVERRIDE);
}

/* ---------------------------------------------------------------------
 * SPI as a superuser
 * ---------------------------------------------------------------------
 */

/*
 * The latest snapshot, for the extension's own queries.  In parallel mode
 * (the leader of a parallel plan, where the PARALLEL RESTRICTED row check
 * runs) GetLatestSnapshot() refuses, because the leader and its workers
 * must agree on the statement's snapshots.  These queries read only the
 * extension's tables, in the leader, for the leader: they take a snapshot
 * of their own there, as the catalog snapshot is taken in parallel mode,
 * and see what they would see in a serial plan.
 */
Snapshot
aa_latest_snapshot(void)
{
	static SnapshotData parallel_latest = {SNAPSHOT_MVCC};

	if (!IsInParallelMode())
		return GetLatestSnapshot();
	return GetSnapshotData(&parallel_latest);
}

/*
 * Run the extension's own queries as userid (aa_spi_begin: the bootstrap
 * superuser, who owns the extension's tables), whoever the caller is:
 * search_path pinned, SPI connected, and with latest_snapshot the latest
 * snapshot pushed for queries that read with the active snapshot.  The
 * security context adds SECURITY_LOCAL_USERID_CHANGE (the caller cannot
 * SET ROLE out of it) and SECURITY_RESTRICTED_OPERATION (no temporary
 * tables, PREPARE, LISTEN or other session state can be left behind by
 * code running with these rights), as a maintenance command does.
 *
 * aa_spi_end() undoes it in reverse order.  An error in between needs no
 * PG_TRY: the (sub)transaction abort closes SPI, pops the snapshot, resets
 * the user id and security context and undoes the GUC nest level, as it
 * does for a SECURITY DEFINER function.
 */
void
aa_spi_begin_as(AASpiState *st, Oid userid, bool latest_snapshot)
{
	GetUserIdAndSecContext(&st->save_userid, &st->save_sec);
	st->guc_nest = aa_pin_search_path();
	SetUserIdAndSecContext(userid,
						   st->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	st->snapshot_pushed = latest_snapshot;
	if (latest_snapshot)
		PushActiveSnapshot(aa_latest_snapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
aa_spi_begin(AASpiState *st, bool latest_snapshot)
{
	aa_spi_begin_as(st, BOOTSTRAP_SUPERUSERID, latest_snapshot);
}

void
aa_spi_end(AASpiState *st)
{
	SPI_finish();
	if (st->snapshot_pushed)
		PopActiveSnapshot();
	SetUserIdAndSecContext(st->save_userid, st->save_sec);
	aa_unpin_search_path(st->guc_nest);
}

/*
 * A plan prepared once per backend (SPI_keepplan) and cached in *cache.
 * SPI connected.
 */
SPIPlanPtr
aa_spi_keep_plan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*cache = p;
	}
	return *cache;
}

/*
 * Run a read-only plan on the latest snapshot, never the statement's or the
 * transaction's: a cursor, a prepared statement or a REPEATABLE READ
 * transaction must still see a revocation committed after it started.
 */
void
aa_spi_select_latest(SPIPlanPtr plan, Datum *values, const char *nulls,
					 long tcount)
{
	int			rc = SPI_execute_snapshot(plan, values, nulls,
										  aa_latest_snapshot(), InvalidSnapshot,
										  true, false, tcount);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "agentauth query failed: %s", SPI_result_code_string(rc));
}

Datum
aa_spi_first_value(int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);
}

/* ---------------------------------------------------------------------
 * The action vocabulary
 * ---------------------------------------------------------------------
 */

/* the name of each action, by index: bit AA_ACT_BIT(i) */
static const char *const action_names[AA_NACTIONS] = {
	"read", "insert", "update", "delete"
};

/*
 * The name of an action: one AA_ACT_* bit; any other mask is "write" (the
 * word of scopes and consent provisions for insert, update and delete).
 */
const char *
aa_action_name(int action)
{
	for (int i = 0; i < AA_NACTIONS; i++)
		if (action == AA_ACT_BIT(i))
			return action_names[i];
	return "write";
}

/*
 * Does the statement (a Query, with its subqueries, CTEs and sublinks) or
 * the expression call a function check says yes to -- directly, as an
 * operator's, a coercion's or an aggregate's?
 */
static bool
calls_walker(Node *node, void *check)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, (check_function_callback) check, NULL))
		return true;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, calls_walker, check, 0);
	return expression_tree_walker(node, calls_walker, check);
}

bool
aa_query_calls(Node *node, check_function_callback check)
{
	return calls_walker(node, (void *) check);
}

/* a RENAME of a relation, by whatever ALTER TABLE/INDEX/VIEW/... spelling */
bool
aa_renames_relation(RenameStmt *rs)
{
	return rs->relation != NULL &&
		(rs->renameType == OBJECT_TABLE || rs->renameType == OBJECT_INDEX ||
		 rs->renameType == OBJECT_VIEW || rs->renameType == OBJECT_MATVIEW ||
		 rs->renameType == OBJECT_FOREIGN_TABLE ||
		 rs->renameType == OBJECT_SEQUENCE);
}

/* is s one of the NULL-ended list's strings */
bool
aa_str_in_list(const char *s, const char *const *list)
{
	for (int i = 0; list[i] != NULL; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/*
 * The AA_ACT_* mask an action name stands for: read, insert, update,
 * delete, or write (the three write bits); 0 for anything else.  len is the
 * name's length, or -1 when it is NUL-terminated.
 */
int
aa_action_from_name(const char *name, int len)
{
	if (len < 0)
		len = strlen(name);
	if (len == 5 && strncmp(name, "write", 5) == 0)
		return AA_ACT_WRITE;
	for (int i = 0; i < AA_NACTIONS; i++)
		if (strlen(action_names[i]) == len &&
			strncmp(name, action_names[i], len) == 0)
			return AA_ACT_BIT(i);
	return 0;
}

/* ---------------------------------------------------------------------
 * Jsonb objects of strings
 * ---------------------------------------------------------------------
 */

/*
 * Build a jsonb object of strings and arrays of strings with the jsonb API.
 * With text, the same object is also written there as JSON text in the
 * order the keys were added (a jsonb orders its keys), for messages.
 */
void
aa_jsonb_begin(AAJsonbBuilder *b, StringInfo text)
{
	b->state = NULL;
	b->text = text;
	b->nkeys = 0;
	(void) pushJsonbValue(&b->state, WJB_BEGIN_OBJECT, NULL);
	if (text)
		appendStringInfoChar(text, '{');
}

static void
push_string(AAJsonbBuilder *b, JsonbIteratorToken tok, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	(void) pushJsonbValue(&b->state, tok, &v);
}

static void
add_key(AAJsonbBuilder *b, const char *key)
{
	push_string(b, WJB_KEY, key);
	if (b->text)
	{
		if (b->nkeys > 0)
			appendStringInfoString(b->text, ", ");
		escape_json(b->text, key);
		appendStringInfoString(b->text, ": ");
	}
	b->nkeys++;
}

void
aa_jsonb_add_string(AAJsonbBuilder *b, const char *key, const char *value)
{
	add_key(b, key);
	push_string(b, WJB_VALUE, value);
	if (b->text)
		escape_json(b->text, value);
}

/* key: an array of the C strings of values */
void
aa_jsonb_add_strings(AAJsonbBuilder *b, const char *key, List *values)
{
	ListCell   *lc;

	add_key(b, key);
	(void) pushJsonbValue(&b->state, WJB_BEGIN_ARRAY, NULL);
	if (b->text)
		appendStringInfoChar(b->text, '[');
	foreach(lc, values)
	{
		push_string(b, WJB_ELEM, lfirst(lc));
		if (b->text)
		{
			if (lc != list_head(values))
				appendStringInfoString(b->text, ", ");
			escape_json(b->text, lfirst(lc));
		}
	}
	(void) pushJsonbValue(&b->state, WJB_END_ARRAY, NULL);
	if (b->text)
		appendStringInfoChar(b->text, ']');
}

Jsonb *
aa_jsonb_end(AAJsonbBuilder *b)
{
	JsonbValue *res = pushJsonbValue(&b->state, WJB_END_OBJECT, NULL);

	if (b->text)
		appendStringInfoChar(b->text, '}');
	return JsonbValueToJsonb(res);
}

/* ---------------------------------------------------------------------
 * Text arrays
 * ---------------------------------------------------------------------
 */

/*
 * The elements of a text[] datum as palloc'd C strings (current memory
 * context), NULL elements left out.
 */
char	  **
aa_text_array_to_cstrings(Datum d, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	char	  **out;
	int			k = 0;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	out = palloc(sizeof(char *) * Max(nelems, 1));
	for (int i = 0; i < nelems; i++)
		if (!nulls[i])
			out[k++] = TextDatumGetCString(elems[i]);
	*n = k;
	return out;
}

/* a text[] datum of n C strings */
Datum
aa_cstrings_to_text_array(char **items, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(items[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* a palloc'd copy of a uuid, for a Datum that outlives its source */
pg_uuid_t *
aa_uuid_copy(const pg_uuid_t *u)
{
	pg_uuid_t  *c = palloc(sizeof(pg_uuid_t));

	memcpy(c, u, sizeof(pg_uuid_t));
	return c;
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

/*
 * The table a trigger belongs to, and whether it is internal (a foreign
 * key's); InvalidOid when there is no such trigger.
 */
Oid
aa_trigger_relation(Oid trigoid, bool *internal)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			relid = InvalidOid;

	if (internal)
		*internal = true;
	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(trigoid));
	scan = systable_beginscan(rel, TriggerOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		relid = ((Form_pg_trigger) GETSTRUCT(tup))->tgrelid;
		if (internal)
			*internal = ((Form_pg_trigger) GETSTRUCT(tup))->tgisinternal;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return relid;
}
