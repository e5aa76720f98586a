// Package issuancetest helps tests check the issuance contract from the
// outside: that a certificate's row and event are committed before the CA
// is asked to sign it, and what happens when the CA cannot sign.
package issuancetest

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
)

// ErrCannotSign is what a failing Probe's Sign returns.
var ErrCannotSign = errors.New("issuancetest: the CA key cannot sign")

// Probe wraps a CA signer. Every time it is asked to sign, it first notes
// the certificate rows and events the store holds then, so that a test can
// check afterwards that the certificate it got back was recorded before it
// was signed. With Fail set it then refuses to sign, as an HSM gone away
// would.
type Probe struct {
	ssh.Signer
	Store *audit.Store
	Fail  bool

	mu     sync.Mutex
	calls  int
	rows   map[uint64]audit.Certificate
	events map[uint64][]string
	err    error
}

// Sign notes what the store holds, then signs with the wrapped signer (or
// fails with ErrCannotSign when Fail is set).
func (p *Probe) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.rows, p.events, p.err = map[uint64]audit.Certificate{}, map[uint64][]string{}, nil
	ctx := context.Background()
	cs, err := p.Store.Certificates(ctx, audit.CertificateFilter{})
	if err != nil {
		p.err = err
	}
	for _, c := range cs {
		p.rows[c.Serial] = c
	}
	evs, err := p.Store.Events(ctx, audit.EventFilter{})
	if err != nil {
		p.err = err
	}
	for _, ev := range evs {
		if ev.Serial != 0 {
			p.events[ev.Serial] = append(p.events[ev.Serial], ev.Type)
		}
	}
	if p.Fail {
		return nil, ErrCannotSign
	}
	return p.Signer.Sign(rand, data)
}

// Calls returns how many times Sign was called.
func (p *Probe) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// RecordedBeforeSigning fails t unless, at the last call of Sign, the store
// held the certificate row of serial with kind and an event of eventType for
// it. It returns that row.
func (p *Probe) RecordedBeforeSigning(t testing.TB, serial uint64, kind, eventType string) audit.Certificate {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls == 0 {
		t.Fatalf("the CA was never asked to sign serial %d", serial)
	}
	if p.err != nil {
		t.Fatalf("probe could not read the store when asked to sign: %v", p.err)
	}
	row, ok := p.rows[serial]
	if !ok {
		t.Fatalf("serial %d was signed before its certificate row was committed", serial)
	}
	if row.Kind != kind {
		t.Errorf("row of serial %d has kind %q, want %q", serial, row.Kind, kind)
	}
	found := false
	for _, typ := range p.events[serial] {
		found = found || typ == eventType
	}
	if !found {
		t.Errorf("serial %d was signed before its %s event was committed (events then: %q)", serial, eventType, p.events[serial])
	}
	return row
}
