/*-------------------------------------------------------------------------
 *
 * consent.c
 *		Consent and default decisions (SPEC 7), cached per backend.  The SQL
 *		entry points (explain_access, the triggers that publish changes)
 *		are in consent_sql.c.
 *
 *		Decision for (patient, class, action) in the current session, first
 *		match wins:
 *		  0. the token's patient list, when it has one, must hold the patient;
 *		  1. an active break-the-glass of this session for the patient: permit;
 *		  2. an active, in-period deny provision that matches: deny;
 *		  3. an active, in-period permit provision that matches: permit;
 *		  4. reads only: a default for (purpose, class), else for (purpose,
 *		     '*') unless the class is sensitive; never for MLTRAINING;
 *		  5. deny.
 *
 *		The cache holds, for the current session, the provisions that can
 *		match it (purpose, grantee) per patient, and the defaults of its
 *		purpose.  Patients are loaded one query each while few are asked
 *		for; past LAZY_LIMIT the whole relevant set is loaded in one query,
 *		so a full scan costs one query, not one per patient.
 *
 *		The cache is dropped when the generation counter moves, the session
 *		changes, or the clock passes the earliest period boundary of a
 *		loaded provision or break-the-glass (valid_until).  A change of
 *		consent provisions moves the consent counter instead and names its
 *		patients (shmem.c): only their entries are marked stale and
 *		reloaded at their next use, one small query each, so a consent
 *		manager working at the desk does not make every backend reload the
 *		whole set.  Both queries are prepared once per backend.  Loads read
 *		with the latest snapshot, so a REPEATABLE READ transaction still
 *		sees a withdrawal.  aa_decision_gen() turns all of that into one
 *		number that the per-row check compares.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "agentauth.h"
#include "patient_key.h"

#define LAZY_LIMIT	64

#define UUID_TEXT_LEN 37

typedef struct Provision
{
	char		id[UUID_TEXT_LEN];	/* text form */
	bool		deny;
	int			nclasses;		/* -1: any class */
	char	  **classes;
	int			actions;		/* AA_ACT_* */
	TimestampTz lower;			/* DT_NOBEGIN when unbounded */
	bool		lower_inc;
	TimestampTz upper;			/* DT_NOEND when unbounded */
	bool		upper_inc;
} Provision;

/*
 * A patient's entry: its key (the id's words inline), its provisions and
 * consent_kept.c's decisions, in one cache line.
 */
typedef struct PatientConsent
{
	PatientKey	key;			/* key.str: the NUL-terminated id */
	List	   *provisions;		/* Provision * */
	void	   *kept;			/* consent_kept.c's, for this entry */
	bool		stale;			/* a change was published: reload at next use */
} pg_attribute_aligned(64) PatientConsent;
StaticAssertDecl(sizeof(PatientConsent) == 64, "PatientConsent grew past a cache line");

typedef struct DefaultRule
{
	char	   *data_class;
	bool		permit;
} DefaultRule;

static MemoryContext consent_cxt = NULL;
static AAPatientIndex *patients = NULL;	/* the cache's patients */
static bool all_loaded = false;
static int	lazy_loads = 0;
static List *defaults = NIL;	/* DefaultRule * for the session's purpose */
static bool defaults_loaded = false;
static TimestampTz valid_until = DT_NOEND;



/* stale patients reloaded since the last reset (their old entries leak) */
static int	stale_reloads = 0;
#define STALE_RELOAD_LIMIT 4096

/* the two provision queries, prepared once per backend */
static SPIPlanPtr patient_plan = NULL;
static SPIPlanPtr all_plan = NULL;

/* what the cache was built for */
static uint64 built_gen = 0;
static uint64 built_consent_gen = 0;
static AASession *built_session = NULL;
static pg_uuid_t built_session_id;
static uint64 decision_gen = 1;
static bool cache_valid = false;
static uint64 cache_epoch = 0;	/* resets of the cache */

/* ------------------------------------------------------------------
 * The patients
 * ------------------------------------------------------------------
 */
