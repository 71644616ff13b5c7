-- Runs once, when the PostgreSQL volume is first created (docker-entrypoint-initdb.d).
-- One database per service and region (and one for the national gateway and ops API each): no service can read
-- another's tables.
-- Adding a region to compose.yaml means adding its five databases here.
CREATE DATABASE gateway;
CREATE DATABASE ops_api;
CREATE DATABASE identity_330000;
CREATE DATABASE ingest_330000;
CREATE DATABASE ledger_330000;
CREATE DATABASE rewards_330000;
CREATE DATABASE incentives_330000;
CREATE DATABASE identity_110000;
CREATE DATABASE ingest_110000;
CREATE DATABASE ledger_110000;
CREATE DATABASE rewards_110000;
CREATE DATABASE incentives_110000;
