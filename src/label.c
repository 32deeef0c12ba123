/*-------------------------------------------------------------------------
 *
 * label.c
 *		The "agentauth" security-label provider, and the per-backend cache
 *		of what it says.
 *
 *		The classification of a protected table lives where PostgreSQL keeps
 *		such things: security labels, so it travels with pg_dump and a DBA
 *		reads and sets it with standard SQL.
 *
 *		  table:  'patient=<column>' or 'patient=<column>;approve=insert,update'
 *		  column: the name of a row of agentauth.data_class
 *
 *		A table is protected when it carries a table label of this provider
 *		(or, its classification incomplete after a restore, column labels or
 *		protect_table()'s triggers without one: label_restore.c; or a
 *		partition of a protected table, or a partitioned table holding a
 *		protected partition, without one: partition_label.c).  A column
 *		whose class is no row of agentauth.data_class is unclassified.
 *		The provider refuses unknown classes (but in a restore:
 *		label_restore.c), a patient column that does not exist, and labels
 *		set by anyone but an agentauth_admin (or a superuser, e.g.
 *		pg_restore), and -- for every role, by either
 *		route -- labels on the schema agentauth and anything in it (a label
 *		on the audit log would hold its auditors to the row check, and
 *		nothing could remove it).  Every change bumps the generation
 *		counter and is audited.  protect_table() and friends set labels
 *		through _set_label(), which does its own checks and its own auditing.
 *
 *		The cache maps a relation OID to its classification (or to "not
 *		protected").  It is dropped when the generation counter moves and
 *		per relation on relcache invalidation (ALTER TABLE ADD COLUMN ...).
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
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_seclabel.h"
#include "commands/seclabel.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "agentauth.h"

PG_FUNCTION_INFO_V1(aa_set_label);

typedef struct RelCacheEntry
{
	Oid			relid;			/* hash key */
	bool		stale;			/* an invalidation came: load again */
	bool		loaded;			/* rel is a whole load's (not one cut short) */
	AAProtectedRel *rel;		/* NULL: not protected */
} RelCacheEntry;

typedef struct ClassEntry
{
	char		name[NAMEDATALEN];	/* hash key */
	bool		sensitive;
} ClassEntry;

static MemoryContext label_cxt = NULL;
static HTAB *rel_cache = NULL;
static HTAB *class_cache = NULL;
static uint64 cache_gen = 0;
static bool callback_registered = false;

static void
relcache_callback(Datum arg, Oid relid)
{
	RelCacheEntry *e;

	if (rel_cache == NULL)
		return;
	if (!OidIsValid(relid))
	{
		cache_gen = 0;			/* everything */
		return;
	}
	e = hash_search(rel_cache, &relid, HASH_FIND, NULL);
	if (e != NULL)
		e->stale = true;
}

/*
 * Make sure the caches belong to the current generation.  Pointers handed
 * out before are invalid after this: callers copy what they keep.
 */