static AAPatientIndex *
patient_index_create(void)
{
	return aa_pindex_create(consent_cxt, sizeof(PatientConsent),
							offsetof(PatientConsent, key),
							"too many patients in the consent cache");
}

/* the patient's entry or NULL; its key, hash and the slot a probe stopped at */
static PatientConsent *
patient_find(const char *patient, PatientKey *key, uint32 *hash, uint32 *slot)
{
	aa_patient_key(key, patient, strlen(patient));
	*hash = aa_patient_key_hash(key);
	return aa_pindex_find(patients, key, *hash, slot);
}

static PatientConsent *
patient_lookup(const char *patient)
{
	PatientKey	key;
	uint32		hash;
	uint32		slot;

	return patient_find(patient, &key, &hash, &slot);
}

/*
 * The patient's entry, made (no provisions, not stale) when it has none.
 * copy: patient is the caller's, so the entry takes a copy of it.
 */
static PatientConsent *
patient_enter(const char *patient, bool copy, bool *found)
{
	PatientKey	key;
	uint32		hash;
	uint32		slot = 0;		/* where the probe stopped */
	PatientConsent *pc;

	pc = patient_find(patient, &key, &hash, &slot);
	*found = (pc != NULL);
	if (pc != NULL)
		return pc;
	/* the copy first: an entry is never left keyed by the caller's string */
	if (copy)
		key.str = MemoryContextStrdup(consent_cxt, patient);
	pc = aa_pindex_add(patients, hash, slot);
	pc->key = key;
	return pc;
}

/* ------------------------------------------------------------------
 * Validity
 * ------------------------------------------------------------------
 */
AADecisionGenState aa_dgen_state;

static void
note_boundary(TimestampTz t, TimestampTz now)
{
	if (t != DT_NOBEGIN && t != DT_NOEND && t > now && t < valid_until)
	{
		valid_until = t;
		aa_dgen_state.quick = false;	/* the clock must be read */
	}
}

static bool
session_changed(void)
{
	if (aa_session != built_session)
		return true;
	if (aa_session != NULL &&
		memcmp(&aa_session->id, &built_session_id, sizeof(pg_uuid_t)) != 0)
		return true;
	return false;
}

static void
reset_cache(void)
{
	TimestampTz now = GetCurrentTimestamp();

	/* invalid until whole: an error below leaves it to be reset again */
	cache_valid = false;
	aa_dgen_state.quick = false;
	if (consent_cxt == NULL)
		consent_cxt = AllocSetContextCreate(TopMemoryContext,
											"agentauth consent",
											ALLOCSET_DEFAULT_SIZES);
	/* the counters first, then the tables (see shmem.c) */
	built_gen = aa_generation();
	built_consent_gen = aa_consent_generation();
	built_session = aa_session;
	if (aa_session)
		built_session_id = aa_session->id;
	MemoryContextReset(consent_cxt);
	cache_epoch++;				/* every entry, and what hangs off it, gone */
	patients = patient_index_create();
	all_loaded = false;
	lazy_loads = 0;
	stale_reloads = 0;
	defaults = NIL;
	defaults_loaded = false;
	valid_until = DT_NOEND;
	aa_btg_refresh();			/* the session's overrides, loaded lazily */
	if (aa_session != NULL)
		for (int i = 0; i < aa_session->nbreak_glass; i++)
			note_boundary(aa_session->break_glass[i].ends_at, now);
	cache_valid = true;
}

/*
 * A number that changes whenever a cached decision may have changed: the
 * generation counter moved, the session changed, or a period boundary
 * passed.  The per-row check compares it with what it decided at.
 */
