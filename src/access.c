/*-------------------------------------------------------------------------
 *
 * access.c
 *		The access context of a statement on protected tables: the per-row
 *		check agentauth._row_check() and the table of patients it counts
 *		rows into.
 *
 *		columns.c admits a statement at ExecutorStart and describes, per
 *		protected relation, the columns it touches per action
 *		(aa_access_add_rel); the context lives in the statement's executor
 *		memory and is found again by the row check (the innermost running
 *		query first, then any live one).  For every row the restrictive
 *		policy of policy.c calls _row_check(relid, patient, cmd), which
 *		decides once per patient and action (consent.c), counts the row as
 *		allowed or withheld, refuses a write that is not permitted and
 *		consumes a clinician's approval where the table requires one.  A
 *		row that names no patient is withheld (a write of one refused) and
 *		counted apart.
 *
 *		The statement's runs, their records and the checks before a later
 *		run are access_run.c's (it shares the types of access_int.h).  What
 *		is decided before any row is read is admit.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "access_int.h"

PG_FUNCTION_INFO_V1(aa_row_check);

/*
 * The cmd argument of _row_check(): an action's name, or "update_new" for
 * the new row of an UPDATE.
 */
const char *
aa_row_cmd_name(AARowCmd cmd)
{
	if (cmd == AA_ROW_UPDATE_NEW)
		return "update_new";
	if (cmd == AA_ROW_UPDATE_SEEN)
		return "update_seen";
	if (cmd == AA_ROW_DELETE_SEEN)
		return "delete_seen";
	if (cmd == AA_ROW_READ_NEW)
		return "read_new";
	return aa_action_name(AA_ACT_BIT(cmd));
}

/* ------------------------------------------------------------------
 * The access context
 * ------------------------------------------------------------------
 */

AAQueryAccess *aa_live_queries = NULL;	/* newest first */
List	   *aa_running = NIL;		/* QueryDesc *, innermost first */

/*
 * A context for the statement's accounting, a child of the current memory
 * context until aa_access_register() moves it under the executor's.
 */
AAQueryAccess *
aa_access_begin(void)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "agentauth statement access",
											  ALLOCSET_SMALL_SIZES);
	AAQueryAccess *q = MemoryContextAllocZero(cxt, sizeof(AAQueryAccess));

	q->cxt = cxt;
	return q;
}

MemoryContext
aa_access_memory(AAQueryAccess *q)
{
	return q->cxt;
}

/*
 * The statement touches this protected relation under row security, in the
 * columns marked in att[idx][1..natts] per action index.  prot is kept: it
 * must live in the statement's memory.  Called in a session.
 */
void
aa_access_add_rel(AAQueryAccess *q, Oid relid, AAProtectedRel *prot,
				  bool *const *att)
{
	MemoryContext oldcxt;
	RelAccess  *ra;

	/* no trigger of another role reads it (other_code.c) */
	aa_other_code_read(prot->relname);
	oldcxt = MemoryContextSwitchTo(q->cxt);
	ra = palloc0(sizeof(RelAccess));

	/* the row check refuses the rows of any other session */
	memcpy(&q->session_id, &aa_session->id, sizeof(pg_uuid_t));
	q->in_session = true;
	ra->relid = relid;
	ra->relname = prot->relname;
	ra->approve_mask = prot->approve_mask;
	ra->query = q;
	for (int idx = 0; idx < AA_NACTIONS; idx++)
	{
		ra->question[idx] = AA_QUESTION_UNKNOWN;
		ra->cols[idx] = palloc0(sizeof(char *) * (prot->natts + 1));
		ra->classes[idx] = palloc0(sizeof(char *) * (prot->natts + 1));
		ra->anyof[idx] = palloc0(sizeof(char *) * (prot->nclasses + 1));
		for (int i = 1; i <= prot->natts; i++)
		{
			const char *cls = prot->att_class[i];
			bool		seen = false;

			if (!att[idx][i])
				continue;
			ra->cols[idx][ra->ncols[idx]++] = prot->att_name[i];
			if (i == prot->patient_attno || cls == NULL ||
				strcmp(cls, AA_NON_PHI) == 0)
				continue;
			for (int j = 0; j < ra->nclasses[idx]; j++)
				if (strcmp(ra->classes[idx][j], cls) == 0)
					seen = true;
			if (!seen)
				ra->classes[idx][ra->nclasses[idx]++] = (char *) cls;
		}
		for (int j = 0; j < prot->nclasses; j++)
			if (aa_session_scope_allows(prot->classes[j], idx != AA_READ))
				ra->anyof[idx][ra->nanyof[idx]++] = prot->classes[j];
	}
	q->rels = lappend(q->rels, ra);
	MemoryContextSwitchTo(oldcxt);
}

