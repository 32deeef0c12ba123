/*-------------------------------------------------------------------------
 *
 * principal_login.c
 *		A principal's login role cannot be dropped while the principal is
 *		not retired.
 *
 *		agentauth.principal names its login by oid (db_role, a regrole).
 *		A role dropped under an active principal left an oid that names
 *		nothing: a dump prints it as a number, and a restore binds the
 *		principal to whatever role has that oid in the new cluster -- an
 *		unrelated login then began the principal's sessions and read under
 *		its consents (1.1, found by review).  Roles are the cluster's, and
 *		DROP ROLE may run in any database, where the principal table cannot
 *		be read; so each non-retired principal's login carries a shared
 *		dependency (pg_shdepend, of the privilege kind) on the principal
 *		table, which PostgreSQL itself checks in every database: DROP ROLE
 *		fails with "privileges for table agentauth.principal in database
 *		...".  Retiring the principal removes it.
 *
 *		The table's trigger keeps the dependencies as rows come, change and
 *		go (a restore's COPY included); agentauth._bind_logins() sets them
 *		again for every principal (the upgrade from 1.0, and after
 *		pg_upgrade or a restore with --disable-triggers, which do not carry
 *		them).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "agentauth.h"

/* the login a principal's row binds: its role, unless retired or gone */
static Oid
bound_login(Relation rel, HeapTuple tuple)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			role_att = SPI_fnumber(desc, "db_role");
	int			status_att = SPI_fnumber(desc, "status");
	bool		isnull;
	Datum		d;
	Oid			role;

	if (role_att <= 0 || status_att <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("agentauth.principal has no db_role or status column")));
	d = heap_getattr(tuple, role_att, desc, &isnull);
	if (isnull)
		return InvalidOid;
	role = DatumGetObjectId(d);
	d = heap_getattr(tuple, status_att, desc, &isnull);
	if (isnull || strcmp(TextDatumGetCString(d), "retired") == 0)
		return InvalidOid;
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		return InvalidOid;
	return role;
}

/*
 * Drop the dependency of old, add new's (either may be InvalidOid).  The
 * member arrays are palloc'd: updateAclDependencies frees them.
 */
static void
rebind(Relation rel, Oid old, Oid new)
{
	Oid		   *oldm = palloc(sizeof(Oid));
	Oid		   *newm = palloc(sizeof(Oid));

	oldm[0] = old;
	newm[0] = new;
	updateAclDependencies(RelationRelationId, RelationGetRelid(rel), 0,
						  rel->rd_rel->relowner,
						  OidIsValid(old) ? 1 : 0, oldm,
						  OidIsValid(new) ? 1 : 0, newm);
}

PG_FUNCTION_INFO_V1(aa_principal_login_trigger);

/* AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW on agentauth.principal */
Datum
aa_principal_login_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Oid			old = InvalidOid;
	Oid			new = InvalidOid;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("agentauth._principal_login() must be an AFTER ... FOR EACH ROW trigger")));
	if (!TRIGGER_FIRED_BY_INSERT(td->tg_event))
		old = bound_login(td->tg_relation, td->tg_trigtuple);
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		new = bound_login(td->tg_relation, td->tg_trigtuple);
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		new = bound_login(td->tg_relation, td->tg_newtuple);
	if (old != new)
		rebind(td->tg_relation, old, new);
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(aa_bind_logins);

/*
 * agentauth._bind_logins(): every non-retired principal's login depends on
 * the principal table, once; returns how many.  Superuser only.
 */
Datum
aa_bind_logins(PG_FUNCTION_ARGS)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	int64		n = 0;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser may bind the principals' logins")));
	rel = table_open(get_relname_relid("principal", get_namespace_oid(AA_SCHEMA, false)),
					 RowExclusiveLock);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Oid			role = bound_login(rel, tuple);

		if (!OidIsValid(role))
			continue;
		rebind(rel, role, InvalidOid);	/* never twice */
		rebind(rel, InvalidOid, role);
		n++;
	}
	table_endscan(scan);
	table_close(rel, RowExclusiveLock);
	PG_RETURN_INT64(n);
}
