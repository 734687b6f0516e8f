// Package registry is the metadata store of the platform: users, devices,
// sensors, consumers and grants. Backends live in sibling packages
// (registrysql for SQLite and PostgreSQL) and all pass registrytest.Run.
package registry

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors every backend returns, wrapped, so callers can map them with errors.Is.
var (
	// ErrNotFound means the addressed row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists means a unique name is taken within its scope.
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition means the change would break an invariant
	// (e.g. deleting the last admin).
	ErrFailedPrecondition = errors.New("failed precondition")
)

// PreconditionError is an ErrFailedPrecondition whose Reason is worded for
// the caller ("the last admin cannot be deleted").
type PreconditionError struct{ Reason string }

func (e *PreconditionError) Error() string { return e.Reason + ": " + ErrFailedPrecondition.Error() }

// Is makes errors.Is(err, ErrFailedPrecondition) hold.
func (e *PreconditionError) Is(target error) bool { return target == ErrFailedPrecondition }

// Role of a user.
type Role string

// Roles.
const (
	RoleAdmin Role = "admin"
	RoleUser  Role = "user"
)

// ValueType of a sensor's readings.
type ValueType string

// Value types.
const (
	TypeDouble  ValueType = "double"
	TypeLong    ValueType = "long"
	TypeBoolean ValueType = "boolean"
	TypeString  ValueType = "string"
	TypeObject  ValueType = "object"
)

// Valid reports whether t is one of the known value types.
func (t ValueType) Valid() bool {
	switch t {
	case TypeDouble, TypeLong, TypeBoolean, TypeString, TypeObject:
		return true
	}
	return false
}

