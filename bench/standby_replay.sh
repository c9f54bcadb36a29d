#!/bin/bash
# bench/standby_replay.sh: replay speed of a hot standby with a Redis
# configured, two builds side by side (not part of bench/run.sh).  A
# primary (NEW build) with cache_ext.wal_invalidations on and a 't:{id}'
# trigger, two standbys from one base backup, one running the OLD build and
# one the NEW, fsync on.  Replay is paused on both, the primary commits N
# single-row UPDATEs (pgbench), then each standby is resumed in turn (the
# order alternating by repetition) and timed until it has replayed them.
#
#   cp -a /tmp/pg-x /tmp/pg-x-old; git archive <old commit> | tar -x -C /tmp/ce-old
#   make -C /tmp/ce-old PG_CONFIG=/tmp/pg-x-old/usr/lib/postgresql/15/bin/pg_config install
#   OLD=/tmp/pg-x-old NEW=/tmp/pg-x N=10000 REPS=4 bash bench/standby_replay.sh
#
# Runs as root (clusters as the postgres OS user); ports 55410-55412 and
# 64410 (Redis); everything under /tmp/sbbench, stopped at exit.
set -e
OLD=${OLD:-/tmp/pg-standby-old}; NEW=${NEW:-/tmp/pg-standby}
N=${N:-3000}; REPS=${REPS:-3}
D=/tmp/sbbench; P0=55410; RP=64410
B=usr/lib/postgresql/15/bin
as_pg() { su postgres -c "$*"; }
rm -rf $D; mkdir -p $D; chown postgres $D
redis-server --port $RP --save '' --appendonly no --daemonize yes --pidfile $D/redis.pid --dir $D >/dev/null
trap 'for n in primary old new; do as_pg "$NEW/$B/pg_ctl -D $D/$n stop -m immediate" >/dev/null 2>&1 || true; done; kill $(cat $D/redis.pid) 2>/dev/null || true' EXIT
as_pg "$NEW/$B/initdb -D $D/primary -U postgres >/dev/null"
cat >> $D/primary/postgresql.conf <<CONF
port = $P0
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'cache_ext'
cache_ext.shmem_size = 8MB
cache_ext.redis_url = 'redis://127.0.0.1:$RP/0'
cache_ext.wal_invalidations = on
synchronous_commit = off
wal_level = replica
max_wal_senders = 4
hot_standby = on
CONF
echo "host replication all 127.0.0.1/32 trust" >> $D/primary/pg_hba.conf
as_pg "$NEW/$B/pg_ctl -D $D/primary -l $D/primary.log -w start >/dev/null"
psql0() { as_pg "$NEW/$B/psql -X -h 127.0.0.1 -p $P0 -U postgres -At -d postgres $*"; }
psql0 "-c 'CREATE EXTENSION cache_ext' -c 'CREATE TABLE t (id int PRIMARY KEY, v int)' \
  -c 'INSERT INTO t SELECT g, 0 FROM generate_series(1, 1000) g' \
  -c \"SELECT cache_attach('t', 't:{id}')\"" >/dev/null
port=$P0
for n in old new; do
	port=$((port + 1)); pfx=$OLD; [ $n = new ] && pfx=$NEW
	as_pg "$NEW/$B/pg_basebackup -h 127.0.0.1 -p $P0 -U postgres -D $D/$n -R -X stream"
	echo "port = $port" >> $D/$n/postgresql.conf
	as_pg "$pfx/$B/pg_ctl -D $D/$n -l $D/$n.log -w start >/dev/null"
	eval "PORT_$n=$port PFX_$n=$pfx"
done
psqln() { local n=$1; shift; local p; eval "p=\$PORT_$n"; as_pg "$NEW/$B/psql -X -h 127.0.0.1 -p $p -U postgres -At -d postgres $*"; }
echo "\\set id random(1, 1000)
UPDATE t SET v = v + 1 WHERE id = :id;" > $D/upd.sql; chown postgres $D/upd.sql
for rep in $(seq 1 $REPS); do
	for n in old new; do psqln $n "-c 'SELECT pg_wal_replay_pause()'" >/dev/null; done
	as_pg "$NEW/$B/pgbench -n -h 127.0.0.1 -p $P0 -U postgres -f $D/upd.sql -t $N postgres >/dev/null"
	target=$(psql0 "-c 'SELECT pg_current_wal_insert_lsn()'")
	order="old new"; [ $((rep % 2)) = 0 ] && order="new old"
	for n in $order; do
		t0=$(date +%s.%N)
		psqln $n "-c 'SELECT pg_wal_replay_resume()'" >/dev/null
		until [ "$(psqln $n "-c \"SELECT pg_last_wal_replay_lsn() >= '$target'\"")" = t ]; do sleep 0.02; done
		t1=$(date +%s.%N)
		echo "rep $rep $n $(echo "$t1 - $t0" | bc) s for $N transactions"
	done
done
