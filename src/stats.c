/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Plan and statistics outputs: nothing that carries statistics of a
 *		protected table -- plan estimates, row counts of a run, access
 *		counters, planner statistics -- tells a role held to the row check
 *		what the rows it may not read contain.
 *
 *		EXPLAIN (utility.c calls aa_stats_utility_begin/_end around every
 *		utility statement):
 *		- in a session, EXPLAIN ANALYZE and EXPLAIN (BUFFERS) are refused
 *		  (their counts include the rows the row check withholds: "Rows
 *		  Removed by Filter", loops, buffers), and so is EXPLAIN EXECUTE of
 *		  a prepared statement on a protected table (its plan may have been
 *		  made with the table's statistics); plain EXPLAIN gets the column
 *		  check of the statement (columns.c);
 *		- while EXPLAIN plans (or debug_print_plan is on), the planner is
 *		  given no statistics (pg_statistic, extended statistics, average
 *		  widths) of a protected table hidden from the role: in a session
 *		  always, outside one unless the role bypasses row security.
 *		  Estimates then come from the relation's size alone.  Other
 *		  relations keep their statistics: whoever may plan over them may
 *		  read their rows.
 *
 *		Statistics functions: in a session a statement that calls a function
 *		named pg_stat* (the pg_stat_get_* counters behind pg_stat_*_tables,
 *		_indexes, pg_statio_*, pg_stat_xact_*, pg_stat_database, and
 *		pg_stat_statements) or one that shows the server's write activity
 *		(the WAL position, the transaction counter, relation sizes:
 *		activity_functions) is refused at planning (planner_hook), and so
 *		is it outside a session to a registered principal's login; when a
 *		plan made outside a session calls one, the next session makes every
 *		cached plan again (ResetPlanCache), and so refuses it.
 *		pg_stats, pg_stats_ext and pg_stats_ext_exprs already show nothing
 *		of a table under row security, and pg_statistic is for superusers.
 *
 *		Access counters: the read counters (scans, tuples returned and
 *		fetched, blocks fetched and hit) that a session's statements add to protected
 *		tables, their indexes and TOAST are dropped at the end of each
 *		statement and of the transaction, before they are published: no
 *		later reader of pg_stat_* (in or out of a session, in any backend)
 *		sees what an index probe touched behind the row check.
 *
 *		Messages: in a session no LOG or DEBUG message reaches the client
 *		(auto_explain's plans, debug_print_plan, log_planner_stats ...):
 *		they go to the server log only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_statistic.h"
#include "catalog/pg_statistic_ext_data.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/prepare.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/plancat.h"
#include "optimizer/planner.h"
#include "pgstat.h"
#include "utils/elog.h"
#include "utils/json.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/pgstat_internal.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/selfuncs.h"

#include "agentauth.h"

static planner_hook_type prev_planner = NULL;
static get_relation_info_hook_type prev_relation_info = NULL;
static get_relation_stats_hook_type prev_relation_stats = NULL;
static get_index_stats_hook_type prev_index_stats = NULL;
static get_attavgwidth_hook_type prev_attavgwidth = NULL;
static ExecutorStart_hook_type prev_start = NULL;
static ExecutorRun_hook_type prev_run = NULL;
static ExecutorEnd_hook_type prev_end = NULL;
static emit_log_hook_type prev_emit_log = NULL;

/* EXPLAIN statements under way in this backend */
static int	explain_depth = 0;

/* the session the plan cache was last checked for */
static bool seen_session = false;
static pg_uuid_t seen_session_id;

/*
 * A plan was made outside a session, since the plan cache was last reset,
 * over a statement that calls a statistics function: one a session must
 * not run.  Only then does a new session make every cached plan again.
 */
static bool stats_plans_cached = false;

/* relations whose read counters a session's statements touched */
static Oid *counted = NULL;
static int	ncounted = 0;
static int	maxcounted = 0;

/* ------------------------------------------------------------------
 * EXPLAIN
 * ------------------------------------------------------------------
 */

static void
refuse(const char *what, const char *detail)
{
	StringInfoData d;

	initStringInfo(&d);
	appendStringInfoString(&d, "{\"reason\": ");
	escape_json(&d, what);
	appendStringInfoChar(&d, '}');
	aa_audit_statement("denied", "deny", NULL, aa_action_name(AA_ACT_READ),
					   0, NULL, d.data, false);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s is not allowed in an agentauth session", what),
			 errdetail("%s", detail),
			 errhint("Use plain EXPLAIN: it shows the plan, with estimates from the size of each table only.")));
}

/* the prepared statement an EXPLAIN [CREATE TABLE AS] EXECUTE runs, or NULL */
static ExecuteStmt *
explained_execute(ExplainStmt *es)
{
	Node	   *q = es->query;

	if (q != NULL && IsA(q, Query) && ((Query *) q)->commandType == CMD_UTILITY)
		q = ((Query *) q)->utilityStmt;
	if (q != NULL && IsA(q, CreateTableAsStmt))
	{
		q = ((CreateTableAsStmt *) q)->query;
		if (q != NULL && IsA(q, Query) && ((Query *) q)->commandType == CMD_UTILITY)
			q = ((Query *) q)->utilityStmt;
	}
	return (q != NULL && IsA(q, ExecuteStmt)) ? (ExecuteStmt *) q : NULL;
}

static bool
touches_protected(List *relids)
{
	ListCell   *lc;

	foreach(lc, relids)
		if (aa_protected_rel(lfirst_oid(lc)) != NULL)
			return true;
	return false;
}

void
aa_stats_utility_begin(Node *stmt)
{
	ExplainStmt *es;
	ExecuteStmt *ex;
	ListCell   *lc;

	if (!IsA(stmt, ExplainStmt))
		return;
	es = (ExplainStmt *) stmt;

	if (aa_session != NULL)
	{
		foreach(lc, es->options)
		{
			DefElem    *opt = lfirst(lc);

			if (strcmp(opt->defname, "analyze") == 0 && defGetBoolean(opt))
				refuse("EXPLAIN ANALYZE",
					   "Its row counts, loops and buffers include the rows the row check withholds.");
			if (strcmp(opt->defname, "buffers") == 0 && defGetBoolean(opt))
				refuse("EXPLAIN (BUFFERS)",
					   "Its buffer counts include the pages of rows the row check withholds.");
		}
	}

	ex = explained_execute(es);
	if (ex != NULL && (aa_session != NULL || !aa_role_bypasses_rls(GetUserId()) ||
					   aa_login_is_principal()))
	{
		PreparedStatement *ps = FetchPreparedStatement(ex->name, false);

		if (ps != NULL && touches_protected(ps->plansource->relationOids))
		{
			if (aa_session != NULL)
				refuse("EXPLAIN EXECUTE",
					   "The prepared statement's plan may have been made with the statistics of a protected table.");
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("EXPLAIN EXECUTE of a prepared statement on a protected table is not allowed"),
					 errdetail("The prepared statement's plan may have been made with the statistics of a protected table."),
					 errhint("Use plain EXPLAIN of the statement itself.")));
		}
	}
	explain_depth++;
}

