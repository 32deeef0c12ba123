/*-------------------------------------------------------------------------
 *
 * chain.c
 *		The canonical record encoding (docs/DESIGN.md, "Canonical record
 *		encoding, version 1") and the C verifier of the hash chain,
 *		agentauth.verify_audit().
 *
 *		row_hash = SHA-256(prev_hash || canonical(record)).  canonical() is
 *		the version byte 0x01 and the 21 fields from seq to detail, each
 *		tagged and, where variable, length-prefixed; nothing in it depends on
 *		a session setting.  The backend that emits a record encodes fields 3
 *		to 21 (its "body") once; the writer prefixes version, seq and
 *		logged_at (aa_canon_head) and hashes the two pieces; the verifier
 *		rebuilds both from the stored row.  agentauth.verify_audit_sql() is
 *		the same algorithm written in SQL over pgcrypto; the two must give
 *		identical answers, so any change here changes that function too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/arrayaccess.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "storage/lmgr.h"

#include "agentauth.h"

/* ------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------
 */

static inline void
put_be32(StringInfo buf, uint32 v)
{
	unsigned char b[4];

	b[0] = (v >> 24) & 0xff;
	b[1] = (v >> 16) & 0xff;
	b[2] = (v >> 8) & 0xff;
	b[3] = v & 0xff;
	appendBinaryStringInfo(buf, (char *) b, 4);
}

static inline void
put_be64(unsigned char *b, uint64 v)
{
	for (int i = 7; i >= 0; i--)
	{
		b[i] = v & 0xff;
		v >>= 8;
	}
}

void
aa_canon_null(StringInfo buf)
{
	appendStringInfoCharMacro(buf, AA_TAG_NULL);
}

void
aa_canon_int8(StringInfo buf, int64 v)
{
	unsigned char b[9];

	b[0] = AA_TAG_INT8;
	put_be64(b + 1, (uint64) v);
	appendBinaryStringInfo(buf, (char *) b, 9);
}

void
aa_canon_timestamptz(StringInfo buf, TimestampTz v)
{
	unsigned char b[9];

	b[0] = AA_TAG_TIMESTAMPTZ;
	put_be64(b + 1, (uint64) v);
	appendBinaryStringInfo(buf, (char *) b, 9);
}

void
aa_canon_uuid(StringInfo buf, const pg_uuid_t *u)
{
	if (u == NULL)
	{
		aa_canon_null(buf);
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

void
aa_canon_text(StringInfo buf, const char *s)
{
	if (s == NULL)
		aa_canon_null(buf);
	else
		canon_string(buf, AA_TAG_TEXT, s, strlen(s));
}

void
aa_canon_text_len(StringInfo buf, const char *s, int len)
{
	canon_string(buf, AA_TAG_TEXT, s, len);
}

void
aa_canon_jsonb_text(StringInfo buf, const char *s, int len)
{
	if (s == NULL)
		aa_canon_null(buf);
	else
		canon_string(buf, AA_TAG_JSONB, s, len);
}

void
aa_canon_array_header(StringInfo buf, int nelems)
{
	appendStringInfoCharMacro(buf, AA_TAG_ARRAY);
	put_be32(buf, (uint32) nelems);
}

/*
 * The first 19 bytes of canonical(record): version, seq, logged_at.
 */
void
aa_canon_head(unsigned char *out, int64 seq, TimestampTz logged_at)
{
	out[0] = AA_CANON_VERSION;
	out[1] = AA_TAG_INT8;
	put_be64(out + 2, (uint64) seq);
	out[10] = AA_TAG_TIMESTAMPTZ;
	put_be64(out + 11, (uint64) logged_at);
}

/* Column numbers of agentauth.audit_log (1-based, table order). */
enum
{
	AL_SEQ = 1, AL_LOGGED_AT, AL_EVENT, AL_PRINCIPAL, AL_PRINCIPAL_NAME,
	AL_DB_ROLE, AL_TOKEN, AL_ON_BEHALF_OF, AL_DELEGATION_CHAIN, AL_PURPOSE,
	AL_PATIENT, AL_RELATION, AL_COLUMNS, AL_DATA_CLASSES, AL_ACTION,
	AL_ROW_COUNT, AL_AUTHORITY, AL_OUTCOME, AL_STATEMENT, AL_CLIENT,
	AL_DETAIL, AL_PREV_HASH, AL_ROW_HASH
};

/* the type of each column, in table order, for the definition check */
static const Oid audit_log_types[AA_AUDIT_NATTS] = {
	INT8OID, TIMESTAMPTZOID, TEXTOID, UUIDOID, TEXTOID,
	TEXTOID, UUIDOID, TEXTOID, UUIDARRAYOID, TEXTOID,
	TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID,
	INT8OID, JSONBOID, TEXTOID, TEXTOID, TEXTOID,
	JSONBOID, BYTEAOID, BYTEAOID
};

/*
 * Refuse to read or write a table that is not the audit log we know: the
 * encoding is tied to its columns.
 */
void
aa_audit_check_tupdesc(TupleDesc desc)
{
	bool		ok = (desc->natts == AA_AUDIT_NATTS);

	for (int i = 0; ok && i < AA_AUDIT_NATTS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != audit_log_types[i])
			ok = false;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("agentauth.audit_log does not have the columns of the audit log"),
				 errdetail("The canonical encoding needs the 23 columns created by the extension.")));
}

