package app

import "github.com/prometheus/client_golang/prometheus"

// walSource is an SQLite database whose write-ahead log is kept bounded
// (registrysql on SQLite, storeembedded).
type walSource interface {
	WALSize() int64
	WALCheckpoints() (done, failed int64)
}

// registerWAL exports the write-ahead log size and checkpoint counts of an
// SQLite file the platform writes, labelled db=name.
func (a *App) registerWAL(name string, src walSource) {
	labels := prometheus.Labels{"db": name}
	a.metrics.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "iot_sqlite_wal_bytes", Help: "Size of the SQLite write-ahead log, by database file.", ConstLabels: labels,
		}, func() float64 { return float64(src.WALSize()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "iot_sqlite_wal_checkpoints_total", Help: "TRUNCATE checkpoints that emptied the write-ahead log, by database file.", ConstLabels: labels,
		}, func() float64 { d, _ := src.WALCheckpoints(); return float64(d) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "iot_sqlite_wal_checkpoints_incomplete_total", Help: "Checkpoints that could not finish (readers held the log past the busy timeout); the next commit retries.", ConstLabels: labels,
		}, func() float64 { _, f := src.WALCheckpoints(); return float64(f) }),
	)
}
