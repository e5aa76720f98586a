// Package ratelimit decides whether one more event of a key (a client
// address, a user) is allowed now, with a token bucket per key. It does no
// I/O and reads no clock: the caller passes the time, so decisions are
// reproducible in tests. It remembers a bounded number of keys, so that a
// caller inventing keys cannot grow it without bound.
package ratelimit

import (
	"fmt"
	"sync"
	"time"
)

// Limit is Events per Per, with a burst of Events: a key that has been
// quiet for Per may spend Events at once, then one more every Per/Events.
type Limit struct {
	Events int
	Per    time.Duration
}

// Validate reports a limit that cannot be enforced.
func (l Limit) Validate() error {
	if l.Events <= 0 || l.Per <= 0 {
		return fmt.Errorf("rate limit %d per %s: want a positive count and period", l.Events, l.Per)
	}
	return nil
}

func (l Limit) String() string { return fmt.Sprintf("%d per %s", l.Events, l.Per) }

// Verdict is the answer to one event.
type Verdict struct {
	// Allowed says the event may go ahead.
	Allowed bool
	// RetryAfter is, for a refused event, how long until one token is back.
	RetryAfter time.Duration
	// FirstRefusal is true for the first refusal of the key in each period
	// of the limit (Per): the one a caller records, so that refusals are
	// recorded once per period, not once per event.
	FirstRefusal bool
}

// MaxKeys is how many keys a Limiter remembers. Beyond it, keys whose
// buckets are full again are forgotten; if none is, the oldest is.
const MaxKeys = 10000

type bucket struct {
	tokens   float64
	at       time.Time // when tokens was computed
	seen     time.Time // the key's last event
	reported time.Time // start of the period whose first refusal was reported
}

// Limiter holds one bucket per key. The zero value is not usable; use New.
// It is safe for concurrent use.
type Limiter struct {
	limit Limit

	mu      sync.Mutex
	buckets map[string]*bucket
}

// New returns a Limiter enforcing l, or an error for an invalid l.
func New(l Limit) (*Limiter, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{limit: l, buckets: map[string]*bucket{}}, nil
}

// Limit returns the limit enforced.
func (l *Limiter) Limit() Limit { return l.limit }

// Allow spends one token of key at now, or refuses the event.
func (l *Limiter) Allow(key string, now time.Time) Verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		l.makeRoomLocked(now)
		b = &bucket{tokens: float64(l.limit.Events), at: now}
		l.buckets[key] = b
	}
	l.refillLocked(b, now)
	b.seen = now
	if b.tokens >= 1 {
		b.tokens--
		return Verdict{Allowed: true}
	}
	v := Verdict{RetryAfter: time.Duration((1 - b.tokens) * float64(l.interval()))}
	if b.reported.IsZero() || now.Sub(b.reported) >= l.limit.Per {
		b.reported = now
		v.FirstRefusal = true
	}
	return v
}

// interval is the time one token takes to come back.
func (l *Limiter) interval() time.Duration { return l.limit.Per / time.Duration(l.limit.Events) }

func (l *Limiter) refillLocked(b *bucket, now time.Time) {
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(float64(l.limit.Events), b.tokens+float64(elapsed)/float64(l.interval()))
		b.at = now
	}
}

// makeRoomLocked forgets keys when the map is full: first those whose
// buckets are full again (they behave as new keys), else the least recently
// used one.
func (l *Limiter) makeRoomLocked(now time.Time) {
	if len(l.buckets) < MaxKeys {
		return
	}
	var oldestKey string
	var oldest time.Time
	for k, b := range l.buckets {
		l.refillLocked(b, now)
		if b.tokens >= float64(l.limit.Events) && now.Sub(b.reported) >= l.limit.Per {
			delete(l.buckets, k)
			continue
		}
		if oldestKey == "" || b.seen.Before(oldest) {
			oldestKey, oldest = k, b.seen
		}
	}
	if len(l.buckets) >= MaxKeys {
		delete(l.buckets, oldestKey)
	}
}
