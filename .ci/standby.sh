#!/usr/bin/env bash
# A streaming standby of the local PostgreSQL 15 on port 5433 (for CK_READ_DATABASE_URL tests), made with
# pg_basebackup. Idempotent: starts it if it exists, creates it if not. Run as root.
set -euo pipefail
dir=/var/lib/postgresql/15/ck-standby
hba=/etc/postgresql/15/main/pg_hba.conf
bin=/usr/lib/postgresql/15/bin

if ! grep -qE '^host\s+replication\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
  echo 'host replication all 127.0.0.1/32 trust' >> "$hba"
  psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'SELECT pg_reload_conf()' >/dev/null
fi

if pg_isready -h 127.0.0.1 -p 5433 -q; then exit 0; fi
if [ ! -f "$dir/standby.signal" ]; then
  rm -rf "$dir"
  install -d -o postgres -g postgres -m 700 "$dir"
  runuser -u postgres -- pg_basebackup -h 127.0.0.1 -p 5432 -U postgres -D "$dir" -R -X stream
  # Debian keeps the configuration outside the data directory: the standby gets a minimal one of its own.
  cat > "$dir/postgresql.conf" <<CONF
port = 5433
listen_addresses = '127.0.0.1'
unix_socket_directories = '/tmp'
hot_standby = on
hba_file = '$dir/pg_hba.conf'
ident_file = '$dir/pg_ident.conf'
CONF
  printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' > "$dir/pg_hba.conf"
  : > "$dir/pg_ident.conf"
  chown postgres:postgres "$dir"/*.conf
fi
runuser -u postgres -- "$bin/pg_ctl" -D "$dir" -l /tmp/ck-standby.log -w -t 60 start >/dev/null
for i in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5433 -q && break; sleep 0.5; done
psql -h 127.0.0.1 -p 5433 -U postgres -d postgres -qAtc 'SELECT pg_is_in_recovery()' | grep -q t
