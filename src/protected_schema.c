/*-------------------------------------------------------------------------
 *
 * protected_schema.c
 *		Protected schemas: every table created in a schema declared as
 *		holding PHI (agentauth.protect_schema), or renamed or moved into
 *		it, is protected by the statement that made it, before that
 *		statement's transaction commits.
 *
 *		The object-access hook (utility.c) tells this file of every
 *		relation created (CREATE TABLE, CREATE TABLE AS, SELECT INTO,
 *		CREATE TABLE LIKE, PARTITION OF, CREATE MATERIALIZED VIEW, IMPORT
 *		FOREIGN SCHEMA ...), of every column added, and of every relation
 *		altered (ALTER TABLE ... SET SCHEMA, RENAME).  After each utility
 *		statement (utility.c), the relations it made or changed in a
 *		protected schema are handed to agentauth._protect_in_schema(),
 *		which protects them by the schema's declaration or refuses the
 *		statement (42501: no patient column, a column no class covers, a
 *		materialized view or a foreign table).  The call runs as the
 *		bootstrap superuser, passing the agentauth_admin check on behalf of
 *		the role that made the table, whom the records name.
 *
 *		The declaration is read on the latest snapshot after taking a lock
 *		on the schema that protect_schema() takes exclusively: a table made
 *		while protect_schema() runs is either seen by it or sees it.
 *
 *		Before a utility statement: renaming a protected schema is refused
 *		(its declaration is by name).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "agentauth.h"

PG_FUNCTION_INFO_V1(aa_lock_schema);

/* a protected schema's declaration, as the library caches it */
typedef struct ProtectedSchema
{
	char	   *name;			/* declared by name: a schema dropped and
								 * made again, by any OID, is it */
	char	   *patient_column;
	char	   *column_classes; /* jsonb text */
	char	   *default_class;	/* or NULL */
} ProtectedSchema;

/*
 * Relations made (or given a column), and relations altered, by the utility
 * statement under way; in TopTransactionContext.  An altered relation
 * counts only after a statement that renames or moves one: the statements
 * protect_table() runs itself (ALTER TABLE ... ENABLE ROW LEVEL SECURITY)
 * alter the table it is protecting.
 *
 * Each utility statement takes only its own: a statement run inside
 * another (a function's CREATE TABLE under a CREATE TABLE AS) sets the
 * outer one's aside and puts them back when it ends.  Were they one list,
 * the inner statement would protect the outer one's table inside a
 * subtransaction that may roll back, and the outer one, finding nothing,
 * would leave it unprotected.
 */
static List *pending = NIL;
static List *pending_moved = NIL;

/*
 * The sensitive classes read by the client's statement under way, each
 * with a table it read it from ("class" then "table", pairs), in
 * read_sensitive_cxt.  The client's statement: from its message
 * (statement_timestamp(), which a DO block, a function or a procedure
 * keeps across its COMMITs), and from its top-level utility statement when
 * one message holds several.  A table made in a protected schema must
 * carry them: the schema's declaration labels the new columns by name,
 * and would pass HIV results on as "lab" (an outside review of 1.1).
 */
static List *read_sensitive = NIL;
static MemoryContext read_sensitive_cxt = NULL;
static TimestampTz read_sensitive_stmt = 0;

/* what the client's statement under way read (an earlier one's forgotten) */
static List *
current_read_sensitive(void)
{
	if (read_sensitive != NIL &&
		read_sensitive_stmt != GetCurrentStatementStartTimestamp())
		aa_protected_schema_toplevel();
	return read_sensitive;
}
static bool callback_registered = false;
static uint64 xact_ends = 0;	/* transactions ended since then */

/* protecting now: what that does itself is not pending */
static bool protecting = false;

/* the declarations, valid while the generation has not moved */
static List *schemas = NIL;		/* ProtectedSchema *, in cache_cxt */
static MemoryContext cache_cxt = NULL;
static uint64 cache_gen = 0;
static bool cache_valid = false;

static void
pending_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
	{
		pending = NIL;
		pending_moved = NIL;
		xact_ends++;
	}
}

/*
 * Called by the one object-access hook (utility.c): a relation was
 * created, a column added, or a relation altered.
 */
