// Package jitclient holds the engineer's side of jitssh: the workflows the
// jit command runs against a daemon's API with the local credentials of
// package creds. It obtains certificates (create a request, wait for its
// approval, redeem it, store key and certificate, load ssh-agent), logs in,
// pages through the audit trail, downloads, exports and follows session
// recordings, and writes the KRL file.
//
// It prints nothing and knows no exit codes: outcomes that a caller must
// tell apart (denied, ended, timed out, interrupted) are typed errors, and
// progress is reported through callbacks. It needs only the API's client
// and wire types, never the server side.
package jitclient

import (
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
)

// defaultPoll is how often waits and --follow ask the daemon again.
const defaultPoll = time.Second

// Client is a logged-in connection to a daemon with the credentials it was
// opened from.
type Client struct {
	API    *api.Client
	Config creds.Config
	Dir    creds.Dir
	// Poll is the interval between polls while waiting for approval or
	// following the audit trail; zero means one second.
	Poll time.Duration
	// Backoff is the wait before the first retry of a request whose answer
	// was lost (it doubles after); zero means half a second.
	Backoff time.Duration
}

// Open returns a client for the login stored in dir. A non-empty addr
// overrides the stored API address (JIT_ADDR). It fails with
// creds.ErrNotLoggedIn when there is no stored login.
func Open(dir creds.Dir, addr string) (*Client, error) {
	cfg, err := dir.LoadConfig()
	if err != nil {
		return nil, err
	}
	if addr != "" {
		cfg.CA = addr
	}
	c, err := api.NewClient(cfg.CA, cfg.Fingerprint, cfg.Token)
	if err != nil {
		// NewClient's message already names the bad address or fingerprint.
		return nil, err
	}
	return &Client{API: c, Config: cfg, Dir: dir}, nil
}

// Close releases the client's connections.
func (c *Client) Close() { c.API.Close() }

func (c *Client) poll() time.Duration {
	if c.Poll > 0 {
		return c.Poll
	}
	return defaultPoll
}

// CountApproved is the number of approvals (not denials) a request holds.
func CountApproved(as []api.Approval) int {
	n := 0
	for _, a := range as {
		if a.Decision == api.DecisionApprove {
			n++
		}
	}
	return n
}