static void
canon_text_datum(StringInfo buf, Datum d)
{
	text	   *t = (text *) PG_DETOAST_DATUM_PACKED(d);

	canon_string(buf, AA_TAG_TEXT, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	if ((Pointer) t != DatumGetPointer(d))
		pfree(t);
}

static void
canon_array_datum(StringInfo buf, Datum d, bool is_uuid)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	int			n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	array_iter	it;

	aa_canon_array_header(buf, n);
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
			aa_canon_null(buf);
		else if (is_uuid)
			aa_canon_uuid(buf, DatumGetUUIDP(e));
		else
			canon_text_datum(buf, e);
	}
}

static void
canon_jsonb_datum(StringInfo buf, Datum d, StringInfo scratch)
{
	Jsonb	   *jb = DatumGetJsonbP(d);

	resetStringInfo(scratch);
	JsonbToCString(scratch, &jb->root, VARSIZE(jb));
	canon_string(buf, AA_TAG_JSONB, scratch->data, scratch->len);
}

/*
 * canonical(record) of a stored row, from its deformed columns.
 */
void
aa_canon_stored_record(StringInfo buf, Datum *values, bool *nulls,
					   StringInfo scratch)
{
	unsigned char head[AA_CANON_HEAD_LEN];

	/* the head: version, then seq and logged_at unless NULL */
	if (nulls[AL_SEQ - 1] || nulls[AL_LOGGED_AT - 1])
	{
		appendStringInfoCharMacro(buf, AA_CANON_VERSION);
		if (nulls[AL_SEQ - 1])
			aa_canon_null(buf);
		else
			aa_canon_int8(buf, DatumGetInt64(values[AL_SEQ - 1]));
		if (nulls[AL_LOGGED_AT - 1])
			aa_canon_null(buf);
		else
			aa_canon_timestamptz(buf, DatumGetTimestampTz(values[AL_LOGGED_AT - 1]));
	}
	else
	{
		aa_canon_head(head, DatumGetInt64(values[AL_SEQ - 1]),
					  DatumGetTimestampTz(values[AL_LOGGED_AT - 1]));
		appendBinaryStringInfo(buf, (char *) head, AA_CANON_HEAD_LEN);
	}

	for (int att = AL_EVENT; att <= AL_DETAIL; att++)
	{
		Datum		d = values[att - 1];

		if (nulls[att - 1])
		{
			aa_canon_null(buf);
			continue;
		}
		switch (att)
		{
			case AL_PRINCIPAL:
			case AL_TOKEN:
				aa_canon_uuid(buf, DatumGetUUIDP(d));
				break;
			case AL_DELEGATION_CHAIN:
				canon_array_datum(buf, d, true);
				break;
			case AL_COLUMNS:
			case AL_DATA_CLASSES:
				canon_array_datum(buf, d, false);
				break;
			case AL_ROW_COUNT:
				aa_canon_int8(buf, DatumGetInt64(d));
				break;
			case AL_AUTHORITY:
			case AL_DETAIL:
				canon_jsonb_datum(buf, d, scratch);
				break;
			default:
				canon_text_datum(buf, d);
				break;
		}
	}
}

