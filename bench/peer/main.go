// Command peer measures the log server's ingest beside rsyslog's on the
// same machine, in the same run: N messages of 200 bytes over loopback TCP
// into a file, over 1 and 4 connections, without and with sync to disk.
//
//	rsyslog: a TCP sender -> imtcp -> omfile (sync="off" / sync="on")
//	logtk:   wire protocol v1 (512 records per batch, 8 in flight) -> store (fsync none / batch), acknowledged
//	logtk syslog: the same TCP sender as rsyslog's -> the log server's syslog listener -> store
//
// rsyslog is skipped when rsyslogd is not installed (apt-get install rsyslog).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/wire"
	"github.com/logtk/logtk/logserver"
)

func main() {
	n := flag.Int("n", 1_000_000, "messages per measurement")
	flag.Parse()
	msg := message()
	fmt.Printf("%d messages of %d bytes over loopback TCP into a file\n\n", *n, len(msg)+1)
	fmt.Printf("%-34s %6s %14s %10s\n", "receiver", "conns", "records/s", "MB/s")
	results := map[string]float64{}
	for _, sync := range []bool{false, true} {
		for _, conns := range []int{1, 4} {
			rs := 0.0
			if _, err := exec.LookPath("rsyslogd"); err == nil {
				var err error
				rs, err = rsyslog(*n, conns, sync, msg)
				if err != nil {
					fmt.Fprintf(os.Stderr, "rsyslog: %v\n", err)
				}
			}
			lt, err := logtk(*n, conns, sync, msg)
			if err != nil {
				fmt.Fprintf(os.Stderr, "logtk: %v\n", err)
				os.Exit(1)
			}
			mode := map[bool]string{false: "no sync", true: "synced"}[sync]
			if rs > 0 {
				fmt.Printf("%-34s %6d %14.0f %10.1f\n", "rsyslog imtcp->omfile, "+mode, conns, rs, rs*200/1e6)
			} else {
				fmt.Printf("%-34s %6d %14s %10s\n", "rsyslog imtcp->omfile, "+mode, conns, "skipped", "")
			}
			fmt.Printf("%-34s %6d %14.0f %10.1f", "logtk serve, "+mode+", acked", conns, lt, lt*200/1e6)
			if rs > 0 {
				fmt.Printf("   %.1fx rsyslog", lt/rs)
				results[fmt.Sprint(sync, conns)] = lt / rs
			}
			fmt.Println()
			ls, err := logtkSyslog(*n, conns, sync, msg)
			if err != nil {
				fmt.Fprintf(os.Stderr, "logtk syslog: %v\n", err)
				os.Exit(1)
			}
			fmt.Printf("%-34s %6d %14.0f %10.1f", "logtk serve syslog tcp, "+mode, conns, ls, ls*200/1e6)
			if rs > 0 {
				fmt.Printf("   %.1fx rsyslog", ls/rs)
			}
			fmt.Println()
		}
	}
}

// message is an RFC 5424 line of 199 bytes (200 with its newline).
func message() []byte {
	m := []byte("<134>1 2026-11-27T08:00:00.000000Z web-01 shop 4242 - - ")
	for len(m) < 199 {
		m = append(m, 'x')
	}
	return m
}

func freePort() string {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().String()
}

