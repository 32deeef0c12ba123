/*-------------------------------------------------------------------------
 *
 * record_stored.c
 *		canonical(stored row), for verify_audit: a record (encoding
 *		version 1) or a unit (version 2: the same 21 fields, then the four
 *		entry arrays, the authorities with each consent id of
 *		entry_consents rebuilt as its text).  The writer hashes the same bytes built from the
 *		queue (record.c, unit.c); agentauth.canonical_stored() in SQL and
 *		tools/aa_verify.c build them independently.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/arrayaccess.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "agentauth.h"
#include "record_int.h"

/* ------------------------------------------------------------------
 * The stored form: canonical(record) of a row, for verify_audit
 *
 * verify_audit encodes every row of the log, so this path allocates
 * nothing per row: it writes straight into the caller's buffer (grown
 * once), reads text and arrays where they lie in the tuple (no detoast
 * copy unless toasted), and remembers the text of the last value of each
 * jsonb column (records of one statement repeat their authority).
 * ------------------------------------------------------------------
 */

/* room for n more bytes (and the terminating zero) at buf->data + buf->len */
static inline char *
buf_room(StringInfo buf, int n)
{
	if (buf->len + n >= buf->maxlen)
		enlargeStringInfo(buf, n);
	return buf->data + buf->len;
}

/* tag, 4-byte length, len bytes already in UTF-8 */
static inline void
put_tagged(StringInfo buf, char tag, const char *s, uint32 len)
{
	char	   *p = buf_room(buf, 5 + len);
	uint32		be = pg_hton32(len);

	p[0] = tag;
	memcpy(p + 1, &be, 4);
	memcpy(p + 5, s, len);
	buf->len += 5 + len;
}

/* a string field of a stored row: in UTF-8 already unless db_utf8 is false */
static inline void
put_string(StringInfo buf, char tag, const char *s, int len, bool db_utf8)
{
	if (db_utf8)
		put_tagged(buf, tag, s, len);
	else
		aa_canon_string(buf, tag, s, len);
}

static void
canon_text_datum(StringInfo buf, Datum d, bool db_utf8)
{
	text	   *t = (text *) PG_DETOAST_DATUM_PACKED(d);

	put_string(buf, AA_TAG_TEXT, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), db_utf8);
	if ((Pointer) t != DatumGetPointer(d))
		pfree(t);
}

/* an array the general way: deconstructed from an aligned copy */
static void
canon_array_general(StringInfo buf, Datum d, bool is_uuid, bool db_utf8)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	int			n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	array_iter	it;

	canon_array_header(buf, n);
	array_iter_setup(&it, (AnyArrayType *) arr);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		e;

		if (is_uuid)
			e = array_iter_next(&it, &isnull, i, UUID_LEN, false, TYPALIGN_CHAR);
		else
			e = array_iter_next(&it, &isnull, i, -1, false, TYPALIGN_INT);
		if (isnull)
			canon_null(buf);
		else if (is_uuid)
			canon_uuid(buf, DatumGetUUIDP(e));
		else
			canon_text_datum(buf, e, db_utf8);
	}
	if ((Pointer) arr != DatumGetPointer(d))
		pfree(arr);
}

/*
 * An array field.  The common case -- inline, at most one dimension, no
 * NULL element -- is read where it lies, even with a 1-byte header (which
 * leaves the array unaligned in the tuple): offsets are taken from where
 * the array's 4-byte header would begin, the base every alignment inside
 * an array is relative to.  Anything else, or anything that does not add
 * up, goes the general way (which reads it exactly as before).
 */
