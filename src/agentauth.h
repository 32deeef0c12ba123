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
#include "common/cryptohash.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"
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
extern bool aa_require_transaction_only;
extern char *aa_forward_conninfo;	/* on a hot standby: the primary */

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
extern void aa_shmem_init_publishing(void);
/* a module's shared memory: requested and attached with agentauth's */
extern void aa_shmem_register(Size (*size) (void), void (*startup) (void));

/* move a shared counter now and again at commit, then run after (or NULL) */
extern void aa_bump_at_commit(pg_atomic_uint64 *counter, void (*after) (void));
/*
 * The shared generation counters, read on every row (set with shared
 * memory, shmem.c; NULL before): inline, one atomic read each.
 */
extern pg_atomic_uint64 *aa_generation_counter;
extern pg_atomic_uint64 *aa_consent_generation_counter;

static inline uint64
aa_generation(void)
{
	return aa_generation_counter ? pg_atomic_read_u64(aa_generation_counter) : 0;
}

static inline uint64
aa_consent_generation(void)
{
	return aa_consent_generation_counter ?
		pg_atomic_read_u64(aa_consent_generation_counter) : 0;
}

extern void aa_generation_bump_at_commit(void);
/* a consent of this patient (NULL: of any) changed: now and at commit */
extern void aa_consent_changed_at_commit(const char *patient, int len);
/*
 * The patients whose consent changed in (since, upto]: a List of palloc'd
 * C strings, or false when that cannot be told (every patient).
 */
extern bool aa_consent_changes(uint64 since, uint64 upto, List **patients);
/* replica.c: told once before a commit that changes access state (consent or not), at init */
extern void aa_shmem_on_publish(void (*hook) (bool consent));
/* a change replayed on a hot standby: every consent (true), or the rest */
extern void aa_shared_changed_now(bool consent);

/* ---------------------------------------------------------------------
 * util.c -- the helper layer shared by every module
 * ---------------------------------------------------------------------
 */
extern void aa_require_role(const char *role);
/* > 0: protected_schema.c acts for the agentauth_admin check */
extern int	aa_admin_on_behalf;
extern bool aa_has_role(const char *role);
/* the table of a trigger, and whether it is internal (a foreign key's) */
extern Oid	aa_trigger_relation(Oid trigoid, bool *internal);
extern char *aa_text_arg(FunctionCallInfo fcinfo, int argno, const char *what,
						 bool required, int maxlen);
extern void aa_sha256(const unsigned char *data, size_t len, unsigned char *out);
extern bool aa_extension_ready(void);
extern Snapshot aa_latest_snapshot(void);
extern int	aa_pin_search_path(void);
extern void aa_unpin_search_path(int nest);
/* a background worker's settings, whatever the database's are */
extern void aa_worker_pin_settings(void);
/* schema.relation as the log records it, whatever quote_all_identifiers */
extern char *aa_qualified_name(const char *nsp, const char *rel);
extern char *aa_utc_text(TimestampTz t);
extern bool aa_jsonb_says(Datum d, const char *key, const char *value);
extern struct ErrorData *aa_in_subtransaction(void (*fn) (void *arg), void *arg);

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
 * Actions, by index (the statement's columns, classes and counts per
 * action) and as bits (consent provisions, approvals): bit AA_ACT_BIT(i)
 * is the action of index i.
 */
#define AA_READ				0
#define AA_INSERT			1
#define AA_UPDATE			2
#define AA_DELETE			3
#define AA_NACTIONS			4
#define AA_ACT_BIT(idx)		(1 << (idx))
#define AA_ACT_READ			AA_ACT_BIT(AA_READ)
#define AA_ACT_INSERT		AA_ACT_BIT(AA_INSERT)
#define AA_ACT_UPDATE		AA_ACT_BIT(AA_UPDATE)
#define AA_ACT_DELETE		AA_ACT_BIT(AA_DELETE)
#define AA_ACT_WRITE		(AA_ACT_INSERT | AA_ACT_UPDATE | AA_ACT_DELETE)

/* one bit: its name; several: "write" */
extern const char *aa_action_name(int action);
/* read|insert|update|delete|write (len -1: NUL-terminated): mask, 0: unknown */
extern int	aa_action_from_name(const char *name, int len);
extern bool aa_str_in_list(const char *s, const char *const *list);
/* does a statement or an expression call a function check says yes to? */
extern bool aa_query_calls(struct Node *node, bool (*check) (Oid func_id, void *context));
/* a RENAME of a relation, by any ALTER TABLE/INDEX/VIEW/... spelling */
struct RenameStmt;
extern bool aa_renames_relation(struct RenameStmt *rs);

/*
 * A jsonb object of strings and arrays of strings, built with the jsonb
 * API; with text, also written there as JSON text in the order built.
 */
typedef struct AAJsonbBuilder
{
	struct JsonbParseState *state;
	StringInfo	text;
	int			nkeys;
} AAJsonbBuilder;

extern void aa_jsonb_begin(AAJsonbBuilder *b, StringInfo text);
extern void aa_jsonb_add_string(AAJsonbBuilder *b, const char *key,
								const char *value);
extern void aa_jsonb_add_strings(AAJsonbBuilder *b, const char *key,
								 List *values);
extern Jsonb *aa_jsonb_end(AAJsonbBuilder *b);

extern char **aa_text_array_to_cstrings(Datum d, int *n);
extern Datum aa_cstrings_to_text_array(char **items, int n);
extern pg_uuid_t *aa_uuid_copy(const pg_uuid_t *u);

/* ---------------------------------------------------------------------
 * redact.c -- token secrets never reach the server log (emit_log_hook), nor
 * the patients our own errors name
 * ---------------------------------------------------------------------
 */
extern void aa_redact_init(void);
/* s with every token secret replaced, in cxt; NULL when it holds none */
extern char *aa_redact_secrets(const char *s, MemoryContext cxt);
/* in ereport(): a DETAIL naming a patient for the client, detail_log for the log */
extern int	aa_errdetail_patient(const char *detail, const char *detail_log);

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
	TimestampTz status_changed_at;	/* a human session ends when its
									 * principal's differs (DT_NOBEGIN: none) */
	int			nchain;
	pg_uuid_t  *chain;			/* delegation chain, root first, this token last */
	bool		can_break_glass;
	bool		can_approve;
	bool		can_delegate;
	int			nbreak_glass;	/* active overrides of this session */
	AABreakGlass *break_glass;
	bool		broke_glass;	/* it started an override (btg.c): its end
								 * ends them, whichever way it ends */
	bool		transaction_only;
	/* validation cache: see session.c */
	uint64		validated_gen;
	bool		revoked;		/* a revalidation found it no longer valid */
	const char *invalid_reason; /* why (a constant string), for errdetail */
} AASession;

/* NULL when the backend has no session */
extern AASession *aa_session;