/* A foreign-key cascade would write this protected table unchecked. */
void
aa_access_add_cascade(AAQueryAccess *q, const char *relname, const char *action)
{
	q->cascade_rel = relname;
	q->cascade_action = action;
}

/* q, or NULL (and q is freed) when the statement has nothing to account */
AAQueryAccess *
aa_access_built(AAQueryAccess *q)
{
	if (q->rels == NIL && q->cascade_rel == NULL)
	{
		MemoryContextDelete(q->cxt);
		return NULL;
	}
	return q;
}

/* three cache lines an element; what the row check touches, the first */
StaticAssertDecl(sizeof(PatientAccess) == 192,
				 "PatientAccess grew past three cache lines");
/* what the row check touches of an element is in its first cache line */
StaticAssertDecl(offsetof(PatientAccess, allowed) + sizeof(int64) * (AA_READ + 1) <= 64,
				 "the row check's fields of PatientAccess span two cache lines");

/* the size of a block of the patients' key copies */
#define AA_PATIENT_KEY_BLOCK	8192

/*
 * The statement's entry for a patient (created on first sight).  The row
 * check calls this for every row: the previous row's patient first, then
 * a probe of the relation's index of patients (patient_key.h).
 */
PatientAccess *
aa_access_patient(RelAccess *ra, const char *patient, int len)
{
	PatientAccess *pa = ra->last;
	PatientTable *t;
	PatientKey	key;
	uint32		hash;
	uint32		pos = 0;	/* where the probe stopped */
	char	   *copy;

	ra->any_counted = true;
	aa_patient_key(&key, patient, len);
	if (pa != NULL && aa_patient_key_equal(&key, &ra->last_key))
		return pa;

	if (ra->patients == NULL)
		ra->patients = aa_pindex_create(ra->query->cxt, sizeof(PatientAccess),
										offsetof(PatientAccess, patient),
										"too many patients in one statement");
	t = ra->patients;
	hash = aa_patient_key_hash(&key);
	pa = aa_pindex_find(t, &key, hash, &pos);
	if (pa != NULL)
		goto found;

	/*
	 * A patient id is at most AA_MAX_NAME_LEN characters, as everywhere
	 * else (tokens, consent).  A longer one would go into the audit log's
	 * patient index, which cannot hold it: the writer could then never
	 * commit its batch, and every PHI statement of every session would
	 * fail closed.  Refuse the row instead (the value is not echoed).
	 */
	if (len > AA_MAX_NAME_LEN &&
		pg_mbstrlen_with_len(patient, len) > AA_MAX_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("patient id of a row of protected table %s is too long",
						ra->relname),
				 errdetail("It has %d characters; the limit is %d.",
						   pg_mbstrlen_with_len(patient, len), AA_MAX_NAME_LEN),
				 aa_errdetail_patient(NULL, NULL)));	/* the statement holds it */

	/*
	 * A new patient: its own copy of the key first, then the element, then
	 * its slot (the free one the probe stopped at, unless the index grew).
	 * The copies are packed side by side in blocks of their own: a probe
	 * compares a value longer than AA_KEY_INLINE with one.
	 */
	if (len + 1 > ra->keys_left)
	{
		int			size = Max(len + 1, AA_PATIENT_KEY_BLOCK);

		ra->keys = MemoryContextAlloc(ra->query->cxt, size);
		ra->keys_left = size;
	}
	copy = ra->keys;
	ra->keys += len + 1;
	ra->keys_left -= len + 1;
	memcpy(copy, patient, len);
	copy[len] = '\0';
	pa = aa_pindex_add(t, hash, pos);
	pa->patient = key;
	pa->patient.str = copy;
	memset(pa->decided, -1, sizeof(pa->decided));
found:
	ra->last = pa;
	/* the element's key: its str is the stable copy, not the row's value */
	ra->last_key = pa->patient;
	return pa;
}

AAQueryAccess *
aa_access_find(QueryDesc *qd)
{
	for (AAQueryAccess *q = aa_live_queries; q != NULL; q = q->next)
		if (q->qd == qd)
			return q;
	return NULL;
}

static RelAccess *
rel_in_query(AAQueryAccess *q, Oid relid)
{
	ListCell   *lc;

	foreach(lc, q->rels)
	{
		RelAccess  *ra = lfirst(lc);

		if (ra->relid == relid && !ra->inherited)
			return ra;
	}
	return NULL;
}

