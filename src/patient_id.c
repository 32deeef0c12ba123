/*-------------------------------------------------------------------------
 *
 * patient_id.c
 *		Patient ids given by hand: could a protected table's patient column
 *		ever hold this one?
 *
 *		The row check compares a row's patient as text: the column's value
 *		as its type prints it (policy.c; char(n) without its trailing
 *		blanks).  An id that no patient column prints -- '010000148' or
 *		'+7' where every patient column is an integer, an upper-case uuid
 *		-- would be accepted and then never match a row: a consent to deny
 *		would deny nothing.  agentauth._patient_id() refuses it (22023):
 *		record_consent, break_glass and approve_action (_check_patient) and
 *		explain_access call it.  With no table protected yet, every id
 *		passes.  Its errors name the id to the client only (redact.c), and
 *		so does agentauth._raise_naming_patient(), for the SQL functions.
 *
 *		The test reads the id with the input function of each patient
 *		column's base type (never a domain's CHECK: no code of the table's
 *		owner runs here) and prints it again; a data exception (22xxx) of
 *		the input function means "not a value of this type".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "agentauth.h"

typedef struct PatientType
{
	Oid			typid;			/* base type */
	int32		typmod;
} PatientType;

/*
 * The distinct (base type, typmod) of the protected tables' patient
 * columns, kept across calls (a bulk load checks every consent's id):
 * read again once the generation moves (protect_table, unprotect_table, a
 * label set or a protected table dropped, committed anywhere or made in
 * this transaction) or any relcache entry is invalidated here (a column's
 * type changed).  Read on the latest snapshot, after the counter: a
 * change committed meanwhile is in the list or moves the counter past it.
 */
static MemoryContext types_cxt = NULL;
static List *types_kept = NIL;
static uint64 types_gen = 0;
static uint64 types_invals = 0;	/* relcache invalidations seen when read */
static uint64 relcache_invals = 0;
static bool callback_registered = false;

static void
types_relcache_callback(Datum arg, Oid relid)
{
	relcache_invals++;
}

static List *
patient_types(void)
{
	static SPIPlanPtr plan = NULL;
	AASpiState	spi;
	List	   *types = NIL;
	MemoryContext cxt;
	uint64		gen = aa_generation();
	uint64		invals = relcache_invals;

	if (types_cxt != NULL && gen == types_gen && invals == types_invals)
		return types_kept;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(types_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	/* the transaction's until the list is whole */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "agentauth patient column types",
								ALLOCSET_SMALL_SIZES);

	aa_spi_begin(&spi, true);
	if (SPI_execute_plan(aa_spi_keep_plan(&plan, "SELECT DISTINCT a.atttypid, a.atttypmod "
					"  FROM pg_catalog.pg_seclabel s "
					"  JOIN pg_catalog.pg_attribute a "
					"    ON a.attrelid OPERATOR(pg_catalog.=) s.objoid "
					"   AND a.attname OPERATOR(pg_catalog.=) agentauth._label_patient_column(s.label) "
					" WHERE s.provider OPERATOR(pg_catalog.=) 'agentauth' "
					"   AND s.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
					"   AND s.objsubid OPERATOR(pg_catalog.=) 0 "
					"   AND NOT a.attisdropped", 0, NULL),
						 NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the patient columns of protected tables");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			typid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc,
														   1, &isnull));
		int32		typmod = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc,
														 2, &isnull));
		MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
		PatientType *t = palloc(sizeof(PatientType));

		t->typid = getBaseTypeAndTypmod(typid, &typmod);
		t->typmod = typmod;
		types = lappend(types, t);
		MemoryContextSwitchTo(oldcxt);
	}
	aa_spi_end(&spi);

	/* whole, or not at all: an error above leaves the old list unused */
	MemoryContextSetParent(cxt, TopMemoryContext);
	if (types_cxt != NULL)
		MemoryContextDelete(types_cxt);
	types_cxt = cxt;
	types_kept = types;
	types_gen = gen;
	types_invals = invals;
	return types;
}

/* what type_prints() tries in a subtransaction */
typedef struct PrintTry
{
	const PatientType *t;
	const char *id;
	bool		prints;
} PrintTry;

static void
print_try(void *arg)
{
	PrintTry   *p = (PrintTry *) arg;
	Oid			typinput;
	Oid			typioparam;
	Oid			typoutput;
	bool		varlena;
	Datum		d;
	char	   *out;

	getTypeInputInfo(p->t->typid, &typinput, &typioparam);
	getTypeOutputInfo(p->t->typid, &typoutput, &varlena);
	d = OidInputFunctionCall(typinput, (char *) p->id, typioparam, p->t->typmod);
	out = OidOutputFunctionCall(typoutput, d);
	if (p->t->typid == BPCHAROID)
	{
		int			len = strlen(out);

		while (len > 0 && out[len - 1] == ' ')
			out[--len] = '\0';
	}
	p->prints = strcmp(out, p->id) == 0;
}