func rsyslog(n, conns int, synced bool, msg []byte) (float64, error) {
	dir, _ := os.MkdirTemp("", "logtk-peer-rsyslog")
	defer os.RemoveAll(dir)
	addr := freePort()
	_, port, _ := net.SplitHostPort(addr)
	out := filepath.Join(dir, "out.log")
	syncOpt := "off"
	if synced {
		syncOpt = "on"
	}
	conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imtcp" MaxSessions="100")
template(name="raw" type="string" string="%%rawmsg%%\n")
input(type="imtcp" address="127.0.0.1" port=%q ruleset="r")
ruleset(name="r") {
  action(type="omfile" file=%q template="raw" sync=%q)
}
`, dir, port, out, syncOpt)
	cf := filepath.Join(dir, "rsyslog.conf")
	os.WriteFile(cf, []byte(conf), 0o644)
	cmd := exec.Command("rsyslogd", "-n", "-f", cf, "-i", filepath.Join(dir, "pid"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if err := waitListening(addr); err != nil {
		return 0, fmt.Errorf("%v: %s", err, stderr.String())
	}
	line := append(append([]byte(nil), msg...), '\n')
	start := time.Now()
	if err := sendLines(addr, n, conns, line); err != nil {
		return 0, err
	}
	want := int64(n * len(line))
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st, err := os.Stat(out)
		if err == nil && st.Size() >= want {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("rsyslog wrote %d of %d bytes", st.Size(), want)
		}
		time.Sleep(2 * time.Millisecond) // polling the file for completion
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// logtkSyslog is rsyslog's measurement with the log server's syslog
// listener as the receiver: each message parsed into a record and
// stored (and synced per read, when synced).
func logtkSyslog(n, conns int, synced bool, msg []byte) (float64, error) {
	dir, _ := os.MkdirTemp("", "logtk-peer-syslog")
	defer os.RemoveAll(dir)
	fsync := "none"
	if synced {
		fsync = "batch"
	}
	ls, err := logserver.New(&config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{[]byte("peer-benchmark-token")},
		Fsync: fsync, MaxBytes: 1 << 40, Syslog: &config.SyslogConfig{TCP: "127.0.0.1:0", Application: "syslog", MaxMessageBytes: 64 << 10}}}, logserver.Options{})
	if err != nil {
		return 0, err
	}
	defer ls.Shutdown(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	if err := ls.ServeSyslog(ln, nil); err != nil {
		return 0, err
	}
	line := append(append([]byte(nil), msg...), '\n')
	start := time.Now()
	if err := sendLines(ln.Addr().String(), n, conns, line); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for ls.SyslogStats().Messages.Load() < int64(n) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("stored %d of %d messages", ls.SyslogStats().Messages.Load(), n)
		}
		time.Sleep(2 * time.Millisecond) // polling the count for completion
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// sendLines sends n copies of line to addr over conns TCP connections,
// 512 lines a write: the syslog sender both rsyslog and logtk's syslog
// listener are measured with.
func sendLines(addr string, n, conns int, line []byte) error {
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for c := range conns {
		count := n / conns
		if c == 0 {
			count += n % conns
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			buf := bytes.Repeat(line, 512)
			for sent := 0; sent < count; {
				k := min(512, count-sent)
				if _, err := conn.Write(buf[:k*len(line)]); err != nil {
					errs <- err
					return
				}
				sent += k
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func waitListening(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond) // polling for the listener
	}
}

func logtk(n, conns int, synced bool, msg []byte) (float64, error) {
	dir, _ := os.MkdirTemp("", "logtk-peer-logtk")
	defer os.RemoveAll(dir)
	fsync := "none"
	if synced {
		fsync = "batch"
	}
	token := []byte("peer-benchmark-token")
	ls, err := logserver.New(&config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{token},
		Fsync: fsync, MaxBytes: 1 << 40}}, logserver.Options{})
	if err != nil {
		return 0, err
	}
	defer ls.Shutdown(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	go ls.Serve(ln)
	var batch []byte
	for range 512 {
		batch = protowire.AppendVarint(batch, uint64(len(msg)+1))
		batch = append(append(batch, msg...), '\n')
	}
	start := time.Now()
	errs := make(chan error, conns)
	for c := range conns {
		count := n / conns
		go func() {
			errs <- wire.SendLoad(wire.Load{Addr: ls.Addr().String(), Token: token, Sender: fmt.Sprintf("peer-%d", c),
				Application: "peer", Format: "text", Batch: batch, Batches: (count + 511) / 512, InFlight: 8})
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
