/*-------------------------------------------------------------------------
 *
 * access.c
 *		The access context of a statement on protected tables: the per-row
 *		check agentauth._row_check(), the table of patients it counts rows
 *		into, and the audit records of the statement.
 *
 *		columns.c admits a statement at ExecutorStart and describes, per
 *		protected relation, the columns it touches per action
 *		(aa_access_add_rel); the context lives in the statement's executor
 *		memory and is found again by the row check (the innermost running
 *		query first, then any live one).  For every row the restrictive
 *		policy of policy.c calls _row_check(relid, patient, cmd), which
 *		decides once per patient and action (consent.c), counts the row as
 *		allowed or withheld, refuses a write that is not permitted and
 *		consumes a clinician's approval where the table requires one.
 *
 *		At the end of every ExecutorRun (a statement, or each FETCH of a
 *		cursor) and at ExecutorEnd the counts become one `access` record per
 *		table x patient x action and one `denied` record per table x
 *		withheld patient x action; then aa_audit_wait().  If the statement
 *		fails, what was counted is emitted when its executor memory goes
 *		away (no wait: the error already reaches the client).  What is
 *		decided before any row is read is admit.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "agentauth.h"

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
	return aa_action_name(AA_ACT_BIT(cmd));
}

/* ------------------------------------------------------------------
 * The access context
 * ------------------------------------------------------------------
 */

/* a patient value of a row: not NUL-terminated */
typedef struct PatientKey
{
	const char *str;
	int			len;
} PatientKey;

/*
 * One patient's rows in one relation within the current executor run: an
 * element of the relation's patient table.  What the row check touches on
 * every row -- hash, key, decision generation, decisions and counts of
 * rows allowed -- fills the first cache line.  Elements move at every
 * insertion: keep no pointer to one across access_patient().
 */
typedef struct PatientAccess
{
	uint32		hash;
	char		status;			/* simplehash's */
	int8		decided[AA_NACTIONS];	/* -1 unknown, 0 deny, 1 permit */
	uint32		dgen;			/* decisions above are valid for this */
	PatientKey	patient;		/* str: a NUL-terminated copy of its own */
	int64		allowed[AA_NACTIONS];
	/* the rest is touched for withheld rows, decisions and records */
	bool		btg[AA_NACTIONS];	/* permitted by break-the-glass */
	int64		withheld[AA_NACTIONS];
	int64		written_new;	/* UPDATE: new rows checked for this patient */
	AADecision *decision[AA_NACTIONS];	/* why permitted, or why denied */
	bool		approval_done[AA_NACTIONS];
	char	   *approval[AA_NACTIONS];	/* approval id consumed */
} pg_attribute_aligned(64) PatientAccess;

#define SH_PREFIX		patients
#define SH_ELEMENT_TYPE	PatientAccess
#define SH_KEY_TYPE		PatientKey
#define SH_KEY			patient
#define SH_HASH_KEY(tb, key) \
	hash_bytes((const unsigned char *) (key).str, (key).len)
