package audit

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestChallengeBounds checks the per-address and total bounds of
// InsertChallenge, counted in its transaction, that an expired
// challenge stops counting, that TakeChallenge spends once (an expired
// one too) and that ReapChallenges deletes only the expired.
func TestChallengeBounds(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		now := at(0)
		lim := Limits{PerAddress: 2, Total: 3}
		insert := func(hash, addr string, expires time.Time) error {
			return s.Do(t.Context(), func(tx *Tx) error {
				return tx.InsertChallenge(Challenge{Hash: hash, Purpose: "login", Subject: "alice", Addr: addr, ExpiresAt: expires}, now, lim)
			})
		}
		for _, tc := range []struct {
			hash, addr string
			expires    time.Time
			want       error
		}{
			{"h1", "10.0.0.1", now.Add(time.Minute), nil},
			{"h2", "10.0.0.1", now.Add(time.Minute), nil},
			{"h3", "10.0.0.1", now.Add(time.Minute), ErrAddressFull},
			{"h4", "10.0.0.2", now.Add(time.Minute), nil},
			{"h5", "10.0.0.3", now.Add(time.Minute), ErrFull},
		} {
			err := insert(tc.hash, tc.addr, tc.expires)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("insert %s from %s: %v, want %v", tc.hash, tc.addr, err, tc.want)
			}
		}
		if err := insert("h6", "10.0.0.3", now.Add(time.Minute)); !errors.Is(err, ErrFull) || errors.Is(err, ErrAddressFull) {
			t.Fatalf("a fourth challenge in a table of three: %v, want ErrFull alone", err)
		}
		var c Challenge
		mustDo(t, s, func(tx *Tx) (err error) { c, err = tx.TakeChallenge("h1"); return err })
		if c.Subject != "alice" || c.Purpose != "login" || c.Addr != "10.0.0.1" || !c.ExpiresAt.Equal(now.Add(time.Minute)) {
			t.Fatalf("taken %+v", c)
		}
		err := s.Do(t.Context(), func(tx *Tx) error { _, err := tx.TakeChallenge("h1"); return err })
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("a challenge taken twice: %v", err)
		}
		// h1 is spent: the address has room again.
		if err := insert("h7", "10.0.0.1", now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		var n int
		later := now.Add(2 * time.Second)
		mustDo(t, s, func(tx *Tx) (err error) { n, err = tx.ReapChallenges(later); return err })
		if n != 1 {
			t.Fatalf("reaped %d, want 1 (h7)", n)
		}
		mustDo(t, s, func(tx *Tx) (err error) { c, err = tx.TakeChallenge("h2"); return err })
		if !c.ExpiresAt.After(later) {
			t.Fatalf("the live challenge h2 is %+v", c)
		}
	})
}

// TestChallengePurposesAndSubjects checks that each purpose has its own
// totals (a full table of logins leaves room for renewals) and that
// PerSubject keeps a subject's newest challenges, the oldest going first,
// on each engine.
func TestChallengePurposesAndSubjects(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		now := at(0)
		insert := func(hash, purpose, subject, addr string, expires time.Time, lim Limits) error {
			return s.Do(t.Context(), func(tx *Tx) error {
				return tx.InsertChallenge(Challenge{Hash: hash, Purpose: purpose, Subject: subject, Addr: addr, ExpiresAt: expires}, now, lim)
			})
		}
		lim := Limits{PerAddress: 2, Total: 2}
		for i := range 2 {
			if err := insert(fmt.Sprint("l", i), "login", "alice", fmt.Sprint("10.0.0.", i), now.Add(time.Minute), lim); err != nil {
				t.Fatal(err)
			}
		}
		if err := insert("l2", "login", "alice", "10.0.0.9", now.Add(time.Minute), lim); !errors.Is(err, ErrFull) {
			t.Fatalf("a third login in a total of two: %v, want ErrFull", err)
		}
		perHost := Limits{PerAddress: 10, Total: 10, PerSubject: 2}
		for i := range 5 {
			if err := insert(fmt.Sprint("r", i), "renewal", "db1", "10.0.0.0", now.Add(time.Minute+time.Duration(i)*time.Second), perHost); err != nil {
				t.Fatalf("renewal %d beside a full table of logins: %v", i, err)
			}
		}
		for i, want := range []bool{false, false, false, true, true} {
			err := s.Do(t.Context(), func(tx *Tx) error { _, err := tx.TakeChallenge(fmt.Sprint("r", i)); return err })
			if got := err == nil; got != want {
				t.Errorf("renewal r%d kept %v, want %v (the newest two of db1): %v", i, got, want, err)
			}
		}
	})
}