extern void aa_session_init(void);
/* at init: what else ends with a session (end_session, or replaced) */
extern void aa_session_on_end(void (*callback) (void));
/* at init: what is recorded at backend exit before the session's end */
extern void aa_session_on_exit(void (*callback) (void));

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
/* the token's patient list names it (true without a list) */
extern bool aa_session_token_names(const char *patient);
/* the delegation chain as a uuid[] (*isnull without one) */
extern Datum aa_session_chain_array(bool *isnull);

/* the session's lifecycle, for session_sql.c: staged with the transaction */
extern AASession *aa_session_alloc(void);
/* the sensitive classes into s (SPI connected): at its beginning, and on each revalidation */
extern void aa_session_load_sensitive(AASession *s);
extern void aa_session_install(AASession *s);
/* record.c: the conversion into UTF-8, found while in a transaction */
extern void aa_canon_prepare(void);
extern void aa_session_end(void);

/* a utility statement is about to run (utility.c): DISCARD ALL ends the session */
extern void aa_session_utility_begin(Node *stmt, bool toplevel);

/* a superuser or BYPASSRLS role gets no session */
extern bool aa_role_bypasses_rls(Oid roleid);

/*
 * A principal's name as every comparison takes it (SQL, for the expression
 * x): case and surrounding blanks aside.  Builtins only, so a 1.0 schema
 * (the library loaded before ALTER EXTENSION UPDATE) runs it too; the SQL
 * side, principal_name_folded (01_schema.sql) included, spells the same.
 */
#define AA_NAME_FOLD(x) "pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(" x ")))"

/*
 * Is token t, or one it was delegated from, revoked -- or issued before
 * its agent's last status change (or is that agent not active), or before
 * that of the principal it acts for?  (SQL, for t; t.chain holds t
 * itself, so the test of the chain covers t's own agent.)  1.1,
 * found by review: a token issued while its agent was being suspended was
 * not among those the suspension revoked, and it -- and the tokens
 * delegated from it -- worked again after a reactivation.
 */
#define AA_TOKEN_REVOKED_SQL \
	"(t.revoked_at IS NOT NULL OR EXISTS (SELECT FROM agentauth.token a " \
	"  JOIN agentauth.principal ap ON ap.id OPERATOR(pg_catalog.=) a.agent " \
	" WHERE a.id OPERATOR(pg_catalog.=) ANY (t.chain) AND (a.revoked_at IS NOT NULL " \
	"  OR ap.status OPERATOR(pg_catalog.<>) 'active' " \
	"  OR a.issued_at OPERATOR(pg_catalog.<=) ap.status_changed_at)) " \
	" OR (t.on_behalf_of IS NOT NULL AND EXISTS (SELECT FROM agentauth.principal h " \
	"  WHERE " AA_NAME_FOLD("h.name") " OPERATOR(pg_catalog.=) " \
	"        " AA_NAME_FOLD("t.on_behalf_of") " " \
	"    AND (h.status OPERATOR(pg_catalog.<>) 'active' " \
	"         OR h.status_changed_at OPERATOR(pg_catalog.>=) t.issued_at))))"

/*
 * may principal p begin only transaction_only sessions?  (SQL, for p; read
 * through the row's jsonb so that a 1.0 schema, before ALTER EXTENSION
 * UPDATE adds the column, reads false)
 */
#define AA_TXONLY_REQUIRED_SQL \
	"COALESCE((pg_catalog.to_jsonb(p) OPERATOR(pg_catalog.->>) " \
	"'transaction_only_required')::pg_catalog.bool, false)"

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
 * audit.c -- the one entry point for every audit record: a record is
 * resolved (identity, db_role, statement, client: audit_resolve.c) and
 * encoded (record.c) into the backend's buffers, then pushed to the queue
 * (audit_queue.c)
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
	const Jsonb *authority;		/* or NULL */
	const char *authority_canon;	/* its canonical text, when known */
	int			authority_canon_len;
	const char *outcome;		/* permit | deny */
	const char *detail;			/* jsonb text or NULL */
	/* identity: taken from aa_session unless set here */
	const pg_uuid_t *principal;
	const char *principal_name;
	const pg_uuid_t *token;
	const char *purpose;
	/* the statement it belongs to (aa_audit_new_statement); 0: its own */
	uint64		statement;
} AARecord;

/*
 * transactional: recorded when, and only when, the current transaction
 * commits (administrative events).  Otherwise the record survives the
 * caller's rollback, error or cancel (accesses, denials, session events).
 */
extern void aa_audit_emit(const AARecord *rec, bool transactional);
extern void aa_audit_ready(void);
extern void aa_audit_emit_held(const AARecord *rec);
extern void aa_audit_emit_unwaited(const AARecord *rec);
/* a record about a whole statement: no patient, no row count */
extern void aa_audit_statement(const char *event, const char *outcome,
							   const char *relname, const char *action,
							   int ncols, const char **cols,
							   const char *detail, bool transactional);

/*
 * Wait until every non-transactional record this backend has emitted is
 * committed by the writer (when agentauth.audit_sync is on; a no-op when
 * off).  Fails closed with an ERROR after agentauth.audit_wait_timeout.
 */
extern void aa_audit_wait(void);
/* before a protected read: push what an abort could not (the queue full) */
extern void aa_audit_push_retained(void);
/*
 * audit_resolve.c: rec resolved (identity, client, statement) and appended
 * to out as one queue entry; with trim_on_error, an error part way leaves
 * it half written until aa_audit_drop_half_written() cuts it off.
 */
extern void aa_audit_serialize(StringInfo out, const AARecord *rec,
							   TransactionId xid, bool trim_on_error);
extern void aa_audit_drop_half_written(void);
/* the audit module's long-lived memory (audit_resolve.c) */
extern MemoryContext aa_audit_memory(void);
extern void aa_audit_init(void);

/*
 * A number for the records of one statement (a query's runs), unique among
 * the backends: the alert rules count statements (monitor.c).  It travels
 * in the queue entry's header only; the stored record does not carry it.
 */
extern uint64 aa_audit_new_statement(void);

/* longest patient id (bytes) a record may name: it must fit the log's index */
#define AA_AUDIT_MAX_PATIENT	1000

/* session.c says where the acting session is kept, once, at its init */
extern void aa_audit_set_session_source(AASession *const *session);
/* the spill mover: a queued entry staged as this transaction's own record */
extern void aa_audit_stage_entry(const char *entry, Size len, int64 spill_txn,
								 int64 spill_ord);
extern bool aa_audit_commit_unwritten(void);

/* ---------------------------------------------------------------------
 * audit_bounds.c -- when a statement fails closed instead of leaving
 * records the writer may never store: outside agentauth.database (55000),
 * or with the log agentauth.audit_wait_timeout behind (53000)
 * ---------------------------------------------------------------------
 */
