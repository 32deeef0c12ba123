/*-------------------------------------------------------------------------
 *
 * partition_label.c
 *		The labels of partitions, read straight from pg_seclabel (not
 *		through label.c's cache, which calls in here while it loads), and
 *		the rule that keeps a partition without them closed.
 *
 *		A partition of a protected table, and a partitioned table holding
 *		a protected partition, that carry no table label of their own --
 *		labels set one by one with SECURITY LABEL, a restore cut short --
 *		count as protected with nothing classified (label.c): no column is
 *		readable and no row passes the check, until protect_table() on the
 *		partitioned table classifies every partition (partition.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/objectaddress.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/seclabel.h"
#include "utils/lsyscache.h"

#include "agentauth.h"

/* a label of ours on a relation (subid 0) or one of its columns, or NULL */
char *
aa_partition_label(Oid relid, int32 subid)
{
	ObjectAddress addr;

	addr.classId = RelationRelationId;
	addr.objectId = relid;
	addr.objectSubId = subid;
	return GetSecurityLabel(&addr, AA_LABEL_PROVIDER);
}

/* the nearest ancestor of a partition with a table label, or InvalidOid */
Oid
aa_partition_labelled_ancestor(Oid relid)
{
	ListCell   *lc;

	if (!get_rel_relispartition(relid))
		return InvalidOid;
	foreach(lc, get_partition_ancestors(relid))
		if (aa_partition_label(lfirst_oid(lc), 0) != NULL)
			return lfirst_oid(lc);
	return InvalidOid;
}

/*
 * relid has no table label of ours.  Must it count as protected all the
 * same (label.c)?  A partition under a protected table, or a partitioned
 * table with a protected partition.
 */
bool
aa_partition_unlabelled_protected(Oid relid, char relkind)
{
	ListCell   *lc;

	if (OidIsValid(aa_partition_labelled_ancestor(relid)))
		return true;
	if (relkind != RELKIND_PARTITIONED_TABLE)
		return false;
	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
		if (lfirst_oid(lc) != relid && aa_partition_label(lfirst_oid(lc), 0) != NULL)
			return true;
	return false;
}
