package registry

import (
	"context"
	"errors"
	"time"
)

// ErrQueueFull means a device already has the most pending commands it may
// have (the caller's bound); nothing was stored.
var ErrQueueFull = errors.New("command queue full")

// CommandStatus is where a command is in its lifecycle:
// queued → sent → delivered → succeeded | failed, or expired | cancelled
// from any status that is not final.
type CommandStatus string

// Command statuses.
const (
	CommandQueued    CommandStatus = "queued"
	CommandSent      CommandStatus = "sent"
	CommandDelivered CommandStatus = "delivered"
	CommandSucceeded CommandStatus = "succeeded"
	CommandFailed    CommandStatus = "failed"
	CommandExpired   CommandStatus = "expired"
	CommandCancelled CommandStatus = "cancelled"
)

// Final reports whether no transition leaves s.
func (s CommandStatus) Final() bool {
	switch s {
	case CommandSucceeded, CommandFailed, CommandExpired, CommandCancelled:
		return true
	}
	return false
}

// Command is one instruction to one device, stored until it is final.
type Command struct {
	ID       int64
	DeviceID int64
	Name     string
	Payload  []byte
	// Binary is true for an opaque payload, false for JSON.
	Binary    bool
	Status    CommandStatus
	CreatedBy int64
	CreatedAt time.Time
	ExpiresAt time.Time
	// Result is the device's answer (JSON), nil before it answered.
	Result []byte
	// Edge is the edge it was last sent on.
	Edge    string
	History []CommandEvent
}

// CommandEvent is one status transition of a command.
type CommandEvent struct {
	Status CommandStatus
	At     time.Time
	Detail string
}

// CommandUpdate is a transition asked of UpdateCommand.
type CommandUpdate struct {
	// To is the status to enter.
	To CommandStatus
	// From lists the statuses the transition may leave; a command in
	// another status is left as it is (ErrFailedPrecondition).
	From   []CommandStatus
	At     time.Time
	Detail string
	// Edge, when set, records the edge the command was sent on.
	Edge string
	// Result, when set, records the device's answer.
	Result []byte
}

// DeviceState is what is known of a device's connection and attributes.
type DeviceState struct {
	DeviceID int64
	// Connections counts the open connections of the device (all processes).
	Connections int64
	// Edge and OnlineSince describe the connection that made it online.
	Edge        string
	OnlineSince time.Time
	LastSeen    time.Time
	// Reported and Desired are JSON objects (nil when never set).
	Reported       []byte
	ReportedAt     time.Time
	Desired        []byte
	DesiredVersion int64
	DesiredAt      time.Time
}

// ConnectionLeaseTTL bounds how long the connections counted by a process
// that died without closing them (kill -9, a lost machine) keep its devices
// online: a process renews its lease every ConnectionLeaseRenew, and a lease
// not renewed for ConnectionLeaseTTL counts no connection.
const (
	ConnectionLeaseTTL   = 15 * time.Second
	ConnectionLeaseRenew = 3 * time.Second
)

// Commands is the durable command queue and the device state store. The SQL
// registry implements it on SQLite and PostgreSQL; changes made by any
// process sharing the backend reach WatchChanges.
type Commands interface {
	// EnqueueCommand stores c as queued (with its first history event) and
	// returns it with its id; ErrQueueFull when the device already has
	// maxPending commands that are not final.
	EnqueueCommand(ctx context.Context, c Command, maxPending int) (Command, error)
	// GetCommand returns a command with its history.
	GetCommand(ctx context.Context, id int64) (Command, error)
	// ListCommands returns the device's commands by id, with histories.
	ListCommands(ctx context.Context, deviceID int64, p Page) ([]Command, error)
	// PendingCommands returns the device's queued and sent commands that
	// have not expired at now, oldest first, at most limit.
	PendingCommands(ctx context.Context, deviceID int64, now time.Time, limit int) ([]Command, error)
	// UpdateCommand applies u to the command if its status is one of
	// u.From (ErrFailedPrecondition otherwise) and returns the command.
	UpdateCommand(ctx context.Context, id int64, u CommandUpdate) (Command, error)
	// ExpireCommands marks commands that are not final and whose expiry
	// is at or before now as expired (at most limit) and returns them.
	ExpireCommands(ctx context.Context, now time.Time, limit int) ([]Command, error)
	// CountPendingCommands counts commands that are not final.
	CountPendingCommands(ctx context.Context) (int64, error)

	// GetDeviceState returns the state of a device (a zero state with the
	// device id when nothing is known yet).
	GetDeviceState(ctx context.Context, deviceID int64) (DeviceState, error)
	// DeviceConnected counts a new connection of the device on edge; the
	// first one sets Edge and OnlineSince.
	DeviceConnected(ctx context.Context, deviceID int64, edge string, at time.Time) error
	// DeviceDisconnected uncounts a connection; the last one clears Edge.
	DeviceDisconnected(ctx context.Context, deviceID int64, at time.Time) error
	// ResetConnections uncounts every connection (an embedded process
	// starting: no connection survived the previous one).
	ResetConnections(ctx context.Context) error
	// RenewConnectionLease keeps the connections this registry handle
	// counted (DeviceConnected) counted until now+ConnectionLeaseTTL. lost
	// is true when the lease had expired and been swept meanwhile: the
	// caller records its open connections again.
	RenewConnectionLease(ctx context.Context, now time.Time) (lost bool, err error)
	// SweepConnections uncounts the connections of every handle (process)
	// whose lease expired before now, and returns the devices it changed.
	// Reads already treat such connections as closed; this makes it
	// permanent and announces the change (WatchChanges).
	SweepConnections(ctx context.Context, now time.Time) ([]int64, error)
	// TouchDevice sets the device's last-seen time.
	TouchDevice(ctx context.Context, deviceID int64, at time.Time) error
	// TouchDevices sets the last-seen time of many devices in one write
	// (ids of devices that no longer exist are skipped); like TouchDevice
	// it never moves a last-seen time back.
	TouchDevices(ctx context.Context, deviceIDs []int64, at time.Time) error
	// SetReportedAttributes stores the device's reported attributes.
	SetReportedAttributes(ctx context.Context, deviceID int64, doc []byte, at time.Time) (DeviceState, error)
	// SetDesiredAttributes stores the desired attributes and increments
	// DesiredVersion.
	SetDesiredAttributes(ctx context.Context, deviceID int64, doc []byte, at time.Time) (DeviceState, error)

	// WatchChanges calls fn with the id of every device whose commands or
	// state changed, in this process or (PostgreSQL) in any other, until
	// ctx ends. fn(0) means changes may have been missed (a lost
	// connection): re-read everything of interest.
	WatchChanges(ctx context.Context, fn func(deviceID int64)) error
}
