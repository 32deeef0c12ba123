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

#include "access/attnum.h"
#include "datatype/timestamp.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/uuid.h"

#define AA_SCHEMA			"agentauth"
#define AA_LABEL_PROVIDER	"agentauth"

/* Bound on names, codes, roles and patients from user input (SPEC 13) */
#define AA_MAX_NAME_LEN		200

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
#define AA_CONSENT_LOG 1024
#define AA_CONSENT_PATIENT_MAX 64

typedef struct AASharedState
{
	/*
	 * Bumped (after commit) by every transaction that changed a token,
	 * principal, consent, default, break-the-glass, approval or the
	 * classification of a protected table.  Backends compare it with the
	 * value their caches were built at.
	 */
	pg_atomic_uint64 generation;

	/*
	 * Consent provisions change far more often than anything else, and each
	 * change concerns one patient: it moves consent_generation instead, and
	 * leaves in consent_log which patient it was, so a backend drops only
	 * that patient from its consent cache (consent.c).  Entries carry the
	 * consent generation they were published with; "all patients" (len -1)
	 * when the change could not be narrowed down.
	 */
	pg_atomic_uint64 consent_generation;
	slock_t		consent_mutex;	/* publishing and reading the log */
	uint64		consent_nlog;	/* entries ever written */
	struct AAConsentChange
	{
		uint64		gen;
		int			len;		/* -1: every patient */
		char		patient[AA_CONSENT_PATIENT_MAX];
	}			consent_log[AA_CONSENT_LOG];
} AASharedState;

extern AASharedState *aa_shared;

extern void aa_shmem_init(void);

/* move a shared counter now and again at commit, then run after (or NULL) */
extern void aa_bump_at_commit(pg_atomic_uint64 *counter, void (*after) (void));
extern uint64 aa_generation(void);
extern void aa_generation_bump_at_commit(void);
extern uint64 aa_consent_generation(void);
/* a consent of this patient (NULL: of any) changed: now and at commit */
extern void aa_consent_changed_at_commit(const char *patient, int len);
/*
 * The patients whose consent changed in (since, upto]: a List of palloc'd
 * C strings, or false when that cannot be told (every patient).
 */
extern bool aa_consent_changes(uint64 since, uint64 upto, List **patients);

/* ---------------------------------------------------------------------
 * util.c -- the helper layer shared by every module
 * ---------------------------------------------------------------------
 */
extern void aa_require_role(const char *role);
extern bool aa_has_role(const char *role);
extern char *aa_text_arg(FunctionCallInfo fcinfo, int argno, const char *what,
						 bool required, int maxlen);
extern void aa_sha256(const unsigned char *data, size_t len, unsigned char *out);
extern bool aa_extension_ready(void);
extern int	aa_pin_search_path(void);
extern void aa_unpin_search_path(int nest);

/*
 * The extension's own queries: SPI connected, as the bootstrap superuser
 * (aa_spi_begin) or another role, with search_path pinned, the security
 * context restricted, and optionally the latest snapshot pushed.  An error
 * in between is undone by the (sub)transaction abort.
 */
typedef struct AASpiState
{
	Oid			save_userid;
	int			save_sec;
	int			guc_nest;		/* aa_pin_search_path() */
	bool		snapshot_pushed;
} AASpiState;

extern void aa_spi_begin(AASpiState *st, bool latest_snapshot);
extern void aa_spi_begin_as(AASpiState *st, Oid userid, bool latest_snapshot);
extern void aa_spi_end(AASpiState *st);
extern struct _SPI_plan *aa_spi_keep_plan(struct _SPI_plan **cache,
										  const char *sql, int nargs,
										  Oid *argtypes);
extern void aa_spi_select_latest(struct _SPI_plan *plan, Datum *values,
								 const char *nulls, long tcount);
/* column col of the first row of the last SPI result */
extern Datum aa_spi_first_value(int col, bool *isnull);

/*
 * Actions, as bits (consent provisions, approvals, access accounting).
 * Bit i is the action of index i: read 0, insert 1, update 2, delete 3.
 */
#define AA_NACTIONS			4
#define AA_ACT_BIT(idx)		(1 << (idx))
#define AA_ACT_READ			0x01
#define AA_ACT_INSERT		0x02
#define AA_ACT_UPDATE		0x04
#define AA_ACT_DELETE		0x08
#define AA_ACT_WRITE		(AA_ACT_INSERT | AA_ACT_UPDATE | AA_ACT_DELETE)

