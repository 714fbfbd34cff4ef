-- Run once by the postgres image when its volume is first initialised (/docker-entrypoint-initdb.d),
-- as POSTGRES_USER, after POSTGRES_DB (the app database, `aftercare`) was created.
-- Prefect's server keeps its own database; it needs PostgreSQL >= 14.9 and the pg_trgm extension.
CREATE DATABASE prefect;
\connect prefect
CREATE EXTENSION IF NOT EXISTS pg_trgm;
