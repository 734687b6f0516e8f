package registry

import "context"

// Batch reads: the per-key reads every reading repeats (a device's token
// generation, a sensor) read many keys in one query, for the caches that
// refresh their entries ahead of expiry (cache.NewRefreshing). A registry
// implements them optionally; callers fall back to the one-key reads.

// DeviceKeyGensReader reads the KeyGen of many devices at once.
type DeviceKeyGensReader interface {
	// DeviceKeyGens returns the KeyGen of every device of ids that exists
	// (a missing device is left out of the map).
	DeviceKeyGens(ctx context.Context, ids []int64) (map[int64]int64, error)
}

// SensorsReader reads many sensors at once.
type SensorsReader interface {
	// GetSensors returns every sensor of ids that exists (a missing
	// sensor is left out of the map).
	GetSensors(ctx context.Context, ids []int64) (map[int64]Sensor, error)
}
