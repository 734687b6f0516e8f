package registry

import "context"

// Rule is a condition watched on the stream of stored readings. Spec is the
// condition as the rules service encodes it (JSON); the registry only keeps it.
type Rule struct {
	ID      int64
	OwnerID int64
	Name    string
	// SensorID is the watched sensor; 0 for a device-wide rule.
	SensorID int64
	DeviceID int64
	// Kind names the condition (threshold, absence, rate, equals).
	Kind string
	Spec []byte
	// WebhookURL receives alert events; WebhookSecret signs them.
	WebhookURL    string
	WebhookSecret string
	CreatedNS     int64
}

// RuleState is the evaluation state of a rule for one sensor. Version
// increases with every change: a change is written only when the stored
// version is still the one it was computed from, so two pipeline processes
// that both saw a reading (a rebalance, a replay) change it once.
type RuleState struct {
	RuleID   int64
	SensorID int64
	Version  int64
	// State is the evaluator's encoded state (JSON).
	State []byte
}

// Alert is one firing of a rule.
type Alert struct {
	// ID is derived from the rule and the crossing reading.
	ID       string
	RuleID   int64
	OwnerID  int64
	RuleName string
	SensorID int64
	DeviceID int64
	// State is "firing" or "resolved".
	State        string
	Value        string
	FireNS       int64
	ResolveNS    int64
	ResolveValue string
	AckBy        int64
	AckNS        int64
	CreatedNS    int64
}

// AlertEvent is a change of an alert, in the order they happened.
type AlertEvent struct {
	ID      int64
	AlertID string
	// Event is "fired", "resolved" or "acknowledged".
	Event   string
	OwnerID int64
	TimeNS  int64
}

// Transition is one change of a rule's state, written atomically with the
// alert it raises or resolves, the event and the webhook delivery to make.
type Transition struct {
	// State is written when the stored version is State.Version; the new
	// version is State.Version+1 (a missing row counts as version 0).
	State RuleState
	// Fire, when set, raises this alert (ignored if its id exists).
	Fire *Alert
	// ResolveID, when set, resolves that firing alert at ResolveNS with
	// ResolveValue.
	ResolveID    string
	ResolveNS    int64
	ResolveValue string
	// WebhookURL, when set, queues a delivery of the event.
	WebhookURL string
	// Command queues the rule's command to its device with a fired alert
	// (delivered by the notifier, event "command").
	Command bool
}

// Delivery is a queued webhook delivery of one alert event.
type Delivery struct {
	ID      int64
	AlertID string
	Event   string
	URL     string
	// Attempts made so far; DueNS is when the next may be made.
	Attempts int
	DueNS    int64
	// Done is set when delivered or given up.
	Done bool
	// LeaseNS is when a worker's claim on it expires.
	LeaseNS int64
}

// DeliveryAttempt records one try of a delivery.
type DeliveryAttempt struct {
	DeliveryID int64
	AlertID    string
	Event      string
	Attempt    int
	StatusCode int
	Error      string
	OK         bool
	TimeNS     int64
}

// AlertFilter narrows ListAlerts.
type AlertFilter struct {
	OwnerID int64
	RuleID  int64
	State   string
	// BeforeCreatedNS/BeforeID continue a newest-first listing.
	BeforeCreatedNS int64
	BeforeID        string
	Limit           int
}

// Rules stores rules, their evaluation state, alerts, webhook deliveries and
// per-sensor retention. The SQL registry implements it; the rules service
// and the pipeline depend only on this contract.
type Rules interface {
	CreateRule(ctx context.Context, r Rule) (Rule, error)
	GetRule(ctx context.Context, id int64) (Rule, error)
	// ListRules returns rules with id > p.AfterID (ownerID 0: everyone's,
	// sensorID 0: any sensor).
	ListRules(ctx context.Context, ownerID, sensorID int64, p Page) ([]Rule, error)
	DeleteRule(ctx context.Context, id int64) error
	// RulesVersion changes whenever a rule is created or deleted.
	RulesVersion(ctx context.Context) (int64, error)
	// RuleStates returns the stored states of the given sensors' rules
	// (sensor 0: device-wide rules).
	RuleStates(ctx context.Context, sensorIDs []int64) ([]RuleState, error)
	// ApplyTransitions writes the transitions in one transaction and
	// returns, per transition, whether it was applied (false: the state
	// changed meanwhile; nothing of that transition was written).
	ApplyTransitions(ctx context.Context, ts []Transition) ([]bool, error)

	GetAlert(ctx context.Context, id string) (Alert, error)
	ListAlerts(ctx context.Context, f AlertFilter) ([]Alert, error)
	// AcknowledgeAlert records userID's acknowledgement (the first one
	// stays) and an "acknowledged" event.
	AcknowledgeAlert(ctx context.Context, id string, userID, nowNS int64) (Alert, error)
	// AlertEvents returns up to limit events with id > afterID (ownerID 0:
	// everyone's).
	AlertEvents(ctx context.Context, ownerID, afterID int64, limit int) ([]AlertEvent, error)
	// LastAlertEvent returns the id of the newest event (0: none).
	LastAlertEvent(ctx context.Context) (int64, error)

	// ClaimDeliveries leases up to limit due deliveries until leaseNS.
	ClaimDeliveries(ctx context.Context, nowNS, leaseNS int64, limit int) ([]Delivery, error)
	// RecordDelivery records an attempt and reschedules (dueNS) or
	// finishes (done) the delivery.
	RecordDelivery(ctx context.Context, a DeliveryAttempt, dueNS int64, done bool) error
	// DeliveryAttempts returns the attempts of an alert's deliveries.
	DeliveryAttempts(ctx context.Context, alertID string) ([]DeliveryAttempt, error)

	// SetSensorRetention sets (rawNS > 0) or removes (0) a sensor's raw
	// retention override.
	SetSensorRetention(ctx context.Context, sensorID, rawNS int64) error
	// SensorRetentions returns every override by sensor id.
	SensorRetentions(ctx context.Context) (map[int64]int64, error)
}
