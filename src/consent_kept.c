/*-------------------------------------------------------------------------
 *
 * consent_kept.c
 *		Consent decisions kept across statements (issue 14 item 3).  A
 *		statement asks a question of each patient it reads -- these
 *		classes, all of them or any one, for this action -- and the answer
 *		for the same question and patient stays the same for as long as
 *		consent.c's cache entry of the patient does.  So it is made once:
 *		the decision, its authority as jsonb and the canonical text of
 *		that jsonb (what the audit chain hashes), hung on the patient's
 *		entry, or, for the many patients with no provision that can match
 *		the session (the defaults decide them all alike), once per question.
 *
 *		Memory: one exact-size piece per decision, in the arena of the
 *		cache's present generation (a generation context).  A statement
 *		pins each arena it takes a decision from until it ends; when
 *		consent.c resets its cache the arena is retired, and freed by its
 *		last unpin (at once when nothing pins it).  At most MAX_KEPT
 *		decisions an arena; past that, statements decide for themselves.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "agentauth.h"

/*
 * A decision kept for a patient across statements, for one question, with
 * its authority's canonical text made once: one allocation in the arena of
 * the cache's present generation, sized to what it holds.
 */
typedef struct CachedDecision
{
	int			question;
	AADecision	d;
	struct CachedDecision *next;
} CachedDecision;

/*
 * The kept decisions of one generation of the cache.  A statement that
 * takes a decision from an arena pins it until the statement ends; a reset
 * of the cache retires the arena, which is freed by the last unpin (or at
 * once when nothing pins it).  A generation keeps at most MAX_KEPT
 * decisions; past that the statements decide for themselves again.
 */
typedef struct KeptArena
{
	MemoryContext cxt;
	int			pins;
	int			count;
	bool		retired;
} KeptArena;

#define MAX_KEPT 32768

/* an interned question: classes (all or anyof) and action */
typedef struct Question
{
	int			action;
	bool		anyof;
	int			nclasses;
	char	  **classes;
} Question;

#define MAX_QUESTIONS 256

/*
 * Per question, the decision of a patient with no provision that can match
 * the session: it is the same for every such patient (the defaults decide),
 * so it is kept once, not per patient.
 */
static CachedDecision *no_provision[MAX_QUESTIONS];

/* the kept decisions of this generation of consent.c's cache */
static KeptArena *arena = NULL;
static uint64 arena_epoch = 0;

/* the questions asked so far in this backend (never forgotten) */
static MemoryContext question_cxt = NULL;
static List *questions = NIL;

/*
 * The number of a question -- these classes (all of them, or anyof at
 * least one), this action -- the same for the same question as long as
 * the backend lives; -1 past MAX_QUESTIONS (then nothing is kept for it).
 */