/* one bit: its name; several: "write" */
extern const char *aa_action_name(int action);
/* read|insert|update|delete|write (len -1: NUL-terminated): mask, 0: unknown */
extern int	aa_action_from_name(const char *name, int len);

extern char **aa_text_array_to_cstrings(Datum d, int *n);
extern Datum aa_cstrings_to_text_array(char **items, int n);
extern pg_uuid_t *aa_uuid_copy(const pg_uuid_t *u);

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

/* the session's lifecycle, for session_sql.c: staged with the transaction */
extern AASession *aa_session_alloc(void);
extern void aa_session_install(AASession *s);
extern void aa_session_end(void);

/* a superuser or BYPASSRLS role gets no session */
extern bool aa_role_bypasses_rls(Oid roleid);

/* is token t, or one it was delegated from, revoked?  (SQL, for t) */
#define AA_TOKEN_REVOKED_SQL \
	"(t.revoked_at IS NOT NULL OR EXISTS (SELECT FROM agentauth.token a " \
	" WHERE a.id OPERATOR(pg_catalog.=) ANY (t.chain) AND a.revoked_at IS NOT NULL))"

/* ---------------------------------------------------------------------
 * session_sql.c -- begin_session, begin_human_session, end_session, whoami
 * ---------------------------------------------------------------------
 */
/* SQL entry points only: they fill a session and hand it to session.c */

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

/* longest patient id (bytes) a record may name: it must fit the log's index */
#define AA_AUDIT_MAX_PATIENT	1000

/* true in the audit writer: its own records are never waited for */
extern bool aa_audit_in_writer;
extern Size aa_audit_shmem_size(void);
extern void aa_audit_shmem_startup(void);

/* ---------------------------------------------------------------------
 * audit_queue.c -- the shared-memory queue between backends and the writer
 * ---------------------------------------------------------------------
 */

/* one record in the queue; followed by its body and jsonb copies, each MAXALIGNed */
typedef struct AAQueueEntry
{
	uint32		len;			/* whole entry, MAXALIGNed */
	uint32		body_len;		/* canonical fields event..detail */
	TransactionId xid;			/* transactional: store iff it commits */
	uint32		authority_len;	/* binary jsonb copies (0: NULL) */
	uint32		detail_len;
	uint32		pad;
} AAQueueEntry;

extern Size aa_queue_shmem_size(void);
extern void aa_queue_shmem_startup(void);
extern Size aa_queue_capacity(void);
extern bool aa_queue_push(const char *data, Size len, int timeout_ms, uint64 *end);
extern bool aa_queue_wait_committed(uint64 pos, int timeout_ms);
/* the writer gathers unwaited records up to this long, while the queue is
 * less than 1/AA_GATHER_FILL full */
#define AA_GATHER_MS 10
#define AA_GATHER_FILL 16
extern bool aa_queue_should_gather(void);
extern void aa_queue_wake_writer(void);
extern bool aa_queue_writer_running(void);
extern int	aa_queue_percent_full(void);
/* the writer's side */
extern void aa_queue_read(uint64 pos, char *dst, Size len);
extern void aa_queue_bounds(uint64 *tail, uint64 *head);
extern void aa_queue_writer_attach(Latch *latch);
extern void aa_queue_writer_detach(void);
extern bool aa_queue_db_known(void);
extern void aa_queue_set_db_known(bool known);
extern void aa_queue_set_inflight(uint64 end, int64 last_seq);
extern void aa_queue_get_inflight(uint64 *end, int64 *last_seq);
extern void aa_queue_release(uint64 end, int64 head_seq);

/* ---------------------------------------------------------------------
 * chain.c -- the canonical record encoding, verify_audit, purge_audit
 * ---------------------------------------------------------------------
 */
#define AA_CANON_VERSION	0x01
#define AA_TAG_NULL			0x00
#define AA_TAG_INT8			'i'
#define AA_TAG_TIMESTAMPTZ	'T'
#define AA_TAG_UUID			'u'
#define AA_TAG_TEXT			't'
#define AA_TAG_JSONB		'j'
#define AA_TAG_ARRAY		'a'
#define AA_CANON_HEAD_LEN	19	/* version, seq, logged_at */
#define AA_HASH_LEN			32
#define AA_AUDIT_NATTS		23	/* columns of agentauth.audit_log */

