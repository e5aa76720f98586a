package sessionlog

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jitssh/jitssh/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testStart is the fixed wall-clock start of deterministic recordings.
func testStart() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

// newManualClock is a Writer clock at testStart that only moves when the
// test says so.
func newManualClock() *testkit.Clock { return testkit.NewClock(testStart()) }

// at sets c to testStart()+d.
func at(c *testkit.Clock, d time.Duration) { c.Set(testStart().Add(d)) }

// memFile is an in-memory destination that counts syncs and can fail.
type memFile struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	syncs     int
	limit     int   // if > 0, writes beyond this many bytes fail with writeErr
	writeErr  error // returned once limit is reached
	syncErr   error // returned by every Sync if set
	syncsLeft int   // if > 0, Sync succeeds this many times before syncErr applies
}

func (f *memFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.limit > 0 && f.buf.Len()+len(p) > f.limit {
		n := f.limit - f.buf.Len()
		f.buf.Write(p[:n])
		return n, f.writeErr
	}
	return f.buf.Write(p)
}

func (f *memFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.syncErr != nil && f.syncsLeft <= 0 {
		return f.syncErr
	}
	f.syncsLeft--
	f.syncs++
	return nil
}

func (f *memFile) syncCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

func (f *memFile) bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.buf.Bytes())
}

// waitLimit bounds every testkit.WaitFor in these tests: a hang guard.
const waitLimit = 5 * time.Second

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

// mustNil fails the test on an unexpected error.
func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// incompressible returns n bytes that zstd cannot shrink much: random
// bytes when text is 0 (binary output), else random letters and digits
// (text output, compressible only to about 3/4).
func incompressible(n int, text byte) []byte {
	r := rand.New(rand.NewPCG(uint64(n), uint64(text)))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, n)
	for i := range b {
		if text == 0 {
			b[i] = byte(r.Uint32())
		} else {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
	}
	return b
}
