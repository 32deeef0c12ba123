/*-------------------------------------------------------------------------
 *
 * audit_guard.c
 *		Append-only protection of agentauth.audit_log (SPEC 10.5, 10.11).
 *
 *		Three layers, each for every role, superuser included:
 *		- the statement trigger function _audit_log_guard(), installed
 *		  ENABLE ALWAYS (session_replication_role cannot switch it off),
 *		  refuses INSERT, UPDATE, DELETE and TRUNCATE.  The audit writer
 *		  inserts below the executor and never fires it; purge_audit()
 *		  deletes with a flag only its own C code sets.
 *		- before a utility statement (aa_audit_guard_check): TRUNCATE,
 *		  ALTER (disabling the triggers, renaming, moving, changing
 *		  columns), CREATE TRIGGER and CREATE RULE on the log and its
 *		  indexes, replacing or altering the guard function, ALTER
 *		  EXTENSION agentauth DROP <member>, and DROP EXTENSION agentauth
 *		  unless the server was started with agentauth.allow_uninstall = on
 *		  are refused.
 *		- before a drop (aa_audit_guard_drop): the log, its indexes and
 *		  triggers, the guard function, the schema and the extension cannot
 *		  be dropped by any route (DROP ... CASCADE of something they depend
 *		  on, DROP OWNED); utility.c skips this while an allowed DROP
 *		  EXTENSION agentauth is under way.  An index that is not valid
 *		  may go: the old copy REINDEX CONCURRENTLY drops at its end, or
 *		  one a failed REINDEX CONCURRENTLY left behind.
 *		The extension's own install and upgrade scripts are let through
 *		(aa_schema_guarded says so for the rest of the schema's guard,
 *		schema_guard.c, and label.c).
 *
 *		The one way records leave the log is agentauth.purge_audit(), here
 *		too: it removes a prefix of the chain older than
 *		agentauth.audit_retention and records where it cut it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_index.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "agentauth.h"

#define GUARD_FUNCTION	"_audit_log_guard"

/* purge_audit() is deleting: the statement trigger lets it */
static bool audit_purging = false;

/* the protected objects of this database (InvalidOid when not installed) */
typedef struct Protected
{
	Oid			extension;
	Oid			nsp;
	Oid			log;			/* agentauth.audit_record, the stored log */
	Oid			views[2];		/* agentauth.audit_log, _audit_entries */
	Oid			guard;
} Protected;

static Protected
protected_objects(void)
{
	Protected	p = {InvalidOid, InvalidOid, InvalidOid, {InvalidOid, InvalidOid}, InvalidOid};

	if (!IsTransactionState())
		return p;
	p.extension = get_extension_oid("agentauth", true);
	if (!OidIsValid(p.extension))
		return p;
	p.nsp = get_namespace_oid(AA_SCHEMA, true);
	if (!OidIsValid(p.nsp))
		return p;
	p.log = get_relname_relid("audit_record", p.nsp);
	p.views[0] = get_relname_relid("audit_log", p.nsp);
	p.views[1] = get_relname_relid("_audit_entries", p.nsp);
	{
		List	   *name = list_make2(makeString(AA_SCHEMA), makeString(GUARD_FUNCTION));

		p.guard = LookupFuncName(name, 0, NULL, true);
	}
	return p;
}

/* our own install or upgrade script is running */
static bool
in_own_script(const Protected *p)
{
	return creating_extension && OidIsValid(p->extension) &&
		CurrentExtensionObject == p->extension;
}

/*
 * Does agentauth guard its schema now: is it installed, and is none of its
 * own scripts running?  *nsp: the schema (schema_guard.c, label.c).
 */
bool
aa_schema_guarded(Oid *nsp)
{
	Protected	p = protected_objects();

	*nsp = p.nsp;
	return OidIsValid(p.nsp) && !in_own_script(&p);
}

static void
refuse(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s is not allowed: agentauth.audit_log is append-only", what),
			 errdetail("The audit log and its protection cannot be changed or removed by any role."),
			 errhint("Old records are removed with agentauth.purge_audit() once they are older than agentauth.audit_retention.")));
}

/* is relid the log, one of its indexes, or a view that shows it? */
static bool
is_log_relation(const Protected *p, Oid relid)
{
	if (!OidIsValid(relid) || !OidIsValid(p->log))
		return false;
	if (relid == p->log || relid == p->views[0] || relid == p->views[1])
		return true;
	if (get_rel_relkind(relid) == RELKIND_INDEX)
		return IndexGetRelation(relid, true) == p->log;
	return false;
}

