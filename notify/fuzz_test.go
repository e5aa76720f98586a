package notify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/notify"
)

// fuzzSecret is the receiver's secret in FuzzVerify.
const fuzzSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// FuzzVerify feeds Verify the headers and body a receiver gets from the
// network. Verify must never panic, must accept exactly the deliveries that
// carry a v1 signature computed from the spec over an id that is present and
// a timestamp within tolerance, and must accept what Sign produced.
func FuzzVerify(f *testing.F) {
	f.Add("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", []byte(`{"test": 2432232314}`), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	f.Add("msg_1", "1614265330", []byte(`{}`), "v1,bm90IGEgc2lnbmF0dXJl v2,x")
	f.Add("", "1614265330", []byte(``), "v1,")
	f.Add("msg_1", "-9223372036854775808", []byte(`{}`), "")
	f.Add("msg_1", "1614265330.5", []byte(`{}`), "v1,a v1,b   v1,c")
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(fuzzSecret, notify.SecretPrefix))
	if err != nil {
		f.Fatal(err)
	}
	const tolerance = 5 * time.Minute
	now := time.Unix(1614265330, 0)
	f.Fuzz(func(t *testing.T, id, timestamp string, body []byte, signature string) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", timestamp)
		h.Set("webhook-signature", signature)
		err := notify.Verify(fuzzSecret, h, body, now, tolerance)

		// Independently: what the header carries after net/http's
		// normalisation, and the signature the spec defines over it.
		id, timestamp, signature = h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
		ts, perr := strconv.ParseInt(timestamp, 10, 64)
		inTime := perr == nil && ts >= now.Add(-tolerance).Unix() && ts <= now.Add(tolerance).Unix()
		signed := false
		if inTime {
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "."))
			mac.Write(body)
			want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
			for _, s := range strings.Fields(signature) {
				signed = signed || s == want
			}
		}
		if accept := id != "" && inTime && signed; accept != (err == nil) {
			t.Fatalf("Verify(id %q, timestamp %q, signature %q) = %v; the spec says accept=%v", id, timestamp, signature, err, accept)
		}

		// What Sign produces verifies, whatever the body.
		if id != "" && perr == nil {
			h.Set("webhook-signature", notify.Sign(key, id, ts, body))
			if err := notify.Verify(fuzzSecret, h, body, time.Unix(ts, 0), tolerance); err != nil {
				t.Fatalf("Verify of Sign's output (id %q, timestamp %d): %v", id, ts, err)
			}
		}
	})
}
