# PostgreSQL for the queue tests: Debian's server in a temporary data
# directory, on 127.0.0.1 and a free port, as the postgres user (CI runs as
# root); stopped by the cleanup. Exports WHEELFARM_TEST_POSTGRES.
apt_install postgresql
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
PG_DIR="$(mktemp -d /tmp/wheelfarm-pg.XXXXXX)"
chown postgres:postgres "$PG_DIR"
PG_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=200" start
CLEANUP+=("runuser -u postgres -- '$PG_BIN/pg_ctl' -D '$PG_DIR/data' -m fast -w stop; rm -rf '$PG_DIR'")
runuser -u postgres -- "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres wheelfarm_test
export WHEELFARM_TEST_POSTGRES="postgresql://postgres@127.0.0.1:$PG_PORT/wheelfarm_test"
