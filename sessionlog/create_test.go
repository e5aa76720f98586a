package sessionlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

func TestCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.cast")
	w, err := Create(path, Header{Width: 80, Height: 24}, WriterOptions{})
	mustNil(t, err)
	mustNil(t, w.Output([]byte("hi\r\n")))
	sum, err := w.Close()
	mustNil(t, err)

	fi, err := os.Stat(path)
	mustNil(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	mustNil(t, err)
	digest := sha256.Sum256(data)
	if sum.Size != int64(len(data)) || sum.SHA256 != hex.EncodeToString(digest[:]) {
		t.Errorf("summary size %d sha %s; file has %d bytes, sha %x", sum.Size, sum.SHA256, len(data), digest)
	}

	_, err = Create(path, Header{Width: 80, Height: 24}, WriterOptions{})
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over an existing file = %v, want fs.ErrExist", err)
	}
	after, err := os.ReadFile(path)
	mustNil(t, err)
	if !bytes.Equal(after, data) {
		t.Error("a refused Create changed the existing recording")
	}
}

func TestCreateReadOnlyDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ro")
	mustNil(t, os.Mkdir(dir, 0o500))
	path := filepath.Join(dir, "s.cast")
	if probe, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		// Root ignores directory permissions; sysfs refuses even root.
		probe.Close()
		path = "/sys/jitssh-sessionlog-test.cast"
	}
	w, err := Create(path, Header{Width: 80, Height: 24}, WriterOptions{})
	if err == nil {
		_, _ = w.Close()
		t.Skipf("created %s: no read-only directory available", path)
	}
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), path) {
		t.Errorf("error = %v, want a permission error naming %s", err, path)
	}
	if !strings.HasPrefix(err.Error(), "create recording") {
		t.Errorf("error %q does not say what failed", err)
	}
}

func TestCreateInvalidHeaderLeavesNoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.cast")
	if _, err := Create(path, Header{Width: 0, Height: 24}, WriterOptions{}); err == nil {
		t.Fatal("Create accepted width 0")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file left behind after a failed Create: %v", err)
	}
}

// lookTool finds a program the test needs: a missing one skips the test,
// or fails it with CI=true.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required with CI=true", name)
		}
		t.Skipf("%s not installed", name)
	}
	return bin
}

// TestAsciinemaCat checks that asciinema itself reads what we write, once
// the zstd tool has decompressed the frames of the stored file.
func TestAsciinemaCat(t *testing.T) {
	bin := lookTool(t, "asciinema")
	zstdBin := lookTool(t, "zstd")
	stored := filepath.Join(t.TempDir(), "s.cast.zst")
	path := strings.TrimSuffix(stored, ".zst")
	w, err := Create(stored, demoHeader(), WriterOptions{})
	mustNil(t, err)
	var want strings.Builder
	// Binary output ("bo" events) is skipped by asciinema, as every code
	// it does not know.
	mustNil(t, w.Output([]byte("\x00\x01binary\x00\xff")))
	for _, s := range demoSteps() {
		switch {
		case s.output != "":
			mustNil(t, w.Output([]byte(s.output)))
			want.WriteString(s.output)
		case s.input != "":
			mustNil(t, w.Input([]byte(s.input)))
		case s.resize != [2]int{}:
			mustNil(t, w.Resize(s.resize[0], s.resize[1]))
		case s.isMark:
			mustNil(t, w.Marker(s.marker))
		}
	}
	_, err = w.Close()
	mustNil(t, err)
	if out, err := exec.Command(zstdBin, "-q", "-d", stored, "-o", path).CombinedOutput(); err != nil {
		t.Fatalf("zstd -d %s: %v\n%s", stored, err, out)
	}

	// asciinema cat opens /dev/tty, so give it a controlling terminal;
	// its stdout stays a pipe so nothing is translated.
	ptmx, tty, err := pty.Open()
	mustNil(t, err)
	defer ptmx.Close()
	defer tty.Close()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "cat", path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("asciinema cat: %v\n%s", err, stderr.String())
	}
	if stdout.String() != want.String() {
		t.Errorf("asciinema cat printed %q, want %q", stdout.String(), want.String())
	}
}