/* ------------------------------------------------------------------
 * Verification
 * ------------------------------------------------------------------
 */

/*
 * The anchor left by the latest purge: the first seq kept and the row_hash
 * of the record before it.  Returns false when the log was never purged.
 */
static bool
latest_purge_anchor(Relation rel, int64 *cut_seq, unsigned char *cut_hash)
{
	bool		found = false;
	int			ret;
	Oid			save_userid;
	int			save_sec;

	/* the caller is an auditor, checked; the table is the extension's */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(rel->rd_rel->relowner,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	SPI_connect();
	ret = SPI_execute("SELECT (l.detail OPERATOR(pg_catalog.->>) 'cut_seq')::pg_catalog.int8,"
					  " pg_catalog.decode(l.detail OPERATOR(pg_catalog.->>) 'cut_hash', 'hex')"
					  " FROM agentauth.audit_log l"
					  " WHERE l.event OPERATOR(pg_catalog.=) 'audit_purged'"
					  " ORDER BY l.seq DESC LIMIT 1", true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the purge anchor");
	if (SPI_processed == 1)
	{
		bool		n1,
					n2;
		Datum		s = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &n1);
		Datum		h = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &n2);

		if (!n1 && !n2)
		{
			bytea	   *b = DatumGetByteaPP(h);

			*cut_seq = DatumGetInt64(s);
			memset(cut_hash, 0, AA_HASH_LEN);
			if (VARSIZE_ANY_EXHDR(b) == AA_HASH_LEN)
				memcpy(cut_hash, VARDATA_ANY(b), AA_HASH_LEN);
			found = true;
		}
	}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	return found;
}

static bool
bytea_equals(Datum d, const unsigned char *h)
{
	bytea	   *b = DatumGetByteaPP(d);

	return VARSIZE_ANY_EXHDR(b) == AA_HASH_LEN &&
		memcmp(VARDATA_ANY(b), h, AA_HASH_LEN) == 0;
}

/* The walk along the chain, shared by the sequential and the index scan. */
typedef struct VerifyState
{
	int64		expected_seq;
	unsigned char expected_prev[AA_HASH_LEN];
	bool		have_expected_prev;
	unsigned char expected_head[AA_HASH_LEN];
	bool		have_expected_head;
	bool		head_found;
	int64		checked;
	int64		bad_seq;
	const char *problem;
	pg_cryptohash_ctx *ctx;
	StringInfoData buf;
	StringInfoData scratch;
	MemoryContext rowcxt;
} VerifyState;

/*
 * Check one record against the state; false (with problem set) at the
 * first problem.
 */
