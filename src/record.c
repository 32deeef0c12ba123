/*-------------------------------------------------------------------------
 *
 * record.c
 *		The audit record format, in one place: the columns of
 *		agentauth.audit_log (AAAuditColumn, the one list every other file
 *		names them by), the canonical encoding (docs/DESIGN.md, "Canonical
 *		record encoding, version 1"), the queued form and the stored form.
 *
 *		canonical(record) is the version byte 0x01 and the 21 fields from
 *		seq to detail, each tagged and, where variable, length-prefixed;
 *		nothing in it depends on a session setting.  A record takes three
 *		forms, all defined here:
 *
 *		  queued   what a backend puts into the shared queue
 *		           (aa_record_encode): an AAQueueEntry header, the canonical
 *		           "body" (fields event..detail, encoded once, exactly as
 *		           the chain hashes them), then binary copies of the two
 *		           jsonb values for the writer to store;
 *		  head     the first AA_CANON_HEAD_LEN bytes of canonical(record):
 *		           version, seq, logged_at (aa_record_canon_head), which the
 *		           writer puts before the body when it hashes;
 *		  stored   the row of agentauth.audit_log: the writer decodes the
 *		           body into it (aa_record_decode, aa_record_set_chain), and
 *		           verify_audit re-encodes it (aa_record_canon_stored).
 *
 *		agentauth.verify_audit_sql() and tools/aa_verify.c implement the
 *		same encoding independently; any change here changes them too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "port/pg_bswap.h"
#include "utils/array.h"
#include "utils/arrayaccess.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "agentauth.h"

#define AA_CANON_VERSION	0x01

/* the tag before each field */
#define AA_TAG_NULL			0x00
#define AA_TAG_INT8			'i'
#define AA_TAG_TIMESTAMPTZ	'T'
#define AA_TAG_UUID			'u'
#define AA_TAG_TEXT			't'
#define AA_TAG_JSONB		'j'
#define AA_TAG_ARRAY		'a'

/*
 * The type of each column of agentauth.audit_log, and the tag of its
 * canonical encoding (prev_hash and row_hash are not encoded).
 */
static const struct
{
	Oid			type;
	char		tag;
}			audit_columns[AA_AUDIT_NATTS] =
{
	[AA_COL_SEQ] = {INT8OID, AA_TAG_INT8},
	[AA_COL_LOGGED_AT] = {TIMESTAMPTZOID, AA_TAG_TIMESTAMPTZ},
	[AA_COL_EVENT] = {TEXTOID, AA_TAG_TEXT},
	[AA_COL_PRINCIPAL] = {UUIDOID, AA_TAG_UUID},
	[AA_COL_PRINCIPAL_NAME] = {TEXTOID, AA_TAG_TEXT},
	[AA_COL_DB_ROLE] = {TEXTOID, AA_TAG_TEXT},
	[AA_COL_TOKEN] = {UUIDOID, AA_TAG_UUID},
	[AA_COL_ON_BEHALF_OF] = {TEXTOID, AA_TAG_TEXT},
	[AA_COL_DELEGATION_CHAIN] = {UUIDARRAYOID, AA_TAG_ARRAY},
	[AA_COL_PURPOSE] = {TEXTOID, AA_TAG_TEXT},
	[AA_COL_PATIENT] = {TEXTOID, AA_TAG_TEXT},
	[AA_COL_RELATION] = {TEXTOID, AA_TAG_TEXT},
	[AA_COL_COLUMNS] = {TEXTARRAYOID, AA_TAG_ARRAY},
	[AA_COL_DATA_CLASSES] = {TEXTARRAYOID, AA_TAG_ARRAY},
	[AA_COL_ACTION] = {TEXTOID, AA_TAG_TEXT},
	[AA_COL_ROW_COUNT] = {INT8OID, AA_TAG_INT8},
	[AA_COL_AUTHORITY] = {JSONBOID, AA_TAG_JSONB},
	[AA_COL_OUTCOME] = {TEXTOID, AA_TAG_TEXT},
	[AA_COL_STATEMENT] = {TEXTOID, AA_TAG_TEXT},
	[AA_COL_CLIENT] = {TEXTOID, AA_TAG_TEXT},
	[AA_COL_DETAIL] = {JSONBOID, AA_TAG_JSONB},
	[AA_COL_PREV_HASH] = {BYTEAOID, AA_TAG_NULL},
	[AA_COL_ROW_HASH] = {BYTEAOID, AA_TAG_NULL},
};

