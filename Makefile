# agentauth -- PGXS build
#
# The version is written once, in agentauth.control.  The install script
# agentauth--$(EXTVERSION).sql is built from the fragments in src/sql/, one
# per concern, concatenated in name order.

EXTENSION   = agentauth
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" agentauth.control)

MODULE_big  = agentauth
OBJS        = agentauth.o $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
SQL_PARTS   = $(sort $(wildcard src/sql/*.sql))
DATA_built  = agentauth--$(EXTVERSION).sql
# the update scripts, and the 1.0 install script as released (frozen in
# test/fixtures): CREATE EXTENSION agentauth VERSION '1.0' followed by ALTER
# EXTENSION agentauth UPDATE is what t/090_upgrade.pl compares with a fresh
# install of this version
DATA        = $(wildcard sql-upgrades/*.sql) test/fixtures/agentauth--1.0.sql
PG_CPPFLAGS = -I$(srcdir)/src -I$(libpq_srcdir)
# OpenSSL 3: chain.c fetches SHA-256 once instead of on every hash
SHLIB_LINK  = $(filter -lcrypto,$(LIBS))
# libpq: a hot standby's forwarder sends audit records to the primary
# (forward.c), as dblink and postgres_fdw link it
SHLIB_LINK_INTERNAL = $(libpq)

REGRESS      = $(basename $(notdir $(sort $(wildcard sql/*.sql))))
REGRESS_OPTS = --temp-config=$(srcdir)/test/agentauth.conf --temp-instance=tmp_check
ISOLATION      = $(basename $(notdir $(sort $(wildcard specs/*.spec))))
ISOLATION_OPTS = --temp-config=$(srcdir)/test/isolation.conf --temp-instance=tmp_check_iso
TAP_TESTS    = 1

EXTRA_CLEAN = agentauth--$(EXTVERSION).sql tools/aa_verify tools/aa_feed tmp_check_iso output_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track header dependencies: every module includes the
# shared header (and access*.c the private one), so a change to any header
# rebuilds everything.
$(OBJS): $(wildcard $(srcdir)/src/*.h)

agentauth--$(EXTVERSION).sql: $(SQL_PARTS) agentauth.control
	cat $(SQL_PARTS) > $@

# The offline audit verifier: plain C and libc, no PostgreSQL headers or
# libraries (it must not share code with the extension).
AA_VERIFY_CFLAGS = -O2 -std=c99 -Wall -Wextra -Werror
all: tools/aa_verify
tools/aa_verify: tools/aa_verify.c
	$(CC) $(AA_VERIFY_CFLAGS) -o $@ $<
install: install-aa-verify
.PHONY: install-aa-verify
install-aa-verify: tools/aa_verify
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) tools/aa_verify '$(DESTDIR)$(bindir)/aa_verify'

# The feed to the audit repository (FHIR PUT or syslog over TLS): a client
# program of its own, with libpq and OpenSSL.
AA_FEED_CFLAGS = -O2 -std=c99 -Wall -Wextra -Werror -I$(shell $(PG_CONFIG) --includedir)
AA_FEED_LIBS = -L$(shell $(PG_CONFIG) --libdir) -lpq -lssl -lcrypto
all: tools/aa_feed
tools/aa_feed: tools/aa_feed.c
	$(CC) $(AA_FEED_CFLAGS) -o $@ $< $(AA_FEED_LIBS)
install: install-aa-feed
.PHONY: install-aa-feed
install-aa-feed: tools/aa_feed
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) tools/aa_feed '$(DESTDIR)$(bindir)/aa_feed'

# CI and developers: warnings are errors
ifdef WERROR
override CFLAGS += -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Werror
endif

.PHONY: demo demo-stop test
demo:
	bash scripts/demo.sh

demo-stop:
	bash scripts/demo.sh stop

test:
	bash scripts/test.sh

# One suite at a time (make installcheck runs all three and stops at the
# first failure; scripts/test.sh runs each and counts).
.PHONY: check-regress check-isolation check-tap
check-regress: all
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)
check-isolation: all
ifneq ($(strip $(ISOLATION)),)
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)
endif
check-tap: all
	$(prove_installcheck)
