/*-------------------------------------------------------------------------
 *
 * unit.c
 *		A statement's records of one table as one stored row: a unit
 *		(issue "Performance", encoding version 2).  A cohort query leaves
 *		one access (or denied) record per patient, and all of them repeat
 *		the principal, token, purpose, relation, columns, classes,
 *		statement and client; so do the records of a prepared statement
 *		that a session runs again and again for one patient after another.
 *		The audit writer gathers a backend's successive queue entries that
 *		differ only in their patient's part into a unit of at most
 *		AA_UNIT_MAX_ENTRIES, stores what they share once and each
 *		patient's part as the i-th element of four arrays:
 *
 *		  entry_kinds        k / 3: 0 access/permit, 1 denied/deny;
 *		                     k % 3: purpose 0 the unit's, 1 'BTG', 2 NULL
 *		  entry_patients     the patient
 *		  entry_row_counts   the rows
 *		  entry_authorities  the authority (jsonb, NULL allowed)
 *
 *		and a fifth that stores the commonest authority compactly: a permit
 *		by one consent, {"consents": ["<id>"]}, is the consent's id in
 *		entry_consents (16 bytes, where the jsonb took about 50 that LZ4
 *		cannot shrink: the id's 32 random hex digits), entry_authorities[i]
 *		NULL; every other entry's element of entry_consents is NULL, and the
 *		column is NULL when no entry has one.  The stored form is not the
 *		hashed one: the canonical encoding has the authority's text, which
 *		the verifiers rebuild from the id.
 *
 *		The unit's row has event 'entries', its shared fields, the purpose
 *		of its kind-0 entries, and patient, row_count, authority and outcome
 *		NULL.  Its entries take seq, seq + 1, ..., seq + n - 1, and are
 *		chained as one: row_hash = SHA-256(prev_hash || canonical), where
 *		canonical is the version byte 0x02, the 21 fields seq..detail of
 *		the unit's row exactly as version 1 encodes a record, then the
 *		four arrays, each tagged 'a' with its length and its elements
 *		(kinds and row counts as bigints).  record_stored.c encodes the
 *		same from the stored row for verify_audit; agentauth.audit_log
 *		shows each entry as its own record.
 *
 *		The queue's records keep their version 1 form (record.c): the
 *		pieces of a unit are taken from their canonical bodies as they are,
 *		so the writer's cost per patient is a few comparisons and copies.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "agentauth.h"
#include "record_int.h"

#define NFIELDS		(AA_COL_DETAIL + 1)

/* where each field event..detail lies in a canonical body */
typedef struct Segment
{
	uint32		off;
	uint32		len;
} Segment;

struct AAUnit
{
	MemoryContext cxt;
	int			n;
	/*
	 * the first queue entry, whole: its body has the shared fields (where
	 * seg says) and detail's binary copy; a unit that stays at one entry is
	 * stored as it
	 */
	StringInfoData entry;
	Segment		seg[NFIELDS];
	StringInfoData purpose;		/* the kind-0 purpose's field; len 0: none */
	/* the entries, as hashed (elements of each array) and as stored */
	StringInfoData c_kinds;
	StringInfoData c_patients;
	StringInfoData c_rows;
	StringInfoData c_auths;
	Datum		kinds[AA_UNIT_MAX_ENTRIES];
	Datum		patients[AA_UNIT_MAX_ENTRIES];
	Datum		rows[AA_UNIT_MAX_ENTRIES];
	Datum		auths[AA_UNIT_MAX_ENTRIES];
	bool		auth_nulls[AA_UNIT_MAX_ENTRIES];
	pg_uuid_t	consents[AA_UNIT_MAX_ENTRIES];
	bool		consent_nulls[AA_UNIT_MAX_ENTRIES];
	int			nconsents;		/* entries whose authority is a consent id */
	uint64		statements[AA_UNIT_MAX_ENTRIES];
	int32		backend;		/* the pid whose records these are */
	/* the synthetic queue entry of the unit's row, and its canonical */
	StringInfoData row;
	StringInfoData canon;
};

/* the fields every entry of a unit has the same */
static const bool shared_field[NFIELDS] = {
	[AA_COL_PRINCIPAL] = true,
	[AA_COL_PRINCIPAL_NAME] = true,
	[AA_COL_DB_ROLE] = true,
	[AA_COL_TOKEN] = true,
	[AA_COL_ON_BEHALF_OF] = true,
	[AA_COL_DELEGATION_CHAIN] = true,
	[AA_COL_RELATION] = true,
	[AA_COL_COLUMNS] = true,
	[AA_COL_DATA_CLASSES] = true,
	[AA_COL_ACTION] = true,
	[AA_COL_STATEMENT] = true,
	[AA_COL_CLIENT] = true,
	[AA_COL_DETAIL] = true,
};

