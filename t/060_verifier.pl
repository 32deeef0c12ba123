# The offline verifier (tools/aa_verify) on exports of agentauth.export_audit():
# intact, and with a changed, dropped, duplicated and reordered line, a wrong
# digest and a removed tail -- each reported with its first bad seq.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $verify = "$ENV{TESTDIR}/tools/aa_verify";
ok(-x $verify, 'tools/aa_verify is built') or BAIL_OUT("no $verify");

my $node = PostgreSQL::Test::Cluster->new('verifier');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
# purge_audit needs records older than the retention: make that 1 second
$node->append_conf('postgresql.conf', "agentauth.audit_retention = '1s'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION agentauth CASCADE');

# An independent SQL rendering of the canonical encoding, version 1
# (README, "The audit log"), used to cross-check the writer's hashes -- or,
# before the audit writer exists, to give directly inserted rows a chain.
$node->safe_psql('postgres', q{
CREATE SCHEMA canon;
CREATE FUNCTION canon.t(x text, tag bytea DEFAULT '\x74') RETURNS bytea LANGUAGE sql AS $$
  SELECT CASE WHEN x IS NULL THEN '\x00'::bytea
         ELSE tag || int4send(octet_length(convert_to(x, 'UTF8'))) || convert_to(x, 'UTF8') END $$;
CREATE FUNCTION canon.i(x bigint) RETURNS bytea LANGUAGE sql AS $$
  SELECT CASE WHEN x IS NULL THEN '\x00'::bytea ELSE '\x69'::bytea || int8send(x) END $$;
CREATE FUNCTION canon.ts(x timestamptz) RETURNS bytea LANGUAGE sql AS $$
  SELECT CASE WHEN x IS NULL THEN '\x00'::bytea ELSE '\x54'::bytea || timestamptz_send(x) END $$;
CREATE FUNCTION canon.u(x uuid) RETURNS bytea LANGUAGE sql AS $$
  SELECT CASE WHEN x IS NULL THEN '\x00'::bytea ELSE '\x75'::bytea || uuid_send(x) END $$;
CREATE FUNCTION canon.j(x jsonb) RETURNS bytea LANGUAGE sql AS $$
  SELECT canon.t(x::text, '\x6a') $$;
CREATE FUNCTION canon.a(x text[]) RETURNS bytea LANGUAGE sql AS $$
  SELECT CASE WHEN x IS NULL THEN '\x00'::bytea
         ELSE '\x61'::bytea || int4send(cardinality(x))
              || coalesce((SELECT string_agg(canon.t(e), ''::bytea ORDER BY o)
                             FROM unnest(x) WITH ORDINALITY AS u(e, o)), ''::bytea) END $$;
CREATE FUNCTION canon.au(x uuid[]) RETURNS bytea LANGUAGE sql AS $$
  SELECT CASE WHEN x IS NULL THEN '\x00'::bytea
         ELSE '\x61'::bytea || int4send(cardinality(x))
              || coalesce((SELECT string_agg(canon.u(e), ''::bytea ORDER BY o)
                             FROM unnest(x) WITH ORDINALITY AS u(e, o)), ''::bytea) END $$;
CREATE FUNCTION canon.rec(l agentauth.audit_log) RETURNS bytea LANGUAGE sql AS $$
  SELECT '\x01'::bytea || canon.i(l.seq) || canon.ts(l.logged_at) || canon.t(l.event)
      || canon.u(l.principal) || canon.t(l.principal_name) || canon.t(l.db_role)
      || canon.u(l.token) || canon.t(l.on_behalf_of) || canon.au(l.delegation_chain)
      || canon.t(l.purpose) || canon.t(l.patient) || canon.t(l.relation)
      || canon.a(l.columns) || canon.a(l.data_classes) || canon.t(l.action)
      || canon.i(l.row_count) || canon.j(l.authority) || canon.t(l.outcome)
      || canon.t(l.statement) || canon.t(l.client) || canon.j(l.detail) $$;
-- version 2: a unit (README, "The audit log"): version byte 2, the 21
-- fields of its row, then its four entry arrays
CREATE FUNCTION canon.ai(x bigint[]) RETURNS bytea LANGUAGE sql AS $$
  SELECT CASE WHEN x IS NULL THEN '\x00'::bytea
         ELSE '\x61'::bytea || int4send(cardinality(x))
              || coalesce((SELECT string_agg(canon.i(e), ''::bytea ORDER BY o)
                             FROM unnest(x) WITH ORDINALITY AS u(e, o)), ''::bytea) END $$;
CREATE FUNCTION canon.aj(x jsonb[]) RETURNS bytea LANGUAGE sql AS $$
  SELECT CASE WHEN x IS NULL THEN '\x00'::bytea
         ELSE '\x61'::bytea || int4send(cardinality(x))
              || coalesce((SELECT string_agg(canon.j(e), ''::bytea ORDER BY o)
                             FROM unnest(x) WITH ORDINALITY AS u(e, o)), ''::bytea) END $$;
-- a permit by one consent is stored as the consent's id: its authority is
-- {"consents": ["<id>"]}
CREATE FUNCTION canon.merged(a jsonb[], c uuid[]) RETURNS jsonb[] LANGUAGE sql AS $$
  SELECT CASE WHEN a IS NULL OR c IS NULL THEN a
         ELSE ARRAY(SELECT coalesce(('{"consents": ["' || y || '"]}')::jsonb, x)
                      FROM ROWS FROM (unnest(a), unnest(c)) WITH ORDINALITY AS t(x, y, o)
                     ORDER BY o) END $$;
CREATE FUNCTION canon.stored(l agentauth.audit_record) RETURNS bytea LANGUAGE sql AS $$
  SELECT CASE WHEN l.entry_kinds IS NULL THEN '\x01'::bytea ELSE '\x02'::bytea END
      || substr(canon.rec(ROW(l.seq, l.logged_at, l.event, l.principal, l.principal_name, l.db_role,
                              l.token, l.on_behalf_of, l.delegation_chain, l.purpose, l.patient,
                              l.relation, l.columns, l.data_classes, l.action, l.row_count,
                              l.authority, l.outcome, l.statement, l.client, l.detail, NULL,
                              NULL)::agentauth.audit_log), 2)
      || CASE WHEN l.entry_kinds IS NULL THEN ''::bytea
              ELSE canon.ai(l.entry_kinds::bigint[]) || canon.a(l.entry_patients)
                   || canon.ai(l.entry_row_counts) || canon.aj(canon.merged(l.entry_authorities, l.entry_consents)) END $$;
});

# Real records from the audit writer: registration, a token, a protected
# table, an agent's session, its reads and a denial, and administrative
# events with awkward text.
{
	$node->safe_psql('postgres', q{
CREATE ROLE v_agent LOGIN;
CREATE TABLE public.vlab (id serial PRIMARY KEY, patient_id text, result text, hiv text);
INSERT INTO public.vlab (patient_id, result, hiv) VALUES ('P1', 'ok', 'neg'), ('P2', 'high', 'pos');
GRANT SELECT ON public.vlab TO v_agent;
SELECT agentauth.protect_table('public.vlab', 'patient_id', '{"id": "non_phi", "result": "lab", "hiv": "hiv"}');
-- the site adopts the treatment default (none is installed)
SELECT agentauth.set_default_decision('TREAT', '*', 'permit');
});
	my $agent = $node->safe_psql('postgres',
		q{SELECT agentauth.register_agent('v bot', 'v_agent', 'Dr. Émile "Q"', '{TREAT}', '{lab:read}')});
	my $tok = $node->safe_psql('postgres',
		qq{SELECT agentauth.issue_token('$agent', 'TREAT', on_behalf_of => 'dr_house')});
	$node->safe_psql('postgres',
		qq{SELECT agentauth.begin_session('$tok'); SELECT result FROM public.vlab WHERE patient_id = 'P1';},
		extra_params => [ '-U', 'v_agent' ]);
	$node->psql('postgres',
		qq{SELECT agentauth.begin_session('$tok'); SELECT hiv FROM public.vlab WHERE patient_id = 'P2';},
		extra_params => [ '-U', 'v_agent' ]);
	# the first session ended with its connection: the exiting backend
	# writes that record; wait for it so the log stops moving
	$node->poll_query_until('postgres',
		q{SELECT count(*) >= 1 FROM agentauth.audit_log WHERE event = 'session_end' AND db_role = 'v_agent'})
	  or die 'no session_end';
	for my $i (1 .. 12)
	{
		my $sql = sprintf(
			q{SELECT agentauth._audit('default_changed', '{"n": %d, "s": "é \"q\" \n", "a": [1, 2.50, null]}'::jsonb, NULL, NULL, 'P%d', 'public.t')},
			$i, $i);
		$node->safe_psql('postgres', $sql);
	}
}

# the chain in the database agrees with the SQL rendering of the encoding
is($node->safe_psql('postgres', q{
SELECT count(*) FROM (SELECT l, lag(l.row_hash) OVER (ORDER BY l.seq) AS before
                        FROM agentauth.audit_record l) s
 WHERE (s.l).row_hash <> digest((s.l).prev_hash || canon.stored(s.l), 'sha256')
    OR (s.l).prev_hash <> coalesce(s.before, decode(repeat('00', 32), 'hex'))}),
	'0', 'the stored chain matches an independent SQL encoding');

my $nrec = $node->safe_psql('postgres', 'SELECT count(*) FROM agentauth.audit_log');
my $head = $node->safe_psql('postgres',
	q{SELECT seq || ':' || encode(row_hash, 'hex') FROM agentauth.audit_log ORDER BY seq DESC LIMIT 1});
my ($head_seq, $head_hex) = split /:/, $head;

my $dir = PostgreSQL::Test::Utils::tempdir;
my $export = $node->safe_psql('postgres', 'SELECT * FROM agentauth.export_audit()');
my @lines = split /\n/, $export;
is(scalar(@lines), $nrec + 2, 'export: header, one line per record, end line');
like($lines[0], qr/^\{"agentauth_export" : 2, "first_seq" : 1, "anchor" : "0{64}"\}$/, 'header line');
like($lines[-1], qr/"end" : true, "records" : $nrec, "last_seq" : $head_seq, "head" : "$head_hex"/,
	'end line names the head');

{
	# a statement's one patient is stored as its version 1 record, not as
	# a unit of one entry (the units of many are checked below)
	ok(scalar(grep { /"event" : "access".*"patient" : "P1".*"columns" : \[".*"outcome" : "permit"/ && !/"entry_kinds"/ } @lines),
		'export holds an agent read with its columns (one patient: a record)');
	ok(scalar(grep { /"event" : "denied"/ } @lines), 'export holds a denial');
	ok(scalar(grep { /"delegation_chain" : \["/ } @lines), 'export holds a delegation chain');
}

sub write_file
{
	my ($name, @l) = @_;
	my $path = "$dir/$name";
	open my $fh, '>', $path or die;
	print $fh join("\n", @l), "\n";
	close $fh;
	return $path;
}

sub run_verify
{
	my (@args) = @_;
	my ($stdout, $stderr);
	IPC::Run::run([ $verify, @args ], '>', \$stdout, '2>', \$stderr);
	return ($? >> 8, $stdout . $stderr);
}

my ($rc, $out);

# intact, without and with the digest (both digest forms, and from a file)
my $good = write_file('good.jsonl', @lines);
($rc, $out) = run_verify($good);
is($rc, 0, 'intact export: exit 0');
like($out, qr/OK: $nrec records, seq 1\.\.$head_seq, chain intact/, 'summary names the records');
like($out, qr/digest: none given/, 'says no digest was given');
($rc, $out) = run_verify('-d', $head, $good);
is($rc, 0, 'intact export with its SEQ:HEX digest') or diag($out);
like($out, qr/digest: matches seq $head_seq/, 'digest matched');
($rc, $out) = run_verify('-d', "\\x$head_hex", $good);
is($rc, 0, 'intact export with a \\x-hex digest');
open my $dfh, '>', "$dir/digest" or die;
print $dfh $node->safe_psql('postgres',
	q{SELECT seq || '|\x' || encode(row_hash, 'hex') FROM agentauth.audit_log ORDER BY seq DESC LIMIT 1}), "\n";
close $dfh;
($rc, $out) = run_verify('-D', "$dir/digest", $good);
is($rc, 0, 'digest read from a file, psql row form');
# stdin
{
	my ($so, $se);
	IPC::Run::run([ $verify, '-q', '-' ], '<', $good, '>', \$so, '2>', \$se);
	is($? >> 8, 0, 'reads stdin');
	is($so, '', '-q prints nothing when intact');
}

# an earlier digest still verifies (the log grew since)
my $mid = $node->safe_psql('postgres',
	q{SELECT seq || ':' || encode(row_hash, 'hex') FROM agentauth.audit_log WHERE seq = 4});
($rc, $out) = run_verify('-d', $mid, $good);
is($rc, 0, 'an earlier digest matches its record');

# a changed line: one character of the event of record 3
my @changed = @lines;
$changed[3] =~ s/"event" : "(\w)/"event" : "Z/ or die "no event: $changed[3]";
($rc, $out) = run_verify(write_file('changed.jsonl', @changed));
is($rc, 1, 'changed line: exit 1');
like($out, qr/first bad seq 3: record changed/, 'changed line: seq 3 named');

# a changed line whose hashes were recomputed by the forger cannot be
# simulated without SHA-256 here; instead: NULL where there was text
my @nulled = @lines;
$nulled[5] =~ s/"outcome" : "\w+"/"outcome" : null/ or die;
($rc, $out) = run_verify(write_file('nulled.jsonl', @nulled));
like($out, qr/first bad seq 5: record changed/, 'NULL instead of a value is a change');
my @empty = @lines;
$empty[5] =~ s/"outcome" : "\w+"/"outcome" : ""/ or die;
($rc, $out) = run_verify(write_file('empty.jsonl', @empty));
like($out, qr/first bad seq 5: record changed/, 'an empty string instead of a value is a change');

# a dropped line
my @dropped = @lines;
splice(@dropped, 4, 1);
($rc, $out) = run_verify(write_file('dropped.jsonl', @dropped));
is($rc, 1, 'dropped line: exit 1');
like($out, qr/first bad seq 4: record 4 is missing \(found seq 5\)/, 'dropped line: seq 4 named');

# the first record dropped
my @dropfirst = @lines;
splice(@dropfirst, 1, 1);
($rc, $out) = run_verify(write_file('dropfirst.jsonl', @dropfirst));
like($out, qr/first bad seq 1: the export should start at seq 1/, 'dropped first record');

# a duplicated line
my @dup = @lines;
splice(@dup, 4, 0, $lines[4]);
($rc, $out) = run_verify(write_file('dup.jsonl', @dup));
is($rc, 1, 'duplicated line: exit 1');
like($out, qr/first bad seq 5: found seq 4 where seq 5 belongs/, 'duplicated line: seq 5 named');

# a reordered line
my @swapped = @lines;
@swapped[ 6, 7 ] = @swapped[ 7, 6 ];
($rc, $out) = run_verify(write_file('swapped.jsonl', @swapped));
is($rc, 1, 'reordered lines: exit 1');
like($out, qr/first bad seq 6: record 6 is missing \(found seq 7\)/, 'reordered lines: seq 6 named');

# renumbered to hide a drop: the chain link breaks
my @renum = @lines;
splice(@renum, 4, 1);
for my $k (4 .. $#renum - 1)
{
	$renum[$k] =~ s/"seq" : (\d+)/'"seq" : ' . ($1 - 1)/e;
}
($rc, $out) = run_verify(write_file('renum.jsonl', @renum));
like($out, qr/first bad seq 4: prev_hash does not link/, 'renumbering after a drop breaks the link');

# a wrong digest
my $wrong = $head_hex;
substr($wrong, 10, 1) = substr($wrong, 10, 1) eq 'a' ? 'b' : 'a';
($rc, $out) = run_verify('-d', "$head_seq:$wrong", $good);
is($rc, 1, 'wrong digest: exit 1');
like($out, qr/first bad seq $head_seq: record $head_seq does not match the digest/, 'wrong digest named');
($rc, $out) = run_verify('-d', $wrong, $good);
like($out, qr/the digest matches no record/, 'wrong hex-only digest');

# a removed tail: last two records dropped and the end line rewritten to
# match -- only the digest shows it
my @trunc = @lines[ 0 .. $#lines - 3 ];
my $lasth = ($trunc[-1] =~ /"row_hash" : "([0-9a-f]{64})"/)[0];
my $lasts = $head_seq - 2;
push @trunc, qq({"end" : true, "records" : @{[ $nrec - 2 ]}, "last_seq" : $lasts, "head" : "$lasth"});
my $truncf = write_file('trunc.jsonl', @trunc);
($rc, $out) = run_verify($truncf);
is($rc, 0, 'a consistently truncated export passes without a digest');
($rc, $out) = run_verify('-d', $head, $truncf);
is($rc, 1, 'truncated tail with a digest: exit 1');
like($out, qr/first bad seq @{[ $head_seq - 1 ]}: the chain ends at seq $lasts but the digest names seq $head_seq/,
	'truncated tail named');

# truncated file (no end line)
($rc, $out) = run_verify(write_file('cut.jsonl', @lines[ 0 .. $#lines - 2 ]));
like($out, qr/first bad seq $head_seq: the export ends without its end line/, 'cut file detected');

# records dropped before an intact end line
($rc, $out) = run_verify(write_file('tailgone.jsonl', @lines[ 0 .. $#lines - 3 ], $lines[-1]));
like($out, qr/first bad seq @{[ $head_seq - 1 ]}: records .* are missing before the end line/,
	'tail dropped before the end line');

# garbage
($rc, $out) = run_verify(write_file('garbage.jsonl', $lines[0], '{"seq": 1, "x": [1,}'));
like($out, qr/first bad seq 1: not valid JSON/, 'malformed line');
($rc, $out) = run_verify(write_file('notexport.jsonl', 'hello'));
like($out, qr/bad header line/, 'not an export');
($rc, $out) = run_verify('-d', 'xyz', $good);
is($rc, 2, 'bad digest argument: exit 2');

# from_seq > 1: anchored on the record before
my @part = split /\n/, $node->safe_psql('postgres', 'SELECT * FROM agentauth.export_audit(5)');
my $h4 = $node->safe_psql('postgres', q{SELECT encode(row_hash, 'hex') FROM agentauth.audit_log WHERE seq = 4});
like($part[0], qr/"first_seq" : 5, "anchor" : "$h4"/, 'partial export anchored on seq 4');
($rc, $out) = run_verify('-d', $head, write_file('part.jsonl', @part));
is($rc, 0, 'partial export verifies') or diag($out);
like($out, qr/anchor: $h4, the row_hash of seq 4/, 'summary names the anchor');

# past the end: an empty export anchored on the head
@part = split /\n/, $node->safe_psql('postgres', 'SELECT * FROM agentauth.export_audit(1000)');
is(scalar(@part), 2, 'export past the end: header and end line');
($rc, $out) = run_verify('-d', $head_hex, write_file('none.jsonl', @part));
is($rc, 0, 'empty export anchored on the head matches the digest') or diag($out);

# Edge values the scripted history does not produce -- times before 2000
# and at infinity, microseconds, NULL array elements, empty arrays and
# strings, control characters, non-BMP characters, odd jsonb -- rendered by
# the export's own line function and chained with the extension's SQL
# encoding (canonical_record), which must agree with the independent one
# above; then verified offline.
$node->safe_psql('postgres', q{
CREATE FUNCTION canon.edge_export() RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
    recs agentauth.audit_log[] := ARRAY[
      ROW(1, '2026-01-02 03:04:05.678901+00', 'access', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
          'triage-bot', 'reg_agent', 'b1eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 'dr_house',
          '{b1eebc99-9c0b-4ef8-bb6d-6bb9bd380a12,c1eebc99-9c0b-4ef8-bb6d-6bb9bd380a13}', 'TREAT', 'P1',
          'public."odd ""table"""', '{patient_id,value}', '{lab}', 'read', 3,
          '{"consent": ["c1eebc99-9c0b-4ef8-bb6d-6bb9bd380a13"]}', 'permit', 'qid 42', '127.0.0.1 psql',
          NULL, NULL, NULL)::agentauth.audit_log,
      ROW(2, '1999-12-31 23:59:59.999999+00', 'denied', NULL, '', 'reg_agent', NULL, NULL, '{}', 'TREAT',
          'P2', 'public.labs', '{}', '{NULL,lab}', 'read', 0, NULL, 'deny',
          E'line1\nline2\t"quoted" \\\\ back \x01\x1f', '', '{}', NULL, NULL)::agentauth.audit_log,
      ROW(3, 'infinity', 'access', NULL, '日本語 ☃ 𝄞', NULL, NULL, NULL, NULL, NULL, 'P1', NULL, NULL,
          NULL, 'read', -1, '[]', 'permit', NULL, NULL,
          '{"a": [1, 2.50, null, true, 1e3], "b": {"c": "\u00e9\n"}, "": ""}', NULL, NULL)::agentauth.audit_log,
      ROW(4, '-infinity', 'session_end', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
          NULL, NULL, NULL, -9223372036854775808, '"just a string"', 'permit', NULL, NULL, 'null',
          NULL, NULL)::agentauth.audit_log];
    r agentauth.audit_log;
    prev bytea := decode(repeat('00', 32), 'hex');
BEGIN
    RETURN NEXT json_build_object('agentauth_export', 1, 'first_seq', 1, 'anchor', encode(prev, 'hex'))::text;
    FOREACH r IN ARRAY recs LOOP
        r.prev_hash := prev;
        r.row_hash := digest(prev || agentauth.canonical_record(r), 'sha256');
        IF r.row_hash <> digest(prev || canon.rec(r), 'sha256') THEN
            RAISE EXCEPTION 'the two SQL encodings differ at seq %', r.seq;
        END IF;
        prev := r.row_hash;
        RETURN NEXT agentauth._export_line(ROW(r.*, NULL, NULL, NULL, NULL, NULL)::agentauth.audit_record);
    END LOOP;
    RETURN NEXT json_build_object('end', true, 'records', 4, 'last_seq', 4, 'head', encode(prev, 'hex'))::text;
END
$f$;
});
my @edge = split /\n/, $node->safe_psql('postgres', 'SELECT * FROM canon.edge_export()');
is(scalar(@edge), 6, 'edge export: header, 4 records, end line');
like($edge[3], qr/"logged_at" : 9223372036854775807,/, 'infinity is the int64 maximum');
like($edge[2], qr/"logged_at" : -1,.*"data_classes" : \[null,"lab"\].*"statement" : "line1\\nline2\\t\\"quoted\\" \\\\ back \\u0001\\u001f"/, 'before 2000 is negative; NULL elements kept');
($rc, $out) = run_verify(write_file('edge.jsonl', @edge));
is($rc, 0, 'edge values verify') or diag($out . join("\n", @edge));
# the same text written with JSON escapes is the same record
my @esc = @edge;
$esc[3] =~ s/𝄞/\\ud834\\udd1e/ or die "no clef";
$esc[3] =~ s/☃/\\u2603/ or die "no snowman";
($rc, $out) = run_verify(write_file('escaped.jsonl', @esc));
is($rc, 0, 'JSON escapes (surrogate pairs too) decode to the same bytes') or diag($out);
# a NULL element is not an empty string; [] is not null
my @ne = @edge;
$ne[2] =~ s/\[null,"lab"\]/["","lab"]/ or die;
($rc, $out) = run_verify(write_file('nullelem.jsonl', @ne));
like($out, qr/first bad seq 2: record changed/, 'a NULL element is not an empty string');
@ne = @edge;
$ne[2] =~ s/"columns" : \[\]/"columns" : null/ or die;
($rc, $out) = run_verify(write_file('emptyarr.jsonl', @ne));
like($out, qr/first bad seq 2: record changed/, 'an empty array is not NULL');
# jsonb is its exact text: re-spacing it is a change
@ne = @edge;
$ne[3] =~ s/2\.50/2.5/ or die;
($rc, $out) = run_verify(write_file('jsonb.jsonl', @ne));
like($out, qr/first bad seq 3: record changed/, 'jsonb text is hashed as written');
# a lone surrogate or \u0000 is malformed
@ne = @edge;
$ne[3] =~ s/𝄞/\\ud834/ or die;
($rc, $out) = run_verify(write_file('lone.jsonl', @ne));
like($out, qr/first bad seq 3: not valid JSON: lone surrogate/, 'lone surrogate refused');
@ne = @edge;
$ne[3] =~ s/𝄞/\\u0000/ or die;
($rc, $out) = run_verify(write_file('nul.jsonl', @ne));
like($out, qr/first bad seq 3: not valid JSON: \\u0000 cannot be part of a text value/, '\u0000 refused');

# only auditors may export
$node->safe_psql('postgres', 'CREATE ROLE v_nobody LOGIN; CREATE ROLE v_aud LOGIN IN ROLE agentauth_auditor');
my ($r2, $o2, $e2) = $node->psql('postgres', 'SELECT count(*) FROM agentauth.export_audit()',
	extra_params => [ '-U', 'v_nobody' ]);
like($e2, qr/permission denied/, 'a non-auditor cannot export');
is($node->safe_psql('postgres', 'SELECT count(*) FROM agentauth.export_audit()',
	extra_params => [ '-U', 'v_aud' ]), $nrec + 2, 'an auditor can');

# after a purge the export starts at the cut; its anchor is the head the
# audit_purged record kept, and the verifier says so
my $cut = $node->safe_psql('postgres', 'SELECT now()');
$node->safe_psql('postgres',
	q{SELECT agentauth._audit('default_changed', '{"after": "cut"}'::jsonb)});
$node->poll_query_until('postgres', qq{SELECT now() - interval '1 second' > '$cut'::timestamptz})
  or die 'clock did not move';
$node->safe_psql('postgres', qq{SELECT agentauth.purge_audit('$cut')});
my $after = $node->safe_psql('postgres', 'SELECT min(seq) FROM agentauth.audit_log');
ok($after > 1, "records before the cut are gone (first seq now $after)");
my @purged = split /\n/, $node->safe_psql('postgres', 'SELECT * FROM agentauth.export_audit()');
like($purged[0], qr/"first_seq" : $after,/, 'the export starts at the cut');
$head = $node->safe_psql('postgres',
	q{SELECT seq || ':' || encode(row_hash, 'hex') FROM agentauth.audit_log ORDER BY seq DESC LIMIT 1});
($rc, $out) = run_verify('-d', $head, write_file('purged.jsonl', @purged));
is($rc, 0, 'a purged log verifies from its anchor') or diag($out);
like($out, qr/confirmed by the audit_purged record seq \d+/, 'the anchor is the one the purge recorded');

# a unit of several entries (a read of every patient): verified, and each
# change to one of its entries found.  Five patients are read by their own
# consent: the unit stores those as consent ids (entry_consents), which the
# export shows, and the verifiers hash, as the authorities they are.
$node->safe_psql('postgres', q{
	INSERT INTO public.vlab (patient_id, result, hiv)
	SELECT 'Q' || i, 'r' || i, 'neg' FROM generate_series(1, 40) i;
	SELECT agentauth.record_consent('Q' || i, 'permit', '{TREAT}') FROM generate_series(1, 5) i});
{
	my $tok2 = $node->safe_psql('postgres', q{
		SELECT agentauth.issue_token(id, 'TREAT') FROM agentauth.principal WHERE name = 'v bot'});
	$node->safe_psql('postgres',
		qq{SELECT agentauth.begin_session('$tok2'); SELECT count(result) FROM public.vlab;},
		extra_params => [ '-U', 'v_agent' ]);
}
$node->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM agentauth.audit_record WHERE cardinality(entry_kinds) > 10})
  or die 'no unit';
my @ulines = split /\n/, $node->safe_psql('postgres', 'SELECT * FROM agentauth.export_audit()');
my ($ui) = grep { $ulines[$_] =~ /"entry_kinds" : \[[0-9,]{20,}/ } 0 .. $#ulines;
ok(defined $ui, 'the export holds a unit of many entries');
my ($useq) = $ulines[$ui] =~ /"seq" : (\d+)/;
is($node->safe_psql('postgres',
		qq{SELECT cardinality(entry_consents) - cardinality(array_positions(entry_consents, NULL))
		     FROM agentauth.audit_record WHERE seq = $useq}),
	'5', "the unit stores its five consents' authorities as their ids");
is(scalar(() = $ulines[$ui] =~ /\{\\"consents\\": \[\\"[0-9a-f-]{36}\\"\]\}/g), 5,
	'the export shows them as the authorities they are');
($rc, $out) = run_verify(write_file('units.jsonl', @ulines));
is($rc, 0, 'an export with a unit of many entries verifies') or diag($out);
for my $case (
	[ 'a patient', sub { $_[0] =~ s/"entry_patients" : \["/"entry_patients" : ["X/ } ],
	[ 'a row count', sub { $_[0] =~ s/"entry_row_counts" : \[(\d+)/'"entry_row_counts" : [' . ($1 + 1)/e } ],
	[ 'a kind', sub { $_[0] =~ s/"entry_kinds" : \[0/"entry_kinds" : [3/ } ],
	[ 'an authority', sub { $_[0] =~ s/"entry_authorities" : \["\{/"entry_authorities" : [null, "{/ } ],
	[ 'a consent id', sub { $_[0] =~ s/(\{\\"consents\\": \[\\")([0-9a-f])/$1 . ($2 eq '0' ? '1' : '0')/e } ],
	[ 'the entries dropped', sub { $_[0] =~ s/, "entry_kinds" : .*\}$/}/ } ],
	[ 'a patient added (the arrays disagree)', sub { $_[0] =~ s/"entry_patients" : \["/"entry_patients" : ["X", "/ } ],
	[ 'a kind out of range', sub { $_[0] =~ s/"entry_kinds" : \[0/"entry_kinds" : [7/ } ],
	[ 'a NULL patient', sub { $_[0] =~ s/"entry_patients" : \["[^"]*"/"entry_patients" : [null/ } ])
{
	my ($what, $edit) = @$case;
	my @t = @ulines;
	$edit->($t[$ui]) or die "cannot change $what";
	($rc, $out) = run_verify(write_file('unit-tampered.jsonl', @t));
	is($rc, 1, "a unit's $what changed: exit 1");
	like($out, qr/first bad seq $useq: /, "a unit's $what changed: its seq named") or diag($out);
}

# the same changes with every hash recomputed (a tamperer with the SQL
# encoding), and the exporter's "malformed" flag taken out: aa_verify
# checks a unit's shape itself
for my $case (
	[ 'a patient added', q{entry_patients = entry_patients || '{X}'::text[]}, qr/does not hold the unit's \d+ entries/ ],
	[ 'a kind out of range', q{entry_kinds[1] = 7}, qr/element 1 of "entry_kinds" is not a valid entry/ ],
	[ 'a NULL row count', q{entry_row_counts[1] = NULL}, qr/element 1 of "entry_row_counts" is not a valid entry/ ])
{
	my ($what, $change, $says) = @$case;
	my $out = $node->safe_psql('postgres', qq{
		BEGIN;
		UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'agentauth.audit_record'::regclass;
		UPDATE pg_catalog.pg_class SET relhastriggers = true WHERE oid = 'agentauth.audit_record'::regclass;
		UPDATE agentauth.audit_record SET $change WHERE seq = $useq;
		DO \$\$
		DECLARE r agentauth.audit_record; prev bytea;
		BEGIN
		    SELECT row_hash INTO prev FROM agentauth.audit_record WHERE seq < $useq ORDER BY seq DESC LIMIT 1;
		    FOR r IN SELECT * FROM agentauth.audit_record WHERE seq >= $useq ORDER BY seq LOOP
		        r.prev_hash := prev;
		        r.row_hash := digest(prev || agentauth.canonical_stored(r), 'sha256');
		        UPDATE agentauth.audit_record SET prev_hash = r.prev_hash, row_hash = r.row_hash WHERE seq = r.seq;
		        prev := r.row_hash;
		    END LOOP;
		END \$\$;
		SELECT * FROM agentauth.export_audit();
		ROLLBACK;});
	my @t = map { s/, "malformed" : true//r } split /\n/, $out;
	($rc, $out) = run_verify(write_file('unit-rehashed.jsonl', @t));
	is($rc, 1, "a unit with $what, rehashed: exit 1");
	like($out, qr/first bad seq $useq: .*$says/, "a unit with $what, rehashed: aa_verify says so") or diag($out);
}

# characters beyond ASCII in a record (a patient id an agent wrote: found
# by review), exported the way the README says (psql -XAtq, as safe_psql
# runs it): psql dropped U+1FFFF and U+10FFFF, and aa_verify failed an
# intact log.  The export writes each as a \u escape.
$node->safe_psql('postgres', q{
	SELECT agentauth._audit('t60_wide_patient', NULL, NULL, NULL,
		E'P-\u00e9\u65e5-\U0001F600-\U0001FFFF-\U0010FFFF-\uFFFE', NULL)});
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM agentauth.audit_log WHERE patient LIKE 'P-%'})
	or die 'the record with odd characters was not written';
my @wide = split /\n/, $node->safe_psql('postgres', 'SELECT * FROM agentauth.export_audit()');
my ($wline) = grep { /"patient" : "P-/ } @wide;
is($wline =~ /[^\x00-\x7f]/ ? 'not ascii' : 'ascii', 'ascii', 'an export line is ASCII');
like($wline, qr/"patient" : "P-\\u00e9\\u65e5-\\ud83d\\ude00-\\ud83f\\udfff-\\udbff\\udfff-\\ufffe"/,
	'characters beyond ASCII as \\u escapes, surrogate pairs beyond U+FFFF');
($rc, $out) = run_verify(write_file('wide.jsonl', @wide));
is($rc, 0, 'an export with characters beyond ASCII, through psql: aa_verify passes') or diag($out);
is($node->safe_psql('postgres', 'SELECT ok FROM agentauth.verify_audit()'), 't',
	'verify_audit agrees');

$node->stop;
done_testing();
