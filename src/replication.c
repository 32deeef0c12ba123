/*-------------------------------------------------------------------------
 *
 * replication.c
 *		Writes into a protected table that no executor hook sees: a logical
 *		replication subscriber's initial table copy (tablesync worker) and
 *		its applied INSERT, UPDATE, DELETE and TRUNCATE (apply worker).
 *		These workers write through the executor's row-level entry points
 *		without ExecutorStart, ProcessUtility or row security, so columns.c
 *		and ddl.c never account for them.
 *
 *		protect_table() gives every protected table two triggers, ENABLE
 *		ALWAYS (the workers run with session_replication_role = replica):
 *		agentauth_replicated_write, AFTER INSERT OR UPDATE OR DELETE FOR
 *		EACH ROW WHEN (agentauth._replicating()), and
 *		agentauth_replicated_truncate, AFTER TRUNCATE FOR EACH STATEMENT.
 *		Outside a logical replication worker the WHEN clause is false and
 *		nothing is queued; the truncate trigger returns at once.  In a
 *		worker, rows are counted per table, action and patient, and the
 *		counts become privileged_access records (detail: the subscription
 *		and the worker) when the transaction commits or is prepared: before
 *		it does, and it waits for them (agentauth.audit_sync), so a
 *		replicated write is not committed unrecorded.  A TRUNCATE is
 *		recorded at once.
 *
 *		The DDL guard of those triggers: while the table is protected no one
 *		drops, renames, replaces or disables them, or ties them to another
 *		extension (only unprotect_table() removes them).  And the other side:
 *		only a superuser may add a protected table to a publication (what a
 *		publisher streams is read from WAL, unrecorded).  Called by ddl.c's
 *		guard.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "replication/logicalworker.h"
#include "replication/worker_internal.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "agentauth.h"

PG_FUNCTION_INFO_V1(aa_replicating);
PG_FUNCTION_INFO_V1(aa_replicated_write);

#define TRIGGER_PREFIX	"agentauth_replicated_"

/* rows of one table, action and patient, written in one (sub)transaction */
typedef struct ReplKey
{
	Oid			relid;
	int			action;			/* AA_ACT_INSERT, _UPDATE or _DELETE */
	int			level;			/* transaction nesting level */
	const char *patient;		/* NULL: a NULL patient */
} ReplKey;

typedef struct ReplCount
{
	ReplKey		key;
	int64		rows;
} ReplCount;

/* what a record says about a table, kept from its first counted row */
typedef struct ReplRel
{
	Oid			relid;
	char	   *relname;
	int			ncolumns;
	const char **columns;
	int			nclasses;
	const char **classes;
} ReplRel;

static MemoryContext repl_cxt = NULL;	/* under TopTransactionContext */
static HTAB *repl_counts = NULL;
static List *repl_rels = NIL;
static bool callbacks_registered = false;

/* ---------------------------------------------------------------------
 * Which worker
 * ---------------------------------------------------------------------
 */

static bool
in_replication_worker(void)
{
	return IsLogicalWorker();
}

static void
worker_detail(StringInfo buf, const char *extra)
{
	appendStringInfoString(buf, "{\"reason\": \"logical replication\", \"subscription\": ");
	escape_json(buf, MySubscription && MySubscription->name ?
				MySubscription->name : "");
	appendStringInfoString(buf, ", \"worker\": ");
	escape_json(buf, MyLogicalRepWorker && OidIsValid(MyLogicalRepWorker->relid) ?
				"tablesync" : "apply");
	appendStringInfoString(buf, ", \"role\": ");
	escape_json(buf, GetUserNameFromId(GetSessionUserId(), false));
	if (extra)
		appendStringInfo(buf, ", %s", extra);
	appendStringInfoChar(buf, '}');
}

/* ---------------------------------------------------------------------
 * The counts of the transaction
 * ---------------------------------------------------------------------
 */

static uint32
repl_hash(const void *key, Size keysize)
{
	const ReplKey *k = key;
	uint32		h = hash_uint32(k->relid) ^ hash_uint32(k->action * 31 + k->level);

	if (k->patient)
		h ^= hash_bytes((const unsigned char *) k->patient, strlen(k->patient));
	return h;
}

static int
repl_match(const void *a, const void *b, Size keysize)
{
	const ReplKey *x = a;
	const ReplKey *y = b;

	if (x->relid != y->relid || x->action != y->action || x->level != y->level)
		return 1;
	if (x->patient == NULL || y->patient == NULL)
		return x->patient == y->patient ? 0 : 1;
	return strcmp(x->patient, y->patient);
}

static void
repl_forget(void)
{
	repl_cxt = NULL;			/* freed with TopTransactionContext */
	repl_counts = NULL;
	repl_rels = NIL;
}