static bool
rangevar_is_log(const Protected *p, RangeVar *rv)
{
	if (rv == NULL || !OidIsValid(p->log))
		return false;
	return is_log_relation(p, RangeVarGetRelid(rv, NoLock, true));
}

/*
 * VACUUM FULL rewrites a table under an ACCESS EXCLUSIVE lock: of the log,
 * it stops the writer for as long as the rewrite -- or its wait behind an
 * open reader -- lasts, and every audited statement of the cluster fails
 * closed.  PostgreSQL lets the database's owner vacuum every table of it
 * (1.1: a non-superuser could stall the log).  Refused to anyone but a
 * superuser, named or database-wide; plain VACUUM takes no such lock.
 */
static void
refuse_vacuum_full(const Protected *p, VacuumStmt *v)
{
	bool		full = false;
	ListCell   *lc;

	if (!v->is_vacuumcmd || superuser())
		return;
	foreach(lc, v->options)
	{
		DefElem    *opt = lfirst_node(DefElem, lc);

		if (strcmp(opt->defname, "full") == 0)
			full = defGetBoolean(opt);
	}
	if (!full)
		return;
	if (v->rels != NIL)
	{
		bool		names_log = false;

		foreach(lc, v->rels)
			if (rangevar_is_log(p, lfirst_node(VacuumRelation, lc)->relation))
				names_log = true;
		if (!names_log)
			return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("VACUUM FULL of agentauth.audit_log is not allowed"),
			 errdetail("It would stop the audit writer while it runs, and every audited statement would fail closed."),
			 errhint("%s", v->rels == NIL ?
					 "Name the tables to vacuum with FULL; a superuser may rewrite the log." :
					 "Plain VACUUM keeps the log in shape; a superuser may rewrite it.")));
}

/*
 * Does the statement name the guard function?  Looked up as the statement
 * names it (FUNCTION, PROCEDURE or ROUTINE): a lookup as a function would
 * refuse every ALTER PROCEDURE with "is not a function".
 */
static bool
func_is_guard(const Protected *p, ObjectType objtype, ObjectWithArgs *func)
{
	if (func == NULL || !OidIsValid(p->guard))
		return false;
	if (objtype != OBJECT_FUNCTION && objtype != OBJECT_ROUTINE)
		return false;			/* a procedure is not the guard */
	return LookupFuncWithArgs(objtype, func, true) == p->guard;
}

/*
 * A utility statement is about to run: refuse it when it would change or
 * remove the audit log or its protection.  Called by the one ProcessUtility
 * hook (utility.c).
 */
