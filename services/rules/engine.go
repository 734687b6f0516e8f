package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
)

// Sensors lists a device's sensors (device-wide absence rules).
type Sensors interface {
	ListSensors(ctx context.Context, deviceID int64) ([]registry.Sensor, error)
}

// EngineConfig tunes the engine.
type EngineConfig struct {
	// Shared says other processes evaluate rules too (Kafka consumer group):
	// the states of the sensors in a batch are re-read before evaluating it,
	// since a rebalance may have moved them to another process and back.
	Shared bool
	// Tick is how often rules are reloaded and absence rules checked
	// (default 1s).
	Tick time.Duration
}

// Engine evaluates rules on stored readings. Each (rule, sensor) has a state
// stored in the registry with a version: a change is written only from the
// version it was computed from, together with the alert it raises and the
// webhook delivery, and it carries the identity of the last reading it
// evaluated (the watermark). A reading at or before the watermark is not
// evaluated again, so a redelivered batch (crash before the offset commit,
// a rebalance) fires nothing twice, and a change lost in a crash is
// recomputed from the redelivered readings.
//
// Readings of a sensor are evaluated in timestamp order as they arrive; a
// reading older than the last one evaluated for the sensor is stored but
// does not change rule state.
type Engine struct {
	log     *slog.Logger
	rules   registry.Rules
	sensors Sensors
	reader  store.Reader
	cfg     EngineConfig
	now     func() time.Time
	// notify is called after transitions that queued webhook deliveries.
	notify func()

	mu       sync.Mutex
	scratch  scratch
	version  int64
	bySensor map[int64][]*rule
	absence  []*rule
	states   map[key]*entry

	evaluated   prometheus.Counter
	transitions *prometheus.CounterVec
}

type rule struct {
	registry.Rule
	spec Spec
}

type key struct{ rule, sensor int64 }

// entry is the in-memory state of a key: the stored state and version plus
// the previous value of rate rules (never stored: looked up in the store
// when unknown).
type entry struct {
	version int64
	st      state
	hasPrev bool
	prevNS  int64
	prev    float64
}

// state is what is stored for a key (registry.RuleState.State).
type state struct {
	Seen      bool   `json:"seen,omitempty"`
	WmNS      int64  `json:"wm_ns,omitempty"`
	WmSeq     int64  `json:"wm_seq,omitempty"`
	Firing    bool   `json:"firing,omitempty"`
	AlertID   string `json:"alert,omitempty"`
	Pending   bool   `json:"pending,omitempty"`
	PendingNS int64  `json:"pending_ns,omitempty"`
	// LastSeenNS is the last reading an absence alert knew of.
	LastSeenNS int64 `json:"last_seen_ns,omitempty"`
}

// NewEngine returns an engine over the rules in rs; reader (may be nil)
// answers the previous value of rate rules and absence checks.
func NewEngine(log *slog.Logger, rs registry.Rules, sensors Sensors, reader store.Reader, cfg EngineConfig, reg prometheus.Registerer) *Engine {
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	e := &Engine{
		log: log, rules: rs, sensors: sensors, reader: reader, cfg: cfg, now: time.Now, notify: func() {},
		version: -1, bySensor: map[int64][]*rule{}, states: map[key]*entry{},
		evaluated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "iot_rules_evaluations_total", Help: "Readings evaluated against a rule.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iot_rules_transitions_total", Help: "Rule state changes, by result (applied, conflict).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(e.evaluated, e.transitions)
	}
	return e
}

// OnDeliveries sets the function called when transitions queued webhook
// deliveries (the in-process notifier's wake-up).
func (e *Engine) OnDeliveries(fn func()) { e.notify = fn }

