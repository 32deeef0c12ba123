/*
 * aa_feed -- stream agentauth's audit records, as they commit, to the
 * hospital's audit repository (IHE ATNA):
 *
 *   --fhir URL       PUT <URL>/AuditEvent/agentauth-<seq> (FHIR R4 JSON,
 *                    from agentauth.audit_event_fhir), http or https.  A PUT
 *                    of the same id is idempotent, and the feed moves on
 *                    only after a 2xx answer: exactly-once effect.
 *   --syslog H:P     RFC 5424 messages over TLS with RFC 5425 framing
 *                    (octet counting), the AuditEvent JSON as the message,
 *                    the seq in structured data [agentauth@32473 seq="N"].
 *                    Syslog has no acknowledgement: see "Restarts" below.
 *
 * It reads the log's records a window of seqs at a time
 * (agentauth._log_next, the rows of the view agentauth.audit_log found by
 * the stored log's primary key, so a poll costs the same on a log of any
 * size and however far behind; past a purged start or a hole, the window
 * moves on to the next stored record; by seq, in order; seq grows
 * in commit order, so a record is read once it has committed), as a login
 * granted agentauth_auditor, over a libpq connection
 * (--dbname; passwords in ~/.pgpass or PGPASSFILE).  It is a separate
 * program: nothing on an agent statement's path waits for it, and its
 * credentials (--token-file, --cert/--key) are files, never settings.
 *
 * Restarts.  The last seq delivered is kept in --state FILE (written to a
 * temporary file, fsync'ed, renamed).  On start, and after any failure of
 * the database or the collector, it resumes after that seq.  FHIR: the
 * state moves after the server's 2xx; a crash between the answer and the
 * state write re-sends the same PUT, which changes nothing.  Syslog: the
 * state moves after the write; on every (re)connect the feed first re-sends
 * the last --replay records (default 100) before it, so records lost in
 * flight when the collector died are sent again; the collector drops
 * duplicates by the seq in the structured data.
 *
 * Plain C99 + POSIX, libpq and OpenSSL.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <libgen.h>

#include <libpq-fe.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

static const char *opt_dbname = "";
static const char *opt_state = NULL;
static const char *opt_fhir = NULL;
static const char *opt_syslog = NULL;
static const char *opt_ca = NULL;
static const char *opt_cert = NULL;
static const char *opt_key = NULL;
static const char *opt_token_file = NULL;
static long opt_interval_ms = 500;
static int	opt_timeout_s = 30;
static const char *opt_name = NULL;
static char default_name[4096 + 300];
static int opt_batch = 200;
static int opt_replay = 100;
static int opt_once = 0;
static long long opt_from = 0;

/* the destination */
static int use_tls = 0;
static char host[256];
static char port[16];
static char base_path[1024];
static char token[4096];
static char hostname[256];

static int sock = -1;
static SSL_CTX *ctx = NULL;
static SSL *ssl = NULL;
static volatile sig_atomic_t stop = 0;

static void
on_signal(int sig)
{
	(void) sig;
	stop = 1;
}

static void
logmsg(const char *fmt, ...)
{
	va_list		ap;
	char		ts[32];
	time_t		now = time(NULL);
	struct tm	tmv;

	gmtime_r(&now, &tmv);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tmv);
	fprintf(stderr, "aa_feed %s: ", ts);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
die(const char *fmt, ...)
{
	va_list		ap;

	fprintf(stderr, "aa_feed: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void
sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !stop)
		;
}

/* ---------------- the state file ---------------- */

/*
 * The state file holds the last seq delivered and, after it, that record's
 * row_hash (hex): on every connection the feed checks that the log still
 * holds that record (check_history), so that a database on another
 * history -- a standby promoted before it received what the feed had
 * delivered, a backup restored to an earlier point -- is not taken for
 * the same log (1.1, found by review: after a failover the feed went on
 * past seqs the new primary had given to other records, and said
 * nothing).  A state file of an earlier aa_feed holds the seq alone.
 */
static char last_hash[65] = "";