void
aa_stats_utility_end(Node *stmt)
{
	if (IsA(stmt, ExplainStmt) && explain_depth > 0)
		explain_depth--;
}

/* ------------------------------------------------------------------
 * Planner statistics, hidden while a plan is shown
 *
 * Only then: the plan a statement runs with is made with the statistics,
 * as PostgreSQL makes it under row security, and its shape -- a join's
 * order shows in the order of its rows -- depends on the withheld rows as
 * its timing does (README, "Security model and known limits").  Hidden
 * from every plan (tried in 1.1 after a review), an agent's point lookup
 * was planned for 5,000 of a patient's 100 rows, a bitmap scan at 1.3-1.5
 * times the CPU; keeping only the columns' counts estimated a BETWEEN at
 * one row, which breaks joins.
 * ------------------------------------------------------------------
 */

static bool
stats_hidden(Oid relid)
{
	if (explain_depth == 0 && !Debug_print_plan)
		return false;
	if (!IsTransactionState())
		return false;
	if (aa_protected_rel(relid) == NULL)
		return false;			/* its rows are readable as they are */
	if (aa_session != NULL)
		return true;
	/* a principal's login sees none, whatever role it acts as */
	return !aa_role_bypasses_rls(GetUserId()) || aa_login_is_principal();
}

