-- The data model.  Tables are private to the extension: roles reach them
-- only through the views and SECURITY DEFINER functions that follow.

-- HL7 v3 ActReason PurposeOfUse codes (SPEC 3); a site may add its own.
CREATE TABLE agentauth.purpose (
    code        text PRIMARY KEY CHECK (code ~ '^[A-Z][A-Z0-9_]{0,39}$'),
    display     text NOT NULL,
    reserved    boolean NOT NULL DEFAULT false,  -- entered only through break_glass
    -- (1.1) the purpose this one specializes (v3-ActReason's hierarchy):
    -- a FHIR Consent's deny of a purpose denies those below it too
    parent      text REFERENCES agentauth.purpose (code) ON UPDATE CASCADE
                CHECK (parent <> code)
);
INSERT INTO agentauth.purpose (code, display, reserved) VALUES
    ('TREAT',      'treatment', false),
    ('ETREAT',     'emergency treatment', false),
    ('ERTREAT',    'emergency room treatment', false),
    ('BTG',        'break the glass', true),
    ('HPAYMT',     'healthcare payment', false),
    ('HOPERAT',    'healthcare operations', false),
    ('HRESCH',     'healthcare research', false),
    ('PUBHLTH',    'public health', false),
    ('CAREMGT',    'care management', false),
    ('PATRQT',     'patient requested', false),
    ('TREATDS',    'AI-assisted treatment decision support', false),
    ('PMTDS',      'AI-assisted payment decision support', false),
    ('MLTRAINING', 'machine learning model training', false);
UPDATE agentauth.purpose p SET parent = h.parent
  FROM (VALUES ('ETREAT', 'TREAT'), ('ERTREAT', 'ETREAT'), ('TREATDS', 'TREAT'),
               ('PMTDS', 'HPAYMT'), ('CAREMGT', 'HOPERAT')) h(code, parent)
 WHERE p.code = h.code;
-- dump the codes a site added (the seeded ones come with CREATE EXTENSION)
SELECT pg_catalog.pg_extension_config_dump('agentauth.purpose',
    'WHERE code NOT IN (''TREAT'', ''ETREAT'', ''ERTREAT'', ''BTG'', ''HPAYMT'', ''HOPERAT'', ''HRESCH'', ''PUBHLTH'', ''CAREMGT'', ''PATRQT'', ''TREATDS'', ''PMTDS'', ''MLTRAINING'')');

-- Data classes (SPEC 5).
CREATE TABLE agentauth.data_class (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    description text,
    sensitive   boolean NOT NULL DEFAULT false
);
INSERT INTO agentauth.data_class (name, description, sensitive) VALUES
    ('demographics',  'name, date of birth, sex, address', false),
    ('contact',       'phone, e-mail, emergency contacts', false),
    ('identifiers',   'MRN, SSN, insurance numbers', false),
    ('encounter',     'visits, admissions, locations', false),
    ('diagnosis',     'problems and diagnoses', false),
    ('lab',           'laboratory results', false),
    ('vital_signs',   'vital signs', false),
    ('medication',    'medications and prescriptions', false),
    ('imaging',       'imaging studies and reports', false),
    ('clinical_note', 'free-text clinical notes', false),
    ('billing',       'claims and billing', false),
    ('non_phi',       'not protected health information', false),
    ('mental_health', 'mental health records', true),
    ('substance_use', 'substance use disorder records (42 CFR Part 2)', true),
    ('hiv',           'HIV status and testing', true),
    ('genetic',       'genetic information', true),
    ('reproductive',  'reproductive health', true);
SELECT pg_catalog.pg_extension_config_dump('agentauth.data_class',
    'WHERE name NOT IN (''demographics'', ''contact'', ''identifiers'', ''encounter'', ''diagnosis'', ''lab'', ''vital_signs'', ''medication'', ''imaging'', ''clinical_note'', ''billing'', ''non_phi'', ''mental_health'', ''substance_use'', ''hiv'', ''genetic'', ''reproductive'')');

-- Principals: agents and humans (SPEC 3).
CREATE TABLE agentauth.principal (
    id              uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    kind            text NOT NULL CHECK (kind IN ('agent', 'human')),
    name            text NOT NULL UNIQUE,
    db_role         regrole NOT NULL UNIQUE,  -- regrole: dumped and restored by name
    owner           text,
    purposes        text[] NOT NULL,
    scopes          text[] NOT NULL,
    max_token_ttl   interval,
    can_break_glass boolean NOT NULL DEFAULT false,
    can_delegate    boolean NOT NULL DEFAULT false,
    can_approve     boolean NOT NULL DEFAULT false,
    description     text,
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'suspended', 'retired')),
    status_reason   text,
    status_changed_at timestamptz,
    registered_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_by   text NOT NULL,
    last_session_at timestamptz,
    -- (1.1) only transaction_only sessions: the role connects through a
    -- transaction-pooling pooler (agentauth.require_transaction_only())
    transaction_only_required boolean NOT NULL DEFAULT false,
    CHECK (kind = 'human' OR (owner IS NOT NULL AND max_token_ttl IS NOT NULL))
);
SELECT pg_catalog.pg_extension_config_dump('agentauth.principal', '');
-- Names are compared without case and surrounding blanks (tokens'
-- on_behalf_of, consents' grantee_owner): one name so folded is one
-- principal (1.1).  _check_name_free says which name a new one collides
-- with; this index holds where two registrations run at once, which
-- that check cannot see (found by review: both committed).
CREATE UNIQUE INDEX principal_name_folded
    ON agentauth.principal ((pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(name)))));