/* canonical text fields compared against */
static const char CANON_ACCESS[] = "t\0\0\0\6access";
static const char CANON_DENIED[] = "t\0\0\0\6denied";
static const char CANON_PERMIT[] = "t\0\0\0\6permit";
static const char CANON_DENY[] = "t\0\0\0\4deny";
static const char CANON_BTG[] = "t\0\0\0\3BTG";
static const char CANON_ENTRIES[] = "t\0\0\0\7entries";

#define CANON_IS(body, s, lit) \
	((s).len == sizeof(lit) - 1 && memcmp((body) + (s).off, (lit), sizeof(lit) - 1) == 0)

AAUnit *
aa_unit_create(MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	AAUnit	   *u = palloc0(sizeof(AAUnit));

	u->cxt = cxt;
	initStringInfo(&u->entry);
	initStringInfo(&u->purpose);
	initStringInfo(&u->c_kinds);
	initStringInfo(&u->c_patients);
	initStringInfo(&u->c_rows);
	initStringInfo(&u->c_auths);
	initStringInfo(&u->row);
	initStringInfo(&u->canon);
	MemoryContextSwitchTo(old);
	return u;
}

/* the unit's first queue entry (valid while it has entries) */
static inline const AAQueueEntry *
first_entry(const AAUnit *u)
{
	return (const AAQueueEntry *) u->entry.data;
}

int
aa_unit_size(const AAUnit *u)
{
	return u->n;
}

/*
 * A unit of one entry is not stored as a unit: its one queue entry is
 * stored as the version 1 record it is.  The four one-element arrays cost
 * about 100 bytes more than the record's own patient, row_count, authority
 * and outcome, and a statement that touches one patient with audit_sync on
 * (or one between two other statements of its session) makes such a unit
 * every time.  The view and the verifiers show and check both forms alike.
 * Returns the entry (the unit's copy, valid until the unit takes another)
 * and empties the unit; NULL when the unit has more than one.
 */
const AAQueueEntry *
aa_unit_take_single(AAUnit *u)
{
	if (u->n != 1)
		return NULL;
	u->n = 0;
	return first_entry(u);
}

/* the backend whose records the unit holds (valid while it has entries) */
int32
aa_unit_backend(const AAUnit *u)
{
	return u->backend;
}

/* can e be an entry of some unit at all (whatever the unit)? */
bool
aa_unit_candidate(const AAQueueEntry *e)
{
	return !TransactionIdIsValid(e->xid) && e->statement != 0;
}

static uint32
rd32(const char *p)
{
	uint32		be;

	memcpy(&be, p, 4);
	return pg_ntoh32(be);
}

static int64
rd64(const char *p)
{
	uint64		be;

	memcpy(&be, p, 8);
	return (int64) pg_ntoh64(be);
}

/* the length of the field at p (at most avail bytes); 0: malformed */
static uint32
field_len(const char *p, uint32 avail, bool in_array)
{
	uint32		len;

	if (avail < 1)
		return 0;
	switch (p[0])
	{
		case AA_TAG_NULL:
			return 1;
		case AA_TAG_INT8:
		case AA_TAG_TIMESTAMPTZ:
			return avail >= 9 ? 9 : 0;
		case AA_TAG_UUID:
			return avail >= 1 + UUID_LEN ? 1 + UUID_LEN : 0;
		case AA_TAG_TEXT:
		case AA_TAG_JSONB:
			if (avail < 5)
				return 0;
			len = rd32(p + 1);
			return len <= avail - 5 ? 5 + len : 0;
		case AA_TAG_ARRAY:
			{
				uint32		n,
							off = 5;

				if (in_array || avail < 5)
					return 0;
				n = rd32(p + 1);
				for (uint32 i = 0; i < n; i++)
				{
					uint32		l = field_len(p + off, avail - off, true);

					if (l == 0)
						return 0;
					off += l;
				}
				return off;
			}
		default:
			return 0;
	}
}

/* the field of a body at *off, into *seg, *off past it; false: malformed */
static inline bool
next_field(const char *body, uint32 len, uint32 *off, Segment *seg)
{
	uint32		l = field_len(body + *off, len - *off, false);

	if (l == 0)
		return false;
	seg->off = *off;
	seg->len = l;
	*off += l;
	return true;
}

