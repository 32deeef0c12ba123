/*-------------------------------------------------------------------------
 *
 * chain.c
 *		The hash chain of the audit log: the chain hash (aa_chain_hash, the
 *		one function the writer and the verifier both use) and its C
 *		verifier, agentauth.verify_audit(), which starts from the anchor the
 *		latest agentauth.purge_audit() (audit_guard.c) left.
 *
 *		row_hash = SHA-256(prev_hash || canonical(record)), where
 *		canonical() is record.c's encoding.  The writer hashes the head it
 *		builds and the body the backend encoded; the verifier rebuilds
 *		canonical(record) from the stored row.  agentauth.verify_audit_sql()
 *		is the same algorithm written in SQL over sha256(); the two must give
 *		identical answers, so any change here changes that function too.
 *
 *		Speed (issue "Performance"): verify_audit reads the heap in order
 *		and encodes each row into one reused buffer with nothing allocated
 *		per row (record.c); under OpenSSL 3 the digest is fetched once per
 *		process instead of on every hash.  About 2 M records per CPU
 *		second, single-threaded, so it does not split the log into ranges.
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
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "agentauth.h"

#ifdef USE_OPENSSL
#include <openssl/evp.h>
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#define AA_SHA256_FETCHED 1
#endif
#endif

/* ------------------------------------------------------------------
 * The chain hash
 * ------------------------------------------------------------------
 */

#ifdef AA_SHA256_FETCHED
/*
 * OpenSSL 3 looks EVP_sha256() up again -- a lock, a name lookup, a
 * reference count -- on every pg_cryptohash_init(): a third of the cost of
 * hashing a 400-byte record.  Each process fetches the digest once and
 * re-initializes one context with it; both live as long as the process,
 * so an error in the middle leaks nothing.  NULL: fetching failed, use
 * pg_cryptohash.
 */
static EVP_MD *chain_md;
static EVP_MD_CTX *chain_evp;
static bool chain_evp_tried = false;

static bool
chain_hash_evp(const unsigned char *prev_hash, size_t prev_len,
			   const char *canon1, size_t len1,
			   const char *canon2, size_t len2, unsigned char *out)
{
	unsigned int outlen = 0;

	if (!chain_evp_tried)
	{
		chain_evp_tried = true;
		chain_md = EVP_MD_fetch(NULL, "SHA256", NULL);
		chain_evp = chain_md ? EVP_MD_CTX_new() : NULL;
		if (chain_evp == NULL && chain_md != NULL)
		{
			EVP_MD_free(chain_md);
			chain_md = NULL;
		}
	}
	if (chain_evp == NULL)
		return false;
	if (EVP_DigestInit_ex(chain_evp, chain_md, NULL) != 1 ||
		EVP_DigestUpdate(chain_evp, prev_hash, prev_len) != 1 ||
		EVP_DigestUpdate(chain_evp, canon1, len1) != 1 ||
		(len2 > 0 && EVP_DigestUpdate(chain_evp, canon2, len2) != 1) ||
		EVP_DigestFinal_ex(chain_evp, out, &outlen) != 1 ||
		outlen != AA_HASH_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256")));
	return true;
}
#endif

/*
 * row_hash = SHA-256(prev_hash || canonical(record)).  The writer passes
 * canonical(record) in two pieces, the head it builds and the body the
 * backend encoded; the verifier in one piece, rebuilt from the row.  ctx
 * is used where the digest cannot be fetched once (see above).
 */
void
aa_chain_hash(pg_cryptohash_ctx *ctx, const unsigned char *prev_hash,
			  size_t prev_len, const char *canon1, size_t len1,
			  const char *canon2, size_t len2, unsigned char *out)
{
#ifdef AA_SHA256_FETCHED
	if (chain_hash_evp(prev_hash, prev_len, canon1, len1, canon2, len2, out))
		return;
#endif
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, prev_hash, prev_len) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) canon1, len1) < 0 ||
		(len2 > 0 && pg_cryptohash_update(ctx, (const uint8 *) canon2, len2) < 0) ||
		pg_cryptohash_final(ctx, out, AA_HASH_LEN) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256")));
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
	AASpiState	spi;

	/* the caller is an auditor, checked; the table is the extension's */
	aa_spi_begin_as(&spi, rel->rd_rel->relowner, false);
	/* the stored log (audit_record; a 1.0 log's table): by its index */
	/*
	 * an anchor that is not a number and hex (tampered) is no anchor: the
	 * chain is checked from its start and the break reported (1.1: the
	 * casts failed the whole call); verify_audit_sql reads it alike
	 */
	ret = SPI_execute(psprintf("SELECT CASE WHEN (l.detail OPERATOR(pg_catalog.->>) 'cut_seq')"
							   " OPERATOR(pg_catalog.~) '^[0-9]{1,18}$'"
							   " THEN (l.detail OPERATOR(pg_catalog.->>) 'cut_seq')::pg_catalog.int8 END,"
							   " CASE WHEN (l.detail OPERATOR(pg_catalog.->>) 'cut_hash')"
							   " OPERATOR(pg_catalog.~) '^([0-9a-fA-F]{2})*$'"
							   " THEN pg_catalog.decode(l.detail OPERATOR(pg_catalog.->>) 'cut_hash', 'hex') END"
							   " FROM agentauth.%s l"
							   " WHERE l.event OPERATOR(pg_catalog.=) 'audit_purged'"
							   " ORDER BY l.seq DESC LIMIT 1",
							   quote_identifier(RelationGetRelationName(rel))),
					  true, 1);
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
	aa_spi_end(&spi);
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
	StringInfoData buf;			/* canonical(record), reused */
	AACanonCache cache;			/* the encoder's reusable state */
	MemoryContext rowcxt;		/* anything the encoder allocates */
} VerifyState;