-- Tokens (SPEC 4).  Only the SHA-256 of the secret is stored.
CREATE TABLE agentauth.token (
    id            uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    secret_hash   bytea NOT NULL UNIQUE CHECK (pg_catalog.length(secret_hash) = 32),
    agent         uuid NOT NULL REFERENCES agentauth.principal (id),
    parent        uuid REFERENCES agentauth.token (id),
    chain         uuid[] NOT NULL,   -- token ids from the root to this one
    purpose       text NOT NULL REFERENCES agentauth.purpose (code),
    on_behalf_of  text,
    scopes        text[] NOT NULL,
    patients      text[],
    issued_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    issued_by     text NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoke_reason text
);
CREATE INDEX ON agentauth.token (agent);
CREATE INDEX ON agentauth.token (parent);
SELECT pg_catalog.pg_extension_config_dump('agentauth.token', '');

-- Consent provisions (SPEC 7).
CREATE TABLE agentauth.consent (
    id              uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    patient         text NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('permit', 'deny')),
    purposes        text[],
    data_classes    text[],
    actions         text[] NOT NULL,
    grantee_agent   uuid REFERENCES agentauth.principal (id),
    grantee_owner   text,
    valid           tstzrange NOT NULL,
    source          text,
    recorded_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    recorded_by     text NOT NULL,
    withdrawn_at    timestamptz,
    withdrawn_by    text,
    withdraw_reason text
);
CREATE INDEX ON agentauth.consent (patient);
SELECT pg_catalog.pg_extension_config_dump('agentauth.consent', '');

-- Default decisions per (purpose, class); class '*' never covers a
-- sensitive class.
CREATE TABLE agentauth.default_decision (
    purpose     text NOT NULL REFERENCES agentauth.purpose (code),
    data_class  text NOT NULL,
    decision    text NOT NULL CHECK (decision IN ('permit', 'deny')),
    changed_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    changed_by  text NOT NULL,
    PRIMARY KEY (purpose, data_class)
);
SELECT pg_catalog.pg_extension_config_dump('agentauth.default_decision', '');