// Load reads the rules (and their states) if they changed since the last load.
func (e *Engine) Load(ctx context.Context) error {
	v, err := e.rules.RulesVersion(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	same := v == e.version
	e.mu.Unlock()
	if same {
		return nil
	}
	var all []registry.Rule
	for after := int64(0); ; {
		page, err := e.rules.ListRules(ctx, 0, 0, registry.Page{AfterID: after, Limit: 1000})
		if err != nil {
			return err
		}
		all = append(all, page...)
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].ID
	}
	bySensor := map[int64][]*rule{}
	var absence []*rule
	for _, r := range all {
		sp, err := decodeSpec(r.Spec)
		if err != nil {
			e.log.Warn("rule skipped", "rule_id", r.ID, "err", err)
			continue
		}
		ru := &rule{Rule: r, spec: sp}
		if r.Kind == KindAbsence {
			absence = append(absence, ru)
			continue
		}
		bySensor[r.SensorID] = append(bySensor[r.SensorID], ru)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Keep what is in memory for keys that remain (it is at least as new as
	// the stored state); load the stored states of new keys.
	var missing []int64
	seen := map[int64]bool{}
	states := map[key]*entry{}
	for sid, rs := range bySensor {
		for _, ru := range rs {
			k := key{ru.ID, sid}
			if en := e.states[k]; en != nil {
				states[k] = en
			} else if !seen[sid] {
				seen[sid] = true
				missing = append(missing, sid)
			}
		}
	}
	if len(missing) > 0 {
		stored, err := e.rules.RuleStates(ctx, missing)
		if err != nil {
			return err
		}
		for _, s := range stored {
			k := key{s.RuleID, s.SensorID}
			if states[k] == nil {
				states[k] = entryOf(s)
			}
		}
	}
	e.bySensor, e.absence, e.states, e.version = bySensor, absence, states, v
	return nil
}

func entryOf(s registry.RuleState) *entry {
	en := &entry{version: s.Version}
	_ = json.Unmarshal(s.State, &en.st)
	return en
}

// Run reloads changed rules and checks absence rules every Tick until ctx
// is done.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := e.Load(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("reload rules failed", "err", err)
			continue
		}
		if err := e.CheckAbsence(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("absence check failed", "err", err)
		}
	}
}

// scratch is reused by every Observe call (under mu): a batch touches
// thousands of keys, and allocating their work anew each time cost more
// than evaluating them.
type scratch struct {
	idx   map[key]*work
	works []*work
	pool  []*work
}

func (sc *scratch) reset() {
	if sc.idx == nil {
		sc.idx = map[key]*work{}
	}
	clear(sc.idx)
	sc.pool = append(sc.pool, sc.works...)
	sc.works = sc.works[:0]
}

func (sc *scratch) get(k key, ru *rule) *work {
	var w *work
	if n := len(sc.pool); n > 0 {
		w, sc.pool = sc.pool[n-1], sc.pool[:n-1]
		w.rs, w.trans = w.rs[:0], w.trans[:0]
	} else {
		w = &work{}
	}
	w.k, w.ru = k, ru
	sc.idx[k] = w
	sc.works = append(sc.works, w)
	return w
}

// work is the evaluation of one key over one batch.
type work struct {
	k     key
	ru    *rule
	rs    []*store.Reading
	en    entry
	trans []registry.Transition
}

// Observe evaluates durably stored readings; an error means the batch must
// be delivered again (nothing was lost: what was written is skipped then).
func (e *Engine) Observe(ctx context.Context, rs []store.Reading) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.bySensor) == 0 {
		return nil
	}
	sc := &e.scratch
	sc.reset()
	for i := range rs {
		r := &rs[i]
		for _, ru := range e.bySensor[r.SensorID] {
			k := key{ru.ID, r.SensorID}
			w := sc.idx[k]
			if w == nil {
				w = sc.get(k, ru)
			}
			w.rs = append(w.rs, r)
		}
	}
	works := sc.works
	if len(works) == 0 {
		return nil
	}
	if e.cfg.Shared {
		if err := e.reloadStates(ctx, works); err != nil {
			return err
		}
	}
	for attempt := 0; len(works) > 0; attempt++ {
		if attempt == 4 {
			return errors.New("rule states keep changing under this process (another pipeline owns these sensors?)")
		}
		var all []registry.Transition
		for _, w := range works {
			if en := e.states[w.k]; en != nil {
				w.en = *en
			} else {
				w.en = entry{}
			}
			w.trans = w.trans[:0]
			if err := e.evaluate(ctx, w); err != nil {
				return err
			}
			all = append(all, w.trans...)
		}
		e.evaluated.Add(float64(len(rs)))
		applied, err := e.rules.ApplyTransitions(ctx, all)
		if err != nil {
			return fmt.Errorf("store rule transitions: %w", err)
		}
		var retry []*work
		deliveries := false
		i := 0
		for _, w := range works {
			ok := true
			for j := range w.trans {
				if applied[i+j] {
					e.transitions.WithLabelValues("applied").Inc()
					deliveries = deliveries || w.trans[j].WebhookURL != "" || w.trans[j].Command
				} else {
					e.transitions.WithLabelValues("conflict").Inc()
					ok = false
				}
			}
			i += len(w.trans)
			if ok {
				if en := e.states[w.k]; en != nil {
					*en = w.en
				} else {
					en := w.en
					e.states[w.k] = &en
				}
			} else {
				retry = append(retry, w)
			}
		}
		if deliveries {
			e.notify()
		}
		if len(retry) > 0 {
			if err := e.reloadStates(ctx, retry); err != nil {
				return err
			}
		}
		works = retry
	}
	return nil
}