/*
 * Refuse to read or write a table that is not the audit log we know: the
 * encoding is tied to its columns.
 */
void
aa_record_check_tupdesc(TupleDesc desc)
{
	bool		ok = (desc->natts == AA_AUDIT_NATTS);

	for (int i = 0; ok && i < AA_AUDIT_NATTS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != audit_columns[i].type)
			ok = false;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("agentauth.audit_log does not have the columns of the audit log"),
				 errdetail("The canonical encoding needs the 23 columns created by the extension.")));
}

/* ------------------------------------------------------------------
 * Canonical encoding: one field
 * ------------------------------------------------------------------
 */

static inline void
put_be32(StringInfo buf, uint32 v)
{
	uint32		be = pg_hton32(v);

	appendBinaryStringInfo(buf, (char *) &be, sizeof(be));
}

static inline void
put_be64(unsigned char *b, uint64 v)
{
	uint64		be = pg_hton64(v);

	memcpy(b, &be, sizeof(be));
}

static inline void
canon_null(StringInfo buf)
{
	appendStringInfoCharMacro(buf, AA_TAG_NULL);
}

/* tag and 8 big-endian bytes: bigint and timestamptz */
static void
canon_8bytes(StringInfo buf, char tag, uint64 v)
{
	unsigned char b[9];

	b[0] = tag;
	put_be64(b + 1, v);
	appendBinaryStringInfo(buf, (char *) b, 9);
}

static void
canon_uuid(StringInfo buf, const pg_uuid_t *u)
{
	if (u == NULL)
	{
		canon_null(buf);
		return;
	}
	appendStringInfoCharMacro(buf, AA_TAG_UUID);
	appendBinaryStringInfo(buf, (const char *) u->data, UUID_LEN);
}

/* tag, 4-byte length, UTF-8 bytes of s (len bytes in the server encoding) */
static void
canon_string(StringInfo buf, char tag, const char *s, int len)
{
	const char *u = s;
	int			ulen = len;

	if (GetDatabaseEncoding() != PG_UTF8 && GetDatabaseEncoding() != PG_SQL_ASCII)
	{
		u = pg_server_to_any(s, len, PG_UTF8);
		if (u != s)
			ulen = strlen(u);
	}
	appendStringInfoCharMacro(buf, tag);
	put_be32(buf, (uint32) ulen);
	appendBinaryStringInfo(buf, u, ulen);
	if (u != s)
		pfree((char *) u);
}

/* a text field; NULL: the NULL tag */
static void
canon_text(StringInfo buf, const char *s)
{
	if (s == NULL)
		canon_null(buf);
	else
		canon_string(buf, AA_TAG_TEXT, s, strlen(s));
}

static void
canon_array_header(StringInfo buf, int nelems)
{
	appendStringInfoCharMacro(buf, AA_TAG_ARRAY);
	put_be32(buf, (uint32) nelems);
}

/* a text[] field from C strings; items NULL: the NULL tag */
static void
canon_text_array(StringInfo buf, int n, const char **items)
{
	if (items == NULL)
	{
		canon_null(buf);
		return;
	}
	canon_array_header(buf, n);
	for (int i = 0; i < n; i++)
		canon_text(buf, items[i]);
}

/*
 * The first AA_CANON_HEAD_LEN bytes of canonical(record): version, seq,
 * logged_at.
 */