extern void aa_canon_null(StringInfo buf);
extern void aa_canon_int8(StringInfo buf, int64 v);
extern void aa_canon_timestamptz(StringInfo buf, TimestampTz v);
extern void aa_canon_uuid(StringInfo buf, const pg_uuid_t *u);
extern void aa_canon_text(StringInfo buf, const char *s);
extern void aa_canon_text_len(StringInfo buf, const char *s, int len);
extern void aa_canon_jsonb_text(StringInfo buf, const char *s, int len);
extern void aa_canon_array_header(StringInfo buf, int nelems);
extern void aa_canon_head(unsigned char *out, int64 seq, TimestampTz logged_at);
extern void aa_canon_stored_record(StringInfo buf, Datum *values, bool *nulls,
								   StringInfo scratch);
extern void aa_audit_check_tupdesc(TupleDesc desc);

/* ---------------------------------------------------------------------
 * utility.c -- append-only protection of the audit log, DROP EXTENSION
 * ---------------------------------------------------------------------
 */
extern bool aa_audit_purging;	/* purge_audit() is deleting */
extern void aa_utility_init(void);

/* ---------------------------------------------------------------------
 * label.c -- the "agentauth" security-label provider: classification
 * ---------------------------------------------------------------------
 */
#define AA_NON_PHI			"non_phi"

typedef struct AAProtectedRel
{
	Oid			relid;
	char	   *relname;		/* schema-qualified, quoted as needed */
	char		relkind;
	char	   *patient_column; /* NULL: label malformed (fail closed) */
	AttrNumber	patient_attno;	/* InvalidAttrNumber: missing (fail closed) */
	int			approve_mask;	/* AA_ACT_* needing a clinician's approval */
	int			natts;
	char	  **att_name;		/* [1..natts]; NULL for dropped columns */
	char	  **att_class;		/* [1..natts]; NULL: unclassified */
	int			nclasses;		/* distinct classes, non_phi excluded */
	char	  **classes;
} AAProtectedRel;

extern void aa_label_init(void);
extern AAProtectedRel *aa_protected_rel(Oid relid);
extern bool aa_is_protected(Oid relid);
extern bool aa_class_lookup(const char *name, bool *sensitive);
extern bool aa_parse_table_label(const char *label, char **patient_column,
								 int *approve_mask, const char **why);

/* ---------------------------------------------------------------------
 * policy.c -- row-security policy hooks, the per-row check, DDL guard
 * ---------------------------------------------------------------------
 */
extern void aa_policy_init(void);

/* ---------------------------------------------------------------------
 * columns.c -- executor hooks: column scope, per-statement accounting
 * ---------------------------------------------------------------------
 */

/* one patient's rows in one relation within the current executor run */
/* action indexes into the arrays below */
#define AA_IDX_READ		0
#define AA_IDX_INSERT	1
#define AA_IDX_UPDATE	2
#define AA_IDX_DELETE	3
#define AA_NIDX			4

/*
 * One patient's rows in one relation within the current executor run: an
 * element of the relation's open-addressing table.  What the row check
 * touches on every row -- hash, key, decision generation, decisions and
 * counts of rows allowed -- fills the first cache line; a short patient
 * value is stored in it.  Elements move when the table grows: keep no
 * pointer to one across aa_access_patient().
 */
#define AA_SHORT_KEY	16

typedef struct AAPatientAccess
{
	uint32		hash;
	int32		len;			/* strlen(patient); -1: empty slot */
	char		key[AA_SHORT_KEY];	/* the patient, when len < AA_SHORT_KEY */
	uint32		dgen;			/* decisions below are valid for this */
	int8		decided[AA_NIDX];	/* -1 unknown, 0 deny, 1 permit */
	int64		allowed[AA_NIDX];
	/* the rest is touched for withheld rows, decisions and records */
	char	   *patient;		/* NUL-terminated: key, or a copy of its own */
	bool		btg[AA_NIDX];	/* permitted by break-the-glass */
	int64		withheld[AA_NIDX];
	int64		written_new;	/* UPDATE: new rows checked for this patient */
	char	   *authority[AA_NIDX]; /* jsonb text: why permitted, or why denied */
	bool		approval_done[AA_NIDX];
	char	   *approval[AA_NIDX];	/* approval id consumed */
} pg_attribute_aligned(64) AAPatientAccess;

