/*-------------------------------------------------------------------------
 *
 * access_int.h
 *		The statement's access context, shared by access.c (building it,
 *		the per-row check) and access_run.c (the statement's runs and their
 *		records).  Private to these two files; the rest of the code sees
 *		only AAQueryAccess, opaque, through agentauth.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AGENTAUTH_ACCESS_INT_H
#define AGENTAUTH_ACCESS_INT_H

#include "executor/execdesc.h"
#include "utils/memutils.h"

#include "agentauth.h"
#include "patient_key.h"

/*
 * One patient's rows in one relation within the current executor run: an
 * element of the relation's patient table.  What the row check touches on
 * every row -- key, decision generation, decisions and counts of rows
 * allowed -- is in the first cache line.  Elements stay where they are
 * created (the table's blocks), so a pointer to one lives as long as the
 * statement.
 */
typedef struct PatientAccess
{
	int8		decided[AA_NACTIONS];	/* -1 unknown, 0 deny, 1 permit */
	uint32		dgen;			/* decisions above are valid for this */
	PatientKey	patient;		/* str: a NUL-terminated copy of its own */
	int64		allowed[AA_NACTIONS];
	/* the rest is touched for withheld rows, decisions and records */
	bool		btg[AA_NACTIONS];	/* permitted by break-the-glass */
	bool		approval_done[AA_NACTIONS];
	bool		read_before;	/* a finished run read rows of it, permitted */
	int64		withheld[AA_NACTIONS];
	int64		written_new;	/* UPDATE: new rows checked for this patient */
	const AADecision *decision[AA_NACTIONS];	/* why permitted, or why
												 * denied */
	char	   *approval[AA_NACTIONS];	/* approval id consumed */
} pg_attribute_aligned(64) PatientAccess;

/*
 * A relation's patients in a statement: the elements in an index of
 * patients (patient_key.h), in the order they were first seen.
 */
typedef AAPatientIndex PatientTable;

static inline PatientAccess *
aa_patient_at(const PatientTable *t, uint32 i)
{
	return (PatientAccess *) aa_pindex_at(t, i);
}

/* RelAccess.question not yet asked for */
#define AA_QUESTION_UNKNOWN (-2)

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
	/* the consent question of each action (aa_consent_question()) */
	int			question[AA_NACTIONS];
	PatientTable *patients;		/* created at the first row */
	PatientKey	last_key;		/* the previous row's patient (short keys
								 * only: len -1 otherwise), for a cheap
								 * compare */
	PatientAccess *last;		/* the last patient looked up */
	char	   *keys;			/* free space for the patients' key copies,
								 * packed so that the key compares of the
								 * row check stay in the cache */
	int			keys_left;
	bool		any_counted;
	int64		nopatient[AA_NACTIONS]; /* rows naming no patient: withheld,
										 * or a write refused */

	/*
	 * Not scanned by this statement: the patients a statement it ran (a
	 * function) read, kept for the checks before its later runs.
	 */
	bool		inherited;
	AAQueryAccess *query;
} RelAccess;

/*
 * The classes a record of action idx names: those of the columns the
 * statement touched, else (it named none: count(*), the patient column,
 * non_phi columns) the table's classes in scope, on which the row's
 * consent was decided -- a row's existence is data of its table's classes
 * (1.1, found by review: such reads were recorded with no class at all).
 */
static inline const char **
aa_access_record_classes(const RelAccess *ra, int idx, int *n)
{
	if (ra->nclasses[idx] > 0)
	{
		*n = ra->nclasses[idx];
		return (const char **) ra->classes[idx];
	}
	*n = ra->nanyof[idx];
	return (const char **) ra->anyof[idx];
}

struct AAQueryAccess
{
	QueryDesc  *qd;
	MemoryContext cxt;			/* the statement's accounting memory */
	List	   *rels;			/* RelAccess * */
	bool		done;			/* final flush happened */
	bool		live;			/* in the registry */
	SubTransactionId subxid;	/* the subtransaction it began in */
	bool		in_run;			/* a run begun and not ended */
	SubTransactionId run_subxid;	/* the subtransaction that run began in */
	const char *cascade_rel;	/* a foreign-key cascade writes this
								 * protected table unchecked: refused if it
								 * writes a row */
	const char *cascade_action;
	pg_uuid_t	session_id;		/* the session it was checked for */
	bool		in_session;		/* session_id is set: rows are checked */
	/* its later runs (a cursor's FETCHes): see access_run.c */
	bool		holds;			/* its plan may keep protected rows */
	bool		nested;			/* a statement it ran read protected rows */
	int			runs;			/* runs begun */
	uint64		run_dgen;		/* decision generation at the last */
	uint64		statement;		/* its records' statement number (0: none
								 * yet): one for all its runs */
	bool		touched;		/* a row of a protected table reached the
								 * row check, or the statement's record of
								 * none was emitted (flush_untouched) */
	DestReceiver *output;		/* its rows' check as they are sent (made
								 * once: aa_access_output_dest) */
	/* the kept decisions' memory it pins (consent.c), the last first */
	List	   *pins;
	AAQueryAccess *next;
	MemoryContextCallback cb;
};

/* the live statements, newest first; the running ones, innermost first */
extern AAQueryAccess *aa_live_queries;
extern List *aa_running;

/* access.c */
extern PatientAccess *aa_access_patient(RelAccess *ra, const char *patient,
										int len);
extern AAQueryAccess *aa_access_find(QueryDesc *qd);
/* what a record of action idx on the relation shares with the others */
extern void aa_access_record_init(AARecord *rec, const RelAccess *ra, int idx,
								  uint64 statement);
/* its one record when no protected row reached its row check */
extern bool aa_access_flush_untouched(AAQueryAccess *q, uint64 statement);
/* the decision for one patient and action, cached for the run */
extern bool aa_access_decide(RelAccess *ra, PatientAccess *pa, int idx);

#endif							/* AGENTAUTH_ACCESS_INT_H */
