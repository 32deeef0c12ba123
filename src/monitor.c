/*-------------------------------------------------------------------------
 *
 * monitor.c
 *		Real-time monitoring (SPEC 15): alert rules evaluated by the audit
 *		writer as it commits records, always-on alerts, and the suspension
 *		of inactive agents (docs/DESIGN.md, "Monitoring").
 *
 *		Nothing here runs on the path of a statement that touches PHI.  The
 *		writer calls aa_monitor_observe() for every record of a batch (a
 *		compare of the event name against the few that matter; for those a
 *		sliding window in the writer's memory per rule and principal, or
 *		role) and aa_monitor_after_commit() once per round of its loop,
 *		after the batch has committed: principals' last_session_at
 *		(last_session.c), then one transaction that reloads changed rules,
 *		looks for inactive agents once per agentauth.head_log_interval and
 *		raises what observe found through agentauth._raise_alert()
 *		(suspend, record, audit, NOTIFY).  What backends signal arrives
 *		through shared memory (monitor_signal.c) and is raised the same way.
 *
 *		A rule counts statements (each queue entry names its statement; a
 *		window remembers the last MON_RECENT it counted), or records with
 *		per_patient.  Windows and rules live in the writer's memory: a
 *		restart of the writer or a change of the rules starts every count
 *		again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "agentauth.h"

void
aa_monitor_init(void)
{
	/* what backends tell the writer (monitor_signal.c) */
	aa_shmem_register(aa_monitor_shmem_size, aa_monitor_shmem_startup);
}

/* ------------------------------------------------------------------
 * The writer: rules, windows, pending alerts
 * ------------------------------------------------------------------
 */

#define MON_EVENT_LEN	64
#define MON_RETRY_MS	10000	/* how long a locked principal is retried */
#define MON_MAX_PENDING	10000	/* beyond this, always-on alerts coalesce by event */
#define MON_RECENT		8		/* statements a window remembers it counted */

typedef struct MonRule
{
	int			id;
	char		event[MON_EVENT_LEN];
	int			threshold;
	int64		per_us;
	Interval	per;
	bool		suspend;
	bool		per_patient;	/* count records, not statements */
} MonRule;

/* an event the writer looks at, and the rules that count it */
typedef struct MonInterest
{
	char		event[MON_EVENT_LEN];
	int			len;
	bool		always_on;
	int			nrules;
	int		   *rules;			/* indexes into rules[] */
} MonInterest;

typedef struct WinKey
{
	int			rule;			/* rule id */
	bool		by_role;
	char		who[NAMEDATALEN];	/* uuid bytes, or the role name */
} WinKey;

typedef struct WinEntry
{
	WinKey		key;
	int			start;
	int			n;
	int			threshold;
	int64		per_us;
	TimestampTz last;
	TimestampTz quiet_until;	/* raised at quiet_until - per: not again before */
	TimestampTz *ring;			/* threshold slots */
	int			next_recent;	/* the slot of recent[] to overwrite next */
	uint64		recent[MON_RECENT]; /* statements counted (0: free slot) */
} WinEntry;

typedef struct PendingAlert
{
	int			rule;			/* 0: always-on */
	char		event[MON_EVENT_LEN];
	bool		has_principal;
	pg_uuid_t	principal;
	char	   *role;
	int64		count;
	bool		has_per;
	Interval	per;
	bool		suspend;
	int64		seq;			/* the record that raised it; 0: none */
	int64		first_seq;		/* coalesced always-on alerts */
	char	   *detail;			/* jsonb text or NULL */
	int			attempts;
	TimestampTz first_try;		/* of a suspension that found the row locked */
} PendingAlert;

static const char *const always_on_events[] = {
	"break_glass_start", "unregistered_access", "privileged_access"
};

