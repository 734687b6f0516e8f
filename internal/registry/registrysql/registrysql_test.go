package registrysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
	"github.com/iotplatform/iotplatform/internal/registry/registrytest"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

func TestSQLite(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		r, err := registrysql.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "r.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	})
}

var pgSeq atomic.Int64

// TestPostgres runs the suite on a real PostgreSQL, one fresh database per subtest.
func TestPostgres(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		name := fmt.Sprintf("reg_test_%d_%d", pgSeq.Add(1), testPID())
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
			t.Fatal(err)
		}
		r, err := registrysql.OpenPostgres(context.Background(), withDB(dsn, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			r.Close()
			admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		})
		return r
	})
}

// TestMigrationsAreIdempotent reopens a database: migrations must not re-run.
func TestMigrationsAreIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	ctx := context.Background()
	r, err := registrysql.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateUser(ctx, registry.User{Username: "root", Role: registry.RoleAdmin, PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r, err = registrysql.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.GetUserByName(ctx, "root"); err != nil {
		t.Fatalf("data lost across reopen: %v", err)
	}
}

func withDB(dsn, db string) string {
	// postgres://user@host:port/name?params
	base, params, _ := strings.Cut(dsn, "?")
	i := strings.LastIndex(base, "/")
	out := base[:i+1] + db
	if params != "" {
		out += "?" + params
	}
	return out
}

// TestMigrations_ChangeCounterOnExistingDatabase: a database from before the
// change counter (migration 033 not applied, devices in it) gets the counter
// and its triggers when opened, and its writes move it from then on.
func TestMigrations_ChangeCounterOnExistingDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	ctx := context.Background()
	r, err := registrysql.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := r.CreateUser(ctx, registry.User{Username: "old", Role: registry.RoleUser, PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	// Back to the schema before 033.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TRIGGER devices_insert_changes`, `DROP TRIGGER devices_delete_changes`, `DROP TRIGGER devices_update_changes`,
		`DROP TRIGGER sensors_insert_changes`, `DROP TRIGGER sensors_delete_changes`, `DROP TRIGGER sensors_update_changes`,
		`DROP TABLE registry_changes`, `DELETE FROM schema_migrations WHERE version = 33`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	r, err = registrysql.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before, err := r.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RotateDeviceKey(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if after, err := r.Changes(ctx); err != nil || after <= before {
		t.Fatalf("counter %d → %d (%v) across a key rotation on a migrated database", before, after, err)
	}
}
