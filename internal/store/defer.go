package store

import "context"

type deferSyncKey struct{}

// DeferSync marks ctx for writes whose durability a write-ahead log in front
// of the store already guarantees (the log keeps every record until the
// store's Sync has returned after it): a store implementing Syncer may then
// commit them without an fsync of its own. Other stores ignore it.
func DeferSync(ctx context.Context) context.Context {
	return context.WithValue(ctx, deferSyncKey{}, true)
}

// SyncDeferred reports whether ctx was marked by DeferSync.
func SyncDeferred(ctx context.Context) bool {
	v, _ := ctx.Value(deferSyncKey{}).(bool)
	return v
}

// Syncer is a store whose writes under DeferSync become durable (survive a
// power loss, not only a crash of the process) once Sync returns nil.
type Syncer interface {
	Sync(ctx context.Context) error
}