static void
label_cache_validate(void)
{
	uint64		gen = aa_generation();
	HASHCTL		ctl;

	if (rel_cache != NULL && gen == cache_gen)
		return;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	if (label_cxt == NULL)
		label_cxt = AllocSetContextCreate(TopMemoryContext,
										  "agentauth classification",
										  ALLOCSET_DEFAULT_SIZES);
	/* read the counter before the catalogs: see shmem.c */
	cache_gen = gen;
	rel_cache = NULL;
	class_cache = NULL;
	MemoryContextReset(label_cxt);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(RelCacheEntry);
	ctl.hcxt = label_cxt;
	rel_cache = hash_create("agentauth protected relations", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* ------------------------------------------------------------------
 * Data classes
 * ------------------------------------------------------------------
 */

static void
load_classes(void)
{
	HTAB	   *classes;
	HASHCTL		ctl;
	AASpiState	st;
	MemoryContext oldcxt;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN;
	ctl.entrysize = sizeof(ClassEntry);
	ctl.hcxt = label_cxt;

	aa_spi_begin(&st, true);
	if (SPI_execute("SELECT name, sensitive FROM agentauth.data_class",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read agentauth.data_class");

	oldcxt = MemoryContextSwitchTo(label_cxt);
	/* in use only once whole: a load cut short is made again */
	classes = hash_create("agentauth data classes", 32, &ctl,
						  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *name = SPI_getvalue(tup, desc, 1);
		bool		isnull;
		Datum		d = SPI_getbinval(tup, desc, 2, &isnull);
		ClassEntry *e;

		if (strlen(name) >= NAMEDATALEN)
			continue;
		e = hash_search(classes, name, HASH_ENTER, NULL);
		e->sensitive = !isnull && DatumGetBool(d);
	}
	MemoryContextSwitchTo(oldcxt);
	aa_spi_end(&st);
	class_cache = classes;
}

/*
 * Is this a known data class?  *sensitive says whether it is one of the
 * sensitive classes that a '*' default never covers.
 */
bool
aa_class_lookup(const char *name, bool *sensitive)
{
	ClassEntry *e;

	if (name == NULL || strlen(name) >= NAMEDATALEN)
		return false;
	label_cache_validate();
	if (class_cache == NULL)
		load_classes();
	e = hash_search(class_cache, name, HASH_FIND, NULL);
	if (e == NULL)
		return false;
	if (sensitive)
		*sensitive = e->sensitive;
	return true;
}

/* ------------------------------------------------------------------
 * The table label
 * ------------------------------------------------------------------
 */

/*
 * Parse a table label into its patient column and approval mask.  Returns
 * false (with *why set) when it is malformed.
 */
bool
aa_parse_table_label(const char *label, char **patient_column,
					 int *approve_mask, const char **why)
{
	const char *p;
	const char *semi;

	*approve_mask = 0;
	*patient_column = NULL;
	if (strncmp(label, "patient=", 8) != 0)
	{
		*why = "A table label must start with \"patient=\".";
		return false;
	}
	p = label + 8;
	semi = strchr(p, ';');
	if ((semi ? semi - p : (long) strlen(p)) == 0)
	{
		*why = "The patient column is missing.";
		return false;
	}
	*patient_column = semi ? pnstrdup(p, semi - p) : pstrdup(p);
	if (semi == NULL)
		return true;
	p = semi + 1;
	if (strncmp(p, "approve=", 8) != 0)
	{
		*why = "Only \"approve=\" may follow the patient column.";
		return false;
	}
	p += 8;
	while (*p)
	{
		const char *comma = strchr(p, ',');
		int			len = comma ? comma - p : (int) strlen(p);
		int			a = aa_action_from_name(p, len);

		/* one write action: insert, update or delete */
		if (a != AA_ACT_INSERT && a != AA_ACT_UPDATE && a != AA_ACT_DELETE)
		{
			*why = "approve= takes insert, update and delete, separated by commas.";
			return false;
		}
		*approve_mask |= a;
		p += len;
		if (*p == ',')
			p++;
	}
	return true;
}

/* ------------------------------------------------------------------
 * Loading a relation's classification
 * ------------------------------------------------------------------
 */

static bool
class_in(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), name) == 0)
			return true;
	return false;
}

static AAProtectedRel *
load_protected_rel(Oid relid)
{
	Relation	seclabel;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *table_label = NULL;
	List	   *collabels = NIL;	/* pairs: attnum (int), label */
	List	   *colnums = NIL;
	AAProtectedRel *rel;
	MemoryContext oldcxt;
	int			natts;
	ListCell   *lc,
			   *lc2;
	char		relkind;
	List	   *known = NIL;
	bool		known_valid = false;

	relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		return NULL;

	ScanKeyInit(&keys[0], Anum_pg_seclabel_objoid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	ScanKeyInit(&keys[1], Anum_pg_seclabel_classoid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(RelationRelationId));
	seclabel = table_open(SecLabelRelationId, AccessShareLock);
	scan = systable_beginscan(seclabel, SecLabelObjectIndexId, true, NULL,
							  2, keys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d;
		FormData_pg_seclabel *form = (FormData_pg_seclabel *) GETSTRUCT(tup);
		char	   *provider;
		char	   *label;

		d = heap_getattr(tup, Anum_pg_seclabel_provider,
						 RelationGetDescr(seclabel), &isnull);
		if (isnull)
			continue;
		provider = TextDatumGetCString(d);
		if (strcmp(provider, AA_LABEL_PROVIDER) != 0)
			continue;
		d = heap_getattr(tup, Anum_pg_seclabel_label,
						 RelationGetDescr(seclabel), &isnull);
		if (isnull)
			continue;
		label = TextDatumGetCString(d);
		if (form->objsubid == 0)
			table_label = label;
		else if (form->objsubid > 0)
		{
			colnums = lappend_int(colnums, form->objsubid);
			collabels = lappend(collabels, label);
		}
	}
	systable_endscan(scan);
	table_close(seclabel, AccessShareLock);

	/*
	 * no table label: not protected, or incomplete (label_restore.c), or a
	 * partition missing its parent's labels (partition_label.c)
	 */
	if (table_label == NULL &&
		!aa_label_incomplete(relid, collabels != NIL) &&
		!aa_partition_unlabelled_protected(relid, relkind))
		return NULL;
	/* a class that is no row of data_class (yet): unclassified */
	if (collabels != NIL)
		known = aa_label_known_classes(&known_valid);

	oldcxt = MemoryContextSwitchTo(label_cxt);
	rel = palloc0(sizeof(AAProtectedRel));
	rel->relid = relid;
	rel->relname = aa_qualified_name(get_namespace_name(get_rel_namespace(relid)),
											  get_rel_name(relid));
	rel->relkind = relkind;
	if (table_label != NULL)
	{
		const char *why;

		if (!aa_parse_table_label(table_label, &rel->patient_column,
								  &rel->approve_mask, &why))
			rel->patient_column = NULL; /* fail closed below */
	}
	else
		collabels = colnums = NIL;	/* incomplete: nothing classified */
	rel->patient_attno = rel->patient_column ?
		get_attnum(relid, rel->patient_column) : InvalidAttrNumber;

	/* columns, by attnum */
	{
		HeapTuple	ctup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));

		if (!HeapTupleIsValid(ctup))
			elog(ERROR, "cache lookup failed for relation %u", relid);
		natts = ((Form_pg_class) GETSTRUCT(ctup))->relnatts;
		ReleaseSysCache(ctup);
	}
	rel->natts = natts;
	rel->att_class = palloc0(sizeof(char *) * (natts + 1));
	rel->att_name = palloc0(sizeof(char *) * (natts + 1));
	for (int i = 1; i <= natts; i++)
	{
		HeapTuple	atup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid),
										   Int16GetDatum(i));

		if (HeapTupleIsValid(atup))
		{
			Form_pg_attribute att = (Form_pg_attribute) GETSTRUCT(atup);

			if (!att->attisdropped)
				rel->att_name[i] = pstrdup(NameStr(att->attname));
			ReleaseSysCache(atup);
		}
	}
	forboth(lc, colnums, lc2, collabels)
	{
		int			attnum = lfirst_int(lc);

		char	   *cls = (char *) lfirst(lc2);

		if (known_valid && !class_in(known, cls))
			continue;
		if (attnum >= 1 && attnum <= natts && rel->att_name[attnum] != NULL)
			rel->att_class[attnum] = pstrdup(cls);
	}

	/* the distinct classes of the table, non_phi excluded */
	rel->classes = palloc0(sizeof(char *) * (natts + 1));
	for (int i = 1; i <= natts; i++)
	{
		const char *c = rel->att_class[i];
		bool		seen = false;

		if (c == NULL || i == rel->patient_attno || strcmp(c, AA_NON_PHI) == 0)
			continue;
		for (int j = 0; j < rel->nclasses; j++)
			if (strcmp(rel->classes[j], c) == 0)
				seen = true;
		if (!seen)
			rel->classes[rel->nclasses++] = pstrdup(c);
	}
	MemoryContextSwitchTo(oldcxt);
	return rel;
}

