/*-------------------------------------------------------------------------
 *
 * label_restore.c
 *		What a dump and restore does to the classification of protected
 *		tables, and how label.c stays closed while it is incomplete.
 *
 *		pg_dump writes a table's labels in the pre-data section, right after
 *		CREATE TABLE, and the extension's configuration tables -- the rows a
 *		site added to agentauth.data_class among them -- in the data
 *		section, later.  So a column label naming a site class arrives
 *		before its class does.  A script that says it is a dump being
 *		restored (row_security = off: every pg_dump script and pg_restore
 *		set it) may therefore set a column label naming a class that is not
 *		(yet) a row of agentauth.data_class, if the name is a well-formed
 *		class name; the provider warns.  Until the class exists the column
 *		counts as unclassified (label.c asks aa_label_known_classes()): no
 *		session reads it, and a '*' default or scope cannot cover it as if
 *		it were not sensitive.
 *
 *		A table whose own label is missing while it still carries signs of
 *		protection -- agentauth column labels, or the replication triggers
 *		that only protect_table() creates and that pg_dump writes apart from
 *		the labels -- is protected with an incomplete classification
 *		(aa_label_incomplete()): no patient column, no column classified.
 *		No session reads a row of it, a superuser's read is recorded as
 *		privileged_access, and the DDL guards hold as for any protected
 *		table, until protect_table() classifies it again.  That is the state
 *		a restore leaves when a table's labels failed or were left out
 *		(pg_restore --no-security-labels).  unprotect_table() removes the
 *		table label first: for the rest of its transaction that table is not
 *		counted as incomplete (aa_label_unprotecting()), so it can remove the
 *		rest.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "agentauth.h"

#if PG_VERSION_NUM >= 170000
#define MY_LXID		(MyProc->vxid.lxid)
#else
#define MY_LXID		(MyProc->lxid)
#endif

/*
 * The tables unprotect_table() is unprotecting in this transaction, and the
 * subtransaction of each: a rolled-back unprotect_table() restores the
 * labels, and its table counts as incomplete again.
 */
static List *unprotecting = NIL;	/* in TopTransactionContext */
static List *unprotecting_subids = NIL; /* SubTransactionId each, likewise */
static LocalTransactionId unprotecting_lxid = InvalidLocalTransactionId;
static bool subxact_registered = false;

static const char *const protect_triggers[] = {
	"agentauth_replicated_write", "agentauth_replicated_truncate"
};

/* a name agentauth.data_class would accept: ^[a-z][a-z0-9_]{0,62}$ */
static bool
class_name_wellformed(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > 63 || name[0] < 'a' || name[0] > 'z')
		return false;
	for (size_t i = 1; i < len; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
			  (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
			return false;
	return true;
}

/*
 * The provider was given a column label naming no row of
 * agentauth.data_class.  May it be kept?  Only in a restore (row_security
 * off, as pg_dump's scripts and pg_restore set it) and only for a
 * well-formed class name: then it warns and returns true.
 */
bool
aa_label_unknown_class_ok(const char *label)
{
	if (row_security || !class_name_wellformed(label))
		return false;
	ereport(WARNING,
			(errcode(ERRCODE_WARNING),
			 errmsg("data class \"%s\" is not (yet) a row of agentauth.data_class", label),
			 errdetail("The label is kept, as a restore writes the labels before the extension's data; until the class exists, the column is unclassified and no session reads it."),
			 errhint("Restore agentauth.data_class, or add the class, or relabel the column.")));
	return true;
}

/*
 * The names of agentauth.data_class, read with the latest snapshot (util.c's,
 * which also serves the leader of a parallel plan) straight
 * from the table (no SPI: this runs while label.c builds a cache entry, in
 * planner and DDL hooks).  *valid is false when the table is not there
 * (agentauth not installed, or being installed): then nothing is known.
 */
List *
aa_label_known_classes(bool *valid)
{
	Oid			nsp;
	Oid			relid;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	List	   *names = NIL;

	*valid = false;
	if (!aa_extension_ready())
		return NIL;
	nsp = get_namespace_oid(AA_SCHEMA, true);
	relid = OidIsValid(nsp) ? get_relname_relid("data_class", nsp) : InvalidOid;
	if (!OidIsValid(relid))
		return NIL;

	rel = table_open(relid, AccessShareLock);
	snap = RegisterSnapshot(aa_latest_snapshot());
	scan = systable_beginscan(rel, InvalidOid, false, snap, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, 1, RelationGetDescr(rel), &isnull);

		if (!isnull)
			names = lappend(names, TextDatumGetCString(d));
	}
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	*valid = true;
	return names;
}