struct AAQueueLate;
extern void aa_audit_check_database(void);
extern bool aa_audit_late(struct AAQueueLate *late);
/* before a session's statement reads (access_run.c): fail closed if late */
extern void aa_audit_check_writer(void);
extern void aa_audit_fail_closed(const char *what,
								 const struct AAQueueLate *late) pg_attribute_noreturn();

/* ---------------------------------------------------------------------
 * audit_queue.c -- the shared-memory queue between backends and the writer
 * ---------------------------------------------------------------------
 */
extern Size aa_queue_shmem_size(void);
extern void aa_queue_shmem_startup(void);
extern Size aa_queue_capacity(void);
extern bool aa_queue_push(char *data, Size len, int timeout_ms, uint64 *end);
extern void aa_queue_note_sync(uint64 end);
extern bool aa_queue_wait_committed(uint64 pos, int timeout_ms);
extern uint64 aa_queue_head(void);

/*
 * Whether the writer can write, as it last said.  Only STOPPED and FAILED
 * (and NOT_STARTED, counted from the backend's own start) make backends
 * fail closed once they last agentauth.audit_wait_timeout: a backend that
 * emits records is in agentauth.database with the extension installed, so
 * a writer still looking for either will find them.
 */
typedef enum AAWriterState
{
	AA_WRITER_NOT_STARTED,		/* no writer since the server started */
	AA_WRITER_NO_DATABASE,		/* waiting for agentauth.database */
	AA_WRITER_ABLE,				/* its last batch went through */
	AA_WRITER_STOPPED,			/* it exited (terminated, shutting down) */
	AA_WRITER_FAILED			/* it exited with an error */
} AAWriterState;

/* why the writer is late (aa_queue_late) */
typedef struct AAQueueLate
{
	AAWriterState state;
	long		oldest_ms;		/* age of the oldest record not yet written */
	long		unable_ms;		/* how long the writer has not been able */
} AAQueueLate;

extern bool aa_queue_late(int timeout_ms, AAQueueLate *late);
/* the writer gathers unwaited records up to this long (and at most a
 * quarter of agentauth.audit_wait_timeout), while the queue is less than
 * 1/AA_GATHER_FILL full */
#define AA_GATHER_MS 50
#define AA_GATHER_FILL 16
extern bool aa_queue_should_gather(void);
extern void aa_queue_wake_writer(void);
extern bool aa_queue_writer_running(void);
extern int	aa_queue_percent_full(void);
/* true in the audit writer: its own records are never waited for */
extern bool aa_queue_in_writer(void);
/* the writer's side */
extern const struct AAQueueEntry *aa_queue_entry_at(uint64 pos);
extern void aa_queue_bounds(uint64 *tail, uint64 *head);
extern void aa_queue_writer_attach(Latch *latch);
extern void aa_queue_writer_detach(bool failed);
extern void aa_queue_set_writer_state(AAWriterState state);
extern bool aa_queue_db_known(void);
extern void aa_queue_set_db_known(bool known);
extern void aa_queue_set_inflight(uint64 end, int64 last_seq);
extern void aa_queue_get_inflight(uint64 *end, int64 *last_seq);
extern void aa_queue_release(uint64 end);
/* what the status view shows (status.c): the writer notes, status reads */
#define AA_RATE_SECONDS 60		/* records_per_second: over this many s */
struct AAWriterStatus;
extern void aa_queue_note_written(int nrec, Oid relid, int64 last_seq,
								  const unsigned char *hash, TimestampTz now);
extern void aa_queue_check_head(Oid relid, int64 seq, const unsigned char *hash);
extern void aa_queue_note_head_logged(int64 seq, const unsigned char *hash);
extern void aa_queue_status(struct AAWriterStatus *st);

/* ---------------------------------------------------------------------
 * audit_spill.c -- a large transaction's administrative records, spilled
 * into agentauth._audit_spill inside it (no bound of the queue, bounded
 * backend memory); the shared tickets of the spill mover
 * ---------------------------------------------------------------------
 */
extern void aa_spill_init(void);
extern Size aa_spill_threshold(void);
extern Size aa_spill_chunk(void);
extern Oid	aa_spill_relid(void);
extern Oid	aa_spill_order_index(Relation rel);
extern bool aa_spill_write(const char *data, Size len);
extern bool aa_spill_take(int64 txn, int64 ord);
extern void aa_spill_committed(void);
extern void aa_spill_attach(Latch *latch);
extern uint64 aa_spill_requested(void);
extern void aa_spill_note_moved(uint64 nrecords);
extern void aa_spill_note_done(uint64 ticket);

/* ---------------------------------------------------------------------
 * audit_spill_mover.c -- the "agentauth audit spill" worker: committed
 * spilled records into the queue, a chunk per transaction (exactly once)
 * ---------------------------------------------------------------------
 */
extern PGDLLEXPORT void aa_spill_mover_main(Datum main_arg);

/* ---------------------------------------------------------------------
 * audit_writer.c -- the background worker: dequeue, assign seq and
 * logged_at, chain (chain.c), insert the rows (record.c) in batches
 * ---------------------------------------------------------------------
 */
extern PGDLLEXPORT void aa_audit_writer_main(Datum main_arg);

/* ---------------------------------------------------------------------
 * forward.c -- the audit forwarder of a hot standby: in the writer's
 * place during recovery, it sends the queue's records over libpq to the
 * primary (agentauth.forward_audit, forward_sql.c) and releases them once
 * the primary's writer committed them; polls replayed changes (replica.c)
 * ---------------------------------------------------------------------
 */
extern void aa_forward_init(void);
extern PGDLLEXPORT void aa_forward_main(Datum main_arg);

/* ---------------------------------------------------------------------
 * forward_sql.c -- the primary's side: agentauth.forward_audit() reads and
 * checks each forwarded record, names the standby in its client, queues
 * it for this server's writer and returns once it is committed
 * ---------------------------------------------------------------------
 */
/* SQL entry point only */

/* ---------------------------------------------------------------------
 * replica.c -- hot standbys and the access state: the primary's changes
 * reach a standby's caches through replayed relcache invalidations of
 * marker relations; writes of agentauth's state refused on a standby
 * ---------------------------------------------------------------------
 */
struct PlannedStmt;
extern void aa_replica_init(void);
/* the standby's forwarder, every AA_REPLICA_POLL_MS, outside a transaction */
extern void aa_replica_poll(void);
/* ExecutorStart (columns.c): on a standby, a write of agentauth's tables */
extern void aa_replica_check_write(struct PlannedStmt *ps);

/* ---------------------------------------------------------------------
 * record.c -- the audit record format: columns, canonical encoding,
 * the queued form and the stored form
 * ---------------------------------------------------------------------
 */

/*
 * the columns of agentauth.audit_record (the stored log; the view
 * agentauth.audit_log shows the first 23), in table order: indexes of
 * values[]
 */