/*
 * Check one record against the state; false (with problem set) at the
 * first problem.
 */
static bool
verify_record(VerifyState *st, Datum *values, bool *nulls)
{
	int64		seq = DatumGetInt64(values[AA_COL_SEQ]);
	int64		n;
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
		(nulls[AA_COL_PREV_HASH] ||
		 !bytea_equals(values[AA_COL_PREV_HASH], st->expected_prev)))
	{
		st->bad_seq = seq;
		st->problem = "prev_hash mismatch";
		return false;
	}
	/* the shape checks detoast and unpack arrays: in the row's context too */
	oldcxt = MemoryContextSwitchTo(st->rowcxt);
	n = aa_record_entry_count(values, nulls, st->cache.natts);
	if (nulls[AA_COL_PREV_HASH] || nulls[AA_COL_ROW_HASH] ||
		!aa_record_well_formed(values, nulls, st->cache.natts))
	{
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(st->rowcxt);
		st->bad_seq = seq;
		st->problem = "row_hash mismatch";
		return false;
	}
	prev = DatumGetByteaPP(values[AA_COL_PREV_HASH]);
	st->buf.len = 0;
	aa_record_canon_stored(&st->buf, values, nulls, &st->cache);
	aa_chain_hash(st->ctx, (unsigned char *) VARDATA_ANY(prev),
				  VARSIZE_ANY_EXHDR(prev), st->buf.data, st->buf.len,
				  NULL, 0, calc);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(st->rowcxt);

	if (!bytea_equals(values[AA_COL_ROW_HASH], calc))
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
	st->checked += n;			/* a unit: its n records */
	st->expected_seq += n;
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
		if (slot->tts_isnull[AA_COL_SEQ])
		{
			ok = false;
			break;
		}
		if (DatumGetInt64(slot->tts_values[AA_COL_SEQ]) < lo && st->checked == 0)
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

	/* the primary key's one column, seq */
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

/*
 * Where verification from seq starts: seq, or the first seq of the unit
 * that holds it (the last row at or before seq, when it is a unit that
 * reaches seq).
 */
static int64
unit_start(Relation rel, int64 seq)
{
	Relation	idx = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	IndexScanDesc scan;
	ScanKeyData key;
	int64		start = seq;

	ScanKeyInit(&key, 1, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(seq));
	scan = index_beginscan(rel, idx, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		int64		first;
		int64		n;

		slot_getallattrs(slot);
		if (!slot->tts_isnull[AA_COL_SEQ])
		{
			first = DatumGetInt64(slot->tts_values[AA_COL_SEQ]);
			n = aa_record_entry_count(slot->tts_values, slot->tts_isnull,
									  RelationGetDescr(rel)->natts);
			if (first < seq && first + n > seq)
				start = first;
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	return start;
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
	relid = aa_record_log_relid(get_namespace_oid(AA_SCHEMA, false));
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("agentauth.audit_record does not exist")));
	rel = table_open(relid, AccessShareLock);
	(void) aa_record_check_tupdesc(RelationGetDescr(rel));

	start = Max(from_seq, 1);
	if (start > 1)
		start = unit_start(rel, start);
	from_seq = (from_seq <= 1) ? from_seq : start;
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
	aa_record_canon_cache_init(&st.cache);
	st.cache.natts = RelationGetDescr(rel)->natts;
	st.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "agentauth verify row",
									  ALLOCSET_DEFAULT_SIZES);
	initial = st;

	if (!verify_seqscan(rel, &st, lo))
	{
		/* start again, in seq order (keeping the grown buffers) */
		StringInfoData buf = st.buf;
		AACanonCache cache = st.cache;

		st = initial;
		st.buf = buf;
		st.cache = cache;
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
