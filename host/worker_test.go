package host

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/ipc"
	"github.com/logtk/logtk/internal/record"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/sdk"
)

// The test binary doubles as the worker: the host tests start os.Args[0]
// with LOGTK_TEST_WORKER naming what to do.

const workerEnv = "LOGTK_TEST_WORKER"

func init() {
	if dir := os.Getenv("LOGTK_TEST_SERVE_DIR"); dir != "" {
		// A log server process, for tests that SIGKILL it.
		_, err := StartServer(&ServerConfig{Listen: os.Getenv("LOGTK_TEST_SERVE_ADDR"), Dir: dir,
			Tokens: [][]byte{[]byte("tok")}, Fsync: "batch", MaxBytes: 1 << 30}, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		select {}
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
	}
	log := sdk.New(sdk.Options{Name: "test"})
	switch mode {
	case "flood":
		n := envInt("LOGTK_TEST_N", 1000)
		for i := range n {
			log.Info("rec", sdk.Int("i", i), sdk.String("pad", "some text to make the record realistic"))
		}
		switch os.Getenv("LOGTK_TEST_END") {
		case "panic":
			panic("boom: the worker's last words")
		case "exit3":
			os.Exit(3)
		case "kill":
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
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
	w(ipc.AppendFrame(nil, ipc.TypeRecord, make([]byte, envInt("LOGTK_TEST_N", 4096)+1)))                              // oversized
	w(ipc.AppendFrame(nil, ipc.TypeRecord, []byte{0x1a, 0x40, 'x'}))                                                   // length past the end
	w(ipc.AppendFrame(nil, ipc.Type(0x42), []byte("?")))                                                               // unknown type
	w(ipc.AppendFrame(nil, ipc.TypeRecord, record.AppendHead(nil, time.Now(), record.LevelInfo, "after garbage", ""))) // fine again
	return 0
}
