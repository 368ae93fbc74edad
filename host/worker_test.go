package host

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/ipc"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/shmring"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/sdk"
)

// The test binary doubles as the worker: the host tests start os.Args[0]
// with LOGTK_TEST_WORKER naming what to do.

const workerEnv = "LOGTK_TEST_WORKER"

func init() {
	if dir := os.Getenv("LOGTK_TEST_SERVE_DIR"); dir != "" {
		// A log server process, for tests that SIGKILL it.
		_, err := startServer(&config.ServerConfig{Listen: os.Getenv("LOGTK_TEST_SERVE_ADDR"), Dir: dir,
			Tokens: [][]byte{[]byte("tok")}, Fsync: "batch", MaxBytes: 1 << 30}, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		select {}
	}
	if path := os.Getenv("LOGTK_TEST_KAFKA_SERVER"); path != "" {
		os.Exit(runKafkaServer(path)) // a log server reading Kafka, for tests that SIGKILL it
	}
	if path := os.Getenv("LOGTK_TEST_HOST_CONFIG"); path != "" {
		os.Exit(runHostProcess(path)) // a host process, for tests that SIGKILL it
	}
	mode := os.Getenv(workerEnv)
	if mode == "" {
		return
	}
	os.Exit(runWorker(mode))
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return n
	}
	return def
}

func runWorker(mode string) int {
	switch mode {
	case "garbage":
		return writeGarbage()
	case "lines": // a program without the SDK
		return writeLines()
	case "ring-hostile":
		return ringHostile()
	case "blast":
		return blast()
	case "ring-bytewise":
		return ringBytewise()
	}
	log := sdk.New(sdk.Options{Name: "test"})
	switch mode {
	case "counted":
		// Records i from where the counter says up to N, each counted
		// (in a file that outlives the worker) once its log call
		// returned: a worker started again goes on from there.
		n := envInt("LOGTK_TEST_N", 1000)
		count, err := mapCounter(os.Getenv("LOGTK_TEST_COUNTER"), envInt(ipc.EnvIndex, 0))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for i := int(*count); i < n; i++ {
			log.Info("rec", sdk.Int("i", i), sdk.String("pad", "some text to make the record realistic"))
			atomic.StoreUint64(count, uint64(i+1))
		}
		return 0
	case "paced":
		n := envInt("LOGTK_TEST_N", 1000)
		for i := range n {
			log.Info("rec", sdk.Int("i", i))
			time.Sleep(time.Duration(envInt("LOGTK_TEST_PACE_MS", 1)) * time.Millisecond)
		}
		return 0
	case "flood":
		n := envInt("LOGTK_TEST_N", 1000)
		bigEvery := envInt("LOGTK_TEST_BIG_EVERY", 0)
		flag := os.Getenv("LOGTK_TEST_FLAG") // created once a record went through the socket
		big := strings.Repeat("x", envInt("LOGTK_TEST_BIG_BYTES", 3000))
		for i := range n {
			pad := "some text to make the record realistic"
			if bigEvery > 0 && i%bigEvery == bigEvery-1 {
				pad = big
			}
			log.Info("rec", sdk.Int("i", i), sdk.String("pad", pad))
			if flag != "" && sdk.Stats().SocketRecords > 0 {
				os.WriteFile(flag, nil, 0o644)
				flag = ""
			}
		}
		switch os.Getenv("LOGTK_TEST_END") {
		case "stats":
			st := sdk.Stats()
			log.Info("stats", sdk.Bool("ring", st.Ring), sdk.Uint64("ring_records", st.RingRecords), sdk.Uint64("socket_records", st.SocketRecords))
		case "panic":
			panic("boom: the worker's last words")
		case "exit3":
			os.Exit(3)
		case "kill":
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return 0
	case "concurrent":
		// Goroutines log at once; every LOGTK_TEST_BIG_EVERY-th record of
		// each is too large for a small ring and goes through the socket.
		var wg sync.WaitGroup
		n, bigEvery := envInt("LOGTK_TEST_N", 1000), envInt("LOGTK_TEST_BIG_EVERY", 0)
		big := strings.Repeat("y", envInt("LOGTK_TEST_BIG_BYTES", 3000))
		for g := range envInt("LOGTK_TEST_GOROUTINES", 4) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					pad := "x"
					if bigEvery > 0 && i%bigEvery == bigEvery-1 {
						pad = big
					}
					log.Info("rec", sdk.Int("g", g), sdk.Int("i", i), sdk.String("pad", pad))
				}
			}()
		}
		wg.Wait()
		return 0
	case "exit":
		log.Info("exiting", sdk.Int("code", envInt("LOGTK_TEST_CODE", 0)))
		return envInt("LOGTK_TEST_CODE", 0)
	case "sleep":
		log.Info("ready")
		select {}
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		log.Info("ready")
		select {}
	case "spawn-child":
		child := exec.Command("sleep", "1000")
		if err := child.Start(); err != nil {
			log.Error("spawn failed", sdk.Err(err))
			return 1
		}
		log.Info("ready", sdk.Int("child", child.Process.Pid))
		select {}
	case "whoami":
		groups, _ := syscall.Getgroups()
		log.Info("whoami", sdk.Int("uid", os.Getuid()), sdk.Int("gid", os.Getgid()), sdk.String("groups", fmt.Sprint(groups)))
		return 0
	case "script":
		// A program without a logger: it writes LOGTK_TEST_STDOUT and
		// LOGTK_TEST_STDERR as they are, then exits with LOGTK_TEST_EXIT
		// if set, or waits for messages: "stderr:<text>" writes text to
		// stderr, "exit:<n>" exits with status n.
		exit := make(chan int)
		sdk.OnMessage(func(p []byte) {
			switch s := string(p); {
			case strings.HasPrefix(s, "stderr:"):
				os.Stderr.WriteString(strings.TrimPrefix(s, "stderr:"))
			case strings.HasPrefix(s, "exit:"):
				n, _ := strconv.Atoi(strings.TrimPrefix(s, "exit:"))
				exit <- n
			}
		})
		os.Stdout.WriteString(os.Getenv("LOGTK_TEST_STDOUT"))
		os.Stderr.WriteString(os.Getenv("LOGTK_TEST_STDERR"))
		if os.Getenv("LOGTK_TEST_EXIT") != "" {
			return envInt("LOGTK_TEST_EXIT", 1)
		}
		log.Info("ready")
		return <-exit
	case "echo":
		done := make(chan struct{})
		sdk.OnMessage(func(p []byte) {
			if string(p) == "quit" {
				close(done)
				return
			}
			sdk.Send(append([]byte("echo:"), p...))
		})
		log.Info("ready")
		<-done
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown worker mode %q\n", mode)
	return 2
}