/*
 * The access context of the running statement for this relation (the
 * innermost running query first, then any live one, newest first).
 */
static RelAccess *
access_for(Oid relid)
{
	AAQueryAccess *q;
	RelAccess  *ra;

	if (aa_running != NIL)
	{
		q = aa_access_find((QueryDesc *) linitial(aa_running));
		if (q && (ra = rel_in_query(q, relid)) != NULL)
			return ra;
	}
	for (q = aa_live_queries; q != NULL; q = q->next)
		if ((ra = rel_in_query(q, relid)) != NULL)
			return ra;
	return NULL;
}

/* ------------------------------------------------------------------
 * The per-row check
 * ------------------------------------------------------------------
 */

typedef struct RowCheckState
{
	RelAccess  *ra;
	AARowCmd	cmd;
	int			idx;			/* the action it counts in: cmd_index(cmd) */
	uint64		dgen;			/* decision generation the session was
								 * last found unchanged at */
} RowCheckState;

/* the action (index) a row check counts in */
static int
cmd_index(AARowCmd cmd)
{
	if (cmd == AA_ROW_UPDATE_NEW || cmd == AA_ROW_UPDATE_SEEN)
		return AA_UPDATE;
	if (cmd == AA_ROW_DELETE_SEEN)
		return AA_DELETE;
	if (cmd == AA_ROW_READ_NEW)
		return AA_READ;
	return (int) cmd;
}

/*
 * The decision for one patient and action, cached for the run; kept by
 * consent.c across statements where it can be (the same question of the
 * same patient in the next statement costs one lookup, not a decision and
 * its authority built again).
 */
bool
aa_access_decide(RelAccess *ra, PatientAccess *pa, int idx)
{
	if (pa->decided[idx] < 0)
	{
		const AADecision *d;
		void	   *pin = NULL;
		bool		anyof = ra->nclasses[idx] == 0;
		int			n = anyof ? ra->nanyof[idx] : ra->nclasses[idx];
		char	  **classes = anyof ? ra->anyof[idx] : ra->classes[idx];

		if (ra->question[idx] == AA_QUESTION_UNKNOWN)
			ra->question[idx] = aa_consent_question(n, classes, anyof, AA_ACT_BIT(idx));
		/* kept only for a registered statement: it unpins when it ends */
		d = ra->query->live ?
			aa_consent_decide_kept(pa->patient.str, ra->question[idx], &pin) :
			NULL;
		if (d != NULL && (ra->query->pins == NIL || linitial(ra->query->pins) != pin))
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(ra->query->cxt);

			ra->query->pins = lcons(pin, ra->query->pins);
			MemoryContextSwitchTo(oldcxt);
			aa_consent_pin(pin);
		}
		if (d == NULL)
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(ra->query->cxt);
			AADecision *own = palloc(sizeof(AADecision));

			aa_consent_decide(pa->patient.str, n, classes, anyof, AA_ACT_BIT(idx), own);
			MemoryContextSwitchTo(oldcxt);
			d = own;
		}
		pa->decided[idx] = d->permit ? 1 : 0;
		pa->decision[idx] = d;
		pa->btg[idx] = d->btg;
	}
	return pa->decided[idx] == 1;
}

static void
refuse_write(RelAccess *ra, PatientAccess *pa, int idx)
{
	const char *decision = psprintf("Decision: %s", aa_decision_text(pa->decision[idx]));

	pa->withheld[idx]++;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s rows of a patient in table %s",
					aa_action_name(AA_ACT_BIT(idx)), ra->relname),
			 aa_errdetail_patient(psprintf("Patient \"%s\".  %s", pa->patient.str, decision),
								  decision),
			 errhint("A write needs a consent provision that permits it for this session's purpose, or a break-the-glass override.")));
}

static void
consume_approval(RelAccess *ra, PatientAccess *pa, int idx)
{
	pg_uuid_t	approval;
	AARecord	denied;
	MemoryContext oldcxt;

	if (pa->approval_done[idx] || !(ra->approve_mask & AA_ACT_BIT(idx)) ||
		aa_session == NULL || !aa_session->is_agent)
		return;
	memset(&denied, 0, sizeof(denied));
	denied.event = "denied";
	denied.outcome = "deny";
	denied.patient = pa->patient.str;
	denied.relation = ra->relname;
	denied.action = aa_action_name(AA_ACT_BIT(idx));
	denied.row_count = 1;
	denied.ncolumns = ra->ncols[idx];
	denied.columns = (const char **) ra->cols[idx];
	denied.classes = aa_access_record_classes(ra, idx, &denied.nclasses);
	denied.detail = "{\"reason\": \"no clinician's approval\"}";
	aa_approval_consume(ra->relid, pa->patient.str, denied.action, &approval, &denied);
	oldcxt = MemoryContextSwitchTo(ra->query->cxt);
	pa->approval[idx] = DatumGetCString(DirectFunctionCall1(uuid_out,
															UUIDPGetDatum(&approval)));
	MemoryContextSwitchTo(oldcxt);
	pa->approval_done[idx] = true;
}

