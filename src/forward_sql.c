/*-------------------------------------------------------------------------
 *
 * forward_sql.c
 *		The primary's side of forwarding (SPEC 6.9):
 *		agentauth.forward_audit(standby text, batch bytea), which the
 *		forwarder of a hot standby (forward.c) calls as a login granted
 *		agentauth_forwarder.
 *
 *		A forwarder can only append records through this server's writer.
 *		The batch holds, per record, [be32 length][be64 statement][body],
 *		the body being the record's canonical fields event..detail exactly
 *		as the chain hashes them (record.c) -- no seq, logged_at, prev_hash
 *		or row_hash: the writer assigns those.  Every record is read here
 *		field by field with the expected type of each column and checked:
 *		an event a standby's backend emits (access, denied,
 *		privileged_access, unregistered_access, session_begin, session_end,
 *		session_denied), valid UTF-8 without NUL, bounded lengths, a patient
 *		short enough for the log, outcome and action from their
 *		vocabularies, jsonb text that is PostgreSQL's own output of that
 *		value (anything else would not verify), and no byte left over.
 *		Encoding the fields again must give the same body; then the record
 *		is encoded once more with " standby=<name>" appended to its client
 *		(naming the standby it came from) and queued for this server's
 *		writer, untied to any transaction.  The call returns the number of
 *		records once the writer has committed them all, so the forwarder
 *		releases them on the standby only then; it fails (53000) when the
 *		writer cannot take or commit them.
 *
 *		Callable only by members of agentauth_forwarder (checked here, and
 *		EXECUTE granted to that role alone), only on a primary, only in
 *		agentauth.database.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "agentauth.h"

#define AA_FORWARD_MAX_TEXT		(64 * 1024)
#define AA_FORWARD_MAX_ELEMS	4096
#define AA_FORWARD_MAX_NAME		63

static const char *const forwardable_events[] = {
	"access", "denied", "privileged_access", "unregistered_access",
	"session_begin", "session_end", "session_denied", NULL
};

typedef struct Rd
{
	const char *p;
	const char *end;
	int			rec;			/* record number, for messages */
} Rd;

static void
bad(const Rd *r, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("forwarded audit record %d is malformed: %s", r->rec, what),
			 errhint("Only an agentauth audit forwarder of the same version sends these batches.")));
}

static uint32
rd32(Rd *r)
{
	uint32		v;

	if (r->end - r->p < 4)
		bad(r, "truncated");
	memcpy(&v, r->p, 4);
	r->p += 4;
	return pg_ntoh32(v);
}

static uint64
rd64(Rd *r)
{
	uint64		v;

	if (r->end - r->p < 8)
		bad(r, "truncated");
	memcpy(&v, r->p, 8);
	r->p += 8;
	return pg_ntoh64(v);
}

static char
rdtag(Rd *r)
{
	if (r->p >= r->end)
		bad(r, "truncated");
	return *r->p++;
}

/* the body of a 't' or 'j' field: a string in the server encoding */
static char *
rdstring(Rd *r, int *outlen)
{
	uint32		len = rd32(r);
	char	   *s;

	if (len > AA_FORWARD_MAX_TEXT || (uint32) (r->end - r->p) < len)
		bad(r, "a text field is too long or truncated");
	if (!pg_verify_mbstr(PG_UTF8, r->p, len, true))
		bad(r, "a text field is not valid UTF-8");
	s = pg_any_to_server(r->p, len, PG_UTF8);
	if (s == r->p)
		s = pnstrdup(r->p, len);
	r->p += len;
	if (outlen)
		*outlen = strlen(s);
	return s;
}

/* a nullable text field */
static char *
rdtext(Rd *r)
{
	char		tag = rdtag(r);

	if (tag == 0x00)
		return NULL;
	if (tag != 't')
		bad(r, "a text field has the wrong type");
	return rdstring(r, NULL);
}

static pg_uuid_t *
rduuid_body(Rd *r)
{
	pg_uuid_t  *u = palloc(sizeof(pg_uuid_t));

	if (r->end - r->p < UUID_LEN)
		bad(r, "truncated");
	memcpy(u->data, r->p, UUID_LEN);
	r->p += UUID_LEN;
	return u;
}

static pg_uuid_t *
rduuid(Rd *r)
{
	char		tag = rdtag(r);

	if (tag == 0x00)
		return NULL;
	if (tag != 'u')
		bad(r, "a uuid field has the wrong type");
	return rduuid_body(r);
}