void
aa_audit_guard_check(Node *stmt)
{
	Protected	p;

	switch (nodeTag(stmt))
	{
		case T_DropStmt:
			{
				DropStmt   *d = (DropStmt *) stmt;
				ListCell   *lc;

				if (d->removeType != OBJECT_EXTENSION)
					return;
				foreach(lc, d->objects)
				{
					if (strcmp(strVal(lfirst(lc)), "agentauth") == 0 &&
						!aa_allow_uninstall)
						ereport(ERROR,
								(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
								 errmsg("DROP EXTENSION agentauth is not allowed"),
								 errdetail("Dropping the extension would destroy the audit log."),
								 errhint("Start the server with agentauth.allow_uninstall = on in postgresql.conf to uninstall it.")));
				}
				return;
			}
		case T_TruncateStmt:
		case T_AlterTableStmt:
		case T_RenameStmt:
		case T_AlterObjectSchemaStmt:
		case T_CreateTrigStmt:
		case T_RuleStmt:
		case T_ViewStmt:
		case T_CreateFunctionStmt:
		case T_AlterFunctionStmt:
		case T_AlterExtensionContentsStmt:
		case T_VacuumStmt:
			break;
		default:
			return;
	}

	p = protected_objects();
	if (!OidIsValid(p.log) || in_own_script(&p))
		return;

	switch (nodeTag(stmt))
	{
		case T_TruncateStmt:
			{
				ListCell   *lc;

				foreach(lc, ((TruncateStmt *) stmt)->relations)
					if (rangevar_is_log(&p, lfirst_node(RangeVar, lc)))
						refuse("TRUNCATE");
				break;
			}
		case T_AlterTableStmt:
			if (rangevar_is_log(&p, ((AlterTableStmt *) stmt)->relation))
				refuse("ALTER");
			break;
		case T_RenameStmt:
			{
				RenameStmt *r = (RenameStmt *) stmt;

				if (rangevar_is_log(&p, r->relation))
					refuse("ALTER");
				if (r->renameType == OBJECT_SCHEMA &&
					strcmp(r->subname, AA_SCHEMA) == 0)
					refuse("ALTER SCHEMA");
				if (func_is_guard(&p, r->renameType, (ObjectWithArgs *) r->object))
					refuse("ALTER FUNCTION");
				break;
			}
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *a = (AlterObjectSchemaStmt *) stmt;

				if (rangevar_is_log(&p, a->relation))
					refuse("ALTER");
				if (func_is_guard(&p, a->objectType, (ObjectWithArgs *) a->object))
					refuse("ALTER FUNCTION");
				break;
			}
		case T_CreateTrigStmt:
			if (rangevar_is_log(&p, ((CreateTrigStmt *) stmt)->relation))
				refuse("CREATE TRIGGER");
			break;
		case T_RuleStmt:
			if (rangevar_is_log(&p, ((RuleStmt *) stmt)->relation))
				refuse("CREATE RULE");
			break;
		case T_ViewStmt:
			/* CREATE OR REPLACE VIEW agentauth.audit_log AS <fewer rows> */
			if (rangevar_is_log(&p, ((ViewStmt *) stmt)->view))
				refuse("CREATE OR REPLACE VIEW");
			break;
		case T_CreateFunctionStmt:
			{
				CreateFunctionStmt *c = (CreateFunctionStmt *) stmt;
				char	   *fname;
				Oid			nsp;

				if (!c->replace)
					break;
				nsp = QualifiedNameGetCreationNamespace(c->funcname, &fname);
				if (nsp == p.nsp && strcmp(fname, GUARD_FUNCTION) == 0)
					refuse("CREATE OR REPLACE FUNCTION");
				break;
			}
		case T_AlterFunctionStmt:
			if (func_is_guard(&p, ((AlterFunctionStmt *) stmt)->objtype,
							  ((AlterFunctionStmt *) stmt)->func))
				refuse("ALTER FUNCTION");
			break;
		case T_VacuumStmt:
			refuse_vacuum_full(&p, (VacuumStmt *) stmt);
			break;
		case T_AlterExtensionContentsStmt:
			{
				AlterExtensionContentsStmt *a = (AlterExtensionContentsStmt *) stmt;

				if (a->action < 0 && strcmp(a->extname, "agentauth") == 0 &&
					!aa_allow_uninstall)
					refuse("ALTER EXTENSION agentauth DROP");
				break;
			}
		default:
			break;
	}
}

/*
 * An index that is not valid: one that REINDEX CONCURRENTLY has replaced
 * and drops at its end, or left behind when it failed.  No query or
 * constraint uses it, so dropping it changes neither records nor their
 * protection.
 */
static bool
index_invalid(Oid relid)
{
	HeapTuple	tup;
	bool		invalid = false;

	if (get_rel_relkind(relid) != RELKIND_INDEX)
		return false;
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(relid));
	if (HeapTupleIsValid(tup))
	{
		invalid = !((Form_pg_index) GETSTRUCT(tup))->indisvalid;
		ReleaseSysCache(tup);
	}
	return invalid;
}

/*
 * An object is about to be dropped: refuse it when it is a part of the audit
 * log's protection.  Returns whether agentauth guards drops in this database
 * now -- false when it is not installed, or its own script runs -- for the
 * other drop checks of the object-access hook (utility.c), which calls this
 * unless an allowed DROP EXTENSION agentauth is under way.
 */