uint64
aa_decision_gen_recheck(void)
{
	uint64		cgen;

	if (!cache_valid ||
		aa_generation() != built_gen ||
		session_changed() ||
		stale_reloads >= STALE_RELOAD_LIMIT ||
		(valid_until != DT_NOEND && GetCurrentTimestamp() >= valid_until))
	{
		/* first: a reset cut short still ends every decision made before */
		decision_gen++;
		reset_cache();
	}
	else if ((cgen = aa_consent_generation()) != built_consent_gen)
	{
		/* some patients' provisions changed: forget just those */
		List	   *changed;
		ListCell   *lc;

		decision_gen++;
		if (!aa_consent_changes(built_consent_gen, cgen, &changed))
			reset_cache();
		else
		{
			/*
			 * Invalid while the changed patients are marked: an error part
			 * way (out of memory) would leave the rest deciding on their old
			 * provisions.  The next test then resets the whole cache.
			 */
			cache_valid = false;
			aa_dgen_state.quick = false;
			built_consent_gen = cgen;
			foreach(lc, changed)
			{
				char	   *pat = lfirst(lc);
				PatientConsent *pc = patient_lookup(pat);

				if (pc != NULL)
				{
					pc->stale = true;
					pc->kept = NULL;
				}
				else if (all_loaded)
				{
					/* absent means "none" once all are loaded: add it, stale */
					bool		found;

					pc = patient_enter(pat, true, &found);
					pc->stale = true;
				}
			}
			list_free_deep(changed);
			cache_valid = true;
		}
	}

	/* what aa_decision_gen() tests inline until something else can matter */
	aa_dgen_state.quick = cache_valid && valid_until == DT_NOEND &&
		stale_reloads < STALE_RELOAD_LIMIT;
	aa_dgen_state.gen = built_gen;
	aa_dgen_state.consent_gen = built_consent_gen;
	aa_dgen_state.session = built_session;
	aa_dgen_state.session_id = built_session_id;
	aa_dgen_state.value = decision_gen;
	return decision_gen;
}

/* ------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------
 */

/*
 * A load that fails part way (out of memory, a read error) leaves some
 * entries with some of their provisions: a permit whose deny was not yet
 * read.  The cache is invalid from the start of each load to its end, and
 * the inline test is off, so the next decision after an error -- in this
 * transaction, after a caught error, or in the next -- finds it invalid
 * and rebuilds the whole cache before it decides.
 */
static void
loading_begins(void)
{
	Assert(cache_valid);
	cache_valid = false;
	aa_dgen_state.quick = false;
}

/*
 * Run the provision query, for one patient (patient != NULL) or for every
 * patient; store the rows in the cache.
 */
#define PROVISION_QUERY \
	"SELECT c.patient, c.id::pg_catalog.text, c.decision OPERATOR(pg_catalog.=) 'deny', " \
	"       c.data_classes, c.actions, " \
	"       pg_catalog.lower(c.valid), pg_catalog.lower_inc(c.valid), " \
	"       pg_catalog.upper(c.valid), pg_catalog.upper_inc(c.valid) " \
	"  FROM agentauth.consent c " \
	" WHERE c.withdrawn_at IS NULL " \
	"   AND (pg_catalog.upper(c.valid) IS NULL " \
	"        OR pg_catalog.upper(c.valid) OPERATOR(pg_catalog.>=) pg_catalog.clock_timestamp()) " \
	"   AND (c.purposes IS NULL OR $1 OPERATOR(pg_catalog.=) ANY (c.purposes)) " \
	"   AND (c.grantee_agent IS NULL OR c.grantee_agent OPERATOR(pg_catalog.=) $2 " \
	"        OR (c.decision OPERATOR(pg_catalog.=) 'deny' AND c.grantee_agent OPERATOR(pg_catalog.=) ANY " \
	"            (SELECT t.agent FROM agentauth.token t WHERE t.id OPERATOR(pg_catalog.=) ANY ($5)))) " \
	"   AND (c.grantee_owner IS NULL OR " AA_NAME_FOLD("c.grantee_owner") " " \
	"            OPERATOR(pg_catalog.=) ANY (SELECT " AA_NAME_FOLD("o") " " \
	"                                          FROM pg_catalog.unnest($3) o) " \
	"        OR (c.decision OPERATOR(pg_catalog.=) 'deny' AND " AA_NAME_FOLD("c.grantee_owner") " " \
	"            OPERATOR(pg_catalog.=) ANY (SELECT " AA_NAME_FOLD("p.owner") " " \
	"               FROM agentauth.token t JOIN agentauth.principal p " \
	"               ON p.id OPERATOR(pg_catalog.=) t.agent WHERE t.id OPERATOR(pg_catalog.=) ANY ($5)))) " \
	"   AND (c.grantee_owner IS NULL OR c.decision OPERATOR(pg_catalog.=) 'deny' " \
	"        OR NOT EXISTS (SELECT FROM agentauth.principal n " \
	"         WHERE " AA_NAME_FOLD("n.name") " OPERATOR(pg_catalog.=) " \
	"               " AA_NAME_FOLD("c.grantee_owner") " " \
	"           AND n.status OPERATOR(pg_catalog.<>) 'active')) " \
	"   AND ($4 IS NULL OR c.patient OPERATOR(pg_catalog.=) ANY ($4)) "

