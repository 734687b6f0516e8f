package command

import (
	"testing"
	"time"

	commandv1 "github.com/iotplatform/iotplatform/gen/iot/command/v1"
)

// BenchmarkCommandRoundTrip is one command's whole life on the embedded
// registry (SQLite, synchronous=FULL): SendCommand, the push to the
// device's session, sent, delivered, succeeded — four durable writes and
// the reads between them.
func BenchmarkCommandRoundTrip(b *testing.B) {
	f := newFixture(b, Config{})
	ctx := f.as(f.owner)
	sess := f.svc.Attach(f.device.ID, EdgeWS, true)
	defer sess.Close()
	b.ResetTimer()
	for range b.N {
		if _, err := f.svc.SendCommand(ctx, &commandv1.SendCommandRequest{DeviceId: f.device.ID, Name: "x"}); err != nil {
			b.Fatal(err)
		}
		var c = <-sess.Commands()
		if !f.svc.Sent(f.ctx, sess, c) {
			b.Fatal("not sent")
		}
		if err := f.svc.Ack(f.ctx, f.device.ID, c.ID, "bench"); err != nil {
			b.Fatal(err)
		}
		if err := f.svc.Respond(f.ctx, f.device.ID, c.ID, true, nil, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReferenceFourStateWrites is the reference for the round trip:
// four durable single-row writes of the same registry, back to back.
func BenchmarkReferenceFourStateWrites(b *testing.B) {
	f := newFixture(b, Config{})
	t0 := time.Now()
	b.ResetTimer()
	for i := range b.N {
		for j := range 4 {
			if err := f.reg.TouchDevice(f.ctx, f.device.ID, t0.Add(time.Duration(4*i+j)*time.Microsecond)); err != nil {
				b.Fatal(err)
			}
		}
	}
}