/*
 * The classification of a relation, or NULL when it is not protected.  The
 * result stays valid until the next call of any function of this file.
 */
AAProtectedRel *
aa_protected_rel(Oid relid)
{
	RelCacheEntry *e;
	bool		found;

	label_cache_validate();
	e = hash_search(rel_cache, &relid, HASH_ENTER, &found);
	if (!found || e->stale || !e->loaded)
	{
		AAProtectedRel *rel;

		/*
		 * Not loaded until the load returns: an error part way (a lock
		 * timeout on a catalog, a cancel) leaves the entry to be loaded
		 * again, never read as "not protected".  An invalidation during
		 * the load marks it stale: loaded again at the next call.
		 */
		e->rel = NULL;
		e->loaded = false;
		e->stale = false;
		rel = load_protected_rel(relid);
		e = hash_search(rel_cache, &relid, HASH_FIND, NULL);
		if (e == NULL)
			elog(ERROR, "agentauth classification of relation %u vanished while loaded",
				 relid);
		e->rel = rel;
		e->loaded = true;
	}
	return e->rel;
}

bool
aa_is_protected(Oid relid)
{
	return aa_protected_rel(relid) != NULL;
}

/* ------------------------------------------------------------------
 * The provider
 * ------------------------------------------------------------------
 */

/*
 * The extension's own tables are never classified: a label on the audit log
 * would hold its auditors to the row check, and nothing could remove it.
 * Refused for every role, on the schema and everything in it.
 */
static void
refuse_in_own_schema(const ObjectAddress *object)
{
	Oid			nsp;
	bool		own;

	if (!aa_schema_guarded(&nsp))
		return;
	if (object->classId == NamespaceRelationId)
		own = object->objectId == nsp;
	else if (object->classId == RelationRelationId)
		own = get_rel_namespace(object->objectId) == nsp;
	else
		own = get_object_namespace(object) == nsp;
	if (own)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentauth labels cannot be set on the objects of schema agentauth"),
				 errdetail("The extension's own tables keep their protection against every role.")));
}

