package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkErr fails unless err matches: wantIs (errors.Is), wantErr (substring)
// or, when both are empty, nil.
func checkErr(t *testing.T, err error, wantIs error, wantErr string) {
	t.Helper()
	switch {
	case wantIs != nil:
		if !errors.Is(err, wantIs) {
			t.Fatalf("error = %v, want %v", err, wantIs)
		}
	case wantErr != "":
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error = %v, want error containing %q", err, wantErr)
		}
	case err != nil:
		t.Fatalf("unexpected error: %v", err)
	}
}

func userCert(serial uint64) Certificate {
	return Certificate{
		Serial: serial, Kind: "user", RequestID: "r1", User: "alice", Host: "db1", Login: "root",
		Principals: []string{"root@db1"}, KeyFingerprint: "SHA256:abc", KeyID: "alice-r1",
		ValidAfter: at(-time.Minute), ValidBefore: at(10 * time.Minute), ClientAddr: "127.0.0.1:1", IssuedAt: at(0),
	}
}

func TestInsertCertificate(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		tests := []struct {
			name    string
			prior   []Certificate
			cert    Certificate
			wantIs  error
			wantErr string
		}{
			{name: "user cert", cert: userCert(7)},
			{name: "serial above 2^63", cert: userCert(1<<64 - 2)},
			{name: "host cert without principals", cert: Certificate{Serial: 9, Kind: "host", IssuedAt: at(0)}},
			{name: "zero serial", cert: userCert(0), wantErr: "serial is zero"},
			{name: "bad kind", cert: Certificate{Serial: 3, Kind: "admin"}, wantErr: `kind "admin"`},
			{name: "duplicate serial", prior: []Certificate{userCert(7)}, cert: userCert(7), wantIs: ErrConflict},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				for _, c := range tt.prior {
					mustDo(t, s, func(tx *Tx) error { return tx.InsertCertificate(c) })
				}
				err := s.Do(context.Background(), func(tx *Tx) error { return tx.InsertCertificate(tt.cert) })
				checkErr(t, err, tt.wantIs, tt.wantErr)
				if err != nil {
					return
				}
				got, err := s.Certificate(context.Background(), tt.cert.Serial)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.cert) {
					t.Errorf("Certificate = %+v, want %+v", got, tt.cert)
				}
			})
		}
	})
}

func TestCertificateNotFound(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		if _, err := s.Certificate(context.Background(), 12345); !errors.Is(err, ErrNotFound) {
			t.Errorf("Certificate(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func TestRevokeCertificate(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		tests := []struct {
			name    string
			serial  uint64
			at      time.Time
			twice   bool
			wantIs  error
			wantErr string
		}{
			{name: "revoke", serial: 7, at: at(time.Minute)},
			{name: "revoke high serial", serial: 1 << 63, at: at(time.Minute)},
			{name: "unknown serial", serial: 8, at: at(time.Minute), wantIs: ErrNotFound},
			{name: "already revoked", serial: 7, at: at(time.Minute), twice: true, wantIs: ErrConflict},
			{name: "zero time", serial: 7, wantErr: "time is zero"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				mustDo(t, s, func(tx *Tx) error {
					for _, serial := range []uint64{7, 1 << 63, 2} {
						if err := tx.InsertCertificate(userCert(serial)); err != nil {
							return err
						}
					}
					return nil
				})
				if tt.twice {
					mustDo(t, s, func(tx *Tx) error { return tx.RevokeCertificate(tt.serial, at(0), "first") })
				}
				err := s.Do(context.Background(), func(tx *Tx) error { return tx.RevokeCertificate(tt.serial, tt.at, "compromised") })
				checkErr(t, err, tt.wantIs, tt.wantErr)
				if err != nil {
					return
				}
				got, err := s.Certificate(context.Background(), tt.serial)
				if err != nil {
					t.Fatal(err)
				}
				if !got.RevokedAt.Equal(tt.at) || got.RevokeReason != "compromised" {
					t.Errorf("revoked at %v for %q, want %v for compromised", got.RevokedAt, got.RevokeReason, tt.at)
				}
				serials, err := s.RevokedSerials(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if want := []uint64{tt.serial}; !reflect.DeepEqual(serials, want) {
					t.Errorf("RevokedSerials = %v, want %v", serials, want)
				}
			})
		}
	})
}