static void
canon_array_datum(StringInfo buf, Datum d, bool is_uuid, bool db_utf8)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	int			start = buf->len;
	const char *base;
	int32		ndim;
	int32		dataoffset;
	int32		n = 0;
	uint32		end;
	uint32		off;

	if (VARATT_IS_EXTENDED(v) && !VARATT_IS_SHORT(v))
		goto general;
	base = VARATT_IS_SHORT(v) ? (const char *) v - (VARHDRSZ - VARHDRSZ_SHORT) :
		(const char *) v;
	end = (const char *) v + VARSIZE_ANY(v) - base;
	if (end < sizeof(ArrayType) + sizeof(int32))
		goto general;
	/* ndim, dataoffset: the ArrayType fields after the 4-byte header */
	memcpy(&ndim, base + offsetof(ArrayType, ndim), sizeof(int32));
	memcpy(&dataoffset, base + offsetof(ArrayType, dataoffset), sizeof(int32));
	if (dataoffset != 0 || ndim < 0 || ndim > 1)
		goto general;
	if (ndim == 1)
		memcpy(&n, base + sizeof(ArrayType), sizeof(int32));	/* dims[0] */
	off = ARR_OVERHEAD_NONULLS(ndim);
	if (n < 0 || off > end)
		goto general;

	canon_array_header(buf, n);
	for (int32 i = 0; i < n; i++)
	{
		if (is_uuid)
		{
			if (end - off < UUID_LEN)
				goto general;
			canon_uuid(buf, (const pg_uuid_t *) (base + off));
			off += UUID_LEN;
		}
		else
		{
			const char *e;
			uint32		elen;

			off = INTALIGN(off);
			e = base + off;
			if (off >= end || (!VARATT_IS_SHORT(e) && end - off < VARHDRSZ))
				goto general;
			elen = VARSIZE_ANY(e);
			if (elen > end - off || VARATT_IS_EXTERNAL(e) || VARATT_IS_COMPRESSED(e))
				goto general;
			put_string(buf, AA_TAG_TEXT, VARDATA_ANY(e), VARSIZE_ANY_EXHDR(e), db_utf8);
			off += elen;
		}
	}
	return;

general:
	buf->len = start;
	canon_array_general(buf, d, is_uuid, db_utf8);
}

/*
 * A jsonb field: its text (JsonbToCString), taken from the cache when the
 * binary value is the one last seen in this column.
 */
static void
canon_jsonb_datum(StringInfo buf, Datum d, AACanonJsonb *cache, bool db_utf8)
{
	struct varlena *v = PG_DETOAST_DATUM_PACKED(d);
	const char *bin = VARDATA_ANY(v);
	int			binlen = VARSIZE_ANY_EXHDR(v);

	if (!cache->valid || cache->bin.len != binlen ||
		memcmp(cache->bin.data, bin, binlen) != 0)
	{
		Jsonb	   *jb;

		/* an aligned copy with a 4-byte header for the jsonb reader */
		resetStringInfo(&cache->bin);
		appendBinaryStringInfo(&cache->bin, "\0\0\0\0", VARHDRSZ);
		appendBinaryStringInfo(&cache->bin, bin, binlen);
		jb = (Jsonb *) cache->bin.data;
		SET_VARSIZE(jb, VARHDRSZ + binlen);
		resetStringInfo(&cache->text);
		JsonbToCString(&cache->text, &jb->root, VARSIZE(jb));
		/* the key: the value's bytes without the header */
		memmove(cache->bin.data, cache->bin.data + VARHDRSZ, binlen);
		cache->bin.len = binlen;
		cache->valid = true;
	}
	if ((Pointer) v != DatumGetPointer(d))
		pfree(v);
	put_string(buf, AA_TAG_JSONB, cache->text.data, cache->text.len, db_utf8);
}

/*
 * A unit's smallint[] (kinds) or bigint[] (row counts): each element as a
 * bigint, 'i' and 8 big-endian bytes; a NULL element the NULL tag.
 */
static void
canon_number_array(StringInfo buf, Datum d, Oid elemtype)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *enulls;
	int			n;

	if (elemtype == INT2OID)
		deconstruct_array(arr, INT2OID, sizeof(int16), true, TYPALIGN_SHORT,
						  &elems, &enulls, &n);
	else
		deconstruct_array(arr, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &elems, &enulls, &n);
	canon_array_header(buf, n);
	for (int i = 0; i < n; i++)
	{
		if (enulls[i])
			canon_null(buf);
		else
			canon_8bytes(buf, AA_TAG_INT8, elemtype == INT2OID ?
						 (uint64) (int64) DatumGetInt16(elems[i]) :
						 (uint64) DatumGetInt64(elems[i]));
	}
}

