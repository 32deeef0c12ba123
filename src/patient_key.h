/*-------------------------------------------------------------------------
 *
 * patient_key.h
 *		A patient id as a key of an in-memory table: two words that stand
 *		for a short id, equality and a hash.  The statement's patient table
 *		(access.c, for every row) and consent.c's cache of patients (for
 *		every patient a statement decides) look patients up by it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AGENTAUTH_PATIENT_KEY_H
#define AGENTAUTH_PATIENT_KEY_H

#include "common/hashfn.h"

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

#endif							/* AGENTAUTH_PATIENT_KEY_H */
