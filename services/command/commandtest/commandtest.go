// Package commandtest gives edge tests a running command service, with a
// device to send commands to.
package commandtest

import (
	"context"
	"log/slog"
	"testing"

	commandv1 "github.com/iotplatform/iotplatform/gen/iot/command/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/services/command"
)

// Store is the registry the service runs on (a fresh one: New creates its
// devices).
type Store interface {
	registry.Registry
	registry.Commands
}

// Env is a running command service (until the test ends).
type Env struct {
	Service *command.Service
	// Device is the device commands are sent to.
	Device registry.Device
	// owner is a context authenticated as the device's owner.
	owner context.Context
}

// New creates a user on reg and devices of it until one has the id device
// (ingesttest.DeviceA is the first, 1): Env.Device. It then starts a
// command service on reg.
func New(t testing.TB, log *slog.Logger, reg Store, device int64) *Env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	u, err := reg.CreateUser(ctx, registry.User{Username: "owner", Role: registry.RoleUser, PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{owner: authn.WithPrincipal(ctx, authn.Principal{Kind: authn.KindUser, ID: u.ID})}
	for e.Device.ID < device {
		if e.Device, err = reg.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "device"}); err != nil {
			t.Fatal(err)
		}
	}
	if e.Device.ID != device {
		t.Fatalf("registry gave device id %d, want %d", e.Device.ID, device)
	}
	e.Service = command.New(log, command.Config{}, reg, reg, nil)
	go e.Service.Run(ctx)
	return e
}

// Send sends the device a command named name and returns its id.
func (e *Env) Send(t testing.TB, name string) int64 {
	t.Helper()
	res, err := e.Service.SendCommand(e.owner, &commandv1.SendCommandRequest{DeviceId: e.Device.ID, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetResult().GetId()
}
