package audit

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestSessionMarkers: a session's markers come back by offset across
// documents, without other kinds or sessions, bounded by the limit with
// the rest counted.
func TestSessionMarkers(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		ctx := context.Background()
		batches := [][]TextLine{
			{
				{SessionID: "s1", Kind: "m", Offset: 0, Text: "subsystem sftp"},
				{SessionID: "s1", Kind: "o", Offset: time.Second, Text: "not a marker"},
				{SessionID: "s2", Kind: "m", Offset: time.Second, Text: "other session"},
				{SessionID: "s1", Kind: "m", Offset: 2 * time.Second, Text: `sftp open "/a" (write)`},
			},
			{
				{SessionID: "s1", Kind: "m", Offset: 3 * time.Second, Text: `sftp write "/a" 3145728 bytes`},
				{SessionID: "s1", Kind: "m", Offset: 3 * time.Second, Text: "exit-status 0\x00"},
			},
		}
		for _, b := range batches {
			if err := s.Do(ctx, func(tx *Tx) error { return tx.IndexText(b) }); err != nil {
				t.Fatal(err)
			}
		}
		all := []string{"subsystem sftp", `sftp open "/a" (write)`, `sftp write "/a" 3145728 bytes`, "exit-status 0"}
		tests := []struct {
			name     string
			id       string
			limit    int
			want     []string
			wantMore int
		}{
			{name: "all", id: "s1", want: all},
			{name: "limited", id: "s1", limit: 3, want: all[:3], wantMore: 1},
			{name: "unknown session", id: "nope"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				lines, more, err := s.SessionMarkers(ctx, tc.id, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, l := range lines {
					got = append(got, l.Text)
				}
				if !slices.Equal(got, tc.want) || more != tc.wantMore {
					t.Fatalf("got %q (+%d), want %q (+%d)", got, more, tc.want, tc.wantMore)
				}
			})
		}
	})
}