static long long
state_load(void)
{
	FILE	   *f = fopen(opt_state, "r");
	long long	v = opt_from;
	char		h[65] = "";

	if (f == NULL)
	{
		if (errno != ENOENT)
			die("cannot read %s: %s", opt_state, strerror(errno));
		return v;
	}
	if (fscanf(f, "%lld", &v) != 1 || v < 0)
		die("%s does not hold a seq", opt_state);
	if (fscanf(f, " %64[0-9a-f]", h) == 1 && strlen(h) == 64)
		snprintf(last_hash, sizeof(last_hash), "%s", h);
	fclose(f);
	return v;
}

static void
state_save(long long seq)
{
	char		tmp[4096];
	char		buf[128];
	int			fd;
	int			n;

	snprintf(tmp, sizeof(tmp), "%s.tmp", opt_state);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("cannot write %s: %s", tmp, strerror(errno));
	n = snprintf(buf, sizeof(buf), "%lld%s%s\n", seq, last_hash[0] ? " " : "", last_hash);
	if (write(fd, buf, n) != n || fsync(fd) != 0 || close(fd) != 0)
		die("cannot write %s: %s", tmp, strerror(errno));
	if (rename(tmp, opt_state) != 0)
		die("cannot rename %s: %s", tmp, strerror(errno));
}

/* ---------------- the connection to the collector ---------------- */

static void
conn_close(void)
{
	if (ssl)
	{
		SSL_shutdown(ssl);
		SSL_free(ssl);
		ssl = NULL;
	}
	if (sock >= 0)
		close(sock);
	sock = -1;
}

/*
 * A collector that stops answering, or a network that drops the
 * connection without a word, must not hold the feed for ever (1.1: it sat
 * in read() with no log line): every connect, write and read of the socket
 * -- TLS's too, which goes through it -- gives up after --timeout seconds,
 * and the connection is dropped and tried again with the usual backoff.
 * Keepalives find a peer that went away while the feed was idle.
 */
static void
set_timeouts(void)
{
	struct timeval tv;
	int			one = 1;

	tv.tv_sec = opt_timeout_s;
	tv.tv_usec = 0;
	(void) setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void) setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	(void) setsockopt(sock, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

/* why a read or write of the collector's connection failed */
static const char *
io_failure(void)
{
	static char why[128];

	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS)
		snprintf(why, sizeof(why), "no answer within %d s (--timeout)", opt_timeout_s);
	else if (errno != 0)
		snprintf(why, sizeof(why), "%s", strerror(errno));
	else
		snprintf(why, sizeof(why), "the connection was closed");
	return why;
}

