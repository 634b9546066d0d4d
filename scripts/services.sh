#!/usr/bin/env bash
# Makes sure the local PostgreSQL and Redis that the test suite talks to are
# running (starting them when they are down) and fails loudly when they cannot be.
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if command -v pg_isready >/dev/null && ! pg_up; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if command -v redis-cli >/dev/null && ! redis_up; then
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
fi

ok=1
pg_up || { echo "services: PostgreSQL at 127.0.0.1:5432 is not reachable" >&2; ok=0; }
# The PostgreSQL pass checks its databases' indexes with amcheck (contrib).
if pg_up && [ "$(psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atc \
      "SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'" 2>/dev/null)" != 1 ]; then
  echo "services: PostgreSQL lacks the amcheck extension (install postgresql-contrib)" >&2; ok=0
fi
redis_up || { echo "services: Redis at 127.0.0.1:6379 is not reachable" >&2; ok=0; }
[ "$ok" = 1 ] || exit 1
echo "services: PostgreSQL and Redis are up"
