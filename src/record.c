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
 *		A record's jsonb values come with their canonical text, the last
 *		one remembered (aa_jsonb_cached, aa_jsonb_text_cached).
 *
 *		agentauth.verify_audit_sql() and tools/aa_verify.c implement the
 *		same encoding independently; any change here changes them too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "utils/array.h"
#include "utils/arrayaccess.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "agentauth.h"
#include "record_int.h"


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
	/* a unit's entries (version 2): encoded after detail, see unit.c */
	[AA_COL_ENTRY_KINDS] = {INT2ARRAYOID, AA_TAG_ARRAY},
	[AA_COL_ENTRY_PATIENTS] = {TEXTARRAYOID, AA_TAG_ARRAY},
	[AA_COL_ENTRY_ROW_COUNTS] = {INT8ARRAYOID, AA_TAG_ARRAY},
	[AA_COL_ENTRY_AUTHORITIES] = {JSONBARRAYOID, AA_TAG_ARRAY},
	/* not encoded itself: its elements are entry_authorities' (below) */
	[AA_COL_ENTRY_CONSENTS] = {UUIDARRAYOID, AA_TAG_ARRAY},
};

/* the type of column col (AAAuditColumn) */
Oid
aa_record_column_type(int col)
{
	Assert(col >= 0 && col < AA_AUDIT_NATTS);
	return audit_columns[col].type;
}

/*
 * Refuse to read or write a table that is not the audit log we know: the
 * encoding is tied to its columns.
 */
int
aa_record_check_tupdesc(TupleDesc desc)
{
	bool		ok = (desc->natts == AA_AUDIT_NATTS ||
					  desc->natts == AA_AUDIT_NATTS_V1);

	for (int i = 0; ok && i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != audit_columns[i].type)
			ok = false;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("agentauth.audit_record does not have the columns of the audit log"),
				 errdetail("The canonical encoding needs the 28 columns created by the extension.")));
	return desc->natts;
}

/*
 * The stored log: agentauth.audit_record, or -- in a 1.0 schema that
 * ALTER EXTENSION agentauth UPDATE has not yet brought to 1.1 -- the table
 * agentauth.audit_log, whose 23 columns hold records only.  InvalidOid when
 * neither is there.
 */
Oid
aa_record_log_relid(Oid nsp)
{
	Oid			relid = get_relname_relid("audit_record", nsp);

	if (!OidIsValid(relid))
	{
		relid = get_relname_relid("audit_log", nsp);
		if (OidIsValid(relid) && get_rel_relkind(relid) != RELKIND_RELATION)
			relid = InvalidOid;
	}
	return relid;
}

/* ------------------------------------------------------------------
 * Canonical encoding: one field
 * ------------------------------------------------------------------
 */

/*
 * The conversion of the server's encoding into UTF-8, found once in a
 * transaction and kept: records are also encoded outside one (at an abort,
 * at the backend's exit), where PostgreSQL looks no conversion up.  1.1,
 * found by review: in a LATIN1 database the record of an agent's refused
 * write naming patient 'José', encoded at the abort, raised an error there,
 * the backend exited (FATAL), and that record and the session's end were
 * lost.  aa_canon_prepare() is called where a transaction is sure (a
 * session's beginning, a record encoded in one).
 */
static FmgrInfo *to_utf8 = NULL;

void
aa_canon_prepare(void)
{
	int			enc = GetDatabaseEncoding();
	Oid			proc;
	FmgrInfo   *f;

	if (to_utf8 != NULL || enc == PG_UTF8 || enc == PG_SQL_ASCII || !IsTransactionState())
		return;
	proc = FindDefaultConversionProc(enc, PG_UTF8);
	if (!OidIsValid(proc))
		return;					/* pg_server_to_any() says why, in a transaction */
	f = MemoryContextAlloc(TopMemoryContext, sizeof(FmgrInfo));
	fmgr_info_cxt(proc, f, TopMemoryContext);
	to_utf8 = f;
}

/*
 * s (len bytes in the server's encoding) in UTF-8, NUL-terminated.  A
 * character the encoding has and Unicode has not (WIN1252's 0x81, 0x8D,
 * 0x8F, 0x90, 0x9D) is written as \xNN for each of its bytes: the record
 * is written all the same (1.1, found by review: one such byte in a
 * patient id made the record of an agent's refused write fail, and it was
 * lost), and the log keeps that text, which every verifier encodes alike.
 */