void
aa_protected_schema_object(int access, Oid classId,
						   Oid objectId, int subId, void *arg)
{
	MemoryContext oldcxt;

	if (classId != RelationRelationId || protecting ||
		!IsTransactionState() || IsBinaryUpgrade)
		return;
	if (access == OAT_POST_CREATE)
	{
		/* transient heaps of CLUSTER, VACUUM FULL, REFRESH, rewrites */
		if (arg && ((ObjectAccessPostCreate *) arg)->is_internal)
			return;
	}
	else if (access == OAT_POST_ALTER)
	{
		if (subId != 0 ||
			(arg && ((ObjectAccessPostAlter *) arg)->is_internal))
			return;
	}
	else
		return;

	if (!callback_registered)
	{
		RegisterXactCallback(pending_xact_callback, NULL);
		callback_registered = true;
	}
	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	if (access == OAT_POST_CREATE)
		pending = list_append_unique_oid(pending, objectId);
	else
		pending_moved = list_append_unique_oid(pending_moved, objectId);
	MemoryContextSwitchTo(oldcxt);
}

/* installed, not in its own script, and the 1.1 catalog is there */
static bool
schemas_ready(void)
{
	Oid			ext;
	Oid			nsp;

	if (!IsTransactionState() || IsBinaryUpgrade)
		return false;
	ext = get_extension_oid("agentauth", true);
	if (!OidIsValid(ext) || (creating_extension && CurrentExtensionObject == ext))
		return false;
	nsp = get_namespace_oid(AA_SCHEMA, true);
	return OidIsValid(nsp) && OidIsValid(get_relname_relid("protected_schema", nsp));
}

