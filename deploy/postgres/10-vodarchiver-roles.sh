#!/bin/sh
# Run by the postgres image at the first start of an empty data volume (docker-entrypoint-initdb.d):
# creates vodarchiver's owner and runtime roles (roles.sql, mounted at /vodarchiver/roles.sql).
set -eu
: "${VODARCHIVER_OWNER_PASSWORD:?set DB_OWNER_PASSWORD in .env}"
: "${VODARCHIVER_APP_PASSWORD:?set DB_APP_PASSWORD in .env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v dbname="$POSTGRES_DB" \
  -v owner_role=vodarchiver_owner -v owner_password="$VODARCHIVER_OWNER_PASSWORD" \
  -v app_role=vodarchiver_app -v app_password="$VODARCHIVER_APP_PASSWORD" \
  -f /vodarchiver/roles.sql