/* the segments of a body; false when it does not parse */
static bool
parse_body(const char *body, uint32 len, Segment *seg)
{
	uint32		off = 0;

	for (int col = AA_COL_EVENT; col <= AA_COL_DETAIL; col++)
		if (!next_field(body, len, &off, &seg[col]))
			return false;
	return off == len;
}

/*
 * The segments of a body that may join the unit u, which has entries: each
 * run of shared fields (principal .. delegation_chain, relation .. action,
 * statement .. detail) compared whole with the unit's bytes, and only the
 * fields between the runs parsed.  Identical bytes parse to identical
 * fields, so a run that matches lies where the unit's does, shifted.  False
 * when a run differs or the body does not parse: either way the entry
 * cannot join.  Parsing every field of every entry was a twentieth of the
 * writer's time (bench/README.md).
 */
static bool
parse_like_unit(const AAUnit *u, const char *body, uint32 len, Segment *seg)
{
	const char *ubody = AA_ENTRY_BODY(first_entry(u));
	const Segment *us = u->seg;
	uint32		off = 0;
	int			col = AA_COL_EVENT;

	while (col <= AA_COL_DETAIL)
	{
		if (shared_field[col])
		{
			int			last = col;
			uint32		start = us[col].off;
			uint32		span;

			while (last < AA_COL_DETAIL && shared_field[last + 1])
				last++;
			span = us[last].off + us[last].len - start;
			if (span > len - off || memcmp(body + off, ubody + start, span) != 0)
				return false;
			for (; col <= last; col++)
			{
				seg[col].off = us[col].off - start + off;
				seg[col].len = us[col].len;
			}
			off += span;
		}
		else if (!next_field(body, len, &off, &seg[col++]))
			return false;
	}
	return off == len;
}

static void
start_unit(AAUnit *u, const AAQueueEntry *e, const Segment *seg)
{
	resetStringInfo(&u->entry);
	appendBinaryStringInfo(&u->entry, (const char *) e, e->len);
	memcpy(u->seg, seg, sizeof(u->seg));
	resetStringInfo(&u->purpose);
	resetStringInfo(&u->c_kinds);
	resetStringInfo(&u->c_patients);
	resetStringInfo(&u->c_rows);
	resetStringInfo(&u->c_auths);
	u->backend = e->backend;
	u->n = 0;
	u->nconsents = 0;
}

/*
 * Add the queue entry e to the unit when it can be one of its entries: an
 * access record that permitted (or a denied record that refused) rows of a
 * patient, not transactional, of a statement (not 0) of the unit's backend,
 * with every shared field the same -- the statement's text included, so the
 * records of a prepared statement run again and again share a unit.  A unit that is empty starts with e.  Returns false when
 * e cannot join (the caller stores the unit, then tries again with an
 * empty one, and stores e as a record of its own when that fails too).
 */