static void
load_schemas(void)
{
	AASpiState	spi;
	uint64		gen = aa_generation();

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(TopMemoryContext,
										  "agentauth protected schemas",
										  ALLOCSET_SMALL_SIZES);
	if (cache_valid && cache_gen == gen)
		return;
	MemoryContextReset(cache_cxt);
	schemas = NIL;
	cache_valid = false;

	aa_spi_begin(&spi, true);
	if (SPI_execute("SELECT p.schema_name::pg_catalog.text, p.patient_column::pg_catalog.text, "
					"       p.column_classes::pg_catalog.text, p.default_class "
					"  FROM agentauth.protected_schema p",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read agentauth.protected_schema");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext oldcxt;
		ProtectedSchema *ps;
		char	   *name = SPI_getvalue(tup, desc, 1);
		char	   *patient = SPI_getvalue(tup, desc, 2);
		char	   *classes = SPI_getvalue(tup, desc, 3);
		char	   *def = SPI_getvalue(tup, desc, 4);

		oldcxt = MemoryContextSwitchTo(cache_cxt);
		ps = palloc0(sizeof(ProtectedSchema));
		ps->name = pstrdup(name);
		ps->patient_column = pstrdup(patient);
		ps->column_classes = pstrdup(classes);
		ps->default_class = def ? pstrdup(def) : NULL;
		schemas = lappend(schemas, ps);
		MemoryContextSwitchTo(oldcxt);
	}
	aa_spi_end(&spi);
	cache_gen = gen;
	cache_valid = true;
}

/* the declaration of the schema of this name, or NULL */
static ProtectedSchema *
declaration_named(const char *name)
{
	ListCell   *lc;

	if (name == NULL)
		return NULL;
	load_schemas();
	foreach(lc, schemas)
	{
		ProtectedSchema *ps = lfirst(lc);

		if (strcmp(ps->name, name) == 0)
			return ps;
	}
	return NULL;
}

static ProtectedSchema *
schema_declaration(Oid nsp)
{
	return declaration_named(get_namespace_name(nsp));
}

/* protect relid by the declaration ps, or refuse (an ERROR) */
static void
protect_one(Oid relid, ProtectedSchema *ps)
{
	AASpiState	spi;
	Oid			argtypes[4] = {REGCLASSOID, NAMEOID, JSONBOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	Datum		patient = DirectFunctionCall1(namein,
											  CStringGetDatum(ps->patient_column));
	Datum		classes = DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(ps->column_classes));

	values[0] = ObjectIdGetDatum(relid);
	values[1] = patient;
	values[2] = classes;
	values[3] = ps->default_class ? CStringGetTextDatum(ps->default_class) : (Datum) 0;
	if (ps->default_class == NULL)
		nulls[3] = 'n';

	aa_spi_begin(&spi, false);
	if (SPI_execute_with_args("SELECT agentauth._protect_in_schema($1, $2, $3, $4)",
							  4, argtypes, values, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not protect a table of a protected schema");
	aa_spi_end(&spi);
}

static void
protect_all(List *todo, List *decls)
{
	protecting = true;
	aa_admin_on_behalf++;
	PG_TRY();
	{
		ListCell   *lc;
		ListCell   *lc2;

		forboth(lc, todo, lc2, decls)
			protect_one(lfirst_oid(lc), lfirst(lc2));
	}
	PG_FINALLY();
	{
		protecting = false;
		aa_admin_on_behalf--;
	}
	PG_END_TRY();
}

/*
 * A table its maker protects without an administrator's decision carries
 * none of the code the DDL guard would refuse to attach once it is
 * protected (ddl.c): a CHECK, a trigger, a rule ... made inline or by a
 * statement run inside the one making it, before it was protected, would
 * see every later row outside the row check.  A superuser may; the
 * tables protect_schema() protects are the administrator's decision.
 */
static void
refuse_makers_code(Oid relid)
{
	char		relkind = get_rel_relkind(relid);
	char	   *code;

	if (superuser() ||
		(relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE) ||
		get_rel_relispartition(relid) ||	/* partition.c: its parent's */
		aa_is_protected(relid))
		return;
	/* what partition.c refuses on a new partition; and a maker's types */
	code = aa_attached_code(InvalidOid, relid);
	if (code == NULL)
	{
		Relation	rel = relation_open(relid, AccessShareLock);
		TupleDesc	desc = RelationGetDescr(rel);

		for (int i = 0; code == NULL && i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped && !aa_owner_code_type_trusted(att->atttypid))
				code = psprintf("column %s, of a type or domain a non-superuser made",
								quote_identifier(NameStr(att->attname)));
		}
		relation_close(rel, AccessShareLock);
	}
	if (code != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("table %s in protected schema %s carries %s",
						get_rel_name(relid),
						get_namespace_name(get_rel_namespace(relid)), code),
				 errdetail("Code attached to a protected table sees whole rows outside the row check; only a superuser may attach it."),
				 errhint("Make the table without it, or have a superuser make it, or make it in a schema that is not protected.")));
}

/* a utility statement begins (utility.c): the running ones' set aside */
void
aa_protected_schema_utility_begin(AAPendingRelations *outer)
{
	outer->made = pending;
	outer->moved = pending_moved;
	outer->xact_ends = xact_ends;
	pending = NIL;
	pending_moved = NIL;
}

/* ... and ends, done or failed: theirs back (its own are done or gone) */
void
aa_protected_schema_utility_end(const AAPendingRelations *outer)
{
	/* a procedure's COMMIT ended the transaction they were in: gone */
	if (outer->xact_ends != xact_ends)
		return;
	pending = outer->made;
	pending_moved = outer->moved;
}

/* a top-level utility statement begins (utility.c): nothing read yet */
void
aa_protected_schema_toplevel(void)
{
	if (read_sensitive_cxt != NULL)
		MemoryContextReset(read_sensitive_cxt);
	read_sensitive = NIL;
}

/*
 * A statement running inside a utility statement (CREATE TABLE AS's
 * query, a DO block's) read a column of a sensitive class: noted for the
 * tables that utility statement makes.  Outside one, nothing to note.
 */
void
aa_protected_schema_read_sensitive(const char *cls, const char *relname)
{
	MemoryContext old;

	if (!IsTransactionState())
		return;
	current_read_sensitive();
	read_sensitive_stmt = GetCurrentStatementStartTimestamp();
	for (int i = 0; i + 1 < list_length(read_sensitive); i += 2)
		if (strcmp(list_nth(read_sensitive, i), cls) == 0)
			return;
	if (read_sensitive_cxt == NULL)
		read_sensitive_cxt = AllocSetContextCreate(TopMemoryContext,
												   "agentauth sensitive reads",
												   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(read_sensitive_cxt);
	read_sensitive = lappend(read_sensitive, pstrdup(cls));
	read_sensitive = lappend(read_sensitive, pstrdup(relname));
	MemoryContextSwitchTo(old);
}

/*
 * A table just protected by its schema's declaration holds what its
 * statement read.  When that was of a sensitive class, every row of the
 * copy is that class's data (the rows a filter on it chose, the values
 * taken from it), whichever column a value landed in: every column but
 * the patient's must be of that class -- one decoy column of it and the
 * rest "lab" passed HIV results on as lab.  Two sensitive classes read
 * cannot be told apart per column: classified by hand.
 */
static void
refuse_lost_sensitivity(Oid relid)
{
	AAProtectedRel *prot = aa_protected_rel(relid);
	const char *cls;
	const char *from;
	bool		carried = false;

	if (prot == NULL || current_read_sensitive() == NIL)
		return;
	cls = list_nth(read_sensitive, 0);
	from = list_nth(read_sensitive, 1);
	if (list_length(read_sensitive) > 2)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("table %s would hold data of sensitive classes \"%s\" and \"%s\", which its schema's declaration cannot tell apart",
						prot->relname, cls, (char *) list_nth(read_sensitive, 2)),
				 errdetail("A table made in a protected schema is classified by the schema's declaration; a copy must stay as protected as its source."),
				 errhint("Make the table first, classify each column with agentauth.protect_table, then fill it.")));
	for (int a = 1; a <= prot->natts; a++)
	{
		if (prot->att_name[a] == NULL || a == prot->patient_attno)
			continue;
		/* a surrogate key the declaration names non_phi holds no value read */
		if (prot->att_class[a] != NULL && strcmp(prot->att_class[a], AA_NON_PHI) == 0)
			continue;
		carried = true;
		if (prot->att_class[a] == NULL || strcmp(prot->att_class[a], cls) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("table %s would hold data of sensitive class \"%s\" read from %s, but its schema's declaration classes column \"%s\" as %s",
							prot->relname, cls, from, prot->att_name[a],
							prot->att_class[a] ? prot->att_class[a] : "nothing"),
					 errdetail("Every row of a copy made from %s data is %s data: a copy must stay as protected as its source.",
							   cls, cls),
					 errhint("Declare the table's columns as \"%s\" in the schema's declaration, or make the table first, classify it with agentauth.protect_table, then fill it.",
							 cls)));
	}
	/* the patient column alone: which patients have such rows, unclassed */
	if (!carried)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("table %s would hold data of sensitive class \"%s\" read from %s in its patient column alone, which takes no class",
						prot->relname, cls, from),
				 errdetail("Which patients a copy made from %s data lists is %s data: a copy must stay as protected as its source.",
						   cls, cls),
				 errhint("Give the table a column of class \"%s\" (a flag, a date), or make it first, classify it with agentauth.protect_table, then fill it.",
						 cls)));
}

