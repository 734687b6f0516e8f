package core

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
)

func TestSensorType(t *testing.T) {
	tests := []struct {
		vt      corev1.ValueType
		mapping string
		want    registry.ValueType
		field   string
	}{
		{corev1.ValueType_VALUE_TYPE_DOUBLE, "", registry.TypeDouble, ""},
		{0, `{"type":"double"}`, registry.TypeDouble, ""},
		{0, `{"type":"float"}`, registry.TypeDouble, ""},
		{0, `{"type":"integer"}`, registry.TypeLong, ""},
		{0, `{"type":"keyword"}`, registry.TypeString, ""},
		{0, `{"type":"Boolean"}`, registry.TypeBoolean, ""},
		{corev1.ValueType_VALUE_TYPE_OBJECT, `{"type":"object"}`, registry.TypeObject, ""},
		{corev1.ValueType_VALUE_TYPE_LONG, `{"type":"double"}`, "", "mapping"},
		{0, `{"type":"banana"}`, "", "mapping"},
		{0, `not json`, "", "mapping"},
		{0, "", "", "value_type"},
		{corev1.ValueType(99), "", "", "value_type"},
	}
	for _, tc := range tests {
		got, err := sensorType(tc.vt, tc.mapping)
		if tc.field != "" {
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("sensorType(%v, %q) err = %v, want InvalidArgument naming %s", tc.vt, tc.mapping, err, tc.field)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("sensorType(%v, %q) = %v, %v; want %v", tc.vt, tc.mapping, got, err, tc.want)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{"": "", "/": "", "/wheels/front/": "wheels/front", "engine": "engine"} {
		if got, err := cleanPath(in); err != nil || got != want {
			t.Errorf("cleanPath(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"a//b", "a/ /b", strings.Repeat("a/", 17) + "a"} {
		if _, err := cleanPath(bad); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("cleanPath(%q) accepted", bad)
		}
	}
}

func TestBuildTree_CarExample(t *testing.T) {
	ss := []registry.Sensor{
		{ID: 1, Name: "pressure", Path: "wheels/front/left", Type: registry.TypeDouble},
		{ID: 2, Name: "pressure", Path: "wheels/rear/right", Type: registry.TypeDouble},
		{ID: 3, Name: "consumption", Path: "engine", Type: registry.TypeDouble},
		{ID: 4, Name: "speed", Type: registry.TypeDouble},
	}
	root := BuildTree(ss)
	var names []string
	for _, c := range root.GetChildren() {
		names = append(names, c.GetName())
	}
	if strings.Join(names, ",") != "engine,wheels,speed" {
		t.Fatalf("root children = %v (paths first, then sensors, by name)", names)
	}
	left := root.GetChildren()[1].GetChildren()[0].GetChildren()[0]
	if left.GetPath() != "wheels/front/left" || left.GetChildren()[0].GetSensor().GetId() != 1 {
		t.Fatalf("wheels/front/left = %v", left)
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse", HashParams{MemoryKiB: 1024, Time: 1, Threads: 1})
	if err != nil || !strings.HasPrefix(h, "$argon2id$") {
		t.Fatalf("hash %q %v", h, err)
	}
	if ok, _ := CheckPassword("correct horse", h); !ok {
		t.Fatal("right password refused")
	}
	if ok, _ := CheckPassword("wrong", h); ok {
		t.Fatal("wrong password accepted")
	}
	h2, _ := HashPassword("correct horse", HashParams{MemoryKiB: 1024, Time: 1, Threads: 1})
	if h == h2 {
		t.Fatal("salt not random")
	}
	if _, err := CheckPassword("x", "$2a$10$bcrypt"); err == nil {
		t.Fatal("foreign hash format accepted")
	}
}

func TestPageTokens(t *testing.T) {
	if _, err := page(-1, ""); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatal("negative page size accepted")
	}
	if p, _ := page(5000, ""); p.Limit != maxPageSize {
		t.Fatalf("limit not capped: %d", p.Limit)
	}
	tok := nextToken(10, 10, 42)
	if p, err := page(10, tok); err != nil || p.AfterID != 42 {
		t.Fatalf("round trip: %+v %v", p, err)
	}
	if nextToken(3, 10, 42) != "" {
		t.Fatal("a short page has no next page")
	}
}

// failingProvisioner refuses every sensor.
type failingProvisioner struct{ deleted int }

func (f *failingProvisioner) SensorCreated(context.Context, registry.Sensor) error {
	return errors.New("topic creation failed")
}
func (f *failingProvisioner) SensorDeleted(context.Context, registry.Sensor) error {
	f.deleted++
	return nil
}

// TestCreateSensor_ProvisionerFailureLeavesNoRow: nothing is half-written.
func TestCreateSensor_ProvisionerFailureLeavesNoRow(t *testing.T) {
	ctx := context.Background()
	reg, err := registrysql.OpenSQLite(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	svc := New(slog.New(slog.NewTextHandler(io.Discard, nil)), reg, authn.NewSigner(authn.NewKeySet(priv)), Config{}, &failingProvisioner{})
	u, _ := reg.CreateUser(ctx, registry.User{Username: "alice", Role: registry.RoleUser, PasswordHash: "x"})
	uctx := authn.WithPrincipal(ctx, authn.Principal{Kind: authn.KindUser, ID: u.ID})
	d, err := svc.CreateDevice(uctx, &corev1.CreateDeviceRequest{Name: "car"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.CreateSensor(uctx, &corev1.CreateSensorRequest{DeviceId: d.GetResult().GetId(), Name: "t", ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE})
	if connect.CodeOf(err) != connect.CodeUnavailable || strings.Contains(err.Error(), "topic creation") {
		t.Fatalf("err = %v, want Unavailable without internals", err)
	}
	if ss, _ := reg.ListSensors(ctx, d.GetResult().GetId()); len(ss) != 0 {
		t.Fatalf("a failed create left %d sensors", len(ss))
	}
}

// fullDisk is a registry whose writes fail like SQLite on a full volume.
type fullDisk struct{ registry.Registry }

func (fullDisk) CreateDevice(context.Context, registry.Device) (registry.Device, error) {
	return registry.Device{}, errors.New("create device: database or disk is full (13)")
}

func TestCreateDevice_FullDiskIsUnavailableNotInternal(t *testing.T) {
	ctx := context.Background()
	reg, err := registrysql.OpenSQLite(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	svc := New(slog.New(slog.NewTextHandler(io.Discard, nil)), fullDisk{reg}, authn.NewSigner(authn.NewKeySet(priv)), Config{}, nil)
	u, _ := reg.CreateUser(ctx, registry.User{Username: "alice", Role: registry.RoleUser, PasswordHash: "x"})
	uctx := authn.WithPrincipal(ctx, authn.Principal{Kind: authn.KindUser, ID: u.ID})
	_, err = svc.CreateDevice(uctx, &corev1.CreateDeviceRequest{Name: "car"})
	if connect.CodeOf(err) != connect.CodeUnavailable || strings.Contains(err.Error(), "(13)") {
		t.Fatalf("err = %v, want Unavailable (503) without the SQLite text", err)
	}
}

// plainRegistry hides the optional registry interfaces (DeviceSensorsReader).
type plainRegistry struct{ registry.Registry }

// TestListSensors_OwnerOnly: ListSensors answers the owner and an admin,
// "not found" to another user and for a missing device, and sees a sensor
// created just before — on the registry's combined device-and-sensors read
// and on the GetDevice + ListSensors fallback alike.
func TestListSensors_OwnerOnly(t *testing.T) {
	ctx := context.Background()
	reg, err := registrysql.OpenSQLite(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	alice, _ := reg.CreateUser(ctx, registry.User{Username: "alice", Role: registry.RoleUser, PasswordHash: "x"})
	bob, _ := reg.CreateUser(ctx, registry.User{Username: "bob", Role: registry.RoleUser, PasswordHash: "x"})
	root, _ := reg.CreateUser(ctx, registry.User{Username: "root", Role: registry.RoleAdmin, PasswordHash: "x"})
	as := func(u registry.User) context.Context {
		return authn.WithPrincipal(ctx, authn.Principal{Kind: authn.KindUser, ID: u.ID, Admin: u.Role == registry.RoleAdmin})
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	for name, r := range map[string]registry.Registry{"combined": reg, "fallback": plainRegistry{reg}} {
		t.Run(name, func(t *testing.T) {
			if _, ok := r.(registry.DeviceSensorsReader); ok != (name == "combined") {
				t.Fatalf("registry %s: DeviceSensorsReader %v", name, ok)
			}
			svc := New(slog.New(slog.NewTextHandler(io.Discard, nil)), r, authn.NewSigner(authn.NewKeySet(priv)), Config{})
			d, err := svc.CreateDevice(as(alice), &corev1.CreateDeviceRequest{Name: "car-" + name})
			if err != nil {
				t.Fatal(err)
			}
			id := d.GetResult().GetId()
			list := func(u registry.User, id int64) ([]*corev1.Sensor, error) {
				res, err := svc.ListSensors(as(u), &corev1.ListSensorsRequest{DeviceId: id})
				return res.GetResult(), err
			}
			for i := range 3 { // read twice between writes: the second read is a cache hit
				for range 2 {
					if ss, err := list(alice, id); err != nil || len(ss) != i {
						t.Fatalf("owner lists %d sensors (%v), want %d", len(ss), err, i)
					}
				}
				if _, err := svc.CreateSensor(as(alice), &corev1.CreateSensorRequest{DeviceId: id, Name: fmt.Sprint("s", i), ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE}); err != nil {
					t.Fatal(err)
				}
			}
			if ss, err := list(root, id); err != nil || len(ss) != 3 {
				t.Fatalf("admin lists %d sensors (%v), want 3", len(ss), err)
			}
			if ss, err := list(bob, id); connect.CodeOf(err) != connect.CodeNotFound || len(ss) != 0 {
				t.Fatalf("another user: %d sensors, %v; want NotFound and nothing", len(ss), err)
			}
			if _, err := list(alice, id+1000); connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("missing device: %v, want NotFound", err)
			}
			if _, err := svc.ListSensors(ctx, &corev1.ListSensorsRequest{DeviceId: id}); connect.CodeOf(err) != connect.CodeUnauthenticated && connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Fatalf("no principal: %v", err)
			}
		})
	}
}