static bool
verify_record(VerifyState *st, Datum *values, bool *nulls)
{
	int64		seq = DatumGetInt64(values[AL_SEQ - 1]);
	unsigned char calc[AA_HASH_LEN];
	MemoryContext oldcxt;
	bytea	   *prev;

	if (seq < st->expected_seq)
	{
		st->bad_seq = seq;
		st->problem = "unexpected record";
		return false;
	}
	if (seq > st->expected_seq)
	{
		st->bad_seq = st->expected_seq;
		st->problem = "missing record";
		return false;
	}
	if (st->have_expected_prev &&
		(nulls[AL_PREV_HASH - 1] ||
		 !bytea_equals(values[AL_PREV_HASH - 1], st->expected_prev)))
	{
		st->bad_seq = seq;
		st->problem = "prev_hash mismatch";
		return false;
	}
	if (nulls[AL_PREV_HASH - 1] || nulls[AL_ROW_HASH - 1])
	{
		st->bad_seq = seq;
		st->problem = "row_hash mismatch";
		return false;
	}

	oldcxt = MemoryContextSwitchTo(st->rowcxt);
	prev = DatumGetByteaPP(values[AL_PREV_HASH - 1]);
	resetStringInfo(&st->buf);
	aa_canon_stored_record(&st->buf, values, nulls, &st->scratch);
	if (pg_cryptohash_init(st->ctx) < 0 ||
		pg_cryptohash_update(st->ctx, (uint8 *) VARDATA_ANY(prev),
							 VARSIZE_ANY_EXHDR(prev)) < 0 ||
		pg_cryptohash_update(st->ctx, (uint8 *) st->buf.data, st->buf.len) < 0 ||
		pg_cryptohash_final(st->ctx, calc, AA_HASH_LEN) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256")));
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(st->rowcxt);

	if (!bytea_equals(values[AL_ROW_HASH - 1], calc))
	{
		st->bad_seq = seq;
		st->problem = "row_hash mismatch";
		return false;
	}
	memcpy(st->expected_prev, calc, AA_HASH_LEN);
	st->have_expected_prev = true;
	if (st->have_expected_head && !st->head_found &&
		memcmp(st->expected_head, calc, AA_HASH_LEN) == 0)
		st->head_found = true;
	st->checked++;
	st->expected_seq++;
	return true;
}

/*
 * The fast path: the log in physical order, which is seq order as long as
 * the table was only ever appended to.  Returns false at the first record
 * out of order or failing its check (the caller then walks the index and
 * reports the problem), true when the whole log verified.
 */
static bool
verify_seqscan(Relation rel, VerifyState *st, int64 lo)
{
	TableScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bool		ok = true;

	/* from the first block: no synchronized scan starting in the middle */
	scan = table_beginscan_strat(rel, GetActiveSnapshot(), 0, NULL, true, false);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		if (slot->tts_isnull[AL_SEQ - 1])
		{
			ok = false;
			break;
		}
		if (DatumGetInt64(slot->tts_values[AL_SEQ - 1]) < lo && st->checked == 0)
			continue;			/* before from_seq */
		if (!verify_record(st, slot->tts_values, slot->tts_isnull))
		{
			ok = false;
			break;
		}
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	return ok;
}

/* The general path: the primary key in seq order from lo. */
static void
verify_indexscan(Relation rel, VerifyState *st, int64 lo)
{
	Relation	idx = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	IndexScanDesc scan;
	ScanKeyData key;

	ScanKeyInit(&key, 1, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(lo));
	scan = index_beginscan(rel, idx, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		if (!verify_record(st, slot->tts_values, slot->tts_isnull))
			break;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
}

PG_FUNCTION_INFO_V1(aa_verify_audit);

/*
 * agentauth.verify_audit(from_seq bigint DEFAULT 1, expected_head bytea
 *                        DEFAULT NULL)
 *   -> (checked bigint, ok boolean, first_bad_seq bigint, problem text)
 *
 * Walks the log in seq order from from_seq.  The first record expected is
 * max(from_seq, 1), or the cut of the latest purge when that is later; its
 * prev_hash must be 32 zero bytes (seq 1) or the purge anchor's hash, and
 * is taken on trust when verification starts in the middle of the chain.
 * Each record must have the next seq, link to the row_hash before it, and
 * hash to its own row_hash.  It stops at the first problem:
 *   unexpected record   a record before the first one expected
 *   missing record      a gap (first_bad_seq is the first missing seq)
 *   prev_hash mismatch  the record does not link to the one before
 *   row_hash mismatch   the record's content does not hash to its row_hash
 *   expected head not found  no checked record (nor the anchor) has that
 *                       row_hash: the tail was removed or rewritten
 *                       (first_bad_seq is the seq after the last record)
 * checked counts the records that verified before the problem.
 *
 * It reads the table in physical order first (fast: an append-only table
 * is in seq order) and falls back to the primary key in seq order when
 * that finds anything amiss, so problems are always reported as the walk
 * in seq order finds them.
 */
Datum
aa_verify_audit(PG_FUNCTION_ARGS)
{
	int64		from_seq;
	int64		cut_seq = 0;
	unsigned char cut_hash[AA_HASH_LEN];
	int64		start;
	int64		lo;
	Oid			relid;
	Relation	rel;
	VerifyState st;
	VerifyState initial;
	TupleDesc	rettupdesc;
	Datum		result[4];
	bool		rnulls[4] = {false, false, false, false};

	aa_require_role("agentauth_auditor");

	memset(&st, 0, sizeof(st));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("from_seq must not be null")));
	from_seq = PG_GETARG_INT64(0);
	if (!PG_ARGISNULL(1))
	{
		bytea	   *h = PG_GETARG_BYTEA_PP(1);

		if (VARSIZE_ANY_EXHDR(h) != AA_HASH_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("expected_head must be 32 bytes"),
					 errhint("Pass the row_hash returned by agentauth.audit_head().")));
		memcpy(st.expected_head, VARDATA_ANY(h), AA_HASH_LEN);
		st.have_expected_head = true;
	}
	if (get_call_result_type(fcinfo, NULL, &rettupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	/* where the chain starts, and what the first record must link to */
	relid = get_relname_relid("audit_log", get_namespace_oid(AA_SCHEMA, false));
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("agentauth.audit_log does not exist")));
	rel = table_open(relid, AccessShareLock);
	aa_audit_check_tupdesc(RelationGetDescr(rel));

	start = Max(from_seq, 1);
	if (latest_purge_anchor(rel, &cut_seq, cut_hash) && start <= cut_seq)
	{
		start = cut_seq;
		memcpy(st.expected_prev, cut_hash, AA_HASH_LEN);
		st.have_expected_prev = true;
	}
	else if (start == 1)
	{
		memset(st.expected_prev, 0, AA_HASH_LEN);
		st.have_expected_prev = true;
	}
	if (st.have_expected_head && st.have_expected_prev &&
		memcmp(st.expected_head, st.expected_prev, AA_HASH_LEN) == 0)
		st.head_found = true;
	st.expected_seq = start;
	lo = (from_seq <= 1) ? PG_INT64_MIN : from_seq;

	st.ctx = pg_cryptohash_create(PG_SHA256);
	if (st.ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	initStringInfo(&st.buf);
	initStringInfo(&st.scratch);
	st.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "agentauth verify row",
									  ALLOCSET_DEFAULT_SIZES);
	initial = st;

	if (!verify_seqscan(rel, &st, lo))
	{
		/* start again, in seq order (keeping the grown buffers) */
		StringInfoData buf = st.buf;
		StringInfoData scratch = st.scratch;

		st = initial;
		st.buf = buf;
		st.scratch = scratch;
		verify_indexscan(rel, &st, lo);
	}

	table_close(rel, AccessShareLock);
	pg_cryptohash_free(st.ctx);
	MemoryContextDelete(st.rowcxt);

	if (st.problem == NULL && st.have_expected_head && !st.head_found)
	{
		st.bad_seq = st.expected_seq;
		st.problem = "expected head not found";
	}

	/* the always-on chain verification alert (monitor.c) */
	if (st.problem != NULL)
		aa_monitor_chain_failure(st.bad_seq, st.problem);

	result[0] = Int64GetDatum(st.checked);
	result[1] = BoolGetDatum(st.problem == NULL);
	if (st.problem == NULL)
	{
		rnulls[2] = true;
		rnulls[3] = true;
	}
	else
	{
		result[2] = Int64GetDatum(st.bad_seq);
		result[3] = CStringGetTextDatum(st.problem);
	}
	rettupdesc = BlessTupleDesc(rettupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(rettupdesc, result, rnulls)));
}