func TestRevokedSerialsSortedAsUnsigned(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		serials := []uint64{1 << 63, 5, 1<<64 - 1, 1<<63 - 1}
		mustDo(t, s, func(tx *Tx) error {
			for _, serial := range append(serials, 99) {
				if err := tx.InsertCertificate(userCert(serial)); err != nil {
					return err
				}
			}
			for _, serial := range serials {
				if err := tx.RevokeCertificate(serial, at(0), "test"); err != nil {
					return err
				}
			}
			return nil
		})
		got, err := s.RevokedSerials(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := []uint64{5, 1<<63 - 1, 1 << 63, 1<<64 - 1}; !reflect.DeepEqual(got, want) {
			t.Errorf("RevokedSerials = %v, want %v", got, want)
		}
	})
}

func TestCertificates(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		certs := []Certificate{
			{Serial: 1, Kind: "user", User: "alice", RequestID: "r1", IssuedAt: at(0), ValidAfter: at(0), ValidBefore: at(10 * time.Minute)},
			{Serial: 2, Kind: "target", User: "alice", RequestID: "r1", IssuedAt: at(time.Minute), ValidAfter: at(time.Minute), ValidBefore: at(2 * time.Minute)},
			{Serial: 3, Kind: "user", User: "bob", RequestID: "r2", IssuedAt: at(2 * time.Minute), ValidAfter: at(2 * time.Minute), ValidBefore: at(12 * time.Minute)},
			{Serial: 4, Kind: "host", IssuedAt: at(3 * time.Minute), ValidAfter: at(0), ValidBefore: at(time.Hour)},
		}
		mustDo(t, s, func(tx *Tx) error {
			for _, c := range certs {
				if err := tx.InsertCertificate(c); err != nil {
					return err
				}
			}
			return tx.RevokeCertificate(3, at(5*time.Minute), "test")
		})
		tests := []struct {
			name        string
			filter      CertificateFilter
			wantSerials []uint64
		}{
			{name: "all newest first", filter: CertificateFilter{}, wantSerials: []uint64{4, 3, 2, 1}},
			{name: "user", filter: CertificateFilter{User: "alice"}, wantSerials: []uint64{2, 1}},
			{name: "request", filter: CertificateFilter{RequestID: "r2"}, wantSerials: []uint64{3}},
			{name: "kind", filter: CertificateFilter{Kind: "user"}, wantSerials: []uint64{3, 1}},
			{name: "valid at start of window", filter: CertificateFilter{ValidAt: at(time.Minute)}, wantSerials: []uint64{4, 2, 1}},
			{name: "valid before excluded", filter: CertificateFilter{ValidAt: at(2 * time.Minute)}, wantSerials: []uint64{4, 3, 1}},
			{name: "revoked excluded after revocation", filter: CertificateFilter{ValidAt: at(5 * time.Minute)}, wantSerials: []uint64{4, 1}},
			{name: "limit", filter: CertificateFilter{Limit: 2}, wantSerials: []uint64{4, 3}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Certificates(context.Background(), tt.filter)
				if err != nil {
					t.Fatal(err)
				}
				var serials []uint64
				for _, c := range got {
					serials = append(serials, c.Serial)
				}
				if !reflect.DeepEqual(serials, tt.wantSerials) {
					t.Errorf("Certificates(%+v) = %v, want %v", tt.filter, serials, tt.wantSerials)
				}
			})
		}
	})
}

func pendingRequest(id string) Request {
	return Request{
		ID: id, User: "alice", Host: "db1", Login: "root", Role: "dba", Justification: "INC-1 disk full",
		State: StatePending, TTL: 10 * time.Minute, PublicKey: "ssh-ed25519 AAAA", ApprovalsNeeded: 1,
		CreatedAt: at(0), ExpiresAt: at(30 * time.Minute), ClientAddr: "127.0.0.1:9",
	}
}

