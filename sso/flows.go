package sso

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/jitssh/jitssh/audit"
)

// flowSecrets are what a flow keeps from its client and its provider:
// sealed under the flow id in the store, so that only the client, which
// holds the id, can have them opened.
type flowSecrets struct {
	State      string `json:"state,omitempty"`
	Nonce      string `json:"nonce,omitempty"`
	Verifier   string `json:"verifier,omitempty"`
	Redirect   string `json:"redirect,omitempty"`
	DeviceCode string `json:"device_code,omitempty"`
}

// flowHash is the key of a flow in the store: a database reader learns
// no flow id from it.
func flowHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// storeFailed is a refusal because the store of flows did not answer:
// busy (503), so the caller tries again.
func storeFailed(err error) *Error {
	return &Error{Code: CodeBusy, Reason: "store", Message: "the store of sso logins did not answer; try again shortly", Err: err}
}

// put stores f with sec sealed under a new flow id and returns the id. An
// address with MaxFlowsPerAddress live flows, a store with maxFlows (or,
// for device flows, maxDeviceFlows) is refused CodeBusy: the bounds are
// counted in the insert's transaction, so they hold across replicas.
func (rp *RP) put(ctx context.Context, f audit.SSOFlow, sec flowSecrets) (string, error) {
	id, err := rp.random()
	if err != nil {
		return "", err
	}
	if err := rp.seal(id, &f, sec); err != nil {
		return "", err
	}
	now := rp.opts.Clock()
	err = rp.opts.Store.Do(ctx, func(tx *audit.Tx) error {
		return tx.InsertSSOFlow(f, now, audit.Limits{PerAddress: MaxFlowsPerAddress, Total: maxFlows}, maxDeviceFlows)
	})
	switch {
	case errors.Is(err, audit.ErrAddressFull):
		return "", refuse(CodeBusy, "per_address", "%d sso logins from this address are in progress already; finish or wait for one (at most %s)", MaxFlowsPerAddress, FlowTTL)
	case errors.Is(err, audit.ErrFull) && f.Kind == audit.SSOFlowDevice:
		return "", refuse(CodeBusy, "", "too many device logins in progress; try again shortly")
	case errors.Is(err, audit.ErrFull):
		return "", refuse(CodeBusy, "", "too many sso logins in progress; try again shortly")
	case err != nil:
		return "", storeFailed(err)
	}
	return id, nil
}

// replace puts f with sec, sealed under id, in the place of flow id (a
// reservation put made under the bounds): in one transaction, without
// counting again.
func (rp *RP) replace(ctx context.Context, id string, f audit.SSOFlow, sec flowSecrets) error {
	if err := rp.seal(id, &f, sec); err != nil {
		return err
	}
	now := rp.opts.Clock()
	err := rp.opts.Store.Do(ctx, func(tx *audit.Tx) error {
		// A reservation reaped meanwhile (its replica was slow) is no
		// reason to throw the provider's answer away.
		if _, err := tx.TakeSSOFlow(f.Hash, f.Kind); err != nil && !errors.Is(err, audit.ErrNotFound) {
			return err
		}
		return tx.InsertSSOFlow(f, now, audit.Limits{}, 0)
	})
	if err != nil {
		return storeFailed(err)
	}
	return nil
}

// drop deletes flow id of kind, if it is still there.
func (rp *RP) drop(ctx context.Context, id, kind string) error {
	err := rp.opts.Store.Do(ctx, func(tx *audit.Tx) error {
		_, err := tx.TakeSSOFlow(flowHash(id), kind)
		return err
	})
	if err != nil && !errors.Is(err, audit.ErrNotFound) {
		return err
	}
	return nil
}

// seal sets f's hash and seals sec into it under id.
func (rp *RP) seal(id string, f *audit.SSOFlow, sec flowSecrets) error {
	plain, err := json.Marshal(sec)
	if err != nil {
		return err
	}
	f.Hash = flowHash(id)
	f.Sealed, err = Seal(rp.opts.Rand, id, sealFlow, []byte(f.Hash), plain)
	return err
}

// take deletes flow id of the given kind from the store and returns it
// with its secrets and provider if it was live: a flow is spent by its
// first use, whatever the outcome, at whichever replica.
func (rp *RP) take(ctx context.Context, id, kind string) (audit.SSOFlow, flowSecrets, *provider, error) {
	var f audit.SSOFlow
	err := rp.opts.Store.Do(ctx, func(tx *audit.Tx) error {
		var err error
		f, err = tx.TakeSSOFlow(flowHash(id), kind)
		return err
	})
	if errors.Is(err, audit.ErrNotFound) {
		return audit.SSOFlow{}, flowSecrets{}, nil, refuse(CodeFlowUnknown, "", "sso login flow is unknown, used or expired; start again")
	}
	if err != nil {
		return audit.SSOFlow{}, flowSecrets{}, nil, storeFailed(err)
	}
	if err := rp.checkLive(f); err != nil {
		return audit.SSOFlow{}, flowSecrets{}, nil, err
	}
	sec, p, err := rp.open(id, f)
	return f, sec, p, err
}

// checkLive refuses a flow that expired or, a device flow, was dropped
// because its client stopped polling.
func (rp *RP) checkLive(f audit.SSOFlow) error {
	now := rp.opts.Clock()
	switch {
	case !now.Before(f.ExpiresAt) && f.Kind == audit.SSOFlowDevice:
		return withProvider(refuse(CodeExpired, "", "the device code expired at %s before the login was finished; start again", f.ExpiresAt.Format(time.RFC3339)), f.Provider)
	case !now.Before(f.ExpiresAt):
		return withProvider(refuse(CodeFlowUnknown, "", "sso login flow expired at %s; start again", f.ExpiresAt.Format(time.RFC3339)), f.Provider)
	case !now.Before(f.LiveUntil):
		return withProvider(refuse(CodeFlowUnknown, "abandoned", "the device login was dropped: its client stopped polling; start again"), f.Provider)
	}
	return nil
}

// open unseals f's secrets with the flow id and finds its provider.
func (rp *RP) open(id string, f audit.SSOFlow) (flowSecrets, *provider, error) {
	var sec flowSecrets
	plain, err := Open(id, sealFlow, []byte(f.Hash), f.Sealed)
	if err == nil {
		err = json.Unmarshal(plain, &sec)
	}
	if err != nil {
		return flowSecrets{}, nil, withProvider(&Error{Code: CodeFlowUnknown, Reason: "sealed", Message: "sso login flow does not open with its id; start again", Err: err}, f.Provider)
	}
	p, err := rp.provider(f.Provider)
	if err != nil {
		return flowSecrets{}, nil, err
	}
	return sec, p, nil
}
