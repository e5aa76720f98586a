package audit

import (
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestRV1FeedHealthyWhileItCannotRead (review rv1): the daemon tells the
// bastion the feed is healthy, and so relaxes every live connection's
// revocation poll from 5 s to 30 s, from Health().Listening alone
// (daemon/feed.go onListen -> SetFeedHealthy). A feed whose reads fail
// (here its reader pool is closed; in production e.g. the reader pool
// cannot connect: max_connections reached) while its LISTEN connection
// stays up still reports Listening, and nothing logs its errors.
func TestRV1FeedHealthyWhileItCannotRead(t *testing.T) {
	a, target := openPG(t)
	b := openSecond(t, target)
	f, _ := runFeed(t, b, FeedConfig{Types: []string{"cert.revoked"}})
	testkit.WaitFor(t, feedWait, "LISTEN connection up", func() bool { return f.Health().Listening })
	b.read.Close() // every read of the feed now fails
	appendAll(t, a, "cert.revoked")
	time.Sleep(3 * time.Second)
	h := f.Health()
	if h.Err != nil && h.Listening {
		t.Fatalf("feed cannot read (%v, cursor %d, last read %s ago) yet reports Listening=true, which the daemon takes for a healthy feed",
			h.Err, h.Cursor, time.Since(h.LastRead).Round(time.Millisecond))
	}
}
