/*-------------------------------------------------------------------------
 *
 * agentauth.h
 *		Shared declarations of the agentauth extension, grouped by the file
 *		that defines them: this header is also the map of the code.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AGENTAUTH_H
#define AGENTAUTH_H

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "utils/uuid.h"

#define AA_SCHEMA			"agentauth"
#define AA_LABEL_PROVIDER	"agentauth"

/* Bounds on user input (SPEC 13: oversized input is refused). */
#define AA_MAX_NAME_LEN		200		/* names, codes, roles, patients */
#define AA_MAX_TEXT_LEN		4000	/* reasons, descriptions, owners */
#define AA_MAX_ARRAY_LEN	1000	/* scopes, purposes, patient lists */
#define AA_SECRET_PREFIX	"aat_"
#define AA_SECRET_BYTES		32		/* 256 bits */
#define AA_SECRET_LEN		(4 + 43)	/* "aat_" + base64url(32 bytes) */

/* ---------------------------------------------------------------------
 * agentauth.c -- module entry
 * ---------------------------------------------------------------------
 */
extern void _PG_init(void);

/* ---------------------------------------------------------------------
 * guc.c -- settings (SPEC 11)
 * ---------------------------------------------------------------------
 */
extern char *aa_database;
extern bool aa_audit_sync;
extern int	aa_audit_wait_timeout;	/* ms */
extern int	aa_audit_queue_size;	/* kB */
extern int	aa_head_log_interval;	/* s */
extern int	aa_review_deadline;		/* s */
extern int	aa_audit_retention;		/* s */
extern bool aa_allow_uninstall;
extern int	aa_inactive_after;		/* s */

extern void aa_guc_init(void);

/* ---------------------------------------------------------------------
 * shmem.c -- shared state: the generation counter and each module's
 * shared memory, requested and attached in one place
 * ---------------------------------------------------------------------
 */
typedef struct AASharedState
{
	/*
	 * Bumped (after commit) by every transaction that changed a token,
	 * principal, consent, default, break-the-glass, approval or the
	 * classification of a protected table.  Backends compare it with the
	 * value their caches were built at.
	 */
	pg_atomic_uint64 generation;
} AASharedState;

extern AASharedState *aa_shared;

extern void aa_shmem_init(void);
extern uint64 aa_generation(void);
extern void aa_generation_bump_at_commit(void);

/* ---------------------------------------------------------------------
 * util.c -- small helpers shared by every module
 * ---------------------------------------------------------------------
 */
extern void aa_require_role(const char *role);
extern bool aa_has_role(const char *role);
extern char *aa_text_arg(FunctionCallInfo fcinfo, int argno, const char *what,
						 bool required, int maxlen);
extern void aa_sha256(const unsigned char *data, size_t len, unsigned char *out);
extern bool aa_extension_ready(void);

/* ---------------------------------------------------------------------
 * session.c -- the backend's agentauth session, held in C memory only
 * ---------------------------------------------------------------------
 */
typedef struct AAScope
{
	char	   *data_class;		/* a data_class name or "*" */
	bool		write;			/* false: read */
} AAScope;

typedef struct AABreakGlass
{
	pg_uuid_t	id;
	char	   *patient;
	TimestampTz ends_at;
} AABreakGlass;

typedef struct AASession
{
	MemoryContext cxt;			/* holds this struct and everything it points to */
	pg_uuid_t	id;				/* session id (returned by begin_*) */
	pg_uuid_t	principal;
	bool		is_agent;		/* agent (token) or human session */
	char	   *name;
	char	   *owner;			/* the agent's accountable owner */
	Oid			db_role;
	bool		has_token;
	pg_uuid_t	token;
	char	   *purpose;
	char	   *on_behalf_of;
	int			nscopes;		/* effective scopes: the token's (a subset of
								 * the agent's registration), or the human's */
	AAScope    *scopes;
	int			nsensitive;		/* sensitive classes, which '*' does not cover */
	char	  **sensitive;
	int			npatients;		/* -1: any patient */
	char	  **patients;		/* sorted by strcmp, for bsearch */
	TimestampTz expires_at;		/* DT_NOEND for human sessions */
	int			nchain;
	pg_uuid_t  *chain;			/* delegation chain, root first, this token last */
	bool		can_break_glass;
	bool		can_approve;
	bool		can_delegate;
	int			nbreak_glass;	/* active overrides of this session */
	AABreakGlass *break_glass;
	bool		transaction_only;
	/* validation cache: see session.c */
	uint64		validated_gen;
	bool		revoked;		/* a revalidation found it no longer valid */
	const char *invalid_reason; /* why (a constant string), for errdetail */
} AASession;