void
aa_record_canon_head(unsigned char *out, int64 seq, TimestampTz logged_at)
{
	out[0] = AA_CANON_VERSION;
	out[1] = AA_TAG_INT8;
	put_be64(out + 2, (uint64) seq);
	out[10] = AA_TAG_TIMESTAMPTZ;
	put_be64(out + 11, (uint64) logged_at);
}

/* ------------------------------------------------------------------
 * The queued form
 * ------------------------------------------------------------------
 */

static void
append_aligned(StringInfo out, const char *data, Size len)
{
	appendBinaryStringInfo(out, data, len);
	while (out->len % MAXIMUM_ALIGNOF != 0)
		appendStringInfoCharMacro(out, '\0');
}

/*
 * Append f as one queue entry to out: the header, the canonical body (the
 * fields event..detail in column order), the binary jsonb copies.
 */
void
aa_record_encode(StringInfo out, const AARecordFields *f, TransactionId xid)
{
	int			start = out->len;
	int			body_start;
	int			body_len;
	AAQueueEntry *hdr;

	/* the header, filled in at the end; then the body, straight into out */
	enlargeStringInfo(out, MAXALIGN(sizeof(AAQueueEntry)));
	memset(out->data + start, 0, MAXALIGN(sizeof(AAQueueEntry)));
	out->len += MAXALIGN(sizeof(AAQueueEntry));
	body_start = out->len;

	canon_text(out, f->event);
	canon_uuid(out, f->principal);
	canon_text(out, f->principal_name);
	canon_text(out, f->db_role);
	canon_uuid(out, f->token);
	canon_text(out, f->on_behalf_of);
	if (f->nchain > 0)
	{
		canon_array_header(out, f->nchain);
		for (int i = 0; i < f->nchain; i++)
			canon_uuid(out, &f->chain[i]);
	}
	else
		canon_null(out);
	canon_text(out, f->purpose);
	canon_text(out, f->patient);
	canon_text(out, f->relation);
	canon_text_array(out, f->ncolumns, f->columns);
	canon_text_array(out, f->nclasses, f->classes);
	canon_text(out, f->action);
	if (f->row_count < 0)
		canon_null(out);
	else
		canon_8bytes(out, AA_TAG_INT8, (uint64) f->row_count);
	if (f->authority)
		canon_string(out, AA_TAG_JSONB, f->authority_text, f->authority_text_len);
	else
		canon_null(out);
	canon_text(out, f->outcome);
	canon_text(out, f->statement);
	canon_string(out, AA_TAG_TEXT, f->client, f->client_len);
	if (f->detail)
		canon_string(out, AA_TAG_JSONB, f->detail_text, f->detail_text_len);
	else
		canon_null(out);
	body_len = out->len - body_start;

	append_aligned(out, "", 0);
	if (f->authority)
		append_aligned(out, (const char *) f->authority, VARSIZE(f->authority));
	if (f->detail)
		append_aligned(out, (const char *) f->detail, VARSIZE(f->detail));

	hdr = (AAQueueEntry *) (out->data + start);
	hdr->len = out->len - start;
	hdr->body_len = body_len;
	hdr->xid = xid;
	hdr->authority_len = f->authority ? VARSIZE(f->authority) : 0;
	hdr->detail_len = f->detail ? VARSIZE(f->detail) : 0;
}

/* ------------------------------------------------------------------
 * The stored form: decoding a queue entry into the row
 * ------------------------------------------------------------------
 */

typedef struct Reader
{
	const char *p;
	const char *end;
} Reader;

static void
corrupt_entry(void)
{
	elog(ERROR, "corrupt audit queue entry");
}

static uint32
rd_be32(Reader *r)
{
	uint32		be;

	if (r->end - r->p < 4)
		corrupt_entry();
	memcpy(&be, r->p, 4);
	r->p += 4;
	return pg_ntoh32(be);
}

static int64
rd_be64(Reader *r)
{
	uint64		be;

	if (r->end - r->p < 8)
		corrupt_entry();
	memcpy(&be, r->p, 8);
	r->p += 8;
	return (int64) pg_ntoh64(be);
}