bool
aa_unit_add(AAUnit *u, const AAQueueEntry *e)
{
	const char *body = AA_ENTRY_BODY(e);
	Segment		seg[NFIELDS];
	int			ev;
	int			pc;
	MemoryContext old;

	if (u->n >= AA_UNIT_MAX_ENTRIES || !aa_unit_candidate(e))
		return false;
	if (u->n > 0)
	{
		/* the unit's backend, every shared field the same */
		if (e->backend != u->backend ||
			!parse_like_unit(u, body, e->body_len, seg))
			return false;
	}
	else if (!parse_body(body, e->body_len, seg))
		return false;
	if (CANON_IS(body, seg[AA_COL_EVENT], CANON_ACCESS) &&
		CANON_IS(body, seg[AA_COL_OUTCOME], CANON_PERMIT))
		ev = 0;
	else if (CANON_IS(body, seg[AA_COL_EVENT], CANON_DENIED) &&
			 CANON_IS(body, seg[AA_COL_OUTCOME], CANON_DENY))
		ev = 1;
	else
		return false;
	if (body[seg[AA_COL_PATIENT].off] != AA_TAG_TEXT ||
		body[seg[AA_COL_ROW_COUNT].off] != AA_TAG_INT8)
		return false;
	if (body[seg[AA_COL_AUTHORITY].off] == AA_TAG_JSONB && e->authority_len == 0)
		return false;

	if (u->n == 0)
		start_unit(u, e, seg);

	/* the purpose: the unit's, 'BTG' or NULL */
	if (body[seg[AA_COL_PURPOSE].off] == AA_TAG_NULL)
		pc = 2;
	else if (CANON_IS(body, seg[AA_COL_PURPOSE], CANON_BTG))
		pc = 1;
	else if (u->purpose.len == 0)
	{
		appendBinaryStringInfo(&u->purpose, body + seg[AA_COL_PURPOSE].off,
							   seg[AA_COL_PURPOSE].len);
		pc = 0;
	}
	else if (u->purpose.len == seg[AA_COL_PURPOSE].len &&
			 memcmp(u->purpose.data, body + seg[AA_COL_PURPOSE].off, u->purpose.len) == 0)
		pc = 0;
	else
		return false;

	/* the entry, as hashed and as stored */
	old = MemoryContextSwitchTo(u->cxt);
	canon_8bytes(&u->c_kinds, AA_TAG_INT8, (uint64) (ev * 3 + pc));
	appendBinaryStringInfo(&u->c_patients, body + seg[AA_COL_PATIENT].off,
						   seg[AA_COL_PATIENT].len);
	appendBinaryStringInfo(&u->c_rows, body + seg[AA_COL_ROW_COUNT].off,
						   seg[AA_COL_ROW_COUNT].len);
	appendBinaryStringInfo(&u->c_auths, body + seg[AA_COL_AUTHORITY].off,
						   seg[AA_COL_AUTHORITY].len);
	MemoryContextSwitchTo(old);

	u->kinds[u->n] = Int16GetDatum((int16) (ev * 3 + pc));
	u->patients[u->n] = aa_record_text_datum(body + seg[AA_COL_PATIENT].off + 5,
											 seg[AA_COL_PATIENT].len - 5);
	u->rows[u->n] = Int64GetDatum(rd64(body + seg[AA_COL_ROW_COUNT].off + 1));
	/* the authority: a consent's id, its jsonb, or NULL */
	u->auth_nulls[u->n] = true;
	u->auths[u->n] = (Datum) 0;
	u->consent_nulls[u->n] = true;
	if (e->authority_len > 0 &&
		body[seg[AA_COL_AUTHORITY].off] == AA_TAG_JSONB &&
		aa_consent_authority_parse(body + seg[AA_COL_AUTHORITY].off + 5,
								   seg[AA_COL_AUTHORITY].len - 5,
								   &u->consents[u->n]))
	{
		u->consent_nulls[u->n] = false;
		u->nconsents++;
	}
	else if (e->authority_len > 0)
	{
		char	   *copy = palloc(e->authority_len);

		memcpy(copy, body + MAXALIGN(e->body_len), e->authority_len);
		u->auths[u->n] = PointerGetDatum(copy);
		u->auth_nulls[u->n] = false;
	}
	u->statements[u->n] = e->statement;
	u->n++;
	return true;
}

/* the unit's canonical body: its shared fields, event 'entries' */
static void
unit_body(AAUnit *u, StringInfo out)
{
	const char *ubody = AA_ENTRY_BODY(first_entry(u));

	for (int col = AA_COL_EVENT; col <= AA_COL_DETAIL; col++)
	{
		if (col == AA_COL_EVENT)
			appendBinaryStringInfo(out, CANON_ENTRIES, sizeof(CANON_ENTRIES) - 1);
		else if (col == AA_COL_PURPOSE)
		{
			if (u->purpose.len > 0)
				appendBinaryStringInfo(out, u->purpose.data, u->purpose.len);
			else
				canon_null(out);
		}
		else if (shared_field[col])
			appendBinaryStringInfo(out, ubody + u->seg[col].off, u->seg[col].len);
		else
			canon_null(out);
	}
}

static void
append_array(StringInfo out, int n, const StringInfo elems)
{
	canon_array_header(out, n);
	appendBinaryStringInfo(out, elems->data, elems->len);
}

/*
 * The unit's row into values/nulls (indexed by AAAuditColumn) and its
 * row_hash, chained to prev_hash, with seq and logged_at; the unit is then
 * empty.  The values live in the current memory context.
 */