func writeLines() int {
	{
		long := make([]byte, envInt("LOGTK_TEST_N", 300_000))
		for i := range long {
			long[i] = 'a' + byte(i%26)
		}
		fmt.Printf("%s\n", long)
		fmt.Println(`{"level":"warn","msg":"json line","port":8080}`)
		fmt.Println("plain stdout")
		fmt.Fprintln(os.Stderr, "plain stderr")
		os.Stdout.Write([]byte("latin-1 caf\xe9\n"))
		os.Stdout.Write([]byte("no newline at the end"))
		return 0
	}
}

// ringHostile writes bad entries into its shared-memory ring, then, once
// the host has read everything, breaks the ring's header. The SDK logs
// before and after; the records after go through the socket.
func ringHostile() int {
	fd, err := syscall.Dup(envInt(ipc.EnvRingFD, -1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dup ring fd:", err)
		return 1
	}
	log := sdk.New(sdk.Options{Name: "test"})
	ring, err := shmring.Map(fd)
	if err != nil {
		fmt.Fprintln(os.Stderr, "map ring:", err)
		return 1
	}
	log.Info("before", sdk.Int("i", 0))
	ring.Write([]byte{byte(ipc.TypeRecord), 0x1a, 0x40, 'x'}) // a record whose length runs past its end
	ring.Write([]byte{0x09, 1, 2, 3})                         // an unknown entry type
	log.Info("before", sdk.Int("i", 1))
	// The host must have read those before the ring is broken: records
	// left in a ring the host abandons are lost (and counted). Ten
	// seconds were too few on a machine busy with other tests.
	deadline := time.Now().Add(45 * time.Second)
	for !ring.Empty() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // waiting for the host to read, in a worker
	}
	// Publish more than the ring holds: the host must refuse to read it.
	mem, err := unix.Mmap(fd, 0, shmring.HeaderLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mmap:", err)
		return 1
	}
	binary.LittleEndian.PutUint64(mem[64:], 1<<40)
	// The SDK now finds the ring full: after its bounded wait it sends
	// through the socket, and the host, reading the ring up to that
	// record's position, finds the ring corrupt.
	log.Info("after", sdk.Int("i", 2))
	for i := 3; i < 5; i++ {
		log.Info("after", sdk.Int("i", i))
	}
	return 0
}