static const char *
server_to_utf8(const char *s, int len, int *ulen)
{
	int			enc = GetDatabaseEncoding();
	StringInfoData out;
	int			pos = 0;

	aa_canon_prepare();
	if (to_utf8 == NULL)
	{
		const char *u = pg_server_to_any(s, len, PG_UTF8);

		*ulen = (u == s) ? len : strlen(u);
		return u;
	}
	if ((Size) len >= (MaxAllocSize / (Size) MAX_CONVERSION_GROWTH))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("out of memory"),
				 errdetail("String of %d bytes is too long for encoding conversion.", len)));
	initStringInfo(&out);
	while (pos < len)
	{
		int			n = len - pos;
		char	   *buf = palloc((Size) n * MAX_CONVERSION_GROWTH + 1);
		int			done;

		done = DatumGetInt32(FunctionCall6(to_utf8,
										   Int32GetDatum(enc), Int32GetDatum(PG_UTF8),
										   CStringGetDatum(s + pos), CStringGetDatum(buf),
										   Int32GetDatum(n), BoolGetDatum(true)));
		appendStringInfoString(&out, buf);
		pfree(buf);
		pos += done;
		if (pos < len)
		{
			int			cl = Min(pg_encoding_mblen(enc, s + pos), len - pos);

			for (int k = 0; k < cl; k++)
				appendStringInfo(&out, "\\x%02X", (unsigned char) s[pos + k]);
			pos += Max(cl, 1);
		}
	}
	*ulen = out.len;
	return out.data;
}

/* tag, 4-byte length, UTF-8 bytes of s (len bytes in the server encoding) */
void
aa_canon_string(StringInfo buf, char tag, const char *s, int len)
{
	const char *u = s;
	int			ulen = len;

	if (GetDatabaseEncoding() != PG_UTF8 && GetDatabaseEncoding() != PG_SQL_ASCII)
	{
		int			i;

		/* ASCII is the same in every server encoding */
		for (i = 0; i < len && !IS_HIGHBIT_SET(s[i]); i++)
			;
		if (i < len)
			u = server_to_utf8(s, len, &ulen);
	}
	appendStringInfoCharMacro(buf, tag);
	put_be32(buf, (uint32) ulen);
	appendBinaryStringInfo(buf, u, ulen);
	if (u != s)
		pfree((char *) u);
}

static const char consent_auth_head[] = "{\"consents\": [\"";
static const char consent_auth_tail[] = "\"]}";

#define CONSENT_AUTH_HEAD_LEN	(sizeof(consent_auth_head) - 1)

/*
 * A lower-case hex digit's value plus one; 0 for any other byte.  The
 * writer parses every permit's authority (unit.c): a table lookup per digit
 * instead of a compare and branch per digit, which random digits mispredict
 * about half the time (12 % of the writer, bench/README.md).
 */
#define HEX1(c, v) [c] = (v) + 1
static const uint8 hex_plus_one[256] = {
	HEX1('0', 0), HEX1('1', 1), HEX1('2', 2), HEX1('3', 3), HEX1('4', 4),
	HEX1('5', 5), HEX1('6', 6), HEX1('7', 7), HEX1('8', 8), HEX1('9', 9),
	HEX1('a', 10), HEX1('b', 11), HEX1('c', 12), HEX1('d', 13), HEX1('e', 14),
	HEX1('f', 15)
};
#undef HEX1

/* where each byte's two digits are in the id's text */
static const uint8 uuid_digit_at[UUID_LEN] = {
	0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34
};

/*
 * Is text (len bytes) the canonical text of a permit by one consent,
 * {"consents": ["<id>"]} with the id in uuid_out's form (lower-case hex,
 * dashes after 8, 12, 16 and 20 digits)?  Then *id is the consent's id.
 * Anything else -- another form of the same id included -- is not: the
 * verifiers rebuild exactly these bytes from the id.
 */
bool
aa_consent_authority_parse(const char *text, uint32 len, pg_uuid_t *id)
{
	const unsigned char *p = (const unsigned char *) text + CONSENT_AUTH_HEAD_LEN;
	bool		ok;

	StaticAssertStmt(CONSENT_AUTH_HEAD_LEN == AA_CONSENT_ID_OFF &&
					 AA_CONSENT_ID_OFF + AA_CONSENT_ID_LEN + sizeof(consent_auth_tail) - 1 ==
					 AA_CONSENT_AUTH_LEN && AA_CONSENT_ID_LEN == 36,
					 "consent authority layout");
	if (len != AA_CONSENT_AUTH_LEN ||
		memcmp(text, consent_auth_head, CONSENT_AUTH_HEAD_LEN) != 0 ||
		memcmp(p + AA_CONSENT_ID_LEN, consent_auth_tail, sizeof(consent_auth_tail) - 1) != 0)
		return false;
	ok = p[8] == '-' && p[13] == '-' && p[18] == '-' && p[23] == '-';
	for (int i = 0; i < UUID_LEN; i++)
	{
		uint8		hi = hex_plus_one[p[uuid_digit_at[i]]];
		uint8		lo = hex_plus_one[p[uuid_digit_at[i] + 1]];

		ok &= (hi != 0) & (lo != 0);
		id->data[i] = (uint8) (((hi - 1) << 4) | ((lo - 1) & 0x0f));
	}
	return ok;
}

/* the canonical text of a permit by the consent id (AA_CONSENT_AUTH_LEN bytes) */
void
aa_consent_authority_text(const pg_uuid_t *id, char *out)
{
	static const char hex[] = "0123456789abcdef";
	char	   *p = out + CONSENT_AUTH_HEAD_LEN;

	memcpy(out, consent_auth_head, CONSENT_AUTH_HEAD_LEN);
	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[id->data[i] >> 4];
		*p++ = hex[id->data[i] & 0x0F];
	}
	memcpy(p, consent_auth_tail, sizeof(consent_auth_tail) - 1);
}