/*
 * A principal's login acting as a role that bypasses row security: pg_stats
 * (its filter, row_security_active(), applied as the plan runs) shows it
 * the values of protected tables' rows (an outside review of 1.1).
 * Checked where every plan starts (EXPLAIN's too), and where it runs: a
 * plan made before a SET ROLE (a prepared statement, a function's cached
 * plan) starts after it, a cursor opened before it is fetched after it.
 * The extension's own queries run as the bootstrap superuser and read no
 * statistics.
 */
static bool
statistics_as_bypass(void)
{
	Oid			uid = GetUserId();

	return uid != BOOTSTRAP_SUPERUSERID && IsTransactionState() &&
		aa_login_is_principal() && aa_role_bypasses_rls(uid);
}

static void
refuse_statistics(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("a principal's login may not read planner statistics as role \"%s\"",
					GetUserNameFromId(GetUserId(), false)),
			 errdetail("The role bypasses row security, so pg_stats would show values of protected tables' rows."),
			 errhint("Read statistics from a login that is no principal's.")));
}

static bool
plan_reads_statistics(PlannedStmt *ps)
{
	ListCell   *lc;

	foreach(lc, ps->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind == RTE_RELATION &&
			(rte->relid == StatisticRelationId || rte->relid == StatisticExtDataRelationId))
			return true;
	}
	return false;
}

static void
aa_relation_info(PlannerInfo *root, Oid relid, bool inhparent, RelOptInfo *rel)
{
	if (prev_relation_info)
		prev_relation_info(root, relid, inhparent, rel);
	if (stats_hidden(relid))
		rel->statlist = NIL;	/* extended statistics */
}

static bool
aa_relation_stats(PlannerInfo *root, RangeTblEntry *rte, AttrNumber attnum,
				  VariableStatData *vardata)
{
	if (rte->rtekind == RTE_RELATION && stats_hidden(rte->relid))
	{
		vardata->statsTuple = NULL;
		vardata->freefunc = NULL;
		return true;
	}
	if (prev_relation_stats)
		return prev_relation_stats(root, rte, attnum, vardata);
	return false;
}

static bool
aa_index_stats(PlannerInfo *root, Oid indexoid, AttrNumber attnum,
			   VariableStatData *vardata)
{
	if (stats_hidden(IndexGetRelation(indexoid, false)))
	{
		vardata->statsTuple = NULL;
		vardata->freefunc = NULL;
		return true;
	}
	if (prev_index_stats)
		return prev_index_stats(root, indexoid, attnum, vardata);
	return false;
}

/* the average width of the column's type, not the one measured */
static int32
aa_attavgwidth(Oid relid, AttrNumber attnum)
{
	if (attnum > 0 && stats_hidden(relid))
	{
		Oid			typid;
		int32		typmod;
		Oid			collid;

		get_atttypetypmodcoll(relid, attnum, &typid, &typmod, &collid);
		return get_typavgwidth(typid, typmod);
	}
	if (prev_attavgwidth)
		return prev_attavgwidth(relid, attnum);
	return 0;
}

/* ------------------------------------------------------------------
 * Statistics functions, refused in a session
 * ------------------------------------------------------------------
 */

/*
 * What tells of the server's write activity: the audit writer's too, whose
 * work follows what a statement's conditions matched among the rows
 * withheld from it (access_run.c, flush_untouched: every statement leaves
 * a record, but not records of one size).
 */
static const char *const activity_functions[] = {
	"pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn",
	"pg_last_wal_receive_lsn", "pg_last_wal_replay_lsn",
	"pg_relation_size", "pg_table_size", "pg_indexes_size",
	"pg_total_relation_size", "pg_database_size", "pg_tablespace_size",
	"pg_current_snapshot", "txid_current_snapshot", "pg_current_xact_id",
	"pg_current_xact_id_if_assigned", "txid_current", "txid_current_if_assigned",
	"pg_last_committed_xact", "pg_xact_commit_timestamp",
	"pg_xact_commit_timestamp_origin", "pg_control_checkpoint",
	"pg_logical_emit_message", "pg_xact_status", "txid_status", "mxid_age",
	"pg_get_replication_slots",
	NULL
};