#define SH_EQUAL(tb, a, b) \
	((a).len == (b).len && memcmp((a).str, (b).str, (a).len) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_USE_NONDEFAULT_ALLOCATOR
#define SH_SCOPE		static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* the elements' array, aligned to the cache line; zeroed as simplehash needs */
static inline void *
patients_allocate(patients_hash *tb, Size size)
{
	char	   *raw = MemoryContextAllocExtended(tb->ctx, size + 64,
												 MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	char	   *data = (char *) TYPEALIGN(64, raw + sizeof(void *));

	((void **) data)[-1] = raw;
	return data;
}

static inline void
patients_free(patients_hash *tb, void *pointer)
{
	pfree(((void **) pointer)[-1]);
}

/* one protected relation of a statement */
typedef struct RelAccess
{
	Oid			relid;
	char	   *relname;
	int			approve_mask;
	/* columns and classes the statement touches, per action index */
	int			ncols[AA_NACTIONS];
	char	  **cols[AA_NACTIONS];
	int			nclasses[AA_NACTIONS];
	char	  **classes[AA_NACTIONS];

	/*
	 * No class touched (only the patient column or non_phi): the row needs
	 * consent for any one of these, the table's classes in scope.
	 */
	int			nanyof[AA_NACTIONS];
	char	  **anyof[AA_NACTIONS];
	patients_hash *patients;	/* created at the first row */
	int			last_len;		/* the previous row's patient, for a cheap compare */
	char		last_key[32];
	PatientAccess *last;		/* the last patient looked up */
	bool		any_counted;
	AAQueryAccess *query;
} RelAccess;

struct AAQueryAccess
{
	QueryDesc  *qd;
	MemoryContext cxt;			/* the statement's accounting memory */
	List	   *rels;			/* RelAccess * */
	bool		done;			/* final flush happened */
	bool		live;			/* in the registry */
	const char *cascade_rel;	/* a foreign-key cascade writes this
								 * protected table unchecked: refused if it
								 * writes a row */
	const char *cascade_action;
	pg_uuid_t	session_id;		/* the session it was checked for */
	AAQueryAccess *next;
	MemoryContextCallback cb;
};

static AAQueryAccess *live_queries = NULL;	/* newest first */
static List *running = NIL;		/* QueryDesc *, innermost first */

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
	MemoryContext oldcxt = MemoryContextSwitchTo(q->cxt);
	RelAccess  *ra = palloc0(sizeof(RelAccess));

	/* the row check refuses the rows of any other session */
	memcpy(&q->session_id, &aa_session->id, sizeof(pg_uuid_t));
	ra->relid = relid;
	ra->relname = prot->relname;
	ra->approve_mask = prot->approve_mask;
	ra->query = q;
	for (int idx = 0; idx < AA_NACTIONS; idx++)
	{
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

/*
 * The statement's entry for a patient (created on first sight).  The row
 * check calls this for every row: the previous row's patient first, then
 * a probe of the relation's table keyed by the bytes of the value.
 */
static PatientAccess *
access_patient(RelAccess *ra, const char *patient, int len)
{
	PatientAccess *pa = ra->last;
	PatientKey	key;
	uint32		hash;
	bool		found;
	char	   *copy;

	ra->any_counted = true;
	if (pa != NULL && ra->last_len == len &&
		memcmp(ra->last_key, patient, len) == 0)
		return pa;

	if (ra->patients == NULL)
		ra->patients = patients_create(ra->query->cxt, 32, ra);
	key.str = patient;
	key.len = len;
	hash = hash_bytes((const unsigned char *) patient, len);
	pa = patients_lookup_hash(ra->patients, key, hash);
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
						   pg_mbstrlen_with_len(patient, len), AA_MAX_NAME_LEN)));

	/* a new patient: its own copy of the key first, then the entry */
	copy = MemoryContextAlloc(ra->query->cxt, len + 1);
	memcpy(copy, patient, len);
	copy[len] = '\0';
	key.str = copy;
	pa = patients_insert_hash(ra->patients, key, hash, &found);
	Assert(!found);
	/* simplehash set status, hash and key; the slot may hold a moved entry */
	memset(pa->decided, -1, sizeof(pa->decided));
	pa->dgen = 0;
	memset((char *) pa + offsetof(PatientAccess, allowed), 0,
		   sizeof(PatientAccess) - offsetof(PatientAccess, allowed));
found:
	ra->last = pa;
	if (len <= (int) sizeof(ra->last_key))
	{
		memcpy(ra->last_key, patient, len);
		ra->last_len = len;
	}
	else
		ra->last_len = -1;
	return pa;
}

static AAQueryAccess *
find_query(QueryDesc *qd)
{
	for (AAQueryAccess *q = live_queries; q != NULL; q = q->next)
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

		if (ra->relid == relid)
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

	if (running != NIL)
	{
		q = find_query((QueryDesc *) linitial(running));
		if (q && (ra = rel_in_query(q, relid)) != NULL)
			return ra;
	}
	for (q = live_queries; q != NULL; q = q->next)
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
	uint64		dgen;			/* decision generation the session was
								 * last found unchanged at */
} RowCheckState;

/* the action (index) a row check counts in */
static int
cmd_index(AARowCmd cmd)
{
	return cmd == AA_ROW_UPDATE_NEW ? AA_UPDATE : (int) cmd;
}

/* the decision for one patient and action, cached for the run */
static bool
decide(RelAccess *ra, PatientAccess *pa, int idx)
{
	if (pa->decided[idx] < 0)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(ra->query->cxt);
		AADecision *d = palloc(sizeof(AADecision));

		if (ra->nclasses[idx] > 0)
			aa_consent_decide(pa->patient.str, ra->nclasses[idx], ra->classes[idx],
							  false, AA_ACT_BIT(idx), d);
		else
			aa_consent_decide(pa->patient.str, ra->nanyof[idx], ra->anyof[idx],
							  true, AA_ACT_BIT(idx), d);
		MemoryContextSwitchTo(oldcxt);
		pa->decided[idx] = d->permit ? 1 : 0;
		pa->decision[idx] = d;
		pa->btg[idx] = d->btg;
	}
	return pa->decided[idx] == 1;
}