static void
require_label_admin(void)
{
	if (!superuser() && !aa_has_role("agentauth_admin"))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only agentauth_admin may set agentauth security labels"),
				 errhint("Use agentauth.protect_table() as a member of agentauth_admin.")));
}

/*
 * Check a label; reports the column or table it is for.  Returns the
 * parsed patient column for table labels.
 */
static void
check_label(Oid relid, int32 subid, const char *label)
{
	char		relkind = get_rel_relkind(relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("agentauth labels apply only to tables and their columns"),
				 errdetail("\"%s\" is not a table.", get_rel_name(relid))));
	if (!aa_extension_ready())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension agentauth is not installed in this database")));

	if (subid == 0)
	{
		char	   *col;
		int			mask;
		const char *why;
		AttrNumber	attnum;

		if (label == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cannot remove the agentauth label of table \"%s\"",
							get_rel_name(relid)),
					 errhint("Use agentauth.unprotect_table(), which is audited.")));
		if (!aa_parse_table_label(label, &col, &mask, &why))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid agentauth table label \"%s\"", label),
					 errdetail("%s", why),
					 errhint("A table label reads 'patient=<column>' or 'patient=<column>;approve=insert,update,delete'.")));
		attnum = get_attnum(relid, col);
		if (attnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("patient column \"%s\" does not exist in table \"%s\"",
							col, get_rel_name(relid))));
	}
	else
	{
		AAProtectedRel *rel;

		if (label == NULL)
			return;				/* unclassified: unreadable */
		if (!aa_class_lookup(label, NULL) && !aa_label_unknown_class_ok(label))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown data class \"%s\"", label),
					 errhint("The classes are the rows of agentauth.data_class.")));
		rel = aa_protected_rel(relid);
		if (rel != NULL && subid == rel->patient_attno)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" is the patient column and takes no data class",
							rel->patient_column)));
	}
}

static void
audit_relabel(Oid relid, int32 subid, const char *label)
{
	StringInfoData detail;
	char	   *relname;

	relname = aa_qualified_name(get_namespace_name(get_rel_namespace(relid)),
										 get_rel_name(relid));
	initStringInfo(&detail);
	appendStringInfoString(&detail, "{\"via\": \"security label\", ");
	if (subid != 0)
	{
		appendStringInfoString(&detail, "\"column\": ");
		escape_json(&detail, get_attname(relid, subid, false));
		appendStringInfoString(&detail, ", \"data_class\": ");
	}
	else
		appendStringInfoString(&detail, "\"table_label\": ");
	if (label)
		escape_json(&detail, label);
	else
		appendStringInfoString(&detail, "null");
	appendStringInfoChar(&detail, '}');

	aa_audit_statement("table_protected", "permit", relname, NULL, 0, NULL,
					   detail.data, true);
}

static void
agentauth_relabel(const ObjectAddress *object, const char *seclabel)
{
	if (IsBinaryUpgrade)
		return;
	refuse_in_own_schema(object);
	require_label_admin();
	if (object->classId != RelationRelationId)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("agentauth labels apply only to tables and their columns")));
	check_label(object->objectId, object->objectSubId, seclabel);
	audit_relabel(object->objectId, object->objectSubId, seclabel);
	aa_generation_bump_at_commit();
}

/*
 * agentauth._set_label(tbl regclass, col name, label text): set or remove
 * a label without going through the provider hook, for protect_table(),
 * unprotect_table() and require_approval(), which check and audit
 * themselves.  col NULL: the table's own label.
 */
Datum
aa_set_label(PG_FUNCTION_ARGS)
{
	Oid			relid;
	ObjectAddress addr;
	char	   *label = NULL;

	aa_require_role("agentauth_admin");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table must not be null")));
	relid = PG_GETARG_OID(0);
	addr.classId = RelationRelationId;
	addr.objectId = relid;
	addr.objectSubId = 0;
	if (!PG_ARGISNULL(1))
	{
		char	   *col = NameStr(*PG_GETARG_NAME(1));

		addr.objectSubId = get_attnum(relid, col);
		if (addr.objectSubId <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" does not exist in table \"%s\"",
							col, get_rel_name(relid))));
	}
	if (!PG_ARGISNULL(2))
		label = text_to_cstring(PG_GETARG_TEXT_PP(2));
	refuse_in_own_schema(&addr);
	if (label != NULL || addr.objectSubId != 0)
		check_label(relid, addr.objectSubId, label);
	else
		aa_label_unprotecting(relid);
	SetSecurityLabel(&addr, AA_LABEL_PROVIDER, label);
	CommandCounterIncrement();
	aa_generation_bump_at_commit();
	PG_RETURN_VOID();
}

void
aa_label_init(void)
{
	register_label_provider(AA_LABEL_PROVIDER, agentauth_relabel);
}