/*
 * After a utility statement ran (utility.c): protect what it made or
 * changed in a protected schema, or refuse it.
 */
void
aa_protected_schema_utility_done(Node *stmt)
{
	List	   *relids;
	List	   *todo = NIL;
	List	   *decls = NIL;
	ListCell   *lc;

	relids = pending;
	if (IsA(stmt, RenameStmt) || IsA(stmt, AlterObjectSchemaStmt))
		relids = list_concat_unique_oid(relids, pending_moved);
	pending = NIL;
	pending_moved = NIL;
	if (relids == NIL || protecting || !schemas_ready())
		return;

	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);
		Oid			nsp = get_rel_namespace(relid);
		ProtectedSchema *ps;

		if (!OidIsValid(nsp) || isAnyTempNamespace(nsp) ||
			IsCatalogNamespace(nsp) || IsToastNamespace(nsp))
			continue;

		/*
		 * protect_schema() holds it exclusively until it commits; then the
		 * latest snapshot sees its declaration
		 */
		LockDatabaseObject(NamespaceRelationId, nsp, 0, AccessShareLock);
		ps = schema_declaration(nsp);
		if (ps == NULL)
			continue;
		refuse_makers_code(relid);
		todo = lappend_oid(todo, relid);
		decls = lappend(decls, ps);
	}
	if (todo == NIL)
		return;

	protect_all(todo, decls);
	if (current_read_sensitive() != NIL)
	{
		foreach(lc, todo)
			refuse_lost_sensitivity(lfirst_oid(lc));
	}
}

/*
 * A protected table of a protected schema leaves its name -- dropped
 * (ddl.c, before the drop), renamed or moved out (below): what an
 * administrator set on it beyond the declaration (require_approval, its
 * columns reclassified) is kept under the name for the table that takes
 * it next, as a rebuild by DROP and CREATE TABLE AS, or by a new table
 * renamed in, does (1.1, found by review: the settings went with the
 * dropped table).  Returns what was kept, as jsonb text, or NULL.
 */