/*
 * A unit's authorities: each element of its jsonb[] as a jsonb field,
 * except where its uuid[] of consents (when not NULL) has an element: that
 * entry's authority is the consent's, {"consents": ["<id>"]}, rebuilt.  As
 * many elements as the longer array (arrays that disagree are flagged by
 * aa_record_well_formed; agentauth._entry_authorities merges alike).
 */
static void
canon_authority_array(StringInfo buf, Datum d, const Datum *consents,
					  AACanonJsonb *cache, bool db_utf8)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *enulls;
	int			n;
	Datum	   *ids = NULL;
	bool	   *idnulls = NULL;
	int			nids = 0;
	char		text[AA_CONSENT_AUTH_LEN];

	deconstruct_array(arr, JSONBOID, -1, false, TYPALIGN_INT,
					  &elems, &enulls, &n);
	if (consents != NULL)
		deconstruct_array(DatumGetArrayTypeP(*consents), UUIDOID, UUID_LEN,
						  false, TYPALIGN_CHAR, &ids, &idnulls, &nids);
	canon_array_header(buf, Max(n, nids));
	for (int i = 0; i < Max(n, nids); i++)
	{
		if (i < nids && !idnulls[i])
		{
			aa_consent_authority_text(DatumGetUUIDP(ids[i]), text);
			put_tagged(buf, AA_TAG_JSONB, text, AA_CONSENT_AUTH_LEN);
		}
		else if (i < n && !enulls[i])
			canon_jsonb_datum(buf, elems[i], cache, db_utf8);
		else
			canon_null(buf);
	}
}

void
aa_record_canon_cache_init(AACanonCache *cache)
{
	for (int i = 0; i < 2; i++)
	{
		initStringInfo(&cache->jsonb[i].bin);
		initStringInfo(&cache->jsonb[i].text);
		cache->jsonb[i].valid = false;
	}
	cache->natts = AA_AUDIT_NATTS;
}

/*
 * canonical(record) of a stored row, from its deformed columns, appended
 * to buf; cache keeps the last jsonb texts between calls (set up by
 * aa_record_canon_cache_init).
 */
void
aa_record_canon_stored(StringInfo buf, const Datum *values, const bool *nulls,
					   AACanonCache *cache)
{
	int			enc = GetDatabaseEncoding();
	bool		db_utf8 = (enc == PG_UTF8 || enc == PG_SQL_ASCII);

	bool		unit = cache->natts > AA_COL_ENTRY_KINDS && !nulls[AA_COL_ENTRY_KINDS];

	appendStringInfoCharMacro(buf, unit ? AA_CANON_VERSION_UNIT : AA_CANON_VERSION);
	for (int col = AA_COL_SEQ; col <= AA_COL_DETAIL; col++)
	{
		Datum		d = values[col];

		if (nulls[col])
		{
			canon_null(buf);
			continue;
		}
		switch (aa_record_column_type(col))
		{
			case INT8OID:
				canon_8bytes(buf, AA_TAG_INT8, (uint64) DatumGetInt64(d));
				break;
			case TIMESTAMPTZOID:
				canon_8bytes(buf, AA_TAG_TIMESTAMPTZ, (uint64) DatumGetTimestampTz(d));
				break;
			case UUIDOID:
				canon_uuid(buf, DatumGetUUIDP(d));
				break;
			case UUIDARRAYOID:
				canon_array_datum(buf, d, true, db_utf8);
				break;
			case TEXTARRAYOID:
				canon_array_datum(buf, d, false, db_utf8);
				break;
			case JSONBOID:
				canon_jsonb_datum(buf, d,
								  &cache->jsonb[col == AA_COL_AUTHORITY ? 0 : 1],
								  db_utf8);
				break;
			default:
				canon_text_datum(buf, d, db_utf8);
				break;
		}
	}
	if (unit)
	{
		canon_number_array(buf, values[AA_COL_ENTRY_KINDS], INT2OID);
		if (nulls[AA_COL_ENTRY_PATIENTS])
			canon_null(buf);
		else
			canon_array_datum(buf, values[AA_COL_ENTRY_PATIENTS], false, db_utf8);
		if (nulls[AA_COL_ENTRY_ROW_COUNTS])
			canon_null(buf);
		else
			canon_number_array(buf, values[AA_COL_ENTRY_ROW_COUNTS], INT8OID);
		if (nulls[AA_COL_ENTRY_AUTHORITIES])
			canon_null(buf);
		else
			canon_authority_array(buf, values[AA_COL_ENTRY_AUTHORITIES],
								  cache->natts > AA_COL_ENTRY_CONSENTS &&
								  !nulls[AA_COL_ENTRY_CONSENTS] ?
								  &values[AA_COL_ENTRY_CONSENTS] : NULL,
								  &cache->jsonb[0], db_utf8);
	}
	buf->data[buf->len] = '\0';
}

