/*-------------------------------------------------------------------------
 *
 * patient_log.c
 *		A patient's entries in the units of the audit log (encoding version
 *		2), for the per-patient reports: the units' index keys
 *		(_patient_hash, _patient_hashes), the view's entry helpers
 *		(_entry_positions, _entry_at, _consent_authority), and
 *		_patient_entries, which reads a patient's entries straight from the
 *		units the index finds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/gin.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/tidbitmap.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
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
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "agentauth.h"
#include "record_int.h"

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
static int
entry_positions(ArrayType *a, const text *p, int32 *found)
{
	const char *pdata = VARDATA_ANY(p);
	int			plen = VARSIZE_ANY_EXHDR(p);
	int			nfound = 0;
	PatientWalk w;

	patients_walk(a, &w);
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
			found[nfound++] = w.i;
	}
	return nfound;
}

Datum
aa_entry_positions(PG_FUNCTION_ARGS)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(0);
	int			n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	int32	   *found = palloc(sizeof(int32) * Max(n, 1));
	Datum	   *out = palloc(sizeof(Datum) * Max(n, 1));
	int			nfound = entry_positions(a, PG_GETARG_TEXT_PP(1), found);

	for (int i = 0; i < nfound; i++)
		out[i] = Int32GetDatum(found[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, nfound, INT4OID, sizeof(int32),
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
 * The ord-th element of a in storage order (from 1), or NULL (*isnull):
 * the entry field that an ordinal of entry_positions() names, whatever a's
 * bounds or dimensions.
 */
static Datum
element_at(ArrayType *a, int32 ord, const ElemInfo *ti, bool *isnull)
{
	int			n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	Datum		d = (Datum) 0;

	*isnull = true;
	if (ord < 1 || ord > n)
		return (Datum) 0;
	if (ARR_NDIM(a) == 1)
	{
		int			sub = ARR_LBOUND(a)[0] + ord - 1;

		d = array_get_element(PointerGetDatum(a), 1, &sub, -1, ti->len,
							  ti->byval, ti->align, isnull);
	}
	else
	{
		array_iter	it;

		array_iter_setup(&it, (AnyArrayType *) a);
		for (int i = 0; i < ord; i++)
			d = array_iter_next(&it, isnull, i, ti->len, ti->byval, ti->align);
	}
	return d;
}

/* ti for an element type, looked up */
static void
elem_info(Oid type, ElemInfo *ti)
{
	ti->type = type;
	get_typlenbyvalalign(type, &ti->len, &ti->byval, &ti->align);
}

/*
 * agentauth._entry_at(a anyarray, ord int) RETURNS anyelement
 *
 * element_at() in SQL (the view agentauth.audit_log's entries).
 */
Datum
aa_entry_at(PG_FUNCTION_ARGS)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(0);
	ElemInfo   *ti = (ElemInfo *) fcinfo->flinfo->fn_extra;
	bool		isnull;
	Datum		d;

	/* the element type's layout, looked up once per call site */
	if (ti == NULL || ti->type != ARR_ELEMTYPE(a))
	{
		if (ti == NULL)
			ti = fcinfo->flinfo->fn_extra =
				MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(ElemInfo));
		elem_info(ARR_ELEMTYPE(a), ti);
	}
	d = element_at(a, PG_GETARG_INT32(1), ti, &isnull);
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
static Jsonb *
consent_authority(const pg_uuid_t *id)
{
	char		text[AA_CONSENT_AUTH_LEN];
	JsonbParseState *state = NULL;
	JsonbValue	v;

	/* the id as the verifiers' text has it */
	aa_consent_authority_text(id, text);
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
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

Datum
aa_consent_authority(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(consent_authority(PG_GETARG_UUID_P(0)));
}

/* ------------------------------------------------------------------
 * _patient_entries: a patient's entries, read from the units directly
 * ------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(aa_patient_entries);

/* the GIN array operator class's strategy for @> (ginarrayproc.c) */
#define GIN_CONTAINS_STRATEGY	2

/* the columns of agentauth.audit_log, the function's result */
#define LOG_NATTS	(AA_COL_ROW_HASH + 1)

/* the entry fields of a unit, each an array read by ordinal */
typedef struct UnitEntries
{
	ArrayType  *kinds;
	ArrayType  *row_counts;
	ArrayType  *authorities;
	ArrayType  *consents;		/* NULL: none stored apart */
} UnitEntries;

/* what a call keeps from unit to unit */
typedef struct EntriesCall
{
	ElemInfo	kind;			/* the entry arrays' element types */
	ElemInfo	row_count;
	ElemInfo	authority;
	ElemInfo	consent;
	MemoryContext cxt;			/* the call's: lives until its end */
	pg_uuid_t	last_consent;	/* a patient's entries mostly name one */
	Datum		last_authority; /* its authority, in cxt; 0: none yet */
} EntriesCall;

/* an array column of the unit, detoasted, of the type the log declares */
static ArrayType *
unit_array(TupleTableSlot *slot, int col, Oid elemtype)
{
	ArrayType  *a;

	if (slot->tts_isnull[col])
		return NULL;
	a = DatumGetArrayTypeP(slot->tts_values[col]);
	if (ARR_ELEMTYPE(a) != elemtype)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("agentauth.audit_record has an entry array of another type")));
	return a;
}

