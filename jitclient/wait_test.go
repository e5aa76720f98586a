package jitclient

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
)

func TestWaitOutcomes(t *testing.T) {
	tests := []struct {
		name         string
		states       []string
		timeout      time.Duration
		cancelOnPoll bool   // end the caller's context (Ctrl-C) at the first poll
		wantErr      string // "" for a redeemed certificate
		check        func(error) bool
		wantRedeems  int
	}{
		{name: "approved after a while", states: []string{"pending", "pending", api.StateApproved}, wantRedeems: 1},
		{name: "denied", states: []string{"pending", api.StateDenied}, wantErr: "request r1 denied by bob: no",
			check: func(err error) bool { var d *DeniedError; return errors.As(err, &d) }},
		{name: "expired", states: []string{api.StateExpired}, wantErr: "request r1 expired",
			check: func(err error) bool { var e *EndedError; return errors.As(err, &e) }},
		{name: "cancelled", states: []string{api.StateCancelled}, wantErr: "request r1 cancelled",
			check: func(err error) bool { var e *EndedError; return errors.As(err, &e) }},
		{name: "redeemed elsewhere", states: []string{api.StateIssued}, wantErr: "request r1 was already redeemed",
			check: func(err error) bool { var e *EndedError; return errors.As(err, &e) }},
		{name: "timed out", states: []string{"pending"}, timeout: time.Second, // long enough for one poll on a loaded machine
			wantErr: "timed out waiting for approval; request r1 is still pending. Resume with: jit wait r1",
			check:   func(err error) bool { var s *StoppedError; return errors.As(err, &s) && !s.Interrupted }},
		{name: "interrupted", states: []string{"pending"}, cancelOnPoll: true,
			wantErr: "stopped waiting; request r1 is still pending. Resume with: jit wait r1",
			check:   func(err error) bool { var s *StoppedError; return errors.As(err, &s) && s.Interrupted }},
		{name: "daemon error", states: []string{"pending", "error"}, wantErr: "boom",
			check: func(err error) bool { var ae *api.Error; return errors.As(err, &ae) && ae.Status == 500 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			f.states = tt.states
			c := f.client()
			// Wait redeems with the key of the request made, as the daemon
			// would; a fresh one serves here.
			_, pubLine, err := requestKey("")
			if err != nil {
				t.Fatal(err)
			}
			f.pubKey = pubLine
			// Interrupted as Ctrl-C would, once the wait has polled: a fixed
			// delay would race the first poll on a loaded machine.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var waiting, polled, approved int
			o := WaitOptions{Timeout: tt.timeout, Waiting: func(api.Request) { waiting++ }, Polled: func(api.Request) {
				polled++
				if tt.cancelOnPoll {
					cancel()
				}
			},
				Approved: func(api.Request) { approved++ }}
			res, err := c.Wait(ctx, f.request("r1", "pending"), o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if res.Certificate == "" || res.Request.State != api.StateIssued {
					t.Errorf("answer %+v, want the redeemed certificate", res)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !tt.check(err) {
					t.Fatalf("err = %#v (%v), want %q of the right type", err, err, tt.wantErr)
				}
			}
			if waiting != 1 {
				t.Errorf("Waiting called %d times, want once", waiting)
			}
			if polled == 0 {
				t.Error("Polled never called")
			}
			if approved != tt.wantRedeems {
				t.Errorf("Approved called %d times, want %d", approved, tt.wantRedeems)
			}
			if f.redeems != tt.wantRedeems {
				t.Errorf("%d redeems, want %d", f.redeems, tt.wantRedeems)
			}
		})
	}
}