func TestInsertRequest(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		tests := []struct {
			name    string
			prior   []Request
			req     Request
			wantIs  error
			wantErr string
		}{
			{name: "pending", req: pendingRequest("r1")},
			{name: "break glass issued", req: func() Request {
				r := pendingRequest("r2")
				r.State, r.BreakGlass, r.Serial, r.DecidedAt, r.RedeemBy = StateIssued, true, 1<<63+5, at(time.Second), at(time.Minute)
				return r
			}()},
			{name: "duplicate id", prior: []Request{pendingRequest("r1")}, req: pendingRequest("r1"), wantIs: ErrConflict},
			{name: "empty id", req: pendingRequest(""), wantErr: "id is empty"},
			{name: "empty user", req: func() Request { r := pendingRequest("r1"); r.User = ""; return r }(), wantErr: "user is empty"},
			{name: "bad state", req: func() Request { r := pendingRequest("r1"); r.State = "open"; return r }(), wantErr: `state "open"`},
			{name: "negative ttl", req: func() Request { r := pendingRequest("r1"); r.TTL = -1; return r }(), wantErr: "negative"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				for _, r := range tt.prior {
					mustDo(t, s, func(tx *Tx) error { return tx.InsertRequest(r) })
				}
				err := s.Do(context.Background(), func(tx *Tx) error { return tx.InsertRequest(tt.req) })
				checkErr(t, err, tt.wantIs, tt.wantErr)
				if err != nil {
					return
				}
				got, err := s.Request(context.Background(), tt.req.ID)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.req) {
					t.Errorf("Request = %+v, want %+v", got, tt.req)
				}
				var inTx Request
				mustDo(t, s, func(tx *Tx) error { inTx, err = tx.Request(tt.req.ID); return err })
				if !reflect.DeepEqual(inTx, tt.req) {
					t.Errorf("tx.Request = %+v, want %+v", inTx, tt.req)
				}
			})
		}
	})
}

func TestRequestNotFound(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		if _, err := s.Request(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Request = %v, want ErrNotFound", err)
		}
		err := s.Do(context.Background(), func(tx *Tx) error { _, err := tx.Request("nope"); return err })
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("tx.Request = %v, want ErrNotFound", err)
		}
	})
}

func TestUpdateRequest(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		approved := pendingRequest("r1")
		approved.State, approved.DecidedAt, approved.DecidedBy, approved.DecisionReason = StateApproved, at(time.Minute), "bob", "ok"
		approved.RedeemBy = at(11 * time.Minute)
		tests := []struct {
			name      string
			update    Request
			from      []string
			wantIs    error
			wantErr   string
			wantState string // stored state afterwards
		}{
			{name: "pending to approved", update: approved, from: []string{StatePending}, wantState: StateApproved},
			{name: "one of several from states", update: approved, from: []string{StateApproved, StatePending}, wantState: StateApproved},
			{name: "wrong from state", update: approved, from: []string{StateApproved}, wantIs: ErrConflict, wantState: StatePending},
			{name: "no from states", update: approved, wantErr: "no from states", wantState: StatePending},
			{name: "invalid from state", update: approved, from: []string{"open"}, wantErr: `from state "open"`, wantState: StatePending},
			{name: "invalid new state", update: func() Request { r := approved; r.State = "x"; return r }(), from: []string{StatePending}, wantErr: `state "x"`, wantState: StatePending},
			{name: "unknown id", update: func() Request { r := approved; r.ID = "r9"; return r }(), from: []string{StatePending}, wantIs: ErrNotFound, wantState: StatePending},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				mustDo(t, s, func(tx *Tx) error { return tx.InsertRequest(pendingRequest("r1")) })
				err := s.Do(context.Background(), func(tx *Tx) error { return tx.UpdateRequest(tt.update, tt.from...) })
				checkErr(t, err, tt.wantIs, tt.wantErr)
				got, err := s.Request(context.Background(), "r1")
				if err != nil {
					t.Fatal(err)
				}
				if got.State != tt.wantState {
					t.Errorf("stored state = %q, want %q", got.State, tt.wantState)
				}
				if tt.wantState == StateApproved && !reflect.DeepEqual(got, tt.update) {
					t.Errorf("stored %+v, want %+v", got, tt.update)
				}
			})
		}
	})
}

