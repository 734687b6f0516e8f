package app

// extensions holds what the bus and store setups hand to the other roles:
// busExt is declared in ingest.go (ingestion work), storeExt in pipeline.go
// (storage work).
type extensions struct {
	busExt
	storeExt
}