static int
conn_open(void)
{
	struct addrinfo hints,
			   *res,
			   *ai;
	int			rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
	{
		logmsg("cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next)
	{
		sock = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (sock < 0)
			continue;
		set_timeouts();
		if (connect(sock, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(sock);
		sock = -1;
	}
	freeaddrinfo(res);
	if (sock < 0)
	{
		logmsg("cannot connect to %s:%s: %s", host, port, strerror(errno));
		return -1;
	}

	/*
	 * Every request is written whole and then waited on: with Nagle's
	 * algorithm its last segment waited for the collector's delayed ACK
	 * (40 ms a record, 12-25 records a second at most)
	 */
	{
		int			one = 1;

		(void) setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (!use_tls)
		return 0;
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, sock);
	SSL_set_tlsext_host_name(ssl, host);
	SSL_set1_host(ssl, host);
	errno = 0;
	if (SSL_connect(ssl) != 1)
	{
		char		err[256];
		unsigned long e = ERR_get_error();

		if (e != 0)
			ERR_error_string_n(e, err, sizeof(err));
		else
			snprintf(err, sizeof(err), "%s", io_failure());
		logmsg("TLS handshake with %s:%s failed: %s", host, port, err);
		conn_close();
		return -1;
	}
	return 0;
}

static int
conn_write(const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n;

		errno = 0;
		n = use_tls ? SSL_write(ssl, buf, (int) len) : write(sock, buf, len);
		if (n <= 0)
		{
			if (!use_tls && n < 0 && errno == EINTR)
				continue;
			logmsg("write to %s:%s failed: %s", host, port, io_failure());
			return -1;
		}
		buf += n;
		len -= (size_t) n;
	}
	return 0;
}

static ssize_t
conn_read(char *buf, size_t len)
{
	for (;;)
	{
		ssize_t		n;

		errno = 0;
		n = use_tls ? SSL_read(ssl, buf, (int) len) : read(sock, buf, len);
		if (n < 0 && !use_tls && errno == EINTR)
			continue;
		if (n <= 0)
			logmsg("read from %s:%s failed: %s", host, port, io_failure());
		return n;
	}
}

/* ---------------- FHIR: PUT AuditEvent/agentauth-<seq> ---------------- */

static char rbuf[65536];
static size_t rlen = 0;

/* a line of the answer (CRLF stripped) into line; -1 on a closed connection */
static int
read_line(char *line, size_t size)
{
	for (;;)
	{
		char	   *nl = memchr(rbuf, '\n', rlen);
		ssize_t		n;

		if (nl)
		{
			size_t		l = (size_t) (nl - rbuf);

			if (l > 0 && rbuf[l - 1] == '\r')
				l--;
			if (l >= size)
				l = size - 1;
			memcpy(line, rbuf, l);
			line[l] = '\0';
			rlen -= (size_t) (nl - rbuf) + 1;
			memmove(rbuf, nl + 1, rlen);
			return 0;
		}
		if (rlen == sizeof(rbuf))
			return -1;
		n = conn_read(rbuf + rlen, sizeof(rbuf) - rlen);
		if (n <= 0)
			return -1;
		rlen += (size_t) n;
	}
}

static int
skip_bytes(long long n)
{
	while (n > 0)
	{
		ssize_t		r;

		if (rlen > 0)
		{
			size_t		k = (size_t) (n < (long long) rlen ? n : (long long) rlen);

			rlen -= k;
			memmove(rbuf, rbuf + k, rlen);
			n -= (long long) k;
			continue;
		}
		r = conn_read(rbuf, sizeof(rbuf));
		if (r <= 0)
			return -1;
		rlen = (size_t) r;
	}
	return 0;
}

/* 1: delivered; 0: refused by the server (an error: stop); -1: retry */
static int
fhir_put(long long seq, const char *json)
{
	char		head[8192];
	char		line[8192];
	char	   *req;
	size_t		jlen = strlen(json);
	int			rc;
	int			status = 0;
	long long	clen = -1;
	int			chunked = 0;
	int			close_after = 0;
	int			n;

	if (sock < 0)
	{
		rlen = 0;
		if (conn_open() != 0)
			return -1;
	}
	n = snprintf(head, sizeof(head),
				 "PUT %s/AuditEvent/agentauth-%lld HTTP/1.1\r\n"
				 "Host: %s:%s\r\n"
				 "Content-Type: application/fhir+json\r\n"
				 "Accept: application/fhir+json\r\n"
				 "Content-Length: %zu\r\n"
				 "%s%s%s"
				 "\r\n",
				 base_path, seq, host, port, jlen,
				 token[0] ? "Authorization: Bearer " : "", token, token[0] ? "\r\n" : "");
	if (n >= (int) sizeof(head))
		die("request head too long");
	/* the head and the body in one write: one TLS record, one segment */
	req = malloc((size_t) n + jlen);
	if (req == NULL)
		die("out of memory");
	memcpy(req, head, (size_t) n);
	memcpy(req + n, json, jlen);
	rc = conn_write(req, (size_t) n + jlen);
	free(req);
	if (rc != 0)
		goto retry;
interim:
	if (read_line(line, sizeof(line)) != 0 || sscanf(line, "HTTP/%*s %d", &status) != 1)
		goto retry;
	for (;;)
	{
		if (read_line(line, sizeof(line)) != 0)
			goto retry;
		if (line[0] == '\0')
			break;
		if (status >= 100 && status < 200)
			continue;			/* an interim answer's fields */
		if (strncasecmp(line, "Content-Length:", 15) == 0)
			clen = atoll(line + 15);
		else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strstr(line, "chunked"))
			chunked = 1;
		else if (strncasecmp(line, "Connection:", 11) == 0 && strstr(line + 11, "close"))
			close_after = 1;
	}
	/*
	 * An interim answer (100 Continue, 103 Early Hints) comes before the
	 * final one (RFC 9110 15.2; 1.1, found by review: taken for a refusal,
	 * and the feed stopped)
	 */
	if (status >= 100 && status < 200)
		goto interim;
	if (chunked)
	{
		for (;;)
		{
			long long	sz;

			if (read_line(line, sizeof(line)) != 0)
				goto retry;
			sz = strtoll(line, NULL, 16);
			if (sz == 0)
			{
				if (read_line(line, sizeof(line)) != 0)
					goto retry;
				break;
			}
			if (skip_bytes(sz + 2) != 0)
				goto retry;
		}
	}
	else if (clen >= 0)
	{
		if (skip_bytes(clen) != 0)
			goto retry;
	}
	else
		close_after = 1;
	if (close_after)
		conn_close();
	if (status >= 200 && status < 300)
		return 1;
	if (status == 408 || status == 429 || status >= 500)
	{
		logmsg("seq %lld: the server answered %d; retrying", seq, status);
		conn_close();
		return -1;
	}
	logmsg("seq %lld: the server refused the AuditEvent (HTTP %d)", seq, status);
	return 0;
retry:
	conn_close();
	return -1;
}

/* ---------------- syslog over TLS (RFC 5424, RFC 5425) ---------------- */

static int
syslog_send(long long seq, const char *logged_at, const char *json)
{
	char		head[1024];
	char	   *msg;
	size_t		mlen;
	char		frame[32];
	int			n;
	int			fn;
	int			rc;

	if (sock < 0)
		return -1;
	/* PRI 85 = facility 10 (security/authorization) * 8 + severity 5 (notice) */
	n = snprintf(head, sizeof(head), "<85>1 %s %s agentauth %d IHE+FHIR [agentauth@32473 seq=\"%lld\"] ",
				 logged_at, hostname, (int) getpid(), seq);
	mlen = (size_t) n + strlen(json);
	/* the RFC 5425 frame, its length first, in one write */
	fn = snprintf(frame, sizeof(frame), "%zu ", mlen);
	msg = malloc((size_t) fn + mlen + 1);
	if (msg == NULL)
		die("out of memory");
	memcpy(msg, frame, (size_t) fn);
	memcpy(msg + fn, head, (size_t) n);
	memcpy(msg + fn + n, json, strlen(json) + 1);
	rc = conn_write(msg, (size_t) fn + mlen) == 0 ? 1 : -1;
	free(msg);
	if (rc < 0)
		conn_close();
	return rc;
}

/* ---------------- the log ---------------- */

static PGconn *db = NULL;

/*
 * Tell the database how far this feed has delivered
 * (agentauth.feed_delivered, as the auditor login the feed reads with):
 * purge_audit() then removes no record the feed has still to send, and
 * agentauth.audit_feeds shows its backlog.  Said once a batch, and as soon
 * as the database is reached -- before the collector, so that a feed whose
 * collector is down is registered too.  Returns -1 when another connection
 * holds the name (wait and retry).  A database that cannot take a report
 * (a hot standby, an extension before 1.1) is said once and not asked
 * again on that connection; one that refuses it (a name it does not take,
 * a position past its head: a state file of another log, another login's
 * feed) stops the feed, which would otherwise deliver unprotected by the
 * purge's check.
 */
static long long reported = -1;
static int	cannot_report = 0;	/* this connection's database takes no report */

/* is the database a hot standby? */
static int
in_recovery(void)
{
	PGresult   *r = PQexec(db, "SELECT pg_catalog.pg_is_in_recovery()");
	int			yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		strcmp(PQgetvalue(r, 0, 0), "t") == 0;

	PQclear(r);
	return yes;
}

static int
report_position(long long seq)
{
	char		s[32];
	const char *params[2] = {opt_name, s};
	PGresult   *r;
	const char *state;
	static int	said = 0;

	if (db == NULL || seq == reported || cannot_report)
		return 0;
	snprintf(s, sizeof(s), "%lld", seq);
	r = PQexecParams(db, "SELECT agentauth.feed_delivered($1, $2::bigint)",
					 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
	{
		reported = seq;
		PQclear(r);
		return 0;
	}
	state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	/*
	 * Another connection holds the name: a second feed of the name, or this
	 * feed's own connection before a network break, which the server has
	 * not seen go yet.  Wait and try again (the name is free when that
	 * connection ends); deliver nothing meanwhile.
	 */
	if (state != NULL && strcmp(state, "55006") == 0)
	{
		logmsg("waiting for the name: %s", PQerrorMessage(db));
		PQclear(r);
		return -1;
	}
	/*
	 * A hot standby (read only) takes no report: said once, and not asked
	 * again on this connection (each refusal is an ERROR in its server
	 * log, one a poll).  (42883: an extension before 1.1, which has no
	 * _log_next either: the feed delivers nothing from it.)
	 */
	if (state != NULL && strcmp(state, "25006") == 0 && !in_recovery())
	{
		char		msg[1024];

		/* read only, yet no standby: the feed would go unprotected */
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(db));
		PQclear(r);
		die("the database refused this feed's position (feed \"%s\", seq %lld): %s", opt_name, seq, msg);
	}
	if (state != NULL && (strcmp(state, "25006") == 0 || strcmp(state, "42883") == 0))
	{
		if (!said)
			logmsg("the database cannot take the feed's position (%s): purge_audit on the primary will not wait for this feed; point --dbname at the primary",
				   strcmp(state, "25006") == 0 ? "a hot standby, read only" : "agentauth before 1.1");
		said = 1;
		cannot_report = 1;
	}
	else if (state != NULL && strncmp(state, "08", 2) != 0 && strncmp(state, "57", 2) != 0 &&
			 strncmp(state, "40", 2) != 0 && strncmp(state, "53", 2) != 0)
	{
		char		msg[1024];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(db));
		PQclear(r);
		die("the database refused this feed's position (feed \"%s\", seq %lld): %s", opt_name, seq, msg);
	}
	PQclear(r);
	return 0;
}

/* the database's log is another history than the feed's: stop, saying what */
static void
other_history(const char *what)
{
	die("the database's audit log is not the one this feed delivered from: %s. "
		"The database is on another history -- a standby promoted before it received the records the feed had sent, "
		"or a backup restored to an earlier point -- and its seqs from there may be other records than the repository's. "
		"Keep the repository's events of the old history (they may be their only copy) before feeding this one: "
		"see the README, \"Audit feed after a failover\"", what);
}

/*
 * Is the database's log the one this feed delivered from?  The record at
 * the position must have the hash the state file keeps; purged, the
 * first record after it must chain to that hash (a purge removes whole
 * units, so that record starts one).  Returns -1 on a failure to ask
 * (retry), and stops the feed on another history: going on would skip
 * the new log's records at the seqs already delivered, or overwrite the
 * repository's events of the old one, which may be the only copy.
 */
static int
check_history(long long position)
{
	char		a[32];
	const char *params[1] = {a};
	PGresult   *r;
	long long	seq;
	const char *have;
	static int	said = 0;

	if (position <= 0)
		return 0;
	if (last_hash[0] == '\0')
	{
		if (!said)
			logmsg("the state file holds no record hash (an earlier aa_feed): the log's history is checked from the next delivery on");
		said = 1;
		return 0;
	}
	snprintf(a, sizeof(a), "%lld", position - 1);
	r = PQexecParams(db,
					 "SELECT l.seq, encode(l.row_hash, 'hex'), encode(l.prev_hash, 'hex') "
					 "  FROM agentauth._log_next($1::bigint, 2) l ORDER BY l.seq",
					 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		logmsg("cannot read the audit log: %s", PQerrorMessage(db));
		PQclear(r);
		return -1;
	}
	if (PQntuples(r) == 0)
	{
		/*
		 * nothing at or after it: on a primary feed_delivered refuses a
		 * position past the head; on a standby behind the feed, the first
		 * record after it is checked when it comes (the main loop)
		 */
		PQclear(r);
		return 0;
	}
	seq = atoll(PQgetvalue(r, 0, 0));
	if (seq == position)
		have = PQgetvalue(r, 0, 1);
	else if (seq == position + 1)
		have = PQgetvalue(r, 0, 2);
	else
	{
		logmsg("the record at seq %lld and the one after it are not in the log (purged): its history cannot be checked", position);
		PQclear(r);
		return 0;
	}
	if (strcmp(have, last_hash) != 0)
	{
		char		msg[512];
		char		what[256];

		snprintf(msg, sizeof(msg), "%s", have);
		PQclear(r);
		snprintf(what, sizeof(what), "the record at seq %lld has another hash (%.16s..., the state file %.16s...)",
				 seq == position ? position : position + 1, msg, last_hash);
		other_history(what);
	}
	PQclear(r);
	return 0;
}

/* the database, (re)connected: the name held and the position told */
static int
db_connect(long long position)
{
	if (db == NULL || PQstatus(db) != CONNECTION_OK)
	{
		if (db)
			PQfinish(db);
		db = PQconnectdb(opt_dbname);
		if (PQstatus(db) != CONNECTION_OK)
		{
			logmsg("cannot connect to the database: %s", PQerrorMessage(db));
			PQfinish(db);
			db = NULL;
			return -1;
		}
		/*
		 * UTF-8 whatever the host's PGCLIENTENCODING or the login's
		 * settings (1.1, found by review: under LATIN1 a record holding a
		 * character LATIN1 lacks failed its batch on every retry, and the
		 * feed stopped there; what it sends is UTF-8 JSON)
		 */
		if (PQsetClientEncoding(db, "UTF8") != 0)
		{
			logmsg("cannot set the client encoding to UTF8: %s", PQerrorMessage(db));
			PQfinish(db);
			db = NULL;
			return -1;
		}
		/*
		 * (and its position must be taken on a primary, whatever the
		 * login's default_transaction_read_only: 1.1, found by review)
		 */
		PQclear(PQexec(db, "SET search_path = pg_catalog, pg_temp; "
					   "SET default_transaction_read_only = off"));
		/* (the database holds the name for this connection: one feed a name) */
		reported = -1;
		cannot_report = 0;
		if (check_history(position) != 0 || report_position(position) != 0)
		{
			PQfinish(db);
			db = NULL;
			return -1;
		}
	}
	return 0;
}

static PGresult *
fetch(long long after, int limit)
{
	char		a[32],
				l[32];
	const char *params[2] = {a, l};
	PGresult   *r;

	if (db == NULL)				/* (the loop connects first) */
		return NULL;
	snprintf(a, sizeof(a), "%lld", after);
	snprintf(l, sizeof(l), "%d", limit);

	/*
	 * The next batch is a window of seqs (_log_next): its cost is that of
	 * the batch, however far behind the feed is
	 */
	r = PQexecParams(db,
					 "SELECT l.seq, to_char(l.logged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
					 "       agentauth.audit_event_fhir(l.seq)::text, encode(l.row_hash, 'hex'), "
					 "       encode(l.prev_hash, 'hex') "
					 "  FROM agentauth._log_next($1::bigint, $2::int) l ORDER BY l.seq",
					 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		logmsg("cannot read the audit log: %s", PQerrorMessage(db));
		PQclear(r);
		if (PQstatus(db) != CONNECTION_OK)
		{
			PQfinish(db);
			db = NULL;
		}
		return NULL;
	}
	return r;
}

static void
parse_dest(void)
{
	if (opt_fhir)
	{
		const char *p;
		const char *slash;
		const char *colon;

		if (strncmp(opt_fhir, "https://", 8) == 0)
			use_tls = 1, p = opt_fhir + 8;
		else if (strncmp(opt_fhir, "http://", 7) == 0)
			p = opt_fhir + 7;
		else
			die("--fhir must be an http:// or https:// URL");
		slash = strchr(p, '/');
		if (slash == NULL)
			slash = p + strlen(p);
		colon = memchr(p, ':', (size_t) (slash - p));
		if ((colon ? colon : slash) - p >= (long) sizeof(host) || slash - p == 0)
			die("bad host in --fhir");
		snprintf(host, sizeof(host), "%.*s", (int) ((colon ? colon : slash) - p), p);
		if (colon)
			snprintf(port, sizeof(port), "%.*s", (int) (slash - colon - 1), colon + 1);
		else
			snprintf(port, sizeof(port), "%s", use_tls ? "443" : "80");
		snprintf(base_path, sizeof(base_path), "%s", slash);
		while (base_path[0] && base_path[strlen(base_path) - 1] == '/')
			base_path[strlen(base_path) - 1] = '\0';
	}
	else
	{
		const char *colon = strrchr(opt_syslog, ':');

		if (colon == NULL || colon == opt_syslog || (size_t) (colon - opt_syslog) >= sizeof(host))
			die("--syslog must be HOST:PORT");
		snprintf(host, sizeof(host), "%.*s", (int) (colon - opt_syslog), opt_syslog);
		snprintf(port, sizeof(port), "%s", colon + 1);
		use_tls = 1;			/* RFC 5425: TLS only */
	}
	if (use_tls)
	{
		ctx = SSL_CTX_new(TLS_client_method());
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (opt_ca ? SSL_CTX_load_verify_locations(ctx, opt_ca, NULL) != 1
			: SSL_CTX_set_default_verify_paths(ctx) != 1)
			die("cannot load the CA certificates%s%s", opt_ca ? " from " : "", opt_ca ? opt_ca : "");
		if (opt_cert && (SSL_CTX_use_certificate_chain_file(ctx, opt_cert) != 1 ||
						 SSL_CTX_use_PrivateKey_file(ctx, opt_key ? opt_key : opt_cert, SSL_FILETYPE_PEM) != 1))
			die("cannot load the client certificate %s", opt_cert);
	}
	/* a bearer token is a password: never sent in clear (1.1: it was) */
	if (opt_token_file && !use_tls)
		die("--token-file needs an https collector: the bearer token would cross the network in clear");
	if (opt_token_file)
	{
		FILE	   *f = fopen(opt_token_file, "r");
		size_t		n;

		if (f == NULL)
			die("cannot read %s: %s", opt_token_file, strerror(errno));
		n = fread(token, 1, sizeof(token) - 1, f);
		fclose(f);
		token[n] = '\0';
		while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r' || token[n - 1] == ' '))
			token[--n] = '\0';
	}
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: aa_feed --state FILE (--fhir URL | --syslog HOST:PORT) [options]\n"
			"  --dbname CONNINFO   the database (a login granted agentauth_auditor)\n"
			"  --state FILE        the last seq delivered (created; resumed from)\n"
			"  --fhir URL          PUT URL/AuditEvent/agentauth-<seq> (http or https)\n"
			"  --syslog HOST:PORT  RFC 5424 over TLS (RFC 5425)\n"
			"  --ca FILE           CA certificates to verify the collector (default: the system's)\n"
			"  --cert FILE --key FILE  client certificate (mutual TLS, as ATNA asks)\n"
			"  --token-file FILE   bearer token for the FHIR server\n"
			"  --interval MS       poll interval when idle (500)\n"
			"  --timeout S         give up on a collector that does not answer (30)\n"
			"  --name NAME         this feed's name in agentauth.audit_feeds (host:state file)\n"
			"  --batch N           records per read (200)\n"
			"  --replay N          syslog: records re-sent on each connect (100)\n"
			"  --from SEQ          with no state file yet, start after this seq (0)\n"
			"  --once              deliver what is there, then exit\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	long long	last;
	long		backoff = 1000;
	int			need_replay = 1;

	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;

		if (strcmp(a, "--once") == 0)
		{
			opt_once = 1;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--dbname") == 0) opt_dbname = v;
		else if (strcmp(a, "--state") == 0) opt_state = v;
		else if (strcmp(a, "--fhir") == 0) opt_fhir = v;
		else if (strcmp(a, "--syslog") == 0) opt_syslog = v;
		else if (strcmp(a, "--ca") == 0) opt_ca = v;
		else if (strcmp(a, "--cert") == 0) opt_cert = v;
		else if (strcmp(a, "--key") == 0) opt_key = v;
		else if (strcmp(a, "--token-file") == 0) opt_token_file = v;
		else if (strcmp(a, "--interval") == 0) opt_interval_ms = atol(v);
		else if (strcmp(a, "--timeout") == 0) opt_timeout_s = atoi(v);
		else if (strcmp(a, "--name") == 0) opt_name = v;
		else if (strcmp(a, "--batch") == 0) opt_batch = atoi(v);
		else if (strcmp(a, "--replay") == 0) opt_replay = atoi(v);
		else if (strcmp(a, "--from") == 0) opt_from = atoll(v);
		else
			usage();
	}
	if (opt_state == NULL || (opt_fhir == NULL) == (opt_syslog == NULL) ||
		opt_interval_ms < 1 || opt_timeout_s < 1 || opt_batch < 1 || opt_replay < 0 || opt_from < 0)
		usage();
	if (gethostname(hostname, sizeof(hostname)) != 0 || hostname[0] == '\0')
		snprintf(hostname, sizeof(hostname), "-");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	parse_dest();
	if (opt_name == NULL)
	{
		/*
		 * host:the state file's absolute path -- the same before the file
		 * exists and after (its directory resolved, not the file)
		 */
		char		dir[4096];
		char		base[4096];
		char		path[4096];

		snprintf(dir, sizeof(dir), "%s", opt_state);
		snprintf(base, sizeof(base), "%s", opt_state);
		if (realpath(dirname(dir), path) == NULL)
			die("cannot resolve the directory of %s: %s", opt_state, strerror(errno));
		snprintf(default_name, sizeof(default_name), "%s:%s/%s", hostname,
				 strcmp(path, "/") == 0 ? "" : path, basename(base));
		if (strlen(default_name) > 1000)
			die("the feed's name (host:state file) is longer than 1000 characters: give it one with --name");
		opt_name = default_name;
	}
	last = state_load();
	logmsg("delivering to %s after seq %lld", opt_fhir ? opt_fhir : opt_syslog, last);

	while (!stop)
	{
		PGresult   *r;
		int			n;
		int			failed = 0;
		long long	from = last;

		/* the database first: the feed is registered, collector or not */
		if (db_connect(last) != 0)
			goto failure;
		/* syslog: (re)connect, and re-send what may have been in flight */
		if (opt_syslog && sock < 0)
		{
			if (conn_open() != 0)
				goto failure;
			need_replay = 1;
		}
		if (opt_syslog && need_replay)
			from = last > opt_replay ? last - opt_replay : 0;
		r = fetch(from, need_replay ? opt_replay + opt_batch : opt_batch);
		if (r == NULL)
			goto failure;
		n = PQntuples(r);
		for (int i = 0; i < n && !stop; i++)
		{
			long long	seq = atoll(PQgetvalue(r, i, 0));
			int			rc;

			/*
			 * The record after the last delivered one chains to it (an
			 * entry of the same unit shares its hash): checked on every
			 * batch, not only at a connection -- a standby behind the feed
			 * promoted under a live connection gives the seqs after its
			 * head to other records (1.1, found by review)
			 */
			if (seq == last + 1 && last_hash[0] != '\0' &&
				strcmp(PQgetvalue(r, i, 3), last_hash) != 0 &&
				strcmp(PQgetvalue(r, i, 4), last_hash) != 0)
			{
				PQclear(r);
				char		what[256];

				snprintf(what, sizeof(what), "the record at seq %lld does not chain to the one delivered at seq %lld (%.16s...)",
						 seq, last, last_hash);
				other_history(what);
			}

			/*
			 * Seqs have no gaps: the log has none of these, purged or
			 * removed.  Moved past (a feed waiting on an empty window would
			 * stall for ever), and said, so that the repository's keeper
			 * can tell the feed did not lose them.
			 */
			if (seq > last + 1)
				logmsg("seqs %lld to %lld are not in the log (purged, or removed: agentauth.verify_audit() says which); going on at seq %lld",
					   last + 1, seq - 1, seq);
			rc = opt_fhir ? fhir_put(seq, PQgetvalue(r, i, 2))
				: syslog_send(seq, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));

			if (rc == 0)
			{
				PQclear(r);
				die("stopped at seq %lld: the collector refused it (see above); fix and restart", seq);
			}
			if (rc < 0)
			{
				failed = 1;
				break;
			}
			if (seq > last)
			{
				last = seq;
				snprintf(last_hash, sizeof(last_hash), "%s", PQgetvalue(r, i, 3));
				if (opt_fhir)
					state_save(last);
			}
		}
		PQclear(r);
		if (opt_syslog && !failed && n > 0)
			state_save(last);
		(void) report_position(last);
		if (failed)
			goto failure;
		need_replay = 0;
		backoff = 1000;
		if (n == 0 || (from == last && n < opt_batch))
		{
			if (opt_once)
				break;
			sleep_ms(opt_interval_ms);
		}
		continue;
failure:
		if (opt_once)
		{
			logmsg("stopped after seq %lld", last);
			return 1;
		}
		sleep_ms(backoff);
		backoff = backoff < 30000 ? backoff * 2 : 30000;
	}
	conn_close();
	if (db)
		PQfinish(db);
	logmsg("stopped after seq %lld", last);
	return 0;
}
