package registrysql

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParseLabels: parseLabels gives what json.Unmarshal gives for any
// input (the same map, an error for the same inputs), and reads back every
// map labelsJSON writes.
func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"site":"plant-7"}`, `{"a":"1","b":"2","a":"3"}`, `{"k":""}`, `{"":"v"}`, `{"ü":"grüße"}`,
		`{"a":"\u003c\n"}`, `{"a": "b"}`, ` {"a":"b"}`, `{"a":1}`, `{"a":"b",}`, `{"a":"b"`, `{"a":"` + "\xff" + `"}`,
		`{"a":"b` + "\x01" + `"}`, `null`, `[]`, `{"a":"b"}x`, `{"a""b"}`, `{"a":"b" ,"c":"d"}`, `"x"`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseLabels(s)
		var want map[string]string
		werr := json.Unmarshal([]byte(s), &want)
		if (err != nil) != (werr != nil) {
			t.Fatalf("parseLabels(%q) error %v, json.Unmarshal error %v", s, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("parseLabels(%q) = %#v, json.Unmarshal gives %#v", s, got, want)
		}
	})
}

func TestParseLabels_ReadsWhatLabelsJSONWrites(t *testing.T) {
	for _, m := range []map[string]string{
		{"site": "plant-7"}, {"a": "<b>&", "quote": `"`, "back": `\`, "nl": "x\ny"}, {"ü": "grüße", "emoji": "🌡"},
		{"bad utf8": "\xff"}, {"": ""}, {"k1": "v1", "k2": "v2", "k3": "v3"},
	} {
		got, err := parseLabels(labelsJSON(m))
		var want map[string]string
		json.Unmarshal([]byte(labelsJSON(m)), &want)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseLabels(labelsJSON(%q)) = %q, %v; want %q", m, got, err, want)
		}
	}
}