static void
repl_add(const ReplKey *key, int64 rows)
{
	ReplCount  *c;
	bool		found;

	c = hash_search(repl_counts, key, HASH_ENTER, &found);
	if (!found)
	{
		c->key = *key;
		c->key.patient = key->patient ?
			MemoryContextStrdup(repl_cxt, key->patient) : NULL;
		c->rows = 0;
	}
	c->rows += rows;
}

static void
repl_remember_rel(Oid relid)
{
	ListCell   *lc;
	AAProtectedRel *prot;
	ReplRel    *r;
	MemoryContext old;

	foreach(lc, repl_rels)
		if (((ReplRel *) lfirst(lc))->relid == relid)
			return;
	prot = aa_protected_rel(relid);
	if (prot == NULL)
		return;
	old = MemoryContextSwitchTo(repl_cxt);
	r = palloc0(sizeof(ReplRel));
	r->relid = relid;
	r->relname = pstrdup(prot->relname);
	r->columns = palloc(sizeof(char *) * (prot->natts + 1));
	for (int i = 1; i <= prot->natts; i++)
		if (prot->att_name[i])
			r->columns[r->ncolumns++] = pstrdup(prot->att_name[i]);
	r->classes = palloc(sizeof(char *) * (prot->nclasses + 1));
	for (int i = 0; i < prot->nclasses; i++)
		r->classes[r->nclasses++] = pstrdup(prot->classes[i]);
	repl_rels = lappend(repl_rels, r);
	MemoryContextSwitchTo(old);
}

static ReplRel *
repl_rel(Oid relid)
{
	ListCell   *lc;

	foreach(lc, repl_rels)
		if (((ReplRel *) lfirst(lc))->relid == relid)
			return lfirst(lc);
	return NULL;
}

static int
cmp_counts(const void *a, const void *b)
{
	const ReplCount *x = *(ReplCount *const *) a;
	const ReplCount *y = *(ReplCount *const *) b;

	if (x->key.relid != y->key.relid)
		return x->key.relid < y->key.relid ? -1 : 1;
	if (x->key.action != y->key.action)
		return x->key.action - y->key.action;
	if (x->key.patient == NULL || y->key.patient == NULL)
		return (x->key.patient == NULL) - (y->key.patient == NULL);
	return strcmp(x->key.patient, y->key.patient);
}

/* the transaction commits or is prepared: its records, then the wait */
static void
repl_emit(void)
{
	HASH_SEQ_STATUS seq;
	ReplCount  *c;
	ReplCount **all;
	long		n = 0;
	long		i = 0;
	StringInfoData detail;

	if (repl_counts == NULL || (n = hash_get_num_entries(repl_counts)) == 0)
		return;
	all = palloc(sizeof(ReplCount *) * n);
	hash_seq_init(&seq, repl_counts);
	while ((c = hash_seq_search(&seq)) != NULL)
		all[i++] = c;
	qsort(all, n, sizeof(ReplCount *), cmp_counts);

	initStringInfo(&detail);
	worker_detail(&detail, NULL);
	for (i = 0; i < n; i++)
	{
		ReplRel    *r = repl_rel(all[i]->key.relid);
		AARecord	rec;

		if (r == NULL || all[i]->rows == 0)
			continue;
		memset(&rec, 0, sizeof(rec));
		rec.event = "privileged_access";
		rec.outcome = "permit";
		rec.patient = all[i]->key.patient;
		rec.relation = r->relname;
		rec.ncolumns = r->ncolumns;
		rec.columns = r->columns;
		rec.nclasses = r->nclasses;
		rec.classes = r->classes;
		rec.action = aa_action_name(all[i]->key.action);
		rec.row_count = all[i]->rows;
		rec.detail = detail.data;
		aa_audit_emit(&rec, false);
	}
	repl_forget();
	aa_audit_wait();
}

static void
repl_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			repl_emit();
			break;
		default:
			repl_forget();
			break;
	}
}

/* a subtransaction's counts go to its parent, or with it */
static void
repl_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	HASH_SEQ_STATUS seq;
	ReplCount  *c;
	List	   *moved = NIL;
	ListCell   *lc;
	int			level = GetCurrentTransactionNestLevel();

	if (repl_counts == NULL ||
		(event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB))
		return;
	hash_seq_init(&seq, repl_counts);
	while ((c = hash_seq_search(&seq)) != NULL)
	{
		if (c->key.level < level)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			ReplCount  *copy = MemoryContextAlloc(repl_cxt, sizeof(ReplCount));

			*copy = *c;
			moved = lappend(moved, copy);
		}
		hash_search(repl_counts, &c->key, HASH_REMOVE, NULL);
	}
	foreach(lc, moved)
	{
		ReplCount  *m = lfirst(lc);

		m->key.level = level - 1;
		repl_add(&m->key, m->rows);
	}
}

