package rules

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// Webhook headers. The signature is the lowercase hex HMAC-SHA256, keyed by
// the rule's webhook secret, of "<timestamp>.<body>" with the timestamp of
// SignatureTimestampHeader (Unix seconds): receivers recompute it and refuse
// old timestamps to stop replays.
const (
	SignatureHeader          = "X-Iot-Signature"
	SignatureTimestampHeader = "X-Iot-Timestamp"
	DeliveryHeader           = "X-Iot-Delivery"
	EventHeader              = "X-Iot-Event"
)

// Sign returns the signature header value of body sent at ts.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header value in constant time.
func Verify(secret string, ts int64, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, ts, body)), []byte(sig))
}

// NotifierConfig tunes webhook delivery.
type NotifierConfig struct {
	// Backoff is the wait after the first failed attempt; it doubles with
	// every further one up to MaxBackoff (defaults 1s, 5m).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxAttempts before a delivery is given up (default 10).
	MaxAttempts int
	// Timeout of one attempt (default 10s).
	Timeout time.Duration
	// Poll is how often due deliveries are looked for without a wake-up
	// (default 1s).
	Poll time.Duration
	// AllowNets are internal networks webhooks may reach all the same; by
	// default they reach public addresses only (egress.go).
	AllowNets []netip.Prefix
}

// Notifier delivers queued alert events to webhooks: it leases due
// deliveries (so several processes never send one twice at once), POSTs
// the signed event, records every attempt and reschedules failures with
// exponential backoff.
type Notifier struct {
	log    *slog.Logger
	rules  registry.Rules
	cfg    NotifierConfig
	client *http.Client
	wake   chan struct{}
	now    func() time.Time

	attempts *prometheus.CounterVec
}

// NewNotifier returns a notifier; client may be nil (a default with the
// attempt timeout, no redirects and the egress policy of cfg.AllowNets).
func NewNotifier(log *slog.Logger, rs registry.Rules, cfg NotifierConfig, client *http.Client, reg prometheus.Registerer) *Notifier {
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if client == nil {
		client = webhookClient(cfg.Timeout, cfg.AllowNets)
	}
	n := &Notifier{
		log: log, rules: rs, cfg: cfg, client: client, wake: make(chan struct{}, 1), now: time.Now,
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iot_webhook_attempts_total", Help: "Webhook delivery attempts, by result (ok, failed, gave_up).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(n.attempts)
	}
	return n
}

// Wake makes the notifier look for due deliveries now.
func (n *Notifier) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is done.
func (n *Notifier) Run(ctx context.Context) error {
	t := time.NewTicker(n.cfg.Poll)
	defer t.Stop()
	for {
		for n.pass(ctx) {
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-n.wake:
		}
	}
}

// pass sends one batch of due deliveries; it reports whether there may be more.
func (n *Notifier) pass(ctx context.Context) bool {
	now := n.now()
	ds, err := n.rules.ClaimDeliveries(ctx, now.UnixNano(), now.Add(n.cfg.Timeout+30*time.Second).UnixNano(), 16)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("claim webhook deliveries failed", "err", err)
		}
		return false
	}
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.deliver(ctx, d)
		}()
	}
	wg.Wait()
	return len(ds) == 16
}

// Payload is the JSON body of a webhook delivery.
type Payload struct {
	Event      string       `json:"event"`
	DeliveryID int64        `json:"delivery_id"`
	Attempt    int          `json:"attempt"`
	Alert      AlertPayload `json:"alert"`
}

// AlertPayload is the alert inside a Payload.
type AlertPayload struct {
	ID           string `json:"id"`
	RuleID       int64  `json:"rule_id"`
	RuleName     string `json:"rule_name"`
	SensorID     int64  `json:"sensor_id"`
	DeviceID     int64  `json:"device_id"`
	State        string `json:"state"`
	Value        string `json:"value,omitempty"`
	FireTime     string `json:"fire_time"`
	ResolveTime  string `json:"resolve_time,omitempty"`
	ResolveValue string `json:"resolve_value,omitempty"`
}

