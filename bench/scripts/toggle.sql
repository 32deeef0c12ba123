-- a consent manager withdrawing and re-recording one patient's consent
\set p random(1, :npat)
BEGIN;
SELECT agentauth.withdraw_consent(id, 'bench toggle')
  FROM agentauth.consents
 WHERE patient = 'P' || lpad(:p::text, 6, '0') AND decision = 'permit' AND withdrawn_at IS NULL;
SELECT agentauth.record_consent('P' || lpad(:p::text, 6, '0'), 'permit', '{TREAT}', '{lab}')
 WHERE :p % 20 > 1;
COMMIT;
