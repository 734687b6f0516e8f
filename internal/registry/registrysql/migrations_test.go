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