static void
refuse_write(RelAccess *ra, PatientAccess *pa, int idx)
{
	pa->withheld[idx]++;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s rows of patient \"%s\" in table %s",
					aa_action_name(AA_ACT_BIT(idx)), pa->patient.str, ra->relname),
			 errdetail("Decision: %s", aa_decision_text(pa->decision[idx])),
			 errhint("A write needs a consent provision that permits it for this session's purpose, or a break-the-glass override.")));
}

static void
consume_approval(RelAccess *ra, PatientAccess *pa, int idx)
{
	pg_uuid_t	approval;
	MemoryContext oldcxt;

	if (pa->approval_done[idx] || !(ra->approve_mask & AA_ACT_BIT(idx)) ||
		aa_session == NULL || !aa_session->is_agent)
		return;
	aa_approval_consume(ra->relid, pa->patient.str, aa_action_name(AA_ACT_BIT(idx)), &approval);
	oldcxt = MemoryContextSwitchTo(ra->query->cxt);
	pa->approval[idx] = DatumGetCString(DirectFunctionCall1(uuid_out,
															UUIDPGetDatum(&approval)));
	MemoryContextSwitchTo(oldcxt);
	pa->approval_done[idx] = true;
}

/*
 * agentauth._row_check(relid oid, patient text, cmd text) RETURNS boolean
 */
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
		for (c = AA_ROW_READ; c <= AA_ROW_UPDATE_NEW; c++)
			if (strcmp(cmd, aa_row_cmd_name(c)) == 0)
				break;
		if (c > AA_ROW_UPDATE_NEW)
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
	idx = cmd_index(st->cmd);

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

	if (PG_ARGISNULL(1))
	{
		if (st->cmd == AA_ROW_READ)
			return BoolGetDatum(false);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("a row of protected table %s must name its patient", ra->relname)));
	}
	pt = PG_GETARG_TEXT_PP(1);
	pa = access_patient(ra, VARDATA_ANY(pt), VARSIZE_ANY_EXHDR(pt));
	if (pa->dgen != (uint32) dgen)
	{
		for (int i = 0; i < AA_NACTIONS; i++)
			pa->decided[i] = -1;
		pa->dgen = (uint32) dgen;
	}

	switch (st->cmd)
	{
		case AA_ROW_READ:
			if (decide(ra, pa, AA_READ))
			{
				pa->allowed[AA_READ]++;
				return BoolGetDatum(true);
			}
			pa->withheld[AA_READ]++;
			return BoolGetDatum(false);

		case AA_ROW_UPDATE:
		case AA_ROW_DELETE:
			/* a row the session cannot read stays invisible */
			if (!decide(ra, pa, AA_READ))
			{
				pa->withheld[idx]++;
				return BoolGetDatum(false);
			}
			if (!decide(ra, pa, idx))
				refuse_write(ra, pa, idx);
			/* an UPDATE takes its approval at the new row: rows it writes */
			if (st->cmd == AA_ROW_DELETE)
				consume_approval(ra, pa, idx);
			pa->allowed[idx]++;
			return BoolGetDatum(true);

		case AA_ROW_INSERT:
			if (!decide(ra, pa, idx))
				refuse_write(ra, pa, idx);
			consume_approval(ra, pa, idx);
			pa->allowed[idx]++;
			return BoolGetDatum(true);

		case AA_ROW_UPDATE_NEW:
			if (!decide(ra, pa, idx))
				refuse_write(ra, pa, idx);
			consume_approval(ra, pa, idx);
			pa->written_new++;
			return BoolGetDatum(true);
	}
	return BoolGetDatum(false);
}

/* ------------------------------------------------------------------
 * The records of the rows counted
 * ------------------------------------------------------------------
 */

static int
cmp_patient(const void *a, const void *b)
{
	return strcmp((*(PatientAccess *const *) a)->patient.str,
				  (*(PatientAccess *const *) b)->patient.str);
}