/* an array column holds a plain list: at most one dimension, from 1 */
static bool
plain_list(Datum d, int *n)
{
	ArrayType  *a = DatumGetArrayTypeP(d);
	bool		ok = ARR_NDIM(a) <= 1 && (ARR_NDIM(a) == 0 || ARR_LBOUND(a)[0] == 1);

	*n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	if ((Pointer) a != DatumGetPointer(d))
		pfree(a);
	return ok;
}

/* no NULL element; with kinds, every element 0..5 */
static bool
no_nulls(Datum d, bool kinds)
{
	ArrayType  *a = DatumGetArrayTypeP(d);
	bool		ok = !array_contains_nulls(a);

	if (ok && kinds)
	{
		Datum	   *elems;
		bool	   *enulls;
		int			n;

		deconstruct_array(a, INT2OID, sizeof(int16), true, TYPALIGN_SHORT,
						  &elems, &enulls, &n);
		for (int i = 0; ok && i < n; i++)
			ok = DatumGetInt16(elems[i]) >= 0 && DatumGetInt16(elems[i]) <= 5;
	}
	if ((Pointer) a != DatumGetPointer(d))
		pfree(a);
	return ok;
}

/* is element i of an array with null bitmap bits (or none) NULL? */
static inline bool
elem_null(const bits8 *bits, int i)
{
	return bits != NULL && (bits[i / 8] & (1 << (i % 8))) == 0;
}

/*
 * No entry has both an authority and a consent id.  Only the arrays' null
 * bitmaps are read, and the detoasted copies freed: verify_audit calls this
 * for every unit outside its per-row memory context.
 */
static bool
consents_apart(Datum auths, Datum consents)
{
	ArrayType  *a = DatumGetArrayTypeP(auths);
	ArrayType  *c = DatumGetArrayTypeP(consents);
	int			na = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	int			nc = ArrayGetNItems(ARR_NDIM(c), ARR_DIMS(c));
	bool		ok = true;

	for (int i = 0; ok && i < Min(na, nc); i++)
		ok = elem_null(ARR_NULLBITMAP(a), i) || elem_null(ARR_NULLBITMAP(c), i);
	if ((Pointer) a != DatumGetPointer(auths))
		pfree(a);
	if ((Pointer) c != DatumGetPointer(consents))
		pfree(c);
	return ok;
}

/*
 * Is a stored row shaped as the writer writes it?  The encoding covers an
 * array's elements, not its dimensions or bounds, and a unit's entries
 * only as its arrays hold them; so the verifiers also require: every array
 * a plain list (one dimension, from 1); a record without entry arrays; a
 * unit with all four, of its n >= 1 entries, kinds 0..5, and no NULL kind,
 * patient or row count; its consents NULL or n elements, none where the
 * entry has an authority.  (agentauth.verify_audit_sql: _stored_well_formed;
 * tools/aa_verify checks the same on the export, where the authorities are
 * merged.)
 */
