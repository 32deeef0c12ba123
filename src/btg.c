/*-------------------------------------------------------------------------
 *
 * btg.c
 *		Break-the-glass overrides and clinician approvals (placeholder:
 *		no override is ever active, and every write that needs an approval
 *		is refused).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "agentauth.h"

const AABreakGlass *
aa_btg_active_for(const char *patient)
{
	return NULL;
}

void
aa_approval_consume(Oid relid, const char *patient, const char *action,
					pg_uuid_t *approval)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("this write needs a clinician's approval"),
			 errdetail("No unused, unexpired approval covers this agent, table, patient and action.")));
}
