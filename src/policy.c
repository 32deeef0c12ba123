/*-------------------------------------------------------------------------
 *
 * policy.c
 *		Row-level security for protected tables (placeholder).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "agentauth.h"

void
aa_policy_init(void)
{
}