bool
aa_record_well_formed(const Datum *values, const bool *nulls, int natts)
{
	static const int arrays[] = {AA_COL_DELEGATION_CHAIN, AA_COL_COLUMNS,
	AA_COL_DATA_CLASSES};
	int			n;
	int			m;

	for (int i = 0; i < lengthof(arrays); i++)
		if (!nulls[arrays[i]] && !plain_list(values[arrays[i]], &m))
			return false;
	if (natts <= AA_COL_ENTRY_KINDS)
		return true;
	if (nulls[AA_COL_ENTRY_KINDS])
		return nulls[AA_COL_ENTRY_PATIENTS] && nulls[AA_COL_ENTRY_ROW_COUNTS] &&
			nulls[AA_COL_ENTRY_AUTHORITIES] &&
			(natts <= AA_COL_ENTRY_CONSENTS || nulls[AA_COL_ENTRY_CONSENTS]);
	if (!plain_list(values[AA_COL_ENTRY_KINDS], &n) || n < 1 ||
		!no_nulls(values[AA_COL_ENTRY_KINDS], true))
		return false;
	for (int col = AA_COL_ENTRY_PATIENTS; col <= AA_COL_ENTRY_AUTHORITIES; col++)
	{
		if (nulls[col] || !plain_list(values[col], &m) || m != n)
			return false;
		if (col != AA_COL_ENTRY_AUTHORITIES && !no_nulls(values[col], false))
			return false;
	}
	if (natts > AA_COL_ENTRY_CONSENTS && !nulls[AA_COL_ENTRY_CONSENTS] &&
		(!plain_list(values[AA_COL_ENTRY_CONSENTS], &m) || m != n ||
		 !consents_apart(values[AA_COL_ENTRY_AUTHORITIES],
						 values[AA_COL_ENTRY_CONSENTS])))
		return false;
	return true;
}

/* ------------------------------------------------------------------
 * A patient's entries of a unit, for the reports (_patient_log)
 * ------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(aa_patient_hash);
PG_FUNCTION_INFO_V1(aa_patient_hashes);
PG_FUNCTION_INFO_V1(aa_entry_positions);
PG_FUNCTION_INFO_V1(aa_entry_at);
PG_FUNCTION_INFO_V1(aa_consent_authority);

/*
 * The key the units' GIN index stores for a patient: hash_bytes() of the
 * id's bytes, the hash PostgreSQL keeps stable for its hash indexes.  Two
 * ids with the same bytes have the same key; two others share one only by
 * collision, which costs a unit read and finds nothing (_entry_positions
 * compares bytes).  An int4 key, where the index kept the text: its
 * pending-list merge sorts every key, and the text comparisons
 * (bttextcmp, detoast, memcmp) were a fifth of the writer's time.
 */
static inline int32
patient_hash(const text *t)
{
	return (int32) hash_bytes((const unsigned char *) VARDATA_ANY(t),
							  VARSIZE_ANY_EXHDR(t));
}

/* agentauth._patient_hash(p text) RETURNS int4: p's key in the index */
Datum
aa_patient_hash(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(patient_hash(PG_GETARG_TEXT_PP(0)));
}

/*
 * A unit's patients, walked in place: an array's elements are never toasted
 * (construct_md_array detoasts them), so each is read where it lies,
 * through its own header, with no call per element.
 */
typedef struct PatientWalk
{
	const char *ptr;			/* the next element's data */
	const bits8 *nulls;			/* the array's null bitmap, or NULL */
	int			i;				/* the next element's index */
	int			n;				/* the number of elements */
} PatientWalk;

static void
patients_walk(ArrayType *a, PatientWalk *w)
{
	if (ARR_ELEMTYPE(a) != TEXTOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("unit patients must be an array of text")));
	w->ptr = ARR_DATA_PTR(a);
	w->nulls = ARR_NULLBITMAP(a);
	w->i = 0;
	w->n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
}

/* the next element (a text, where it lies), or NULL for a NULL element */
static inline const text *
patients_next(PatientWalk *w)
{
	int			i = w->i++;
	const char *e = w->ptr;

	if (w->nulls != NULL && (w->nulls[i / 8] & (1 << (i % 8))) == 0)
		return NULL;
	w->ptr = (const char *) att_align_nominal(e + VARSIZE_ANY(e), TYPALIGN_INT);
	return (const text *) e;
}