static const char **
rdtextarray(Rd *r, int *n)
{
	char		tag = rdtag(r);
	const char **items;

	*n = 0;
	if (tag == 0x00)
		return NULL;
	if (tag != 'a')
		bad(r, "an array field has the wrong type");
	*n = (int) rd32(r);
	if (*n < 0 || *n > AA_FORWARD_MAX_ELEMS)
		bad(r, "an array has too many elements");
	items = palloc0(sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		items[i] = rdtext(r);
	return items;
}

/* jsonb: the value, and its text as PostgreSQL writes it (what is hashed) */
static Jsonb *
rdjsonb(Rd *r, const char **text, int *textlen)
{
	char		tag = rdtag(r);
	char	   *s;
	int			len;
	Jsonb	   *jb;
	StringInfoData out;

	if (tag == 0x00)
		return NULL;
	if (tag != 'j')
		bad(r, "a jsonb field has the wrong type");
	s = rdstring(r, &len);
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
	initStringInfo(&out);
	JsonbToCString(&out, &jb->root, VARSIZE(jb));
	if (out.len != len || memcmp(out.data, s, len) != 0)
		bad(r, "a jsonb field is not in the form PostgreSQL writes it");
	*text = out.data;
	*textlen = out.len;
	return jb;
}

/* a field that is there is one of list's (NULL: absent, allowed) */
static bool
in_list(const char *s, const char *const *list)
{
	return s == NULL || aa_str_in_list(s, list);
}

/*
 * Read one record's body into f, checked; the fields point into memory of
 * the current context.
 */
static void
read_record(Rd *r, AARecordFields *f)
{
	static const char *const outcomes[] = {"permit", "deny", NULL};
	static const char *const actions[] = {"read", "insert", "update", "delete", "write", NULL};
	char		tag;

	memset(f, 0, sizeof(*f));
	f->event = rdtext(r);
	if (f->event == NULL || !in_list(f->event, forwardable_events))
		bad(r, "its event is not one a hot standby records");
	f->principal = rduuid(r);
	f->principal_name = rdtext(r);
	f->db_role = rdtext(r);
	f->token = rduuid(r);
	f->on_behalf_of = rdtext(r);
	tag = rdtag(r);
	if (tag == 'a')
	{
		pg_uuid_t  *chain;

		f->nchain = (int) rd32(r);
		if (f->nchain <= 0 || f->nchain > AA_FORWARD_MAX_ELEMS)
			bad(r, "its delegation chain has a wrong length");
		chain = palloc(sizeof(pg_uuid_t) * f->nchain);
		for (int i = 0; i < f->nchain; i++)
		{
			if (rdtag(r) != 'u')
				bad(r, "its delegation chain holds a value that is not a uuid");
			chain[i] = *rduuid_body(r);
		}
		f->chain = chain;
	}
	else if (tag != 0x00)
		bad(r, "its delegation chain has the wrong type");
	f->purpose = rdtext(r);
	f->patient = rdtext(r);
	if (f->patient && strlen(f->patient) > AA_AUDIT_MAX_PATIENT + 16)
		bad(r, "its patient id is too long");
	f->relation = rdtext(r);
	f->columns = rdtextarray(r, &f->ncolumns);
	f->classes = rdtextarray(r, &f->nclasses);
	f->action = rdtext(r);
	if (!in_list(f->action, actions))
		bad(r, "its action is unknown");
	tag = rdtag(r);
	if (tag == 'i')
	{
		f->row_count = (int64) rd64(r);
		if (f->row_count < 0)
			bad(r, "its row count is negative");
	}
	else if (tag == 0x00)
		f->row_count = -1;
	else
		bad(r, "its row count has the wrong type");
	f->authority = (struct varlena *) rdjsonb(r, &f->authority_text,
											  &f->authority_text_len);
	f->outcome = rdtext(r);
	if (!in_list(f->outcome, outcomes))
		bad(r, "its outcome is unknown");
	f->statement = rdtext(r);
	f->client = rdtext(r);
	if (f->client == NULL)
		bad(r, "it names no client");
	f->client_len = strlen(f->client);
	f->detail = (struct varlena *) rdjsonb(r, &f->detail_text, &f->detail_text_len);
	if (r->p != r->end)
		bad(r, "bytes are left after its last field");
}

static void
check_standby_name(const char *name)
{
	int			len = strlen(name);

	if (len == 0 || len > AA_FORWARD_MAX_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("standby name must have 1 to %d characters", AA_FORWARD_MAX_NAME)));
	for (int i = 0; i < len; i++)
		if (!(isalnum((unsigned char) name[i]) || name[i] == '_' ||
			  name[i] == '-' || name[i] == '.'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("standby name \"%s\" may hold only letters, digits, '_', '-' and '.'",
							name)));
}