-- Break-the-glass overrides (SPEC 8).
CREATE TABLE agentauth.break_glass (
    id            uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    principal     uuid NOT NULL REFERENCES agentauth.principal (id),
    token         uuid REFERENCES agentauth.token (id),
    session_id    uuid NOT NULL,
    on_behalf_of  text,
    patient       text NOT NULL,
    reason        text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    ends_at       timestamptz NOT NULL,
    ended_at      timestamptz,
    ended_by      text,          -- role that ended it, or 'session end'
    review_status text NOT NULL DEFAULT 'pending'
                  CHECK (review_status IN ('pending', 'justified', 'unjustified')),
    reviewer      text,
    reviewed_at   timestamptz,
    review_notes  text,
    -- the human principal an agent broke the glass for (1.1): accountability
    -- and the no-self-review rule are decided on principals, not spellings
    on_behalf_of_principal uuid REFERENCES agentauth.principal (id)
);
SELECT pg_catalog.pg_extension_config_dump('agentauth.break_glass', '');

-- Clinician approvals of agent writes (SPEC 9).
CREATE TABLE agentauth.approval (
    id           uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    agent        uuid NOT NULL REFERENCES agentauth.principal (id),
    relation     oid NOT NULL,
    patient      text NOT NULL,
    action       text NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
    reason       text NOT NULL,
    approved_by  uuid NOT NULL REFERENCES agentauth.principal (id),
    approved_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at   timestamptz NOT NULL,
    uses         int NOT NULL CHECK (uses > 0),
    uses_left    int NOT NULL CHECK (uses_left >= 0),
    -- the approving clinician's registered purposes (1.1): the approval
    -- covers agent writes under one of these only
    purposes     text[]
);
CREATE INDEX ON agentauth.approval (agent, relation, patient);
SELECT pg_catalog.pg_extension_config_dump('agentauth.approval', '');

-- The audit log (SPEC 10) is stored here; agentauth.audit_log (the audit
-- fragment) is the view auditors read, one row per record.  Only the audit
-- writer inserts; nobody updates or deletes (see the append-only guards in
-- the audit fragment).  A row is either one record (encoding version 1:
-- entry_* NULL) or a unit (encoding version 2): what the records of one
-- statement x table share, stored once (event 'entries', patient,
-- row_count, authority and outcome NULL), and each patient's part as the
-- i-th element of the four entry_* arrays; the unit's entries have seq,
-- seq + 1, ..., seq + n - 1 and are chained as one (docs/DESIGN.md,
-- "Canonical record encoding, version 2").
CREATE TABLE agentauth.audit_record (
    seq              bigint PRIMARY KEY,
    logged_at        timestamptz NOT NULL,
    event            text NOT NULL,
    principal        uuid,
    principal_name   text,
    db_role          text,
    token            uuid,
    on_behalf_of     text,
    delegation_chain uuid[],
    purpose          text,
    patient          text,
    relation         text,
    columns          text[],
    data_classes     text[],
    action           text,
    row_count        bigint,
    authority        jsonb,
    outcome          text,
    statement        text,
    client           text,
    detail           jsonb,
    prev_hash        bytea NOT NULL,
    row_hash         bytea NOT NULL,
    entry_kinds      smallint[],
    entry_patients   text[],
    entry_row_counts bigint[],
    entry_authorities jsonb[],
    entry_consents   uuid[]
);
-- The log starts at seq 1 and the writer never stores below it.  A row
-- below 1 (a superuser with the append-only triggers switched off) would
-- show in every report while an export from seq 1 left it out of the
-- offline verifier's sight (an outside review of 1.1): refused here, and
-- export_audit() from the beginning starts at the lowest row there is.
-- NOT VALID: the update adds it without reading a log of years; every
-- row the writer stores is checked.
ALTER TABLE agentauth.audit_record
    ADD CONSTRAINT audit_record_seq_from_1 CHECK (seq OPERATOR(pg_catalog.>=) 1) NOT VALID;
-- a unit's arrays are compressed with LZ4: a fraction of pglz's CPU (the
-- kinds and row counts too: pglz on them was 4 % of the writer).  Their
-- storage stays EXTENDED: MAIN (kept in the row) made reports a little
-- faster and the log 10-35 % bigger, the verifier slower (bench/README.md)
ALTER TABLE agentauth.audit_record ALTER COLUMN entry_patients SET COMPRESSION lz4,
    ALTER COLUMN entry_authorities SET COMPRESSION lz4,
    ALTER COLUMN entry_kinds SET COMPRESSION lz4,
    ALTER COLUMN entry_row_counts SET COMPRESSION lz4;