typedef enum AAAuditColumn
{
	AA_COL_SEQ,
	AA_COL_LOGGED_AT,
	AA_COL_EVENT,				/* the canonical body: event .. detail */
	AA_COL_PRINCIPAL,
	AA_COL_PRINCIPAL_NAME,
	AA_COL_DB_ROLE,
	AA_COL_TOKEN,
	AA_COL_ON_BEHALF_OF,
	AA_COL_DELEGATION_CHAIN,
	AA_COL_PURPOSE,
	AA_COL_PATIENT,
	AA_COL_RELATION,
	AA_COL_COLUMNS,
	AA_COL_DATA_CLASSES,
	AA_COL_ACTION,
	AA_COL_ROW_COUNT,
	AA_COL_AUTHORITY,
	AA_COL_OUTCOME,
	AA_COL_STATEMENT,
	AA_COL_CLIENT,
	AA_COL_DETAIL,
	AA_COL_PREV_HASH,
	AA_COL_ROW_HASH,
	AA_COL_ENTRY_KINDS,			/* a unit's entries (encoding version 2) */
	AA_COL_ENTRY_PATIENTS,
	AA_COL_ENTRY_ROW_COUNTS,
	AA_COL_ENTRY_AUTHORITIES,
	AA_COL_ENTRY_CONSENTS,		/* a consent's authority, as its id */
	AA_AUDIT_NATTS				/* 28 columns */
} AAAuditColumn;

/* the columns of a 1.0 log (agentauth.audit_log before the update) */
#define AA_AUDIT_NATTS_V1	AA_COL_ENTRY_KINDS

/* the attribute number of a column */
#define AA_COL_ATTNUM(col)	((AttrNumber) ((col) + 1))

#define AA_CANON_HEAD_LEN	19	/* version, seq, logged_at */
#define AA_HASH_LEN			32

/*
 * A record's fields event..detail, resolved: what the backend encodes.
 * NULL pointers (and row_count < 0, nchain 0) encode NULL.
 */
typedef struct AARecordFields
{
	const char *event;
	const pg_uuid_t *principal;
	const char *principal_name;
	const char *db_role;
	const pg_uuid_t *token;
	const char *on_behalf_of;
	int			nchain;
	const pg_uuid_t *chain;		/* delegation chain */
	const char *purpose;
	const char *patient;
	const char *relation;
	int			ncolumns;
	const char **columns;
	int			nclasses;
	const char **classes;
	const char *action;
	int64		row_count;
	const struct varlena *authority;	/* binary jsonb, stored */
	const char *authority_text; /* its jsonb text, hashed */
	int			authority_text_len;
	const char *outcome;
	const char *statement;
	const char *client;			/* not NULL */
	int			client_len;
	const struct varlena *detail;
	const char *detail_text;
	int			detail_text_len;
} AARecordFields;

/*
 * One record in the queue: this header, the canonical body (fields
 * event..detail, exactly as hashed), then the binary jsonb of authority and
 * of detail, each MAXALIGNed.
 */
typedef struct AAQueueEntry
{
	uint32		len;			/* whole entry, MAXALIGNed */
	uint32		body_len;		/* canonical fields event..detail */
	TransactionId xid;			/* transactional: store iff it commits */
	uint32		authority_len;	/* binary jsonb copies (0: NULL) */
	uint32		detail_len;
	int32		backend;		/* the pid that encoded it: the writer keeps
								 * a backend's records in its order */
	TimestampTz queued_at;		/* set by aa_queue_push: the writer is late
								 * once the oldest is audit_wait_timeout old */
	uint64		statement;		/* aa_audit_new_statement(): for the alert
								 * rules only, neither stored nor hashed */
	int64		spill_txn;		/* moved from agentauth._audit_spill: its
								 * row's key, which the writer deletes as it
								 * stores the record (0: not moved) */
	int64		spill_ord;
} AAQueueEntry;

#define AA_ENTRY_BODY(e)	((const char *) (e) + MAXALIGN(sizeof(AAQueueEntry)))

extern int	aa_record_check_tupdesc(TupleDesc desc);
extern Oid	aa_record_log_relid(Oid nsp);
extern void aa_record_encode(StringInfo out, const AARecordFields *f,
							 TransactionId xid);
/* a record's jsonb and its canonical text, the last value remembered */
typedef struct AAJsonbCache
{
	char	   *text;			/* the jsonb text it was given, or NULL */
	Jsonb	   *bin;
	StringInfoData canon;		/* what the chain hashes */
} AAJsonbCache;
extern Jsonb *aa_jsonb_text_cached(AAJsonbCache *c, const char *s, MemoryContext cxt);
extern Jsonb *aa_jsonb_cached(AAJsonbCache *c, const Jsonb *jb, MemoryContext cxt);
extern void aa_record_canon_head(unsigned char *out, int version, int64 seq,
								 TimestampTz logged_at);
extern void aa_record_decode(const AAQueueEntry *e, Datum *values, bool *nulls);
extern void aa_record_set_chain(Datum *values, bool *nulls, int64 seq,
								TimestampTz logged_at,
								const unsigned char *prev_hash,
								const unsigned char *row_hash);
extern void aa_record_get_chain(const Datum *values, const bool *nulls,
								int natts, int64 *seq, TimestampTz *logged_at,
								unsigned char *row_hash);
extern void aa_record_set_no_entries(Datum *values, bool *nulls, int natts);
extern int64 aa_record_entry_count(const Datum *values, const bool *nulls,
								   int natts);

/*
 * verify_audit's reusable state for aa_record_canon_stored: the last
 * binary value of each jsonb column (authority, detail) and its text.
 */
typedef struct AACanonJsonb
{
	StringInfoData bin;
	StringInfoData text;
	bool		valid;
} AACanonJsonb;

typedef struct AACanonCache
{
	AACanonJsonb jsonb[2];
	int			natts;			/* of the stored log: 27, or 23 (1.0) */
} AACanonCache;

/* record_stored.c -- canonical(stored row): version 1 or 2 */
extern void aa_record_canon_cache_init(AACanonCache *cache);
extern void aa_record_canon_stored(StringInfo buf, const Datum *values,
								   const bool *nulls, AACanonCache *cache);
extern bool aa_record_well_formed(const Datum *values, const bool *nulls,
								  int natts);

/* ---------------------------------------------------------------------
 * unit.c -- a statement's records of one table as one unit (encoding
 * version 2), gathered by the writer from consecutive queue entries
 * ---------------------------------------------------------------------
 */
#define AA_UNIT_MAX_ENTRIES	128

typedef struct AAUnit AAUnit;