/* push whole entries in pieces of at most a quarter of the queue */
static uint64
push_all(StringInfo buf)
{
	Size		limit = Max(aa_queue_capacity() / 4, MAXIMUM_ALIGNOF);
	int			off = 0;
	uint64		end = 0;

	while (off < buf->len)
	{
		int			chunk = 0;

		while (off + chunk < buf->len)
		{
			AAQueueEntry *e = (AAQueueEntry *) (buf->data + off + chunk);

			if (chunk > 0 && (Size) (chunk + e->len) > limit)
				break;
			chunk += e->len;
		}
		if (!aa_queue_push(buf->data + off, chunk, aa_audit_wait_timeout, &end))
			aa_audit_fail_closed("queued", NULL);
		aa_queue_note_sync(end);
		off += chunk;
	}
	return end;
}

PG_FUNCTION_INFO_V1(aa_forward_audit);

/* agentauth.forward_audit(standby text, batch bytea) RETURNS bigint */
Datum
aa_forward_audit(PG_FUNCTION_ARGS)
{
	char	   *standby;
	bytea	   *batch;
	Rd			r;
	StringInfoData out;
	StringInfoData check;
	StringInfoData client;
	uint64		name_hash;
	uint64		end;
	int64		n = 0;

	aa_require_role("agentauth_forwarder");
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("audit records can be forwarded only to a primary"),
				 errhint("Point agentauth.forward_conninfo at the primary server.")));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("standby and batch must not be null")));
	aa_audit_check_database();
	standby = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_standby_name(standby);
	batch = PG_GETARG_BYTEA_PP(1);
	name_hash = (uint64) hash_bytes((const unsigned char *) standby, strlen(standby));

	r.p = VARDATA_ANY(batch);
	r.end = r.p + VARSIZE_ANY_EXHDR(batch);
	r.rec = 0;
	initStringInfo(&out);
	initStringInfo(&check);
	initStringInfo(&client);
	while (r.p < r.end)
	{
		Rd			body;
		uint32		len;
		uint64		stmt;
		AARecordFields f;
		const AAQueueEntry *e;
		int			start = out.len;

		r.rec++;
		len = rd32(&r);
		stmt = rd64(&r);
		if ((uint32) (r.end - r.p) < len || len > aa_queue_capacity() / 4)
			bad(&r, "its length is wrong");
		body.p = r.p;
		body.end = r.p + len;
		body.rec = r.rec;
		read_record(&body, &f);

		/* the fields read must encode to exactly the body received */
		resetStringInfo(&check);
		aa_record_encode(&check, &f, InvalidTransactionId);
		e = (const AAQueueEntry *) check.data;
		if (e->body_len != len || memcmp(AA_ENTRY_BODY(e), r.p, len) != 0)
			bad(&r, "it is not in canonical form");
		r.p += len;

		/* the standby it came from, in its client */
		resetStringInfo(&client);
		appendStringInfo(&client, "%s standby=%s", f.client, standby);
		f.client = client.data;
		f.client_len = client.len;
		aa_record_encode(&out, &f, InvalidTransactionId);
		/* alert rules count statements: keep the standby's apart */
		stmt ^= name_hash << 32;
		memcpy(out.data + start + offsetof(AAQueueEntry, statement), &stmt,
			   sizeof(stmt));
		if ((Size) (out.len - start) > aa_queue_capacity() / 4)
			bad(&r, "it is too large for agentauth.audit_queue_size");
		n++;
	}
	if (n == 0)
		PG_RETURN_INT64(0);

	/* queued for the writer, then waited for until it has committed them */
	end = push_all(&out);
	while (!aa_queue_wait_committed(end, Min(aa_audit_wait_timeout, 1000)))
	{
		AAQueueLate late;

		CHECK_FOR_INTERRUPTS();
		if (aa_audit_late(&late))
			aa_audit_fail_closed("committed", &late);
	}
	PG_RETURN_INT64(n);
}