func rfc3339(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func (n *Notifier) deliver(ctx context.Context, d registry.Delivery) {
	attempt := d.Attempts + 1
	rec := registry.DeliveryAttempt{DeliveryID: d.ID, AlertID: d.AlertID, Event: d.Event, Attempt: attempt, TimeNS: n.now().UnixNano()}
	a, err := n.rules.GetAlert(ctx, d.AlertID)
	if err != nil {
		n.log.Warn("webhook delivery: alert unreadable", "alert_id", d.AlertID, "err", err)
		return // the lease expires and it is tried again
	}
	ru, err := n.rules.GetRule(ctx, a.RuleID)
	if errors.Is(err, registry.ErrNotFound) {
		// The rule and its secret are gone: nothing may be sent in its name.
		rec.Error = "rule deleted"
		if err := n.rules.RecordDelivery(context.WithoutCancel(ctx), rec, 0, true); err != nil {
			n.log.Warn("record webhook delivery failed", "alert_id", d.AlertID, "err", err)
		}
		return
	}
	if err != nil {
		return // the lease expires and it is tried again
	}
	if d.Event == "command" {
		n.sendCommand(ctx, d, rec, ru)
		return
	}
	secret := ru.WebhookSecret
	body, _ := json.Marshal(Payload{Event: d.Event, DeliveryID: d.ID, Attempt: attempt, Alert: AlertPayload{
		ID: a.ID, RuleID: a.RuleID, RuleName: a.RuleName, SensorID: a.SensorID, DeviceID: a.DeviceID,
		State: a.State, Value: a.Value, FireTime: rfc3339(a.FireNS), ResolveTime: rfc3339(a.ResolveNS), ResolveValue: a.ResolveValue,
	}})
	var permanent bool
	rec.StatusCode, rec.Error, permanent = n.post(ctx, d, body, secret)
	rec.OK = rec.Error == ""
	due, done := int64(0), true
	switch {
	case rec.OK:
		n.attempts.WithLabelValues("ok").Inc()
	case permanent || attempt >= n.cfg.MaxAttempts:
		n.attempts.WithLabelValues("gave_up").Inc()
		n.log.Warn("webhook delivery given up", "alert_id", d.AlertID, "event", d.Event, "attempts", attempt, "err", rec.Error)
	default:
		n.attempts.WithLabelValues("failed").Inc()
		done = false
		due = n.now().Add(n.backoff(attempt)).UnixNano()
	}
	if err := n.rules.RecordDelivery(context.WithoutCancel(ctx), rec, due, done); err != nil {
		n.log.Warn("record webhook delivery failed", "alert_id", d.AlertID, "err", err)
	}
}

// backoff is the wait after the attempt-th failed attempt.
func (n *Notifier) backoff(attempt int) time.Duration {
	b := n.cfg.Backoff
	for i := 1; i < attempt && b < n.cfg.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, n.cfg.MaxBackoff)
}

// post sends one attempt; it returns the status, an error text ("" on 2xx)
// and whether the failure is permanent (a bad URL, or an address the
// egress policy refuses): no retry can help.
func (n *Notifier) post(ctx context.Context, d registry.Delivery, body []byte, secret string) (int, string, bool) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "bad webhook url", true
	}
	ts := n.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "iotplatform-webhook")
	req.Header.Set(EventHeader, d.Event)
	req.Header.Set(DeliveryHeader, strconv.FormatInt(d.ID, 10))
	req.Header.Set(SignatureTimestampHeader, strconv.FormatInt(ts, 10))
	if secret != "" {
		req.Header.Set(SignatureHeader, Sign(secret, ts, body))
	}
	resp, err := n.client.Do(req)
	if errors.Is(err, errAddressRefused) {
		n.log.Warn("webhook address refused", "delivery_id", d.ID, "err", err)
		return 0, "refused: " + errText(err), true
	}
	if err != nil {
		return 0, "request failed: " + errText(err), false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, "status " + strconv.Itoa(resp.StatusCode), false
	}
	return resp.StatusCode, "", false
}

// errText shortens transport errors for the attempt record.
func errText(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// sendCommand queues the rule's command to its device, like SendCommand
// does (docs/COMMANDS.md), and records it as the delivery's attempt. A
// crash between the two queues it again on the next attempt: at least once.
func (n *Notifier) sendCommand(ctx context.Context, d registry.Delivery, rec registry.DeliveryAttempt, ru registry.Rule) {
	done, due := true, int64(0)
	sp, err := decodeSpec(ru.Spec)
	cmds, ok := n.rules.(registry.Commands)
	switch {
	case err != nil || sp.Command == nil:
		rec.Error = "the rule has no command"
	case !ok:
		rec.Error = "commands are not available on this registry"
	default:
		now := n.now()
		payload := []byte(sp.Command.Payload)
		if payload == nil {
			payload = []byte{}
		}
		c, err := cmds.EnqueueCommand(ctx, registry.Command{DeviceID: ru.DeviceID, Name: sp.Command.Name, Payload: payload,
			CreatedBy: ru.OwnerID, CreatedAt: now, ExpiresAt: now.Add(CommandTTL)}, CommandMaxPending)
		if err != nil {
			rec.Error = "queue command: " + errText(err)
			if rec.Attempt < n.cfg.MaxAttempts {
				done, due = false, now.Add(n.backoff(rec.Attempt)).UnixNano()
			}
		} else {
			rec.OK, rec.StatusCode = true, int(c.ID) // the command id, for GetAlert's deliveries
		}
	}
	if rec.OK {
		n.attempts.WithLabelValues("ok").Inc()
	} else {
		n.attempts.WithLabelValues("failed").Inc()
	}
	if err := n.rules.RecordDelivery(context.WithoutCancel(ctx), rec, due, done); err != nil {
		n.log.Warn("record rule command failed", "alert_id", d.AlertID, "err", err)
	}
}

// CommandTTL is how long a rule's command waits for its device, and
// CommandMaxPending how many unfinished commands a device may have before a
// rule's command waits for room (the command service's default).
const (
	CommandTTL        = time.Hour
	CommandMaxPending = 100
)