typedef struct AARelAccess
{
	Oid			relid;
	char	   *relname;
	int			approve_mask;
	/* columns and classes the statement touches, per action index */
	int			ncols[AA_NIDX];
	char	  **cols[AA_NIDX];
	int			nclasses[AA_NIDX];
	char	  **classes[AA_NIDX];
	/*
	 * No class touched (only the patient column or non_phi): the row needs
	 * consent for any one of these, the table's classes in scope.
	 */
	int			nanyof[AA_NIDX];
	char	  **anyof[AA_NIDX];
	/* patient -> AAPatientAccess: open addressing, linear probing */
	uint32		nslots;			/* a power of two */
	uint32		npatients;
	AAPatientAccess *slots;		/* 64-byte aligned, within slots_raw */
	void	   *slots_raw;
	int			last_len;		/* the previous row's patient, for a cheap compare */
	char		last_key[32];
	AAPatientAccess *last;		/* the last patient looked up */
	uint64		dgen;			/* decision generation seen */
	bool		any_counted;
	struct AAQueryAccess *query;
} AARelAccess;

typedef struct AAQueryAccess
{
	struct QueryDesc *qd;
	MemoryContext cxt;			/* the statement's accounting memory */
	List	   *rels;			/* AARelAccess * */
	bool		done;			/* final flush happened */
	bool		live;			/* in the registry */
	const char *cascade_rel;	/* a foreign-key cascade writes this
								 * protected table unchecked: refused if it
								 * writes a row */
	const char *cascade_action;
	pg_uuid_t	session_id;		/* the session it was checked for */
	struct AAQueryAccess *next;
	MemoryContextCallback cb;
} AAQueryAccess;

extern void aa_columns_init(void);
extern AARelAccess *aa_access_for(Oid relid);
extern void aa_refuse_outside_session(const char *relname, int ncols,
									  const char **cols, const char *action);
extern void aa_audit_privileged(const char *relname, int ncols,
								const char **cols, const char *action);
extern bool aa_rls_bypassed(Oid relid, Oid checkAsUser);
extern void aa_check_standby(const char *relname);
extern AAPatientAccess *aa_access_patient(AARelAccess *ra, const char *patient,
										  int len);
extern uint64 aa_decision_gen(void);

/* ---------------------------------------------------------------------
 * consent.c -- consent and default decisions, cached per backend
 * ---------------------------------------------------------------------
 */
typedef struct AADecision
{
	bool		permit;
	bool		btg;			/* by break-the-glass */
	char	   *authority;		/* jsonb text */
} AADecision;

/*
 * Decide (SPEC 7) for this session whether the patient may be touched with
 * every one of the classes (or, anyof, at least one) for the action
 * (AA_ACT_*).  Includes the token's patient list.  The result's strings are
 * palloc'd in the current memory context.
 */
extern void aa_consent_decide(const char *patient, int nclasses,
							  char **classes, bool anyof, int action,
							  AADecision *result);

/* ---------------------------------------------------------------------
 * consent_sql.c -- explain_access(), the consent and generation triggers
 * ---------------------------------------------------------------------
 */

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
extern Size aa_monitor_shmem_size(void);
extern void aa_monitor_shmem_startup(void);

/*
 * The audit writer's side.  aa_monitor_observe(): for every record of a
 * batch, with the row inserted into agentauth.audit_log (values/nulls in
 * column order, seq and logged_at set); memory only, no catalog access.
 * aa_monitor_after_commit(): once per round of the writer's loop, outside
 * any transaction, after the batch committed: raises the alerts found, in a
 * transaction of its own; reloads rules; checks inactive agents every
 * agentauth.head_log_interval.
 */
extern void aa_monitor_observe(const Datum *values, const bool *nulls);
extern void aa_monitor_after_commit(void);

/* backends: a statement failing closed, a chain verification failing */
extern void aa_monitor_fail_closed(const char *what);
extern void aa_monitor_chain_failure(int64 first_bad_seq, const char *problem);

#endif							/* AGENTAUTH_H */