// TestSSOFlowClaims checks the device poll claim: only a due flow is
// claimed, once, whichever handle on the store asks; slow_down moves
// the interval; a flow is taken once and only as its kind; the dead are
// reaped.
func TestSSOFlowClaims(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		now := at(0)
		dev := SSOFlow{Hash: "d1", Kind: SSOFlowDevice, Provider: "corp", Addr: "10.0.0.1", Sealed: []byte{0, 1, 2, 0xff}, Interval: 5,
			NextPoll: now.Add(5 * time.Second), LiveUntil: now.Add(15 * time.Second), ExpiresAt: now.Add(10 * time.Minute)}
		code := SSOFlow{Hash: "c1", Kind: SSOFlowCode, Provider: "corp", Addr: "10.0.0.1", Sealed: []byte("x"), LiveUntil: now.Add(time.Minute), ExpiresAt: now.Add(time.Minute)}
		for _, f := range []SSOFlow{dev, code} {
			mustDo(t, s, func(tx *Tx) error { return tx.InsertSSOFlow(f, now, Limits{PerAddress: 2, Total: 10}, 1) })
		}
		err := s.Do(t.Context(), func(tx *Tx) error {
			return tx.InsertSSOFlow(SSOFlow{Hash: "d2", Kind: SSOFlowDevice, Addr: "10.0.0.9", Sealed: []byte("x"), LiveUntil: now.Add(time.Minute), ExpiresAt: now.Add(time.Minute)}, now, Limits{}, 1)
		})
		if !errors.Is(err, ErrFull) {
			t.Fatalf("a second device flow with room for one: %v", err)
		}
		claim := func(at time.Time) bool {
			var ok bool
			mustDo(t, s, func(tx *Tx) (err error) {
				ok, err = tx.ClaimSSOPoll("d1", at, at.Add(5*time.Second), at.Add(15*time.Second))
				return err
			})
			return ok
		}
		for _, tc := range []struct {
			after time.Duration
			want  bool
		}{{time.Second, false}, {5 * time.Second, true}, {6 * time.Second, false}, {9 * time.Second, false}, {10 * time.Second, true}} {
			if got := claim(now.Add(tc.after)); got != tc.want {
				t.Fatalf("claim at +%s: %v, want %v", tc.after, got, tc.want)
			}
		}
		// The answer to a claimed poll moves liveness too: the client
		// waits for it and then the new interval.
		mustDo(t, s, func(tx *Tx) error { return tx.SetSSOPoll("d1", 10, now.Add(20*time.Second), now.Add(50*time.Second)) })
		f, err := s.SSOFlow(t.Context(), "d1")
		if err != nil || f.Interval != 10 || !f.NextPoll.Equal(now.Add(20*time.Second)) || !f.LiveUntil.Equal(now.Add(50*time.Second)) || fmt.Sprint(f.Sealed) != fmt.Sprint(dev.Sealed) {
			t.Fatalf("after slow_down %+v, %v", f, err)
		}
		if _, err := s.SSOFlow(t.Context(), "nosuch"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("an unknown flow read from the read pool: %v", err)
		}
		if err := s.Do(t.Context(), func(tx *Tx) error { _, err := tx.TakeSSOFlow("d1", SSOFlowCode); return err }); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a device flow taken as a code flow: %v", err)
		}
		mustDo(t, s, func(tx *Tx) (err error) { f, err = tx.TakeSSOFlow("d1", SSOFlowDevice); return err })
		if err := s.Do(t.Context(), func(tx *Tx) error { _, err := tx.TakeSSOFlow("d1", SSOFlowDevice); return err }); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a flow taken twice: %v", err)
		}
		var n int
		mustDo(t, s, func(tx *Tx) (err error) { n, err = tx.ReapSSOFlows(now.Add(time.Minute)); return err })
		if n != 1 {
			t.Fatalf("reaped %d flows, want 1", n)
		}
	})
}