/* ------------------------------------------------------------------
 * Retention
 * ------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(aa_purge_audit);

/*
 * agentauth.purge_audit(before timestamptz) RETURNS bigint
 *
 * Removes the records logged before `before`, which must itself be older
 * than agentauth.audit_retention, and records audit_purged (when the
 * transaction commits) with the cut: the first seq kept and the row_hash
 * of the record before it, from which both verifiers continue.  logged_at
 * grows with seq, so the removed records are a prefix of the chain; the
 * newest record is always kept, so the writer can always find the head.
 * Privacy officers only.  Returns the number of records removed.
 */
Datum
aa_purge_audit(PG_FUNCTION_ARGS)
{
	TimestampTz before;
	TimestampTz oldest_allowed;
	Oid			relid;
	Oid			argtypes[1] = {TIMESTAMPTZOID};
	Datum		args[1];
	int64		first_seq;
	int64		last_seq;
	int64		cut_seq;
	int64		removed = 0;
	char		cut_hex[AA_HASH_LEN * 2 + 1];
	bool		isnull;
	int			ret;
	AARecord	rec;
	StringInfoData detail;
	Oid			save_userid;
	int			save_sec;
	Oid			owner;

	aa_require_role("agentauth_privacy_officer");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("before must not be null")));
	before = PG_GETARG_TIMESTAMPTZ(0);
	oldest_allowed = GetCurrentTransactionStartTimestamp() -
		(TimestampTz) aa_audit_retention * USECS_PER_SEC;
	if (TIMESTAMP_NOT_FINITE(before) || before > oldest_allowed)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit records younger than agentauth.audit_retention cannot be removed"),
				 errdetail("before must be no later than %s.", timestamptz_to_str(oldest_allowed)),
				 errhint("agentauth.audit_retention is set in postgresql.conf.")));

	relid = get_relname_relid("audit_log", get_namespace_oid(AA_SCHEMA, false));
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("agentauth.audit_log does not exist")));
	/* one purge at a time; the writer's inserts go on */
	LockRelationOid(relid, ShareUpdateExclusiveLock);

	/* the caller is a privacy officer, checked; the table is the extension's */
	{
		Relation	rel = table_open(relid, NoLock);

		owner = rel->rd_rel->relowner;
		table_close(rel, NoLock);
	}
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	SPI_connect();
	ret = SPI_execute("SELECT pg_catalog.min(seq), pg_catalog.max(seq) FROM agentauth.audit_log",
					  true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the audit log");
	first_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
	{
		SPI_finish();
		SetUserIdAndSecContext(save_userid, save_sec);
		PG_RETURN_INT64(0);
	}
	last_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	args[0] = TimestampTzGetDatum(before);
	ret = SPI_execute_with_args("SELECT pg_catalog.min(seq) FROM agentauth.audit_log"
								" WHERE logged_at OPERATOR(pg_catalog.>=) $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the audit log");
	cut_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull || cut_seq > last_seq)
		cut_seq = last_seq;		/* keep the head */
	if (cut_seq < first_seq)
		cut_seq = first_seq;

	/* the hash the first record kept links to */
	args[0] = Int64GetDatum(cut_seq);
	argtypes[0] = INT8OID;
	ret = SPI_execute_with_args("SELECT pg_catalog.encode(prev_hash, 'hex') FROM agentauth.audit_log"
								" WHERE seq OPERATOR(pg_catalog.=) $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the audit log has no record " INT64_FORMAT, cut_seq),
				 errhint("Run agentauth.verify_audit().")));
	{
		char	   *h = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		strlcpy(cut_hex, h ? h : "", sizeof(cut_hex));
	}

	if (cut_seq > first_seq)
	{
		aa_audit_purging = true;
		PG_TRY();
		{
			ret = SPI_execute_with_args("DELETE FROM agentauth.audit_log WHERE seq OPERATOR(pg_catalog.<) $1",
										1, argtypes, args, NULL, false, 0);
		}
		PG_FINALLY();
		{
			aa_audit_purging = false;
		}
		PG_END_TRY();
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not purge the audit log");
		removed = SPI_processed;
	}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);

	initStringInfo(&detail);
	appendStringInfo(&detail,
					 "{\"before\": \"%s\", \"removed\": " INT64_FORMAT
					 ", \"cut_seq\": " INT64_FORMAT ", \"cut_hash\": \"%s\"}",
					 timestamptz_to_str(before), removed, cut_seq, cut_hex);
	memset(&rec, 0, sizeof(rec));
	rec.event = "audit_purged";
	rec.relation = "agentauth.audit_log";
	rec.action = "delete";
	rec.row_count = removed;
	rec.outcome = "permit";
	rec.detail = detail.data;
	aa_audit_emit(&rec, true);

	PG_RETURN_INT64(removed);
}
