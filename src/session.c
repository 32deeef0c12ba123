/*-------------------------------------------------------------------------
 *
 * session.c
 *		The backend's agentauth session (placeholder until the foundation
 *		work lands the real one).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "agentauth.h"

AASession  *aa_session = NULL;

void
aa_session_init(void)
{
}

void
aa_session_check(void)
{
}

bool
aa_session_scope_allows(const char *data_class, bool write)
{
	return false;
}
