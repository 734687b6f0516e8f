// Package rules evaluates rules on the stream of stored readings (the
// pipeline hands every durably stored batch to Engine.Observe), keeps their
// state so that each crossing fires exactly once across restarts and
// rebalances, delivers alert events to webhooks (Notifier), and serves
// RulesService (rules, alerts, retention settings).
package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
)

// Condition kinds as stored in registry.Rule.Kind.
const (
	KindThreshold = "threshold"
	KindAbsence   = "absence"
	KindRate      = "rate"
	KindEquals    = "equals"
)

// Threshold comparisons (the values of rulesv1.Threshold_Op).
const (
	OpAbove   = 1
	OpBelow   = 2
	OpOutside = 3
)

// Spec is a rule's condition as stored (registry.Rule.Spec, JSON).
type Spec struct {
	Op         int     `json:"op,omitempty"`
	Low        float64 `json:"low,omitempty"`
	High       float64 `json:"high,omitempty"`
	DurationNS int64   `json:"duration_ns,omitempty"`
	// AbsenceSeconds of silence before an absence rule fires.
	AbsenceSeconds int64 `json:"absence_s,omitempty"`
	// MaxPerSecond is the rate limit of a rate rule.
	MaxPerSecond float64 `json:"max_per_s,omitempty"`
	// EqBool or EqString is the value an equals rule looks for.
	EqBool   *bool   `json:"eq_bool,omitempty"`
	EqString *string `json:"eq_string,omitempty"`
	// Command is sent to the rule's device each time it fires.
	Command *CommandSpec `json:"command,omitempty"`
}

// CommandSpec is the command a rule sends (docs/COMMANDS.md).
type CommandSpec struct {
	Name    string          `json:"name"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func decodeSpec(b []byte) (Spec, error) {
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("rule spec: %w", err)
	}
	return s, nil
}

// violates reports whether v breaks a threshold or equals condition, and
// whether the reading is of a kind the condition looks at.
func (s Spec) violates(kind string, v store.Value) (bool, bool) {
	switch kind {
	case KindThreshold:
		if v.Kind != store.KindDouble && v.Kind != store.KindLong {
			return false, false
		}
		x, _ := v.Numeric()
		switch s.Op {
		case OpAbove:
			return x > s.High, true
		case OpBelow:
			return x < s.Low, true
		case OpOutside:
			return x < s.Low || x > s.High, true
		}
	case KindEquals:
		switch {
		case s.EqBool != nil && v.Kind == store.KindBool:
			return v.Bool == *s.EqBool, true
		case s.EqString != nil && v.Kind == store.KindString:
			return v.Str == *s.EqString, true
		}
	}
	return false, false
}

// ratePerSecond is |Δv/Δt| between two readings; ok is false when Δt is 0.
func ratePerSecond(prevNS int64, prev float64, ns int64, v float64) (float64, bool) {
	dt := float64(ns-prevNS) / float64(time.Second)
	if dt == 0 {
		return 0, false
	}
	return math.Abs((v - prev) / dt), true
}

// valueText renders a reading value as a JSON literal for alerts.
func valueText(v store.Value) string {
	switch v.Kind {
	case store.KindDouble:
		return strconv.FormatFloat(v.Double, 'g', -1, 64)
	case store.KindLong:
		return strconv.FormatInt(v.Long, 10)
	case store.KindBool:
		return strconv.FormatBool(v.Bool)
	case store.KindString:
		b, _ := json.Marshal(v.Str)
		return string(b)
	case store.KindObject:
		return string(v.Object)
	}
	return ""
}