static void
load_provisions(const char *patient)
{
	AASpiState	st;
	Oid			argtypes[6] = {TEXTOID, UUIDOID, TEXTARRAYOID, TEXTARRAYOID, UUIDARRAYOID, TEXTOID};
	bool		isnull;
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	char	   *owners[3];
	int			nowners = 0;
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext oldcxt;
	SPIPlanPtr	plan;
	int			ret;

	Assert(aa_session != NULL);
	values[0] = CStringGetTextDatum(aa_session->purpose ? aa_session->purpose : "");
	values[1] = UUIDPGetDatum(&aa_session->principal);
	if (aa_session->owner)
		owners[nowners++] = aa_session->owner;
	if (aa_session->on_behalf_of)
		owners[nowners++] = aa_session->on_behalf_of;
	if (!aa_session->is_agent && aa_session->name)
		owners[nowners++] = aa_session->name;
	values[2] = aa_cstrings_to_text_array(owners, nowners);
	if (aa_session->npatients >= 0)
		values[3] = aa_cstrings_to_text_array(aa_session->patients, aa_session->npatients);
	else
		nulls[3] = 'n';
	/*
	 * A deny that names an agent (or owner) the session's token was
	 * delegated from binds it too (1.1): through its delegate, an agent
	 * would read what the patient refused it.  Permits bind only whom
	 * they name; one that names as grantee_owner a principal that is not
	 * active opens nothing, whether the name is the session's clinician
	 * (on_behalf_of) or its agent's owner (1.1, found by review: the
	 * owner's path stayed open after the clinician's suspension).  Names
	 * fold as everywhere else (1.1, found by review: a deny of 'Dr Jones'
	 * did not bind a token on behalf of 'DR JONES').
	 */
	values[4] = aa_session_chain_array(&isnull);
	nulls[4] = isnull ? 'n' : ' ';
	if (patient)
		values[5] = CStringGetTextDatum(patient);
	else
		nulls[5] = 'n';

	loading_begins();
	aa_spi_begin(&st, true);
	/* prepared once: parsing and planning cost more than the query */
	if (patient)
		plan = aa_spi_keep_plan(&patient_plan, PROVISION_QUERY
								"   AND c.patient OPERATOR(pg_catalog.=) $6",
								6, argtypes);
	else
		plan = aa_spi_keep_plan(&all_plan, PROVISION_QUERY, 5, argtypes);
	ret = SPI_execute_plan(plan, values, nulls, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read agentauth.consent");

	oldcxt = MemoryContextSwitchTo(consent_cxt);
	if (patient)
	{
		/* an entry even when there is no provision: a negative entry */
		bool		found;
		PatientConsent *pc = patient_enter(patient, true, &found);

		if (found && pc->stale && ++stale_reloads >= STALE_RELOAD_LIMIT)
			aa_dgen_state.quick = false;	/* reset at the next test */
		/* a stale entry is loaded afresh (its old provisions are left) */
		pc->provisions = NIL;
		pc->stale = false;
		pc->kept = NULL;
	}
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Provision  *p = palloc0(sizeof(Provision));
		char	   *pat;
		char	   *id;
		Datum		d;
		PatientConsent *pc;
		bool		found;

		/* binary reads: no output function per column */
		pat = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		id = text_to_cstring(DatumGetTextPP(SPI_getbinval(tup, desc, 2, &isnull)));
		strlcpy(p->id, id, sizeof(p->id));
		pfree(id);
		p->deny = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		if (isnull)
			p->nclasses = -1;
		else
			p->classes = aa_text_array_to_cstrings(d, &p->nclasses);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		if (!isnull)
		{
			int			n;
			char	  **actions = aa_text_array_to_cstrings(d, &n);

			for (int j = 0; j < n; j++)
				p->actions |= aa_action_from_name(actions[j], -1);
		}
		d = SPI_getbinval(tup, desc, 6, &isnull);
		p->lower = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 7, &isnull);
		p->lower_inc = !isnull && DatumGetBool(d);
		d = SPI_getbinval(tup, desc, 8, &isnull);
		p->upper = isnull ? DT_NOEND : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 9, &isnull);
		p->upper_inc = !isnull && DatumGetBool(d);
		note_boundary(p->lower, now);
		note_boundary(p->upper, now);
		/*
		 * An inclusive upper bound, and an exclusive lower one, change one
		 * microsecond later (a load at exactly an exclusive lower bound
		 * would otherwise note no boundary and keep its refusal).
		 */
		if (p->upper_inc && p->upper != DT_NOEND)
			note_boundary(p->upper + 1, now);
		if (!p->lower_inc && p->lower != DT_NOBEGIN)
			note_boundary(p->lower + 1, now);

		/* pat is in consent_cxt already: the entry keeps it */
		pc = patient_enter(pat, false, &found);
		pc->provisions = lappend(pc->provisions, p);
	}
	MemoryContextSwitchTo(oldcxt);
	aa_spi_end(&st);
	cache_valid = true;			/* loaded whole */
}