/* NULL when the backend has no session */
extern AASession *aa_session;

extern void aa_session_init(void);

/*
 * The per-row validity check: returns when the backend has no session or a
 * valid one; raises 28000 when the session's token was revoked or expired,
 * or its principal suspended or retired.  In the steady state it costs one
 * atomic read, two compares and a flag; it revalidates (one query on the
 * latest snapshot) only when the generation counter moved or the token's
 * expiry timer fired.
 */
extern void aa_session_check(void);

/* does the session's scope allow this class and action?  false: no session */
extern bool aa_session_scope_allows(const char *data_class, bool write);

/* does the session's token allow this patient?  false: no session */
extern bool aa_session_patient_allowed(const char *patient);

/* ---------------------------------------------------------------------
 * token.c -- token secrets
 * ---------------------------------------------------------------------
 */
extern bool aa_secret_well_formed(const char *s, int len);
extern void aa_secret_digest(const char *s, int len, unsigned char *out);

/* ---------------------------------------------------------------------
 * audit.c -- the one entry point for every audit record
 * ---------------------------------------------------------------------
 */
typedef struct AARecord
{
	const char *event;			/* SPEC 10 event name; required */
	const char *patient;
	const char *relation;		/* schema-qualified */
	int			ncolumns;
	const char **columns;
	int			nclasses;
	const char **classes;
	const char *action;			/* read | insert | update | delete */
	int64		row_count;		/* < 0: NULL */
	const char *authority;		/* jsonb text or NULL */
	const char *outcome;		/* permit | deny */
	const char *detail;			/* jsonb text or NULL */
	/* identity: taken from aa_session unless set here */
	const pg_uuid_t *principal;
	const char *principal_name;
	const pg_uuid_t *token;
	const char *purpose;
} AARecord;

/*
 * transactional: recorded when, and only when, the current transaction
 * commits (administrative events).  Otherwise the record survives the
 * caller's rollback, error or cancel (accesses, denials, session events).
 */
extern void aa_audit_emit(const AARecord *rec, bool transactional);

/*
 * Wait until every non-transactional record this backend has emitted is
 * committed by the writer (when agentauth.audit_sync is on; a no-op when
 * off).  Fails closed with an ERROR after agentauth.audit_wait_timeout.
 */
extern void aa_audit_wait(void);
extern void aa_audit_init(void);
extern Size aa_audit_shmem_size(void);
extern void aa_audit_shmem_startup(void);

/* ---------------------------------------------------------------------
 * label.c, policy.c, columns.c, consent.c -- protected tables
 * ---------------------------------------------------------------------
 */
extern void aa_policy_init(void);

/* ---------------------------------------------------------------------
 * btg.c -- break-the-glass overrides and clinician approvals
 * ---------------------------------------------------------------------
 */
/* the active override of the current session for this patient, or NULL */
extern const AABreakGlass *aa_btg_active_for(const char *patient);

/*
 * An agent write to a table under require_approval: consume one use of an
 * unexpired approval for (session agent, relid, patient, action), storing
 * its id in *approval; raise 42501 when there is none.
 */
extern void aa_approval_consume(Oid relid, const char *patient,
								const char *action, pg_uuid_t *approval);

/*
 * Bring aa_session->nbreak_glass/break_glass up to date (loaded lazily, only
 * in a session that broke the glass), dropping expired overrides: for
 * whoami() and explain_access().
 */
extern void aa_btg_refresh(void);

/*
 * The current session ends (end_session, or a new session replacing it):
 * mark its open overrides ended and audit break_glass_end.  Call while
 * aa_session is still set, inside the transaction.
 */
extern void aa_btg_session_end(void);

/* ---------------------------------------------------------------------
 * monitor.c -- alert rules evaluated by the audit writer
 * ---------------------------------------------------------------------
 */
extern void aa_monitor_init(void);

#endif							/* AGENTAUTH_H */
