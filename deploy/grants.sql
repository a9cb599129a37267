-- Least privilege for the application's PostgreSQL role (run as the schema owner after init-db).
-- The application may only INSERT and SELECT audit events; the triggers refuse UPDATE, DELETE and
-- TRUNCATE even for the owner, and verification catches any edit that bypasses both.
-- Replace expenses_app with your role name.
-- and: GRANT CONNECT ON DATABASE <your database> TO expenses_app;
GRANT USAGE ON SCHEMA public TO expenses_app;
GRANT SELECT, INSERT ON audit_events, checkpoints, definition_files TO expenses_app;
GRANT SELECT, INSERT, UPDATE ON log_head, counters, users, signing_keys, drafts, requests, budget_totals,
    outbox, reminders TO expenses_app;
GRANT SELECT, INSERT, DELETE ON login_attempts TO expenses_app;
-- Keys (issue 11): one-time codes are marked used; failed signatures are only added.
GRANT SELECT, INSERT, UPDATE ON enrollment_codes TO expenses_app;
GRANT SELECT, INSERT ON signing_failures TO expenses_app;
-- Mandates (issue 15): an index of the signed grants, marked when revoked.
GRANT SELECT, INSERT, UPDATE ON mandates TO expenses_app;
-- CA certificates and signed forms (issue 14): bindings are in the log; challenges are used once.
GRANT SELECT, INSERT ON ca_certificates, signed_forms TO expenses_app;
GRANT SELECT, INSERT, UPDATE ON certificate_challenges TO expenses_app;
-- The district as a witness (issue 16): the school only adds the cosignatures it gets; a witness
-- in this database updates its one row per school's log.
GRANT SELECT, INSERT ON checkpoint_cosignatures TO expenses_app;
GRANT SELECT, INSERT, UPDATE ON witness_logs TO expenses_app;
-- Live verifications (operations): each run is only added.
GRANT SELECT, INSERT ON verifications TO expenses_app;
GRANT SELECT ON alembic_version TO expenses_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO expenses_app;
