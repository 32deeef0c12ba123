/*-------------------------------------------------------------------------
 *
 * patient_key.c
 *		The index of patients (patient_key.h): made, and grown by one
 *		element.  The lookup, on every row of a protected scan, is inline
 *		in the header.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "patient_key.h"

/* the index's first size: slots for 32 patients at half load */
#define AA_PINDEX_SLOTS	64

AAPatientIndex *
aa_pindex_create(MemoryContext cxt, Size elem_size, Size key_offset,
				 const char *too_many)
{
	AAPatientIndex *ix = MemoryContextAllocZero(cxt, sizeof(AAPatientIndex));

	Assert(elem_size % 64 == 0 && key_offset + sizeof(PatientKey) <= elem_size);
	ix->cxt = cxt;
	ix->elem_size = elem_size;
	ix->key_offset = key_offset;
	ix->too_many = too_many;
	ix->slots = MemoryContextAllocZero(cxt, sizeof(uint64) * AA_PINDEX_SLOTS);
	ix->mask = AA_PINDEX_SLOTS - 1;
	return ix;
}

/* twice the slots, filled again from the hashes they hold */
static void
grow(AAPatientIndex *ix)
{
	uint32		nslots;
	uint64	   *slots;

	if (ix->mask >= (1U << 30) - 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s", ix->too_many)));
	nslots = (ix->mask + 1) * 2;
	slots = MemoryContextAllocExtended(ix->cxt, sizeof(uint64) * nslots,
									   MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	for (uint32 i = 0; i <= ix->mask; i++)
	{
		uint64		s = ix->slots[i];
		uint32		pos;

		if (s == 0)
			continue;
		pos = (uint32) (s >> 32) & (nslots - 1);
		while (slots[pos] != 0)
			pos = (pos + 1) & (nslots - 1);
		slots[pos] = s;
	}
	pfree(ix->slots);
	ix->slots = slots;
	ix->mask = nslots - 1;
}

/*
 * A new element, zeroed, for a key of hash that aa_pindex_find() did not
 * find (slot: where it stopped).  The caller fills in the key, at
 * key_offset, before the next lookup.  Everything that can fail comes
 * before the element is counted, so an error leaves the index as it was.
 */
void *
aa_pindex_add(AAPatientIndex *ix, uint32 hash, uint32 slot)
{
	uint32		i = ix->members;
	int			b = i / AA_PINDEX_BLOCK;
	char	   *e;

	/* past half full with it: twice the slots, and its free slot again */
	if ((i + 1) * 2 > ix->mask + 1)
	{
		grow(ix);
		for (slot = hash & ix->mask; ix->slots[slot] != 0; slot = (slot + 1) & ix->mask)
			;
	}
	if (b >= ix->nblocks)
	{
		int			n = Max(8, ix->nblocks * 2);

		if (ix->blocks == NULL)
			ix->blocks = MemoryContextAllocZero(ix->cxt, sizeof(char *) * n);
		else
		{
			ix->blocks = repalloc(ix->blocks, sizeof(char *) * n);
			memset(ix->blocks + ix->nblocks, 0, sizeof(char *) * (n - ix->nblocks));
		}
		ix->nblocks = n;
	}
	if (ix->blocks[b] == NULL)
	{
		char	   *raw = MemoryContextAllocHuge(ix->cxt,
												 ix->elem_size * AA_PINDEX_BLOCK + 64);

		ix->blocks[b] = (char *) TYPEALIGN(64, raw);
	}
	e = memset(aa_pindex_at(ix, i), 0, ix->elem_size);
	ix->members++;
	ix->slots[slot] = ((uint64) hash << 32) | ix->members;
	return e;
}