static void
repl_count(Relation rel, int action, HeapTuple tuple, AttrNumber attno)
{
	ReplKey		key;
	bool		isnull = true;
	Datum		d = (Datum) 0;

	if (repl_counts == NULL)
	{
		HASHCTL		ctl;

		repl_cxt = AllocSetContextCreate(TopTransactionContext,
										 "agentauth replicated writes",
										 ALLOCSET_DEFAULT_SIZES);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(ReplKey);
		ctl.entrysize = sizeof(ReplCount);
		ctl.hash = repl_hash;
		ctl.match = repl_match;
		ctl.hcxt = repl_cxt;
		repl_counts = hash_create("agentauth replicated writes", 64, &ctl,
								  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
		repl_rels = NIL;
	}
	repl_remember_rel(RelationGetRelid(rel));

	if (attno != InvalidAttrNumber && tuple != NULL)
		d = heap_getattr(tuple, attno, RelationGetDescr(rel), &isnull);
	memset(&key, 0, sizeof(key));
	key.relid = RelationGetRelid(rel);
	key.action = action;
	key.level = GetCurrentTransactionNestLevel();
	if (!isnull)
	{
		Oid			typoutput;
		bool		varlena;

		getTypeOutputInfo(TupleDescAttr(RelationGetDescr(rel), attno - 1)->atttypid,
						  &typoutput, &varlena);
		key.patient = OidOutputFunctionCall(typoutput, d);
	}
	repl_add(&key, 1);
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */

/*
 * agentauth._replicating() RETURNS boolean: is this a logical replication
 * worker (the WHEN clause of agentauth_replicated_write)?
 */
Datum
aa_replicating(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(in_replication_worker());
}

/*
 * agentauth._replicated_write() RETURNS trigger: the two triggers of a
 * protected table (see the header of this file).
 */
Datum
aa_replicated_write(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	AAProtectedRel *prot;
	AttrNumber	attno;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("agentauth._replicated_write() can only be called as a trigger")));
	if (!in_replication_worker() || !TRIGGER_FIRED_AFTER(td->tg_event))
		return PointerGetDatum(NULL);

	rel = td->tg_relation;
	prot = aa_protected_rel(RelationGetRelid(rel));
	if (prot == NULL)
		return PointerGetDatum(NULL);	/* being unprotected */
	attno = prot->patient_attno;

	if (!callbacks_registered)
	{
		RegisterXactCallback(repl_xact_callback, NULL);
		RegisterSubXactCallback(repl_subxact_callback, NULL);
		callbacks_registered = true;
	}

	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		AARecord	rec;
		StringInfoData detail;
		char	   *relname = pstrdup(prot->relname);

		initStringInfo(&detail);
		worker_detail(&detail, "\"truncate\": true");
		memset(&rec, 0, sizeof(rec));
		rec.event = "privileged_access";
		rec.outcome = "permit";
		rec.relation = relname;
		rec.action = aa_action_name(AA_ACT_DELETE);
		rec.row_count = -1;
		rec.detail = detail.data;
		aa_audit_emit(&rec, false);
		aa_audit_wait();
		return PointerGetDatum(NULL);
	}
	if (!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		return PointerGetDatum(NULL);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		repl_count(rel, AA_ACT_INSERT, td->tg_trigtuple, attno);
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		repl_count(rel, AA_ACT_DELETE, td->tg_trigtuple, attno);
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		bool		oldnull;
		bool		newnull;
		Datum		oldv = (Datum) 0;
		Datum		newv = (Datum) 0;

		/* a row moved to another patient is an update of both */
		if (attno != InvalidAttrNumber)
		{
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attno - 1);

			oldv = heap_getattr(td->tg_trigtuple, attno, RelationGetDescr(rel), &oldnull);
			newv = heap_getattr(td->tg_newtuple, attno, RelationGetDescr(rel), &newnull);
			if (oldnull != newnull ||
				(!oldnull && !datumIsEqual(oldv, newv, att->attbyval, att->attlen)))
				repl_count(rel, AA_ACT_UPDATE, td->tg_trigtuple, attno);
		}
		repl_count(rel, AA_ACT_UPDATE, td->tg_newtuple, attno);
	}
	return PointerGetDatum(NULL);
}

/* ---------------------------------------------------------------------
 * The guard of the triggers
 * ---------------------------------------------------------------------
 */

static bool
is_ours(const char *trigname)
{
	return trigname != NULL &&
		strncmp(trigname, TRIGGER_PREFIX, strlen(TRIGGER_PREFIX)) == 0;
}

static void pg_attribute_noreturn()
refuse_trigger(Oid relid, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s the agentauth triggers of protected table %s",
					what, get_rel_name(relid)),
			 errdetail("They record the writes of logical replication, which no other check sees."),
			 errhint("Only agentauth.unprotect_table() (audited) removes them; name other triggers one by one.")));
}