// blast publishes one pre-encoded record LOGTK_TEST_N times through the
// ring, as a worker in another language would: what the host can ingest
// when the worker spends nothing on encoding.
func blast() int {
	sock := os.NewFile(3, "ipc")
	hello, _ := proto.Marshal(&logtkv1.Hello{ProtocolVersion: ipc.ProtocolVersion, Sdk: "blast/1"})
	if _, err := sock.Write(ipc.AppendFrame(nil, ipc.TypeHello, hello)); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		return 1
	}
	ring, err := shmring.Map(envInt(ipc.EnvRingFD, -1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ring:", err)
		return 1
	}
	rec := irecord.AppendHead([]byte{byte(ipc.TypeRecord)}, time.Now(), record.LevelInfo, "request served", "")
	for _, a := range []slog.Attr{slog.String("method", "GET"), slog.String("path", "/api/v1/users"),
		slog.String("remote", "10.1.2.3:4567"), slog.Int("status", 200)} {
		rec = irecord.AppendAttr(rec, a)
	}
	doorbell := ipc.AppendFrame(nil, ipc.TypeDoorbell, nil)
	for range envInt("LOGTK_TEST_N", 1000) {
		for {
			wake, err := ring.Write(rec)
			if err == nil {
				if wake {
					sock.Write(doorbell)
				}
				break
			}
			time.Sleep(20 * time.Microsecond) // full: leave the cores to the host, which is reading
		}
	}
	return 0
}

// writeGarbage speaks the IPC protocol badly on purpose, then well.
func writeGarbage() int {
	f := os.NewFile(3, "ipc")
	w := func(b []byte) {
		if _, err := f.Write(b); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(1)
		}
	}
	hello, _ := proto.Marshal(&logtkv1.Hello{ProtocolVersion: ipc.ProtocolVersion, Sdk: "garbage/1"})
	w(ipc.AppendFrame(nil, ipc.TypeHello, hello))
	w(ipc.AppendFrame(nil, ipc.TypeRecord, make([]byte, envInt("LOGTK_TEST_N", 4096)+1)))                               // oversized
	w(ipc.AppendFrame(nil, ipc.TypeRecord, []byte{0x1a, 0x40, 'x'}))                                                    // length past the end
	w(ipc.AppendFrame(nil, ipc.Type(0x42), []byte("?")))                                                                // unknown type
	w(ipc.AppendFrame(nil, ipc.TypeRecord, irecord.AppendHead(nil, time.Now(), record.LevelInfo, "after garbage", ""))) // fine again
	return 0
}

// mapCounter maps the index-th uint64 of the file at path, shared.
func mapCounter(path string, index int) (*uint64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return (*uint64)(unsafe.Pointer(&mem[index*8])), nil
}

// runHostProcess runs a host with the configuration in the JSON file at
// path until SIGTERM, then stops it.
func runHostProcess(path string) int {
	os.Unsetenv("LOGTK_TEST_HOST_CONFIG") // the workers are not hosts
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var cfg config.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h, err := New(&cfg, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h.Start()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	select {
	case <-sig:
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		h.Stop(ctx)
	case <-h.Done():
	}
	if u := h.Undelivered(); u.Any() {
		fmt.Fprintf(os.Stderr, "undelivered: %+v\n", u)
		return 3
	}
	return 0
}
