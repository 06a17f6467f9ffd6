package netlab

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain doubles as a UDP sink that the tests start inside a namespace:
// it counts what reaches it for a while and prints the totals.
func TestMain(m *testing.M) {
	if addr := os.Getenv("NETLAB_SINK"); addr != "" {
		sink(addr)
		return
	}
	if addr := os.Getenv("NETLAB_SOURCE"); addr != "" {
		source(addr)
		return
	}
	os.Exit(m.Run())
}

func sink(addr string) {
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Println("ready")
	var packets, bytes int
	buf := make([]byte, 2048)
	for {
		_ = c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			break
		}
		packets++
		bytes += n
	}
	fmt.Println(packets, bytes)
}

// source sends 1,000 packets of 100 bytes to addr over a second.
func source(addr string) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	defer c.Close()
	payload := make([]byte, 100)
	for range 1000 {
		_, _ = c.Write(payload)
		time.Sleep(time.Millisecond)
	}
}

// send blasts count packets of size bytes at the namespace's sink over
// duration and returns what the sink received.
func send(t *testing.T, l *Link, count, size int, duration time.Duration) (packets, bytes int) {
	t.Helper()
	argv := l.Wrap(os.Args[0], "-test.run=^$")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "NETLAB_SINK="+l.PeerIP+":9999")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewScanner(out)
	if !r.Scan() || r.Text() != "ready" {
		t.Fatalf("sink did not start: %q", r.Text())
	}
	c, err := net.Dial("udp", l.PeerIP+":9999")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, size)
	gap := duration / time.Duration(count)
	next := time.Now()
	for range count {
		_, _ = c.Write(payload)
		next = next.Add(gap)
		time.Sleep(time.Until(next))
	}
	if !r.Scan() {
		t.Fatal("sink printed no totals")
	}
	f := strings.Fields(r.Text())
	_ = cmd.Wait()
	packets, _ = strconv.Atoi(f[0])
	bytes, _ = strconv.Atoi(f[1])
	return packets, bytes
}

// A 400 kbit/s cap lets through about 400 kbit/s of a 2 Mbit/s stream.
func TestCap(t *testing.T) {
	l := New(t)
	if err := l.Cap("400kbit"); err != nil {
		t.Fatal(err)
	}
	_, bytes := send(t, l, 500, 1000, 2*time.Second) // 2 Mbit/s for 2 s
	kbps := bytes * 8 / 2 / 1000
	if kbps < 250 || kbps > 600 {
		t.Errorf("received %d kbit/s through a 400 kbit/s cap", kbps)
	}
	t.Logf("received %d kbit/s through a 400 kbit/s cap", kbps)
}

// 20% random loss drops about a fifth of the packets.
func TestLoss(t *testing.T) {
	l := New(t)
	if err := l.Loss(0.2); err != nil {
		t.Fatal(err)
	}
	packets, _ := send(t, l, 1000, 100, time.Second)
	if packets < 700 || packets > 880 {
		t.Errorf("received %d of 1000 packets with 20%% loss", packets)
	}
	if err := l.ClearLoss(); err != nil {
		t.Fatal(err)
	}
	if packets, _ := send(t, l, 300, 100, 300*time.Millisecond); packets != 300 {
		t.Errorf("received %d of 300 packets after clearing loss", packets)
	}
}

// 20% loss on the uplink drops about a fifth of what the namespace sends.
func TestLossFrom(t *testing.T) {
	l := New(t)
	if err := l.LossFrom(0.2); err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenPacket("udp", l.HostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	argv := l.Wrap(os.Args[0], "-test.run=^$")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "NETLAB_SOURCE="+c.LocalAddr().String())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	packets := 0
	buf := make([]byte, 2048)
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := c.ReadFrom(buf); err != nil {
			break
		}
		packets++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if packets < 700 || packets > 880 {
		t.Errorf("received %d of 1000 packets with 20%% uplink loss", packets)
	}
}

// An outage lets nothing through until Restore; then everything passes.
func TestOutage(t *testing.T) {
	l := New(t)
	if err := l.Outage(); err != nil {
		t.Fatal(err)
	}
	if packets, _ := send(t, l, 100, 100, 100*time.Millisecond); packets != 0 {
		t.Errorf("received %d of 100 packets during an outage", packets)
	}
	if err := l.Restore(); err != nil {
		t.Fatal(err)
	}
	if packets, _ := send(t, l, 300, 100, 300*time.Millisecond); packets != 300 {
		t.Errorf("received %d of 300 packets after the outage", packets)
	}
}

// After Readdress the namespace is reached at its new address only.
func TestReaddress(t *testing.T) {
	l := New(t)
	old := l.PeerIP
	if err := l.Readdress(); err != nil {
		t.Fatal(err)
	}
	if l.PeerIP == old {
		t.Fatalf("PeerIP is still %s", old)
	}
	if packets, _ := send(t, l, 100, 100, 100*time.Millisecond); packets != 100 {
		t.Errorf("received %d of 100 packets at the new address", packets)
	}
	out, err := exec.Command("ip", l.Wrap("ip", "-4", "-o", "addr", "show", "dev", l.peerIf)[1:]...).CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), old+"/") || !strings.Contains(string(out), l.PeerIP+"/") {
		t.Errorf("namespace addresses %q, want %s and not %s", out, l.PeerIP, old)
	}
}