/*
 * Put the unit's entries of patient p (ordinals found[0 .. nfound - 1]) as
 * rows of agentauth.audit_log, each what the view shows for it: the
 * unit's shared fields, the entry's own, event, purpose and outcome from
 * its kind.
 */
static void
put_entries(ReturnSetInfo *rsinfo, TupleTableSlot *slot, Datum patient,
			const int32 *found, int nfound, EntriesCall *call)
{
	Datum	   *uv = slot->tts_values;
	bool	   *un = slot->tts_isnull;
	UnitEntries u;
	Datum		values[LOG_NATTS];
	bool		nulls[LOG_NATTS];
	int64		first = DatumGetInt64(uv[AA_COL_SEQ]);

	u.kinds = unit_array(slot, AA_COL_ENTRY_KINDS, INT2OID);
	u.row_counts = unit_array(slot, AA_COL_ENTRY_ROW_COUNTS, INT8OID);
	u.authorities = unit_array(slot, AA_COL_ENTRY_AUTHORITIES, JSONBOID);
	u.consents = slot->tts_tupleDescriptor->natts > AA_COL_ENTRY_CONSENTS ?
		unit_array(slot, AA_COL_ENTRY_CONSENTS, UUIDOID) : NULL;

	/* the unit's shared fields: the same in each of its rows */
	memcpy(values, uv, sizeof(Datum) * LOG_NATTS);
	memcpy(nulls, un, sizeof(bool) * LOG_NATTS);
	values[AA_COL_PATIENT] = patient;
	nulls[AA_COL_PATIENT] = false;

	for (int i = 0; i < nfound; i++)
	{
		int32		o = found[i];
		bool		knull = true;
		int32		kind = 0;
		Datum		purpose = uv[AA_COL_PURPOSE];
		bool		purpose_null = un[AA_COL_PURPOSE];
		int64		seq;
		bool		cnull = true;
		Datum		c = (Datum) 0;

		if (pg_add_s64_overflow(first, (int64) o - 1, &seq))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("bigint out of range")));
		values[AA_COL_SEQ] = Int64GetDatum(seq);
		if (u.kinds != NULL)
			kind = DatumGetInt16(element_at(u.kinds, o, &call->kind, &knull));

		/* as the view: kind / 3 the outcome, kind % 3 the purpose */
		nulls[AA_COL_EVENT] = nulls[AA_COL_OUTCOME] = true;
		if (!knull && kind / 3 == 0)
		{
			values[AA_COL_EVENT] = CStringGetTextDatum("access");
			values[AA_COL_OUTCOME] = CStringGetTextDatum("permit");
			nulls[AA_COL_EVENT] = nulls[AA_COL_OUTCOME] = false;
		}
		else if (!knull && kind / 3 == 1)
		{
			values[AA_COL_EVENT] = CStringGetTextDatum("denied");
			values[AA_COL_OUTCOME] = CStringGetTextDatum("deny");
			nulls[AA_COL_EVENT] = nulls[AA_COL_OUTCOME] = false;
		}
		if (knull || kind % 3 == 2 || kind % 3 < 0)
			purpose_null = true;
		else if (kind % 3 == 1)
		{
			purpose = CStringGetTextDatum("BTG");
			purpose_null = false;
		}
		values[AA_COL_PURPOSE] = purpose;
		nulls[AA_COL_PURPOSE] = purpose_null;

		nulls[AA_COL_ROW_COUNT] = true;
		if (u.row_counts != NULL)
			values[AA_COL_ROW_COUNT] = element_at(u.row_counts, o, &call->row_count,
												  &nulls[AA_COL_ROW_COUNT]);

		/* a consent's id stands for its authority; else the entry's own */
		if (u.consents != NULL)
			c = element_at(u.consents, o, &call->consent, &cnull);
		if (!cnull)
		{
			if (call->last_authority == (Datum) 0 ||
				memcmp(DatumGetUUIDP(c), &call->last_consent, UUID_LEN) != 0)
			{
				MemoryContext old = MemoryContextSwitchTo(call->cxt);

				if (call->last_authority != (Datum) 0)
					pfree(DatumGetPointer(call->last_authority));
				call->last_authority =
					JsonbPGetDatum(consent_authority(DatumGetUUIDP(c)));
				memcpy(&call->last_consent, DatumGetUUIDP(c), UUID_LEN);
				MemoryContextSwitchTo(old);
			}
			values[AA_COL_AUTHORITY] = call->last_authority;
			nulls[AA_COL_AUTHORITY] = false;
		}
		else if (u.authorities != NULL)
			values[AA_COL_AUTHORITY] =
				element_at(u.authorities, o, &call->authority,
						   &nulls[AA_COL_AUTHORITY]);
		else
			nulls[AA_COL_AUTHORITY] = true;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * agentauth._patient_entries(p text, since timestamptz, until timestamptz)
 *		RETURNS SETOF agentauth.audit_log
 *
 * The entries of patient p in the units of the log logged from since to
 * until (both included), as the view agentauth.audit_log shows them (in
 * no order).  _patient_log's SQL did
 * the same through a bitmap scan of the GIN index, a ProjectSet of each
 * unit's ordinals and a call per field of each entry, each call reading
 * its array whole again; here each unit the index finds is read once: its
 * patients scanned for p byte for byte (a hash shared with another id
 * finds nothing), the entry arrays detoasted once, and each entry put as a
 * row.  The caller needs SELECT on agentauth.audit_record, as the SQL did.
 */