static char
rd_tag(Reader *r)
{
	if (r->p >= r->end)
		corrupt_entry();
	return *r->p++;
}

static Datum
rd_text_body(Reader *r)
{
	uint32		len = rd_be32(r);
	const char *s = r->p;
	text	   *t;

	if ((uint32) (r->end - r->p) < len)
		corrupt_entry();
	r->p += len;
	if (GetDatabaseEncoding() != PG_UTF8 && GetDatabaseEncoding() != PG_SQL_ASCII)
	{
		char	   *conv = pg_any_to_server(s, len, PG_UTF8);

		if (conv != s)
			return CStringGetTextDatum(conv);
	}
	t = (text *) palloc(len + VARHDRSZ);
	SET_VARSIZE(t, len + VARHDRSZ);
	memcpy(VARDATA(t), s, len);
	return PointerGetDatum(t);
}

static Datum
rd_uuid_body(Reader *r)
{
	pg_uuid_t  *u;

	if (r->end - r->p < UUID_LEN)
		corrupt_entry();
	u = palloc(sizeof(pg_uuid_t));
	memcpy(u->data, r->p, UUID_LEN);
	r->p += UUID_LEN;
	return UUIDPGetDatum(u);
}

static Datum
rd_array_body(Reader *r, Oid elemtype)
{
	uint32		n = rd_be32(r);
	Datum	   *elems;
	bool	   *enulls;
	int			dims[1];
	int			lbs[1] = {1};

	if (n > (uint32) (r->end - r->p))
		corrupt_entry();
	elems = palloc(sizeof(Datum) * Max(n, 1));
	enulls = palloc(sizeof(bool) * Max(n, 1));
	for (uint32 i = 0; i < n; i++)
	{
		char		tag = rd_tag(r);

		enulls[i] = false;
		if (tag == AA_TAG_NULL)
		{
			enulls[i] = true;
			elems[i] = (Datum) 0;
		}
		else if (tag == AA_TAG_TEXT && elemtype == TEXTOID)
			elems[i] = rd_text_body(r);
		else if (tag == AA_TAG_UUID && elemtype == UUIDOID)
			elems[i] = rd_uuid_body(r);
		else
			corrupt_entry();
	}
	if (n == 0)
		return PointerGetDatum(construct_empty_array(elemtype));
	dims[0] = n;
	if (elemtype == TEXTOID)
		return PointerGetDatum(construct_md_array(elems, enulls, 1, dims, lbs,
												  TEXTOID, -1, false, TYPALIGN_INT));
	return PointerGetDatum(construct_md_array(elems, enulls, 1, dims, lbs,
											  UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
}

/*
 * Fill the columns event..detail of values/nulls from a queue entry (in
 * aligned memory).  The jsonb columns come from the binary copies after the
 * body; their canonical text in the body is only hashed.
 */
void
aa_record_decode(const AAQueueEntry *e, Datum *values, bool *nulls)
{
	const char *body = AA_ENTRY_BODY(e);
	const char *jsonb_copy[AA_AUDIT_NATTS] = {0};
	uint32		jsonb_len[AA_AUDIT_NATTS] = {0};
	Reader		r = {body, body + e->body_len};

	/* authority's copy, then detail's, each MAXALIGNed, after the body */
	jsonb_copy[AA_COL_AUTHORITY] = body + MAXALIGN(e->body_len);
	jsonb_len[AA_COL_AUTHORITY] = e->authority_len;
	jsonb_copy[AA_COL_DETAIL] = jsonb_copy[AA_COL_AUTHORITY] + MAXALIGN(e->authority_len);
	jsonb_len[AA_COL_DETAIL] = e->detail_len;

	for (int col = AA_COL_EVENT; col <= AA_COL_DETAIL; col++)
	{
		char		tag = rd_tag(&r);

		nulls[col] = (tag == AA_TAG_NULL);
		values[col] = (Datum) 0;
		if (tag == AA_TAG_NULL)
			continue;
		if (tag != audit_columns[col].tag)
			corrupt_entry();
		switch (tag)
		{
			case AA_TAG_TEXT:
				values[col] = rd_text_body(&r);
				break;
			case AA_TAG_UUID:
				values[col] = rd_uuid_body(&r);
				break;
			case AA_TAG_INT8:
				values[col] = Int64GetDatum(rd_be64(&r));
				break;
			case AA_TAG_ARRAY:
				values[col] = rd_array_body(&r, audit_columns[col].type == UUIDARRAYOID ?
											UUIDOID : TEXTOID);
				break;
			case AA_TAG_JSONB:
				{
					uint32		len = rd_be32(&r);
					char	   *copy;

					if ((uint32) (r.end - r.p) < len || jsonb_len[col] == 0)
						corrupt_entry();
					r.p += len;
					copy = palloc(jsonb_len[col]);
					memcpy(copy, jsonb_copy[col], jsonb_len[col]);
					values[col] = PointerGetDatum(copy);
					break;
				}
			default:
				corrupt_entry();
		}
	}
	if (r.p != r.end)
		corrupt_entry();
}

static Datum
hash_datum(const unsigned char *h)
{
	bytea	   *b = palloc(VARHDRSZ + AA_HASH_LEN);

	SET_VARSIZE(b, VARHDRSZ + AA_HASH_LEN);
	memcpy(VARDATA(b), h, AA_HASH_LEN);
	return PointerGetDatum(b);
}

/* The columns the writer sets: seq, logged_at, prev_hash, row_hash. */
void
aa_record_set_chain(Datum *values, bool *nulls, int64 seq,
					TimestampTz logged_at, const unsigned char *prev_hash,
					const unsigned char *row_hash)
{
	values[AA_COL_SEQ] = Int64GetDatum(seq);
	nulls[AA_COL_SEQ] = false;
	values[AA_COL_LOGGED_AT] = TimestampTzGetDatum(logged_at);
	nulls[AA_COL_LOGGED_AT] = false;
	values[AA_COL_PREV_HASH] = hash_datum(prev_hash);
	nulls[AA_COL_PREV_HASH] = false;
	values[AA_COL_ROW_HASH] = hash_datum(row_hash);
	nulls[AA_COL_ROW_HASH] = false;
}

/*
 * The same columns read back from a stored row (the chain head):
 * *row_hash stays all zero unless the row has a 32-byte row_hash.
 */
void
aa_record_get_chain(const Datum *values, const bool *nulls, int64 *seq,
					TimestampTz *logged_at, unsigned char *row_hash)
{
	*seq = nulls[AA_COL_SEQ] ? 0 : DatumGetInt64(values[AA_COL_SEQ]);
	*logged_at = nulls[AA_COL_LOGGED_AT] ? 0 :
		DatumGetTimestampTz(values[AA_COL_LOGGED_AT]);
	memset(row_hash, 0, AA_HASH_LEN);
	if (!nulls[AA_COL_ROW_HASH])
	{
		bytea	   *b = DatumGetByteaPP(values[AA_COL_ROW_HASH]);

		if (VARSIZE_ANY_EXHDR(b) == AA_HASH_LEN)
			memcpy(row_hash, VARDATA_ANY(b), AA_HASH_LEN);
	}
}

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
		canon_string(buf, tag, s, len);
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

void
aa_record_canon_cache_init(AACanonCache *cache)
{
	for (int i = 0; i < 2; i++)
	{
		initStringInfo(&cache->jsonb[i].bin);
		initStringInfo(&cache->jsonb[i].text);
		cache->jsonb[i].valid = false;
	}
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

	appendStringInfoCharMacro(buf, AA_CANON_VERSION);
	for (int col = AA_COL_SEQ; col <= AA_COL_DETAIL; col++)
	{
		Datum		d = values[col];

		if (nulls[col])
		{
			canon_null(buf);
			continue;
		}
		switch (audit_columns[col].type)
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
	buf->data[buf->len] = '\0';
}