static MemoryContext mon_cxt = NULL;
static MemoryContext rules_cxt = NULL;
static MemoryContext win_cxt = NULL;	/* the windows and their rings */
static MonRule *rules = NULL;
static int	nrules = 0;
static MonInterest *interests = NULL;
static int	ninterests = 0;
static uint64 loaded_gen = 0;
static SPIPlanPtr raise_plan = NULL;	/* agentauth._raise_alert(...) */
static HTAB *windows = NULL;
static List *pending = NIL;
static List *afresh = NIL;		/* reactivated principals, for their role's windows */
static TimestampTz next_periodic = 0;
static TimestampTz retry_after = 0;
static int	failures = 0;

static void
build_interests(void)
{
	int			n = lengthof(always_on_events);
	MonInterest *in = MemoryContextAllocZero(rules_cxt,
											 sizeof(MonInterest) * (n + nrules));
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		strlcpy(in[k].event, always_on_events[i], MON_EVENT_LEN);
		in[k].len = strlen(in[k].event);
		in[k].always_on = true;
		k++;
	}
	for (int r = 0; r < nrules; r++)
	{
		int			j;

		for (j = 0; j < k; j++)
			if (strcmp(in[j].event, rules[r].event) == 0)
				break;
		if (j == k)
		{
			strlcpy(in[k].event, rules[r].event, MON_EVENT_LEN);
			in[k].len = strlen(in[k].event);
			k++;
		}
		if (in[j].rules == NULL)
			in[j].rules = MemoryContextAlloc(rules_cxt, sizeof(int) * nrules);
		in[j].rules[in[j].nrules++] = r;
	}
	interests = in;
	ninterests = k;
}

