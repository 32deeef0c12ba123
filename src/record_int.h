/*-------------------------------------------------------------------------
 *
 * record_int.h
 *		The canonical encoding's building blocks, shared by the files of the
 *		record format only: record.c (the queued form, a record's stored
 *		row), record_stored.c (canonical(stored row), for verify_audit),
 *		patient_log.c (a patient's entries, for the reports) and unit.c (a
 *		statement's records as one unit, encoding version 2).
 *		Everything else goes through agentauth.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AGENTAUTH_RECORD_INT_H
#define AGENTAUTH_RECORD_INT_H

#include "lib/stringinfo.h"
#include "port/pg_bswap.h"
#include "utils/uuid.h"

#define AA_CANON_VERSION		0x01	/* one record */
#define AA_CANON_VERSION_UNIT	0x02	/* a unit: shared fields + entries */

/* the tag before each field */
#define AA_TAG_NULL			0x00
#define AA_TAG_INT8			'i'
#define AA_TAG_TIMESTAMPTZ	'T'
#define AA_TAG_UUID			'u'
#define AA_TAG_TEXT			't'
#define AA_TAG_JSONB		'j'
#define AA_TAG_ARRAY		'a'

static inline void
put_be32(StringInfo buf, uint32 v)
{
	uint32		be = pg_hton32(v);

	appendBinaryStringInfo(buf, (char *) &be, sizeof(be));
}

static inline void
put_be64(unsigned char *b, uint64 v)
{
	uint64		be = pg_hton64(v);

	memcpy(b, &be, sizeof(be));
}

static inline void
canon_null(StringInfo buf)
{
	appendStringInfoCharMacro(buf, AA_TAG_NULL);
}

/* tag and 8 big-endian bytes: bigint and timestamptz */
static inline void
canon_8bytes(StringInfo buf, char tag, uint64 v)
{
	unsigned char b[9];

	b[0] = tag;
	put_be64(b + 1, v);
	appendBinaryStringInfo(buf, (char *) b, 9);
}

static inline void
canon_uuid(StringInfo buf, const pg_uuid_t *u)
{
	if (u == NULL)
	{
		canon_null(buf);
		return;
	}
	appendStringInfoCharMacro(buf, AA_TAG_UUID);
	appendBinaryStringInfo(buf, (const char *) u->data, UUID_LEN);
}

static inline void
canon_array_header(StringInfo buf, int nelems)
{
	appendStringInfoCharMacro(buf, AA_TAG_ARRAY);
	put_be32(buf, (uint32) nelems);
}

/*
 * The authority of a permit by one consent, {"consents": ["<id>"]}: in a
 * unit it is stored as the consent's id (entry_consents), and its canonical
 * text -- JsonbToCString's, the id as uuid_out writes it -- is rebuilt.
 */
#define AA_CONSENT_AUTH_LEN	54
#define AA_CONSENT_ID_OFF	15		/* where the id's text begins */
#define AA_CONSENT_ID_LEN	36		/* uuid_out's text */

/* record.c */
extern bool aa_consent_authority_parse(const char *text, uint32 len,
									   pg_uuid_t *id);
extern void aa_consent_authority_text(const pg_uuid_t *id, char *out);
extern void aa_canon_string(StringInfo buf, char tag, const char *s, int len);
extern Oid	aa_record_column_type(int col);
extern Datum aa_record_text_datum(const char *utf8, uint32 len);

#endif							/* AGENTAUTH_RECORD_INT_H */