extern AAUnit *aa_unit_create(MemoryContext cxt);
extern int	aa_unit_size(const AAUnit *u);
extern const AAQueueEntry *aa_unit_take_single(AAUnit *u);
extern int32 aa_unit_backend(const AAUnit *u);
extern bool aa_unit_candidate(const AAQueueEntry *e);
extern bool aa_unit_add(AAUnit *u, const AAQueueEntry *e);
extern void aa_unit_finish(AAUnit *u, pg_cryptohash_ctx *ctx, int64 seq,
						   TimestampTz logged_at, const unsigned char *prev_hash,
						   Datum *values, bool *nulls, unsigned char *row_hash);
extern void aa_unit_observe(AAUnit *u, Datum *values, bool *nulls);

/* ---------------------------------------------------------------------
 * chain.c -- the chain hash, verify_audit
 * ---------------------------------------------------------------------
 */
/*
 * row_hash = SHA-256(prev_hash || canonical(record)), canonical(record)
 * given in two pieces (the second may be empty), into out[AA_HASH_LEN].
 */
extern void aa_chain_hash(pg_cryptohash_ctx *ctx,
						  const unsigned char *prev_hash, size_t prev_len,
						  const char *canon1, size_t len1,
						  const char *canon2, size_t len2,
						  unsigned char *out);

/* ---------------------------------------------------------------------
 * utility.c -- the one ProcessUtility hook, the one object-access hook and
 * the fmgr hooks, dispatching to the checks of ddl.c, audit_guard.c,
 * schema_guard.c, protected_schema.c, derived.c, owner_code.c, partition.c
 * and session.c
 * ---------------------------------------------------------------------
 */
extern void aa_utility_init(void);

/* ---------------------------------------------------------------------
 * ddl.c -- the DDL guard of protected tables: refused or checked DDL,
 * dropping a protected table or its patient column, the checks again
 * after the lock
 * ---------------------------------------------------------------------
 */
extern void aa_ddl_check(Node *stmt);
extern void aa_ddl_check_drop(Oid relid);
extern void aa_ddl_check_drop_column(Oid relid, AttrNumber attnum);
extern Oid	aa_ddl_moved_relation(Node *stmt);
extern void aa_ddl_check_after(Node *stmt, Oid moved);
/* ddl_values.c: type changes, column defaults, foreign keys */
struct AlterTableCmd;
struct AlterTableStmt;
struct CreateStmt;
extern void aa_ddl_check_type_change(Oid relid, struct AlterTableCmd *cmd,
									 const char *relname);
extern void aa_ddl_check_defaults(Oid relid, List *cols);
extern char *aa_ddl_default_refused(Oid relid, Oid parent);
extern List *aa_ddl_default_columns(struct AlterTableStmt *stmt);
extern void aa_ddl_check_alter_keys(Oid relid, struct AlterTableStmt *stmt);
extern void aa_ddl_check_create_keys(struct CreateStmt *stmt, Oid parent);

/* written.c -- the columns a write sets unnamed: a view's defaults, generated columns */
struct Query;
extern void aa_written_plan(struct Query *parse);
extern bool aa_written_generated(Oid relid, bool *att, int natts, bool insert);

/* plan_reads.c -- the columns a plan's scans of a relation test, for columns.c; a plan node's children, for access_run.c too */
struct PlannedStmt;
extern Bitmapset *aa_plan_scan_reads(struct PlannedStmt *ps, Index rti);
struct Plan;
extern List *aa_plan_children(struct Plan *plan);
extern Index aa_plan_scanrelid(struct Plan *plan);

/* ddl_names.c -- what frees a protected table's name, for ddl.c */
struct ReassignOwnedStmt;
struct AlterExtensionContentsStmt;
extern void aa_ddl_refuse(const char *relname, const char *what, const char *hint);
extern void aa_ddl_refuse_moved(Oid relid, const char *what);
extern void aa_ddl_refuse_schema(const char *schema, const char *what);
extern void aa_ddl_check_reassign_owned(struct ReassignOwnedStmt *stmt);
extern void aa_ddl_check_extension_add(struct AlterExtensionContentsStmt *stmt);
extern void aa_ddl_refuse_extension_move(const char *extname);

/* ddl_bulk.c -- TRUNCATE and COPY of protected tables, for ddl.c */
struct TruncateStmt;
struct CopyStmt;
extern void aa_bulk_check_truncate(struct TruncateStmt *ts);
extern void aa_bulk_check_copy(struct CopyStmt *cs);

/* ---------------------------------------------------------------------
 * partition.c -- a protected partitioned table protects every partition,
 * present and future: CREATE ... PARTITION OF, ATTACH and DETACH checked
 * (called by ddl.c) and followed up (called by utility.c)
 * ---------------------------------------------------------------------
 */
struct CreateStmt;
extern void aa_partition_check_create(struct CreateStmt *stmt, bool foreign,
									  bool runs_code);
extern void aa_partition_check_attach(Oid parent, Oid part);
/* code of a table that a non-superuser may not bring under protection */
extern char *aa_attached_code(Oid parent, Oid part);
extern void aa_partition_check_detach(Oid parent, Oid part);
extern void aa_partition_utility_done(Node *stmt);

/* ---------------------------------------------------------------------
 * protected_schema.c -- tables made in, renamed or moved into a protected
 * schema are protected by the statement that made them, or it is refused
 * ---------------------------------------------------------------------
 */
/* the object-access hook (utility.c): a relation made, altered, a column added */
extern void aa_protected_schema_object(int access, Oid classId, Oid objectId,
									   int subId, void *arg);
/* around every utility statement (utility.c) */
extern void aa_protected_schema_check(Node *stmt);
/* a protected table leaves its name: its settings kept by it (jsonb text or NULL) */
extern char *aa_protected_schema_keep(Oid relid);
/* the relations of the statements running it, set aside while it runs */
typedef struct AAPendingRelations
{
	List	   *made;
	List	   *moved;
	uint64		xact_ends;		/* they die with their transaction */
} AAPendingRelations;
/* columns.c: the statement read a column of a sensitive class */
extern void aa_protected_schema_read_sensitive(const char *cls, const char *relname);
/* utility.c: a top-level utility statement begins */
extern void aa_protected_schema_toplevel(void);
extern void aa_protected_schema_utility_begin(AAPendingRelations *outer);
extern void aa_protected_schema_utility_done(Node *stmt);
extern void aa_protected_schema_utility_end(const AAPendingRelations *outer);

/* ---------------------------------------------------------------------
 * owner_code.c -- code a non-superuser made, over the rows of a protected
 * table during DDL and maintenance: refused, or recorded for a superuser;
 * in a session, code of other roles than the session's: refused
 * ---------------------------------------------------------------------
 */
typedef struct AAOwnerCodeGuard
{
	Oid			relid;			/* the protected table the statement processes */
	Oid			user;			/* who runs the statement */
	const char *command;
} AAOwnerCodeGuard;