static void
reset_windows(void)
{
	HASHCTL		ctl;

	MemoryContextReset(win_cxt);
	windows = NULL;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(WinKey);
	ctl.entrysize = sizeof(WinEntry);
	ctl.hcxt = win_cxt;
	windows = hash_create("agentauth alert windows", 64, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

static void
ensure_state(void)
{
	MemoryContext cxt;

	if (mon_cxt != NULL)
		return;
	/* noted as made (mon_cxt) only once all of it is */
	cxt = AllocSetContextCreate(TopMemoryContext, "agentauth monitor",
								ALLOCSET_DEFAULT_SIZES);
	rules_cxt = AllocSetContextCreate(cxt, "agentauth alert rules",
									  ALLOCSET_SMALL_SIZES);
	win_cxt = AllocSetContextCreate(cxt, "agentauth alert windows",
									ALLOCSET_DEFAULT_SIZES);
	reset_windows();
	build_interests();
	mon_cxt = cxt;
}

static void
free_pending(PendingAlert *a)
{
	if (a->role)
		pfree(a->role);
	if (a->detail)
		pfree(a->detail);
	pfree(a);
}

static PendingAlert *
new_pending(int rule, const char *event, const pg_uuid_t *principal,
			const char *role, int len_role, int64 count, bool suspend, int64 seq)
{
	PendingAlert *a = MemoryContextAllocZero(mon_cxt, sizeof(PendingAlert));
	MemoryContext old;

	a->rule = rule;
	strlcpy(a->event, event, MON_EVENT_LEN);
	if (principal)
	{
		a->has_principal = true;
		memcpy(&a->principal, principal, sizeof(pg_uuid_t));
	}
	if (role)
	{
		if (len_role < 0)
			len_role = strlen(role);
		a->role = MemoryContextAlloc(mon_cxt, len_role + 1);
		memcpy(a->role, role, len_role);
		a->role[len_role] = '\0';
	}
	a->count = count;
	a->suspend = suspend;
	a->seq = seq;
	a->first_seq = seq;
	old = MemoryContextSwitchTo(mon_cxt);
	pending = lappend(pending, a);
	MemoryContextSwitchTo(old);
	return a;
}

/*
 * A suspend rule's windows of a principal count afresh, without the quiet
 * window: once it is reactivated, or when its suspension failed (1.1,
 * found by review: it probed on, unsuspended, for the rest of the window).
 */
static void
principal_afresh(const pg_uuid_t *principal, const char *role)
{
	WinKey		key;
	WinEntry   *w;

	for (int i = 0; i < nrules * 2; i++)
	{
		memset(&key, 0, sizeof(key));
		if (!rules[i / 2].suspend || (i % 2 ? role == NULL : principal == NULL))
			continue;
		key.rule = rules[i / 2].id;
		key.by_role = i % 2;	/* its login role's window too (session_denied) */
		if (key.by_role)
			strlcpy(key.who, role, NAMEDATALEN);
		else
			memcpy(key.who, principal->data, UUID_LEN);
		if ((w = hash_search(windows, &key, HASH_FIND, NULL)) != NULL)
			w->n = w->quiet_until = 0;
	}
}

/* text datum -> pointer and length (no copy) */
static inline void
text_of(Datum d, const char **p, int *len)
{
	text	   *t = (text *) DatumGetPointer(d);

	*p = VARDATA_ANY(t);
	*len = VARSIZE_ANY_EXHDR(t);
}

static void
observe_always_on(const MonInterest *in, const pg_uuid_t *principal,
				  const char *role, int rolelen, int64 seq)
{
	ListCell   *lc;

	/* one alert per event and principal (or role) and batch, counting */
	foreach(lc, pending)
	{
		PendingAlert *a = (PendingAlert *) lfirst(lc);

		if (a->rule != 0 || a->attempts > 0 || strcmp(a->event, in->event) != 0)
			continue;
		if (list_length(pending) < MON_MAX_PENDING)
		{
			if (a->has_principal != (principal != NULL))
				continue;
			if (principal && memcmp(&a->principal, principal, sizeof(pg_uuid_t)) != 0)
				continue;
			if ((a->role == NULL) != (role == NULL))
				continue;
			if (role && ((int) strlen(a->role) != rolelen ||
						 memcmp(a->role, role, rolelen) != 0))
				continue;
		}
		a->count++;
		a->seq = seq;
		return;
	}
	(void) new_pending(0, in->event, principal, role, rolelen, 1, false, seq);
}

static void
observe_rule(const MonRule *r, const pg_uuid_t *principal, const char *role,
			 int rolelen, TimestampTz at, int64 seq, uint64 statement)
{
	WinKey		key;
	WinEntry   *w;
	bool		found;
	TimestampTz cutoff;

	memset(&key, 0, sizeof(key));
	key.rule = r->id;
	/* per principal; per role without one, and always for session_denied */
	if (principal != NULL && strcmp(r->event, "session_denied") != 0)
		memcpy(key.who, principal->data, UUID_LEN);
	else if (role != NULL)
	{
		key.by_role = true;
		memcpy(key.who, role, Min(rolelen, NAMEDATALEN - 1));
		principal = NULL;
	}
	else
		return;

	w = hash_search(windows, &key, HASH_ENTER, &found);
	if (!found || w->ring == NULL)	/* NULL: its allocation failed */
	{
		w->ring = NULL;
		w->start = 0;
		w->n = 0;
		w->quiet_until = 0;
		w->threshold = r->threshold;
		w->per_us = r->per_us;
		w->ring = MemoryContextAlloc(win_cxt, sizeof(TimestampTz) * r->threshold);
		w->next_recent = 0;
		memset(w->recent, 0, sizeof(w->recent));
	}
	w->last = at;

	/* a statement counts once, however many records (patients) it has */
	if (!r->per_patient && statement != 0)
	{
		for (int i = 0; i < MON_RECENT; i++)
			if (w->recent[i] == statement)
				return;
		w->recent[w->next_recent] = statement;
		w->next_recent = (w->next_recent + 1) % MON_RECENT;
	}

	if (w->n < w->threshold)
		w->ring[(w->start + w->n++) % w->threshold] = at;
	else
	{
		w->ring[w->start] = at;
		w->start = (w->start + 1) % w->threshold;
	}
	cutoff = at - r->per_us;
	while (w->n > 0 && w->ring[w->start] <= cutoff)
	{
		w->start = (w->start + 1) % w->threshold;
		w->n--;
	}
	/*
	 * One alert a window: while the threshold stays crossed, the next one
	 * comes a window after this one (1.1 raised one for every threshold
	 * more -- 80 a second for an agent withholding patients at that rate,
	 * each a transaction of the writer and a NOTIFY to the console).
	 */
	if (w->n >= w->threshold && at >= w->quiet_until)
	{
		PendingAlert *a = new_pending(r->id, r->event, principal, role, rolelen,
									  w->n, r->suspend, seq);

		a->has_per = true;
		a->per = r->per;
		w->quiet_until = at + r->per_us;
	}
}

/*
 * The writer calls this for every record of a batch, with the row it
 * inserts into agentauth.audit_log (values/nulls indexed by AAAuditColumn,
 * seq and logged_at set) and the record's statement (0: a statement of its
 * own).  No catalog access, no error in the steady state.
 */
void
aa_monitor_observe(const Datum *values, const bool *nulls, uint64 statement)
{
	const char *ev;
	int			evlen;
	const MonInterest *in = NULL;
	const pg_uuid_t *principal = NULL;
	const char *role = NULL;
	int			rolelen = 0;
	int64		seq;
	TimestampTz at;

	if (nulls[AA_COL_EVENT])
		return;
	ensure_state();
	text_of(values[AA_COL_EVENT], &ev, &evlen);
	if (evlen == 13 && memcmp(ev, "session_begin", 13) == 0 && !nulls[AA_COL_PRINCIPAL])
		aa_last_session_note(DatumGetUUIDP(values[AA_COL_PRINCIPAL]));	/* last_session.c */
	if (evlen == 16 && memcmp(ev, "principal_status", 16) == 0 && !nulls[AA_COL_PRINCIPAL] &&
		!nulls[AA_COL_DETAIL] && aa_jsonb_says(values[AA_COL_DETAIL], "to", "active") &&
		!aa_jsonb_says(values[AA_COL_DETAIL], "from", "active"))
	{
		MemoryContext old = MemoryContextSwitchTo(mon_cxt);

		principal_afresh(DatumGetUUIDP(values[AA_COL_PRINCIPAL]), NULL);
		afresh = lappend(afresh, aa_uuid_copy(DatumGetUUIDP(values[AA_COL_PRINCIPAL])));
		MemoryContextSwitchTo(old);
	}
	for (int i = 0; i < ninterests; i++)
	{
		if (interests[i].len == evlen && memcmp(interests[i].event, ev, evlen) == 0)
		{
			in = &interests[i];
			break;
		}
	}
	if (in == NULL)
		return;

	seq = DatumGetInt64(values[AA_COL_SEQ]);
	at = DatumGetTimestampTz(values[AA_COL_LOGGED_AT]);
	if (!nulls[AA_COL_PRINCIPAL])
		principal = DatumGetUUIDP(values[AA_COL_PRINCIPAL]);
	if (!nulls[AA_COL_DB_ROLE])
		text_of(values[AA_COL_DB_ROLE], &role, &rolelen);

	if (in->always_on)
		observe_always_on(in, principal, role, rolelen, seq);
	for (int i = 0; i < in->nrules; i++)
		observe_rule(&rules[in->rules[i]], principal, role, rolelen, at, seq,
					 statement);
}

/* ---- The writer: its own transaction after the batch ---- */

static void
load_rules(void)
{
	MemoryContext old;
	int			ret;

	/* per_patient through to_jsonb: a 1.0 table without it counts statements */
	ret = SPI_execute("SELECT id, event, threshold, per, "
					  "(pg_catalog.date_part('epoch', per) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8, "
					  "action OPERATOR(pg_catalog.=) 'suspend', "
					  "COALESCE((pg_catalog.to_jsonb(r) OPERATOR(pg_catalog.->>) 'per_patient')::pg_catalog.bool, false) "
					  "FROM agentauth.alert_rule r WHERE enabled ORDER BY id",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read agentauth.alert_rule: %d", ret);

	/*
	 * No rule is watched until the rules are read whole: an error part way
	 * leaves no interest pointing at freed or half-filled memory, and the
	 * next round reads them again (loaded_gen is not yet set).  The
	 * always-on events stay watched meanwhile.
	 */
	MemoryContextReset(rules_cxt);
	rules = NULL;
	interests = NULL;
	ninterests = 0;
	nrules = 0;
	build_interests();
	old = MemoryContextSwitchTo(rules_cxt);
	if (SPI_processed > 0)
		rules = palloc0(sizeof(MonRule) * SPI_processed);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MonRule    *r = &rules[nrules];
		char	   *ev;

		r->id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		ev = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		strlcpy(r->event, ev, MON_EVENT_LEN);
		r->threshold = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		memcpy(&r->per, DatumGetIntervalP(SPI_getbinval(tup, desc, 4, &isnull)),
			   sizeof(Interval));
		r->per_us = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		r->suspend = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
		r->per_patient = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
		/* the table's checks make these impossible; do not trust them */
		if (r->threshold <= 0 || r->threshold > 10000 || r->per_us <= 0)
			continue;
		nrules++;
	}
	MemoryContextSwitchTo(old);
	reset_windows();
	build_interests();
}

static void
prune_windows(TimestampTz now)
{
	HASH_SEQ_STATUS st;
	WinEntry   *w;

	if (windows == NULL)
		return;					/* made again with the rules */
	hash_seq_init(&st, windows);
	while ((w = hash_seq_search(&st)) != NULL)
	{
		if (w->last <= now - w->per_us)
		{
			pfree(w->ring);
			hash_search(windows, &w->key, HASH_REMOVE, NULL);
		}
	}
}

/* agents without a session for longer than agentauth.inactive_after */
static void
find_inactive(void)
{
	uint64		n = aa_inactive_agents();	/* last_session.c; in SPI_tuptable */

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		pg_uuid_t  *id = DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *detail = SPI_getvalue(tup, desc, 3);
		PendingAlert *a;

		ListCell   *lc;

		foreach(lc, pending)	/* one a principal */
			if (strcmp(((PendingAlert *) lfirst(lc))->event, "inactive") == 0 &&
				memcmp(&((PendingAlert *) lfirst(lc))->principal, id, sizeof(pg_uuid_t)) == 0)
				break;
		if (lc != NULL)
			continue;
		a = new_pending(0, "inactive", id, SPI_getvalue(tup, desc, 2), -1, 1, true, 0);
		a->has_per = true;
		a->per = (Interval) {.time = (int64) aa_inactive_after * USECS_PER_SEC};
		if (detail)
			a->detail = MemoryContextStrdup(mon_cxt, detail);
	}
}

/* an always-on alert a backend signalled: count times, detail built */
static void
pending_signal(const char *event, Oid roleid, uint64 count, StringInfo detail)
{
	PendingAlert *a = new_pending(0, event, NULL, GetUserNameFromId(roleid, true),
								  -1, (int64) count, false, 0);

	a->detail = MemoryContextStrdup(mon_cxt, detail->data);
	pfree(detail->data);
}

/* the always-on alerts that backends signalled (monitor_signal.c) */
static void
collect_signals(void)
{
	AAMonitorSignals sig;

	/*
	 * Taken over now: if raising them fails, they stay pending here (and
	 * are logged if they are finally dropped).
	 */
	aa_monitor_take_signals(&sig);

	if (sig.fail_closed > 0)
	{
		StringInfoData d;

		initStringInfo(&d);
		appendStringInfo(&d, "{\"statements_refused\": " UINT64_FORMAT ", \"last_at\": ",
						 sig.fail_closed);
		escape_json(&d, timestamptz_to_str(sig.fail_closed_at));
		appendStringInfoString(&d, ", \"could_not_be\": ");
		escape_json(&d, sig.fail_closed_what);
		appendStringInfoChar(&d, '}');
		pending_signal("audit_fail_closed", sig.fail_closed_role,
					   sig.fail_closed, &d);
	}
	if (sig.chain_failed > 0)
	{
		StringInfoData d;

		initStringInfo(&d);
		appendStringInfo(&d, "{\"first_bad_seq\": " INT64_FORMAT ", \"problem\": ",
						 sig.chain_first_bad);
		escape_json(&d, sig.chain_problem);
		appendStringInfoString(&d, ", \"last_at\": ");
		escape_json(&d, timestamptz_to_str(sig.chain_failed_at));
		appendStringInfoChar(&d, '}');
		pending_signal("chain_verification_failed", sig.chain_failed_role,
					   sig.chain_failed, &d);
	}
}

/* raise one pending alert; false: try again next round */
static bool
raise_one(PendingAlert *a)
{
	Oid			argtypes[10] = {INT4OID, TEXTOID, UUIDOID, TEXTOID, INT8OID,
	INTERVALOID, TEXTOID, INT8OID, TEXTOID, BOOLOID};
	Datum		args[10];
	char		nulls[10];
	char	   *detail = a->detail;
	int			ret;
	bool		isnull;
	Datum		id;

	memset(nulls, ' ', sizeof(nulls));
	args[0] = Int32GetDatum(a->rule);
	nulls[0] = a->rule == 0 ? 'n' : ' ';
	args[1] = CStringGetTextDatum(a->event);
	args[2] = UUIDPGetDatum(&a->principal);
	nulls[2] = a->has_principal ? ' ' : 'n';
	args[3] = a->role ? CStringGetTextDatum(a->role) : (Datum) 0;
	nulls[3] = a->role ? ' ' : 'n';
	args[4] = Int64GetDatum(a->count);
	args[5] = IntervalPGetDatum(&a->per);
	nulls[5] = a->has_per ? ' ' : 'n';
	args[6] = CStringGetTextDatum(a->suspend ? "suspend" : "notify");
	args[7] = Int64GetDatum(a->seq);
	nulls[7] = a->seq > 0 ? ' ' : 'n';
	if (detail == NULL && a->rule == 0 && a->count > 1 && a->first_seq > 0)
		detail = psprintf("{\"first_audit_seq\": " INT64_FORMAT "}", a->first_seq);
	args[8] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	nulls[8] = detail ? ' ' : 'n';
	args[9] = BoolGetDatum(a->attempts > 0 &&
						   GetCurrentTimestamp() >= TimestampTzPlusMilliseconds(a->first_try, MON_RETRY_MS));

	/* prepared once: parsing and planning cost more than the call */
	ret = SPI_execute_plan(aa_spi_keep_plan(&raise_plan,
											"SELECT agentauth._raise_alert($1, $2, $3, $4, $5, $6, $7, $8, "
											"$9::pg_catalog.jsonb, $10)",
											10, argtypes),
						   args, nulls, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not raise an alert: %d", ret);
	id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull && a->suspend && a->has_principal && a->rule != 0)
	{
		Oid			t[1] = {INT8OID};

		if (SPI_execute_with_args("SELECT FROM agentauth.alert_log WHERE id OPERATOR(pg_catalog.=) $1 "
								  "AND action_taken OPERATOR(pg_catalog.~~) '%suspension failed%'",
								  1, t, &id, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
			principal_afresh(&a->principal, a->role);
	}
	if (isnull)
	{
		if (a->attempts++ == 0)
			a->first_try = GetCurrentTimestamp();
		return false;
	}
	return true;
}

static void
monitor_round(TimestampTz now, uint64 gen)
{
	bool		periodic = now >= next_periodic;
	bool		durable = false;
	List	   *volatile keep = NIL;
	List	   *volatile done = NIL;
	ListCell   *lc;
	MemoryContext old;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (!OidIsValid(get_extension_oid("agentauth", true)))
	{
		/* nothing to raise alerts into; start afresh when it is created */
		foreach(lc, pending)
			free_pending((PendingAlert *) lfirst(lc));
		list_free(pending);
		pending = NIL;
		loaded_gen = 0;
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		return;
	}

	if (gen != loaded_gen)
	{
		load_rules();
		loaded_gen = gen;
	}
	foreach(lc, afresh)
		principal_afresh(NULL, aa_principal_role((pg_uuid_t *) lfirst(lc)));
	list_free_deep(afresh);
	afresh = NIL;
	if (periodic)
	{
		prune_windows(now);
		find_inactive();
	}
	collect_signals();

	/* (pending changes only once the round has committed: 1.1, found by review) */
	foreach(lc, pending)
	{
		PendingAlert *a = (PendingAlert *) lfirst(lc);
		bool		raised;

		if (a->rule == 0 || a->suspend)
			durable = true;
		raised = raise_one(a);
		old = MemoryContextSwitchTo(mon_cxt);
		if (raised)
			done = lappend(done, a);
		else
			keep = lappend(keep, a);
		MemoryContextSwitchTo(old);
	}

	SPI_finish();
	PopActiveSnapshot();

	/*
	 * A round that raised only rules' notifications commits without waiting
	 * for its WAL flush: the writer's next batch commit flushes it (within
	 * AA_GATHER_MS under load), and the records the alerts are about are
	 * durable already.  Under a steady stream of denials this halves the
	 * writer's disk flushes.  A suspension, an always-on alert (failing
	 * closed, a chain that failed verification, an override, an inactive
	 * agent) and every other round wait for their flush as before.
	 */
	if (!durable)
		synchronous_commit = SYNCHRONOUS_COMMIT_OFF;
	PG_TRY();
	{
		CommitTransactionCommand();
	}
	PG_FINALLY();
	{
		synchronous_commit = SYNCHRONOUS_COMMIT_ON;
	}
	PG_END_TRY();

	/* committed: what was raised is done, the rest stays pending */
	foreach(lc, done)
		free_pending((PendingAlert *) lfirst(lc));
	list_free(done);
	list_free(pending);
	pending = keep;
	if (keep != NIL)
		SetLatch(MyLatch);		/* a principal's row was locked: soon, after a batch */
	if (periodic)
		next_periodic = TimestampTzPlusMilliseconds(now, aa_head_log_interval * 1000L);
	failures = 0;
}

/*
 * The writer calls this once per round of its loop, after the batch (if
 * any) has committed and outside any transaction.  Cheap when there is
 * nothing to do: a few atomic reads and a clock reading.
 */
void
aa_monitor_after_commit(void)
{
	TimestampTz now;
	uint64		gen;
	MemoryContext oldcxt = CurrentMemoryContext;

	if (!aa_monitor_signals_ready())
		return;
	ensure_state();
	aa_last_session_store();	/* its own transaction; before the inactive are looked for */

	now = GetCurrentTimestamp();
	gen = aa_monitor_rules_gen();
	if (pending == NIL && afresh == NIL && gen == loaded_gen &&
		!aa_monitor_signals_pending() && now < next_periodic)
		return;
	if (now < retry_after)
		return;

	PG_TRY();
	{
		monitor_round(now, gen);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(mon_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(oldcxt);
		ereport(WARNING,
				(errmsg("agentauth audit writer could not raise alerts: %s", edata->message),
				 errdetail("It tries again at its next round.")));
		FreeErrorData(edata);
		retry_after = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
		if (++failures >= 3)
		{
			ListCell   *lc;

			/* do not lose them silently */
			foreach(lc, pending)
			{
				PendingAlert *a = (PendingAlert *) lfirst(lc);

				ereport(WARNING,
						(errmsg("agentauth alert dropped: event %s, rule %d, role %s, count " INT64_FORMAT,
								a->event, a->rule, a->role ? a->role : "(none)", a->count)));
				free_pending(a);
			}
			list_free(pending);
			pending = NIL;
			next_periodic = TimestampTzPlusMilliseconds(now, aa_head_log_interval * 1000L);
			failures = 0;
		}
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
}
