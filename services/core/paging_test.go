package core

import "testing"

// TestPageTokensStayCompatible pins the token format clients already hold
// (base64url of the last id, no padding): a token issued by an earlier
// release keeps selecting the rows after that id.
func TestPageTokensStayCompatible(t *testing.T) {
	if tok := nextToken(100, 100, 1_000_000); tok != "MTAwMDAwMA" {
		t.Fatalf("token for id 1000000 = %q, want the format earlier releases issued", tok)
	}
	p, err := page(100, "NDI") // "42", as issued before keyset indexes
	if err != nil || p.AfterID != 42 || p.Limit != 100 {
		t.Fatalf("old token: %+v %v", p, err)
	}
	for _, bad := range []string{"LTE", "eA", "!!"} { // "-1", "x", not base64
		if _, err := page(100, bad); err == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
}
