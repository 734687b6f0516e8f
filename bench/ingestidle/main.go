// Command ingestidle measures the memory of idle device connections: it
// runs the platform (its MQTT and WebSocket edges) in this process through
// the app's own constructor, opens n idle,
// authenticated connections to each from two child processes, and reports
// this process's RSS before and after.
//
//	go run ./bench/ingestidle -n 9900
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/iotplatform/iotplatform/app"
	"github.com/iotplatform/iotplatform/bench/internal/inproc"
	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus/busembedded"
)

var (
	n     = flag.Int("n", 9900, "connections per protocol (the fd limit is per process)")
	role  = flag.String("role", "server", "server, or (internal) mqtt-clients / ws-clients")
	addr  = flag.String("addr", "", "gateway address (client roles)")
	token = flag.String("token", "", "device token (client roles)")
)

func main() {
	flag.Parse()
	switch *role {
	case "mqtt-clients":
		mqttClients()
	case "ws-clients":
		wsClients()
	default:
		server()
	}
}

// server runs the platform in this process through the app's own
// constructor (bench/internal/inproc), with the app's bus seam given a
// sink that drops what it is handed (no reading is sent here). The edges
// get every descriptor but 128 (--fd-reserve) and one device may hold every
// connection (--max-streams-per-caller 0).
func server() {
	b := busembedded.New(5 * time.Second)
	go b.Subscribe(context.Background(), func(context.Context, []*busv1.Record) error { return nil })
	p, err := inproc.Start([]string{"--roles", "core,ingest", "--fd-reserve", "128", "--max-streams-per-caller", "0"}, app.WithBus(b, nil))
	must(err)
	defer p.Close()
	dev, err := inproc.Provision(p.API, p.Password, 1, "double")
	must(err)
	tok := dev.Token
	mqttAddr, wsAddr := p.Addr("mqtt"), p.Addr("ws")
	runtime.GC()
	debug.FreeOSMemory()
	before := rss()
	fmt.Printf("machine: %d CPUs; baseline RSS %.1f MiB\n", runtime.NumCPU(), before)
	var wg sync.WaitGroup
	var cmds []*exec.Cmd
	for _, r := range []struct{ role, addr string }{{"mqtt-clients", mqttAddr}, {"ws-clients", wsAddr}} {
		cmd := exec.Command(os.Args[0], "-role", r.role, "-addr", r.addr, "-token", tok, "-n", strconv.Itoa(*n))
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		must(cmd.Start())
		cmds = append(cmds, cmd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				fmt.Println(r.role+":", sc.Text())
				if strings.HasPrefix(sc.Text(), "ready") {
					return
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(3 * time.Second)
	runtime.GC()
	debug.FreeOSMemory()
	after := rss()
	fmt.Printf("%d idle MQTT + %d idle WebSocket connections: RSS %.1f MiB (baseline %.1f MiB, %.1f KiB per connection), goroutines %d\n",
		*n, *n, after, before, (after-before)*1024/float64(2**n), runtime.NumGoroutine())
	for _, c := range cmds {
		_ = c.Process.Kill()
	}
}

func rss() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// connectPacket is an MQTT 3.1.1 CONNECT with username JWT, the token as
// password and keep-alive 0 (idle forever).
func connectPacket(id, tok string) []byte {
	var v bytes.Buffer
	str := func(s string) { _ = binary.Write(&v, binary.BigEndian, uint16(len(s))); v.WriteString(s) }
	str("MQTT")
	v.WriteByte(4)    // 3.1.1
	v.WriteByte(0xC2) // username, password, clean session
	v.Write([]byte{0, 0})
	str(id)
	str("JWT")
	str(tok)
	var p bytes.Buffer
	p.WriteByte(0x10)
	l := v.Len()
	for {
		d := byte(l % 128)
		l /= 128
		if l > 0 {
			d |= 0x80
		}
		p.WriteByte(d)
		if l == 0 {
			break
		}
	}
	p.Write(v.Bytes())
	return p.Bytes()
}

func mqttClients() {
	conns := make([]net.Conn, 0, *n)
	for i := 0; i < *n; i++ {
		c, err := net.Dial("tcp", *addr)
		must(err)
		_, err = c.Write(connectPacket("idle"+strconv.Itoa(i), *token))
		must(err)
		ack := make([]byte, 4)
		_, err = io.ReadFull(c, ack)
		must(err)
		if ack[0] != 0x20 || ack[3] != 0 {
			must(fmt.Errorf("connack %x", ack))
		}
		conns = append(conns, c)
	}
	fmt.Printf("ready: %d MQTT connections\n", len(conns))
	select {}
}

func wsClients() {
	var held []*websocket.Conn
	h := http.Header{"Authorization": {"Bearer " + *token}}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	for i := 0; i < *n; i++ {
		c, _, err := websocket.Dial(context.Background(), "ws://"+*addr+"/", &websocket.DialOptions{HTTPHeader: h, HTTPClient: hc})
		must(err)
		c.CloseRead(context.Background()) // answers pings
		held = append(held, c)
	}
	fmt.Printf("ready: %d WebSocket connections\n", len(held))
	select {}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
