package audit

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// fillStore writes a little of everything into s: events (with a serial
// above 2^63 and nanosecond times), a request and its approvals, a
// certificate, sessions with recordings and indexed text, a signed
// checkpoint.
func fillStore(t *testing.T, s *Store) {
	t.Helper()
	appendN(t, s, 5)
	mustDo(t, s, func(tx *Tx) error {
		if err := tx.InsertRequest(pendingRequest("r1")); err != nil {
			return err
		}
		for _, who := range []string{"carol", "bob"} {
			if err := tx.AddApproval(Approval{RequestID: "r1", Approver: who, Decision: "approve", Time: at(time.Second)}); err != nil {
				return err
			}
		}
		if err := tx.InsertCertificate(userCert(1<<63 + 5)); err != nil {
			return err
		}
		_, err := tx.Append(Event{Type: "cert.issued", Serial: 1<<63 + 5, Time: at(time.Minute), User: "alice", Data: map[string]string{"a": "<&>"}})
		return err
	})
	mustDo(t, s, func(tx *Tx) error {
		return tx.IndexText([]TextLine{{SessionID: "s1", Offset: time.Second, Kind: "o", Text: "Hello World"},
			{SessionID: "s1", Offset: 2 * time.Second, Kind: "i", Text: "rm -rf /tmp/x"}})
	})
	if _, err := s.SignCheckpoint(context.Background(), testkit.Signer(t), at(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestCopyToPostgres(t *testing.T) {
	ctx := context.Background()
	from, _ := openTest(t)
	fillStore(t, from)
	fsys := recordedSessions(t, from)
	to, _ := openPG(t)
	res, err := Copy(ctx, from, to)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	want, err := from.Verify(ctx, VerifyOptions{Recordings: Recordings{Dir: recDir, FS: fsys}})
	if err != nil || !want.OK {
		t.Fatalf("Verify of the source = %+v, %v", want, err)
	}
	got, err := to.Verify(ctx, VerifyOptions{Recordings: Recordings{Dir: recDir, FS: fsys}})
	if err != nil || !got.OK || got.Head != want.Head || got.Events != want.Events || got.Checkpoints != 1 || got.Recordings != 2 {
		t.Fatalf("Verify of the copy = %+v, %v; want %+v", got, err, want)
	}
	if res.Head != want.Head || res.Events != want.Events {
		t.Errorf("Copy = %+v, want head %s of %d events", res, want.Head, want.Events)
	}
	for _, read := range []func(*Store) (any, error){
		func(s *Store) (any, error) { return s.Events(ctx, EventFilter{}) },
		func(s *Store) (any, error) { return s.Approvals(ctx, "r1") },
		func(s *Store) (any, error) { return s.Certificates(ctx, CertificateFilter{}) },
		func(s *Store) (any, error) { return s.Sessions(ctx, SessionFilter{}) },
		func(s *Store) (any, error) { return s.Search(ctx, SearchQuery{Text: "world"}) },
		func(s *Store) (any, error) { return s.Search(ctx, SearchQuery{Text: "RF /TM"}) },
	} {
		a, err := read(from)
		if err != nil {
			t.Fatal(err)
		}
		b, err := read(to)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) || reflect.ValueOf(a).Len() == 0 {
			t.Errorf("the copy reads %+v, the source %+v", b, a)
		}
	}
	// The copy's identity columns go on after the copied rows.
	mustDo(t, to, func(tx *Tx) error {
		return tx.IndexText([]TextLine{{SessionID: "s9", Kind: "o", Text: "after the copy"}})
	})
	if _, err := Copy(ctx, from, to); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Copy into a non-empty store: error = %v, want a refusal", err)
	}

}
