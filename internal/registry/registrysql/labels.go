package registrysql

import (
	"encoding/json"
	"unicode/utf8"
)

// parseLabels decodes the labels column, the JSON object labelsJSON writes
// (json.Marshal of a map[string]string). It runs for every device a read
// returns, where encoding/json's reflection and allocations were a quarter
// of a page of ListDevices, so the usual shape — keys and values without
// escapes, no whitespace — is read directly; anything else (escapes,
// whitespace, invalid UTF-8, other JSON) goes through encoding/json, so the
// result is always what json.Unmarshal gives (FuzzParseLabels).
func parseLabels(s string) (map[string]string, error) {
	if m, ok := parsePlainLabels(s); ok {
		return m, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, err
	}
	return m, nil
}

// parsePlainLabels reads {"k":"v",...} whose strings hold no escapes; false
// for anything else.
func parsePlainLabels(s string) (map[string]string, bool) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, false
	}
	body := s[1 : len(s)-1]
	m := map[string]string{}
	if body == "" {
		return m, true
	}
	for {
		k, rest, ok := plainString(body)
		if !ok || rest == "" || rest[0] != ':' {
			return nil, false
		}
		v, rest, ok := plainString(rest[1:])
		if !ok {
			return nil, false
		}
		m[k] = v // a repeated key keeps the last value, as json.Unmarshal
		if rest == "" {
			return m, true
		}
		if rest[0] != ',' {
			return nil, false
		}
		body = rest[1:]
	}
}

// plainString reads the JSON string s starts with if it has no escape, no
// control character and is valid UTF-8; it returns the string and what
// follows it.
func plainString(s string) (str, rest string, ok bool) {
	if s == "" || s[0] != '"' {
		return "", "", false
	}
	ascii := true
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			str = s[1:i]
			if !ascii && !utf8.ValidString(str) {
				return "", "", false
			}
			return str, s[i+1:], true
		case c == '\\' || c < 0x20:
			return "", "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", "", false
}