/*
 * agentauth._row_check(relid oid, patient text, cmd text) RETURNS boolean
 */
/* an id that is empty or only spaces: one byte looked at for any other */
static inline bool
names_no_patient(const text *pt)
{
	const char *p = VARDATA_ANY(pt);
	int			len = VARSIZE_ANY_EXHDR(pt);

	for (int i = 0; i < len; i++)
		if (p[i] != ' ')
			return false;
	return true;
}

Datum
aa_row_check(PG_FUNCTION_ARGS)
{
	RowCheckState *st = (RowCheckState *) fcinfo->flinfo->fn_extra;
	RelAccess  *ra;
	PatientAccess *pa;
	uint64		dgen;
	int			idx;
	text	   *pt;

	if (st == NULL)
	{
		Oid			relid;
		char	   *cmd;
		AARowCmd	c;

		if (IsParallelWorker())
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("protected rows cannot be checked in a parallel worker")));
		if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("relation and command must not be null")));
		relid = PG_GETARG_OID(0);
		cmd = text_to_cstring(PG_GETARG_TEXT_PP(2));
		for (c = AA_ROW_READ; c <= AA_ROW_LAST; c++)
			if (strcmp(cmd, aa_row_cmd_name(c)) == 0)
				break;
		if (c > AA_ROW_LAST)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown row check command \"%s\"", cmd)));
		ra = access_for(relid);
		if (ra == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("agentauth._row_check() may only be called by the row security of a protected table")));
		st = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(RowCheckState));
		st->ra = ra;
		st->cmd = c;
		st->idx = cmd_index(c);
		st->dgen = PG_UINT64_MAX;
		fcinfo->flinfo->fn_extra = st;
	}
	ra = st->ra;

	/* the token, principal and session are still good: one atomic read */
	if (aa_session == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no agentauth session"),
				 errdetail("The session ended while the statement on table %s was running.",
						   ra->relname)));
	aa_session_check();
	dgen = aa_decision_gen();
	idx = st->idx;

	/*
	 * The statement's columns were checked against the scopes of the
	 * session it started in.  A begin_session() inside the statement (in a
	 * target list, or on the outer side of a join) must not let another
	 * token's patients or purpose see them.  A session change moves the
	 * decision generation, so this costs nothing per row.
	 */
	if (dgen != st->dgen)
	{
		if (memcmp(&aa_session->id, &ra->query->session_id, sizeof(pg_uuid_t)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("the agentauth session changed during a statement on table %s",
							ra->relname),
					 errhint("Begin or end a session in a statement of its own.")));
		st->dgen = dgen;
	}

	/*
	 * A row that names no patient -- NULL, or an id that is empty or only
	 * spaces, which no consent can name (record_consent refuses it; 1.1: a
	 * default that permits reads reached it) -- no consent can permit.
	 * Counted like a withheld patient's rows (a `denied` record, patient
	 * NULL): invisible to a read and to the old row of an UPDATE or DELETE,
	 * an error for a new row (INSERT, the new row of an UPDATE, ON
	 * CONFLICT).
	 */
	pt = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	if (pt == NULL || names_no_patient(pt))
	{
		ra->nopatient[idx]++;
		ra->any_counted = true;
		if (st->cmd != AA_ROW_INSERT && st->cmd != AA_ROW_UPDATE_NEW)
			return BoolGetDatum(false);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("a row of protected table %s must name its patient", ra->relname),
				 errdetail("No consent can permit the %s of a row without a patient.",
						   aa_action_name(AA_ACT_BIT(idx)))));
	}
	pa = aa_access_patient(ra, VARDATA_ANY(pt), VARSIZE_ANY_EXHDR(pt));
	if (pa->dgen != (uint32) dgen)
	{
		for (int i = 0; i < AA_NACTIONS; i++)
			pa->decided[i] = -1;
		pa->dgen = (uint32) dgen;
	}

	switch (st->cmd)
	{
		case AA_ROW_READ:
			if (aa_access_decide(ra, pa, AA_READ))
			{
				pa->allowed[AA_READ]++;
				return BoolGetDatum(true);
			}
			pa->withheld[AA_READ]++;
			return BoolGetDatum(false);

		case AA_ROW_UPDATE:
		case AA_ROW_DELETE:
			/* a row the session cannot read stays invisible */
			if (!aa_access_decide(ra, pa, AA_READ))
			{
				pa->withheld[idx]++;
				return BoolGetDatum(false);
			}
			if (!aa_access_decide(ra, pa, idx))
				refuse_write(ra, pa, idx);

			/*
			 * The old row is written too: an UPDATE that moves a row to
			 * another patient needs the approval of both (1.1: only the new
			 * row's patient's was taken, and an approval for P002 let an
			 * agent move P001's row to P002).  One use a statement and
			 * patient, so the new row of the same patient takes none.
			 */
			consume_approval(ra, pa, idx);
			pa->allowed[idx]++;
			return BoolGetDatum(true);

		case AA_ROW_INSERT:
			if (!aa_access_decide(ra, pa, idx))
				refuse_write(ra, pa, idx);
			consume_approval(ra, pa, idx);
			pa->allowed[idx]++;
			return BoolGetDatum(true);

		case AA_ROW_UPDATE_NEW:
			if (!aa_access_decide(ra, pa, idx))
				refuse_write(ra, pa, idx);
			consume_approval(ra, pa, idx);
			pa->written_new++;
			return BoolGetDatum(true);

		case AA_ROW_READ_NEW:

			/*
			 * PostgreSQL's SELECT policies as an UPDATE's WITH CHECK: the
			 * new row must be readable.  Its old row was counted as read
			 * (1.1, found by review: counted twice, row_count 4 for 2).
			 */
			if (aa_access_decide(ra, pa, AA_READ))
				return BoolGetDatum(true);
			pa->withheld[AA_READ]++;
			return BoolGetDatum(false);

		case AA_ROW_UPDATE_SEEN:
		case AA_ROW_DELETE_SEEN:

			/*
			 * Before the statement's conditions that could fail (policy.c):
			 * a row the session cannot read is invisible to them; whether
			 * it may be written is asked at the end, of the rows they keep.
			 */
			if (!aa_access_decide(ra, pa, AA_READ))
			{
				pa->withheld[idx]++;
				return BoolGetDatum(false);
			}
			return BoolGetDatum(true);
	}
	return BoolGetDatum(false);
}

