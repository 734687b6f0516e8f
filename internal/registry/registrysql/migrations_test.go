package registrysql

import (
	"io/fs"
	"strconv"
	"strings"
	"testing"
)

// TestMigrations_VersionsUnique: migrate records applied versions by number,
// so two files with one number would silently skip the second.
func TestMigrations_VersionsUnique(t *testing.T) {
	for _, d := range []string{"sqlite", "postgres"} {
		entries, err := fs.ReadDir(migrations, "migrations/"+d)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]string{}
		for _, e := range entries {
			v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
			if err != nil {
				t.Fatalf("%s/%s: no version number", d, e.Name())
			}
			if prev, dup := seen[v]; dup {
				t.Errorf("%s: %s and %s share version %d", d, prev, e.Name(), v)
			}
			seen[v] = e.Name()
		}
	}
}

// TestMigrations_SplitStatements: a trigger's or a function's body stays in
// its statement.
func TestMigrations_SplitStatements(t *testing.T) {
	body := "-- comment\nCREATE TABLE a (k INTEGER);\nINSERT INTO a VALUES (1);\n" +
		"CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET k = k + 1;\n  DELETE FROM a WHERE k > 9;\nEND;\n" +
		"CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  UPDATE a SET k = 1;\n  RETURN NULL;\nEND\n$$;\n" +
		"CREATE TRIGGER u AFTER DELETE ON a FOR EACH ROW EXECUTE FUNCTION f();\nCREATE INDEX i ON a (k)\n"
	got := splitStatements(body)
	want := []string{"CREATE TABLE", "INSERT INTO", "CREATE TRIGGER t", "CREATE FUNCTION", "CREATE TRIGGER u", "CREATE INDEX"}
	if len(got) != len(want) {
		t.Fatalf("%d statements, want %d: %q", len(got), len(want), got)
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("statement %d = %q, want %s", i, got[i], w)
		}
	}
	if !strings.Contains(got[2], "k > 9;\nEND;") || !strings.Contains(got[3], "RETURN NULL;\nEND\n$$;") {
		t.Errorf("a body was cut: %q / %q", got[2], got[3])
	}
}

// TestMigrations_ChangeTriggersCoverBatchReads: the triggers that bump the
// registry's change counter (033) compare every device column DeviceAccess
// reads, on both dialects — a column added to the batch read without its
// trigger would let a refresh-ahead cache extend a changed answer.
func TestMigrations_ChangeTriggersCoverBatchReads(t *testing.T) {
	cmp := map[string]string{"sqlite": "OLD.%s IS NOT NEW.%s", "postgres": "OLD.%s IS DISTINCT FROM NEW.%s"}
	for d, form := range cmp {
		body, err := migrations.ReadFile("migrations/" + d + "/033_registry_changes.sql")
		if err != nil {
			t.Fatal(err)
		}
		for _, col := range strings.Split(deviceAccessCols, ", ") {
			if !strings.Contains(string(body), strings.ReplaceAll(form, "%s", col)) {
				t.Errorf("%s: devices_update_changes does not compare %s", d, col)
			}
		}
		// GetSensors reads every column: every update of a sensor counts.
		if !strings.Contains(string(body), "UPDATE ON sensors") {
			t.Errorf("%s: no trigger on every sensor update", d)
		}
	}
}