// User is a person or program administering devices.
type User struct {
	ID           int64
	Username     string
	DisplayName  string
	Role         Role
	PasswordHash string
	// TokenGen increases whenever the user's tokens must stop working
	// (password change); tokens carry the generation they were issued for.
	TokenGen int64
	// Disabled users cannot sign in; disabling also bumps TokenGen.
	Disabled  bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Device owns sensors and pushes readings with its key.
type Device struct {
	ID          int64
	OwnerID     int64
	Name        string
	Description string
	Labels      map[string]string
	// KeyGen increases on every key rotation.
	KeyGen int64
	// IngestRate (readings/s) and IngestBurst override the platform's
	// default ingest limit for this device; 0 uses the default.
	IngestRate  float64
	IngestBurst int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Sensor is one measuring point of a device.
type Sensor struct {
	ID          int64
	DeviceID    int64
	Name        string
	Description string
	Unit        string
	Type        ValueType
	Path        string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Consumer is a read-only data client.
type Consumer struct {
	ID          int64
	OwnerID     int64
	Name        string
	Description string
	SensorIDs   []int64
	// KeyGen increases on every key rotation.
	KeyGen    int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// DeviceCertificate is a client certificate registered for a device, by
// fingerprint: the device may authenticate with it by mutual TLS.
type DeviceCertificate struct {
	// Fingerprint is the SHA-256 of the certificate's DER bytes, lowercase hex.
	Fingerprint string
	DeviceID    int64
	CreatedAt   time.Time
}

// Page selects a window of an id-ordered list.
type Page struct {
	// AfterID returns rows with a greater id.
	AfterID int64
	// Limit is the most rows to return (> 0).
	Limit int
}

// DeviceFilter narrows ListDevices.
type DeviceFilter struct {
	// OwnerID keeps devices of that owner; 0 keeps all.
	OwnerID int64
	// NameContains keeps devices whose name contains it, case-insensitively.
	NameContains string
}

// MaxImport is the most devices one CreateDevices call takes.
const MaxImport = 10_000

// NewDevice is one row of CreateDevices: a device with its sensors.
type NewDevice struct {
	// Device gives OwnerID, Name, Description and Labels.
	Device Device
	// ExternalID, when set, identifies the device in the client's
	// inventory: unique per owner, and a row whose ExternalID the owner
	// already has creates nothing and returns the existing device.
	ExternalID string
	// Sensors to create with the device (DeviceID is ignored).
	Sensors []Sensor
}

// ImportedDevice is the outcome of one row of CreateDevices.
type ImportedDevice struct {
	Device Device
	// Sensors are the created sensors in row order, or all sensors of an
	// existing device.
	Sensors []Sensor
	// Created is false when the row's ExternalID named an existing device.
	Created bool
}

// RowError reports the row of a CreateDevices batch that refused the whole
// batch. Err wraps the registry error (e.g. ErrAlreadyExists).
type RowError struct {
	// Row is the 0-based index of the row.
	Row int
	// Field names what was wrong ("name", "sensors[2]").
	Field string
	Err   error
}

func (e *RowError) Error() string { return fmt.Sprintf("row %d: %s: %v", e.Row, e.Field, e.Err) }

func (e *RowError) Unwrap() error { return e.Err }

// DeviceSensorsReader is implemented by registries that read a device and
// its sensors together (the SQLite registry: one read transaction on one
// connection instead of two point reads). Callers that need both — the
// ownership check of a sensor listing — use it when the registry has it,
// else GetDevice then ListSensors.
type DeviceSensorsReader interface {
	// DeviceWithSensors returns device id and its sensors in id order, as
	// GetDevice and ListSensors would (ErrNotFound if there is no such
	// device).
	DeviceWithSensors(ctx context.Context, id int64) (Device, []Sensor, error)
}

// Registry is the metadata store contract.
type Registry interface {
	CreateUser(ctx context.Context, u User) (User, error)
	GetUser(ctx context.Context, id int64) (User, error)
	GetUserByName(ctx context.Context, username string) (User, error)
	ListUsers(ctx context.Context, p Page) ([]User, error)
	// UpdateUser writes DisplayName, Role, PasswordHash, TokenGen and
	// Disabled of u.
	UpdateUser(ctx context.Context, u User) (User, error)
	// DeleteUser removes the user with its devices, sensors and consumers.
	// Deleting the last admin fails with ErrFailedPrecondition.
	DeleteUser(ctx context.Context, id int64) error
	// CountAdmins counts the admins that are not disabled.
	CountAdmins(ctx context.Context) (int, error)

	CreateDevice(ctx context.Context, d Device) (Device, error)
	GetDevice(ctx context.Context, id int64) (Device, error)
	ListDevices(ctx context.Context, f DeviceFilter, p Page) ([]Device, error)
	// UpdateDevice writes Name, Description, Labels, IngestRate and
	// IngestBurst of d.
	UpdateDevice(ctx context.Context, d Device) (Device, error)
	// DeleteDevice removes the device and returns the sensors it had.
	DeleteDevice(ctx context.Context, id int64) ([]Sensor, error)
	// RotateDeviceKey increments the device's KeyGen and returns the device.
	RotateDeviceKey(ctx context.Context, id int64) (Device, error)
	// CreateDevices creates the devices of rows with their sensors in one
	// transaction: all of them, or (on a *RowError) none. Rows whose
	// ExternalID the owner already has are returned as they are. Results
	// are in row order.
	CreateDevices(ctx context.Context, rows []NewDevice) ([]ImportedDevice, error)

	// AddDeviceCertificate registers c.Fingerprint for c.DeviceID;
	// ErrAlreadyExists when the fingerprint is already registered for that
	// device (other devices' registrations never matter: fingerprints are
	// public, so they must not let anyone block or claim another's).
	AddDeviceCertificate(ctx context.Context, c DeviceCertificate) (DeviceCertificate, error)
	// GetDeviceCertificate finds a fingerprint registered for the device;
	// ErrNotFound when it is not.
	GetDeviceCertificate(ctx context.Context, deviceID int64, fingerprint string) (DeviceCertificate, error)
	// ListDeviceCertificates returns the device's certificates, oldest first.
	ListDeviceCertificates(ctx context.Context, deviceID int64) ([]DeviceCertificate, error)
	// RemoveDeviceCertificate removes a fingerprint of the device;
	// ErrNotFound when the device has no such fingerprint.
	RemoveDeviceCertificate(ctx context.Context, deviceID int64, fingerprint string) error

	CreateSensor(ctx context.Context, s Sensor) (Sensor, error)
	GetSensor(ctx context.Context, id int64) (Sensor, error)
	ListSensors(ctx context.Context, deviceID int64) ([]Sensor, error)
	// UpdateSensor writes Name, Description, Unit and Path of s.
	UpdateSensor(ctx context.Context, s Sensor) (Sensor, error)
	DeleteSensor(ctx context.Context, id int64) error

	CreateConsumer(ctx context.Context, c Consumer) (Consumer, error)
	GetConsumer(ctx context.Context, id int64) (Consumer, error)
	ListConsumers(ctx context.Context, ownerID int64, p Page) ([]Consumer, error)
	// UpdateConsumer writes Name and Description of c.
	UpdateConsumer(ctx context.Context, c Consumer) (Consumer, error)
	DeleteConsumer(ctx context.Context, id int64) error
	RotateConsumerKey(ctx context.Context, id int64) (Consumer, error)
	// Grant lets the consumer read the sensor; granting twice is a no-op.
	Grant(ctx context.Context, consumerID, sensorID int64) error
	// Revoke withdraws a grant; ErrNotFound when there was none.
	Revoke(ctx context.Context, consumerID, sensorID int64) error
	// HasGrant reports whether the consumer may read the sensor.
	HasGrant(ctx context.Context, consumerID, sensorID int64) (bool, error)

	Keys
	RefreshTokens
	AuditLog

	// Ping checks the backend is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error
}