bool
aa_audit_guard_drop(Oid classId, Oid objectId)
{
	Protected	p;

	if (classId != RelationRelationId && classId != TriggerRelationId &&
		classId != ProcedureRelationId && classId != NamespaceRelationId &&
		classId != ExtensionRelationId)
		return false;

	p = protected_objects();
	if (!OidIsValid(p.extension) || in_own_script(&p))
		return false;
	if (classId == ExtensionRelationId && objectId == p.extension)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("dropping extension agentauth is not allowed"),
				 errdetail("Dropping the extension would destroy the audit log."),
				 errhint("Start the server with agentauth.allow_uninstall = on in postgresql.conf to uninstall it.")));
	if (classId == NamespaceRelationId && objectId == p.nsp)
		refuse("DROP SCHEMA agentauth");
	if (classId == RelationRelationId && is_log_relation(&p, objectId) &&
		!index_invalid(objectId))
		refuse("DROP");
	if (classId == TriggerRelationId && OidIsValid(p.log) &&
		aa_trigger_relation(objectId, NULL) == p.log)
		refuse("DROP TRIGGER");
	if (classId == ProcedureRelationId && objectId == p.guard)
		refuse("DROP FUNCTION");
	return true;
}

PG_FUNCTION_INFO_V1(aa_audit_log_guard);

/*
 * The statement trigger of agentauth.audit_log: nothing but the writer adds
 * records, and nothing but purge_audit() removes them.
 */
Datum
aa_audit_log_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	const char *op;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_audit_log_guard() must be called as a trigger")));
	td = (TriggerData *) fcinfo->context;

	if (TRIGGER_FIRED_BY_DELETE(td->tg_event) && audit_purging)
		return PointerGetDatum(NULL);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		op = "INSERT";
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		op = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		op = "DELETE";
	else
		op = "TRUNCATE";
	if (strcmp(RelationGetRelationName(td->tg_relation), "_audit_spill") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s is not allowed: agentauth._audit_spill holds committed audit records on their way to the log", op),
				 errdetail("Only the extension writes it, for any role.")));
	refuse(op);
	return PointerGetDatum(NULL);
}

/* ------------------------------------------------------------------
 * Retention: the one way records leave the log, cutting the chain
 * ------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(aa_purge_audit);

/*
 * agentauth.purge_audit(before timestamptz) RETURNS bigint
 *
 * Removes the records logged before `before`, which must itself be older
 * than agentauth.audit_retention, and records audit_purged (when the
 * transaction commits) with the cut: the first seq kept and the row_hash
 * of the record before it, from which both verifiers continue.  logged_at
 * grows with seq, so the removed records are a prefix of the chain; the
 * newest record is always kept, so the writer can always find the head.
 * Privacy officers only.  Returns the number of records removed.
 */
