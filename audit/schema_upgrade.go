package audit

// upgradeSchema is migration 14 on SQLite: nothing. The step exists for
// PostgreSQL (pgStep14), and the two lists keep the same numbers.
const upgradeSchema = `
-- Migration 14 changes nothing on SQLite (see pgStep14).
SELECT 1;
`

// pgStep14 is migration 14 on PostgreSQL: it makes a database that the
// previous release (schema version 10) made what this release's steps make.
//
//   - Collation: steps 1-10 were edited in place to give every TEXT column
//     COLLATE "C" (pgMigrations), so a database made now has it, but one
//     made before does not, and on a database whose locale is not C it
//     sorts, selects by prefix (EventFilter.Type) and folds case (ILIKE)
//     unlike SQLite. Every TEXT column whose collation is not "C" is
//     changed to it, a table at a time (its indexes are rebuilt once).
//     On a database made by this release there is none.
//   - 0x01: this release escapes NUL and 0x01 in every stored string
//     (pgtext.go), while the previous one stored 0x01 as it came; such a
//     value would read back changed (its event no longer verifying, a
//     filter on it missing), so every 0x01 stored before is escaped, with
//     the append-only triggers off for this transaction only. Only for a
//     database of version 10 or older: from 11 on, every version was
//     written escaped (schema_version still holds the version being
//     migrated from while the steps run, migratePG).
const pgStep14 = `
DO $$
DECLARE
	t record;
	c record;
	from_version BIGINT;
BEGIN
	FOR t IN SELECT table_name,
			string_agg(format('ALTER COLUMN %I TYPE TEXT COLLATE "C"', column_name), ', ' ORDER BY ordinal_position) AS alters
		FROM information_schema.columns
		WHERE table_schema = current_schema() AND data_type = 'text' AND collation_name IS DISTINCT FROM 'C'
		GROUP BY table_name ORDER BY table_name
	LOOP
		EXECUTE format('ALTER TABLE %I ', t.table_name) || t.alters;
	END LOOP;
	SELECT version INTO from_version FROM schema_version;
	IF from_version <= 10 THEN
		ALTER TABLE events DISABLE TRIGGER events_append_only;
		ALTER TABLE checkpoints DISABLE TRIGGER checkpoints_append_only;
		FOR c IN SELECT table_name, column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND data_type = 'text'
			ORDER BY table_name, ordinal_position
		LOOP
			EXECUTE format('UPDATE %I SET %I = replace(%I, chr(1), chr(1) || chr(2)) WHERE strpos(%I, chr(1)) > 0',
				c.table_name, c.column_name, c.column_name, c.column_name);
		END LOOP;
		ALTER TABLE events ENABLE TRIGGER events_append_only;
		ALTER TABLE checkpoints ENABLE TRIGGER checkpoints_append_only;
	END IF;
END
$$;
`