static void
load_defaults(void)
{
	AASpiState	st;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	MemoryContext oldcxt;

	values[0] = CStringGetTextDatum(aa_session->purpose ? aa_session->purpose : "");
	loading_begins();
	aa_spi_begin(&st, true);
	if (SPI_execute_with_args("SELECT data_class, decision OPERATOR(pg_catalog.=) 'permit' "
							  "  FROM agentauth.default_decision "
							  " WHERE purpose OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read agentauth.default_decision");
	oldcxt = MemoryContextSwitchTo(consent_cxt);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		DefaultRule *r = palloc(sizeof(DefaultRule));
		bool		isnull;

		r->data_class = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		r->permit = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
											   SPI_tuptable->tupdesc, 2, &isnull));
		defaults = lappend(defaults, r);
	}
	defaults_loaded = true;
	MemoryContextSwitchTo(oldcxt);
	aa_spi_end(&st);
	cache_valid = true;			/* loaded whole */
}

/* the patient's cache entry, loaded when absent or stale; NULL: none */
static PatientConsent *
patient_entry(const char *patient)
{
	PatientConsent *pc;

	pc = patient_lookup(patient);
	if (pc != NULL && !pc->stale)
		return pc;
	if (pc != NULL)
		load_provisions(patient);	/* its consent changed: this one only */
	else if (all_loaded)
		return NULL;
	else if (lazy_loads >= LAZY_LIMIT)
	{
		/*
		 * A fresh index: the lazily loaded entries would be doubled.  The
		 * old one stays in consent_cxt until the next reset (a few kB),
		 * as the kept decisions pinned by running statements point into
		 * its entries.
		 */
		patients = patient_index_create();
		load_provisions(NULL);
		all_loaded = true;
	}
	else
	{
		lazy_loads++;
		load_provisions(patient);
	}
	return patient_lookup(patient);
}

static List *
provisions_for(const char *patient)
{
	PatientConsent *pc = patient_entry(patient);

	return pc ? pc->provisions : NIL;
}

/* ------------------------------------------------------------------
 * Deciding
 * ------------------------------------------------------------------
 */

