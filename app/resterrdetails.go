package app

import (
	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
)

// restFieldViolation is a BadRequest field violation in a REST error body.
type restFieldViolation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

// restDetails returns the BadRequest field violations an RPC error carries
// (e.g. the refused row of ImportDevices), for the REST error body.
func restDetails(ce *connect.Error) []restFieldViolation {
	var out []restFieldViolation
	for _, d := range ce.Details() {
		v, err := d.Value()
		if err != nil {
			continue
		}
		if br, ok := v.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				out = append(out, restFieldViolation{Field: fv.GetField(), Description: fv.GetDescription()})
			}
		}
	}
	return out
}
