package jitclient

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
)

func seqEvents(from, to int64) []api.Event {
	var evs []api.Event
	for s := from; s <= to; s++ {
		evs = append(evs, api.Event{Seq: s, Event: "request.created"})
	}
	return evs
}

func TestEventsPages(t *testing.T) {
	tests := []struct {
		name  string
		total int64
		limit int
	}{
		{name: "several pages and a part", total: 25, limit: 10},
		{name: "exactly full pages", total: 20, limit: 10},
		{name: "one short page", total: 3, limit: 10},
		{name: "none", total: 0, limit: 10},
		{name: "no limit", total: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			f.events = seqEvents(1, tt.total)
			c := f.client()
			var got []int64
			err := c.Events(context.Background(), api.EventQuery{Limit: tt.limit}, false, func(ev api.Event) error {
				got = append(got, ev.Seq)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(got)) != tt.total {
				t.Fatalf("got %d events, want %d", len(got), tt.total)
			}
			for i, s := range got {
				if s != int64(i+1) {
					t.Fatalf("event %d has seq %d: out of order or repeated: %v", i, s, got)
				}
			}
		})
	}
}

// TestEventsFollow streams events added later and ends without error when
// the caller's context does.
func TestEventsFollow(t *testing.T) {
	f := newFakeDaemon(t)
	f.events = seqEvents(1, 2)
	c := f.client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []int64
	err := c.Events(ctx, api.EventQuery{Limit: 10}, true, func(ev api.Event) error {
		got = append(got, ev.Seq)
		if ev.Seq == 2 {
			f.mu.Lock()
			f.events = seqEvents(1, 4)
			f.mu.Unlock()
		}
		if ev.Seq == 4 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("follow ended with %v, want nil", err)
	}
	if len(got) != 4 || got[3] != 4 {
		t.Errorf("followed %v, want 1..4", got)
	}
}

func TestEventsStopsOnCallbackError(t *testing.T) {
	f := newFakeDaemon(t)
	f.events = seqEvents(1, 5)
	c := f.client()
	stop := errors.New("stdout closed")
	n := 0
	err := c.Events(context.Background(), api.EventQuery{}, true, func(api.Event) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d events, want the callback's error after 1", err, n)
	}
}

func TestWriteKRL(t *testing.T) {
	f := newFakeDaemon(t)
	f.krl = []byte("SSHKRL\n\x00binary")
	c := f.client()
	path := filepath.Join(t.TempDir(), "revoked.krl")
	if err := os.WriteFile(path, []byte("old list"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := c.WriteKRL(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(f.krl) || string(got) != string(f.krl) {
		t.Errorf("wrote %d bytes %q, want %q", n, got, f.krl)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("KRL mode %v, want 0644 for sshd", st.Mode().Perm())
	}
}
