package provision

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeAnswer: whatever a target sends back, DecodeAnswer either
// refuses it or returns an answer that re-encodes to the same answer and,
// when failed, carries a code.
func FuzzDecodeAnswer(f *testing.F) {
	for _, seed := range []string{
		`{"ok":true,"accounts":[{"login":"jit-alice-abcd","uid":61000,"grant":"req_1","created":"2026-01-01T00:00:00Z","processes":0}],"high_water":61000}`,
		`{"ok":false,"code":"name_exists","error":"user exists","high_water":61003}`,
		`{"ok":true,"high_water":0}`,
		`{"ok":false,"high_water":1}`,
		`{"ok":true,"high_water":1}{"ok":true}`,
		`{"ok":true,"extra":1}`,
		``, `[]`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ans, err := DecodeAnswer(b)
		if err != nil {
			return
		}
		if !ans.OK && ans.Code == "" {
			t.Fatal("failed answer without a code accepted")
		}
		again, err := json.Marshal(ans)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeAnswer(again)
		if err != nil || back.OK != ans.OK || back.Code != ans.Code || back.HighWater != ans.HighWater || len(back.Accounts) != len(ans.Accounts) {
			t.Fatalf("re-decoded %+v (%v), want %+v", back, err, ans)
		}
	})
}