void
aa_unit_finish(AAUnit *u, pg_cryptohash_ctx *ctx, int64 seq,
			   TimestampTz logged_at, const unsigned char *prev_hash,
			   Datum *values, bool *nulls, unsigned char *row_hash)
{
	const AAQueueEntry *first = first_entry(u);
	AAQueueEntry *hdr;
	int			body_start;
	int			body_len;
	unsigned char head[AA_CANON_HEAD_LEN];
	int			dims[1];
	int			lbs[1] = {1};
	MemoryContext old;

	Assert(u->n > 0);

	/* the row as a queue entry of its own, for record.c's decoder */
	old = MemoryContextSwitchTo(u->cxt);
	resetStringInfo(&u->row);
	appendStringInfoSpaces(&u->row, MAXALIGN(sizeof(AAQueueEntry)));
	body_start = u->row.len;
	unit_body(u, &u->row);
	body_len = u->row.len - body_start;
	while (u->row.len % MAXIMUM_ALIGNOF != 0)
		appendStringInfoCharMacro(&u->row, '\0');
	if (first->detail_len > 0)
		appendBinaryStringInfo(&u->row,
							   AA_ENTRY_BODY(first) + MAXALIGN(first->body_len) +
							   MAXALIGN(first->authority_len),
							   first->detail_len);
	hdr = (AAQueueEntry *) u->row.data;
	memset(hdr, 0, sizeof(AAQueueEntry));
	hdr->len = u->row.len;
	hdr->body_len = body_len;
	hdr->detail_len = first->detail_len;

	/* canonical: head (version 2), the body, the four arrays */
	aa_record_canon_head(head, AA_CANON_VERSION_UNIT, seq, logged_at);
	resetStringInfo(&u->canon);
	appendBinaryStringInfo(&u->canon, (const char *) head, AA_CANON_HEAD_LEN);
	appendBinaryStringInfo(&u->canon, u->row.data + body_start, body_len);
	append_array(&u->canon, u->n, &u->c_kinds);
	append_array(&u->canon, u->n, &u->c_patients);
	append_array(&u->canon, u->n, &u->c_rows);
	append_array(&u->canon, u->n, &u->c_auths);
	MemoryContextSwitchTo(old);

	aa_chain_hash(ctx, prev_hash, AA_HASH_LEN, u->canon.data, u->canon.len,
				  NULL, 0, row_hash);

	aa_record_decode((const AAQueueEntry *) u->row.data, values, nulls);
	aa_record_set_chain(values, nulls, seq, logged_at, prev_hash, row_hash);
	dims[0] = u->n;
	values[AA_COL_ENTRY_KINDS] = PointerGetDatum(
		construct_array(u->kinds, u->n, INT2OID, sizeof(int16), true, TYPALIGN_SHORT));
	values[AA_COL_ENTRY_PATIENTS] = PointerGetDatum(
		construct_array(u->patients, u->n, TEXTOID, -1, false, TYPALIGN_INT));
	values[AA_COL_ENTRY_ROW_COUNTS] = PointerGetDatum(
		construct_array(u->rows, u->n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
						TYPALIGN_DOUBLE));
	values[AA_COL_ENTRY_AUTHORITIES] = PointerGetDatum(
		construct_md_array(u->auths, u->auth_nulls, 1, dims, lbs, JSONBOID, -1,
						   false, TYPALIGN_INT));
	for (int col = AA_COL_ENTRY_KINDS; col <= AA_COL_ENTRY_AUTHORITIES; col++)
		nulls[col] = false;
	nulls[AA_COL_ENTRY_CONSENTS] = (u->nconsents == 0);
	values[AA_COL_ENTRY_CONSENTS] = (Datum) 0;
	if (u->nconsents > 0)
	{
		Datum		ids[AA_UNIT_MAX_ENTRIES];

		for (int i = 0; i < u->n; i++)
			ids[i] = PointerGetDatum(&u->consents[i]);
		values[AA_COL_ENTRY_CONSENTS] = PointerGetDatum(
			construct_md_array(ids, u->consent_nulls, 1, dims, lbs, UUIDOID,
							   UUID_LEN, false, TYPALIGN_CHAR));
	}
}

/*
 * Show each entry of the finished unit (values: its row) to the alert
 * rules as the record it is, then empty the unit.
 */
void
aa_unit_observe(AAUnit *u, Datum *values, bool *nulls)
{
	Datum		save_event = values[AA_COL_EVENT];
	Datum		save_seq = values[AA_COL_SEQ];
	int64		seq = DatumGetInt64(save_seq);
	Datum		access = CStringGetTextDatum("access");
	Datum		denied = CStringGetTextDatum("denied");

	for (int i = 0; i < u->n; i++)
	{
		values[AA_COL_EVENT] = DatumGetInt16(u->kinds[i]) / 3 == 0 ? access : denied;
		values[AA_COL_SEQ] = Int64GetDatum(seq + i);
		aa_monitor_observe(values, nulls, u->statements[i]);
	}
	values[AA_COL_EVENT] = save_event;
	values[AA_COL_SEQ] = save_seq;
	u->n = 0;
}
