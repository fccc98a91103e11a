#!/bin/sh
# The official postgres image runs this once, when it initializes an empty data volume
# (/docker-entrypoint-initdb.d). Each stateful service owns its own database: ingest and recognition.
# Idempotent (a database that exists is left alone), so it can also be run by hand against a running server.
# Only `set -e`: the image sources (rather than runs) a script that lost its executable bit, and -u would leak.
set -e

for db in ingest recognition; do
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
       -v db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', current_user)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
done