static bool
in_period(const Provision *p, TimestampTz now)
{
	if (p->lower != DT_NOBEGIN)
	{
		if (now < p->lower || (now == p->lower && !p->lower_inc))
			return false;
	}
	if (p->upper != DT_NOEND)
	{
		if (now > p->upper || (now == p->upper && !p->upper_inc))
			return false;
	}
	return true;
}

static bool
provision_matches(const Provision *p, const char *data_class, int action,
				  TimestampTz now)
{
	/*
	 * A permit covers every action asked about; a deny any of them: "write"
	 * (explain_access) asks about three at once, and a deny of one refuses
	 * it (1.1; the row checks ask about one action at a time)
	 */
	if (p->deny ? (p->actions & action) == 0 : (p->actions & action) != action)
		return false;
	if (p->nclasses >= 0)
	{
		bool		found = false;

		for (int i = 0; i < p->nclasses; i++)
			if (strcmp(p->classes[i], data_class) == 0)
			{
				found = true;
				break;
			}
		if (!found)
			return false;
	}
	return in_period(p, now);
}

typedef struct ClassDecision
{
	bool		permit;
	const char *kind;			/* "consent", "default", "none", "break_glass" */
	List	   *ids;			/* consent ids (char *) */
	const char *rule;			/* default rule: class of the row, or "*" */
} ClassDecision;

static void
decide_class(List *provs, const char *data_class, int action,
			 TimestampTz now, ClassDecision *cd)
{
	ListCell   *lc;
	bool		sensitive = false;

	memset(cd, 0, sizeof(*cd));
	foreach(lc, provs)
	{
		Provision  *p = lfirst(lc);

		if (p->deny && provision_matches(p, data_class, action, now))
		{
			cd->permit = false;
			cd->kind = "consent";
			cd->ids = list_make1(p->id);
			return;
		}
	}
	foreach(lc, provs)
	{
		Provision  *p = lfirst(lc);

		if (!p->deny && provision_matches(p, data_class, action, now))
			cd->ids = lappend(cd->ids, p->id);
	}
	if (cd->ids != NIL)
	{
		cd->permit = true;
		cd->kind = "consent";
		return;
	}
	cd->kind = "none";
	if (action != AA_ACT_READ || aa_session->purpose == NULL ||
		strcmp(aa_session->purpose, "MLTRAINING") == 0)
		return;
	if (!defaults_loaded)
		load_defaults();
	foreach(lc, defaults)
	{
		DefaultRule *r = lfirst(lc);

		if (strcmp(r->data_class, data_class) == 0)
		{
			cd->permit = r->permit;
			cd->kind = "default";
			cd->rule = r->data_class;
			return;
		}
	}
	(void) aa_class_lookup(data_class, &sensitive);
	if (sensitive)
		return;
	foreach(lc, defaults)
	{
		DefaultRule *r = lfirst(lc);

		if (strcmp(r->data_class, "*") == 0)
		{
			cd->permit = r->permit;
			cd->kind = "default";
			cd->rule = "*";
			return;
		}
	}
}

/* append a copy of s to list unless it holds an equal string */
static List *
append_unique(List *list, const char *s)
{
	ListCell   *lc;

	/* C strings, not Nodes: compare them as such */
	foreach(lc, list)
		if (strcmp(lfirst(lc), s) == 0)
			return list;
	return lappend(list, pstrdup(s));
}

static AADecisionReason decide_provisions(List *provs, int nclasses,
										  char **classes, bool anyof,
										  int action, AADecision *result);

/*
 * The decision (what aa_consent_decide() says) without its authority: the
 * reason, and what permitted or refused.
 */
static AADecisionReason
decide(const char *patient, int nclasses, char **classes, bool anyof,
	   int action, AADecision *result)
{
	const AABreakGlass *bg;
	List	   *provs;

	if (aa_session == NULL)
		return AA_DECIDE_NO_SESSION;
	(void) aa_decision_gen();	/* make sure the cache is current */

	if (!aa_session_token_names(patient))
		return AA_DECIDE_NOT_IN_TOKEN;
	bg = aa_btg_active_for(patient);
	if (bg != NULL)
	{
		/* the permit ends with the override: no cached decision outlives it */
		note_boundary(bg->ends_at, GetCurrentTimestamp());
		result->permit = true;
		result->btg = true;
		result->break_glass = DatumGetCString(DirectFunctionCall1(uuid_out,
																  UUIDPGetDatum(&bg->id)));
		return AA_DECIDE_BREAK_GLASS;
	}

	provs = provisions_for(patient);
	return decide_provisions(provs, nclasses, classes, anyof, action, result);
}