/* does a value of this type print as id (char(n): without trailing blanks)? */
static bool
type_prints(const PatientType *t, const char *id)
{
	PrintTry	p = {t, id, false};
	ErrorData  *edata;

	/* text prints every id: no need to try */
	if (t->typid == TEXTOID || (t->typid == VARCHAROID && t->typmod < 0))
		return true;
	edata = aa_in_subtransaction(print_try, &p);
	if (edata == NULL)
		return p.prints;
	/* only "not a value of this type" is an answer */
	if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
		ReThrowError(edata);
	FreeErrorData(edata);
	return false;
}

/*
 * Refuse (22023) an id that no patient column of a protected table can
 * hold as it is written.
 */
/*
 * A character nobody sees: controls, format characters (Cf: zero width,
 * bidirectional controls, the Arabic and Egyptian format marks, shorthand
 * controls, tags), fillers (Hangul, Khitan, the Braille blank), variation
 * selectors, separators, the object replacement and unassigned specials,
 * private use.  PostgreSQL 15 has no Unicode category table to ask; these
 * are the code points of those kinds in Unicode 15.  The zero-width
 * joiner and non-joiner (U+200C, U+200D) are letters' business in Persian,
 * the Indic scripts and emoji: invisible_at lets them through between two
 * such letters only.
 */
static bool
invisible(pg_wchar c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0xad || c == 0x34f ||
		(c >= 0x600 && c <= 0x605) || c == 0x61c || c == 0x6dd || c == 0x70f ||
		c == 0x890 || c == 0x891 || c == 0x8e2 ||
		c == 0x115f || c == 0x1160 || c == 0x17b4 || c == 0x17b5 ||
		(c >= 0x180b && c <= 0x180f) || c == 0x200b || c == 0x200e || c == 0x200f ||
		(c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x206f) ||
		c == 0x2800 || c == 0x3164 || (c >= 0xe000 && c <= 0xf8ff) ||
		(c >= 0xfe00 && c <= 0xfe0f) || c == 0xfeff || c == 0xffa0 ||
		(c >= 0xfff0 && c <= 0xfffc) || c == 0x110bd || c == 0x110cd ||
		(c >= 0x13430 && c <= 0x1343f) || c == 0x16fe4 ||
		(c >= 0x1bca0 && c <= 0x1bca3) || (c >= 0x1d173 && c <= 0x1d17a) ||
		(c >= 0xe0000 && c <= 0xe0fff) || c >= 0xf0000;
}

/* a blank of another script than ASCII's (a no-break space, an ideographic space) */
static bool
blank(pg_wchar c)
{
	return c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
		c == 0x202f || c == 0x205f || c == 0x3000;
}

/* a combining mark, which shows only on the character before it */
static bool
combining(pg_wchar c)
{
	return (c >= 0x300 && c <= 0x36f) || (c >= 0x1ab0 && c <= 0x1aff) ||
		(c >= 0x1dc0 && c <= 0x1dff) || (c >= 0x20d0 && c <= 0x20ff) ||
		(c >= 0xfe20 && c <= 0xfe2f);
}

/*
 * Where an id has a character no patient id is written with and a reader
 * of a report cannot see or tell from another (an invisible one, a blank
 * of another script than ASCII's, a combining mark with nothing before
 * it): its byte offset, or -1; *blank_end says whether it begins or ends
 * with an ASCII blank.  Outside UTF-8, the single-byte controls only.
 */
static int
invisible_at(const char *id, bool *blank_end)
{
	const unsigned char *s = (const unsigned char *) id;
	int			len = strlen(id);
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;
	pg_wchar	prev = 0;

	*blank_end = len > 0 && (id[0] == ' ' || id[len - 1] == ' ');

	for (int i = 0; i < len;)
	{
		int			n = utf8 ? pg_utf_mblen(s + i) : 1;
		pg_wchar	c;

		if (i + n > len)
			n = len - i;
		c = (utf8 && n > 1) ? utf8_to_unicode(s + i) : s[i];
		if (utf8 ? (invisible(c) || blank(c) || (i == 0 && combining(c))) :
			(c < 0x20 || c == 0x7f))
			return i;

		/*
		 * The joiners only join: between two letters of a script that
		 * writes with them (Arabic and Persian, the Indic scripts, emoji
		 * sequences: nothing below U+0300), never at an end or beside a
		 * Latin letter, where they make an id look like another
		 */
		if (utf8 && (c == 0x200c || c == 0x200d))
		{
			pg_wchar	next = 0;

			if (i + n < len)
				next = (pg_utf_mblen(s + i + n) > 1) ? utf8_to_unicode(s + i + n) : s[i + n];
			if (prev < 0x300 || next < 0x300 || next == 0x200c || next == 0x200d ||
				invisible(next) || blank(next))
				return i;
		}
		prev = c;
		i += n;
	}
	return -1;
}