int
aa_consent_question(int nclasses, char **classes, bool anyof, int action)
{
	ListCell   *lc;
	Question   *q;
	MemoryContext oldcxt;

	foreach(lc, questions)
	{
		bool		same;

		q = lfirst(lc);
		same = q->action == action && q->anyof == anyof && q->nclasses == nclasses;
		for (int i = 0; same && i < nclasses; i++)
			same = strcmp(q->classes[i], classes[i]) == 0;
		if (same)
			return foreach_current_index(lc);
	}
	if (list_length(questions) >= MAX_QUESTIONS)
		return -1;
	if (question_cxt == NULL)
		question_cxt = AllocSetContextCreate(TopMemoryContext,
											 "agentauth decision questions",
											 ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(question_cxt);
	q = palloc(sizeof(Question));
	q->action = action;
	q->anyof = anyof;
	q->nclasses = nclasses;
	q->classes = palloc(sizeof(char *) * Max(nclasses, 1));
	for (int i = 0; i < nclasses; i++)
		q->classes[i] = pstrdup(classes[i]);
	questions = lappend(questions, q);
	MemoryContextSwitchTo(oldcxt);
	return list_length(questions) - 1;
}

/* s (or NULL) copied to *p, which moves past it */
static char *
place_string(char **p, const char *s)
{
	char	   *copy;

	if (s == NULL)
		return NULL;
	copy = strcpy(*p, s);
	*p += strlen(s) + 1;
	return copy;
}

/*
 * d (made in scratch memory) as one allocation in the arena: the struct,
 * the authority, its canonical text and the strings; the two lists of
 * strings, when there are any, beside it.
 */
static CachedDecision *
keep_decision(const AADecision *d, const StringInfoData *canon, int question)
{
	Size		size = MAXALIGN(sizeof(CachedDecision));
	const char *strs[3] = {d->data_class, d->consent, d->default_rule};
	char	   *p;
	CachedDecision *cd;
	MemoryContext oldcxt = MemoryContextSwitchTo(arena->cxt);
	ListCell   *lc;

	size += MAXALIGN(VARSIZE(d->authority)) + canon->len + 1;
	for (int i = 0; i < 3; i++)
		if (strs[i] != NULL)
			size += strlen(strs[i]) + 1;
	cd = palloc(size);
	memset(cd, 0, sizeof(CachedDecision));
	cd->question = question;
	cd->d.permit = d->permit;
	cd->d.btg = d->btg;
	cd->d.reason = d->reason;
	cd->d.action = d->action;
	p = (char *) cd + MAXALIGN(sizeof(CachedDecision));
	cd->d.authority = (Jsonb *) p;
	memcpy(p, d->authority, VARSIZE(d->authority));
	p += MAXALIGN(VARSIZE(d->authority));
	cd->d.authority_canon = p;
	cd->d.authority_canon_len = canon->len;
	memcpy(p, canon->data, canon->len + 1);
	p += canon->len + 1;
	cd->d.data_class = place_string(&p, d->data_class);
	cd->d.consent = place_string(&p, d->consent);
	cd->d.default_rule = place_string(&p, d->default_rule);
	foreach(lc, d->consents)
		cd->d.consents = lappend(cd->d.consents, pstrdup(lfirst(lc)));
	foreach(lc, d->defaults)
		cd->d.defaults = lappend(cd->d.defaults, pstrdup(lfirst(lc)));
	MemoryContextSwitchTo(oldcxt);
	arena->count++;
	return cd;
}

/*
 * The kept decisions are forgotten: consent.c reset its cache.  A new
 * arena; the old one freed now if no statement pins it, else by its last
 * unpin.
 */
static void
retire_decisions(void)
{
	KeptArena  *fresh;

	memset(no_provision, 0, sizeof(no_provision));
	if (arena != NULL && arena->pins == 0)
	{
		MemoryContextReset(arena->cxt);
		arena->count = 0;
		return;
	}
	/* the new one made whole before the old one is retired */
	fresh = MemoryContextAllocZero(TopMemoryContext, sizeof(KeptArena));
	/* exact sizes, no free lists: nothing is freed but the whole arena */
	fresh->cxt = GenerationContextCreate(TopMemoryContext,
										 "agentauth kept decisions",
										 ALLOCSET_DEFAULT_SIZES);
	if (arena != NULL)
		arena->retired = true;
	arena = fresh;
}

void
aa_consent_pin(void *pin)
{
	((KeptArena *) pin)->pins++;
}

void
aa_consent_unpin(void *pin)
{
	KeptArena  *k = (KeptArena *) pin;

	Assert(k->pins > 0);
	if (--k->pins == 0 && k->retired)
	{
		MemoryContextDelete(k->cxt);
		pfree(k);
	}
}

/*
 * The decision for the patient and question, kept across statements on the
 * patient's consent cache entry (or, for a patient with no provision that
 * can match the session, once per question): it depends on nothing but
 * what invalidates that entry (the session, the generation counter, the
 * patient's consent, the defaults, the clock passing a provision's
 * boundary).  NULL where it is not kept -- no session, no question number,
 * a token's patient list, an active break-the-glass (it ends on its own
 * clock), the arena full -- and the caller decides with
 * aa_consent_decide().  *pin is the arena it is in: a statement that keeps
 * the pointer pins the arena (aa_consent_pin()) until it ends.
 */
const AADecision *
aa_consent_decide_kept(const char *patient, int question, void **pin)
{
	static MemoryContext scratch = NULL;
	const Question *q;
	List	   *provisions;
	CachedDecision *cd;
	CachedDecision **slot;
	MemoryContext oldcxt;
	AADecision	d;
	StringInfoData canon;

	if (aa_session == NULL || question < 0 || aa_session->npatients >= 0)
		return NULL;
	(void) aa_decision_gen();	/* make sure the cache is current */
	if (aa_btg_active_for(patient) != NULL)
		return NULL;
	slot = (CachedDecision **) aa_consent_kept_slot(patient, &provisions);
	/* after the loads: a reset of consent.c's cache drops all that is kept */
	if (arena == NULL || aa_consent_cache_epoch() != arena_epoch)
	{
		retire_decisions();
		arena_epoch = aa_consent_cache_epoch();
		if (slot != NULL)
			*slot = NULL;
	}
	if (slot == NULL)
		slot = &no_provision[question];
	for (cd = *slot; cd != NULL; cd = cd->next)
		if (cd->question == question)
		{
			*pin = arena;
			return &cd->d;
		}
	if (arena->count >= MAX_KEPT)
		return NULL;

	/* decide in scratch memory, keep only the result */
	if (scratch == NULL)
		scratch = AllocSetContextCreate(TopMemoryContext,
										"agentauth decision scratch",
										ALLOCSET_DEFAULT_SIZES);
	q = list_nth(questions, question);
	oldcxt = MemoryContextSwitchTo(scratch);
	aa_consent_decide_on(provisions, q->nclasses, q->classes, q->anyof,
						 q->action, &d);
	initStringInfo(&canon);
	JsonbToCString(&canon, &d.authority->root, VARSIZE(d.authority));
	MemoryContextSwitchTo(oldcxt);
	cd = keep_decision(&d, &canon, question);
	MemoryContextReset(scratch);
	cd->next = *slot;
	*slot = cd;
	*pin = arena;
	return &cd->d;
}
