package registry

import "context"

// Batch reads: the per-key reads every reading repeats (a device's token
// generation, a sensor) read many keys in one query, for the caches that
// refresh their entries ahead of expiry (cache.NewRefreshing). A registry
// implements them optionally; callers fall back to the one-key reads.

// DeviceAccess is what the data path re-checks of a device for every
// reading: its token generation (revocation) and its ingest limit override.
type DeviceAccess struct {
	KeyGen      int64
	IngestRate  float64
	IngestBurst int64
}

// DeviceAccessReader reads the DeviceAccess of many devices at once.
type DeviceAccessReader interface {
	// DeviceAccess returns the access fields of every device of ids that
	// exists (a missing device is left out of the map).
	DeviceAccess(ctx context.Context, ids []int64) (map[int64]DeviceAccess, error)
}

// SensorsReader reads many sensors at once.
type SensorsReader interface {
	// GetSensors returns every sensor of ids that exists (a missing
	// sensor is left out of the map).
	GetSensors(ctx context.Context, ids []int64) (map[int64]Sensor, error)
}

// ChangeCounter reads the registry's change counter: with it, a refresh
// round of the caches over DeviceAccessReader and SensorsReader asks
// "was anything written?" before reading every entry in use again.
type ChangeCounter interface {
	// Changes returns a number that every write that can change an answer
	// of DeviceAccess or GetSensors increases — a device created or
	// deleted, its key generation or ingest limits changed, a sensor
	// created, changed or deleted — in the same transaction as the write,
	// and that other writes (device state, commands, sessions, a device's
	// name) leave alone. Two reads that return the same value: no such
	// write committed between them.
	Changes(ctx context.Context) (int64, error)
}