/* a record of the statement's action idx on the relation: what they share */
void
aa_access_record_init(AARecord *rec, const RelAccess *ra, int idx, uint64 statement)
{
	memset(rec, 0, sizeof(*rec));
	rec->relation = ra->relname;
	rec->statement = statement;
	rec->ncolumns = ra->ncols[idx];
	rec->columns = (const char **) ra->cols[idx];
	rec->classes = aa_access_record_classes(ra, idx, &rec->nclasses);
	rec->action = aa_action_name(AA_ACT_BIT(idx));
}

/*
 * The statement ran, and no row of a protected table reached its row
 * check: it leaves one record all the same -- access, no patient, no rows,
 * its first protected table and the columns it named.  Whether a statement
 * leaves a record must not depend on what its conditions matched among the
 * rows withheld from it: those an index answers run before the row check,
 * a withheld row that matched them is recorded as denied, and the writer's
 * work shows to anyone who can connect (the transaction counter, the
 * xmin of a row one writes).  1.1, found by review: an agent learned, one
 * exact bit a statement, whether a patient without consent had a given
 * lab code.  Called (access_run.c) once the statement ran and is done, when
 * it is untouched; returns whether it emitted.
 */
bool
aa_access_flush_untouched(AAQueryAccess *q, uint64 statement)
{
	ListCell   *lc;
	RelAccess  *ra = NULL;
	AARecord	rec;
	int			idx = AA_READ;

	q->touched = true;
	foreach(lc, q->rels)
	{
		ra = lfirst(lc);
		if (!ra->inherited)
			break;
		ra = NULL;
	}
	if (ra == NULL)
		return false;
	/* its read, or else the first action that names columns */
	if (ra->ncols[AA_READ] == 0)
		for (int i = 0; i < AA_NACTIONS; i++)
			if (ra->ncols[i] > 0)
			{
				idx = i;
				break;
			}
	aa_access_record_init(&rec, ra, idx, statement);
	rec.event = "access";
	rec.outcome = "permit";
	rec.row_count = 0;
	aa_audit_emit(&rec, false);
	return true;
}