Datum
aa_patient_entries(PG_FUNCTION_ARGS)
{
	text	   *p = PG_GETARG_TEXT_PP(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			nsp = get_namespace_oid(AA_SCHEMA, false);
	Oid			relid = get_relname_relid("audit_record", nsp);
	Oid			indexid = get_relname_relid("audit_record_entry_patients_idx", nsp);
	Snapshot	snapshot = GetActiveSnapshot();
	Relation	rel;
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData key;
	Datum		hash;
	TIDBitmap  *tbm;
	TBMIterator *it;
	TBMIterateResult *page;
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	MemoryContext unitcxt;
	MemoryContext oldcxt;
	EntriesCall call;
	TimestampTz since = PG_GETARG_TIMESTAMPTZ(1);
	TimestampTz until = PG_GETARG_TIMESTAMPTZ(2);
	int32	   *found = NULL;
	int			room = 0;
	AclResult	acl;
	int			fuzzy;

	if (!OidIsValid(relid) || !OidIsValid(indexid) ||
		get_rel_relkind(indexid) != RELKIND_INDEX)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the audit log's patient index is missing"),
				 errhint("agentauth.audit_record and its index audit_record_entry_patients_idx are created by the extension.")));
	acl = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, "audit_record");

	InitMaterializedSRF(fcinfo, 0);
	if (rsinfo->setDesc->natts != LOG_NATTS)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("_patient_entries must return agentauth.audit_log's %d columns",
						LOG_NATTS)));

	rel = table_open(relid, AccessShareLock);
	index = index_open(indexid, AccessShareLock);
	if (index->rd_index->indrelid != relid)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("audit_record_entry_patients_idx is not an index of agentauth.audit_record")));
	(void) aa_record_check_tupdesc(RelationGetDescr(rel));
	elem_info(INT2OID, &call.kind);
	elem_info(INT8OID, &call.row_count);
	elem_info(JSONBOID, &call.authority);
	elem_info(UUIDOID, &call.consent);
	call.cxt = CurrentMemoryContext;
	call.last_authority = (Datum) 0;

	/* the units whose keys hold p's: the index's own query, @> ARRAY[hash] */
	hash = Int32GetDatum(patient_hash(p));
	ScanKeyEntryInitialize(&key, 0, 1, GIN_CONTAINS_STRATEGY, INT4ARRAYOID,
						   InvalidOid, F_ARRAYCONTAINS,
						   PointerGetDatum(construct_array(&hash, 1, INT4OID,
														   sizeof(int32), true,
														   TYPALIGN_INT)));
	tbm = tbm_create(work_mem * 1024L, NULL);
	scan = index_beginscan_bitmap(index, snapshot, 1);
	index_rescan(scan, &key, 1, NULL, 0);

	/*
	 * Every unit: gin_fuzzy_search_limit, which anyone may set (a client's
	 * PGOPTIONS, ALTER DATABASE by its owner), makes a GIN scan return a
	 * random sample of its matches -- a report that left out entries (1.1,
	 * found by review).
	 */
	fuzzy = GinFuzzySearchLimit;
	GinFuzzySearchLimit = 0;
	PG_TRY();
	{
		(void) index_getbitmap(scan, tbm);
	}
	PG_FINALLY();
	{
		GinFuzzySearchLimit = fuzzy;
	}
	PG_END_TRY();
	index_endscan(scan);

	unitcxt = AllocSetContextCreate(CurrentMemoryContext, "agentauth patient entries",
									ALLOCSET_DEFAULT_SIZES);
	fetch = table_index_fetch_begin(rel);
	slot = table_slot_create(rel, NULL);
	it = tbm_begin_iterate(tbm);
	while ((page = tbm_iterate(it)) != NULL)
	{
		/* a lossy page: every line pointer (a heap-only one finds nothing) */
		int			n = page->ntuples >= 0 ? page->ntuples : MaxHeapTuplesPerPage;

		for (int i = 0; i < n; i++)
		{
			ItemPointerData tid;
			bool		call_again = false;
			bool		all_dead = false;
			ArrayType  *patients;
			int			npat;
			int			nfound;

			CHECK_FOR_INTERRUPTS();
			ItemPointerSet(&tid, page->blockno,
						   page->ntuples >= 0 ? page->offsets[i] : i + FirstOffsetNumber);
			if (!table_index_fetch_tuple(fetch, &tid, snapshot, slot,
										 &call_again, &all_dead))
				continue;
			/* the unit's time first: a report's period passes most by */
			slot_getsomeattrs(slot, AA_COL_ATTNUM(AA_COL_LOGGED_AT));
			if (slot->tts_isnull[AA_COL_LOGGED_AT] ||
				DatumGetTimestampTz(slot->tts_values[AA_COL_LOGGED_AT]) < since ||
				DatumGetTimestampTz(slot->tts_values[AA_COL_LOGGED_AT]) > until)
				continue;
			slot_getallattrs(slot);
			if (slot->tts_isnull[AA_COL_ENTRY_KINDS] ||
				slot->tts_isnull[AA_COL_ENTRY_PATIENTS])
				continue;		/* a record, or not a unit the view shows */

			oldcxt = MemoryContextSwitchTo(unitcxt);
			patients = DatumGetArrayTypeP(slot->tts_values[AA_COL_ENTRY_PATIENTS]);
			npat = ArrayGetNItems(ARR_NDIM(patients), ARR_DIMS(patients));
			if (npat > room)
			{
				room = Max(npat, 128);
				found = MemoryContextAlloc(rsinfo->econtext->ecxt_per_query_memory,
										   sizeof(int32) * room);
			}
			nfound = entry_positions(patients, p, found);
			if (nfound > 0)
				put_entries(rsinfo, slot, PointerGetDatum(p), found, nfound, &call);
			MemoryContextSwitchTo(oldcxt);
			MemoryContextReset(unitcxt);
		}
	}
	tbm_end_iterate(it);
	ExecDropSingleTupleTableSlot(slot);
	table_index_fetch_end(fetch);
	tbm_free(tbm);
	MemoryContextDelete(unitcxt);
	/* the locks held to the transaction's end, as a scan's are */
	index_close(index, NoLock);
	table_close(rel, NoLock);
	return (Datum) 0;
}
