/*-------------------------------------------------------------------------
 *
 * aa_bench_driver.c
 *		Benchmark driver for the audit path (not part of the extension, not
 *		installed by it): aa_bench_emit(n, per_statement) emits n access
 *		records through aa_audit_emit(), calling aa_audit_wait() after every
 *		per_statement records, as the row check does at the end of each
 *		executor run.  Loaded into a server that preloads agentauth, whose
 *		symbols it uses.  aa_bench_row_true() is the do-nothing row check of
 *		the floor variant (plain_rls).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "agentauth.h"

PG_MODULE_MAGIC;

#define BENCH_PATIENTS	10000

static Jsonb **authorities = NULL;

/* splitmix64's finalizer: 64 bits that look random, from k */
static uint64
mix64(uint64 x)
{
	x += UINT64CONST(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64CONST(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64CONST(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

PG_FUNCTION_INFO_V1(aa_bench_emit);

Datum
aa_bench_emit(PG_FUNCTION_ARGS)
{
	int64		n = PG_GETARG_INT64(0);
	int64		per = PG_GETARG_INT64(1);
	static const char *cols[] = {"patient_id", "value", "taken_at"};
	static const char *classes[] = {"lab"};
	char		patient[32];
	AARecord	rec;

	memset(&rec, 0, sizeof(rec));
	rec.event = "access";
	rec.relation = "public.bench_labs";
	rec.ncolumns = 3;
	rec.columns = cols;
	rec.nclasses = 1;
	rec.classes = classes;
	rec.action = "read";
	rec.outcome = "permit";
	rec.patient = patient;
	/*
	 * Each patient's own consent, as a cohort query over consenting
	 * patients has them (the record takes the authority as a Jsonb): the
	 * authorities differ from patient to patient, as they do in real
	 * statements, so that audit storage is measured honestly.
	 */
	if (authorities == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		authorities = palloc(sizeof(Jsonb *) * BENCH_PATIENTS);
		for (int k = 0; k < BENCH_PATIENTS; k++)
		{
			char		json[96];

			/*
			 * 128 bits that look random (splitmix64 of k), in uuid_out's
			 * form, as gen_random_uuid() makes consent ids: an id with a
			 * shared prefix and zeros would compress as no real one does
			 */
			uint64		h1 = mix64((uint64) k * 2 + 1);
			uint64		h2 = mix64((uint64) k * 2 + 2);

			snprintf(json, sizeof(json),
					 "{\"consents\": [\"%08x-%04x-%04x-%04x-%04x%08x\"]}",
					 (unsigned) (h1 >> 32), (unsigned) (h1 >> 16) & 0xffff,
					 (unsigned) h1 & 0xffff, (unsigned) (h2 >> 48),
					 (unsigned) (h2 >> 32) & 0xffff, (unsigned) h2);
			authorities[k] = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
		}
		MemoryContextSwitchTo(old);
	}
	rec.statement = aa_audit_new_statement();
	for (int64 i = 0; i < n; i++)
	{
		snprintf(patient, sizeof(patient), "P" INT64_FORMAT, i % BENCH_PATIENTS);
		rec.row_count = 1 + i % 7;
		rec.authority = authorities[i % BENCH_PATIENTS];
		aa_audit_emit(&rec, false);
		if ((i + 1) % per == 0)
		{
			aa_audit_wait();
			rec.statement = aa_audit_new_statement();	/* the next statement */
		}
		CHECK_FOR_INTERRUPTS();
	}
	aa_audit_wait();
	PG_RETURN_INT64(n);
}

PG_FUNCTION_INFO_V1(aa_bench_row_true);

/*
 * aa_bench_row_true(relid oid, patient text, cmd text) RETURNS boolean:
 * the row check of the benchmark's floor variant (plain_rls, bench/run.sh),
 * with agentauth._row_check's arguments and declaration, doing nothing but
 * refusing a row without a patient: what PostgreSQL's row security costs
 * for a policy that calls a C function on every row, before any decision.
 */
Datum
aa_bench_row_true(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!PG_ARGISNULL(1));
}
