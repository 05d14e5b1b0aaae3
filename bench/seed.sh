#!/usr/bin/env bash
# Seeds agents `seed-<FROM>` to `seed-<TO>`, each with an agent key, straight into keygate's
# database (the API would take hours for a million): owners, agents and secrets rows as keygate
# writes them, in the organization of the agent named `bench`, with random digests.
#   bench/seed.sh <database URL> <from> <to>
set -euo pipefail
url=$1 from=$2 to=$3
case "$url" in
sqlite:*)
    sqlite3 "${url#sqlite://}" >/dev/null <<SQL
PRAGMA busy_timeout = 10000;
BEGIN;
CREATE TEMP TABLE seed AS
    WITH RECURSIVE n(i) AS (SELECT $from UNION ALL SELECT i + 1 FROM n WHERE i < $to)
    SELECT i, randomblob(16) AS id FROM n;
CREATE TEMP TABLE bench AS SELECT org_id, created_at FROM agents WHERE name = 'bench';
INSERT INTO owners (id, org_id) SELECT seed.id, bench.org_id FROM seed, bench;
INSERT INTO agents (id, org_id, name, mode, created_at)
    SELECT seed.id, bench.org_id, printf('seed-%07d', i), 'standard', bench.created_at FROM seed, bench;
INSERT INTO secrets (id, kind, hash, hint, owner_id, slot, created_at)
    SELECT randomblob(16), 'agent_key', randomblob(32), 'xagt-…seed', seed.id, '', bench.created_at
    FROM seed, bench;
COMMIT;
SQL
    ;;
*)
    psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null <<SQL
BEGIN;
CREATE TEMP TABLE seed AS SELECT i, gen_random_uuid() AS id FROM generate_series($from, $to) i;
CREATE TEMP TABLE bench AS SELECT org_id, created_at FROM agents WHERE name = 'bench';
INSERT INTO owners (id, org_id) SELECT seed.id, bench.org_id FROM seed, bench;
INSERT INTO agents (id, org_id, name, mode, created_at)
    SELECT seed.id, bench.org_id, 'seed-' || lpad(i::text, 7, '0'), 'standard', bench.created_at
    FROM seed, bench;
INSERT INTO secrets (id, kind, hash, hint, owner_id, slot, created_at)
    SELECT gen_random_uuid(), 'agent_key', sha256(('seed ' || i)::bytea), 'xagt-…seed', seed.id, '',
           bench.created_at
    FROM seed, bench;
COMMIT;
ANALYZE owners, agents, secrets;
SQL
    ;;
esac