-- a permit by one consent is stored as the consent's id (unit.c): random
-- bytes, which no compression shrinks, so none is tried
ALTER TABLE agentauth.audit_record ALTER COLUMN entry_consents SET STORAGE EXTERNAL;
-- A row is compressed or moved out of line only past 4 kB, not the default
-- 2 kB: a unit of 128 entries (about 5 kB) then keeps its consent ids in
-- the row, its two largest arrays compressed, two such rows to a page.
-- At 2 kB the ids went to TOAST, and a report paid a TOAST index lookup
-- for every such unit its patient is in: a fifth of access_report's time
-- with the log in memory (bench/README.md, "Per-patient reports").
ALTER TABLE agentauth.audit_record SET (toast_tuple_target = 4080);
-- The planner never reads these columns' statistics: the reports look a
-- patient up with a parameter (a generic plan, whose estimate for @> is a
-- default), and nothing selects by an entry's kind, row count, authority,
-- consent id or a hash.  ANALYZE skips them: the most common elements of
-- arrays of 100 random ids were a third of every autoanalyze of the
-- log (bench/README.md, "Autoanalyze, the writer's parse, ...").
ALTER TABLE agentauth.audit_record ALTER COLUMN entry_kinds SET STATISTICS 0,
    ALTER COLUMN entry_row_counts SET STATISTICS 0,
    ALTER COLUMN entry_authorities SET STATISTICS 0,
    ALTER COLUMN entry_consents SET STATISTICS 0,
    ALTER COLUMN entry_patients SET STATISTICS 0,
    ALTER COLUMN prev_hash SET STATISTICS 0,
    ALTER COLUMN row_hash SET STATISTICS 0;
-- the patient index compares bytewise (COLLATE "C"): only equality is ever
-- asked of it (_patient_log looks a patient up as p COLLATE "C"), the same
-- under any deterministic collation, and strcoll() is dearer than memcmp()
CREATE INDEX audit_log_patient_idx ON agentauth.audit_record (patient COLLATE "C", logged_at)
    WHERE patient IS NOT NULL;
-- a unit's patients: one GIN key per patient, gathered in its pending list
-- and merged in bulk, far cheaper than a btree insertion each.  The key is
-- the patient's hash (_patient_hash, an int4: hash_bytes() of the id's
-- bytes), not the id: the merge sorts every key, and comparing text keys
-- (bttextcmp, detoast, memcmp; strcoll() under the database's collation
-- before the index compared them COLLATE "C") was a fifth of the writer's
-- time, more than a third with a real locale.  An id that shares its hash
-- with another costs a unit read that finds no entry: _patient_log takes a
-- unit's entries by comparing bytes (_entry_positions).
CREATE FUNCTION agentauth._patient_hash(p text) RETURNS integer
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aa_patient_hash';
CREATE FUNCTION agentauth._patient_hashes(patients text[]) RETURNS integer[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aa_patient_hashes';
CREATE INDEX audit_record_entry_patients_idx ON agentauth.audit_record
    USING gin (agentauth._patient_hashes(entry_patients)) WHERE entry_patients IS NOT NULL;
-- ANALYZE computes statistics of an index expression as of a column: the
-- most common elements of every sampled unit's hashes, which no plan reads
-- (the reports look a patient up with a parameter).  Skipped, as the
-- entry arrays' own are (below)
ALTER INDEX agentauth.audit_record_entry_patients_idx ALTER COLUMN 1 SET STATISTICS 0;
-- logged_at only grows (the writer stamps it, never backwards): a BRIN
-- index serves time ranges at a fraction of a btree's insert cost
CREATE INDEX audit_log_logged_at_idx ON agentauth.audit_record USING brin (logged_at);