// reloadStates replaces the in-memory states of the works' keys by the
// stored ones where the stored version differs.
func (e *Engine) reloadStates(ctx context.Context, works []*work) error {
	var sids []int64
	seen := map[int64]bool{}
	for _, w := range works {
		if !seen[w.k.sensor] {
			seen[w.k.sensor] = true
			sids = append(sids, w.k.sensor)
		}
	}
	stored, err := e.rules.RuleStates(ctx, sids)
	if err != nil {
		return fmt.Errorf("read rule states: %w", err)
	}
	got := map[key]registry.RuleState{}
	for _, s := range stored {
		got[key{s.RuleID, s.SensorID}] = s
	}
	for _, w := range works {
		s, ok := got[w.k]
		en := e.states[w.k]
		switch {
		case !ok:
			delete(e.states, w.k)
		case en == nil || en.version != s.Version:
			e.states[w.k] = entryOf(s)
		}
	}
	return nil
}

func after(r *store.Reading, st state) bool {
	return !st.Seen || r.TimeNS > st.WmNS || (r.TimeNS == st.WmNS && r.Seq > st.WmSeq)
}

// AlertID is the id of the alert raised by rule for the crossing reading.
func AlertID(ruleID, sensorID, timeNS, seq int64, what string) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%d/%d/%s", ruleID, sensorID, timeNS, seq, what))
	return hex.EncodeToString(h[:16])
}

// evaluate runs w's readings through its rule, appending transitions.
func (e *Engine) evaluate(ctx context.Context, w *work) error {
	en := &w.en
	for _, r := range w.rs {
		if !after(r, en.st) {
			continue
		}
		en.st.Seen, en.st.WmNS, en.st.WmSeq = true, r.TimeNS, r.Seq
		var viol, ok bool
		switch w.ru.Kind {
		case KindRate:
			x, num := r.Value.Numeric()
			if !num || r.Value.Kind == store.KindBool {
				continue
			}
			if !en.hasPrev {
				if err := e.lookupPrev(ctx, en, r); err != nil {
					return err
				}
			}
			if en.hasPrev {
				var rate float64
				rate, ok = ratePerSecond(en.prevNS, en.prev, r.TimeNS, x)
				viol = ok && rate > w.ru.spec.MaxPerSecond
			}
			en.hasPrev, en.prevNS, en.prev = true, r.TimeNS, x
			if !ok {
				continue
			}
		default:
			viol, ok = w.ru.spec.violates(w.ru.Kind, r.Value)
			if !ok {
				continue
			}
		}
		e.step(w, r, viol)
	}
	return nil
}

// step moves the key's state for one evaluated reading.
func (e *Engine) step(w *work, r *store.Reading, viol bool) {
	st := &w.en.st
	dur := w.ru.spec.DurationNS
	switch {
	case viol && st.Firing:
	case viol && dur > 0 && !st.Pending:
		st.Pending, st.PendingNS = true, r.TimeNS
		e.push(w, registry.Transition{})
	case viol && (dur == 0 || r.TimeNS-st.PendingNS >= dur):
		id := AlertID(w.ru.ID, r.SensorID, r.TimeNS, r.Seq, "")
		st.Firing, st.AlertID, st.Pending, st.PendingNS = true, id, false, 0
		e.push(w, registry.Transition{Fire: &registry.Alert{
			ID: id, RuleID: w.ru.ID, OwnerID: w.ru.OwnerID, RuleName: w.ru.Name,
			SensorID: r.SensorID, DeviceID: r.DeviceID, Value: valueText(r.Value), FireNS: r.TimeNS,
		}, WebhookURL: w.ru.WebhookURL, Command: w.ru.spec.Command != nil})
	case !viol && st.Firing:
		id := st.AlertID
		st.Firing, st.AlertID = false, ""
		e.push(w, registry.Transition{ResolveID: id, ResolveNS: r.TimeNS, ResolveValue: valueText(r.Value), WebhookURL: w.ru.WebhookURL})
	case !viol && st.Pending:
		st.Pending, st.PendingNS = false, 0
		e.push(w, registry.Transition{})
	}
}