/* utility.c brackets every utility statement with these */
extern void aa_owner_code_begin(Node *stmt, AAOwnerCodeGuard *save);
extern void aa_owner_code_end(const AAOwnerCodeGuard *save);
/* the fmgr hooks (utility.c): is fn owner code; it is about to run */
extern bool aa_owner_code_function(Oid fn);
extern void aa_owner_code_call(Oid fn);
/* a statement is planned (stats.c): index maintenance by a function call */
extern void aa_owner_code_plan(struct Query *parse);
/* checks before a statement (ddl.c) */
extern bool aa_owner_code_type_trusted(Oid typid);
extern void aa_owner_code_check_domain(Node *stmt);
extern void aa_owner_code_check_enum(Node *node);

/* ---------------------------------------------------------------------
 * other_code.c -- in a session, code of other roles: functions refused,
 * their triggers read no protected table, and views, policies and rules
 * with effects refused
 * ---------------------------------------------------------------------
 */
/* the fmgr hook (utility.c), for a function owned by a non-superuser */
extern void aa_other_code_start(Oid fn);
extern void aa_other_code_end(Oid fn);
/* access.c: a session's statement reads a protected table */
extern void aa_other_code_read(const char *relname);
extern void aa_other_code_session_call(const char *what);
/* the planner hook (stats.c) */
struct Query;
extern bool aa_other_code_plan(struct Query *parse);

/* ---------------------------------------------------------------------
 * replication.c -- writes of logical replication workers into protected
 * tables (no executor hook sees them): counted by a trigger of each
 * protected table, recorded before their transaction commits; the guard of
 * those triggers, called by ddl.c
 * ---------------------------------------------------------------------
 */
extern void aa_replication_ddl_check(Node *stmt);

/* ---------------------------------------------------------------------
 * audit_guard.c -- append-only protection of the audit log, DROP EXTENSION;
 * purge_audit, the one way records leave the log
 * ---------------------------------------------------------------------
 */
extern void aa_audit_guard_check(Node *stmt);
/* false: agentauth guards no drop now (not installed, or its own script) */
extern bool aa_audit_guard_drop(Oid classId, Oid objectId);
/* installed, and none of its own scripts runs: *nsp is schema agentauth */
extern bool aa_schema_guarded(Oid *nsp);

/* ---------------------------------------------------------------------
 * schema_guard.c -- everything in schema agentauth keeps its owners,
 * privileges, labels and protection against every role
 * ---------------------------------------------------------------------
 */
extern void aa_schema_guard_check(Node *stmt);
extern void aa_schema_guard_drop_trigger(Oid trigoid);
/* a view of schema agentauth: refused to a role not granted it (ERROR) */
extern void aa_schema_guard_view_read(Oid viewid, Oid checkAsUser, uint64 required);

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
 * partition_label.c -- partitions' labels read from pg_seclabel; a
 * partition without them under a protected table (or a partitioned table
 * holding a protected one) fails closed (for label.c and partition.c)
 * ---------------------------------------------------------------------
 */
extern char *aa_partition_label(Oid relid, int32 subid);
extern Oid	aa_partition_labelled_ancestor(Oid relid);
extern bool aa_partition_unlabelled_protected(Oid relid, char relkind);

/* ---------------------------------------------------------------------
 * label_restore.c -- a restore's labels: site classes that arrive after
 * the labels naming them, and a table whose labels are incomplete (no
 * table label, yet column labels or protect_table()'s triggers) fails
 * closed
 * ---------------------------------------------------------------------
 */
extern bool aa_label_unknown_class_ok(const char *label);
extern List *aa_label_known_classes(bool *valid);
extern void aa_label_unprotecting(Oid relid);
extern bool aa_label_incomplete(Oid relid, bool has_column_labels);

/* ---------------------------------------------------------------------
 * policy.c -- row-security policy hooks: the restrictive policy of a
 * protected table calls agentauth._row_check() (access.c) on every row;
 * the table's own restrictive policies that could see a row are refused;
 * after planning, nothing that can fail runs before the check
 * ---------------------------------------------------------------------
 */
extern void aa_policy_init(void);
/* after planning: a protected scan's row check before any condition that
 * could fail on a withheld row */
struct PlannedStmt;
extern void aa_policy_order_plan(struct PlannedStmt *ps);
/* before planning: false when a PARALLEL SAFE function of the statement
 * could read a protected table in a worker, where the row check refuses */
extern bool aa_policy_parallel_ok(struct Query *parse);
/* at a run's start: conditions with parameters PL/pgSQL fetches row by row
 * go after the checks */
struct ParamListInfoData;
extern void aa_policy_order_run(struct PlannedStmt *ps, struct ParamListInfoData *params);

/* ---------------------------------------------------------------------
 * columns.c -- executor hooks: column scope at ExecutorStart, the
 * statement's run and end handed to access.c
 * ---------------------------------------------------------------------
 */
extern void aa_columns_init(void);

/* ---------------------------------------------------------------------
 * derived.c -- in a session, what is read from a protected table never
 * lands in an unprotected relation (INSERT ... SELECT, CREATE TABLE AS,
 * materialized views, temporary tables, functions and triggers that copy)
 * ---------------------------------------------------------------------
 */
struct QueryDesc;

/* ExecutorStart, and around each ExecutorRun (columns.c) */
extern void aa_derived_start(struct QueryDesc *qd, int eflags);
extern bool aa_derived_enter(struct QueryDesc *qd);
extern void aa_derived_leave(bool writer);
/* around every utility statement (utility.c): COPY to a server file */
extern void aa_derived_utility_begin(Node *stmt);
extern void aa_derived_utility_end(Node *stmt);

/* ---------------------------------------------------------------------
 * stats.c -- plan and statistics outputs (EXPLAIN, planner statistics,
 * access counters, plan messages) tell nothing of withheld rows
 * ---------------------------------------------------------------------
 */
extern void aa_stats_init(void);
/* around every utility statement (utility.c): EXPLAIN in a session */
extern void aa_stats_utility_begin(Node *stmt);
/* a principal's utility statement naming a statistics function: refused */
extern void aa_stats_utility_text(Node *stmt, const char *query, int location, int len);
extern void aa_stats_utility_end(Node *stmt);

/* ---------------------------------------------------------------------
 * admit.c -- may a statement touch a protected table at all: decided, and
 * recorded, before any row is read
 * ---------------------------------------------------------------------
 */
extern bool aa_rls_bypassed(Oid relid, Oid checkAsUser);
extern void aa_check_standby(const char *relname);
/* ALTER TABLE: a foreign key's validation over a protected table */
struct AlterTableCmd;
extern void aa_admit_fk_validation(Oid relid, struct AlterTableCmd *cmd);
extern void aa_refuse_outside_session(const char *relname, int ncols,
									  const char **cols, const char *action);
extern void aa_audit_privileged(const char *relname, int ncols,
								const char **cols, const char *action);
/* the login a registered principal's (cached by login and generation) */
extern bool aa_login_is_principal(void);
extern void aa_refuse_bypass_in_session(const char *relname,
										const char *action, Oid as_role);
