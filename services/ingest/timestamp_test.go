package ingest

import (
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	sec := int64(1526717967)
	cases := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "1526717967", want: sec * 1e9},
		{in: "1526717967.5", want: sec*1e9 + 5e8},
		{in: "1526717967.123456789123", want: sec*1e9 + 123456789},
		{in: "1526717967123", want: sec*1e9 + 123e6},
		{in: "1526717967123.25", want: sec*1e9 + 123e6 + 250e3},
		{in: "1526717967123456", want: sec*1e9 + 123456e3},
		{in: "1526717967123456789", want: sec*1e9 + 123456789},
		{in: "1.526717967e9", want: sec * 1e9},
		{in: "0", want: 0},
		{in: "2018-05-19T08:19:27Z", want: sec * 1e9},
		{in: "2018-05-19T10:19:27.5+02:00", want: sec*1e9 + 5e8},
		{in: "-5", bad: true},
		{in: "", bad: true},
		{in: "abc", bad: true},
		{in: "1.", bad: true},
		{in: "1.2.3", bad: true},
		{in: "99999999999999999999", bad: true},
		{in: "NaN", bad: true},
		{in: "1e400", bad: true},
		{in: "2018-05-19", bad: true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseTimestamp(c.in)
			if c.bad {
				if err == nil {
					t.Fatalf("ParseTimestamp(%q) = %d, want error", c.in, got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ParseTimestamp(%q) = %d, %v; want %d (%s)", c.in, got, err, c.want, time.Unix(0, c.want).UTC())
			}
		})
	}
}

func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"1526717967", "1526717967.5", "1526717967123456789", "2018-05-19T08:19:27Z", "1e9", "-1", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ns, err := ParseTimestamp(s)
		if err == nil && ns < 0 {
			t.Fatalf("ParseTimestamp(%q) = %d, negative without error", s, ns)
		}
	})
}
