package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		name  string
		event Event
		want  string
	}{
		{
			name:  "empty fields and no data",
			event: Event{Seq: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Type: "login"},
			want: `{"seq":1,"time":"2026-01-02T03:04:05.000000000Z","type":"login","code":"","actor":"","user":"",` +
				`"host":"","login":"","request_id":"","session_id":"","serial":0,"client_addr":"","message":"","data":{}}`,
		},
		{
			name: "every field, non-UTC time, sorted data, escaped text, max serial",
			event: Event{
				Seq: 42, Time: time.Date(2026, 1, 2, 4, 4, 5, 7, time.FixedZone("CET", 3600)), Type: "cert.issued",
				Code: "ok", Actor: "alice", User: "alice", Host: "db1", Login: "root", RequestID: "r1",
				SessionID: "s1", Serial: 1<<64 - 1, ClientAddr: "127.0.0.1:5", Message: "a<b & \"c\"\n",
				Data: map[string]string{"z": "1", "a": "2"}, PrevHash: "ignored", Hash: "ignored",
			},
			want: `{"seq":42,"time":"2026-01-02T03:04:05.000000007Z","type":"cert.issued","code":"ok","actor":"alice",` +
				`"user":"alice","host":"db1","login":"root","request_id":"r1","session_id":"s1",` +
				`"serial":18446744073709551615,"client_addr":"127.0.0.1:5","message":"a\u003cb \u0026 \"c\"\n",` +
				`"data":{"a":"2","z":"1"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Canonical(tt.event)); got != tt.want {
				t.Errorf("Canonical =\n%s\nwant\n%s", got, tt.want)
			}
			sum := sha256.Sum256(append(make([]byte, 32), tt.want...))
			got, err := ChainHash(GenesisHash, tt.event)
			if err != nil {
				t.Fatal(err)
			}
			if want := hex.EncodeToString(sum[:]); got != want {
				t.Errorf("ChainHash = %s, want %s", got, want)
			}
		})
	}
}

func TestChainHashRejectsBadPrev(t *testing.T) {
	tests := []struct {
		name string
		prev string
	}{
		{name: "empty", prev: ""},
		{name: "not hex", prev: strings.Repeat("zz", 32)},
		{name: "too short", prev: strings.Repeat("00", 31)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ChainHash(tt.prev, Event{Type: "x"}); err == nil {
				t.Errorf("ChainHash(%q) succeeded, want error", tt.prev)
			}
		})
	}
}

func TestAppend(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		tests := []struct {
			name    string
			in      Event
			check   func(t *testing.T, got Event)
			wantErr string
		}{
			{
				name: "fields kept, chain fields assigned",
				in: Event{Seq: 99, Time: at(0).In(time.FixedZone("X", 7200)), Type: "request.created", User: "alice",
					Serial: 1 << 63, Data: map[string]string{"k": "v"}, PrevHash: "bogus", Hash: "bogus"},
				check: func(t *testing.T, got Event) {
					if got.Seq != 1 || got.PrevHash != GenesisHash || got.Time != at(0) || got.Time.Location() != time.UTC ||
						got.Serial != 1<<63 || got.Data["k"] != "v" {
						t.Errorf("Append = %+v", got)
					}
				},
			},
			{
				name: "zero time filled with now",
				in:   Event{Type: "login"},
				check: func(t *testing.T, got Event) {
					if got.Time.IsZero() || got.Time.Location() != time.UTC || time.Since(got.Time) > time.Minute {
						t.Errorf("Time = %v, want about now in UTC", got.Time)
					}
				},
			},
			{
				name: "invalid UTF-8 replaced",
				in:   Event{Type: "login.failed", Time: at(0), User: "bad\xffname", Data: map[string]string{"k\xfe": "v\xfd"}},
				check: func(t *testing.T, got Event) {
					if got.User != "bad\uFFFDname" || got.Data["k\uFFFD"] != "v\uFFFD" {
						t.Errorf("Append = %+v, want invalid bytes replaced", got)
					}
				},
			},
			{
				name:  "empty data is nil",
				in:    Event{Type: "x", Time: at(0), Data: map[string]string{}},
				check: func(t *testing.T, got Event) { assertNilData(t, got) },
			},
			{name: "empty type", in: Event{Time: at(0)}, wantErr: "type is empty"},
			{name: "time out of range", in: Event{Type: "x", Time: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, wantErr: "outside the storable range"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				var got Event
				err := s.Do(context.Background(), func(tx *Tx) error {
					var err error
					got, err = tx.Append(tt.in)
					return err
				})
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("Append error = %v, want %q", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, got)
				if want, _ := ChainHash(got.PrevHash, got); got.Hash != want {
					t.Errorf("Hash = %s, want %s", got.Hash, want)
				}
				stored, err := s.Events(context.Background(), EventFilter{})
				if err != nil {
					t.Fatal(err)
				}
				if len(stored) != 1 || !reflect.DeepEqual(stored[0], got) {
					t.Errorf("stored %+v, want exactly %+v", stored, got)
				}
				assertVerified(t, s, 1)
			})
		}
	})
}

func assertNilData(t *testing.T, e Event) {
	t.Helper()
	if e.Data != nil {
		t.Errorf("Data = %#v, want nil", e.Data)
	}
}

func TestAppendChainsWithinAndAcrossCalls(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		var evs []Event
		for range 3 {
			mustDo(t, s, func(tx *Tx) error {
				for range 2 {
					e, err := tx.Append(Event{Type: "x", Time: at(0)})
					if err != nil {
						return err
					}
					if seq, hash := tx.Head(); seq != e.Seq || hash != e.Hash {
						return fmt.Errorf("Head = %d %s, want %d %s", seq, hash, e.Seq, e.Hash)
					}
					evs = append(evs, e)
				}
				return nil
			})
		}
		for i, e := range evs {
			prev := GenesisHash
			if i > 0 {
				prev = evs[i-1].Hash
			}
			if e.Seq != int64(i+1) || e.PrevHash != prev {
				t.Errorf("event %d: seq %d prev %s, want seq %d prev %s", i, e.Seq, e.PrevHash, i+1, prev)
			}
		}
	})
}

func TestEvents(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		seed := []Event{
			{Type: "login", User: "alice", Host: "", Time: at(0)},
			{Type: "request.created", User: "alice", Host: "db1", RequestID: "r1", Time: at(time.Minute)},
			{Type: "request.approved", User: "alice", Host: "db1", RequestID: "r1", Actor: "bob", Time: at(2 * time.Minute)},
			{Type: "request", User: "carol", Time: at(3 * time.Minute)},
			{Type: "session.start", User: "alice", Host: "db1", SessionID: "s1", Time: at(4 * time.Minute)},
			{Type: "requests.x", User: "carol", Host: "web", Time: at(5 * time.Minute)},
			{Type: "session.end", User: "alice", Host: "db1", SessionID: "s1", Time: at(6 * time.Minute)},
		}
		mustDo(t, s, func(tx *Tx) error {
			for _, e := range seed {
				if _, err := tx.Append(e); err != nil {
					return err
				}
			}
			return nil
		})
		tests := []struct {
			name     string
			filter   EventFilter
			wantSeqs []int64
		}{
			{name: "all", filter: EventFilter{}, wantSeqs: []int64{1, 2, 3, 4, 5, 6, 7}},
			{name: "user", filter: EventFilter{User: "carol"}, wantSeqs: []int64{4, 6}},
			{name: "host", filter: EventFilter{Host: "db1"}, wantSeqs: []int64{2, 3, 5, 7}},
			{name: "exact type", filter: EventFilter{Type: "request"}, wantSeqs: []int64{4}},
			{name: "type prefix", filter: EventFilter{Type: "request."}, wantSeqs: []int64{2, 3}},
			{name: "type prefix session", filter: EventFilter{Type: "session."}, wantSeqs: []int64{5, 7}},
			{name: "request id", filter: EventFilter{RequestID: "r1"}, wantSeqs: []int64{2, 3}},
			{name: "session id", filter: EventFilter{SessionID: "s1"}, wantSeqs: []int64{5, 7}},
			{name: "since inclusive", filter: EventFilter{Since: at(5 * time.Minute)}, wantSeqs: []int64{6, 7}},
			{name: "until exclusive", filter: EventFilter{Until: at(time.Minute)}, wantSeqs: []int64{1}},
			{name: "after seq", filter: EventFilter{AfterSeq: 5}, wantSeqs: []int64{6, 7}},
			{name: "after seq with limit", filter: EventFilter{AfterSeq: 2, Limit: 2}, wantSeqs: []int64{3, 4}},
			{name: "combined", filter: EventFilter{User: "alice", Host: "db1", Type: "session."}, wantSeqs: []int64{5, 7}},
			{name: "no match", filter: EventFilter{User: "nobody"}, wantSeqs: nil},
			{name: "newest first with limit", filter: EventFilter{Host: "db1", Newest: true, Limit: 3}, wantSeqs: []int64{7, 5, 3}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Events(context.Background(), tt.filter)
				if err != nil {
					t.Fatal(err)
				}
				var seqs []int64
				for _, e := range got {
					seqs = append(seqs, e.Seq)
				}
				if !reflect.DeepEqual(seqs, tt.wantSeqs) {
					t.Errorf("Events(%+v) seqs = %v, want %v", tt.filter, seqs, tt.wantSeqs)
				}
			})
		}
	})
}

func TestEventsAreAppendOnly(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, path := openTest(t)
		mustDo(t, s, appendMsg("x", nil))
		db := rawDB(t, path)
		for _, q := range []string{
			"UPDATE events SET message = 'y'",
			"DELETE FROM events",
		} {
			if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: error = %v, want append-only refusal", q, err)
			}
		}
	})
}

func TestEventCounts(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		for i, typ := range []string{"cert.issued", "request.denied", "cert.issued", "login"} {
			mustDo(t, s, func(tx *Tx) error {
				_, err := tx.Append(Event{Time: at(time.Duration(i) * time.Second), Type: typ, Code: "ok"})
				return err
			})
		}
		got, err := s.EventCounts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"cert.issued": 2, "request.denied": 1, "login": 1}
		if len(got) != len(want) {
			t.Fatalf("EventCounts = %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("EventCounts[%q] = %d, want %d", k, got[k], v)
			}
		}
	})
}