/* a subtransaction rolled back: the tables it was unprotecting are not */
static void
unprotecting_subxact(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	int			keep = 0;
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB || unprotecting_lxid != MY_LXID ||
		unprotecting == NIL)
		return;

	/*
	 * Entries are appended in time order and subtransaction ids grow: those
	 * of the aborted one and its children are a tail.  Cut in place (no
	 * allocation during an abort).
	 */
	foreach(lc, unprotecting_subids)
	{
		if ((SubTransactionId) lfirst_int(lc) >= mySubid)
			break;
		keep++;
	}
	unprotecting = list_truncate(unprotecting, keep);
	unprotecting_subids = list_truncate(unprotecting_subids, keep);
}

/* unprotect_table() is removing the table label of relid */
void
aa_label_unprotecting(Oid relid)
{
	MemoryContext oldcxt;

	if (!subxact_registered)
	{
		RegisterSubXactCallback(unprotecting_subxact, NULL);
		subxact_registered = true;
	}
	if (unprotecting_lxid != MY_LXID)
	{
		/* their memory went with the transaction */
		unprotecting = NIL;
		unprotecting_subids = NIL;
		unprotecting_lxid = MY_LXID;
	}
	/* the ids first: a relid is never listed without its subtransaction */
	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	unprotecting_subids = lappend_int(unprotecting_subids,
									  (int) GetCurrentSubTransactionId());
	unprotecting = lappend_oid(unprotecting, relid);
	MemoryContextSwitchTo(oldcxt);
}

/* does relid carry a trigger that only protect_table() creates? */
static bool
has_protect_trigger(Oid relid)
{
	HeapTuple	ctup;
	bool		hastriggers;
	Relation	trigrel;
	bool		found = false;

	ctup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(ctup))
		return false;
	hastriggers = ((Form_pg_class) GETSTRUCT(ctup))->relhastriggers;
	ReleaseSysCache(ctup);
	if (!hastriggers)
		return false;

	trigrel = table_open(TriggerRelationId, AccessShareLock);
	for (int i = 0; i < lengthof(protect_triggers) && !found; i++)
	{
		ScanKeyData keys[2];
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&keys[0], Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(relid));
		ScanKeyInit(&keys[1], Anum_pg_trigger_tgname, BTEqualStrategyNumber,
					F_NAMEEQ, CStringGetDatum(protect_triggers[i]));
		scan = systable_beginscan(trigrel, TriggerRelidNameIndexId, true,
								  NULL, 2, keys);
		if (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);
			char	   *fname = get_func_name(trig->tgfoid);
			char	   *fnsp = get_namespace_name(get_func_namespace(trig->tgfoid));

			/* its own, not a clone of a partitioned parent's */
			found = !OidIsValid(trig->tgparentid) &&
				fname != NULL && strcmp(fname, "_replicated_write") == 0 &&
				fnsp != NULL && strcmp(fnsp, AA_SCHEMA) == 0;
		}
		systable_endscan(scan);
	}
	table_close(trigrel, AccessShareLock);
	return found;
}

/*
 * relid has no table label of ours.  Is it nevertheless a protected table
 * whose classification is incomplete?  has_column_labels: it has column
 * labels of ours.
 */
bool
aa_label_incomplete(Oid relid, bool has_column_labels)
{
	if (unprotecting_lxid == MY_LXID &&
		list_member_oid(unprotecting, relid))
		return false;
	return has_column_labels || has_protect_trigger(relid);
}