static bool
is_stats_function(Oid funcid, void *context)
{
	char	   *name = get_func_name(funcid);

	if (name == NULL)
		return false;
	if (strncmp(name, "pg_stat", 7) == 0)
		return true;
	for (int i = 0; activity_functions[i] != NULL; i++)
		if (strcmp(name, activity_functions[i]) == 0)
			return true;
	/* age(xid): the transaction counter, as a distance */
	if (strcmp(name, "age") == 0)
	{
		Oid		   *argtypes;
		int			nargs;

		(void) get_func_signature(funcid, &argtypes, &nargs);
		return nargs == 1 && argtypes[0] == XIDOID;
	}
	return false;
}

/*
 * A utility statement of a principal's login that names one of them
 * (utility.c, with the statement's text).  What a utility statement holds
 * is evaluated without being planned -- EXECUTE's parameters, CALL's
 * arguments -- or kept to be evaluated so later (a domain's CHECK, a
 * column's default or generation expression, an index expression, a
 * function's body that the planner inlines there): a review's agent read
 * pg_stat_get_wal() through EXECUTE's parameter.  Refused by name, as the
 * statement's text spells it (any case; a name built at run time by
 * dynamic SQL arrives here, or at the planner, spelled out).
 */
static bool
text_names(const char *text, int len, const char *name)
{
	int			n = strlen(name);

	for (int i = 0; i + n <= len; i++)
	{
		if (pg_strncasecmp(text + i, name, n) != 0)
			continue;
		/* a whole identifier, or the prefix pg_stat_ */
		if (i > 0 && (isalnum((unsigned char) text[i - 1]) || text[i - 1] == '_'))
			continue;
		if (strcmp(name, "pg_stat_") == 0 || i + n == len ||
			!(isalnum((unsigned char) text[i + n]) || text[i + n] == '_'))
			return true;
	}
	return false;
}

void
aa_stats_utility_text(Node *stmt, const char *query, int location, int len)
{
	if (query == NULL || IsA(stmt, TransactionStmt) || IsA(stmt, VariableSetStmt) ||
		!IsTransactionState())
		return;
	if (location < 0)
		location = 0;
	if (len <= 0)
		len = strlen(query + location);
	query += location;
	for (int i = -1; activity_functions[i < 0 ? 0 : i] != NULL; i++)
	{
		const char *name = i < 0 ? "pg_stat_" : activity_functions[i];

		if (!text_names(query, len, name))
			continue;
		if (!aa_extension_ready() || !aa_login_is_principal())
			return;
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("statistics functions are not allowed to a registered principal's login"),
				 errdetail("The statement names %s, which shows what the audit writer recorded of the rows the row check withholds.",
						   name),
				 errhint("Read them as a monitoring role that is not a principal.")));
	}
}

/*
 * Plans made before the session began were not checked for it: the first
 * hook to see a new session makes every cached plan be made again when one
 * made outside a session calls a statistics function.  Every other plan
 * already passed the check a session's planning makes (the same walk over
 * the same query): making them all again for each session cost a pooled
 * backend that begins a session per transaction most of its replanning
 * (bench/README.md).  True when this call saw a new session.
 */
static bool
check_session_changed(void)
{
	if (aa_session == NULL)
	{
		seen_session = false;
		return false;
	}
	if (seen_session && memcmp(&seen_session_id, &aa_session->id, sizeof(pg_uuid_t)) == 0)
		return false;
	seen_session = true;
	seen_session_id = aa_session->id;
	if (stats_plans_cached)
	{
		stats_plans_cached = false;
		ResetPlanCache();
	}
	return true;
}