/* the decision on the patient's provisions (past the token and overrides) */
static AADecisionReason
decide_provisions(List *provs, int nclasses, char **classes, bool anyof,
				  int action, AADecision *result)
{
	TimestampTz now = GetCurrentTimestamp();
	ListCell   *lc;

	if (nclasses == 0)
		return AA_DECIDE_NO_CLASS_IN_SCOPE;

	for (int i = 0; i < nclasses; i++)
	{
		ClassDecision cd;

		decide_class(provs, classes[i], action, now, &cd);
		if (!cd.permit && !anyof)
		{
			/*
			 * One class refused refuses the row, whatever the classes
			 * before it permitted: say which and why.
			 */
			result->permit = false;
			result->consents = NIL;
			result->defaults = NIL;
			result->data_class = pstrdup(classes[i]);
			if (cd.ids != NIL)
				result->consent = pstrdup(linitial(cd.ids));
			if (cd.rule != NULL)
				result->default_rule = psprintf("%s/%s", aa_session->purpose, cd.rule);
			if (strcmp(cd.kind, "consent") == 0)
				return AA_DECIDE_DENIED_BY_CONSENT;
			if (strcmp(cd.kind, "default") == 0)
				return AA_DECIDE_DENIED_BY_DEFAULT;
			return AA_DECIDE_NOTHING_PERMITS;
		}
		if (cd.permit)
		{
			result->permit = true;
			if (strcmp(cd.kind, "consent") == 0)
			{
				foreach(lc, cd.ids)
					result->consents = append_unique(result->consents, lfirst(lc));
			}
			else
				result->defaults = append_unique(result->defaults,
												 psprintf("%s/%s", aa_session->purpose, cd.rule));
			if (anyof)
				break;
		}
	}

	/* anyof and nothing permitted */
	if (!result->permit)
		return AA_DECIDE_NOTHING_PERMITS_ANY;
	return AA_DECIDE_PERMIT;
}

void
aa_consent_decide(const char *patient, int nclasses, char **classes,
				  bool anyof, int action, AADecision *result)
{
	memset(result, 0, sizeof(*result));
	result->action = action;
	result->reason = decide(patient, nclasses, classes, anyof, action, result);
	result->authority = aa_decision_build_authority(result, NULL, NULL);
}

/* ------------------------------------------------------------------
 * For the decisions kept across statements (consent_kept.c)
 * ------------------------------------------------------------------
 */

/* moves at every reset of the cache: every entry is gone */
uint64
aa_consent_cache_epoch(void)
{
	return cache_epoch;
}

/*
 * The patient's cache entry (loaded when absent or stale): where a kept
 * decision of it hangs, cleared whenever the entry's provisions change;
 * NULL for a patient with no provision that can match the session (every
 * such patient decides alike).  *provisions: what to decide on.
 */
void	  **
aa_consent_kept_slot(const char *patient, List **provisions)
{
	PatientConsent *pc = patient_entry(patient);

	Assert(pc == NULL || !pc->stale);
	*provisions = pc ? pc->provisions : NIL;
	if (pc == NULL || pc->provisions == NIL)
		return NULL;
	return &pc->kept;
}

/*
 * The decision on a patient's provisions, past its token and overrides
 * (the caller checked them), with its authority (current memory context).
 */
void
aa_consent_decide_on(List *provisions, int nclasses, char **classes,
					 bool anyof, int action, AADecision *result)
{
	memset(result, 0, sizeof(*result));
	result->action = action;
	result->reason = decide_provisions(provisions, nclasses, classes, anyof,
									   action, result);
	result->authority = aa_decision_build_authority(result, NULL, NULL);
}
