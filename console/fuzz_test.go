package console_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/console"
	"github.com/jitssh/jitssh/sessionlog"
)

// FuzzWindow: whatever a recording holds (it is the output of a target,
// from outside), a window is valid asciicast v2 whose output carries no
// escape sequence Sanitize would remove, with times inside the window.
func FuzzWindow(f *testing.F) {
	seeds := []string{
		`{"version": 2, "width": 80, "height": 24}` + "\n" + `[1.0, "o", "hi\r\n"]` + "\n" + `[2.5, "r", "100x30"]` + "\n" + `[3, "m", "mark"]` + "\n",
		`{"version": 2, "width": 80, "height": 24}` + "\n" + `[0.5, "o", "\u001b]52;c;ZXZpbA==\u0007x"]` + "\n" + `[9, "i", "secret"]` + "\n",
		`{"version": 2, "width": 80, "height": 24}` + "\n" + `[1, "o", "\u001b[3`,
		`{"version": 2, "width": 1, "height": 1}` + "\n" + `[1, "r", "0x0"]` + "\n" + `[1, "r", "99999x3"]` + "\n",
		"not a recording",
	}
	for _, s := range seeds {
		f.Add(s, 0.0, 60.0)
		f.Add(s, 1.0, 1.0)
	}
	f.Fuzz(func(t *testing.T, rec string, from, window float64) {
		if from < 0 || window < 1 || window > console.MaxWindow || from > 1e9 {
			return
		}
		var buf bytes.Buffer
		if _, err := console.WriteWindow(&buf, strings.NewReader(rec), from, window); err != nil {
			return
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		var h map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &h); err != nil || h["version"] != 2.0 {
			t.Fatalf("header %q", lines[0])
		}
		for _, l := range lines[1:] {
			var ev []any
			if err := json.Unmarshal([]byte(l), &ev); err != nil || len(ev) != 3 {
				t.Fatalf("event line %q", l)
			}
			tm, _ := ev[0].(float64)
			code, _ := ev[1].(string)
			data, _ := ev[2].(string)
			if tm < 0 || tm >= window+1e-6 {
				t.Errorf("event time %v outside the window [0, %v)", tm, window)
			}
			if code == "i" {
				t.Errorf("input reached the window: %q", l)
			}
			if code == "o" && sessionlog.Sanitize(data) != data {
				t.Errorf("output not sanitized: %q", data)
			}
		}
	})
}