char *
aa_protected_schema_keep(Oid relid)
{
	AASpiState	spi;
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		values[1];
	char	   *kept = NULL;

	if (!schemas_ready() || schema_declaration(get_rel_namespace(relid)) == NULL)
		return NULL;
	values[0] = ObjectIdGetDatum(relid);
	aa_spi_begin(&spi, false);
	if (SPI_execute_with_args("SELECT agentauth._keep_table_settings($1)::pg_catalog.text",
							  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not keep the settings of a table of a protected schema");
	kept = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (kept != NULL)
		kept = MemoryContextStrdup(CurTransactionContext, kept);
	aa_spi_end(&spi);
	return kept;
}

/*
 * ALTER TABLE ... RENAME TO (or ALTER INDEX ... RENAME TO, which PostgreSQL
 * takes for a table too: 1.1, found by review), ALTER TABLE ... SET
 * SCHEMA: the table it names, if protected
 */
static Oid
table_leaving_name(Node *stmt)
{
	RangeVar   *rv = NULL;
	Oid			relid;

	if (IsA(stmt, RenameStmt) && ((RenameStmt *) stmt)->subname == NULL &&
		aa_renames_relation((RenameStmt *) stmt))
		rv = ((RenameStmt *) stmt)->relation;
	else if (IsA(stmt, AlterObjectSchemaStmt) &&
			 ((AlterObjectSchemaStmt *) stmt)->objectType == OBJECT_TABLE)
		rv = ((AlterObjectSchemaStmt *) stmt)->relation;
	if (rv == NULL)
		return InvalidOid;
	relid = RangeVarGetRelid(rv, NoLock, true);
	if (!OidIsValid(relid) || aa_protected_rel(relid) == NULL)
		return InvalidOid;
	return relid;
}

/*
 * Before a utility statement (utility.c): a protected schema is declared
 * by name, so it keeps its name; a protected table that leaves its name
 * leaves its settings under it.
 */
void
aa_protected_schema_check(Node *stmt)
{
	RenameStmt *rs;
	Oid			nsp;
	Oid			leaving = table_leaving_name(stmt);
	char	   *kept;

	/* recorded, as a drop's kept settings are */
	if (OidIsValid(leaving) && (kept = aa_protected_schema_keep(leaving)) != NULL)
		aa_audit_statement("table_protected", "permit", pstrdup(aa_protected_rel(leaving)->relname), NULL,
						   0, NULL,
						   psprintf("{\"via\": \"%s\", \"kept\": %s}",
									IsA(stmt, RenameStmt) ? "rename" : "set schema", kept),
						   true);
	if (!IsA(stmt, RenameStmt))
		return;
	rs = (RenameStmt *) stmt;
	if (rs->renameType != OBJECT_SCHEMA || rs->subname == NULL)
		return;
	if (!schemas_ready())
		return;

	/*
	 * Nor does a schema take a declared name: the tables it holds would be
	 * in a protected schema, unprotected.
	 */
	if (declaration_named(rs->newname) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot rename schema %s to %s: that name is declared a protected schema",
						quote_identifier(rs->subname), quote_identifier(rs->newname)),
				 errdetail("The tables it holds would be in a protected schema, unprotected."),
				 errhint("Create the schema under that name and make its tables there, or have an administrator run agentauth.unprotect_schema() first.")));
	nsp = get_namespace_oid(rs->subname, true);
	if (!OidIsValid(nsp) || schema_declaration(nsp) == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot rename protected schema %s", quote_identifier(rs->subname)),
			 errdetail("A protected schema is declared by its name: tables made under the new name would not be protected."),
			 errhint("An administrator runs agentauth.unprotect_schema(), renames it, and runs agentauth.protect_schema() on the new name.")));
}

/*
 * agentauth._lock_schema(nsp oid): for protect_schema().  Waits for the
 * transactions that created relations in the schema (they hold a lock on
 * it) and keeps new ones out until the caller's transaction ends.
 */
Datum
aa_lock_schema(PG_FUNCTION_ARGS)
{
	aa_require_role("agentauth_admin");
	LockDatabaseObject(NamespaceRelationId, PG_GETARG_OID(0), 0,
					   AccessExclusiveLock);
	PG_RETURN_VOID();
}
