package grant

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
)

// IdempotencyWindow is how long a request's Idempotency-Key is remembered:
// a retry with the same key within it is answered with the first outcome;
// after it the key is forgotten (housekeeping deletes it) and makes a new
// request. A day covers any client's retries by far.
const IdempotencyWindow = 24 * time.Hour

// MaxIdempotencyKeyLen bounds an Idempotency-Key: clients send a random
// token (jit sends 26 characters); 255 leaves room for any UUID form.
const MaxIdempotencyKeyLen = 255

// Codes of Idempotency-Key refusals.
const (
	// CodeInvalidIdempotencyKey: the key is empty, too long or not
	// printable ASCII.
	CodeInvalidIdempotencyKey = "invalid_idempotency_key"
	// CodeIdempotencyKeyReused: the key was used by this user for a
	// request with a different body.
	CodeIdempotencyKeyReused = "idempotency_key_reused"
	// CodeIdempotencyKeyInFlight: the first request with the key is still
	// being issued; retry later for its outcome.
	CodeIdempotencyKeyInFlight = "idempotency_key_in_flight"
)

// checkIdempotencyKey refuses a key that is not 1 to MaxIdempotencyKeyLen
// characters of printable ASCII (the draft's sf-string).
func checkIdempotencyKey(k string) error {
	if k == "" || len(k) > MaxIdempotencyKeyLen {
		return fmt.Errorf("Idempotency-Key is %d bytes; it must be 1 to %d", len(k), MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return fmt.Errorf("Idempotency-Key has byte 0x%02x at %d; only printable ASCII is allowed", k[i], i)
		}
	}
	return nil
}

// bodyHash is what identifies a request's body for its key: every field
// that decides what is issued.
func bodyHash(req CreateRequest) string {
	b, _ := json.Marshal([]any{req.Host, req.Login, req.Justification, req.TTL.String(), strings.TrimSpace(req.PublicKey), req.BreakGlass})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// replay carries a done key out of the transaction that found it.
type replay struct{ key audit.IdempotencyKey }

func (r *replay) Error() string {
	return "idempotency key " + r.key.Key + " was used for " + r.key.RequestID
}

// claimKey records the request's key in tx, or, if the user used it within
// the window, refuses (different body, or still in flight) or returns a
// *replay for the first outcome.
func (s *Service) claimKey(tx *audit.Tx, caller Caller, req CreateRequest, requestID string, now time.Time) error {
	k := audit.IdempotencyKey{User: caller.User, Key: req.IdempotencyKey, BodyHash: bodyHash(req), RequestID: requestID, CreatedAt: now}
	old, claimed, err := tx.ClaimIdempotencyKey(k, now.Add(-IdempotencyWindow))
	if err != nil || claimed {
		return err
	}
	return keyOutcome(old, k.BodyHash)
}

func keyOutcome(old audit.IdempotencyKey, hash string) error {
	switch {
	case old.BodyHash != hash:
		return newError(KindConflict, CodeIdempotencyKeyReused, "Idempotency-Key %q was used for request %s with a different body", old.Key, old.RequestID)
	case old.State != audit.IdempotencyDone:
		return newError(KindConflict, CodeIdempotencyKeyInFlight, "request %s with Idempotency-Key %q is still being issued; retry", old.RequestID, old.Key)
	}
	return &replay{key: old}
}

// replayed answers a request whose key was used before: the refusal as
// recorded, or the first request as it is now, with its certificate.
func (s *Service) replayed(ctx context.Context, caller Caller, req CreateRequest, err error) (Result, error) {
	var rep *replay
	var gerr *Error
	switch {
	case errors.As(err, &gerr) && (gerr.Code == CodeIdempotencyKeyReused || gerr.Code == CodeIdempotencyKeyInFlight):
		return Result{}, s.refuse(ctx, caller, req.Host, gerr)
	case !errors.As(err, &rep):
		return Result{}, err
	}
	res, err := s.Get(ctx, caller, rep.key.RequestID)
	if err != nil {
		return Result{}, err
	}
	if rep.key.Certificate != "" {
		pub, _, _, _, perr := ssh.ParseAuthorizedKey([]byte(rep.key.Certificate))
		cert, ok := pub.(*ssh.Certificate)
		if perr != nil || !ok {
			return Result{}, &Error{Kind: KindInternal, Code: CodeInvalidRequest, Message: "stored certificate of request " + rep.key.RequestID + " does not parse", Err: perr}
		}
		res.Certificate = cert
	}
	return res, nil
}

// lookupKey answers a retry before policy is asked again (a policy that
// changed since must not turn the first outcome into another). It returns
// ok false when the key is new.
func (s *Service) lookupKey(ctx context.Context, caller Caller, req CreateRequest, now time.Time) (Result, bool, error) {
	old, err := s.cfg.Store.IdempotencyKey(ctx, caller.User, req.IdempotencyKey, now.Add(-IdempotencyWindow))
	if errors.Is(err, audit.ErrNotFound) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, true, unavailable(err)
	}
	res, err := s.replayed(ctx, caller, req, keyOutcome(old, bodyHash(req)))
	return res, true, err
}

// completeKey stores the issued certificate with the key, so that a retry
// gets the same certificate. If it cannot be stored the key stays in
// flight until its window ends: a retry is refused, never issued again.
func (s *Service) completeKey(ctx context.Context, caller Caller, key string, cert *ssh.Certificate) {
	text := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))
	// Not the request's context: a client that gave up (the lost answer
	// this key exists for) must not leave the key in flight for a day.
	_ = s.cfg.Store.Do(context.WithoutCancel(ctx), func(tx *audit.Tx) error {
		return tx.CompleteIdempotencyKey(caller.User, key, text)
	})
}

// releaseKey forgets the key of a request that failed before anything was
// issued (its record failed, or the CA could not sign and the serial was
// revoked), so that a retry may try again. Best effort: a key left behind
// only refuses retries until its window ends.
func (s *Service) releaseKey(ctx context.Context, caller Caller, key, requestID string) {
	_ = s.cfg.Store.Do(context.WithoutCancel(ctx), func(tx *audit.Tx) error {
		return tx.ReleaseIdempotencyKey(caller.User, key, requestID)
	})
}

// ReapIdempotencyKeys deletes the keys whose window is over and returns how
// many; the daemon's housekeeping calls it.
func (s *Service) ReapIdempotencyKeys(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-IdempotencyWindow)
	var n int
	err := s.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		var err error
		n, err = tx.ReapIdempotencyKeys(cutoff)
		return err
	})
	return n, err
}

// isKeyOutcome reports whether err is claimKey's answer for a key used
// before: a replay or a refusal.
func isKeyOutcome(err error) bool {
	var rep *replay
	var gerr *Error
	return errors.As(err, &rep) || errors.As(err, &gerr) && (gerr.Code == CodeIdempotencyKeyReused || gerr.Code == CodeIdempotencyKeyInFlight)
}