Datum
aa_purge_audit(PG_FUNCTION_ARGS)
{
	TimestampTz before;
	TimestampTz oldest_allowed;
	Oid			relid;
	Oid			argtypes[1] = {TIMESTAMPTZOID};
	Datum		args[1];
	volatile int64 first_seq;
	volatile int64 last_seq;
	volatile int64 cut_seq;
	int64		removed = 0;
	char		cut_hex[AA_HASH_LEN * 2 + 1];
	bool		isnull;
	int			ret;
	AARecord	rec;
	StringInfoData detail;
	AASpiState	spi;
	Oid			owner;
	Oid			feed_rel;

	aa_require_role("agentauth_privacy_officer");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("before must not be null")));
	before = PG_GETARG_TIMESTAMPTZ(0);
	oldest_allowed = GetCurrentTransactionStartTimestamp() -
		(TimestampTz) aa_audit_retention * USECS_PER_SEC;
	/* -infinity is older than every record: it removes none, on the record (1.1: refused) */
	if (!TIMESTAMP_IS_NOBEGIN(before) &&
		(TIMESTAMP_NOT_FINITE(before) || before > oldest_allowed))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit records younger than agentauth.audit_retention cannot be removed"),
				 errdetail("before must be no later than %s.", timestamptz_to_str(oldest_allowed)),
				 errhint("agentauth.audit_retention is set in postgresql.conf.")));

	relid = get_relname_relid("audit_record", get_namespace_oid(AA_SCHEMA, false));
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("agentauth.audit_record does not exist")));
	/* one purge at a time; the writer's inserts go on */
	LockRelationOid(relid, ShareUpdateExclusiveLock);

	/* the caller is a privacy officer, checked; the table is the extension's */
	{
		Relation	rel = table_open(relid, NoLock);

		owner = rel->rd_rel->relowner;
		table_close(rel, NoLock);
	}
	aa_spi_begin_as(&spi, owner, false);
	/* rows: records and units; a unit is kept or removed whole */
	ret = SPI_execute("SELECT pg_catalog.min(seq), pg_catalog.max(seq) FROM agentauth.audit_record",
					  true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the audit log");
	first_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
	{
		aa_spi_end(&spi);
		PG_RETURN_INT64(0);
	}
	last_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	args[0] = TimestampTzGetDatum(before);
	ret = SPI_execute_with_args("SELECT pg_catalog.min(seq) FROM agentauth.audit_record"
								" WHERE logged_at OPERATOR(pg_catalog.>=) $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the audit log");
	cut_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull || cut_seq > last_seq)
		cut_seq = last_seq;		/* keep the head */
	if (cut_seq < first_seq)
		cut_seq = first_seq;

	/* the hash the first record kept links to */
	args[0] = Int64GetDatum(cut_seq);
	argtypes[0] = INT8OID;
	ret = SPI_execute_with_args("SELECT pg_catalog.encode(prev_hash, 'hex') FROM agentauth.audit_record"
								" WHERE seq OPERATOR(pg_catalog.=) $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the audit log has no record " INT64_FORMAT, cut_seq),
				 errhint("Run agentauth.verify_audit().")));
	{
		char	   *h = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		strlcpy(cut_hex, h ? h : "", sizeof(cut_hex));
	}

	/*
	 * No record a feed to the audit repository has still to send (1.1: a
	 * purge removed them, and the repository never got them).  A feed
	 * reports what it delivered (feed_delivered); one that is gone is
	 * dropped by a privacy officer, on the record (drop_audit_feed).
	 */
	feed_rel = get_relname_relid("audit_feed", get_namespace_oid(AA_SCHEMA, false));
	if (cut_seq > first_seq && OidIsValid(feed_rel))
	{
		/*
		 * (The table is 1.1's: an extension not yet updated has none.)  The
		 * positions as they are now: no report moves one until this purge
		 * ends (a report writes the table), and the query below reads with
		 * a snapshot of its own -- a REPEATABLE READ purge is refused, as
		 * it would read them as its transaction began.
		 */
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("purge_audit runs only at READ COMMITTED"),
					 errdetail("It must see the feeds' positions as they are when it removes records.")));
		LockRelationOid(feed_rel, ShareLock);
		args[0] = Int64GetDatum(cut_seq - 1);
		ret = SPI_execute_with_args("SELECT name, delivered_seq FROM agentauth.audit_feed"
									" WHERE delivered_seq OPERATOR(pg_catalog.<) $1"
									" ORDER BY delivered_seq, name LIMIT 1",
									1, argtypes, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read the audit feeds");
		if (SPI_processed == 1)
		{
			char	   *feed = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			char	   *delivered = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("audit records not yet delivered by feed \"%s\" cannot be removed", feed),
					 errdetail("The feed has delivered up to seq %s; this purge would remove up to seq " INT64_FORMAT ".",
							   delivered, cut_seq - 1),
					 errhint("Let the feed catch up (agentauth.audit_feeds shows how far behind it is), or, if it is gone, drop it with agentauth.drop_audit_feed().")));
		}
		args[0] = Int64GetDatum(cut_seq);
	}

	if (cut_seq > first_seq)
	{
		audit_purging = true;
		PG_TRY();
		{
			ret = SPI_execute_with_args("DELETE FROM agentauth.audit_record WHERE seq OPERATOR(pg_catalog.<) $1",
										1, argtypes, args, NULL, false, 0);
		}
		PG_FINALLY();
		{
			audit_purging = false;
		}
		PG_END_TRY();
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not purge the audit log");
		/* records, not rows: seq is gapless */
		removed = cut_seq - first_seq;
	}
	aa_spi_end(&spi);

	initStringInfo(&detail);
	appendStringInfo(&detail,
					 "{\"before\": \"%s\", \"removed\": " INT64_FORMAT
					 ", \"cut_seq\": " INT64_FORMAT ", \"cut_hash\": \"%s\"}",
					 aa_utc_text(before), removed, cut_seq, cut_hex);
	memset(&rec, 0, sizeof(rec));
	rec.event = "audit_purged";
	rec.relation = "agentauth.audit_log";
	rec.action = aa_action_name(AA_ACT_DELETE);
	rec.row_count = removed;
	rec.outcome = "permit";
	rec.detail = detail.data;
	aa_audit_emit(&rec, true);

	PG_RETURN_INT64(removed);
}