// push appends a transition from the key's current version carrying its
// state after the change, and moves the version on.
func (e *Engine) push(w *work, t registry.Transition) {
	b, _ := json.Marshal(w.en.st)
	t.State = registry.RuleState{RuleID: w.k.rule, SensorID: w.k.sensor, Version: w.en.version, State: b}
	w.en.version++
	w.trans = append(w.trans, t)
}

// lookupPrev fills the previous reading of r's sensor from the store.
func (e *Engine) lookupPrev(ctx context.Context, en *entry, r *store.Reading) error {
	if e.reader == nil {
		return nil
	}
	prev, _, err := e.reader.List(ctx, store.ListQuery{SensorID: r.SensorID, ToNS: r.TimeNS, Limit: 1, Order: store.Descending})
	if err != nil {
		return fmt.Errorf("previous reading of sensor %d: %w", r.SensorID, err)
	}
	if len(prev) == 1 {
		if x, ok := prev[0].Value.Numeric(); ok {
			en.hasPrev, en.prevNS, en.prev = true, prev[0].TimeNS, x
		}
	}
	return nil
}

// CheckAbsence fires absence rules whose sensors have been silent too long
// and resolves those that heard again. Every pipeline process checks every
// absence rule; the versioned state lets exactly one of them change it.
func (e *Engine) CheckAbsence(ctx context.Context) error {
	e.mu.Lock()
	rs := append([]*rule(nil), e.absence...)
	e.mu.Unlock()
	if len(rs) == 0 || e.reader == nil {
		return nil
	}
	sids := []int64{}
	for _, ru := range rs {
		sids = append(sids, ru.SensorID)
	}
	stored, err := e.rules.RuleStates(ctx, sids)
	if err != nil {
		return err
	}
	states := map[key]registry.RuleState{}
	for _, s := range stored {
		states[key{s.RuleID, s.SensorID}] = s
	}
	now := e.now().UnixNano()
	var trans []registry.Transition
	for _, ru := range rs {
		last, err := e.lastSeen(ctx, ru)
		if err != nil {
			return err
		}
		k := key{ru.ID, ru.SensorID}
		s, ok := states[k]
		en := &entry{}
		if ok {
			en = entryOf(s)
		}
		w := &work{k: k, ru: ru, en: *en}
		st := &w.en.st
		limit := ru.spec.AbsenceSeconds * int64(time.Second)
		switch {
		case !st.Firing && now-last > limit:
			id := AlertID(ru.ID, ru.SensorID, last, 0, "absence")
			st.Firing, st.AlertID, st.LastSeenNS = true, id, last
			e.push(w, registry.Transition{Fire: &registry.Alert{
				ID: id, RuleID: ru.ID, OwnerID: ru.OwnerID, RuleName: ru.Name,
				SensorID: ru.SensorID, DeviceID: ru.DeviceID, FireNS: last + limit,
			}, WebhookURL: ru.WebhookURL, Command: ru.spec.Command != nil})
		case st.Firing && last > st.LastSeenNS:
			id := st.AlertID
			st.Firing, st.AlertID, st.LastSeenNS = false, "", last
			e.push(w, registry.Transition{ResolveID: id, ResolveNS: last, WebhookURL: ru.WebhookURL})
		}
		trans = append(trans, w.trans...)
	}
	applied, err := e.rules.ApplyTransitions(ctx, trans)
	if err != nil {
		return err
	}
	for i, ok := range applied {
		if ok {
			e.transitions.WithLabelValues("applied").Inc()
			if trans[i].WebhookURL != "" || trans[i].Command {
				e.notify()
			}
		} else {
			e.transitions.WithLabelValues("conflict").Inc()
		}
	}
	return nil
}

// lastSeen is when the rule's sensor (or any sensor of its device) last
// sent a reading (its receive time), or, before any reading, when the rule
// was created.
func (e *Engine) lastSeen(ctx context.Context, ru *rule) (int64, error) {
	ids := []int64{ru.SensorID}
	if ru.SensorID == 0 {
		ss, err := e.sensors.ListSensors(ctx, ru.DeviceID)
		if err != nil {
			return 0, err
		}
		ids = ids[:0]
		for _, s := range ss {
			ids = append(ids, s.ID)
		}
	}
	if len(ids) == 0 {
		return ru.CreatedNS, nil
	}
	latest, err := e.reader.Latest(ctx, ids)
	if err != nil {
		return 0, err
	}
	if len(latest) == 0 {
		return ru.CreatedNS, nil
	}
	var last int64
	for _, r := range latest {
		last = max(last, r.TimeNS, r.ReceiveTimeNS)
	}
	return last, nil
}