/*
 * A unit's keys in int4 order: a radix sort, four passes of eight bits from
 * the lowest (the sign bit flipped, so that unsigned order is int4's),
 * each pass one stable scatter into the other buffer; a pass whose digit
 * is the same for every key is skipped.  For the hundred-odd random keys
 * of a unit, a comparison sort's unpredictable branches cost the writer
 * several times as much (bench/README.md).  Few keys: an insertion sort.
 * scratch: room for n keys, the other buffer.
 */
static void
sort_keys(int32 *keys, int n, int32 *scratch)
{
	uint32		count[4][256];
	uint32	   *from = (uint32 *) keys;
	uint32	   *to = (uint32 *) scratch;

	if (n < 24)
	{
		for (int i = 1; i < n; i++)
		{
			int32		k = keys[i];
			int			j = i;

			for (; j > 0 && keys[j - 1] > k; j--)
				keys[j] = keys[j - 1];
			keys[j] = k;
		}
		return;
	}
	memset(count, 0, sizeof(count));
	for (int i = 0; i < n; i++)
	{
		uint32		v = from[i] ^ 0x80000000;

		count[0][v & 0xff]++;
		count[1][(v >> 8) & 0xff]++;
		count[2][(v >> 16) & 0xff]++;
		count[3][v >> 24]++;
	}
	for (int pass = 0; pass < 4; pass++)
	{
		int			shift = pass * 8;
		uint32		sum = 0;
		uint32	   *swap;

		if (count[pass][((from[0] ^ 0x80000000) >> shift) & 0xff] == (uint32) n)
			continue;
		for (int d = 0; d < 256; d++)
		{
			uint32		c = count[pass][d];

			count[pass][d] = sum;
			sum += c;
		}
		for (int i = 0; i < n; i++)
			to[count[pass][((from[i] ^ 0x80000000) >> shift) & 0xff]++] = from[i];
		swap = from;
		from = to;
		to = swap;
	}
	if (from != (uint32 *) keys)
		memcpy(keys, from, sizeof(uint32) * n);
}

/*
 * agentauth._patient_hashes(patients text[]) RETURNS int4[]: the keys of
 * a unit's patients (NULL elements skipped), the units' index expression.
 * Sorted and each once: GIN sorts and deduplicates a value's keys with a
 * function call per comparison, and checks first whether they already are
 * (one call per key); here the sort compares integers inline.
 */
Datum
aa_patient_hashes(PG_FUNCTION_ARGS)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(0);
	int			nhash = 0;
	int			nout = 0;
	int32	   *hashes;
	Datum	   *out;
	PatientWalk w;

	patients_walk(a, &w);
	hashes = palloc(sizeof(int32) * Max(w.n, 1));
	out = palloc(sizeof(Datum) * Max(w.n, 1));
	while (w.i < w.n)
	{
		const text *e = patients_next(&w);

		if (e != NULL)
			hashes[nhash++] = patient_hash(e);
	}
	/* out, not yet written, is the sort's other buffer (Datums: room) */
	sort_keys(hashes, nhash, (int32 *) out);
	for (int i = 0; i < nhash; i++)
		if (i == 0 || hashes[i] != hashes[i - 1])
			out[nout++] = Int32GetDatum(hashes[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, nout, INT4OID, sizeof(int32),
										  true, TYPALIGN_INT));
}

/*
 * agentauth._entry_positions(patients text[], p text) RETURNS int[]
 *
 * The ordinals (from 1, in storage order) of the unit's entries whose
 * patient is p, byte for byte (the default collation's equality).  The
 * ordinal is the one the view agentauth.audit_log numbers entries by
 * (unnest ... WITH ORDINALITY), whatever the array's bounds or dimensions:
 * a unit re-based or reshaped by tampering still reports the entries the
 * view shows (the verifiers flag the unit), where array_positions() would
 * shift them or fail.  One pass, no function call per element.
 */
