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