func TestRequests(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		reqs := []Request{
			{ID: "a1", User: "alice", Host: "db1", State: StatePending, CreatedAt: at(0)},
			{ID: "a2", User: "alice", Host: "web", State: StateIssued, CreatedAt: at(time.Minute)},
			{ID: "b1", User: "bob", Host: "db1", State: StatePending, BreakGlass: true, CreatedAt: at(2 * time.Minute)},
			{ID: "c1", User: "carol", Host: "db1", State: StateDenied, CreatedAt: at(3 * time.Minute)},
		}
		mustDo(t, s, func(tx *Tx) error {
			for _, r := range reqs {
				if err := tx.InsertRequest(r); err != nil {
					return err
				}
			}
			return nil
		})
		tests := []struct {
			name    string
			filter  RequestFilter
			wantIDs []string
		}{
			{name: "all newest first", filter: RequestFilter{}, wantIDs: []string{"c1", "b1", "a2", "a1"}},
			{name: "user", filter: RequestFilter{User: "alice"}, wantIDs: []string{"a2", "a1"}},
			{name: "state", filter: RequestFilter{State: StatePending}, wantIDs: []string{"b1", "a1"}},
			{name: "host", filter: RequestFilter{Host: "db1"}, wantIDs: []string{"c1", "b1", "a1"}},
			{name: "break glass", filter: RequestFilter{BreakGlass: true}, wantIDs: []string{"b1"}},
			{name: "since", filter: RequestFilter{Since: at(time.Minute)}, wantIDs: []string{"c1", "b1", "a2"}},
			{name: "limit", filter: RequestFilter{Limit: 1}, wantIDs: []string{"c1"}},
			{name: "no match", filter: RequestFilter{User: "alice", State: StateDenied}, wantIDs: nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Requests(context.Background(), tt.filter)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, r := range got {
					ids = append(ids, r.ID)
				}
				if !reflect.DeepEqual(ids, tt.wantIDs) {
					t.Errorf("Requests(%+v) = %v, want %v", tt.filter, ids, tt.wantIDs)
				}
			})
		}
	})
}

func TestAddApproval(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		first := Approval{RequestID: "r1", Approver: "bob", Decision: "approve", Reason: "ok", Time: at(time.Minute)}
		tests := []struct {
			name     string
			approval Approval
			wantIs   error
			wantErr  string
		}{
			{name: "second approver", approval: Approval{RequestID: "r1", Approver: "carol", Decision: "deny", Time: at(2 * time.Minute)}},
			{name: "same approver twice", approval: Approval{RequestID: "r1", Approver: "bob", Decision: "deny", Time: at(2 * time.Minute)}, wantIs: ErrConflict},
			{name: "unknown request", approval: Approval{RequestID: "r9", Approver: "carol", Decision: "approve"}, wantIs: ErrNotFound},
			{name: "bad decision", approval: Approval{RequestID: "r1", Approver: "carol", Decision: "maybe"}, wantErr: `decision "maybe"`},
			{name: "empty approver", approval: Approval{RequestID: "r1", Decision: "approve"}, wantErr: "approver is empty"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				mustDo(t, s, func(tx *Tx) error {
					if err := tx.InsertRequest(pendingRequest("r1")); err != nil {
						return err
					}
					return tx.AddApproval(first)
				})
				err := s.Do(context.Background(), func(tx *Tx) error { return tx.AddApproval(tt.approval) })
				checkErr(t, err, tt.wantIs, tt.wantErr)
				want := []Approval{first}
				if err == nil {
					want = append(want, tt.approval)
				}
				got, err := s.Approvals(context.Background(), "r1")
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("Approvals = %+v, want %+v", got, want)
				}
				var inTx []Approval
				mustDo(t, s, func(tx *Tx) error { inTx, err = tx.Approvals("r1"); return err })
				if !reflect.DeepEqual(inTx, want) {
					t.Errorf("tx.Approvals = %+v, want %+v", inTx, want)
				}
			})
		}
	})
}