extern void aa_refuse_cascade(const char *relname, const char *action,
							  uint64 rows);
extern void aa_refuse_copy_in_session(const char *relname, int ncols,
									  const char **cols);
/* utility.c: LISTEN agentauth_alerts, refused to a principal's login */
extern void aa_admit_listen(Node *stmt);
/* utility.c: maintenance that reads a protected table's rows, by a role row security does not bind: privileged_access */
extern void aa_admit_utility_reads(Node *stmt);

/* ---------------------------------------------------------------------
 * access.c -- the statement's access context: the per-row check, the
 * patients it counts rows into, the records of the rows
 * ---------------------------------------------------------------------
 */

/*
 * The cmd argument of agentauth._row_check(relid, patient, cmd): an action
 * (its index), or the new row of an UPDATE.
 */
typedef enum AARowCmd
{
	AA_ROW_READ = AA_READ,
	AA_ROW_INSERT = AA_INSERT,
	AA_ROW_UPDATE = AA_UPDATE,
	AA_ROW_DELETE = AA_DELETE,
	AA_ROW_UPDATE_NEW,
	/* the first half of an UPDATE's / DELETE's check: readable or invisible */
	AA_ROW_UPDATE_SEEN,
	AA_ROW_DELETE_SEEN,
	/* an UPDATE's new row must be readable too: decided, not counted */
	AA_ROW_READ_NEW
} AARowCmd;
#define AA_ROW_LAST AA_ROW_READ_NEW
/* its name: the action's, or "update_new", "update_seen", "delete_seen",
 * "read_new" */
extern const char *aa_row_cmd_name(AARowCmd cmd);

/* one statement's access context (private: access_int.h) */
typedef struct AAQueryAccess AAQueryAccess;
struct QueryDesc;

/* ExecutorStart, before the executor's: built in aa_access_memory() */
extern AAQueryAccess *aa_access_begin(void);
extern MemoryContext aa_access_memory(AAQueryAccess *q);
/* a relation under row security: att[idx][1..natts], the columns touched */
extern void aa_access_add_rel(AAQueryAccess *q, Oid relid,
							  AAProtectedRel *prot, bool *const *att);
extern void aa_access_add_cascade(AAQueryAccess *q, const char *relname,
								  const char *action);
/* q, or NULL (freed) when there is nothing to account */
extern AAQueryAccess *aa_access_built(AAQueryAccess *q);

/* ---------------------------------------------------------------------
 * access_run.c -- the statement's runs: the records of each, and the
 * checks before each later run (a cursor's FETCH) of what it may keep
 * ---------------------------------------------------------------------
 */
extern void aa_access_init(void);
/* ExecutorStart, after the executor's */
extern void aa_access_register(AAQueryAccess *q, struct QueryDesc *qd);
/* before each ExecutorRun: the session, and what earlier runs kept */
extern void aa_access_run_begin(struct QueryDesc *qd);
/* around ExecutorRun and ExecutorFinish: the row check finds the context */
extern void aa_access_enter(struct QueryDesc *qd);
extern void aa_access_leave(void);
/* the receiver an ExecutorRun sends to: the rows of a plan that keeps
 * protected rows are checked as they are sent */
extern struct _DestReceiver *aa_access_output_dest(struct QueryDesc *qd,
												   struct _DestReceiver *dest);
/* after each ExecutorRun, and at ExecutorEnd: the records, then the wait */
extern void aa_access_run_done(struct QueryDesc *qd);
extern void aa_access_end(struct QueryDesc *qd);
/* a statement on protected tables is running (not a suspended cursor) */
extern bool aa_access_statement_running(void);

/* ---------------------------------------------------------------------
 * consent.c -- consent and default decisions, cached per backend
 * ---------------------------------------------------------------------
 */
/* why a decision permits or refuses */
typedef enum AADecisionReason
{
	AA_DECIDE_PERMIT,			/* consents and defaults permit every class */
	AA_DECIDE_BREAK_GLASS,		/* an override of this session permits */
	AA_DECIDE_NO_SESSION,
	AA_DECIDE_NOT_IN_TOKEN,		/* the patient is not in the token's list */
	AA_DECIDE_NO_CLASS_IN_SCOPE,
	/* refusals that name their action */
	AA_DECIDE_DENIED_BY_CONSENT,	/* of data_class, by consent */
	AA_DECIDE_DENIED_BY_DEFAULT,	/* of data_class, by default_rule */
	AA_DECIDE_NOTHING_PERMITS,	/* nothing permits data_class */
	AA_DECIDE_NOTHING_PERMITS_ANY	/* nothing permits any class (anyof) */
} AADecisionReason;

typedef struct AADecision
{
	bool		permit;
	bool		btg;			/* by break-the-glass */
	AADecisionReason reason;
	int			action;			/* AA_ACT_* asked for */
	const char *data_class;		/* the class refused */
	const char *consent;		/* the consent that refused it */
	const char *default_rule;	/* the default that refused it: purpose/class */
	const char *break_glass;	/* the override that permits (uuid text) */
	List	   *consents;		/* the consents that permit (char *) */
	List	   *defaults;		/* the defaults that permit: purpose/class */
	Jsonb	   *authority;		/* all of it, as its records' authority */
	char	   *authority_canon;	/* its canonical text (kept decisions
									 * only; else NULL) */
	int			authority_canon_len;
} AADecision;

/*
 * Decide (SPEC 7) for this session whether the patient may be touched with
 * every one of the classes (or, anyof, at least one) for the action
 * (AA_ACT_*).  Includes the token's patient list.  The result is palloc'd
 * in the current memory context.
 */
extern void aa_consent_decide(const char *patient, int nclasses,
							  char **classes, bool anyof, int action,
							  AADecision *result);
/* the authority of a record of d, naming the approval consumed (or NULL) */
extern Jsonb *aa_decision_authority(const AADecision *d, const char *approval);
/* d as JSON text, for messages */
extern char *aa_decision_text(const AADecision *d);
/*
 * A number that moves whenever a cached decision may have changed (the row
 * check's test, on every row).  The common case inline: when nothing but
 * the two counters and the session can move it (no period boundary ahead,
 * the cache valid), it has not moved while they have not;
 * aa_decision_gen_recheck() decides every other case.
 */
typedef struct AADecisionGenState
{
	bool		quick;			/* the test below is the whole test */
	uint64		gen;			/* the counters the cache was built at */
	uint64		consent_gen;
	const AASession *session;	/* and the session, by pointer and id */
	pg_uuid_t	session_id;
	uint64		value;
} AADecisionGenState;

extern AADecisionGenState aa_dgen_state;
extern uint64 aa_decision_gen_recheck(void);

