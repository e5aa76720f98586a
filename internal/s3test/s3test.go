// Package s3test runs a real S3-compatible server for tests: versitygw
// (github.com/versity/versitygw, Apache-2.0) with its posix backend on a
// t.TempDir(), on 127.0.0.1 and a free port, with throwaway credentials.
// `make deps` builds it into bin/tools; without it a test is skipped, or
// fails when CI=true.
package s3test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/jitssh/jitssh/internal/testkit"
)

// Bucket is the bucket Start creates.
const Bucket = "recordings"

// Server is one versitygw process and its data directory; Stop and Start
// stop it and start it again on the same address and data.
type Server struct {
	t         testing.TB
	bin, root string
	addr      string
	// Endpoint is the server's URL, http://127.0.0.1:PORT.
	Endpoint string
	// AccessKey and SecretKey are the root user's credentials.
	AccessKey, SecretKey string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *testkit.Buffer
}

// binary is bin/tools/versitygw of the module, found from this file.
func binary() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "bin", "tools", "versitygw")
}

// Start runs versitygw for the test with Bucket created, and stops it in
// t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binary()
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("s3test needs versitygw at %s (run `make deps`): %v", bin, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := &Server{t: t, bin: bin, root: t.TempDir(), addr: addr, Endpoint: "http://" + addr,
		AccessKey: "jitssh-test", SecretKey: "jitssh-test-secret-" + strconv.Itoa(os.Getpid()), out: &testkit.Buffer{}}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", s.out.String())
		}
	})
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Client().MakeBucket(ctx, Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("create bucket %s: %v", Bucket, err)
	}
	return s
}

// Env sets the AWS variables jitd reads credentials from, for the test.
func (s *Server) Env(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

// EnvList is Env as KEY=VALUE strings, for a child process.
func (s *Server) EnvList() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey}
}

// Client is an S3 client of the server, for checks from the test.
func (s *Server) Client() *minio.Client {
	c, err := minio.New(s.addr, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// Start starts the server (again) and waits until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("s3test: Start while running")
	}
	cmd := exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", s.addr, "--quiet", "posix", s.root)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.root}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-exited:
			s.cmd = nil
			s.t.Fatalf("versitygw exited at start:\n%s", s.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("versitygw does not listen on %s after 15s: %v", s.addr, err)
		}
	}
}

// Stop stops the server, if it runs, and waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// ObjectPath is where the posix backend keeps the object key, for tests
// that tamper with a stored recording.
func (s *Server) ObjectPath(key string) string {
	return filepath.Join(s.root, Bucket, filepath.FromSlash(key))
}
