# cache_ext: result caching in PostgreSQL (shared memory or Redis).
#
# PGXS is included only when pg_config exists, so that "make demo" and
# "make test" can run on a machine that has nothing installed yet: they
# install what is missing first (test/deps.sh), then call make again.

EXTENSION = cache_ext
MODULE_big = cache_ext
OBJS = \
	src/cache_ext.o \
	src/guc.o \
	src/functions.o \
	src/cache.o \
	src/coherence.o \
	src/coherence_ring.o \
	src/coherence_wal.o \
	src/fetch.o \
	src/fetch_check.o \
	src/stats.o \
	src/glob.o \
	src/store_shmem.o \
	src/redis_conn.o \
	src/store_redis.o \
	src/near_cache.o \
	src/redis_tracking.o \
	src/redis_keydir.o \
	src/trigger.o \
	src/trigger_ddl.o \
	src/invalq.o src/redis_worker.o

DATA = cache_ext--0.1.sql cache_ext--0.1--0.2.sql
PGFILEDESC = "cache_ext - result caching in shared memory or Redis"

PG_CPPFLAGS = -I$(srcdir)/src
SHLIB_LINK = -lhiredis

# pg_regress cases, run once per store by "make test" (test/run.sh).
REGRESS = basic args values ttl invalidate fetch fetch_privileges stats privileges database triggers partitions transactions upgrade
REGRESS_OPTS = --inputdir=. --outputdir=results

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
else
all install installcheck:
	@echo "pg_config not found: install postgresql-server-dev-15 (or run 'make deps'), or set PG_CONFIG" >&2
	@exit 1
endif

.PHONY: deps test demo bench

# Install the Debian packages the build, the tests and the demo need.
deps:
	bash test/deps.sh

# The whole suite on a throwaway cluster and Redis: regress (both stores),
# isolation, TAP and scripts.  Installs missing packages first.
test:
	bash test/run.sh

# The main job, on the default shared-memory store, as a short report.
demo:
	bash examples/demo.sh

bench:
	bash bench/run.sh

# A source archive of the committed tree (PGXN): cache_ext-<version>.zip
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(srcdir)/cache_ext.control)
.PHONY: dist
dist:
	git archive --format=zip --prefix=$(EXTENSION)-$(EXTVERSION)/ -o $(EXTENSION)-$(EXTVERSION).zip HEAD
