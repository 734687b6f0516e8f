package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// scanReadings is a validating, allocation-light JSON reader for the reading
// payload (one object or an array of objects). It keeps sensor_id,
// timestamp and value as raw slices of the input, like json.RawMessage but
// without copying: decoding is the hot path of batch ingestion.
func scanReadings(p []byte) ([]jsonReading, error) {
	s := scanner{b: p}
	s.ws()
	var out []jsonReading
	switch s.peek() {
	case '{':
		var r jsonReading
		if err := s.object(&r); err != nil {
			return nil, err
		}
		out = []jsonReading{r}
	case '[':
		s.i++
		s.ws()
		if s.peek() == ']' {
			s.i++
			break
		}
		out = make([]jsonReading, 0, bytes.Count(p, []byte(`"sensor_id"`)))
		for {
			s.ws()
			if s.peek() != '{' {
				return nil, s.errf("want a reading object")
			}
			var r jsonReading
			if err := s.object(&r); err != nil {
				return nil, err
			}
			out = append(out, r)
			s.ws()
			c := s.peek()
			s.i++
			if c == ']' {
				break
			}
			if c != ',' {
				return nil, s.errAt(s.i-1, "want , or ] after a reading")
			}
		}
	default:
		return nil, s.errf("want a JSON object or array of readings")
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, s.errf("unexpected data after the readings")
	}
	return out, nil
}

type scanner struct {
	b     []byte
	i     int
	depth int
}

const maxDepth = 64

var errSyntax = errors.New("invalid JSON")

func (s *scanner) errf(msg string) error { return s.errAt(s.i, msg) }

func (s *scanner) errAt(i int, msg string) error {
	return fmt.Errorf("%w: %s at offset %d", errSyntax, msg, i)
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object reads a reading object, keeping the three known fields.
func (s *scanner) object(r *jsonReading) error {
	s.i++ // '{'
	s.ws()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if s.peek() != '"' {
			return s.errf("want a field name")
		}
		ks := s.i
		if err := s.str(); err != nil {
			return err
		}
		key := s.b[ks+1 : s.i-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if err := json.Unmarshal(s.b[ks:s.i], &k); err != nil {
				return s.errAt(ks, "invalid field name")
			}
			key = []byte(k)
		}
		s.ws()
		if s.peek() != ':' {
			return s.errf("want :")
		}
		s.i++
		s.ws()
		vs := s.i
		if err := s.value(); err != nil {
			return err
		}
		v := s.b[vs:s.i:s.i]
		switch string(key) {
		case "sensor_id":
			r.SensorID = v
		case "timestamp":
			r.Timestamp = v
		case "value":
			r.Value = v
		}
		s.ws()
		c := s.peek()
		s.i++
		if c == '}' {
			return nil
		}
		if c != ',' {
			return s.errAt(s.i-1, "want , or } in a reading")
		}
	}
}

// value skips one JSON value, validating it.
func (s *scanner) value() error {
	switch c := s.peek(); {
	case c == '"':
		return s.str()
	case c == '{':
		return s.nested('{', '}')
	case c == '[':
		return s.nested('[', ']')
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.num()
	default:
		return s.errf("want a value")
	}
}

func (s *scanner) nested(open, closing byte) error {
	s.depth++
	if s.depth > maxDepth {
		return s.errf("nested too deeply")
	}
	defer func() { s.depth-- }()
	s.i++
	s.ws()
	if s.peek() == closing {
		s.i++
		return nil
	}
	for {
		s.ws()
		if open == '{' {
			if s.peek() != '"' {
				return s.errf("want a field name")
			}
			if err := s.str(); err != nil {
				return err
			}
			s.ws()
			if s.peek() != ':' {
				return s.errf("want :")
			}
			s.i++
			s.ws()
		}
		if err := s.value(); err != nil {
			return err
		}
		s.ws()
		c := s.peek()
		s.i++
		if c == closing {
			return nil
		}
		if c != ',' {
			return s.errAt(s.i-1, "want , or "+string(closing))
		}
	}
}

func (s *scanner) lit(l string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(l)) {
		return s.errf("invalid literal")
	}
	s.i += len(l)
	return nil
}

func (s *scanner) str() error {
	s.i++ // opening quote
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return nil
		case c == '\\':
			s.i++
			switch s.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+5 > len(s.b) {
					return s.errf("invalid \\u escape")
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !isHex(h) {
						return s.errf("invalid \\u escape")
					}
				}
				s.i += 5
			default:
				return s.errf("invalid escape")
			}
		case c < 0x20:
			return s.errf("control character in string")
		default:
			s.i++
		}
	}
	return s.errf("unterminated string")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func (s *scanner) digits() int {
	st := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - st
}

func (s *scanner) num() error {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return s.errf("invalid number")
	}
	if s.peek() == '.' {
		s.i++
		if s.digits() == 0 {
			return s.errf("invalid number")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return s.errf("invalid number")
		}
	}
	return nil
}