void
aa_patient_id_check(const char *id)
{
	List	   *types;
	StringInfoData names;
	ListCell   *lc;
	bool		blank_end;
	int			at;

	/*
	 * Whatever the columns' types: an id with a character nobody sees, or
	 * a blank at either end, is no patient's as a reader of the report
	 * takes it -- a consent for "P001 " denied nobody while it read as
	 * P001's opt-out (an outside review of 1.1).
	 */
	if ((at = invisible_at(id, &blank_end)) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("patient id has a control or invisible character, or a blank other than a space, at byte %d", at + 1),
				 aa_errdetail_patient(psprintf("Patient id \"%s\".", id), NULL),
				 errhint("A patient id is written with visible characters only, as the patient column holds it.")));
	if (blank_end)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("patient id begins or ends with a blank"),
				 aa_errdetail_patient(psprintf("Patient id \"%s\".", id), NULL),
				 errhint("Write the id as the patient column holds it, without surrounding blanks.")));

	types = patient_types();
	if (types == NIL)
		return;
	initStringInfo(&names);
	foreach(lc, types)
	{
		PatientType *t = lfirst(lc);
		char	   *name = format_type_with_typemod(t->typid, t->typmod);

		if (type_prints(t, id))
			return;
		if (strstr(names.data, name) == NULL)
			appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "", name);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("no protected patient column could hold this id"),
			 aa_errdetail_patient(psprintf("Patient id \"%s\" is not how a value of the protected tables' patient columns (%s) is written, so it would never match a row.",
										   id, names.data),
								  psprintf("The id is not how a value of the protected tables' patient columns (%s) is written, so it would never match a row",
										   names.data)),
			 errhint("Write the id as the column prints it (SELECT patient_column::text): an integer without leading zeros, sign or blanks; a uuid in lower case.")));
}

/*
 * agentauth._patient_id(patient text) RETURNS text: the id, or 22023.
 * NULL passes (the callers say what NULL means).
 */
PG_FUNCTION_INFO_V1(aa_patient_id);

Datum
aa_patient_id(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	aa_patient_id_check(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_DATUM(PG_GETARG_DATUM(0));
}

/*
 * Is the text form of a patient column of type typid the same in every
 * session?  The row check compares that text with the consents, the
 * token's patients and the records' patient: a type whose output follows
 * a setting the agent may SET -- bytea (bytea_output), the date and time
 * types (DateStyle, TimeZone, IntervalStyle), float (extra_float_digits),
 * money (lc_monetary) -- let an agent print a denied patient's id another
 * way, so that no deny matched it and its reads were recorded under an id
 * that patient's reports never name (1.1).  The types that print alike
 * everywhere, and domains and enums of them, are let through; any other
 * is refused by protect_table and fails closed in the row check.
 */
bool
aa_patient_type_stable(Oid typid)
{
	Oid			base = getBaseType(typid);

	switch (base)
	{
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case NAMEOID:
		case CHAROID:
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case NUMERICOID:
		case UUIDOID:
			return true;
		default:
			return type_is_enum(base);
	}
}

PG_FUNCTION_INFO_V1(aa_patient_type_ok);

/* agentauth._patient_type_ok(t regtype) RETURNS boolean, for protect_table */
Datum
aa_patient_type_ok(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(aa_patient_type_stable(PG_GETARG_OID(0)));
}

/*
 * agentauth._raise_naming_patient(sqlstate, message, detail, hint): the
 * extension's SQL functions raise an error whose detail names a patient, or
 * whose statement holds a patient's document, through this (break_glass's
 * id checks, FHIR Consent import): the detail goes to the client only, the
 * statement and context stay out of the log (redact.c).  detail and hint
 * may be null.
 */
PG_FUNCTION_INFO_V1(aa_raise_naming_patient);
Datum
aa_raise_naming_patient(PG_FUNCTION_ARGS)
{
	char	   *state;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sqlstate and message must not be null")));
	state = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strlen(state) != 5 || strspn(state, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 5 ||
		strncmp(state, "00", 2) == 0 || strncmp(state, "01", 2) == 0 ||
		strncmp(state, "02", 2) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid SQLSTATE \"%s\"", state)));
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4])),
			 errmsg_internal("%s", text_to_cstring(PG_GETARG_TEXT_PP(1))),
			 aa_errdetail_patient(PG_ARGISNULL(2) ? NULL :
								  text_to_cstring(PG_GETARG_TEXT_PP(2)), NULL),
			 PG_ARGISNULL(3) ? 0 :
			 errhint("%s", text_to_cstring(PG_GETARG_TEXT_PP(3)))));
	PG_RETURN_VOID();
}
