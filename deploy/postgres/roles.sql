-- Least privilege for vodarchiver on an external PostgreSQL: two logins instead of a superuser.
--
--   owner_role  owns the database and its schema; `vodarchiver migrate` runs as it (DDL)
--   app_role    what the daemon works as: rows only (SELECT/INSERT/UPDATE/DELETE), sequences,
--               the schema's functions, temporary tables (the chat writer's COPY staging);
--               no CREATE, no ownership
--
-- Run once as a superuser, connected to the (empty) database, with psql variables:
--   psql -v ON_ERROR_STOP=1 -d vodarchiver -v dbname=vodarchiver \
--        -v owner_role=vodarchiver_owner -v owner_password='...' \
--        -v app_role=vodarchiver_app -v app_password='...' -f deploy/postgres/roles.sql
-- compose runs it through 10-vodarchiver-roles.sh at the database's first start. psql quotes
-- :'x' as a literal and :"x" as an identifier, so any password character is safe.

\set ON_ERROR_STOP on

CREATE ROLE :"owner_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
CREATE ROLE :"app_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';

ALTER DATABASE :"dbname" OWNER TO :"owner_role";
REVOKE ALL ON DATABASE :"dbname" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"dbname" TO :"app_role";

-- The schema belongs to the owner (PostgreSQL 15+ gives it to the database owner already;
-- older servers let every role create in it, which this takes back).
ALTER SCHEMA public OWNER TO :"owner_role";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app_role";

-- Every table, sequence and function the owner's migrations create, now and later, is usable by
-- the daemon and nobody else: a later migration needs no change here. Functions are executable by
-- PUBLIC unless taken back; the daemon calls some (vods_archive_parts) and triggers call others.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT EXECUTE ON FUNCTIONS TO :"app_role";
-- What already exists (a database migrated before this was run, owned by owner_role).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO :"app_role";