static PlannedStmt *
aa_planner(Query *parse, const char *query_string, int cursorOptions,
		   ParamListInfo boundParams)
{
	PlannedStmt *ps;

	aa_owner_code_plan(parse);
	if (aa_session == NULL)
	{
		bool		stats = aa_query_calls((Node *) parse, is_stats_function);

		/*
		 * A principal's login reads them in no session either: a second
		 * connection of an agent's watched what its first one's probes
		 * made the audit writer do (1.1, found by review).
		 */
		if (stats && aa_extension_ready() && aa_login_is_principal())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("statistics functions are not allowed to a registered principal's login"),
					 errdetail("Access counters, the WAL position, the transaction counter and relation sizes show what the audit writer recorded of the rows the row check withholds."),
					 errhint("Read them as a monitoring role that is not a principal.")));
		/* a plan a later session must make again, and refuse */
		if (!stats_plans_cached && (stats || aa_other_code_plan(parse)))
			stats_plans_cached = true;
	}
	else
	{
		check_session_changed();
		aa_other_code_plan(parse);
		if (aa_query_calls((Node *) parse, is_stats_function))
		{
			aa_audit_statement("denied", "deny", NULL, aa_action_name(AA_ACT_READ),
							   0, NULL, "{\"reason\": \"statistics function\"}", false);
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("statistics functions are not allowed in an agentauth session"),
					 errdetail("Access counters and statement statistics (pg_stat_*, pg_statio_*, pg_stat_statements) count the rows the row check withholds; the WAL position, the transaction counter and relation sizes show what the audit writer recorded of them."),
					 errhint("Read them outside the session, as a monitoring role.")));
		}
	}
	/*
	 * a view's defaults an INSERT writes are inserted columns -- in a
	 * session or not: a plan made before a session began runs in it (1.1,
	 * found by review), and a privileged write's record names them
	 */
	aa_written_plan(parse);
	if ((cursorOptions & CURSOR_OPT_PARALLEL_OK) && !aa_policy_parallel_ok(parse))
		cursorOptions &= ~CURSOR_OPT_PARALLEL_OK;
	if (prev_planner)
		ps = prev_planner(parse, query_string, cursorOptions, boundParams);
	else
		ps = standard_planner(parse, query_string, cursorOptions, boundParams);
	/* the row check before any condition that could fail (policy.c) */
	aa_policy_order_plan(ps);
	return ps;
}

/* ------------------------------------------------------------------
 * Access counters of a session's reads, dropped before they are published
 * ------------------------------------------------------------------
 */

static void
remember_counted(Oid relid)
{
	if (!OidIsValid(relid))
		return;
	for (int i = 0; i < ncounted; i++)
		if (counted[i] == relid)
			return;
	if (ncounted == maxcounted)
	{
		/* the new size noted once the memory is there */
		int			n = maxcounted ? maxcounted * 2 : 16;

		counted = counted ?
			repalloc(counted, sizeof(Oid) * n) :
			MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * n);
		maxcounted = n;
	}
	counted[ncounted++] = relid;
}

/* the protected tables of the statement, their indexes and TOAST */
static void
remember_statement(PlannedStmt *ps)
{
	ListCell   *lc;

	foreach(lc, ps->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		Relation	rel;
		List	   *indexes;
		ListCell   *lc2;
		Oid			toast;

		/*
		 * Every table the session reads, not the protected ones only: which
		 * of them a statement scanned, and how often, can follow the rows it
		 * read (a view's scalar subquery on one of 200 tables chosen by a
		 * heart rate; found by review).
		 */
		if (rte->rtekind != RTE_RELATION ||
			(rte->relkind != RELKIND_RELATION && rte->relkind != RELKIND_MATVIEW))
			continue;
		remember_counted(rte->relid);
		rel = RelationIdGetRelation(rte->relid);
		if (!RelationIsValid(rel))
			continue;
		indexes = RelationGetIndexList(rel);
		toast = rel->rd_rel->reltoastrelid;
		RelationClose(rel);
		foreach(lc2, indexes)
			remember_counted(lfirst_oid(lc2));
		if (OidIsValid(toast))
		{
			remember_counted(toast);
			rel = RelationIdGetRelation(toast);
			if (RelationIsValid(rel))
			{
				indexes = RelationGetIndexList(rel);
				RelationClose(rel);
				foreach(lc2, indexes)
					remember_counted(lfirst_oid(lc2));
			}
		}
	}
}

#if PG_VERSION_NUM >= 160000
#define COUNT(ts, f) ((ts)->counts.f)
#else
#define COUNT(ts, f) ((ts)->t_counts.t_##f)
#endif

