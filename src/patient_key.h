/*-------------------------------------------------------------------------
 *
 * patient_key.h
 *		A patient id as a key of an in-memory table: two words that stand
 *		for a short id, equality and a hash; and the index of patients
 *		that looks elements up by it (patient_key.c).  The statement's
 *		patient table (access.c, for every row) and consent.c's cache of
 *		patients (for every patient a statement decides) are such indexes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AGENTAUTH_PATIENT_KEY_H
#define AGENTAUTH_PATIENT_KEY_H

#include "common/hashfn.h"
#include "utils/palloc.h"

/*
 * A patient id as a key: str is not NUL-terminated.  A value of at most
 * AA_KEY_INLINE bytes is also held in w, so that a lookup compares two
 * words in the element it already reads instead of calling memcmp() on a
 * copy elsewhere (the common MRN is short; a UUID is not), and hashes them
 * instead of the bytes.
 *
 * w holds two loads of the value that between them cover every byte: for 8
 * to 16 bytes its first 8 and its last 8, for 4 to 7 its first 4 and its
 * last 4 (they overlap when the value is shorter than their sum), for 0 to
 * 3 the bytes themselves.  Two values of the same length have the same w
 * exactly when they have the same bytes, and keys of different lengths
 * never compare equal, so w stands for the value.  Every load stays inside
 * the value: nothing past its end is read.
 */
#define AA_KEY_INLINE	16

typedef struct PatientKey
{
	const char *str;
	int			len;
	uint64		w[AA_KEY_INLINE / sizeof(uint64)];
} PatientKey;

/* a key for value (str, len): its inline words filled when it is short */
static inline void
aa_patient_key(PatientKey *key, const char *str, int len)
{
	key->str = str;
	key->len = len;
	if (len >= 8 && len <= AA_KEY_INLINE)
	{
		memcpy(&key->w[0], str, 8);
		memcpy(&key->w[1], str + len - 8, 8);
	}
	else if (len >= 4 && len < 8)
	{
		uint32		head,
					tail;

		memcpy(&head, str, 4);
		memcpy(&tail, str + len - 4, 4);
		key->w[0] = head;
		key->w[1] = tail;
	}
	else if (len < 4)
	{
		uint64		b = 0;

		for (int i = 0; i < len; i++)
			b = (b << 8) | (unsigned char) str[i];
		key->w[0] = b;
		key->w[1] = 0;
	}
	else
		key->w[0] = key->w[1] = 0;	/* compared and hashed by its bytes */
}

static inline bool
aa_patient_key_equal(const PatientKey *a, const PatientKey *b)
{
	if (a->len != b->len)
		return false;
	if (a->len <= AA_KEY_INLINE)
		return a->w[0] == b->w[0] && a->w[1] == b->w[1];
	return memcmp(a->str, b->str, a->len) == 0;
}

/*
 * The key's hash: for a short value a mix of its two words and its length
 * (a few multiplications, where hash_bytes() walks the bytes), for a longer
 * one hash_bytes().
 */
static inline uint32
aa_patient_key_hash(const PatientKey *key)
{
	uint64		h;

	if (key->len > AA_KEY_INLINE)
		return hash_bytes((const unsigned char *) key->str, key->len);
	h = key->w[0] ^ (key->w[1] * UINT64CONST(0x9e3779b97f4a7c15)) ^
		((uint64) key->len << 59);
	/* the finalizer of MurmurHash3: every input bit moves every output bit */
	h ^= h >> 33;
	h *= UINT64CONST(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64CONST(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return (uint32) h;
}

/*
 * An index of patients: elements of one size (a multiple of the cache
 * line), each holding its PatientKey at key_offset, in blocks of
 * AA_PINDEX_BLOCK that never move (a pointer to one lives as long as the
 * memory context), and an open-addressing index over them whose slots hold
 * a hash and an element number in 8 bytes, at most half of them used.  A
 * probe walks the slots, eight to a cache line, and reads one element: the
 * index of 10,000 patients is 256 kB, where a table of the elements
 * themselves is megabytes and a probe of it reads a line per slot it
 * passes, and where dynahash reads a bucket, an element and a key stored
 * apart from it.
 */
#define AA_PINDEX_BLOCK	64		/* elements per block */

typedef struct AAPatientIndex
{
	uint64	   *slots;			/* hash << 32 | (element number + 1); 0 free */
	uint32		mask;			/* number of slots - 1 */
	uint32		members;
	char	  **blocks;			/* each 64-byte aligned */
	int			nblocks;		/* allocated in blocks[] */
	Size		elem_size;
	Size		key_offset;
	const char *too_many;		/* the error message at the limit */
	MemoryContext cxt;
} AAPatientIndex;

extern AAPatientIndex *aa_pindex_create(MemoryContext cxt, Size elem_size,
										Size key_offset, const char *too_many);
extern void *aa_pindex_add(AAPatientIndex *ix, uint32 hash, uint32 slot);

/* element i (in the order they were added) */
static inline void *
aa_pindex_at(const AAPatientIndex *ix, uint32 i)
{
	return ix->blocks[i / AA_PINDEX_BLOCK] + (Size) (i % AA_PINDEX_BLOCK) * ix->elem_size;
}

/*
 * The element whose key equals key (of hash), NULL when there is none;
 * then *slot is the free slot where aa_pindex_add() puts it.
 */
static inline void *
aa_pindex_find(const AAPatientIndex *ix, const PatientKey *key, uint32 hash,
			   uint32 *slot)
{
	uint32		pos;

	for (pos = hash & ix->mask;; pos = (pos + 1) & ix->mask)
	{
		uint64		s = ix->slots[pos];

		if (s == 0)
			break;
		if ((uint32) (s >> 32) == hash)
		{
			char	   *e = aa_pindex_at(ix, (uint32) s - 1);

			if (aa_patient_key_equal(key, (const PatientKey *) (e + ix->key_offset)))
				return e;
		}
	}
	*slot = pos;
	return NULL;
}

#endif							/* AGENTAUTH_PATIENT_KEY_H */
