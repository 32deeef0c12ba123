-- agentauth 1.0 -> 1.1 (ALTER EXTENSION agentauth UPDATE)
\echo Use "ALTER EXTENSION agentauth UPDATE" to load this file. \quit
--
-- Every change to the install script (src/sql/*.sql) since 1.0 is repeated
-- here, so that an updated database has exactly what a fresh 1.1 install
-- has; t/090_upgrade.pl compares the two, object by object.  A 1.0 site's
-- rows (principals, tokens, consents, defaults, the audit log) are kept.
-- Changes are listed in the order they were made, each under the issue it
-- belongs to.