/*
 * What the scans returned and touched goes, and so does the number of
 * scans: it tells which plan ran (a sequential scan or an index's), and
 * the planner chose it from statistics of every row, those withheld
 * included (1.1: a probe for a value common among withheld rows moved
 * seq_scan, one for a rare value idx_scan).
 */
static void
drop_counted(bool forget)
{
	for (int i = 0; i < ncounted; i++)
	{
		PgStat_EntryRef *ref = pgstat_fetch_pending_entry(PGSTAT_KIND_RELATION,
														  MyDatabaseId, counted[i]);
		PgStat_TableStatus *ts;

		if (ref == NULL || ref->pending == NULL)
			continue;
		ts = (PgStat_TableStatus *) ref->pending;
		COUNT(ts, numscans) = 0;
		COUNT(ts, tuples_returned) = 0;
		COUNT(ts, tuples_fetched) = 0;
		COUNT(ts, blocks_fetched) = 0;
		COUNT(ts, blocks_hit) = 0;
	}
	if (forget)
		ncounted = 0;
}

static void
stats_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			if (ncounted > 0)
				drop_counted(true);
			break;
		default:
			break;
	}
}

static void
aa_stats_executor_start(QueryDesc *qd, int eflags)
{
	/*
	 * Seen first here, not when the statement that began the session ended
	 * nor when a statement was planned since: this plan was made before.
	 */
	if (check_session_changed())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("statement was planned before the agentauth session began"),
				 errdetail("The session began while another statement was still running."),
				 errhint("Run the statement again.")));
	if (aa_session != NULL && !IsParallelWorker() && IsTransactionState())
		remember_statement(qd->plannedstmt);
	if (aa_session == NULL && statistics_as_bypass() && plan_reads_statistics(qd->plannedstmt))
		refuse_statistics();
	/* the row check before parameters fetched row by row (policy.c) */
	aa_policy_order_run(qd->plannedstmt, qd->params);
	if (prev_start)
		prev_start(qd, eflags);
	else
		standard_ExecutorStart(qd, eflags);
}

/* a cursor opened before a SET ROLE and fetched after it */
static void
aa_stats_executor_run(QueryDesc *qd, ScanDirection direction, uint64 count,
					  bool execute_once)
{
	if (aa_session == NULL && statistics_as_bypass() && plan_reads_statistics(qd->plannedstmt))
		refuse_statistics();
	if (prev_run)
		prev_run(qd, direction, count, execute_once);
	else
		standard_ExecutorRun(qd, direction, count, execute_once);
}

static void
aa_stats_executor_end(QueryDesc *qd)
{
	if (prev_end)
		prev_end(qd);
	else
		standard_ExecutorEnd(qd);
	if (ncounted > 0)
		drop_counted(false);
	check_session_changed();
}

/* ------------------------------------------------------------------
 * Messages: in a session, LOG and DEBUG stay in the server log
 * ------------------------------------------------------------------
 */

static void
aa_stats_emit_log(ErrorData *edata)
{
	if (aa_session != NULL && edata->elevel < INFO)
		edata->output_to_client = false;
	if (prev_emit_log)
		prev_emit_log(edata);
}

void
aa_stats_init(void)
{
	prev_planner = planner_hook;
	planner_hook = aa_planner;
	prev_relation_info = get_relation_info_hook;
	get_relation_info_hook = aa_relation_info;
	prev_relation_stats = get_relation_stats_hook;
	get_relation_stats_hook = aa_relation_stats;
	prev_index_stats = get_index_stats_hook;
	get_index_stats_hook = aa_index_stats;
	prev_attavgwidth = get_attavgwidth_hook;
	get_attavgwidth_hook = aa_attavgwidth;
	prev_start = ExecutorStart_hook;
	ExecutorStart_hook = aa_stats_executor_start;
	prev_run = ExecutorRun_hook;
	ExecutorRun_hook = aa_stats_executor_run;
	prev_end = ExecutorEnd_hook;
	ExecutorEnd_hook = aa_stats_executor_end;
	prev_emit_log = emit_log_hook;
	emit_log_hook = aa_stats_emit_log;
	RegisterXactCallback(stats_xact_callback, NULL);
}