func tokenHash(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

func TestTokens(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		valid := Token{Hash: tokenHash("secret"), User: "alice", IssuedAt: at(0), ExpiresAt: at(time.Hour)}
		tests := []struct {
			name    string
			token   Token
			wantIs  error
			wantErr string
		}{
			{name: "valid", token: valid},
			{name: "duplicate", token: Token{Hash: tokenHash("existing"), User: "bob"}, wantIs: ErrConflict},
			{name: "raw token instead of hash", token: Token{Hash: "secret", User: "alice"}, wantErr: "not 64 lower-case hex"},
			{name: "upper-case hash", token: Token{Hash: strings.ToUpper(tokenHash("x")), User: "alice"}, wantErr: "not 64 lower-case hex"},
			{name: "empty user", token: Token{Hash: tokenHash("y")}, wantErr: "user is empty"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				mustDo(t, s, func(tx *Tx) error { return tx.InsertToken(Token{Hash: tokenHash("existing"), User: "bob"}) })
				err := s.Do(context.Background(), func(tx *Tx) error { return tx.InsertToken(tt.token) })
				checkErr(t, err, tt.wantIs, tt.wantErr)
				if err != nil {
					return
				}
				got, err := s.Token(context.Background(), tt.token.Hash)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.token) {
					t.Errorf("Token = %+v, want %+v", got, tt.token)
				}
				mustDo(t, s, func(tx *Tx) error { return tx.DeleteToken(tt.token.Hash) })
				if _, err := s.Token(context.Background(), tt.token.Hash); !errors.Is(err, ErrNotFound) {
					t.Errorf("Token after delete = %v, want ErrNotFound", err)
				}
				err = s.Do(context.Background(), func(tx *Tx) error { return tx.DeleteToken(tt.token.Hash) })
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("second DeleteToken = %v, want ErrNotFound", err)
				}
			})
		}
	})
}

func TestUsers(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		alice := User{Name: "alice", Groups: []string{"dba", "eng"}, Keys: []string{"ssh-ed25519 AAAA alice"}, CreatedAt: at(0), CreatedBy: "root"}
		tests := []struct {
			name    string
			ops     func(tx *Tx) error
			wantIs  error
			wantErr string
			want    []User
		}{
			{name: "put", ops: func(tx *Tx) error { return tx.PutUser(alice) }, want: []User{alice}},
			{name: "put replaces", ops: func(tx *Tx) error {
				if err := tx.PutUser(alice); err != nil {
					return err
				}
				return tx.PutUser(User{Name: "alice", Groups: []string{"ops"}, CreatedAt: at(time.Hour), CreatedBy: "bob"})
			}, want: []User{{Name: "alice", Groups: []string{"ops"}, CreatedAt: at(time.Hour), CreatedBy: "bob"}}},
			{name: "sorted by name", ops: func(tx *Tx) error {
				if err := tx.PutUser(User{Name: "zed"}); err != nil {
					return err
				}
				return tx.PutUser(alice)
			}, want: []User{alice, {Name: "zed"}}},
			{name: "delete", ops: func(tx *Tx) error {
				if err := tx.PutUser(alice); err != nil {
					return err
				}
				return tx.DeleteUser("alice")
			}},
			{name: "delete unknown", ops: func(tx *Tx) error { return tx.DeleteUser("ghost") }, wantIs: ErrNotFound},
			{name: "empty name", ops: func(tx *Tx) error { return tx.PutUser(User{}) }, wantErr: "name is empty"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				checkErr(t, s.Do(context.Background(), tt.ops), tt.wantIs, tt.wantErr)
				got, err := s.Users(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Users = %+v, want %+v", got, tt.want)
				}
			})
		}
	})
}
