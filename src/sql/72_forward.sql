-- Hot standbys (SPEC 6.9): the primary's side of forwarding.  A standby's
-- audit forwarder (src/forward.c) calls this, as a login granted
-- agentauth_forwarder, with a batch of its records; they are checked, named
-- after the standby (client gets " standby=<name>") and queued for this
-- server's audit writer, and the call returns once the writer has
-- committed them.  Not SECURITY DEFINER: the C function checks the
-- caller's membership itself and only appends through the writer.
CREATE FUNCTION agentauth.forward_audit(standby text, batch bytea) RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'aa_forward_audit';
REVOKE ALL ON FUNCTION agentauth.forward_audit(text, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.forward_audit(text, bytea) TO agentauth_forwarder;