static inline uint64
aa_decision_gen(void)
{
	const AADecisionGenState *st = &aa_dgen_state;

	if (likely(st->quick &&
			   aa_generation() == st->gen &&
			   aa_consent_generation() == st->consent_gen &&
			   aa_session == st->session &&
			   (aa_session == NULL ||
				memcmp(&aa_session->id, &st->session_id, sizeof(pg_uuid_t)) == 0)))
		return st->value;
	return aa_decision_gen_recheck();
}

/*
 * Decisions kept across statements: a question (classes, anyof, action)
 * numbered once; the decision for a patient and question, or NULL where
 * it is not kept (decide with aa_consent_decide()).  *pin names the memory
 * it is in: a statement that keeps the pointer pins it once
 * (aa_consent_pin()) and unpins it when it ends.
 */
extern int	aa_consent_question(int nclasses, char **classes, bool anyof,
								int action);
extern const AADecision *aa_consent_decide_kept(const char *patient,
												int question, void **pin);
extern void aa_consent_pin(void *pin);
extern void aa_consent_unpin(void *pin);
/* consent.c, for consent_kept.c: the cache's resets, an entry, a decision */
extern uint64 aa_consent_cache_epoch(void);
extern void **aa_consent_kept_slot(const char *patient, List **provisions);
extern void aa_consent_decide_on(List *provisions, int nclasses,
								 char **classes, bool anyof, int action,
								 AADecision *result);
/* decision.c: d as its records' authority, and as text for messages */
extern Jsonb *aa_decision_build_authority(const AADecision *d,
										  const char *approval,
										  StringInfo text);

/* ---------------------------------------------------------------------
 * consent_sql.c -- explain_access(), the consent and generation triggers
 * ---------------------------------------------------------------------
 */

/* ---------------------------------------------------------------------
 * patient_id.c -- a patient id given by hand (consent, break-the-glass,
 * approvals, explain_access): one that a protected table's patient
 * column could hold as written, or 22023
 * ---------------------------------------------------------------------
 */
extern void aa_patient_id_check(const char *id);
extern bool aa_patient_type_stable(Oid typid);

/* ---------------------------------------------------------------------
 * btg.c -- break-the-glass overrides and clinician approvals
 * ---------------------------------------------------------------------
 */
/* the active override of the current session for this patient, or NULL */
extern const AABreakGlass *aa_btg_active_for(const char *patient);

/*
 * An agent write to a table under require_approval: consume one use of an
 * unexpired approval for (session agent, relid, patient, action), storing
 * its id in *approval; when there is none, record *denied (the caller's
 * denied record of the write) and raise 42501.
 */
extern void aa_approval_consume(Oid relid, const char *patient,
								const char *action, pg_uuid_t *approval,
								const AARecord *denied);

/*
 * Bring aa_session->nbreak_glass/break_glass up to date (loaded lazily, only
 * in a session that broke the glass), dropping expired overrides: for
 * whoami() and explain_access().
 */
extern void aa_btg_refresh(void);

/*
 * At _PG_init: the end of a session (end_session, or a new session
 * replacing it) marks its open overrides ended and audits break_glass_end.
 */
extern void aa_btg_init(void);

/* ---------------------------------------------------------------------
 * monitor_signal.c -- what backends tell the monitor, in shared memory
 * ---------------------------------------------------------------------
 */
extern Size aa_monitor_shmem_size(void);
extern void aa_monitor_shmem_startup(void);

/* backends: a statement failing closed, a chain verification failing */
extern void aa_monitor_fail_closed(const char *what);
extern void aa_monitor_chain_failure(int64 first_bad_seq, const char *problem);

#define AA_MONITOR_WHAT_LEN		32
#define AA_MONITOR_PROBLEM_LEN	200

/* signals not yet taken by the writer: counts, and the last of each */
typedef struct AAMonitorSignals
{
	uint64		fail_closed;	/* statements refused */
	TimestampTz fail_closed_at;
	Oid			fail_closed_role;
	char		fail_closed_what[AA_MONITOR_WHAT_LEN];
	uint64		chain_failed;	/* verifications that found a problem */
	TimestampTz chain_failed_at;
	Oid			chain_failed_role;
	int64		chain_first_bad;
	char		chain_problem[AA_MONITOR_PROBLEM_LEN];
} AAMonitorSignals;

/* the writer's side */
extern bool aa_monitor_signals_ready(void);
extern uint64 aa_monitor_rules_gen(void);
extern bool aa_monitor_signals_pending(void);

/*
 * last_session.c -- principals' last_session_at, kept by the audit writer
 * from the session_begin records it stores
 */
extern void aa_last_session_note(const pg_uuid_t *principal);
extern bool aa_last_session_pending(void);
extern void aa_last_session_store(void);
extern uint64 aa_inactive_agents(void);
extern char *aa_principal_role(const pg_uuid_t *id);
extern void aa_monitor_take_signals(AAMonitorSignals *out);
/* the status view: statements failed closed since the server started */
extern uint64 aa_monitor_fail_closed_count(TimestampTz *last_at);

/* ---------------------------------------------------------------------
 * monitor.c -- alert rules evaluated by the audit writer
 * ---------------------------------------------------------------------
 */
extern void aa_monitor_init(void);

/*
 * The audit writer's side.  aa_monitor_observe(): for every record of a
 * batch, with the row inserted into agentauth.audit_log (values/nulls
 * indexed by AAAuditColumn, seq and logged_at set) and the statement it
 * belongs to (AAQueueEntry.statement); memory only, no catalog access.
 * aa_monitor_after_commit(): once per round of the writer's loop, outside
 * any transaction, after the batch committed: raises the alerts found, in a
 * transaction of its own; reloads rules; checks inactive agents every
 * agentauth.head_log_interval.
 */
extern void aa_monitor_observe(const Datum *values, const bool *nulls,
							   uint64 statement);
extern void aa_monitor_after_commit(void);

/* ---------------------------------------------------------------------
 * status.c -- agentauth._status(), behind the view agentauth.status: the
 * audit writer's health in one row (audit_queue.c, monitor_signal.c)
 * ---------------------------------------------------------------------
 */
typedef struct AAWriterStatus
{
	TimestampTz now;			/* when it was read */
	AAWriterState state;
	TimestampTz unable_since;	/* 0: able */
	pid_t		writer_pid;		/* 0: no writer attached */
	TimestampTz writer_started_at;
	uint64		queue_used;		/* bytes queued, not yet committed */
	Size		queue_capacity; /* bytes */
	TimestampTz oldest_at;		/* oldest record not committed; 0: none */
	uint64		records_written;	/* since the server started */
	uint64		records_recent; /* in the last AA_RATE_SECONDS */
	int64		last_seq;		/* the newest record in the log */
	TimestampTz last_written_at;	/* 0: none written since start */
	bool		head_logged;	/* the three below are set */
	int64		head_seq;		/* the head last written to the server log */
	unsigned char head_hash[AA_HASH_LEN];
	TimestampTz head_logged_at;
} AAWriterStatus;

#endif							/* AGENTAUTH_H */
