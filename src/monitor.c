/*-------------------------------------------------------------------------
 *
 * monitor.c
 *		Alert rules evaluated by the audit writer (placeholder).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "agentauth.h"

void
aa_monitor_init(void)
{
}
