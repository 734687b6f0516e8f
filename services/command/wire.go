package command

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// Message is a command as MQTT, WebSocket and HTTP long-poll devices receive
// it (JSON). Payload is the command's JSON payload; a binary payload comes
// as PayloadBase64 instead.
type Message struct {
	Type          string          `json:"type"`
	ID            int64           `json:"id"`
	Name          string          `json:"name"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 string          `json:"payload_base64,omitempty"`
	ExpiresAt     time.Time       `json:"expires_at"`
}

// Encode returns the JSON a device receives for c.
func Encode(c registry.Command) []byte {
	m := Message{Type: "command", ID: c.ID, Name: c.Name, ExpiresAt: c.ExpiresAt.UTC()}
	if c.Binary {
		m.PayloadBase64 = base64.StdEncoding.EncodeToString(c.Payload)
	} else if len(c.Payload) > 0 {
		m.Payload = c.Payload
	}
	b, _ := json.Marshal(m)
	return b
}

// Answer is a device's answer to a command, parsed from its JSON.
type Answer struct {
	Success bool
	Result  []byte
	Message string
}

// ParseAnswer reads a device's answer: a JSON object
// {"status": "succeeded"|"failed", "result": <any JSON>, "message": "..."}.
// Anything else is taken as the result of a success (a non-JSON body as a
// JSON string), so `mosquitto_pub -m ok` answers too.
func ParseAnswer(b []byte) Answer {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return Answer{Success: true}
	}
	if !json.Valid(t) {
		s, _ := json.Marshal(string(t))
		return Answer{Success: true, Result: s}
	}
	var v struct {
		Status  *string         `json:"status"`
		Result  json.RawMessage `json:"result"`
		Message string          `json:"message"`
	}
	if t[0] == '{' && json.Unmarshal(t, &v) == nil && v.Status != nil && (*v.Status == "succeeded" || *v.Status == "failed") {
		a := Answer{Success: *v.Status == "succeeded", Message: v.Message}
		if len(v.Result) > 0 && string(v.Result) != "null" {
			a.Result = v.Result
		}
		return a
	}
	return Answer{Success: true, Result: t}
}