/* a text field; NULL: the NULL tag */
static void
canon_text(StringInfo buf, const char *s)
{
	if (s == NULL)
		canon_null(buf);
	else
		aa_canon_string(buf, AA_TAG_TEXT, s, strlen(s));
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
aa_record_canon_head(unsigned char *out, int version, int64 seq,
					 TimestampTz logged_at)
{
	out[0] = (unsigned char) version;
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
		aa_canon_string(out, AA_TAG_JSONB, f->authority_text, f->authority_text_len);
	else
		canon_null(out);
	canon_text(out, f->outcome);
	canon_text(out, f->statement);
	aa_canon_string(out, AA_TAG_TEXT, f->client, f->client_len);
	if (f->detail)
		aa_canon_string(out, AA_TAG_JSONB, f->detail_text, f->detail_text_len);
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
	hdr->backend = MyProcPid;
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

/* a text datum from len bytes of UTF-8 (converted to the server encoding) */
Datum
aa_record_text_datum(const char *s, uint32 len)
{
	text	   *t;

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
rd_text_body(Reader *r)
{
	uint32		len = rd_be32(r);
	const char *s = r->p;

	if ((uint32) (r->end - r->p) < len)
		corrupt_entry();
	r->p += len;
	return aa_record_text_datum(s, len);
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
 * How many records a stored row holds: 1 for a record (entry_kinds NULL),
 * n for a unit of n entries (0 or less: a damaged unit).
 */
int64
aa_record_entry_count(const Datum *values, const bool *nulls, int natts)
{
	ArrayType  *a;
	int64		n;

	if (natts <= AA_COL_ENTRY_KINDS || nulls[AA_COL_ENTRY_KINDS])
		return 1;
	a = DatumGetArrayTypeP(values[AA_COL_ENTRY_KINDS]);
	n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	if ((Pointer) a != DatumGetPointer(values[AA_COL_ENTRY_KINDS]))
		pfree(a);
	return n;
}

/* A record's row: no entries (encoding version 1). */
void
aa_record_set_no_entries(Datum *values, bool *nulls, int natts)
{
	for (int col = AA_COL_ENTRY_KINDS; col < natts; col++)
	{
		values[col] = (Datum) 0;
		nulls[col] = true;
	}
}

/*
 * The same columns read back from a stored row (the chain head): *seq is
 * the row's last record (a unit's seq + n - 1); *row_hash stays all zero
 * unless the row has a 32-byte row_hash.
 */
void
aa_record_get_chain(const Datum *values, const bool *nulls, int natts,
					int64 *seq, TimestampTz *logged_at, unsigned char *row_hash)
{
	*seq = nulls[AA_COL_SEQ] ? 0 : DatumGetInt64(values[AA_COL_SEQ]);
	*seq += aa_record_entry_count(values, nulls, natts) - 1;
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

/*
 * A record's jsonb and its canonical text (what is hashed), the last value
 * remembered in c (kept in cxt): the records of one statement usually
 * share their authority.  The detail comes as jsonb text (the text is its
 * key), the authority as jsonb.
 */
static void
jsonb_cache_set(AAJsonbCache *c, const Jsonb *jb, const char *text,
				MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Jsonb	   *bin;
	char	   *copy;

	if (c->canon.data == NULL)
		initStringInfo(&c->canon);
	/* forgotten first: an error below leaves nothing half made to match */
	if (c->bin)
		pfree(c->bin);
	if (c->text)
		pfree(c->text);
	c->bin = NULL;
	c->text = NULL;
	bin = palloc(VARSIZE(jb));
	memcpy(bin, jb, VARSIZE(jb));
	resetStringInfo(&c->canon);
	JsonbToCString(&c->canon, &bin->root, VARSIZE(bin));
	copy = text ? pstrdup(text) : NULL;
	c->bin = bin;
	c->text = copy;
	MemoryContextSwitchTo(old);
}

/* jsonb text -> binary (validating it), remembered in c */
Jsonb *
aa_jsonb_text_cached(AAJsonbCache *c, const char *s, MemoryContext cxt)
{
	if (s == NULL)
		return NULL;
	if (c->text == NULL || strcmp(c->text, s) != 0)
		jsonb_cache_set(c, DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															  CStringGetDatum(s))),
						s, cxt);
	return c->bin;
}

/* a jsonb, remembered in c */
Jsonb *
aa_jsonb_cached(AAJsonbCache *c, const Jsonb *jb, MemoryContext cxt)
{
	if (jb == NULL)
		return NULL;
	if (c->bin == NULL || VARSIZE(c->bin) != VARSIZE(jb) ||
		memcmp(c->bin, jb, VARSIZE(jb)) != 0)
		jsonb_cache_set(c, jb, NULL, cxt);
	return c->bin;
}