static void
check_trigger_of(Oid relid, const char *trigname, const char *what)
{
	if (OidIsValid(relid) && is_ours(trigname) && aa_is_protected(relid))
		refuse_trigger(relid, what);
}

/* a trigger named as (schema.)table.trigger in a list of names */
static void
check_named_trigger(List *names, const char *what)
{
	List	   *relname;
	Oid			relid;

	if (list_length(names) < 2)
		return;
	relname = list_truncate(list_copy(names), list_length(names) - 1);
	relid = RangeVarGetRelid(makeRangeVarFromNameList(relname), NoLock, true);
	check_trigger_of(relid, strVal(llast(names)), what);
}

static void
check_alter_table_triggers(AlterTableStmt *stmt)
{
	Oid			relid = InvalidOid;
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		switch (cmd->subtype)
		{
			case AT_EnableTrig:
			case AT_EnableReplicaTrig:
			case AT_DisableTrig:
			case AT_EnableTrigAll:
			case AT_DisableTrigAll:
			case AT_EnableTrigUser:
			case AT_DisableTrigUser:
				break;
			default:
				continue;		/* ENABLE ALWAYS, which they are, is fine */
		}
		if (!OidIsValid(relid))
			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
		if (!OidIsValid(relid) || !aa_is_protected(relid))
			return;
		if (cmd->subtype == AT_EnableTrigAll || cmd->subtype == AT_DisableTrigAll ||
			cmd->subtype == AT_EnableTrigUser || cmd->subtype == AT_DisableTrigUser)
			refuse_trigger(relid, "disable or change the firing of");
		check_trigger_of(relid, cmd->name, "disable or change the firing of");
	}
}

/*
 * A publication streams every change of its tables to a subscriber, read
 * from WAL: nothing records it.  Only a superuser (trusted, see the
 * README) may publish a protected table; its owner may not.
 */
static void
check_publication(List *pubobjects)
{
	ListCell   *lc;

	if (superuser())
		return;
	foreach(lc, pubobjects)
	{
		PublicationObjSpec *spec = lfirst(lc);
		Oid			relid;

		if (!IsA(spec, PublicationObjSpec) || spec->pubtable == NULL ||
			spec->pubtable->relation == NULL)
			continue;
		relid = RangeVarGetRelid(spec->pubtable->relation, NoLock, true);
		if (OidIsValid(relid) && aa_is_protected(relid))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cannot publish protected table %s", get_rel_name(relid)),
					 errdetail("A publication streams every row change to its subscribers, unchecked and unrecorded."),
					 errhint("A superuser may publish it; otherwise unprotect the table with agentauth.unprotect_table() (audited).")));
	}
}

/*
 * A utility statement is about to run: refuse it when it would drop,
 * rename or switch off the replication triggers of a protected table, or
 * publish the table.
 */
void
aa_replication_ddl_check(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_DropStmt:
			{
				DropStmt   *ds = (DropStmt *) stmt;
				ListCell   *lc;

				if (ds->removeType != OBJECT_TRIGGER)
					break;
				foreach(lc, ds->objects)
					check_named_trigger(lfirst(lc), "drop");
			}
			break;
		case T_RenameStmt:
			{
				RenameStmt *rs = (RenameStmt *) stmt;

				if (rs->renameType == OBJECT_TRIGGER && rs->relation)
					check_trigger_of(RangeVarGetRelid(rs->relation, NoLock, true),
									 rs->subname, "rename");
			}
			break;
		case T_AlterObjectDependsStmt:
			{
				AlterObjectDependsStmt *ds = (AlterObjectDependsStmt *) stmt;

				if (ds->objectType == OBJECT_TRIGGER && ds->relation &&
					ds->object && IsA(ds->object, List) &&
					list_length((List *) ds->object) >= 1)
					check_trigger_of(RangeVarGetRelid(ds->relation, NoLock, true),
									 strVal(llast((List *) ds->object)),
									 "tie to an extension");
			}
			break;
		case T_AlterTableStmt:
			check_alter_table_triggers((AlterTableStmt *) stmt);
			break;
		case T_CreatePublicationStmt:
			check_publication(((CreatePublicationStmt *) stmt)->pubobjects);
			break;
		case T_AlterPublicationStmt:
			if (((AlterPublicationStmt *) stmt)->action != AP_DropObjects)
				check_publication(((AlterPublicationStmt *) stmt)->pubobjects);
			break;
		case T_CreateTrigStmt:
			{
				CreateTrigStmt *ts = (CreateTrigStmt *) stmt;

				if (ts->replace && ts->relation)
					check_trigger_of(RangeVarGetRelid(ts->relation, NoLock, true),
									 ts->trigname, "replace");
			}
			break;
		default:
			break;
	}
}