Datum
aa_entry_positions(PG_FUNCTION_ARGS)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(0);
	text	   *p = PG_GETARG_TEXT_PP(1);
	const char *pdata = VARDATA_ANY(p);
	int			plen = VARSIZE_ANY_EXHDR(p);
	int			nfound = 0;
	Datum	   *found;
	PatientWalk w;

	patients_walk(a, &w);
	found = palloc(sizeof(Datum) * Max(w.n, 1));
	while (w.i < w.n)
	{
		const text *e = patients_next(&w);

		/*
		 * The last byte first: the ids of one unit mostly share a prefix and
		 * length, and a report asks of up to 128 of them for one
		 */
		if (e != NULL && VARSIZE_ANY_EXHDR(e) == plen &&
			(plen == 0 ||
			 (VARDATA_ANY(e)[plen - 1] == pdata[plen - 1] &&
			  memcmp(VARDATA_ANY(e), pdata, plen - 1) == 0)))
			found[nfound++] = Int32GetDatum(w.i);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(found, nfound, INT4OID, sizeof(int32),
										  true, TYPALIGN_INT));
}

typedef struct ElemInfo
{
	Oid			type;
	int16		len;
	bool		byval;
	char		align;
} ElemInfo;

/*
 * agentauth._entry_at(a anyarray, ord int) RETURNS anyelement
 *
 * The ord-th element of a in storage order (from 1), or NULL: the entry
 * field that _entry_positions' ordinal names, whatever a's bounds or
 * dimensions.
 */
Datum
aa_entry_at(PG_FUNCTION_ARGS)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(0);
	int32		ord = PG_GETARG_INT32(1);
	int			n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	ElemInfo   *ti = (ElemInfo *) fcinfo->flinfo->fn_extra;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	bool		isnull = true;
	Datum		d = (Datum) 0;

	if (ord < 1 || ord > n)
		PG_RETURN_NULL();
	/* the element type's layout, looked up once per call site */
	if (ti == NULL || ti->type != ARR_ELEMTYPE(a))
	{
		if (ti == NULL)
			ti = fcinfo->flinfo->fn_extra =
				MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(ElemInfo));
		ti->type = ARR_ELEMTYPE(a);
		get_typlenbyvalalign(ti->type, &ti->len, &ti->byval, &ti->align);
	}
	typlen = ti->len;
	typbyval = ti->byval;
	typalign = ti->align;
	if (ARR_NDIM(a) == 1)
	{
		int			sub = ARR_LBOUND(a)[0] + ord - 1;

		d = array_get_element(PointerGetDatum(a), 1, &sub, -1, typlen, typbyval,
							  typalign, &isnull);
	}
	else
	{
		array_iter	it;

		array_iter_setup(&it, (AnyArrayType *) a);
		for (int i = 0; i < ord; i++)
			d = array_iter_next(&it, &isnull, i, typlen, typbyval, typalign);
	}
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(d);
}

/*
 * agentauth._consent_authority(id uuid) RETURNS jsonb
 *
 * The authority an entry_consents id stands for, {"consents": ["<id>"]},
 * for the view and the reports: made from the very text the verifiers hash
 * for it.  C, so that a report pays no SQL function call per entry (a SQL
 * function whose body is only STABLE is never inlined into an IMMUTABLE
 * declaration, and each call started an executor).
 */
Datum
aa_consent_authority(PG_FUNCTION_ARGS)
{
	char		text[AA_CONSENT_AUTH_LEN];
	JsonbParseState *state = NULL;
	JsonbValue	v;

	/* the id as the verifiers' text has it */
	aa_consent_authority_text(PG_GETARG_UUID_P(0), text);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	v.type = jbvString;
	v.val.string.val = "consents";
	v.val.string.len = strlen("consents");
	pushJsonbValue(&state, WJB_KEY, &v);
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	v.val.string.val = text + AA_CONSENT_ID_OFF;
	v.val.string.len = AA_CONSENT_ID_LEN;
	pushJsonbValue(&state, WJB_ELEM, &v);
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
}
