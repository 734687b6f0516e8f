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