/* Emit the counted records of one query; returns whether any were. */
static bool
flush_query(AAQueryAccess *q)
{
	ListCell   *lc;
	bool		emitted = false;

	foreach(lc, q->rels)
	{
		RelAccess  *ra = lfirst(lc);
		PatientAccess *pa;
		PatientAccess **sorted;
		patients_iterator it;
		long		n = 0;

		if (!ra->any_counted || ra->patients == NULL)
			continue;
		ra->any_counted = false;
		/* records in patient order: the same statement, the same log */
		sorted = palloc(sizeof(PatientAccess *) * (ra->patients->members + 1));
		patients_start_iterate(ra->patients, &it);
		while ((pa = patients_iterate(ra->patients, &it)) != NULL)
			sorted[n++] = pa;
		qsort(sorted, n, sizeof(PatientAccess *), cmp_patient);
		for (long k = 0; k < n; k++)
		{
			pa = sorted[k];
			for (int idx = 0; idx < AA_NACTIONS; idx++)
			{
				int64		allowed = pa->allowed[idx];
				AARecord	rec;

				if (idx == AA_UPDATE && pa->written_new > allowed)
					allowed = pa->written_new;
				memset(&rec, 0, sizeof(rec));
				rec.patient = pa->patient.str;
				rec.relation = ra->relname;
				rec.ncolumns = ra->ncols[idx];
				rec.columns = (const char **) ra->cols[idx];
				rec.nclasses = ra->nclasses[idx];
				rec.classes = (const char **) ra->classes[idx];
				rec.action = aa_action_name(AA_ACT_BIT(idx));
				if (allowed > 0)
				{
					rec.event = "access";
					rec.row_count = allowed;
					rec.outcome = "permit";
					rec.authority = pa->decision[idx] ?
						aa_decision_authority(pa->decision[idx], pa->approval[idx]) :
						NULL;
					if (pa->btg[idx])
						rec.purpose = "BTG";
					aa_audit_emit(&rec, false);
					emitted = true;
				}
				if (pa->withheld[idx] > 0)
				{
					rec.event = "denied";
					rec.row_count = pa->withheld[idx];
					rec.outcome = "deny";
					rec.purpose = NULL;
					rec.authority = pa->decision[idx] ?
						pa->decision[idx]->authority : NULL;
					aa_audit_emit(&rec, false);
					emitted = true;
				}
				pa->allowed[idx] = 0;
				pa->withheld[idx] = 0;
			}
			pa->written_new = 0;
		}
		pfree(sorted);
	}
	return emitted;
}

/* ------------------------------------------------------------------
 * The statement's life in the executor
 * ------------------------------------------------------------------
 */

static void
unregister_query(AAQueryAccess *q)
{
	AAQueryAccess **pp;

	if (!q->live)
		return;
	for (pp = &live_queries; *pp != NULL; pp = &(*pp)->next)
		if (*pp == q)
		{
			*pp = q->next;
			break;
		}
	q->live = false;
}

/*
 * The statement's executor memory is going away.  After an error, emit
 * what was counted: a reader's error or rollback does not erase its
 * records.
 */
static void
query_memory_gone(void *arg)
{
	AAQueryAccess *q = (AAQueryAccess *) arg;

	unregister_query(q);
	if (q->done)
		return;
	q->done = true;
	/* non-transactional records reach the queue whatever the abort */
	flush_query(q);
}

/* After ExecutorStart: the context lives and dies with the executor's memory. */
void
aa_access_register(AAQueryAccess *q, QueryDesc *qd)
{
	MemoryContextSetParent(q->cxt, qd->estate->es_query_cxt);
	q->qd = qd;
	q->cb.func = query_memory_gone;
	q->cb.arg = q;
	MemoryContextRegisterResetCallback(q->cxt, &q->cb);
	q->next = live_queries;
	live_queries = q;
	q->live = true;
}

/* ExecutorRun or ExecutorFinish of qd begins / ends (also on error) */
void
aa_access_enter(QueryDesc *qd)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

	running = lcons(qd, running);
	MemoryContextSwitchTo(oldcxt);
}

void
aa_access_leave(void)
{
	running = list_delete_first(running);
}

/* An ExecutorRun of qd ended: a cascade is refused, the counts recorded. */
void
aa_access_run_done(QueryDesc *qd)
{
	AAQueryAccess *q = find_query(qd);

	if (q != NULL && q->cascade_rel != NULL && qd->estate->es_processed > 0)
		aa_refuse_cascade(q->cascade_rel, q->cascade_action,
						  qd->estate->es_processed);
	if (q != NULL && flush_query(q))
		aa_audit_wait();
}

/* ExecutorEnd of qd: the last counts recorded. */
void
aa_access_end(QueryDesc *qd)
{
	AAQueryAccess *q = find_query(qd);

	if (q != NULL)
	{
		bool		emitted = flush_query(q);

		q->done = true;
		unregister_query(q);
		if (emitted)
			aa_audit_wait();
	}
}

/* The transaction ended: nothing of its statements is running any more. */
static void
access_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		list_free(running);
		running = NIL;
	}
}

void
aa_access_init(void)
{
	RegisterXactCallback(access_xact_callback, NULL);
}
